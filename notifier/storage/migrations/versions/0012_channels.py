"""Channels: Slack, Discord, Matrix and webhook destinations, topic digests, posts.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

TS = sa.DateTime(timezone=True)

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create channels, topic_digests, topic_ledger and channel_posts."""
    op.create_table(
        "channels",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE")),
        sa.Column("topic", sa.String(64)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("room", sa.Text),
        sa.Column("secret", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_sent_at", TS),
    )
    op.create_index("ix_channels_subscriber", "channels", ["subscriber_id"])
    op.create_index("ix_channels_topic", "channels", ["topic"])
    op.create_table(
        "topic_digests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("period", sa.String(32), nullable=False),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("papers", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("topic", "period"),
    )
    op.create_table(
        "topic_ledger",
        sa.Column("topic", sa.String(64), primary_key=True),
        sa.Column("paper_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column(
            "topic_digest_id",
            sa.Integer,
            sa.ForeignKey("topic_digests.id", ondelete="CASCADE"),
            nullable=False,
        ),
    )
    op.create_table(
        "channel_posts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "channel_id",
            sa.Integer,
            sa.ForeignKey("channels.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("digest_id", sa.Integer, sa.ForeignKey("digests.id", ondelete="CASCADE")),
        sa.Column(
            "topic_digest_id", sa.Integer, sa.ForeignKey("topic_digests.id", ondelete="CASCADE")
        ),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", TS),
        sa.Column("posting_since", TS),
        sa.Column("unknown_since", TS),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS),
        sa.UniqueConstraint("channel_id", "digest_id"),
        sa.UniqueConstraint("channel_id", "topic_digest_id"),
    )
    op.create_index("ix_channel_posts_due", "channel_posts", ["status", "next_attempt_at"])
    op.create_index("ix_channel_posts_digest", "channel_posts", ["digest_id"])


def downgrade() -> None:
    """Drop channel_posts, topic_ledger, topic_digests and channels."""
    op.drop_index("ix_channel_posts_digest", table_name="channel_posts")
    op.drop_index("ix_channel_posts_due", table_name="channel_posts")
    op.drop_table("channel_posts")
    op.drop_table("topic_ledger")
    op.drop_table("topic_digests")
    op.drop_index("ix_channels_topic", table_name="channels")
    op.drop_index("ix_channels_subscriber", table_name="channels")
    op.drop_table("channels")

"""Feedback: rated and imported example papers per interest, and muted authors.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create interest_examples and muted_authors."""
    op.create_table(
        "interest_examples",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "subscriber_id",
            sa.Integer,
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "interest_id",
            sa.Integer,
            sa.ForeignKey("interests.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("paper_id", sa.Integer, sa.ForeignKey("papers.id", ondelete="CASCADE")),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("origin", sa.String(8), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("abstract", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("interest_id", "paper_id"),
    )
    op.create_index("ix_interest_examples_subscriber", "interest_examples", ["subscriber_id"])
    op.create_table(
        "muted_authors",
        sa.Column(
            "subscriber_id",
            sa.Integer,
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("name_key", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop muted_authors and interest_examples."""
    op.drop_table("muted_authors")
    op.drop_index("ix_interest_examples_subscriber", table_name="interest_examples")
    op.drop_table("interest_examples")

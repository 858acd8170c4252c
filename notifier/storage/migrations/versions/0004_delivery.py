"""Leases, retry times and unknown outcomes on digests; hard bounces on subscribers.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add what lease-based, retrying delivery needs."""
    with op.batch_alter_table("digests") as batch:
        batch.add_column(sa.Column("last_reply", sa.Text))
        batch.add_column(sa.Column("lease_owner", sa.String(64)))
        batch.add_column(sa.Column("lease_until", TS))
        batch.add_column(sa.Column("next_attempt_at", TS))
    op.drop_index("ix_digests_status", "digests")
    op.create_index("ix_digests_status", "digests", ["status", "next_attempt_at"])
    due = sa.text("status IN ('pending', 'unknown', 'sending')")
    op.create_index("ix_digests_due", "digests", ["id"], postgresql_where=due, sqlite_where=due)
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("hard_bounces", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    """Remove what upgrade added."""
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("hard_bounces")
    op.drop_index("ix_digests_due", "digests")
    op.drop_index("ix_digests_status", "digests")
    op.create_index("ix_digests_status", "digests", ["status"])
    with op.batch_alter_table("digests") as batch:
        for column in ("next_attempt_at", "lease_until", "lease_owner", "last_reply"):
            batch.drop_column(column)

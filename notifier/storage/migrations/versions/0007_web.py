"""Sign-up from the web: when a confirmation was sent, when it was followed, when they left.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the double opt-in and unsubscribe moments to subscribers."""
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("confirm_sent_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("unsubscribed_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    """Remove them."""
    with op.batch_alter_table("subscribers") as batch:
        for column in ("unsubscribed_at", "confirmed_at", "confirm_sent_at"):
            batch.drop_column(column)

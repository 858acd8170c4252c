"""When a digest's outcome first became unknown: it may have arrived since then.

A message whose server stored it and then hung up (or never answered the
final ".") may be in the reader's mailbox. It is retried with the same
Message-ID until retry_deadline and then given up as "unconfirmed", never
"failed", even when a later attempt got a 4xx. The status alone
cannot carry that: a claim sets it to "sending".

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add digests.unknown_since."""
    with op.batch_alter_table("digests") as batch:
        batch.add_column(sa.Column("unknown_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop digests.unknown_since."""
    with op.batch_alter_table("digests") as batch:
        batch.drop_column("unknown_since")

"""Arrival numbers: which papers a digest already decided, whatever the commit order.

Each ingest that stores new or changed papers takes the next arrival number
from a one-row counter and stamps its papers with it; holding that row until
it commits, ingests commit in arrival order. A digest records the last
arrival committed before it read its candidates, and its subscriber's next
digest scores only papers of later arrivals (or the whole window for an
interest changed since, whose changed_at says when).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the arrival counter, papers.arrival, digests.arrivals_through, interests.changed_at."""
    counter = op.create_table(
        "arrival_counter",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(counter, [{"id": 1, "value": 0}])
    with op.batch_alter_table("papers") as batch:
        batch.add_column(sa.Column("arrival", sa.BigInteger, nullable=False, server_default="0"))
    with op.batch_alter_table("digests") as batch:
        batch.add_column(sa.Column("arrivals_through", sa.BigInteger, nullable=True))
    with op.batch_alter_table("interests") as batch:
        batch.add_column(sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop the arrival counter and the three columns."""
    with op.batch_alter_table("interests") as batch:
        batch.drop_column("changed_at")
    with op.batch_alter_table("digests") as batch:
        batch.drop_column("arrivals_through")
    with op.batch_alter_table("papers") as batch:
        batch.drop_column("arrival")
    op.drop_table("arrival_counter")

"""The ledger keyed by (subscriber, paper), without foreign keys or a surrogate id.

A day's ledger is millions of rows (30 per subscriber). On PostgreSQL each
foreign key is a trigger that looks up and share-locks the parent row for every
inserted row: the three of them made up four fifths of writing the ledger
(615 against 113 µs per subscriber; docs/benchmarks.md). They guarded nothing
the code does not already ensure:

- a ledger row is written in the transaction that inserts its digest, and the
  digest's own foreign key to its subscriber fails the whole transaction when
  the subscriber is gone;
- papers are never deleted;
- deleting a subscriber deletes their ledger rows in the same transaction
  (Storage.delete_subscriber, Storage.forget_unconfirmed), after the subscriber,
  so rows a concurrent composer commits meanwhile are seen and deleted too.

The unique (subscriber_id, paper_id) key (DESIGN.md invariant 3) becomes the
primary key; the surrogate id and the index on digest_id, which nothing reads,
go.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
COLUMNS = "subscriber_id, paper_id, digest_id, interest, score, reason, shown, created_at"


def _payload_columns() -> list[sa.Column[object]]:
    """Return the ledger's columns after its keys."""
    return [
        sa.Column("interest", sa.String(100), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("shown", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    ]


def upgrade() -> None:
    """Drop the ledger's foreign keys, id and digest index; key it by (subscriber, paper)."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        inspector = sa.inspect(bind)
        for foreign_key in inspector.get_foreign_keys("deliveries"):
            op.drop_constraint(foreign_key["name"], "deliveries", type_="foreignkey")
        op.drop_index("ix_deliveries_digest_id", table_name="deliveries")
        op.drop_column("deliveries", "id")  # and its primary key
        for unique in inspector.get_unique_constraints("deliveries"):
            op.drop_constraint(unique["name"], "deliveries", type_="unique")
        op.create_primary_key("deliveries_pkey", "deliveries", ["subscriber_id", "paper_id"])
        return
    # SQLite alters no constraint in place: copy the rows into the new shape.
    op.create_table(
        "deliveries_0008",
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("paper_id", sa.Integer, nullable=False),
        sa.Column("digest_id", sa.Integer, nullable=False),
        *_payload_columns(),
        sa.PrimaryKeyConstraint("subscriber_id", "paper_id"),
    )
    op.execute(f"INSERT INTO deliveries_0008 ({COLUMNS}) SELECT {COLUMNS} FROM deliveries")
    op.drop_table("deliveries")
    op.rename_table("deliveries_0008", "deliveries")


def downgrade() -> None:
    """Give the ledger back its id, foreign keys, unique key and digest index."""
    op.create_table(
        "deliveries_0007",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "subscriber_id",
            sa.Integer,
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "paper_id", sa.Integer, sa.ForeignKey("papers.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "digest_id", sa.Integer, sa.ForeignKey("digests.id", ondelete="CASCADE"), nullable=False
        ),
        *_payload_columns(),
        sa.UniqueConstraint("subscriber_id", "paper_id"),
    )
    # Rows whose digest or paper is gone could not satisfy the foreign keys; they are
    # meaningless without them.
    op.execute(
        f"INSERT INTO deliveries_0007 ({COLUMNS}) SELECT {COLUMNS} FROM deliveries"
        " WHERE digest_id IN (SELECT id FROM digests) AND paper_id IN (SELECT id FROM papers)"
    )
    op.drop_table("deliveries")
    op.rename_table("deliveries_0007", "deliveries")
    op.create_index("ix_deliveries_digest_id", "deliveries", ["digest_id"])

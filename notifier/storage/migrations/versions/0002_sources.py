"""Add live sources: paper metadata, title keys, source health and raw payloads.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _title_hash(title: str) -> str:
    """Return notifier.papers.title_hash as it was when this migration was written."""
    folded = unicodedata.normalize("NFKC", title).casefold()
    normal = re.sub(r"[\W_]+", " ", folded).strip()
    return hashlib.sha256(normal.encode()).hexdigest()[:20]


def upgrade() -> None:
    """Add the columns and tables, and key every existing paper by its title hash."""
    with op.batch_alter_table("papers") as batch:
        batch.add_column(sa.Column("title_key", sa.String(20)))
        batch.add_column(sa.Column("version", sa.Integer))
        batch.add_column(sa.Column("url", sa.Text))
        batch.add_column(sa.Column("authors", sa.JSON))
        batch.add_column(sa.Column("meta", sa.JSON))
        batch.add_column(sa.Column("published_at", TS))
    op.create_index("ix_papers_title_key", "papers", ["title_key"])
    papers = sa.table(
        "papers",
        sa.column("id", sa.Integer),
        sa.column("title", sa.Text),
        sa.column("title_key", sa.String),
    )
    conn = op.get_bind()
    for row in conn.execute(sa.select(papers.c.id, papers.c.title)).all():
        conn.execute(
            papers.update().where(papers.c.id == row.id).values(title_key=_title_hash(row.title))
        )
    with op.batch_alter_table("ingest_runs") as batch:
        batch.add_column(sa.Column("kind", sa.String(16)))
        batch.add_column(sa.Column("reason", sa.Text))
        batch.add_column(sa.Column("skipped", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("replay_of", sa.Integer))
    op.create_table(
        "payloads",
        sa.Column(
            "run_id",
            sa.Integer,
            sa.ForeignKey("ingest_runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("url", sa.Text),
        sa.Column("content_type", sa.Text),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "sources",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("etag", sa.Text),
        sa.Column("last_modified", sa.Text),
        sa.Column("last_checked_at", TS),
        sa.Column("last_success_at", TS),
        sa.Column("last_status", sa.String(16)),
        sa.Column("last_error", sa.Text),
        sa.Column("last_papers", sa.Integer),
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    """Remove what upgrade added."""
    op.drop_table("sources")
    op.drop_table("payloads")
    with op.batch_alter_table("ingest_runs") as batch:
        for column in ("replay_of", "skipped", "reason", "kind"):
            batch.drop_column(column)
    op.drop_index("ix_papers_title_key", "papers")
    with op.batch_alter_table("papers") as batch:
        for column in ("published_at", "meta", "authors", "url", "version", "title_key"):
            batch.drop_column(column)

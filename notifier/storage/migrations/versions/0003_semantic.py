"""Add interest descriptions and sensitivity, and stored sentence embeddings.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Let an interest have a description instead of (or beside) a query."""
    with op.batch_alter_table("interests") as batch:
        batch.alter_column("query", existing_type=sa.Text, nullable=True)
        batch.add_column(sa.Column("about", sa.Text))
        batch.add_column(
            sa.Column("sensitivity", sa.String(8), nullable=False, server_default="normal")
        )
    op.create_table(
        "paper_vectors",
        sa.Column(
            "paper_id",
            sa.Integer,
            sa.ForeignKey("papers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("model", sa.String(64), primary_key=True),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "interest_vectors",
        sa.Column(
            "interest_id",
            sa.Integer,
            sa.ForeignKey("interests.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("model", sa.String(64), primary_key=True),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("vectors", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    """Remove what upgrade added."""
    op.drop_table("interest_vectors")
    op.drop_table("paper_vectors")
    with op.batch_alter_table("interests") as batch:
        batch.drop_column("sensitivity")
        batch.drop_column("about")
        batch.alter_column("query", existing_type=sa.Text, nullable=False)

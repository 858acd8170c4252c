"""Each subscriber's own clock (cadence, send time, time zone, weekday, empty note), and job runs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the schedule columns (NULL: the configured default) and the job-run log."""
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("cadence", sa.String(16)))
        batch.add_column(sa.Column("send_time", sa.String(5)))
        batch.add_column(sa.Column("timezone", sa.String(64)))
        batch.add_column(sa.Column("weekday", sa.Integer))
        batch.add_column(
            sa.Column("empty_note", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job", sa.String(32), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_job_runs_job", "job_runs", ["job", "id"])


def downgrade() -> None:
    """Remove the job-run log and the schedule columns."""
    op.drop_index("ix_job_runs_job", "job_runs")
    op.drop_table("job_runs")
    with op.batch_alter_table("subscribers") as batch:
        for column in ("empty_note", "weekday", "timezone", "send_time", "cadence"):
            batch.drop_column(column)

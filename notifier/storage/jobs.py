"""Record scheduled job runs and read the figures /metrics and the planner need."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update

from notifier.models import DigestStatus, JobRun, JobStatus, MetricsFigures, SubscriberStatus
from notifier.storage.base import StorageBase
from notifier.storage.schema import digests, job_runs, papers, subscribers

# How many of the newest digests the send-latency figures look through.
LATENCY_SCAN = 500_000


class JobsMixin(StorageBase):
    """Record job runs, read the /metrics figures and refresh statistics."""

    def start_job(self, job: str, host: str, now: datetime) -> int:
        """Record that a scheduled job started; return its run id."""
        with self._tx() as conn:
            return int(
                conn.execute(
                    insert(job_runs)
                    .values(job=job, host=host, started_at=now, status=JobStatus.RUNNING, detail="")
                    .returning(job_runs.c.id)
                ).scalar_one()
            )

    def finish_job(self, run_id: int, status: str, detail: str, now: datetime) -> None:
        """Record how a job run ended (ok or failed) and what it did."""
        with self._tx() as conn:
            conn.execute(
                update(job_runs)
                .where(job_runs.c.id == run_id)
                .values(status=status, detail=detail[:2000], finished_at=now)
            )

    def last_job_runs(self) -> list[JobRun]:
        """Return the latest run of every job, by job name."""
        latest = select(func.max(job_runs.c.id)).group_by(job_runs.c.job).scalar_subquery()
        query = select(job_runs).where(job_runs.c.id.in_(latest)).order_by(job_runs.c.job)
        with self._read() as conn:
            return [
                JobRun(r.job, r.host, r.started_at, r.finished_at, JobStatus(r.status), r.detail)
                for r in conn.execute(query)
            ]

    def metrics_figures(self, window: timedelta = timedelta(hours=1)) -> MetricsFigures:
        """Return the counts /metrics shows, and the send latencies of the last window."""
        with self._read() as conn:
            papers_count = conn.execute(select(func.count()).select_from(papers)).scalar_one()
            by_status: dict[str, int] = {
                DigestStatus(status): int(n)
                for status, n in conn.execute(
                    select(digests.c.status, func.count()).group_by(digests.c.status)
                )
            }
            people: dict[str, int] = {
                SubscriberStatus(status): int(n)
                for status, n in conn.execute(
                    select(subscribers.c.status, func.count()).group_by(subscribers.c.status)
                )
            }
            newest = conn.execute(select(func.max(digests.c.id))).scalar_one() or 0
            cutoff = conn.execute(select(func.max(digests.c.sent_at))).scalar_one()
            latencies: list[float] = []
            if cutoff is not None:
                # Recent sends are among the newest ids: bound the scan by id, not by
                # an index on sent_at that every mark would have to maintain.
                rows = conn.execute(
                    select(digests.c.created_at, digests.c.sent_at).where(
                        digests.c.id > newest - LATENCY_SCAN,
                        digests.c.status == DigestStatus.SENT,
                        digests.c.sent_at >= cutoff - window,
                    )
                )
                latencies = [(sent - created).total_seconds() for created, sent in rows]
        return MetricsFigures(
            papers=int(papers_count),
            composed=sum(n for status, n in by_status.items() if status != DigestStatus.EMPTY),
            digests=by_status,
            subscribers=people,
            latencies=latencies,
        )

    def refresh_statistics(self) -> None:
        """Update the planner's statistics after a bulk write (composing a day's digests).

        PostgreSQL's autovacuum analyzes a table only after a while; until then the
        claim query is planned for the handful of rows the table had before, a
        nested loop that costs 20 ms per claim at 2,000 pending digests.
        """
        if self.engine.dialect.name != "postgresql":
            return
        with self._tx() as conn:
            conn.exec_driver_sql("ANALYZE digests, deliveries, subscribers")

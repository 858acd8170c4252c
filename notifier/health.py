"""What `notifier health` judges: whether composing runs, recently and to the end.

Composing is the `compose` job of `notifier run` or a `notifier run-once`
from cron; the service is healthy when the latest of them succeeded within
max_age and none has been running for longer than that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from notifier.models import JobRun

COMPOSING = ("compose", "run-once")

Problem = Literal["never ran", "failed", "stuck", "too old"]


@dataclass(frozen=True)
class Health:
    """The verdict: healthy (no problem), or the first problem found and the run it is about."""

    problem: Problem | None
    # The run the verdict is about: the latest compose or run-once, or the stuck one.
    job: JobRun | None = None
    age: timedelta = timedelta(0)  # how long ago that run started


def check_health(runs: Sequence[JobRun], max_age: timedelta, now: datetime) -> Health:
    """Judge the latest run of each job (Storage.last_job_runs) as of now."""
    by_job = {job.job: job for job in runs}
    latest = max(
        (by_job[name] for name in COMPOSING if name in by_job),
        key=lambda job: job.started_at,
        default=None,
    )
    if latest is None:
        return Health("never ran")
    age = now - latest.started_at
    if latest.status == "failed":
        return Health("failed", latest, age)
    # A compose or run-once still "running" long after it started died without a
    # record, or hangs (a send may rightly run for hours at a low send_rate_hourly).
    for job in by_job.values():
        if job.job in COMPOSING and job.status == "running" and now - job.started_at > max_age:
            return Health("stuck", job, now - job.started_at)
    if age > max_age:
        return Health("too old", latest, age)
    return Health(None, latest, age)

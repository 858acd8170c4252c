"""The flows, one module each: ingest, compose, send, feeds, and the cycle that runs them.

Every function takes its I/O objects and `now`; the CLI and the scheduler call
these. senders.py runs send as the settings configure it (here or in worker
processes); cycle.py holds the steps run-once and the daemon share. Matching
(notifier.matching) and source health (notifier.sources) are services the
flows use. The names re-exported here are what callers reach as
`pipeline.<name>`.
"""

from __future__ import annotations

from notifier.matching import Matching, matching_for
from notifier.pipeline.compose import (
    COMPOSE_BATCH,
    compose_digests,
    compose_due,
    describe_outcomes,
    iter_composed,
    period_of,
    preview_digests,
)
from notifier.pipeline.feeds import build_feeds, build_private_feed
from notifier.pipeline.ingest import ingest, ingest_due, ingest_source, replay, resolve_params
from notifier.pipeline.send import (
    RetryPolicy,
    SendReport,
    deliver,
    describe_report,
    send_pending,
    worker_name,
)
from notifier.render.feed import FEED_STATUSES
from notifier.sources import due_sources

__all__ = [
    "COMPOSE_BATCH",
    "FEED_STATUSES",
    "Matching",
    "RetryPolicy",
    "SendReport",
    "build_feeds",
    "build_private_feed",
    "compose_digests",
    "compose_due",
    "deliver",
    "describe_outcomes",
    "describe_report",
    "due_sources",
    "ingest",
    "ingest_due",
    "ingest_source",
    "iter_composed",
    "matching_for",
    "period_of",
    "preview_digests",
    "replay",
    "resolve_params",
    "send_pending",
    "worker_name",
]

"""What `notifier status` reports: the recent work of the service, or of one subscriber."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from notifier.models import (
    Channel,
    DigestOutcome,
    DigestStatus,
    IngestRun,
    InterestVolume,
    JobRun,
    PostStatus,
    Subscriber,
)
from notifier.settings import Settings
from notifier.sources import source_report
from notifier.storage import Storage


@dataclass(frozen=True)
class ServiceStatus:
    """The service's recent work: ingests, failing sources, job runs and digests."""

    database: str  # its URL without the password
    papers: int
    subscribers: int
    ingests: list[IngestRun]  # the latest ten
    failing_sources: list[dict[str, Any]]  # rows of sources.source_report
    job_runs: list[JobRun]  # the latest of each job
    digest_counts: dict[DigestStatus, int]
    latest_digests: list[DigestOutcome]  # each subscriber's latest
    # Interests not embedded yet (a bulk import's): matched by their words till then.
    interests_to_embed: int = 0
    post_counts: dict[PostStatus, int] = field(default_factory=dict)  # channel posts
    suspended_channels: list[Channel] = field(default_factory=list)


@dataclass(frozen=True)
class SubscriberReport:
    """Why one subscriber got what they got: what each interest finds now, and their digests."""

    subscriber: Subscriber
    volumes: list[InterestVolume]
    failing_sources: list[str]  # every source feeds every interest
    # Why the volumes could not be worked out; the rest of the status still stands.
    volumes_error: str | None
    history: list[DigestOutcome]  # the latest ten
    channels: list[Channel] = field(default_factory=list)  # Slack, Discord, Matrix, webhooks


def service_status(storage: Storage, settings: Settings, now: datetime) -> ServiceStatus:
    """Return the service's recent work as of now."""
    report = source_report(settings, storage.sources_health(), now)
    waiting = 0
    if settings.matching != "lexical":
        from notifier.embedding import MODEL_ID  # imported here: `status` starts quickly

        waiting = storage.count_interests_to_embed(MODEL_ID)
    return ServiceStatus(
        database=storage.safe_url(),
        papers=storage.count_papers(),
        subscribers=storage.count_subscribers(),
        ingests=storage.ingest_runs(limit=10),
        failing_sources=[row for row in report if row["failing"]],
        job_runs=storage.last_job_runs(),
        digest_counts=storage.digest_counts(),
        latest_digests=storage.latest_digests(),
        interests_to_embed=waiting,
        post_counts=storage.post_counts(),
        suspended_channels=storage.suspended_channels(),
    )


def subscriber_status(
    storage: Storage, settings: Settings, email: str, now: datetime
) -> SubscriberReport:
    """Return the status of the subscriber at email; raise SubscriberError if there is none."""
    from notifier.matching import interest_volumes  # imported here: `status` starts quickly

    subscriber = storage.subscriber_by_email(email.strip().lower())  # stored lowercased
    try:
        volumes, failing = interest_volumes(storage, settings, subscriber, now)
        error = None
    except Exception as e:  # "why so few" is an extra: the history is still reported
        volumes, failing, error = [], [], str(e)
    history = storage.digest_history(subscriber.id, limit=10)
    channels = storage.channels_of(subscriber_id=subscriber.id)
    return SubscriberReport(subscriber, volumes, failing, error, history, channels)

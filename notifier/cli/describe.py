"""The lines several commands print about an ingest, an interest and a schedule."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from notifier.schedule import next_due

if TYPE_CHECKING:
    from notifier.models import IngestSummary, Interest, Subscriber
    from notifier.settings import Settings


def describe_summary(summary: IngestSummary) -> str:
    """Return one human line for an ingest summary."""
    if summary.status == "unchanged":
        return f"{summary.source}: not modified since the last fetch"
    if summary.status == "empty":
        return f"{summary.source}: empty: {summary.reason or ''}"
    extras = [
        f"{n} {k}" for k, n in (("updated", summary.updated), ("skipped", summary.skipped)) if n
    ]
    return (
        f"{summary.source}: {summary.papers} papers, {summary.new} new, "
        f"{summary.seen} seen before" + "".join(f", {e}" for e in extras)
    )


def describe_interest(interest: Interest) -> str:
    """Return one line describing an interest."""
    parts = [f"{interest.name}:"]
    if interest.query:
        parts.append(f"query {interest.query}")
    if interest.about:
        parts.append(f"about “{interest.about}”")
    if interest.sensitivity != "normal":
        parts.append(f"({interest.sensitivity})")
    return " ".join(parts)


def describe_schedule(settings: Settings, subscriber: Subscriber, now: datetime) -> str:
    """Return when the subscriber's digests go out, and when the next one is due."""
    if subscriber.status != "active":
        return f"schedule: none while {subscriber.status}"
    try:
        cadence, due = next_due(settings.default_cadence, subscriber, now)
    except ValueError as e:
        return f"schedule: invalid: {e}"
    note = ", a short note when nothing is new" if subscriber.empty_note else ""
    return f"schedule: {cadence.describe()}{note}; next digest {due:%Y-%m-%d %H:%M %Z}"

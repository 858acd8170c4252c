"""Name what each flow needs of Storage, one narrow protocol per flow."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from notifier.models import (
    Channel,
    ChannelKind,
    ChannelPost,
    DigestContent,
    DigestOutcome,
    DigestRecord,
    DigestStatus,
    IngestRun,
    IngestSummary,
    Interest,
    InterestExample,
    JobRun,
    Listing,
    MetricsFigures,
    NewDigest,
    Paper,
    PaperChange,
    Payload,
    ScheduleKey,
    Shard,
    SourceState,
    StoredDigest,
    StoredPaper,
    Subscriber,
    SubscriberStatus,
)

if TYPE_CHECKING:
    from notifier.storage import Storage


class PaperStore(Protocol):
    """Store what ingest finds: listings' papers, their runs and raw bytes, sources' state."""

    def papers_for_diff(
        self, keys: Iterable[str], title_keys: Iterable[str]
    ) -> tuple[dict[str, StoredPaper], dict[str, list[StoredPaper]]]:
        """Return stored papers by key and by title hash, to diff a listing against."""

    def record_ingest(
        self,
        listing: Listing,
        changes: Sequence[PaperChange],
        now: datetime,
        *,
        kind: str,
        payload: Payload | None = None,
        replay_of: int | None = None,
    ) -> IngestSummary:
        """Store a diffed listing, its run and its raw bytes in one transaction."""

    def record_failed_ingest(
        self,
        source: str,
        error: str,
        now: datetime,
        kind: str | None = None,
        payload: Payload | None = None,
    ) -> int:
        """Log an ingest that was refused; keep its raw bytes."""

    def record_unchanged(self, source: str, kind: str, now: datetime) -> int:
        """Log a fetch the server answered 304 Not Modified."""

    def payload(self, run_id: int) -> tuple[IngestRun, Payload]:
        """Return an ingest run and its raw bytes, to replay it."""

    def source_state(self, name: str) -> SourceState | None:
        """Return what the last fetches of a source left (validators, health)."""

    def save_source_state(self, state: SourceState) -> None:
        """Insert or replace a source's state."""

    def sources_health(self) -> list[SourceState]:
        """Return the state of every source ever fetched, by name."""


class SubscriberStore(Protocol):
    """Keep subscribers for sign-up, confirmation, preferences, the admin API and the CLI."""

    def save_subscriber(
        self,
        email: str,
        name: str | None,
        new_interests: Sequence[Interest],
        now: datetime,
        max_papers: int | None = None,
        *,
        schedule: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> tuple[Subscriber, bool]:
        """Create a subscriber or update one; say if new."""

    def create_subscriber(
        self,
        email: str,
        name: str | None,
        chosen: Sequence[Interest],
        now: datetime,
        *,
        max_papers: int | None = None,
        schedule: Mapping[str, Any] | None = None,
        status: str = SubscriberStatus.ACTIVE,
    ) -> Subscriber | None:
        """Create one subscriber; return None when the address is taken."""

    def add_subscribers(
        self, new: Sequence[tuple[str, str | None, Sequence[Interest]]], now: datetime
    ) -> int:
        """Create many subscribers at once; return how many were created."""

    def subscribers(self, active_only: bool = False) -> list[Subscriber]:
        """Return subscribers with their interests, in id order."""

    def subscriber_by_email(self, email: str) -> Subscriber:
        """Return one subscriber, or raise SubscriberError when there is none."""

    def subscriber_by_id(self, subscriber_id: int) -> Subscriber | None:
        """Return one subscriber by id, or None."""

    def subscriber_by_feed_token(self, feed_token: str) -> Subscriber | None:
        """Return the subscriber whose private feed has this token, or None."""

    def examples_for(self, subscriber_ids: Iterable[int]) -> dict[int, list[InterestExample]]:
        """Return the examples of these subscribers' interests, by interest id."""

    def muted_keys(self, subscriber_ids: Iterable[int]) -> dict[int, frozenset[str]]:
        """Return the muted authors' comparison keys by subscriber."""

    def subscriber_by_manage_key(self, key: str) -> Subscriber | None:
        """Return the subscriber whose manage key a signed link carried, or None."""

    def subscriber_page(
        self, after: int, limit: int, status: str | None = None
    ) -> list[Subscriber]:
        """Return up to limit subscribers with ids above after, in id order."""

    def request_subscription(
        self,
        email: str,
        *,
        name: str | None,
        chosen: Sequence[Interest],
        schedule: Mapping[str, Any],
        now: datetime,
        resend_after: timedelta,
    ) -> tuple[Subscriber, str]:
        """Record a sign-up from the web and say which email, if any, to send now."""

    def release_confirmation(self, subscriber_id: int) -> None:
        """Forget that a confirmation was sent, so the next try may send."""

    def confirm_subscriber(self, subscriber_id: int, now: datetime) -> bool:
        """Turn a pending subscriber active; return whether this call did it."""

    def unsubscribe(self, subscriber_id: int, now: datetime) -> bool:
        """Stop every digest to a subscriber; return whether this call did it."""

    def update_preferences(
        self,
        subscriber_id: int,
        *,
        name: str | None = None,
        chosen: Sequence[Interest] | None = None,
        schedule: Mapping[str, Any] | None = None,
        status: str | None = None,
        max_papers: int | None = None,
        now: datetime,
    ) -> Subscriber | None:
        """Change what is given; return None when there is no such subscriber."""

    def delete_subscriber(self, subscriber_id: int) -> bool:
        """Delete a subscriber with everything of theirs; say if one existed."""

    def forget_unconfirmed(self, before: datetime) -> int:
        """Delete sign-ups never confirmed in time; return how many."""


class VectorStore(Protocol):
    """Keep the embeddings of papers and interests, computed once per model."""

    def paper_vectors(self, paper_ids: Iterable[int], model: str) -> dict[int, bytes]:
        """Return stored paper embeddings (float32 bytes) by paper id."""

    def save_paper_vectors(self, vectors: Mapping[int, bytes], model: str) -> None:
        """Store paper embeddings computed by the caller."""

    def interest_vectors(
        self, interest_ids: Iterable[int], model: str
    ) -> dict[int, tuple[str, bytes]]:
        """Return stored interest embeddings as (text hash, bytes) by interest id."""

    def save_interest_vectors(self, rows: Sequence[tuple[int, str, bytes]], model: str) -> None:
        """Store (or replace) interests' embeddings."""

    def interests_to_embed(self, model: str, after: int, limit: int) -> list[Interest]:
        """Return up to limit interests with no embeddings for model, by id, after id after."""

    def count_interests_to_embed(self, model: str) -> int:
        """Return how many interests have no embeddings for model."""


class TaughtStore(Protocol):
    """Read what readers taught: their interests' example papers and muted authors."""

    def examples_for(self, subscriber_ids: Iterable[int]) -> dict[int, list[InterestExample]]:
        """Return the examples of these subscribers' interests, by interest id."""
        ...

    def muted_keys(self, subscriber_ids: Iterable[int]) -> dict[int, frozenset[str]]:
        """Return the muted authors' comparison keys by subscriber."""
        ...


class DigestStore(VectorStore, TaughtStore, Protocol):
    """Give compose its candidates, due subscribers and ledger; store digests."""

    # compose_due's housekeeping before it composes: sign-ups never confirmed go.
    def forget_unconfirmed(self, before: datetime) -> int:
        """Delete sign-ups never confirmed in time; return how many."""

    def recent_papers(self, since: datetime, until: datetime) -> list[Paper]:
        """Return papers first seen in [since, until], newest first."""

    def schedule_groups(self, shard: Shard | None = None) -> list[tuple[ScheduleKey, int]]:
        """Return each distinct schedule of the active subscribers, with how many."""

    def subscriber_batches(
        self,
        size: int,
        schedule: ScheduleKey | None = None,
        period: str | None = None,
        fresh_since: datetime | None = None,
        shard: Shard | None = None,
        *,
        joined_by: datetime | None = None,
    ) -> Iterator[list[Subscriber]]:
        """Yield the active subscribers due a digest, size at a time."""

    def digest_statuses(
        self, subscriber_ids: Iterable[int], period: str
    ) -> dict[int, DigestStatus]:
        """Return the status of each subscriber's digest for period."""

    @property
    def claims_parts(self) -> bool:
        """Tell whether composers can claim parts of the subscribers."""

    def part_claim(self, part: int, *, wait: bool = False) -> AbstractContextManager[bool]:
        """Hold the claim on one part of the subscribers while composing it; say if held."""

    def mark_interests_changed(self, interest_ids: Iterable[int], now: datetime) -> None:
        """Set interests' changed_at to now."""

    def decided_through(self, subscriber_ids: Iterable[int]) -> dict[int, tuple[int, datetime]]:
        """Return, per subscriber, the arrivals their digests decided and when the last was."""

    def arrivals_through(self, until: datetime) -> int:
        """Return the last arrival all of whose papers recent_papers(..., until) will list."""

    def offered_papers(
        self, subscriber_ids: Iterable[int], paper_ids: Iterable[int]
    ) -> dict[int, set[int]]:
        """Return, per subscriber, which of paper_ids are already in their ledger."""

    def record_digests(self, composed: Sequence[NewDigest], now: datetime) -> list[int | None]:
        """Store composed digests with their ledger rows, each whole or not at all."""

    def refresh_statistics(self) -> None:
        """Update the planner's statistics after composing."""


class SendStore(Protocol):
    """Lease digests to a sender, renew or give back the lease, and mark outcomes."""

    def claim_digests(
        self,
        worker: str,
        limit: int,
        now: datetime,
        lease: timedelta,
        due_by: datetime | None = None,
    ) -> list[StoredDigest]:
        """Lease up to limit digests that are due and load them."""

    def renew_leases(
        self, worker: str, digest_ids: Iterable[int], now: datetime, lease: timedelta
    ) -> set[int]:
        """Extend this worker's leases; return the ids it still holds."""

    def release_leases(self, worker: str, digest_ids: Iterable[int]) -> int:
        """Give back claimed digests that were never attempted."""

    def finish_sent(self, worker: str, sent: Sequence[tuple[int, str]], now: datetime) -> int:
        """Mark digests the server accepted as sent; return how many."""

    def finish_retry(
        self,
        worker: str,
        digest_id: int,
        error: str,
        next_attempt: datetime,
        *,
        unknown: bool,
        now: datetime | None = None,
    ) -> None:
        """Put a digest back for a later attempt."""

    def finish_unconfirmed(self, worker: str, digest_id: int, error: str, now: datetime) -> None:
        """Give up on a digest that may have arrived."""

    def finish_failed(
        self, worker: str, digest_id: int, error: str, hard_bounce: bool, bounce_limit: int
    ) -> bool:
        """Fail a digest for good; return whether its subscriber was suspended."""

    def recover_sent(self, marks: Sequence[tuple[int, str, datetime]]) -> int:
        """Record as sent what a stopped sender's journal says; return how many."""

    def waiting_digests(self) -> int:
        """Return how many digests are pending, unknown or being sent."""


class ChannelStore(VectorStore, Protocol):
    """What composing topic digests and posting to channels need."""

    def recent_papers(self, since: datetime, until: datetime) -> list[Paper]:
        """Return papers first seen in [since, until], newest arrival first."""

    def channels_of(
        self, *, subscriber_id: int | None = None, topic: str | None = None
    ) -> list[Channel]:
        """Return a subscriber's channels, a topic's, or (with neither) every topic's."""

    def has_topic_digest(self, topic: str, period: str) -> bool:
        """Tell whether the topic has its digest of this period."""

    def topic_offered(self, topic: str, paper_ids: Iterable[int]) -> set[int]:
        """Return which of these papers were offered to the topic's channels already."""

    def record_topic_digest(
        self, topic: str, content: DigestContent, offered: Iterable[int], now: datetime
    ) -> int | None:
        """Store a topic's digest of a period with its ledger rows; None if it exists."""

    def claim_posts(
        self, worker: str, limit: int, now: datetime, lease: timedelta, due_by: datetime
    ) -> list[ChannelPost]:
        """Lease up to limit due posts."""

    def start_post(self, post_id: int, worker: str, now: datetime, lease: timedelta) -> bool:
        """Record that an attempt is about to go out; False when the lease was lost."""

    def finish_post_sent(self, post_id: int, worker: str, now: datetime) -> None:
        """Record a post the service took."""

    def finish_post_retry(
        self,
        post_id: int,
        worker: str,
        error: str,
        next_attempt: datetime,
        *,
        unknown: bool,
        now: datetime,
    ) -> None:
        """Put a post back for a later attempt."""

    def finish_post_failed(
        self,
        post_id: int,
        worker: str,
        error: str,
        *,
        suspend: bool,
        failure_limit: int,
        now: datetime,
        counts: bool = True,
        unconfirmed: bool = False,
    ) -> bool:
        """Give a post up for good; say if its channel was suspended."""

    def release_posts(self, worker: str, post_ids: Iterable[int]) -> int:
        """Give back leased posts that were never attempted."""


class ChannelSetupStore(Protocol):
    """What adding a channel needs."""

    def add_channel(
        self,
        kind: ChannelKind,
        label: str,
        url: str,
        now: datetime,
        *,
        subscriber_id: int | None = None,
        topic: str | None = None,
        room: str | None = None,
        secret: str | None = None,
    ) -> Channel:
        """Store a channel of a subscriber or of a topic."""


class JobStore(Protocol):
    """Log the runs of scheduled jobs (notifier run, run-once)."""

    def start_job(self, job: str, host: str, now: datetime) -> int:
        """Record that a scheduled job started; return its run id."""

    def finish_job(self, run_id: int, status: str, detail: str, now: datetime) -> None:
        """Record how a job run ended and what it did."""

    def last_job_runs(self) -> list[JobRun]:
        """Return the latest run of every job, by job name."""


class FeedStore(VectorStore, TaughtStore, Protocol):
    """Read what feeds show: the newest papers and the subscribers with private feeds."""

    def latest_papers(self, limit: int) -> list[Paper]:
        """Return the newest papers by first sight, newest first."""

    def newest_paper_seen_at(self) -> datetime | None:
        """Return when the newest paper was first seen, or None."""

    def subscribers(self, active_only: bool = False) -> list[Subscriber]:
        """Return subscribers with their interests, in id order."""

    def subscriber_by_feed_token(self, feed_token: str) -> Subscriber | None:
        """Return the subscriber whose private feed has this token, or None."""


class ExampleStore(Protocol):
    """Store what teaches an interest: imported example papers."""

    def import_examples(
        self,
        subscriber_id: int,
        interest_id: int,
        entries: Sequence[tuple[str, str]],
        now: datetime,
    ) -> int | None:
        """Add (title, abstract) pairs as positive examples of an interest, all or none."""


class ReportStore(Protocol):
    """Read what notifier status, the admin API and /metrics report."""

    def count_subscribers(self) -> int:
        """Return how many subscribers are stored."""

    def count_papers(self) -> int:
        """Return how many distinct papers are stored."""

    def ingest_runs(self, limit: int = 10) -> list[IngestRun]:
        """Return the latest ingest runs, newest first."""

    def sources_health(self) -> list[SourceState]:
        """Return the state of every source ever fetched, by name."""

    def latest_digests(self) -> list[DigestOutcome]:
        """Return each subscriber's most recent digest outcome."""

    def digest_history(self, subscriber_id: int, limit: int) -> list[DigestOutcome]:
        """Return a subscriber's latest digests, newest first."""

    def digest_page(self, after: int, limit: int, status: str | None = None) -> list[DigestRecord]:
        """Return up to limit digests with ids above after, in id order."""

    def digest_counts(self) -> dict[DigestStatus, int]:
        """Return how many digests are in each status."""

    def last_job_runs(self) -> list[JobRun]:
        """Return the latest run of every job, by job name."""

    def metrics_figures(self, window: timedelta = timedelta(hours=1)) -> MetricsFigures:
        """Return the counts /metrics shows and the recent send latencies."""


if TYPE_CHECKING:

    def _storage_is_every_store(
        storage: Storage,
    ) -> tuple[
        PaperStore,
        SubscriberStore,
        VectorStore,
        DigestStore,
        SendStore,
        JobStore,
        FeedStore,
        ReportStore,
    ]:
        """Return storage as each protocol, so that mypy checks Storage satisfies them all."""
        return storage, storage, storage, storage, storage, storage, storage, storage

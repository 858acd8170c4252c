"""The only orchestrator: ingest, compose, send, feeds and the demo, one function each.

Every function takes its I/O objects and `now`; the CLI and the scheduler call
these and nothing else.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import multiprocessing
import os
import random
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from notifier import collector
from notifier.delivery import Transport
from notifier.delivery.journal import SentJournal
from notifier.delivery.journal import recover as recover_journals
from notifier.delivery.limits import RateLimit
from notifier.diff import decide, lookup_keys
from notifier.digest import Composition, compose
from notifier.errors import (
    DeliveryUnknown,
    ListingError,
    QueryError,
    RecipientRejected,
    ServerUnavailable,
    StorageError,
    TemporaryDeliveryError,
)
from notifier.files import write_atomic
from notifier.ingest import parse_listing, read_file
from notifier.ingest.fetch import Fetched, Fetcher
from notifier.ingest.hf import api_page_items, join_api_pages
from notifier.match import (
    CompiledInterest,
    Decision,
    PaperIndex,
    compile_interest,
    match_interest,
    match_many,
    subscriber_matches,
)
from notifier.matching import (
    Matching,
    attach_vectors,
    candidate_window,
    compile_interests,
    matching_for,
    paper_index,
)
from notifier.models import (
    DigestContent,
    IngestSummary,
    Interest,
    Match,
    OutgoingMessage,
    Paper,
    StoredDigest,
    Subscriber,
)
from notifier.render.email import EmailRenderer
from notifier.render.feed import (
    FEED_STATUSES,
    FeedItem,
    FeedMeta,
    build_feed,
    feed_url,
    private_feed_name,
)
from notifier.schedule import last_slot, resolve
from notifier.settings import Settings, SourceConfig
from notifier.sources import due_sources
from notifier.storage import NewDigest, Payload, Shard, SourceState, StaleDiff, Storage

__all__ = [
    "COMPOSE_BATCH",
    "FEED_STATUSES",
    "ComposedDigest",
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

log = logging.getLogger("notifier.pipeline")

# How many of the newest papers topic and private feeds choose from.
FEED_POOL = 1000


# -- ingest -----------------------------------------------------------------

RACE_RETRIES = 3


def ingest(
    storage: Storage,
    source: str,
    data: bytes,
    now: datetime,
    kind: str = "snapshot",
    *,
    content_type: str | None = None,
    url: str | None = None,
    replay_of: int | None = None,
) -> IngestSummary:
    """Parse, diff and store one listing; a refused listing is logged as a failed run.

    The raw bytes are kept (compressed) with the run, failed or not, so
    `notifier replay` can re-run it; a replay refers to its original instead.
    """
    payload = None if replay_of else Payload(data, url, content_type)
    try:
        try:
            listing = parse_listing(kind, data, source, content_type)
        except ListingError:
            raise
        except Exception as e:
            # A parser's own bug must fail this listing, not the cycle (issue 21);
            # the bytes are kept, so the listing can be replayed once it is fixed.
            raise ListingError(
                source,
                f"could not be read ({type(e).__name__}: {e}); it is kept for "
                "`notifier replay` once the parser is fixed",
            ) from e
    except ListingError as e:
        storage.record_failed_ingest(source, str(e), now, kind, payload)
        e.recorded = True
        raise
    for attempt in range(1, RACE_RETRIES + 1):
        by_key, by_title = storage.papers_for_diff(*lookup_keys(listing))
        changes = decide(by_key, by_title, listing)
        try:
            return storage.record_ingest(
                listing, changes, now, kind=kind, payload=payload, replay_of=replay_of
            )
        except StaleDiff:
            # Another ingest stored one of these papers meanwhile: diff again.
            if attempt == RACE_RETRIES:
                raise
    raise AssertionError("unreachable")


def replay(storage: Storage, run_id: int, now: datetime) -> IngestSummary:
    """Re-run the parse and diff of an earlier ingest from its kept raw bytes."""
    run, payload = storage.payload(run_id)
    return ingest(
        storage,
        run.source,
        payload.data,
        now,
        run.kind or "snapshot",
        content_type=payload.content_type,
        url=payload.url,
        replay_of=run_id,
    )


def resolve_params(params: Mapping[str, str | int], now: datetime) -> dict[str, str | int]:
    """Return query parameters with relative dates ("today", "yesterday") made absolute (UTC)."""
    days = {"today": 0, "yesterday": 1}
    utc = now.astimezone(UTC)
    return {
        k: (utc - timedelta(days=days[v])).date().isoformat() if v in days else v
        for k, v in params.items()
    }


def ingest_source(
    storage: Storage, fetcher: Fetcher, source: SourceConfig, now: datetime
) -> IngestSummary:
    """Fetch one configured source (conditionally) and ingest it, keeping its health.

    A 304 is a quiet success. Validators (ETag, Last-Modified) are kept only
    after a listing was stored, so a listing that failed is fetched whole again.
    """
    previous = storage.source_state(source.name)
    state = SourceState(source.name, source.kind, source.url)
    if previous is not None:
        state = replace(previous, kind=source.kind, url=source.url)
    state = replace(state, last_checked_at=now)
    try:
        if source.url.startswith(("http://", "https://")):
            fetched = _fetch_pages(fetcher, source, state, now)
        else:
            fetched = Fetched(source.url, 200, read_file(source.url, fetcher.max_bytes))
        if fetched.not_modified:
            run = storage.record_unchanged(source.name, source.kind, now)
            summary = IngestSummary(
                source.name,
                run,
                0,
                0,
                0,
                0,
                status="unchanged",
                reason="not modified since the last fetch",
            )
        else:
            summary = ingest(
                storage,
                source.name,
                fetched.data,
                now,
                source.kind,
                content_type=fetched.content_type,
                url=fetched.url,
            )
            state = replace(
                state,
                etag=fetched.etag,
                last_modified=fetched.last_modified,
                last_papers=summary.papers,
            )
    except Exception as e:
        # Whatever one source raises is that source's failed run, counted toward
        # failure_alert_after; the other sources and the cycle go on (issue 21).
        failure = (
            e
            if isinstance(e, ListingError)
            else ListingError(source.name, f"{type(e).__name__}: {e}".removesuffix(": "))
        )
        if not getattr(e, "recorded", False):
            storage.record_failed_ingest(source.name, str(failure), now, source.kind)
        storage.save_source_state(
            replace(
                state,
                last_status="failed",
                last_error=str(failure),
                consecutive_failures=state.consecutive_failures + 1,
            )
        )
        if failure is e:
            raise
        raise failure from e
    storage.save_source_state(
        replace(
            state,
            last_status=summary.status,
            last_error=None,
            last_success_at=now,
            consecutive_failures=0,
        )
    )
    return summary


def _fetch_pages(
    fetcher: Fetcher, source: SourceConfig, state: SourceState, now: datetime
) -> Fetched:
    """Fetch a source; hf-api sources with pages > 1 follow `p` and merge the JSON arrays."""
    params = resolve_params(source.params, now)
    if source.kind != "hf-api" or source.pages == 1:
        return fetcher.fetch(
            source.name,
            source.url,
            params=params,
            etag=state.etag,
            last_modified=state.last_modified,
        )
    pages: list[list[Any]] = []
    first: Fetched | None = None
    for page in range(source.pages):
        fetched = fetcher.fetch(source.name, source.url, params={**params, "p": page})
        first = first or fetched
        items = api_page_items(fetched.data)
        if items is None:
            return fetched  # not an array: the parser reports what is wrong with it
        if not items:
            break  # past the last page
        pages.append(items)
    assert first is not None
    return replace(first, data=join_api_pages(pages), etag=None, last_modified=None)


# -- digests ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComposedDigest:
    """What compose_digests did for one subscriber."""

    subscriber: Subscriber
    content: DigestContent | None
    outcome: str  # created | empty | exists | invalid
    detail: str = ""


def period_of(now: datetime) -> str:
    """Return the digest period a moment falls in (one digest per UTC day for now)."""
    return now.date().isoformat()


# Subscribers composed per transaction: large enough that the per-batch queries
# (statuses, ledger, vectors) are cheap per subscriber, small enough to keep
# memory flat at any number of subscribers.
COMPOSE_BATCH = 1000


def compose_digests(
    storage: Storage,
    settings: Settings,
    now: datetime,
    record: bool = True,
    matching: Matching | None = None,
) -> list[ComposedDigest]:
    """Compose this period's digest for every active subscriber (see iter_composed)."""
    return list(iter_composed(storage, settings, now, record=record, matching=matching))


def iter_composed(
    storage: Storage,
    settings: Settings,
    now: datetime,
    *,
    record: bool = True,
    matching: Matching | None = None,
    up_to_date: list[int] | None = None,
    shard: Shard | None = None,
) -> Iterator[ComposedDigest]:
    """Compose the digest of every active subscriber whose slot is due, a batch at a time.

    Each subscriber's own cadence (or the configured default) says which slot is
    due at now; its period keys the digest, so composing is idempotent and a
    subscriber who already has this period's digest is skipped. With
    record=True each digest and its ledger rows are stored together (a batch is
    one transaction); with record=False nothing is written (dry run). up_to_date,
    when given, receives how many subscribers already had their current digest;
    shard (k, n) limits the run to one of n composing processes.
    """
    matching = matching or matching_for(settings)
    candidates = storage.recent_papers(since=now - candidate_window(settings), until=now)
    run = _ComposeRun(storage, settings, matching, candidates, now)
    newest = max((p.first_seen_at for p in candidates), default=None)
    default = settings.default_cadence
    for schedule, count in storage.schedule_groups(shard):
        try:
            cadence = resolve(default, *schedule)
        except ValueError as e:
            # A stored choice that stopped being valid (a zone removed from tzdata).
            for batch in storage.subscriber_batches(COMPOSE_BATCH, schedule, shard=shard):
                for subscriber in batch:
                    yield ComposedDigest(subscriber, None, "invalid", str(e))
            continue
        slot = last_slot(cadence, now)
        if slot is None:
            continue
        seen = 0
        # Only those who subscribed by the slot's time: the first digest is due at
        # the first slot after subscribing, as status and the pages say (issue 21).
        batches = storage.subscriber_batches(
            COMPOSE_BATCH, schedule, slot.period, newest, shard, joined_by=slot.due_at
        )
        for batch in batches:
            seen += len(batch)
            yield from run.batch(batch, slot.period, record)
        if up_to_date is not None:
            up_to_date.append(count - seen)
    if record and run.recorded:
        storage.refresh_statistics()


# Distinct interests whose decisions one compose run keeps (each holds a few
# arrays as long as the candidate list: ~30 kB for 500 papers).
DECISION_CACHE = 4096

_InterestKey = tuple[str, str | None, str | None, str]


def _interest_key(interest: Interest) -> _InterestKey:
    """Return what an interest's decision depends on: its name and texts."""
    return (interest.name, interest.query, interest.about, interest.sensitivity)


@dataclass(slots=True)
class _Decided:
    """One interest decided against the run's candidates, and the reasons built so far."""

    decision: Decision
    reasons: dict[int, Match] = field(default_factory=dict)


def _shared_explainer(
    index: PaperIndex, decided: Sequence[_Decided]
) -> Callable[[Sequence[Match]], list[Match]]:
    """Return a function giving matches their reasons, each built once per interest and paper."""
    by_name = {d.decision.interest.name: d for d in decided}

    def explain(matches: Sequence[Match]) -> list[Match]:
        explained = []
        for match in matches:
            if match.reason:
                explained.append(match)
                continue
            shared = by_name[match.interest]
            reason = shared.reasons.get(match.paper)
            if reason is None:
                reason = shared.decision.explain(index, [match.paper])[0]
                shared.reasons[match.paper] = reason
            explained.append(reason)
        return explained

    return explain


@dataclass
class _ComposeRun:
    """What every batch of one compose run shares: the candidates, their index, the settings."""

    storage: Storage
    settings: Settings
    matching: Matching
    candidates: list[Paper]
    now: datetime
    recorded: int = 0
    position: dict[int, int] = field(init=False)
    # Subscribers who wrote the same interest share its decision and its reasons:
    # identical text gives an identical query, embedding and verdict. Bounded, so
    # a run where every interest is different keeps its memory flat.
    _decisions: collections.OrderedDict[_InterestKey, _Decided | QueryError] = field(
        init=False, default_factory=collections.OrderedDict
    )

    def __post_init__(self) -> None:
        self.position = {paper.id: k for k, paper in enumerate(self.candidates)}

    def _decide(self, interests: Sequence[Interest]) -> dict[_InterestKey, _Decided | QueryError]:
        """Return the decision of each distinct interest, deciding only those not seen yet."""
        cache = self._decisions
        found: dict[_InterestKey, _Decided | QueryError] = {}
        fresh: dict[_InterestKey, Interest] = {}
        for interest in interests:
            key = _interest_key(interest)
            if key in found or key in fresh:
                continue
            if key in cache:
                cache.move_to_end(key)
                found[key] = cache[key]
            else:
                fresh[key] = interest
        parsed: list[tuple[_InterestKey, Interest, CompiledInterest]] = []
        for key, interest in fresh.items():
            try:
                parsed.append((key, interest, compile_interest(*key)))
            except QueryError as e:
                found[key] = e
        compiled = attach_vectors(
            self.storage, self.matching, [i for _, i, _ in parsed], [c for _, _, c in parsed]
        )
        # One matrix product for the new interests' similarities; reasons only for what is shown.
        decisions = match_many(self.index, compiled, self.matching.params)
        for (key, _, _), decision in zip(parsed, decisions, strict=True):
            found[key] = _Decided(decision)
        for key in fresh:
            cache[key] = found[key]
        while len(cache) > DECISION_CACHE:
            cache.popitem(last=False)
        return found

    @functools.cached_property
    def index(self) -> PaperIndex:
        """Return the candidates' index, built on first use: most daemon runs find no one due."""
        return paper_index(self.storage, self.matching, self.candidates)

    def batch(
        self, batch: Sequence[Subscriber], period: str, record: bool
    ) -> Iterator[ComposedDigest]:
        """Compose (and with record, store) one batch of subscribers' digests for period."""
        with collector.paused():
            done = self._compose_batch(batch, period, record)
        for subscriber in batch:
            yield done[subscriber.id]

    def _compose_batch(
        self, batch: Sequence[Subscriber], period: str, record: bool
    ) -> dict[int, ComposedDigest]:
        """Compose (and with record, store) one batch; return each subscriber's outcome by id."""
        storage, settings, index = self.storage, self.settings, self.index
        ids = [s.id for s in batch]
        statuses = storage.digest_statuses(ids, period) if record else {}
        offered = storage.offered_papers(ids, self.position)
        done: dict[int, ComposedDigest] = {}
        decided = self._decide([i for s in batch for i in s.interests])
        composed: list[tuple[Subscriber, Composition]] = []
        for subscriber in batch:
            if statuses.get(subscriber.id) not in (None, "empty"):
                done[subscriber.id] = ComposedDigest(
                    subscriber, None, "exists", f"already composed for {period}"
                )
                continue
            mine = [decided[_interest_key(i)] for i in subscriber.interests]
            if failed := next((d for d in mine if isinstance(d, QueryError)), None):
                # Stored queries were valid when saved; one bad one must not stop the others.
                done[subscriber.id] = ComposedDigest(subscriber, None, "invalid", str(failed))
                continue
            shared = [d for d in mine if isinstance(d, _Decided)]
            skip = frozenset(offered.get(subscriber.id, ()))
            matches = subscriber_matches(
                [d.decision for d in shared], {self.position[i] for i in skip}
            )
            composition = compose(
                subscriber.id,
                period,
                interests=[i.name for i in subscriber.interests],
                matches=matches,
                papers=self.candidates,
                already_offered=skip,
                candidates=len(self.candidates),
                max_papers=subscriber.max_papers or settings.max_papers,
                explain=_shared_explainer(index, shared),
            )
            composed.append((subscriber, composition))
        stored: list[int | None] = [0] * len(composed)
        if record:
            stored = storage.record_digests(
                [
                    NewDigest(
                        c.content,
                        c.overflow,
                        make_msgid(idstring=f"digest.{period}", domain=settings.sender_domain),
                        send_empty=subscriber.empty_note,
                    )
                    for subscriber, c in composed
                ],
                self.now,
            )
        self.recorded += sum(1 for digest_id in stored if digest_id is not None)
        for (subscriber, composition), digest_id in zip(composed, stored, strict=True):
            content = composition.content
            if digest_id is None:
                done[subscriber.id] = ComposedDigest(
                    subscriber, None, "exists", "composed meanwhile"
                )
            else:
                outcome = "empty" if content.is_empty else "created"
                done[subscriber.id] = ComposedDigest(subscriber, content, outcome, content.reason)
        return done


@dataclass
class SendReport:
    """What a send run did."""

    sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    deferred: list[tuple[str, str]] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)
    # Unknown until the deadline, then given up: they may have arrived.
    unconfirmed: list[tuple[str, str]] = field(default_factory=list)
    suspended: list[str] = field(default_factory=list)
    recovered: int = 0  # marks applied from the journals of senders that died
    # Digests recorded as sent: the count to report. A message another worker took
    # over is never sent, and were it sent its mark would not count (issue 21).
    recorded: int = 0
    taken_over: int = 0  # claimed, then lost to another worker before going out


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again, when to give up, and how long a claim lasts."""

    base: float = 60.0
    cap: float = 3600.0
    deadline: timedelta = timedelta(days=3)
    lease: timedelta = timedelta(minutes=5)
    bounce_limit: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """Return the policy the settings describe."""
        return cls(
            settings.retry_base,
            settings.retry_max,
            settings.retry_deadline,
            timedelta(seconds=settings.lease_seconds),
            settings.hard_bounce_limit,
        )

    def next_attempt(self, attempts: int, now: datetime) -> datetime:
        """Return when to try again: exponential backoff with jitter, capped."""
        wait = min(self.cap, self.base * 2 ** max(attempts - 1, 0))
        return now + timedelta(seconds=wait * random.uniform(0.5, 1.5))


class _Leases:
    """Keep a worker's leases on a claimed batch alive, and say which it still holds."""

    def __init__(
        self,
        storage: Storage,
        worker: str,
        clock: Callable[[], datetime],
        lease: timedelta,
        claimed: Sequence[StoredDigest],
    ) -> None:
        self._storage, self._worker, self._clock, self._lease = storage, worker, clock, lease
        now = clock()
        self._until = {d.id: now + lease for d in claimed}  # as last claimed or renewed

    def done(self, digest_id: int) -> None:
        """Stop renewing a digest whose outcome is recorded (or being recorded)."""
        self._until.pop(digest_id, None)

    async def holds(self, digest_id: int) -> bool:
        """Return whether the digest may go on the wire now: a third of its lease is
        left, renewing it first when it is not.
        """
        until = self._until.get(digest_id)
        if until is None:
            return False
        if until - self._clock() >= self._lease / 3:
            return True
        await self._renew([digest_id])
        return digest_id in self._until

    @contextlib.asynccontextmanager
    async def renewed(self) -> AsyncIterator[None]:
        """Renew every lease still needed each third of a lease while the block runs."""

        async def keep_renewing() -> None:
            while True:
                await asyncio.sleep(self._lease.total_seconds() / 3)
                try:
                    await self._renew(list(self._until))
                except StorageError as e:
                    # Not fatal here: a digest whose lease runs short is renewed again
                    # right before it is sent (holds), and is not sent if that fails.
                    log.warning("could not renew leases: %s", e)

        renewing = asyncio.get_running_loop().create_task(keep_renewing())
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _renew(self, ids: list[int]) -> None:
        """Extend the leases on ids; forget those another worker took over."""
        if not ids:
            return
        now = self._clock()
        held = await asyncio.to_thread(
            self._storage.renew_leases, self._worker, ids, now, self._lease
        )
        for digest_id in ids:
            if digest_id in held:
                self._until[digest_id] = now + self._lease
            else:
                self._until.pop(digest_id, None)


class _Marks:
    """Record accepted messages as sent on a worker thread, in group commits.

    A commit takes every mark waiting when it starts, in one transaction; marks
    that arrive meanwhile wait for the next one. Without a journal nothing waits
    for a count or a timer, so an accepted message is recorded within about one
    commit while the connections go on sending. With one (delivery/journal.py),
    each mark is on disk already, so marks gather until `group` are waiting or
    `hold` seconds have passed: a transaction for dozens of messages, not one
    (docs/design.md, issue 5).
    """

    def __init__(
        self,
        storage: Storage,
        worker: str,
        clock: Callable[[], datetime],
        on_error: Callable[[Exception], None],
        *,
        hold: float = 0.0,
        group: int = 1,
    ) -> None:
        self._storage, self._worker, self._clock = storage, worker, clock
        self._on_error = on_error
        self._hold, self._group = hold, group
        self._waiting: list[tuple[int, str]] = []
        self._done: asyncio.Future[bool] | None = None  # settles when _waiting is committed
        self._committer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # set: stop gathering, commit now
        self.failed = False
        self.recorded = 0  # digests the database marked sent (held by this worker)

    def add(self, digest_id: int, reply: str) -> asyncio.Future[bool]:
        """Queue a mark; return a future: True once it is committed, False if it never will be."""
        loop = asyncio.get_running_loop()
        if self.failed:
            never: asyncio.Future[bool] = loop.create_future()
            never.set_result(False)
            return never
        if self._done is None:
            self._done = loop.create_future()
        done = self._done
        self._waiting.append((digest_id, reply))
        if len(self._waiting) >= self._group:
            self._wake.set()
        if self._committer is None:
            self._committer = loop.create_task(self._commit())
        return done

    async def flush(self) -> None:
        """Return once every queued mark is committed, or has failed (on_error was called)."""
        while self._committer is not None:
            self._wake.set()
            # Shielded: a cancelled caller must not cancel the commit that records it.
            await asyncio.shield(self._committer)

    async def _commit(self) -> None:
        """Commit the waiting marks, group after group, until none is waiting."""
        try:
            while self._waiting:
                if self._hold and not self._wake.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._hold)
                self._wake.clear()
                group, done = self._waiting, self._done
                self._waiting, self._done = [], None
                assert done is not None
                try:
                    self.recorded += await asyncio.to_thread(
                        self._storage.finish_sent, self._worker, group, self._clock()
                    )
                except Exception as e:
                    self._fail(e, done)
                    return
                done.set_result(True)
        finally:
            self._committer = None

    def _fail(self, error: Exception, done: asyncio.Future[bool]) -> None:
        """Settle every waiting mark as never recorded and report why, once."""
        self.failed = True
        for pending in (done, self._done):
            if pending is not None:
                pending.set_result(False)
        self._waiting, self._done = [], None
        self._on_error(error)


# With a journal, marks are committed when this many are waiting, or after this long.
JOURNAL_GROUP = 64
JOURNAL_HOLD = 0.05


@dataclass
class _Delivery:
    """One worker's delivery run: claims, lanes, and the outcome of every message."""

    storage: Storage
    renderer: EmailRenderer
    worker: str
    clock: Callable[[], datetime]
    policy: RetryPolicy
    limit: RateLimit | None
    stop: asyncio.Event
    on_progress: Callable[[int], None] | None
    journal: SentJournal | None = None
    report: SendReport = field(default_factory=SendReport)
    fatal: list[BaseException] = field(default_factory=list)
    marks: _Marks = field(init=False)
    # Set when the run fails. Not stop itself: that event is the caller's (the
    # daemon's, across runs), and a failed run must not stop the daemon.
    halted: bool = False

    def __post_init__(self) -> None:
        if self.journal is None:
            self.marks = _Marks(self.storage, self.worker, self.clock, self._marks_failed)
        else:
            self.marks = _Marks(
                self.storage,
                self.worker,
                self.clock,
                self._marks_failed,
                hold=JOURNAL_HOLD,
                group=JOURNAL_GROUP,
            )

    def _marks_failed(self, error: Exception) -> None:
        """Stop the run because accepted messages cannot be marked sent, saying what follows."""
        if self.journal is None:
            later = "they stay claimed and go out again (same Message-ID) once their lease expires"
        else:
            later = f"they are kept in {self.journal.path} and the next send records them"
        self._abort(StorageError(f"cannot record accepted messages as sent: {error}; {later}"))

    def _abort(self, error: BaseException) -> None:
        """Stop the run: lanes finish the message they are on, then error is raised."""
        self.fatal.append(error)
        self.halted = True

    def _stopping(self) -> bool:
        """Return whether to take no more messages: stop was set, or the run failed."""
        return self.halted or self.stop.is_set()

    async def run(self, transports: Sequence[Transport], batch: int) -> SendReport:
        """Claim and send batches until nothing is due or stop is set."""
        started = self.clock()
        try:
            async with contextlib.AsyncExitStack() as stack:
                for transport in transports:
                    # A dead server fails here, before anything is claimed.
                    await stack.enter_async_context(transport)
                batch = self._claim_size(batch, len(transports))
                while not self._stopping():
                    claimed = self.storage.claim_digests(
                        self.worker, batch, self.clock(), self.policy.lease, due_by=started
                    )
                    if not claimed:
                        break
                    await self._drain(transports, claimed)
        finally:
            # A run ends only once every message the server accepted is recorded as
            # sent; the journal goes once the database has all of it.
            await self.marks.flush()
            self.report.recorded = self.marks.recorded
            if self.journal is not None:
                self.journal.close(delete=not self.marks.failed)
        if self.fatal:
            raise self.fatal[0]
        return self.report

    def _claim_size(self, batch: int, lanes: int) -> int:
        """Return how many digests to claim at once: no more than half a lease's worth
        at the configured rate, so leases are rarely in need of renewal (issue 21).
        """
        rate = self.limit.per_second if self.limit is not None else None
        if rate is None:
            return batch
        within = int(rate * self.policy.lease.total_seconds() / 2)
        return max(lanes, min(batch, within))

    async def _drain(self, transports: Sequence[Transport], claimed: list[StoredDigest]) -> None:
        """Send a claimed batch, one lane per transport; give back what was never sent.

        Leases are renewed every third of a lease while the batch is sent, and a
        digest goes on the wire only while its lease has a third of its length
        left; a digest another worker took over is never sent (issue 21).
        """
        queue = collections.deque(claimed)
        tried: set[int] = set()
        leases = _Leases(self.storage, self.worker, self.clock, self.policy.lease, claimed)

        def rendered(digest: StoredDigest) -> OutgoingMessage:
            """Return digest as the message to send now."""
            return self.renderer.render(
                digest.content, digest.subscriber, digest.message_id, self.clock()
            )

        def render_next() -> tuple[StoredDigest, OutgoingMessage] | None:
            """Take the next digest and render it, or leave it queued if that fails:
            its error is then raised in its turn, after the message before it went out.
            """
            digest = queue.popleft()
            try:
                return digest, rendered(digest)
            except Exception:
                queue.appendleft(digest)
                return None

        async def lane(transport: Transport) -> None:
            marked: asyncio.Future[bool] | None = None  # this lane's last mark
            # The lane's next message, rendered before this one is sent, so its
            # envelope can go out with this one's data (delivery/smtp.py). Until its
            # own send it is not tried: a lane that stops gives it back.
            upcoming: tuple[StoredDigest, OutgoingMessage] | None = None
            try:
                while not self._stopping():
                    if upcoming is not None:
                        (digest, message), upcoming = upcoming, None
                    elif queue:
                        digest = queue.popleft()
                        message = rendered(digest)
                    else:
                        break
                    if queue:
                        upcoming = render_next()
                    gate = await self._gate(digest.id, marked, leases)
                    if gate == "stop":
                        return  # not on the wire yet: given back below
                    if gate == "skip":
                        continue  # another worker holds it now: never sent here
                    tried.add(digest.id)
                    following = upcoming[1] if upcoming is not None else None
                    marked = await self._send(transport, digest, message, following)
                    leases.done(digest.id)
            except BaseException:
                self.halted = True  # the other lanes finish the message they are on
                raise

        try:
            # Every lane ends before the leases are given back.
            async with leases.renewed():
                outcomes = await asyncio.gather(
                    *(lane(t) for t in transports), return_exceptions=True
                )
        finally:
            if self.journal is None:
                # Marks first: a lease is given back only once every message the
                # server accepted is recorded as sent.
                await self.marks.flush()
            unsent = [d.id for d in claimed if d.id not in tried]
            self.storage.release_leases(self.worker, unsent)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _gate(
        self, digest_id: int, marked: asyncio.Future[bool] | None, leases: _Leases
    ) -> str:
        """Wait until a lane's next message may go on the wire; return send, skip or stop."""
        if self.limit is not None:
            await self.limit.wait()
        # Without a journal a lane sends again only once its last mark is committed
        # (which rendering the next message overlapped), so a killed sender has at
        # most one accepted but unrecorded message per connection. With one, that
        # message is in the journal already.
        if marked is not None and self.journal is None and not await marked:
            return "stop"  # marks cannot be recorded: the run stops
        if self._stopping():
            return "stop"
        # Checked after the rate limit's wait, right before the wire (issue 21).
        if not await leases.holds(digest_id):
            self.report.taken_over += 1
            return "skip"
        return "send"

    async def _send(
        self,
        transport: Transport,
        digest: StoredDigest,
        message: OutgoingMessage,
        following: OutgoingMessage | None,
    ) -> asyncio.Future[bool] | None:
        """Send one digest (following: the lane's next message) and record what happened
        to it; return its mark if it was accepted.
        """
        storage, report, email = self.storage, self.report, digest.subscriber.email
        marked = None
        try:
            reply = await transport.send(message, following)
        except RecipientRejected as e:
            bounced = storage.finish_failed(
                self.worker, digest.id, str(e), True, self.policy.bounce_limit
            )
            report.failed.append((email, str(e)))
            if bounced:
                report.suspended.append(email)
        except DeliveryUnknown as e:
            now = self.clock()
            if now - digest.created_at > self.policy.deadline:
                self._give_up_unconfirmed(digest, str(e))
            else:
                later = self.policy.next_attempt(digest.attempts, now)
                storage.finish_retry(self.worker, digest.id, str(e), later, unknown=True, now=now)
                report.unknown.append((email, str(e)))
        except TemporaryDeliveryError as e:
            self._retry_or_give_up(digest, str(e))
        except ServerUnavailable as e:
            storage.finish_retry(self.worker, digest.id, str(e), self.clock(), unknown=False)
            self._abort(e)
        else:
            # One mark per accepted message: a sender killed between the server's
            # "250" and the record resends only those messages (same Message-ID).
            # The journal line is the record when there is one; the database's mark
            # follows in a group commit off the event loop (_Marks), which skips the
            # disk flush (storage.finish_sent).
            if self.journal is not None:
                try:
                    self.journal.record(digest.id, reply, self.clock())
                except StorageError as e:
                    self._abort(e)
            marked = self.marks.add(digest.id, reply)
            report.sent.append(email)
        if self.on_progress is not None:
            self.on_progress(1)
        return marked

    def _give_up_unconfirmed(self, digest: StoredDigest, error: str) -> None:
        """End the retries of a digest that may have arrived, saying so (never "failed")."""
        gave_up = f"outcome unknown, gave up after {digest.attempts} tries: {error}"
        self.storage.finish_unconfirmed(self.worker, digest.id, gave_up, self.clock())
        self.report.unconfirmed.append((digest.subscriber.email, gave_up))

    def _retry_or_give_up(self, digest: StoredDigest, error: str) -> None:
        """Schedule another attempt, or end the digest once the deadline has passed:
        unconfirmed when an earlier attempt may have arrived, else failed.
        """
        now, email = self.clock(), digest.subscriber.email
        if now - digest.created_at > self.policy.deadline:
            if digest.unknown_since is not None:
                self._give_up_unconfirmed(digest, error)
                return
            gave_up = f"gave up after {digest.attempts} attempts: {error}"
            self.storage.finish_failed(
                self.worker, digest.id, gave_up, False, self.policy.bounce_limit
            )
            self.report.failed.append((email, gave_up))
            return
        later = self.policy.next_attempt(digest.attempts, now)
        self.storage.finish_retry(self.worker, digest.id, error, later, unknown=False)
        self.report.deferred.append((email, error))


async def deliver(
    storage: Storage,
    renderer: EmailRenderer,
    transports: Sequence[Transport],
    *,
    worker: str,
    clock: Callable[[], datetime],
    policy: RetryPolicy | None = None,
    limit: RateLimit | None = None,
    stop: asyncio.Event | None = None,
    batch: int = 100,
    on_progress: Callable[[int], None] | None = None,
    journal_dir: Path | None = None,
) -> SendReport:
    """Claim due digests and send them over the transports (one lane each) until none is left.

    A digest is marked sent only after the server accepted it, on a worker
    thread (every mark waiting in one transaction), and before the run ends;
    marks that cannot be committed stop the run with StorageError, those
    messages still claimed. With journal_dir each accepted message is first
    written to this run's journal there, marks are committed in groups, and
    the journals of runs that died are applied before anything is claimed
    (delivery/journal.py). A refused recipient (5xx)
    fails that digest and counts a hard bounce; 4xx and lost connections are
    retried with backoff until the deadline; a connection lost after the data
    went out makes the digest "unknown", retried with the same Message-ID. An
    unreachable server stops the run (ServerUnavailable) with everything not
    accepted still due. Setting stop finishes the messages in flight and gives
    the rest back.
    """
    recovered = 0
    journal = None
    if journal_dir is not None:
        recovered = recover_journals(journal_dir, storage.recover_sent)
        journal = SentJournal(journal_dir, worker)
    run = _Delivery(
        storage,
        renderer,
        worker,
        clock,
        policy or RetryPolicy(),
        limit,
        stop or asyncio.Event(),
        on_progress,
        journal,
    )
    run.report.recovered = recovered
    return await run.run(transports, batch)


async def send_pending(
    storage: Storage,
    renderer: EmailRenderer,
    transport: Transport,
    clock: Callable[[], datetime],
    on_progress: Callable[[int, int], None] | None = None,
) -> SendReport:
    """Send every due digest over one transport (the demo, tests and small runs)."""
    done = 0

    def progress(step: int) -> None:
        nonlocal done
        done += step
        if on_progress is not None:
            on_progress(done, 0)

    return await deliver(
        storage, renderer, [transport], worker=worker_name(), clock=clock, on_progress=progress
    )


def worker_name() -> str:
    """Return a name that is unique to this sending process and run."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def preview_digests(
    storage: Storage, settings: Settings, renderer: EmailRenderer, outbox: Transport, now: datetime
) -> list[ComposedDigest]:
    """Compose digests without recording them and write them to the outbox (dry run)."""
    composed = compose_digests(storage, settings, now, record=False)
    async with outbox:
        for item in composed:
            if item.content is not None and not item.content.is_empty:
                message_id = (
                    f"<dry-run.{item.content.period}.{item.subscriber.id}@{settings.sender_domain}>"
                )
                await outbox.send(renderer.render(item.content, item.subscriber, message_id, now))
    return composed


# -- the cycle: what `notifier run` schedules and `notifier run-once` does once --


def ingest_due(
    storage: Storage,
    fetcher: Fetcher,
    settings: Settings,
    now: datetime,
) -> tuple[list[IngestSummary], list[str]]:
    """Poll the configured sources that are due; return their summaries and errors.

    A failing source is recorded and reported; the others are still polled.
    """
    due = due_sources(settings.sources, storage.sources_health(), now)
    summaries, errors = [], []
    for source in due:
        try:
            summaries.append(ingest_source(storage, fetcher, source, now))
        except ListingError as e:
            errors.append(str(e))
    return summaries, errors


def compose_due(  # noqa: PLR0917
    storage: Storage,
    settings: Settings,
    now: datetime,
    matching: Matching | None = None,
    stopping: Callable[[], bool] = lambda: False,
    shard: Shard | None = None,
) -> collections.Counter[str]:
    """Compose every digest that is due; return how many of each outcome.

    stopping is checked between subscribers: each batch is committed before its
    subscribers are reported, so stopping early loses nothing and the rest is
    composed by the next run. With settings.compose_workers > 1 (and no shard
    given) the subscribers are split among that many processes.
    """
    forgotten = 0
    if shard is None:
        # Housekeeping of the main process: sign-ups never confirmed are not kept.
        forgotten = storage.forget_unconfirmed(now - timedelta(days=settings.unconfirmed_days))
    if shard is None and settings.compose_workers > 1:
        outcomes = _compose_in_processes(storage, settings, now, matching)
    else:
        outcomes = _compose_here(storage, settings, now, matching, stopping, shard)
    if forgotten:
        outcomes["unconfirmed sign-ups forgotten"] = forgotten
    return outcomes


def _compose_here(  # noqa: PLR0917
    storage: Storage,
    settings: Settings,
    now: datetime,
    matching: Matching | None,
    stopping: Callable[[], bool],
    shard: Shard | None,
) -> collections.Counter[str]:
    """Compose what is due in this process (one shard of it, with shard)."""
    outcomes: collections.Counter[str] = collections.Counter()
    up_to_date: list[int] = []
    for item in iter_composed(
        storage, settings, now, matching=matching, up_to_date=up_to_date, shard=shard
    ):
        outcomes[item.outcome] += 1
        if stopping():
            break
    outcomes["up to date"] = sum(up_to_date)
    return outcomes


def _compose_in_processes(
    storage: Storage, settings: Settings, now: datetime, matching: Matching | None
) -> collections.Counter[str]:
    """Compose with compose_workers processes, each on its shard of the subscribers.

    Matching is CPU-bound Python, so processes, not threads. The new papers are
    embedded here first, once; the workers then read the stored vectors.
    """
    candidates = storage.recent_papers(since=now - candidate_window(settings), until=now)
    paper_index(storage, matching or matching_for(settings), candidates)
    workers = settings.compose_workers
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(workers) as pool:
        shards = [(settings.model_dump(), now, (k, workers)) for k in range(workers)]
        results = pool.starmap(_compose_shard, shards)
    total: collections.Counter[str] = collections.Counter()
    for outcome in results:
        total.update(outcome)
    return total


def _compose_shard(
    settings_data: dict[str, Any], now: datetime, shard: Shard
) -> collections.Counter[str]:
    """Compose one shard in a worker process (the target of _compose_in_processes)."""
    settings = Settings(**settings_data)
    storage = Storage(settings.database)
    try:
        return compose_due(storage, settings, now, shard=shard)
    finally:
        storage.close()


def describe_outcomes(outcomes: Mapping[str, int]) -> str:
    """Return composing outcomes as "2 created, 1 empty, 40 up to date"."""
    return ", ".join(f"{n} {name}" for name, n in outcomes.items() if n) or "nobody due"


def describe_report(report: SendReport) -> str:
    """Return a send report as "sent 3, failed 0, deferred 0, unknown 0": digests, each once."""
    counts = (report.recorded, len(report.failed), len(report.deferred), len(report.unknown))
    described = "sent {}, failed {}, deferred {}, unknown {}".format(*counts)
    if report.unconfirmed:
        described += f", given up unconfirmed {len(report.unconfirmed)}"
    if report.taken_over:
        described += f" ({report.taken_over} whose lease ran out: left to the next sender)"
    if report.recovered:
        described += f" ({report.recovered} sent by a stopped sender recorded from its journal)"
    return described


# -- feeds ------------------------------------------------------------------


def build_feeds(
    storage: Storage, settings: Settings, now: datetime, matching: Matching | None = None
) -> list[Path]:
    """Write the all-papers, topic and private subscriber feeds; return the files written."""
    matching = matching or matching_for(settings)
    pool = storage.latest_papers(FEED_POOL)
    index = paper_index(storage, matching, pool)
    root = settings.feeds_dir
    written = _write_feed(
        root,
        "all",
        _meta(settings, "all", "notifier: all new papers", "Every new paper notifier has seen."),
        [_item(p, "") for p in pool[: settings.feed_items]],
        now,
    )
    for topic in settings.topics:
        interest = Interest(topic.name, topic.query, topic.about, topic.sensitivity)
        name = f"topics/{topic.slug}"
        written += _write_feed(
            root,
            name,
            _meta(settings, name, f"notifier: {topic.name}", f"New papers on {topic.name}."),
            _matching_items(
                index,
                pool,
                compile_interests(storage, matching, [interest]),
                matching,
                settings.feed_items,
            ),
            now,
        )
    keep = set()
    # A paused or suspended subscriber stops getting email, not their feed.
    for subscriber in (s for s in storage.subscribers() if s.status in FEED_STATUSES):
        keep.add(subscriber.feed_token)
        written += _write_private_feed(
            storage, settings, subscriber, matching=matching, pool=pool, index=index, now=now
        )
    # A subscriber who left must not keep a live private feed. Dot files are the
    # temporary files of a concurrent run (two run-once at once) mid-write.
    for stale in (root / "subscribers").glob("[!.]*.*"):
        if stale.stem not in keep:
            stale.unlink(missing_ok=True)
    return written


def build_private_feed(
    storage: Storage,
    settings: Settings,
    subscriber: Subscriber,
    now: datetime,
    matching: Matching | None = None,
) -> list[Path]:
    """Write one subscriber's private feed now; return the files written.

    The web side calls it when a feed is asked for before the next build_feeds
    (right after confirming) or has fallen behind the papers stored.
    """
    matching = matching or matching_for(settings)
    pool = storage.latest_papers(FEED_POOL)
    index = paper_index(storage, matching, pool)
    return _write_private_feed(
        storage, settings, subscriber, matching=matching, pool=pool, index=index, now=now
    )


def _write_private_feed(
    storage: Storage,
    settings: Settings,
    subscriber: Subscriber,
    *,
    matching: Matching,
    pool: Sequence[Paper],
    index: PaperIndex,
    now: datetime,
) -> list[Path]:
    """Write the private feed of one subscriber from an indexed pool of papers."""
    try:
        interests = compile_interests(storage, matching, subscriber.interests)
    except QueryError:
        interests = []
    title = f"notifier: papers for {subscriber.name or subscriber.email}"
    name = private_feed_name(subscriber.feed_token)
    return _write_feed(
        settings.feeds_dir,
        name,
        _meta(settings, name, title, "New papers matching your interests."),
        _matching_items(index, pool, interests, matching, settings.feed_items),
        now,
    )


def _write_feed(
    root: Path, name: str, meta: FeedMeta, items: Sequence[FeedItem], now: datetime
) -> list[Path]:
    """Write the RSS and Atom files of one feed atomically; return their paths."""
    rss, atom = build_feed(meta, items, empty_date=now)
    written = []
    for suffix, data in ((".rss", rss), (".atom", atom)):
        path = root / f"{name}{suffix}"
        write_atomic(path, data)
        written.append(path)
    return written


def _meta(settings: Settings, name: str, title: str, description: str) -> FeedMeta:
    """Return the metadata of the feed published at feeds/<name>."""
    url = feed_url(settings.base_url, name)
    return FeedMeta(
        feed_id=f"{url}.atom",
        title=title,
        description=description,
        link=settings.base_url,
        self_base=url,
        author=settings.sender_name,
    )


def _item(paper: Paper, reason: str) -> FeedItem:
    """Return the feed entry of a paper, with why it was picked when there is a reason."""
    summary = f"Why: {reason}. {paper.abstract}" if reason else paper.abstract
    return FeedItem(
        guid=paper.guid,
        title=paper.title,
        link=paper.url,
        summary=summary,
        published=paper.first_seen_at,
        updated=paper.updated_at,
    )


def _matching_items(
    index: PaperIndex,
    pool: Sequence[Paper],
    interests: Sequence[CompiledInterest],
    matching: Matching,
    limit: int,
) -> list[FeedItem]:
    """Return feed items of the newest papers matching any interest, with the best reason."""
    best: dict[int, Match] = {}
    for interest in interests:
        for match in match_interest(index, interest, matching.params):
            if match.paper not in best or match.score > best[match.paper].score:
                best[match.paper] = match
    newest_first = sorted(best)[:limit]  # positions follow the pool's newest-first order
    return [_item(pool[i], f"{best[i].interest}: {best[i].reason}") for i in newest_first]

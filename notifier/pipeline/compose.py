"""Compose: each due subscriber's digest from the recent papers, recorded with its ledger."""

from __future__ import annotations

import collections
import functools
import multiprocessing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import make_msgid
from typing import Any

from notifier import collector
from notifier.delivery import Transport
from notifier.digest import compose
from notifier.errors import QueryError
from notifier.match import (
    CompiledInterest,
    Decision,
    compile_interest,
    match_many,
    subscriber_matches,
)
from notifier.matching import Matching, attach_vectors, candidate_window, matching_for, paper_index
from notifier.models import (
    ComposedDigest,
    ComposeOutcome,
    ComposeResult,
    DigestStatus,
    Interest,
    Match,
    NewDigest,
    Paper,
    Shard,
    Subscriber,
)
from notifier.paper_index import PaperIndex
from notifier.render.email import EmailRenderer
from notifier.schedule import last_slot, resolve
from notifier.settings import Settings
from notifier.storage import Storage
from notifier.storage.protocols import DigestStore


def period_of(now: datetime) -> str:
    """Return the digest period a moment falls in (one digest per UTC day for now)."""
    return now.date().isoformat()


# Subscribers composed per transaction: large enough that the per-batch queries
# (statuses, ledger, vectors) are cheap per subscriber, small enough to keep
# memory flat at any number of subscribers.
COMPOSE_BATCH = 1000


def compose_digests(
    storage: DigestStore,
    settings: Settings,
    now: datetime,
    record: bool = True,
    matching: Matching | None = None,
) -> list[ComposeResult]:
    """Compose this period's digest for every active subscriber (see iter_composed)."""
    return list(iter_composed(storage, settings, now, record=record, matching=matching))


def iter_composed(
    storage: DigestStore,
    settings: Settings,
    now: datetime,
    *,
    record: bool = True,
    matching: Matching | None = None,
    up_to_date: list[int] | None = None,
    shard: Shard | None = None,
) -> Iterator[ComposeResult]:
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
                    yield ComposeResult(subscriber, None, ComposeOutcome.INVALID, str(e))
            continue
        slot = last_slot(cadence, now)
        if slot is None:
            continue
        seen = 0
        # Only those who subscribed by the slot's time: the first digest is due at
        # the first slot after subscribing, as status and the pages say.
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

    storage: DigestStore
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
    ) -> Iterator[ComposeResult]:
        """Compose (and with record, store) one batch of subscribers' digests for period."""
        with collector.paused():
            done = self._compose_batch(batch, period, record)
        for subscriber in batch:
            yield done[subscriber.id]

    def _compose_batch(
        self, batch: Sequence[Subscriber], period: str, record: bool
    ) -> dict[int, ComposeResult]:
        """Compose (and with record, store) one batch; return each subscriber's outcome by id."""
        storage, settings, index = self.storage, self.settings, self.index
        ids = [s.id for s in batch]
        statuses = storage.digest_statuses(ids, period) if record else {}
        offered = storage.offered_papers(ids, self.position)
        done: dict[int, ComposeResult] = {}
        decided = self._decide([i for s in batch for i in s.interests])
        composed: list[tuple[Subscriber, ComposedDigest]] = []
        for subscriber in batch:
            if statuses.get(subscriber.id) not in (None, DigestStatus.EMPTY):
                done[subscriber.id] = ComposeResult(
                    subscriber, None, ComposeOutcome.EXISTS, f"already composed for {period}"
                )
                continue
            mine = [decided[_interest_key(i)] for i in subscriber.interests]
            if failed := next((d for d in mine if isinstance(d, QueryError)), None):
                # Stored queries were valid when saved; one bad one must not stop the others.
                done[subscriber.id] = ComposeResult(
                    subscriber, None, ComposeOutcome.INVALID, str(failed)
                )
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
                done[subscriber.id] = ComposeResult(
                    subscriber, None, ComposeOutcome.EXISTS, "composed meanwhile"
                )
            else:
                outcome = ComposeOutcome.EMPTY if content.is_empty else ComposeOutcome.CREATED
                done[subscriber.id] = ComposeResult(subscriber, content, outcome, content.reason)
        return done


async def preview_digests(
    storage: DigestStore,
    settings: Settings,
    renderer: EmailRenderer,
    outbox: Transport,
    now: datetime,
) -> list[ComposeResult]:
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


def compose_due(  # noqa: PLR0917
    storage: DigestStore,
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
    storage: DigestStore,
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
    storage: DigestStore, settings: Settings, now: datetime, matching: Matching | None
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


def digest_json(item: ComposeResult) -> dict[str, Any]:
    """Return what composing did for one subscriber as JSON-ready data (`digest --json`)."""
    content = item.content
    data: dict[str, Any] = {"subscriber": item.subscriber.email, "outcome": item.outcome}
    if content is None:
        return data | {"detail": item.detail}
    return data | {
        "period": content.period,
        "reason": content.reason,
        "more": content.more,
        "sections": [
            {
                "interest": s.interest,
                "papers": [
                    {
                        "title": p.title,
                        "url": p.url,
                        "score": p.score,
                        "reason": p.reason,
                        "also_matches": list(p.also_matches),
                    }
                    for p in s.papers
                ],
            }
            for s in content.sections
        ],
    }

"""Compose: each due subscriber's digest from the recent papers, recorded with its ledger."""

from __future__ import annotations

import bisect
import collections
import contextlib
import functools
import multiprocessing
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import make_msgid
from typing import Any

from notifier import collector
from notifier.delivery import Transport
from notifier.digest import compose
from notifier.errors import QueryError
from notifier.feedback import taught
from notifier.match import (
    CompiledInterest,
    Decision,
    compile_interest,
    match_many,
    subscriber_matches,
)
from notifier.matching import (
    EmbedBudget,
    Matching,
    attach_vectors,
    candidate_window,
    matching_for,
    paper_index,
)
from notifier.models import (
    ComposedDigest,
    ComposeOutcome,
    ComposeResult,
    DigestStatus,
    Interest,
    InterestExample,
    Match,
    NewDigest,
    Paper,
    Shard,
    Subscriber,
)
from notifier.paper_index import PaperIndex
from notifier.papers import by_any
from notifier.pipeline.parts import claimed_parts, worth_claiming
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
    claims: Shard | None = None,
) -> Generator[ComposeResult]:
    """Compose the digest of every active subscriber whose slot is due, a batch at a time.

    Each subscriber's own cadence (or the configured default) says which slot is
    due at now; its period keys the digest, so composing is idempotent and a
    subscriber who already has this period's digest is skipped. With
    record=True each digest and its ledger rows are stored together (a batch is
    one transaction); with record=False nothing is written (dry run). up_to_date,
    when given, receives how many subscribers already had their current digest;
    shard (k, n) limits the run to one of n composing processes. With claims
    (k, n), or by itself on PostgreSQL from parts.CLAIM_FROM active subscribers, a
    recording run instead claims parts of the subscribers (those of its share
    of the parts, or all), so composers on this machine or any other take
    disjoint parts; it returns once every part of its share is composed.
    """
    matching = matching or matching_for(settings)
    # Read before the candidates: every paper of an arrival up to it is among them.
    through = storage.arrivals_through(now)
    candidates = storage.recent_papers(since=now - candidate_window(settings), until=now)
    run = _ComposeRun(storage, settings, matching, candidates, now, through)
    if claims is None and shard is None and record and worth_claiming(storage):
        claims = (0, 1)
    if claims is None:
        yield from _compose_part(run, shard, record, up_to_date)
    else:
        # Closed however this run ends, so the part held is let go at once.
        with contextlib.closing(claimed_parts(storage, claims)) as parts:
            for part, first in parts:
                # A part waited for was its holder's to count as up to date.
                yield from _compose_part(run, part, record, up_to_date if first else None)
    if record and run.recorded:
        storage.refresh_statistics()


def _compose_part(
    run: _ComposeRun, shard: Shard | None, record: bool, up_to_date: list[int] | None
) -> Iterator[ComposeResult]:
    """Compose the due digests of one part of the subscribers (all of them with None)."""
    storage, default, newest = run.storage, run.settings.default_cadence, run.newest
    for schedule, count in storage.schedule_groups(shard):
        try:
            cadence = resolve(default, *schedule)
        except ValueError as e:
            # A stored choice that stopped being valid (a zone removed from tzdata).
            for batch in storage.subscriber_batches(COMPOSE_BATCH, schedule, shard=shard):
                for subscriber in batch:
                    yield ComposeResult(subscriber, None, ComposeOutcome.INVALID, str(e))
            continue
        slot = last_slot(cadence, run.now)
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


# Distinct interests whose decisions one compose run keeps (each holds its
# matches: a few kB).
DECISION_CACHE = 4096

# Interests a compose run embeds itself when it finds them without stored
# embeddings (about 10 s): a bulk import's are embedded by `notifier embed` or
# the daemon's embed job, and until then matched by their words, so an import
# never holds up a cycle.
EMBED_IN_COMPOSE = 2_000

# An interest changed this long before a subscriber's last digest was composed
# is decided against the whole window again: the digest may have read the
# subscriber before the change committed.
CHANGE_MARGIN = timedelta(hours=1)

_Texts = tuple[str, str | None, str | None, str]
# What an interest's decision depends on: its name and texts, how many of the
# candidates (the newest arrivals first) it is decided against, and for an
# interest taught by example papers, its id (its examples are its own).
_InterestKey = tuple[_Texts, int, int | None]


def _key(
    interest: Interest, upto: int, examples: Mapping[int, Sequence[InterestExample]]
) -> _InterestKey:
    """Return what an interest's decision depends on (see _InterestKey)."""
    taught_by = interest.interest_id if interest.interest_id in examples else None
    return (_texts(interest), upto, taught_by)


def _texts(interest: Interest) -> _Texts:
    """Return what an interest's verdicts depend on: its name and texts."""
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
        missing: dict[str, list[int]] = {}
        for match in matches:
            if not match.reason and match.paper not in by_name[match.interest].reasons:
                missing.setdefault(match.interest, []).append(match.paper)
        for name, positions in missing.items():
            shared = by_name[name]
            for reason in shared.decision.explain(index, positions):
                shared.reasons[reason.paper] = reason
        return [m if m.reason else by_name[m.interest].reasons[m.paper] for m in matches]

    return explain


@dataclass
class _ComposeRun:
    """What every batch of one compose run shares: the candidates, their index, the settings."""

    storage: DigestStore
    settings: Settings
    matching: Matching
    candidates: list[Paper]  # the latest arrivals first (storage.recent_papers)
    now: datetime
    through: int  # every arrival up to this one is among the candidates
    recorded: int = 0
    position: dict[int, int] = field(init=False)
    newest: datetime | None = field(init=False)  # when the newest candidate was first seen
    _arrivals: list[int] = field(init=False)  # the candidates' arrivals, negated: ascending
    _prefixes: dict[int, list[Paper]] = field(init=False, default_factory=dict)
    _budget: EmbedBudget = field(init=False, default_factory=lambda: EmbedBudget(EMBED_IN_COMPOSE))
    _by_words: set[_InterestKey] = field(init=False, default_factory=set)
    # Subscribers who wrote the same interest share its decision and its reasons:
    # identical text gives an identical query, embedding and verdict. Bounded, so
    # a run where every interest is different keeps its memory flat.
    _decisions: collections.OrderedDict[_InterestKey, _Decided | QueryError] = field(
        init=False, default_factory=collections.OrderedDict
    )

    def __post_init__(self) -> None:
        self.position = {paper.id: k for k, paper in enumerate(self.candidates)}
        self.newest = max((p.first_seen_at for p in self.candidates), default=None)
        self._arrivals = [-paper.arrival for paper in self.candidates]

    def undecided(
        self, subscriber: Subscriber, decided: tuple[int, datetime] | None
    ) -> list[tuple[Interest, int]]:
        """Return each interest with how many candidates (a prefix) it has still to decide.

        A subscriber's earlier digest decided every arrival up to the one it
        recorded, for each interest unchanged since: those papers either are in
        the ledger or did not match, so only later arrivals are new to them. A
        first digest, or an interest changed since, looks at the whole window.
        """
        everything = len(self.candidates)
        if decided is None:
            return [(interest, everything) for interest in subscriber.interests]
        through, composed_at = decided
        newer = bisect.bisect_left(self._arrivals, -through)
        return [
            (
                interest,
                everything
                if interest.changed_at is not None
                and interest.changed_at >= composed_at - CHANGE_MARGIN
                else newer,
            )
            for interest in subscriber.interests
        ]

    def prefix(self, upto: int) -> list[Paper]:
        """Return the first upto candidates (one list per length, shared by the run)."""
        found = self._prefixes.get(upto)
        if found is None:
            found = self._prefixes[upto] = self.candidates[:upto]
        return found

    def _decide(
        self,
        interests: Sequence[tuple[Interest, int]],
        examples: Mapping[int, Sequence[InterestExample]],
    ) -> dict[_InterestKey, _Decided | QueryError]:
        """Return the decision of each distinct interest, deciding only those not seen yet."""
        cache = self._decisions
        found: dict[_InterestKey, _Decided | QueryError] = {}
        fresh: dict[_InterestKey, Interest] = {}
        for interest, upto in interests:
            key = _key(interest, upto, examples)
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
                compiled = compile_interest(*key[0])
            except QueryError as e:
                found[key] = e
                continue
            if key[2] is not None:
                compiled = taught(compiled, examples[key[2]])
            parsed.append((key, interest, compiled))
        with_vectors = attach_vectors(
            self.storage,
            self.matching,
            [i for _, i, _ in parsed],
            [c for _, _, c in parsed],
            self._budget,
        )
        # Per prefix, one matrix product for the new interests' similarities;
        # reasons only for what is shown.
        by_prefix: dict[int, list[tuple[_InterestKey, CompiledInterest]]] = {}
        for (key, _, _), one in zip(parsed, with_vectors, strict=True):
            by_prefix.setdefault(key[1], []).append((key, one))
            if self.matching.embedder is not None and one.vector is None:
                # Matched by its words for want of embeddings (over the run's
                # budget): once they are stored, the whole window is decided again.
                self._by_words.add(key)
        for upto, group in by_prefix.items():
            decisions = match_many(
                self.index.head(upto), [c for _, c in group], self.matching.params
            )
            for (key, _), decision in zip(group, decisions, strict=True):
                found[key] = _Decided(decision)
        for key in fresh:
            cache[key] = found[key]
        while len(cache) > DECISION_CACHE:
            cache.popitem(last=False)
        return found

    def _by_muted(self, muted: frozenset[str], upto: int) -> set[int]:
        """Return the positions, among the first upto candidates, of papers by a muted author."""
        return {k for k, paper in enumerate(self.candidates[:upto]) if by_any(paper.authors, muted)}

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
        earlier = storage.decided_through(ids)
        todo = {s.id: self.undecided(s, earlier.get(s.id)) for s in batch}
        reach = max((upto for mine in todo.values() for _, upto in mine), default=0)
        offered = storage.offered_papers(ids, [p.id for p in self.candidates[:reach]])
        done: dict[int, ComposeResult] = {}
        examples = storage.examples_for(ids)
        muted = storage.muted_keys(ids)
        decided = self._decide([item for mine in todo.values() for item in mine], examples)
        composed: list[tuple[Subscriber, ComposedDigest]] = []
        for subscriber in batch:
            if statuses.get(subscriber.id) not in (None, DigestStatus.EMPTY):
                done[subscriber.id] = ComposeResult(
                    subscriber, None, ComposeOutcome.EXISTS, f"already composed for {period}"
                )
                continue
            mine = [decided[_key(i, upto, examples)] for i, upto in todo[subscriber.id]]
            looked_at = max((upto for _, upto in todo[subscriber.id]), default=0)
            if failed := next((d for d in mine if isinstance(d, QueryError)), None):
                # Stored queries were valid when saved; one bad one must not stop the others.
                done[subscriber.id] = ComposeResult(
                    subscriber, None, ComposeOutcome.INVALID, str(failed)
                )
                continue
            shared = [d for d in mine if isinstance(d, _Decided)]
            skip = frozenset(offered.get(subscriber.id, ()))
            left_out = {self.position[i] for i in skip}
            if subscriber.id in muted:
                left_out |= self._by_muted(muted[subscriber.id], looked_at)
            matches = subscriber_matches([d.decision for d in shared], left_out)
            composition = compose(
                subscriber.id,
                period,
                interests=[i.name for i in subscriber.interests],
                matches=matches,
                papers=self.prefix(looked_at),
                already_offered=skip,
                candidates=len(self.candidates),
                max_papers=subscriber.max_papers or settings.max_papers,
                explain=_shared_explainer(index, shared),
                tuned={
                    i.name: len(examples[i.interest_id])
                    for i in subscriber.interests
                    if i.interest_id in examples
                },
            )
            composed.append((subscriber, composition))
        stored: list[int | None] = [0] * len(composed)
        if record and self._by_words:
            storage.mark_interests_changed(
                [
                    interest.interest_id
                    for mine in todo.values()
                    for interest, upto in mine
                    if interest.interest_id is not None
                    and _key(interest, upto, examples) in self._by_words
                ],
                self.now,
            )
        if record:
            stored = storage.record_digests(
                [
                    NewDigest(
                        c.content,
                        c.overflow,
                        make_msgid(idstring=f"digest.{period}", domain=settings.sender_domain),
                        send_empty=subscriber.empty_note,
                        arrivals_through=self.through,
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
    claims: Shard | None = None,
) -> collections.Counter[str]:
    """Compose every digest that is due; return how many of each outcome.

    stopping is checked between subscribers: each batch is committed before its
    subscribers are reported, so stopping early loses nothing and the rest is
    composed by the next run. With settings.compose_workers > 1 the subscribers
    are split among that many processes. On PostgreSQL, from parts.CLAIM_FROM active
    subscribers, every composer claims parts of the subscribers, so composers
    on several machines share the work (claims: this process's share of the
    parts, see iter_composed); otherwise the processes take one shard each.
    """
    worker = shard is not None or claims is not None
    forgotten = 0
    if not worker:
        # Housekeeping of the main process: sign-ups never confirmed are not kept.
        forgotten = storage.forget_unconfirmed(now - timedelta(days=settings.unconfirmed_days))
    if not worker and settings.compose_workers > 1:
        outcomes = _compose_in_processes(storage, settings, now, matching)
    else:
        outcomes = _compose_here(storage, settings, now, matching, stopping, shard, claims)
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
    claims: Shard | None,
) -> collections.Counter[str]:
    """Compose what is due in this process (one shard of it, or the parts it claims)."""
    outcomes: collections.Counter[str] = collections.Counter()
    up_to_date: list[int] = []
    composed = iter_composed(
        storage,
        settings,
        now,
        matching=matching,
        up_to_date=up_to_date,
        shard=shard,
        claims=claims,
    )
    with contextlib.closing(composed):  # stopping early gives back the part held
        for item in composed:
            outcomes[item.outcome] += 1
            if stopping():
                break
    outcomes["up to date"] = sum(up_to_date)
    return outcomes


def _compose_in_processes(
    storage: DigestStore, settings: Settings, now: datetime, matching: Matching | None
) -> collections.Counter[str]:
    """Compose with compose_workers processes: claiming parts (PostgreSQL) or a shard each.

    Matching is CPU-bound Python, so processes, not threads. The new papers are
    embedded here first, once; the workers then read the stored vectors.
    """
    candidates = storage.recent_papers(since=now - candidate_window(settings), until=now)
    paper_index(storage, matching or matching_for(settings), candidates)
    workers, claims = settings.compose_workers, worth_claiming(storage)
    tasks = [
        (
            settings.model_dump(),
            now,
            None if claims else (k, workers),
            (k, workers) if claims else None,
        )
        for k in range(workers)
    ]
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(workers) as pool:
        results = pool.starmap(_compose_worker, tasks)
    total: collections.Counter[str] = collections.Counter()
    for outcome in results:
        total.update(outcome)
    return total


def _compose_worker(
    settings_data: dict[str, Any], now: datetime, shard: Shard | None, claims: Shard | None
) -> collections.Counter[str]:
    """Compose in a worker process (the target of _compose_in_processes), BLAS on one thread.

    The workers already keep every core busy. With BLAS's own threads as
    well, two workers on two cores spent three times the CPU on the same
    subscribers, its idle threads spinning, and took as long as one worker
    (bench/daily_cycle.py): the matrices of one interest are too small to share.
    """
    from threadpoolctl import threadpool_limits

    settings = Settings(**settings_data)
    storage = Storage(settings.database)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            return compose_due(storage, settings, now, shard=shard, claims=claims)
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

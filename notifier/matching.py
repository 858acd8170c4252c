"""The matching service: wires the pure scorer (match.py) to the embedder and stored vectors.

Composing, the feeds and the web previews match with what this builds: the
tuned parameters, the shared embedder, papers indexed with their stored
vectors (each embedded once) and interests compiled with theirs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from notifier.embedding import Embedder, shared_embedder
from notifier.errors import QueryError
from notifier.match import (
    CompiledInterest,
    MatchParams,
    compile_interest,
    default_params,
    embedding_text,
    volume,
)
from notifier.models import Interest, InterestVolume, Paper, Subscriber
from notifier.paper_index import IndexedPaper, PaperIndex
from notifier.papers import embedding_input
from notifier.settings import Settings
from notifier.sources import source_report
from notifier.storage import Storage
from notifier.storage.protocols import VectorStore


@dataclass(frozen=True)
class Matching:
    """What a run matches with: tuned parameters and, for semantic modes, an embedder."""

    params: MatchParams
    embedder: Embedder | None = None


def matching_for(settings: Settings) -> Matching:
    """Return the matching configured in settings (the model is shared per process)."""
    embedder = shared_embedder(settings.matching, settings.cache_dir)
    return Matching(default_params(settings.matching), embedder)


def paper_index(storage: VectorStore, matching: Matching, papers: Sequence[Paper]) -> PaperIndex:
    """Index papers for one run, embedding those never embedded before (stored once)."""
    indexed = [IndexedPaper(p.id, p.title, p.abstract, p.authors) for p in papers]
    embedder = matching.embedder
    if embedder is None or not papers:
        return PaperIndex(indexed)
    stored = storage.paper_vectors([p.id for p in papers], embedder.model_id)
    missing = [p for p in papers if p.id not in stored]
    if missing:
        computed = embedder.embed([embedding_input(p.title, p.abstract) for p in missing])
        fresh = {p.id: computed[i].tobytes() for i, p in enumerate(missing)}
        storage.save_paper_vectors(fresh, embedder.model_id)
        stored.update(fresh)
    vectors = np.stack([np.frombuffer(stored[p.id], dtype=np.float32) for p in papers])
    return PaperIndex(indexed, vectors)


def compile_interests(
    storage: VectorStore, matching: Matching, interests: Sequence[Interest]
) -> list[CompiledInterest]:
    """Parse interests and attach their embeddings, computing them only when their text changed.

    Raises QueryError for an interest that cannot be parsed.
    """
    compiled = [compile_interest(i.name, i.query, i.about, i.sensitivity) for i in interests]
    return attach_vectors(storage, matching, interests, compiled)


def embed_interests(storage: VectorStore, matching: Matching, subscriber: Subscriber) -> None:
    """Store the embeddings of a subscriber's interests now, when they are made or changed.

    The cycle then finds them stored and embeds only what it could not find
    (an interest written while the model was not loaded); without this, a day
    of new subscribers who each wrote their own interests is embedded inside
    the compose run.
    """
    if matching.embedder is not None and subscriber.interests:
        compile_interests(storage, matching, subscriber.interests)


@dataclass
class EmbedBudget:
    """How many more interests one run may embed itself (the rest are matched by words)."""

    left: int


def attach_vectors(
    storage: VectorStore,
    matching: Matching,
    interests: Sequence[Interest],
    compiled: Sequence[CompiledInterest],
    budget: EmbedBudget | None = None,
) -> list[CompiledInterest]:
    """Return compiled interests with their embeddings: stored ones reused, new ones stored.

    With a budget, at most budget.left interests are embedded here; any others
    without stored embeddings stay without (matched lexically this time) and
    are left to `notifier embed` or the daemon.
    """
    embedder = matching.embedder
    if embedder is None or not compiled:
        return list(compiled)
    texts = [[embedding_text(c), *c.phrases] for c in compiled]
    hashes = [
        hashlib.sha256("\n".join([embedder.model_id, *t]).encode()).hexdigest() for t in texts
    ]
    ids = [i.interest_id for i in interests]
    stored = storage.interest_vectors([i for i in ids if i is not None], embedder.model_id)
    vectors: list[Any] = [None] * len(compiled)
    todo = []
    for k, (interest_id, digest) in enumerate(zip(ids, hashes, strict=True)):
        if interest_id is not None and stored.get(interest_id, ("", b""))[0] == digest:
            vectors[k] = np.frombuffer(stored[interest_id][1], dtype=np.float32).reshape(
                -1, embedder.dimension
            )
        else:
            todo.append(k)
    if budget is not None:
        todo = todo[: max(budget.left, 0)]
        budget.left -= len(todo)
    if todo:
        computed = embedder.embed([text for k in todo for text in texts[k]])
        fresh = []
        row = 0
        for k in todo:
            vectors[k] = computed[row : row + len(texts[k])]
            row += len(texts[k])
            interest_id = ids[k]
            if interest_id is not None:
                fresh.append((interest_id, hashes[k], vectors[k].tobytes()))
        storage.save_interest_vectors(fresh, embedder.model_id)
    return [
        c if v is None else replace(c, vector=v[0], phrase_vectors=v[1:] if len(v) > 1 else None)
        for c, v in zip(compiled, vectors, strict=True)
    ]


def embed_pending(
    storage: VectorStore,
    matching: Matching,
    *,
    at_most: int | None = None,
    batch: int = 500,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> int:
    """Embed and store interests that have none (a bulk import's), a batch at a time.

    Each batch is stored as it is done, so stopping loses at most one batch
    and composing meanwhile finds what is ready. progress(done, total) is
    called after each batch. Returns how many interests were embedded; one whose
    query no longer parses is passed over (composing reports it) and still
    counts as waiting.
    """
    embedder = matching.embedder
    if embedder is None:
        return 0
    total = storage.count_interests_to_embed(embedder.model_id)
    if at_most is not None:
        total = min(total, at_most)
    done, after = 0, 0
    while done < total:
        found = storage.interests_to_embed(embedder.model_id, after, min(batch, total - done))
        if not found:
            break
        after = found[-1].interest_id or after
        usable: list[tuple[Interest, CompiledInterest]] = []
        for interest in found:
            try:
                usable.append((interest, compile_interest(*_texts(interest))))
            except QueryError:
                continue
        attach_vectors(storage, matching, [i for i, _ in usable], [c for _, c in usable])
        done += len(usable)
        progress(done, total)
    return done


def _texts(interest: Interest) -> tuple[str, str | None, str | None, str]:
    """Return what compile_interest takes of an interest."""
    return (interest.name, interest.query, interest.about, interest.sensitivity)


def candidate_window(settings: Settings) -> timedelta:
    """Return how far back composing looks for papers not yet offered.

    At least eight days: a weekly digest composed a few minutes later than the
    week before must still see the papers that arrived in between.
    """
    return timedelta(days=max(settings.backlog_days, 8))


def interest_volumes(
    storage: Storage,
    settings: Settings,
    subscriber: Subscriber,
    now: datetime,
    matching: Matching | None = None,
) -> tuple[list[InterestVolume], list[str]]:
    """Say, per interest, how many recent papers passed its query and how many were cut.

    Returns the volumes and the names of failing sources (every source feeds
    every interest, so one failing is a reason for fewer papers).
    """
    matching = matching or matching_for(settings)
    candidates = storage.recent_papers(since=now - candidate_window(settings), until=now)
    position = {paper.id: k for k, paper in enumerate(candidates)}
    offered = storage.offered_papers([subscriber.id], position).get(subscriber.id, set())
    index = paper_index(storage, matching, candidates)
    volumes = []
    for interest in subscriber.interests:
        try:
            [compiled] = compile_interests(storage, matching, [interest])
        except QueryError:
            continue  # the digest's own record says why this one is skipped
        skip = {position[i] for i in offered}
        volumes.append(volume(index, compiled, matching.params, skip))
    report = source_report(settings, storage.sources_health(), now)
    return volumes, [row["name"] for row in report if row["failing"]]


def describe_volume(found: InterestVolume) -> str:
    """Return one line on why an interest found as many papers as it did."""
    looked = f"of {found.looked_at} recent papers you have not seen"
    if found.cut is None:
        return (
            f"{found.passed_query} {looked} passed the query; all are delivered, best first, "
            "up to the digest's cap"
        )
    passed = (
        f"{found.passed_query} {looked} passed the query, "
        if found.passed_query is not None
        else f"{found.looked_at} recent papers you have not seen: "
    )
    text = (
        f"{passed}{found.delivered} scored at least {found.cut:.2f} ({found.sensitivity}), "
        f"{found.below_cut} scored below"
    )
    if found.closest:
        text += "; closest below: " + ", ".join(f"“{t}” ({s:.2f})" for t, s in found.closest)
    return text

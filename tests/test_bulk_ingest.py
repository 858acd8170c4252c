"""Storing listings in bulk: large ones, mixed changes, concurrent ingests; both databases."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from notifier import pipeline
from notifier.diff import decide, lookup_keys
from notifier.errors import StaleDiff
from notifier.models import Announce, IngestSummary, Listing, PaperData
from notifier.papers import paper_key, title_hash
from notifier.storage import Storage
from notifier.storage.schema import ingest_runs, papers, payloads, sightings
from tests.conftest import NOW

ABSTRACT = "A careful study of something that matters, with results and a long explanation. " * 2
COUNT = 5_000


def paper(n: int, *, arxiv: bool | None = None, **changes: Any) -> PaperData:
    """Return synthetic paper n: every tenth known by title only, the others by arXiv id."""
    title = f"Bulk Study Number {n}"
    with_id = n % 10 != 0 if arxiv is None else arxiv
    arxiv_id = f"2412.{n:05d}" if with_id else None
    made = PaperData(
        key=paper_key(title, arxiv_id),
        title=title,
        abstract=f"Abstract {n}. {ABSTRACT}",
        rank=0,
        arxiv_id=arxiv_id,
        version=1 if with_id else None,
        url=f"https://arxiv.org/abs/{arxiv_id}" if with_id else None,
        authors=(f"Ada {n}", "Alan Turing") if with_id else (),
        published_at=NOW - timedelta(days=n % 7) if with_id else None,
        meta={"upvotes": n % 50} if with_id else {},
    )
    return dataclasses.replace(made, **changes)


def ranked(listed: Iterable[PaperData]) -> list[PaperData]:
    """Return the papers ranked 1, 2, ... in the order given, as a parser ranks them."""
    return [dataclasses.replace(p, rank=rank) for rank, p in enumerate(listed, start=1)]


def store(storage: Storage, listed: Sequence[PaperData], now: datetime) -> IngestSummary:
    """Diff a listing against what is stored and store it, as pipeline.ingest does."""
    listing = Listing("bulk", tuple(listed))
    changes = decide(*storage.papers_for_diff(*lookup_keys(listing)), listing)
    return storage.record_ingest(listing, changes, now, kind="hf-api")


def row(
    p: PaperData, first_seen_at: datetime, updated_at: datetime, arrival: int = 1
) -> dict[str, Any]:
    """Return the papers row (without its id) a paper first stored at first_seen_at gets.

    arrival counts the ingests that stored new or changed papers: the one
    that stored it or last changed its text.
    """
    return {
        "key": p.key,
        "guid": f"urn:notifier:{p.key}",
        "arxiv_id": p.arxiv_id,
        "title": p.title,
        "title_key": title_hash(p.title),
        "abstract": p.abstract,
        "version": p.version,
        "url": p.url,
        "authors": list(p.authors),
        "meta": dict(p.meta),
        "published_at": p.published_at,
        "first_seen_at": first_seen_at,
        "updated_at": updated_at,
        "arrival": arrival,
    }


def stored_rows(storage: Storage) -> list[dict[str, Any]]:
    """Return every papers row as a dict, by id."""
    with storage.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(papers).order_by(papers.c.id))]


def run_sightings(storage: Storage, run_id: int) -> set[tuple[int, int]]:
    """Return the (paper id, rank) pairs one run saw."""
    query = select(sightings.c.paper_id, sightings.c.rank).where(sightings.c.run_id == run_id)
    with storage.engine.connect() as conn:
        return {(r.paper_id, r.rank) for r in conn.execute(query)}


def count(storage: Storage, table: Any) -> int:
    with storage.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_large_listing_is_stored_whole_then_seen_then_updated(storage: Storage) -> None:
    first = ranked(paper(n) for n in range(COUNT))
    summary = store(storage, first, NOW)
    assert (summary.papers, summary.new, summary.seen) == (COUNT, COUNT, 0)
    stored = stored_rows(storage)
    # Ids ascend in listing order: papers first seen together are listed newest id first.
    assert [{k: v for k, v in r.items() if k != "id"} for r in stored] == [
        row(p, NOW, NOW) for p in first
    ]
    ids = {r["key"]: r["id"] for r in stored}
    assert run_sightings(storage, summary.run_id) == {(ids[p.key], p.rank) for p in first}

    # The same listing again: every paper seen, nothing stored changes but the sightings.
    later = NOW + timedelta(hours=1)
    again = store(storage, first, later)
    assert (again.new, again.seen, again.updated) == (0, COUNT, 0)
    assert stored_rows(storage) == stored
    assert run_sightings(storage, again.run_id) == {(ids[p.key], p.rank) for p in first}
    assert count(storage, sightings) == 2 * COUNT

    # New versions, quiet metadata, merges, new papers and skipped replacements at once.
    third_at = NOW + timedelta(days=1)
    listed: list[PaperData] = []
    new_titles = set()
    expected: dict[str, dict[str, Any]] = {}  # by the key first stored
    for p in first:
        n = int(p.title.rsplit(" ", 1)[1])
        if n % 10 == 0 and n % 20 == 0:  # a title-keyed paper shows up with its arXiv id
            merged = paper(n, arxiv=True)
            listed.append(merged)
            expected[p.key] = row(merged, NOW, third_at, 2) | {"guid": f"urn:notifier:{p.key}"}
        elif n % 10 == 0 or n % 3 == 1:  # seen as it was
            listed.append(p)
            expected[p.key] = row(p, NOW, NOW)
        elif n % 3 == 0:  # a new version with a longer abstract: an update
            revised = dataclasses.replace(p, version=2, abstract=f"{p.abstract} Revised.")
            listed.append(revised)
            expected[p.key] = row(revised, NOW, third_at, 2)
        else:  # fresher upvotes: stored quietly, the paper is only seen
            fresher = dataclasses.replace(p, meta={"upvotes": 99})
            listed.append(fresher)
            expected[p.key] = row(fresher, NOW, NOW)
        if n % 50 == 49:
            listed.append(paper(COUNT + n // 50))
            new_titles.add(listed[-1].title)
        if n % 500 == 499:
            listed.append(paper(2 * COUNT + n // 500, announce=Announce.REPLACE))
    third = ranked(listed)
    fresh = [p for p in third if p.title in new_titles]
    summary = store(storage, third, third_at)
    updated = sum(1 for k, r in expected.items() if r["updated_at"] == third_at)
    assert (summary.papers, summary.new, summary.updated, summary.skipped) == (
        len(third),
        len(fresh),
        updated,
        10,
    )
    assert summary.seen == COUNT - updated
    after = stored_rows(storage)
    assert after[:COUNT] == [{"id": ids[key]} | r for key, r in expected.items()]
    assert [{k: v for k, v in r.items() if k != "id"} for r in after[COUNT:]] == [
        row(p, third_at, third_at, 2) for p in fresh
    ]
    assert [r["id"] for r in after] == sorted(r["id"] for r in after)
    by_listed_key = {r["key"]: r["id"] for r in after}
    assert run_sightings(storage, summary.run_id) == {
        (by_listed_key[p.key], p.rank) for p in third if not p.announce.is_update
    }


def test_a_paper_stored_by_another_ingest_after_the_diff_makes_it_stale(
    storage: Storage,
) -> None:
    listed = ranked(paper(n) for n in range(1, 200))
    listing = Listing("slow", tuple(listed))
    changes = decide(*storage.papers_for_diff(*lookup_keys(listing)), listing)
    # Another ingest stores one of the papers between this one's diff and its write.
    store(storage, ranked([paper(150)]), NOW)
    with pytest.raises(StaleDiff):
        storage.record_ingest(listing, changes, NOW, kind="hf-api")
    # Nothing of the stale attempt is kept: no run, no paper, no sighting.
    assert (count(storage, ingest_runs), count(storage, papers), count(storage, sightings)) == (
        1,
        1,
        1,
    )


def test_a_merge_into_an_arxiv_id_stored_meanwhile_makes_the_diff_stale(
    storage: Storage,
) -> None:
    store(storage, ranked([paper(10)]), NOW)  # known by title only
    listing = Listing("api", tuple(ranked([paper(10, arxiv=True)])))
    changes = decide(*storage.papers_for_diff(*lookup_keys(listing)), listing)
    # Meanwhile another listing stores that arXiv id under another title: a new paper.
    store(storage, ranked([paper(10, arxiv=True, title="Another Title Entirely")]), NOW)
    with pytest.raises(StaleDiff):
        storage.record_ingest(listing, changes, NOW, kind="hf-api")
    assert sorted(r["key"] for r in stored_rows(storage)) == sorted(
        [paper(10).key, paper(10, arxiv=True).key]
    )


def test_ingest_diffs_again_when_another_ingest_stored_a_paper_first(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = "".join(f"Paper Number {n}\n{ABSTRACT}\n" for n in range(50)).encode()
    diffs = []
    read = storage.papers_for_diff
    other = Storage(storage.url)  # another process's ingest

    def racing(*keys: Any) -> Any:
        found = read(*keys)
        diffs.append(len(found[0]))
        if len(diffs) == 1:  # the other stores paper 7 right after the first diff
            pipeline.ingest(other, "other", f"Paper Number 7\n{ABSTRACT}\n".encode(), NOW)
        return found

    monkeypatch.setattr(storage, "papers_for_diff", racing)
    summary = pipeline.ingest(storage, "snapshot", data, NOW)
    other.close()
    assert diffs == [0, 1]
    assert (summary.new, summary.seen) == (49, 1)
    assert (count(storage, papers), count(storage, sightings), count(storage, payloads)) == (
        50,
        51,
        2,
    )


def test_a_paper_first_seen_at_the_edge_of_a_window_is_in_it(storage: Storage) -> None:
    # On SQLite times are text: stored as Core writes them ("07:00:00.000000"),
    # a paper first seen exactly at `since` is not sorted before it.
    pipeline.ingest(storage, "day", f"Deep Nets\n{ABSTRACT}\n".encode(), NOW)
    hour = timedelta(hours=1)
    assert len(storage.recent_papers(NOW, NOW + hour)) == 1
    assert len(storage.recent_papers(NOW - hour, NOW)) == 1
    assert storage.newest_paper_seen_at() == NOW

"""A digest decides only the papers that arrived since the subscriber's last one; both databases.

Arrivals are numbered in commit order, so a paper whose ingest committed late
is still new to everyone, an updated paper is decided again, and an interest
changed since the last digest looks at the whole window.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from sqlalchemy import create_engine, select, text

from notifier import pipeline
from notifier.diff import decide, lookup_keys
from notifier.models import DigestContent, IngestSummary, Interest, Listing, PaperData
from notifier.papers import paper_key
from notifier.settings import Settings
from notifier.storage import Storage
from notifier.storage.schema import papers
from tests.conftest import NOW

READER = "reader@example.org"
FAR = NOW + timedelta(days=365)


def paper(n: int, abstract: str, version: int = 1) -> PaperData:
    """Return paper n, known by its arXiv id, with the given abstract."""
    arxiv_id = f"2603.{n:05d}"
    title = f"Study number {n} of things"
    return PaperData(
        key=paper_key(title, arxiv_id),
        title=title,
        abstract=abstract,
        rank=n,
        arxiv_id=arxiv_id,
        version=version,
        url=f"https://arxiv.org/abs/{arxiv_id}",
    )


def store(storage: Storage, listed: Sequence[PaperData], now: datetime) -> IngestSummary:
    """Diff a listing against what is stored and store it, as an ingest does."""
    listing = Listing("daily", tuple(listed))
    changes = decide(*storage.papers_for_diff(*lookup_keys(listing)), listing)
    return storage.record_ingest(listing, changes, now, kind="hf-api")


def digest(storage: Storage, settings: Settings, now: datetime) -> DigestContent:
    """Compose and record the reader's digest at now; return what it says."""
    [composed] = pipeline.compose_digests(storage, settings, now)
    assert composed.content is not None, composed.detail
    return composed.content


def titles(content: DigestContent) -> set[str]:
    """Return the titles a digest shows."""
    return {p.title for p in content.papers}


QUANTUM = "We study quantum error correction on real hardware."
PROTEIN = "We predict protein structure from sequence alone."


def test_the_next_digest_counts_only_papers_new_to_the_reader(
    storage: Storage, settings: Settings
) -> None:
    storage.save_subscriber(READER, None, [Interest("q", query="quantum")], NOW - timedelta(days=2))
    store(storage, [paper(1, QUANTUM), paper(2, PROTEIN)], NOW - timedelta(hours=1))
    first = digest(storage, settings, NOW)
    assert titles(first) == {"Study number 1 of things"}
    assert first.reason == "1 of the 2 recent papers you have not seen matched"

    later = NOW + timedelta(days=1)
    store(
        storage,
        [paper(3, QUANTUM), paper(4, PROTEIN), paper(5, PROTEIN)],
        later - timedelta(hours=1),
    )
    second = digest(storage, settings, later)
    assert titles(second) == {"Study number 3 of things"}
    # The window holds five papers; three arrived since the first digest.
    assert second.reason == "1 of the 3 recent papers you have not seen matched"


def test_a_paper_whose_ingest_committed_after_a_digest_still_reaches_the_reader(
    storage: Storage, settings: Settings
) -> None:
    storage.save_subscriber(READER, None, [Interest("q", query="quantum")], NOW - timedelta(days=2))
    store(storage, [paper(1, QUANTUM)], NOW - timedelta(hours=1))
    assert titles(digest(storage, settings, NOW)) == {"Study number 1 of things"}
    # An ingest that began before that digest was composed and committed after it:
    # its papers are stamped first seen before the digest.
    store(storage, [paper(2, QUANTUM)], NOW - timedelta(minutes=30))
    later = NOW + timedelta(days=1)
    assert titles(digest(storage, settings, later)) == {"Study number 2 of things"}


def test_a_paper_first_seen_after_a_digest_was_composed_reaches_the_next_one(
    storage: Storage, settings: Settings
) -> None:
    storage.save_subscriber(READER, None, [Interest("q", query="quantum")], NOW - timedelta(days=2))
    store(storage, [paper(1, QUANTUM)], NOW - timedelta(hours=1))
    # Stamped a moment after the digest's moment, committed before it read the
    # candidates (a composing process starts a while after its run's now).
    store(storage, [paper(2, QUANTUM)], NOW + timedelta(seconds=5))
    assert titles(digest(storage, settings, NOW)) == {"Study number 1 of things"}
    later = NOW + timedelta(days=1)
    assert titles(digest(storage, settings, later)) == {"Study number 2 of things"}


def test_an_updated_paper_is_decided_again(storage: Storage, settings: Settings) -> None:
    storage.save_subscriber(READER, None, [Interest("q", query="quantum")], NOW - timedelta(days=2))
    store(storage, [paper(1, QUANTUM), paper(2, PROTEIN)], NOW - timedelta(hours=1))
    assert titles(digest(storage, settings, NOW)) == {"Study number 1 of things"}
    later = NOW + timedelta(days=1)
    store(storage, [paper(2, PROTEIN + " " + QUANTUM, version=2)], later - timedelta(hours=1))
    assert titles(digest(storage, settings, later)) == {"Study number 2 of things"}


@pytest.mark.parametrize("how", ["save_subscriber", "update_preferences"])
def test_a_changed_interest_looks_at_the_whole_window_again(
    storage: Storage, settings: Settings, how: str
) -> None:
    subscriber, _ = storage.save_subscriber(
        READER,
        None,
        [Interest("q", query="quantum"), Interest("kept", query="hardware")],
        NOW - timedelta(days=2),
    )
    store(storage, [paper(1, QUANTUM), paper(2, PROTEIN)], NOW - timedelta(hours=1))
    assert titles(digest(storage, settings, NOW)) == {"Study number 1 of things"}

    changed = NOW + timedelta(hours=3)
    if how == "save_subscriber":
        storage.save_subscriber(READER, None, [Interest("q", query="protein")], changed)
    else:
        storage.update_preferences(
            subscriber.id,
            chosen=[Interest("q", query="protein"), Interest("kept", query="hardware")],
            now=changed,
        )
    later = NOW + timedelta(days=1)
    store(storage, [paper(3, PROTEIN)], later - timedelta(hours=1))
    second = digest(storage, settings, later)
    # The changed interest finds yesterday's protein paper too; the unchanged
    # one looks only at today's paper, and paper 1 stays in yesterday's digest.
    assert titles(second) == {"Study number 2 of things", "Study number 3 of things"}
    [interest] = [i for i in storage.subscriber_by_email(READER).interests if i.name == "kept"]
    assert interest.changed_at == NOW - timedelta(days=2)


def test_saving_an_interest_unchanged_keeps_when_it_changed(
    storage: Storage, settings: Settings
) -> None:
    joined = NOW - timedelta(days=2)
    subscriber, _ = storage.save_subscriber(READER, None, [Interest("q", query="quantum")], joined)
    storage.update_preferences(
        subscriber.id, chosen=[Interest("q", query="quantum")], name="Ada", now=NOW
    )
    [interest] = storage.subscriber_by_email(READER).interests
    assert interest.changed_at == joined


def test_ingests_commit_in_arrival_order(pg_url: str) -> None:
    """An ingest waits for an earlier one holding the counter, then takes the next number."""
    storage = Storage(pg_url)
    storage.migrate()
    held = create_engine(pg_url)
    try:
        with held.connect() as conn:
            conn.execute(text("BEGIN"))
            taken = conn.execute(
                text("UPDATE arrival_counter SET value = value + 1 RETURNING value")
            ).scalar_one()
            done = threading.Event()

            def ingest() -> None:
                store(storage, [paper(1, QUANTUM)], NOW)
                done.set()

            worker = threading.Thread(target=ingest)
            worker.start()
            # The ingest cannot take a number while an earlier one holds the row,
            # and what has committed is still the number before.
            assert not done.wait(1.0)
            assert storage.arrivals_through(FAR) == taken - 1
            conn.execute(text("COMMIT"))
            worker.join(10)
        assert done.is_set()
        assert storage.arrivals_through(FAR) == taken + 1
        with storage.engine.connect() as conn:
            assert conn.execute(select(papers.c.arrival)).scalar_one() == taken + 1
    finally:
        held.dispose()
        storage.close()

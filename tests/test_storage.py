"""Storage invariants on SQLite and PostgreSQL: schema, idempotent digests, the ledger."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from notifier import pipeline
from notifier.models import Interest, NewDigest, Subscriber
from notifier.settings import Settings
from notifier.storage import MIGRATIONS, SCHEMA_HEAD, Storage
from notifier.storage.schema import deliveries, digests, metadata
from tests.conftest import JOINED, NOW, seed_bytes


def test_migrations_create_exactly_the_declared_schema(storage: Storage) -> None:
    with storage.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def test_migrate_is_idempotent(storage: Storage) -> None:
    assert storage.migrate() is False


def test_datetimes_come_back_aware_utc(storage: Storage) -> None:
    pipeline.ingest(storage, "s", seed_bytes(0), NOW)
    paper = storage.latest_papers(1)[0]
    assert paper.first_seen_at == NOW
    assert paper.first_seen_at.utcoffset() == timedelta(0)


def test_concurrent_composers_create_one_digest_per_subscriber(
    storage: Storage, settings: Settings
) -> None:
    pipeline.ingest(storage, "s", seed_bytes(0), NOW - timedelta(hours=1))
    for i in range(4):
        storage.save_subscriber(
            f"s{i}@example.org", None, [Interest("rl", '"reinforcement learning" OR robot')], JOINED
        )
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def compose() -> None:
        own = Storage(settings.database)
        try:
            barrier.wait()
            pipeline.compose_digests(own, settings, NOW)
        except BaseException as e:  # surfaced below
            errors.append(e)
        finally:
            own.close()

    threads = [threading.Thread(target=compose) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with storage.engine.connect() as conn:
        per_subscriber = conn.execute(
            text("SELECT subscriber_id, count(*) FROM digests GROUP BY subscriber_id")
        ).all()
        ledger = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT subscriber_id || '-' || paper_id) FROM deliveries"
            )
        ).one()
    assert sorted(n for _, n in per_subscriber) == [1, 1, 1, 1]
    assert ledger[0] == ledger[1] > 0


def test_an_empty_digest_is_replaced_when_papers_arrive_later_the_same_day(
    storage: Storage, settings: Settings
) -> None:
    storage.save_subscriber("a@example.org", None, [Interest("rl", "robot")], JOINED)
    [first] = pipeline.compose_digests(storage, settings, NOW)
    assert first.outcome == "empty"
    pipeline.ingest(storage, "s", seed_bytes(0), NOW + timedelta(hours=1))
    [second] = pipeline.compose_digests(storage, settings, NOW + timedelta(hours=2))
    assert second.outcome == "created"
    # The period has its digest now: later runs leave the subscriber alone.
    up_to_date: list[int] = []
    third = list(
        pipeline.iter_composed(storage, settings, NOW + timedelta(hours=3), up_to_date=up_to_date)
    )
    assert third == [] and sum(up_to_date) == 1
    assert storage.digest_counts() == {"pending": 1}


def test_overflow_papers_are_offered_once_not_carried_forward(
    storage: Storage, settings: Settings
) -> None:
    interest = Interest("rl", '"reinforcement learning" OR RL', sensitivity="broad")
    storage.save_subscriber("a@example.org", None, [interest], JOINED, max_papers=5)
    pipeline.ingest(storage, "s", seed_bytes(0), NOW - timedelta(hours=1))
    [day1] = pipeline.compose_digests(storage, settings, NOW)
    assert day1.content is not None
    matched = len(day1.content.papers) + day1.content.more
    assert len(day1.content.papers) == 5 and day1.content.more > 5
    [day2] = pipeline.compose_digests(storage, settings, NOW + timedelta(days=1))
    assert day2.outcome == "empty"
    assert day2.content is not None
    # The overflow is not offered again, and nothing else arrived since.
    assert day2.content.reason == (
        "no paper has arrived since your last digest; the 72 recent papers were matched then"
    )
    assert matched < 72


def test_digests_share_one_stored_card_per_paper_and_keep_it_when_the_paper_changes(
    storage: Storage, settings: Settings
) -> None:
    pipeline.ingest(storage, "s", seed_bytes(0), NOW - timedelta(hours=1))
    query = '"reinforcement learning" OR robot'
    for i in range(3):
        storage.save_subscriber(f"s{i}@example.org", None, [Interest("rl", query)], JOINED)
    composed = pipeline.compose_digests(storage, settings, NOW)
    shown = {p.paper_id for c in composed if c.content for p in c.content.papers}
    assert shown
    with storage.engine.connect() as conn:
        cards = conn.execute(text("SELECT count(*) FROM paper_cards")).scalar_one()
    assert cards == len(shown)  # three digests, one card per paper

    # The paper is updated (a longer abstract) before the digests go out: what
    # was composed is what is sent, so a retry is the same message.
    first = composed[0].content
    assert first is not None
    paper = first.papers[0]
    with storage.engine.begin() as conn:
        conn.execute(
            text("UPDATE papers SET abstract = :a WHERE id = :id"),
            {"a": paper.abstract + " Updated.", "id": paper.paper_id},
        )
    claimed = storage.claim_digests("w", 10, NOW, timedelta(minutes=5))
    assert [d.content for d in claimed] == [c.content for c in composed]


def test_digests_and_ledger_keep_every_character_of_an_interest_name(
    storage: Storage, settings: Settings
) -> None:
    # Backslashes, tabs, newlines and "\\N" are what a text COPY must escape; the
    # rows go by binary COPY on PostgreSQL and by INSERT on SQLite.
    name = 'back\\slash\ttab "quoted" \\N Ünïcode\nnext line'
    pipeline.ingest(storage, "s", seed_bytes(0), NOW - timedelta(hours=1))
    storage.save_subscriber(
        "s@example.org", None, [Interest(name, "reinforcement OR robot")], JOINED
    )
    [composed] = pipeline.compose_digests(storage, settings, NOW)
    assert composed.outcome == "created" and composed.content is not None

    with storage.engine.connect() as conn:
        ledger = conn.execute(select(deliveries.c.interest, deliveries.c.shown)).all()
    assert {interest for interest, _ in ledger} == {name}
    assert sum(shown for _, shown in ledger) == composed.content.paper_count
    [claimed] = storage.claim_digests("w", 10, NOW, timedelta(minutes=5))
    assert claimed.content == composed.content
    assert [section.interest for section in claimed.content.sections] == [name]


def test_importing_subscribers_skips_known_addresses_and_keeps_interest_order(
    storage: Storage,
) -> None:
    storage.save_subscriber("known@example.org", "Known", [Interest("a", "robot")], JOINED)
    created = storage.add_subscribers(
        [
            ("known@example.org", "Someone else", [Interest("b", "vision")]),
            ("new@example.org", "New", [Interest("z", "robot"), Interest("a", "vision")]),
            ("new@example.org", "Twice", [Interest("x", "robot")]),
        ],
        NOW,
    )
    assert created == 1
    by_email = {s.email: s for s in storage.subscribers()}
    assert by_email["known@example.org"].name == "Known"  # untouched
    assert [i.name for i in by_email["known@example.org"].interests] == ["a"]
    assert by_email["new@example.org"].name == "Twice"  # the last line for an address wins
    assert [i.name for i in by_email["new@example.org"].interests] == ["x"]


def test_the_database_url_is_shown_without_its_password() -> None:
    storage = Storage("postgresql+psycopg://notifier:s3cret@db.example.org:5432/papers")
    assert storage.safe_url() == "postgresql+psycopg://notifier:***@db.example.org:5432/papers"
    storage.close()


def test_claimed_digests_are_what_was_composed_when_subscribers_share_papers(
    storage: Storage, settings: Settings
) -> None:
    # Claiming shares one frozen paper among entries that are equal; entries that
    # differ only in "also matches" (or in the card) must not be confused.
    pipeline.ingest(storage, "s", seed_bytes(0), NOW - timedelta(hours=1))
    rl = '"reinforcement learning" OR robot'
    storage.save_subscriber("one@example.org", None, [Interest("rl", rl)], JOINED)
    storage.save_subscriber(
        "two@example.org", None, [Interest("rl", rl), Interest("robots", "robot")], JOINED
    )
    composed = pipeline.compose_digests(storage, settings, NOW)
    claimed = storage.claim_digests("w", 10, NOW, timedelta(minutes=5))
    assert {d.subscriber.email: d.content for d in claimed} == {
        c.subscriber.email: c.content for c in composed
    }
    one, two = (
        next(d.content for d in claimed if d.subscriber.email == e)
        for e in ("one@example.org", "two@example.org")
    )
    alone = {p.paper_id: p for p in one.papers}
    # The same paper for the same reason, with and without another interest it matches.
    pairs = [(alone[p.paper_id], p) for p in two.papers if p.paper_id in alone]
    assert any(a.reason == b.reason and not a.also_matches and b.also_matches for a, b in pairs)


def test_reading_goes_on_while_another_process_writes(storage: Storage, settings: Settings) -> None:
    # A composing or sending process holds the write lock for a batch at a time; the
    # other processes' reads (the next batch of subscribers, the digest counts) must
    # not queue behind it. On PostgreSQL readers never wait; on SQLite (WAL) a read
    # transaction must not begin with BEGIN IMMEDIATE.
    storage.save_subscriber("r@example.org", None, [Interest("rl", "robot")], JOINED)
    writer = Storage(settings.database)
    holding, release = threading.Event(), threading.Event()

    def write() -> None:
        with writer.engine.begin() as conn:
            conn.execute(text("UPDATE subscribers SET name = 'being written'"))
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        assert holding.wait(10)
        [batch] = list(storage.subscriber_batches(10))
        # The snapshot from before the write, read at once rather than after it.
        assert [(s.email, s.name) for s in batch] == [("r@example.org", None)]
        assert storage.digest_counts() == {}
    finally:
        release.set()
        thread.join()
        writer.close()
    after = storage.subscriber_by_email("r@example.org")
    assert after is not None and after.name == "being written"


def test_batches_and_pages_bring_each_subscriber_with_exactly_their_interests_in_order(
    storage: Storage,
) -> None:
    # Interests are read for a whole batch at once (by id range and list); a
    # subscriber must get their own, in the order they chose, never a neighbour's.
    new = [
        (
            f"s{n}@example.org",
            None,
            [Interest(f"topic {n}.{k}", f"word{n}x{k}") for k in reversed(range(n % 4))],
        )
        for n in range(25)
    ]
    assert storage.add_subscribers(new, NOW) == 25
    expected = {email: [i.name for i in chosen] for email, _, chosen in new}

    def seen(subscribers: list[Subscriber]) -> dict[str, list[str]]:
        return {s.email: [i.name for i in s.interests] for s in subscribers}

    everyone = [s for batch in storage.subscriber_batches(4) for s in batch]
    assert seen(everyone) == expected
    assert [s.id for s in everyone] == sorted(s.id for s in everyone)
    # Sharded batches skip every other id, so a batch's ids are not a contiguous range.
    halves = [
        [s for batch in storage.subscriber_batches(3, shard=(k, 2)) for s in batch]
        for k in range(2)
    ]
    assert seen(halves[0]) | seen(halves[1]) == expected
    assert {s.id % 2 for s in halves[0]} == {0} and {s.id % 2 for s in halves[1]} == {1}
    paged = storage.subscriber_page(everyone[4].id, 7)
    assert seen(paged) == {s.email: expected[s.email] for s in everyone[5:12]}


def test_reset_empties_every_table_it_owns(storage: Storage, settings: Settings) -> None:
    pipeline.ingest(storage, "s", seed_bytes(0), NOW - timedelta(hours=1))
    storage.save_subscriber("z@example.org", None, [Interest("rl", "robot")], JOINED)
    pipeline.compose_digests(storage, settings, NOW)
    assert storage.count_papers() and storage.digest_counts()
    storage.reset()
    assert storage.count_papers() == 0
    assert storage.subscribers() == [] and storage.digest_counts() == {}
    with storage.engine.connect() as conn:
        for table in ("deliveries", "paper_cards", "sightings", "payloads", "ingest_runs"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
    # And it is usable again at once.
    assert pipeline.ingest(storage, "s", seed_bytes(0), NOW).new > 0


def _ledger(storage: Storage) -> dict[int, int]:
    """Return how many ledger rows each subscriber id has."""
    with storage.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT subscriber_id, count(*) FROM deliveries GROUP BY subscriber_id")
        )
        return {int(s): int(n) for s, n in rows}


def _two_with_digests(storage: Storage, settings: Settings) -> tuple[int, int]:
    pipeline.ingest(storage, "s", seed_bytes(0), NOW - timedelta(hours=1))
    kept, _ = storage.save_subscriber("kept@example.org", None, [Interest("rl", "robot")], JOINED)
    gone, _ = storage.save_subscriber("gone@example.org", None, [Interest("rl", "robot")], JOINED)
    pipeline.compose_digests(storage, settings, NOW)
    assert _ledger(storage).keys() == {kept.id, gone.id}
    return kept.id, gone.id


def test_the_ledger_records_the_moment_of_composing_as_other_tables_do(
    storage: Storage, settings: Settings
) -> None:
    # The batch's moment is turned into a parameter once for all its rows; it must
    # read back as that moment and, on SQLite, be stored as the text sqlite3 itself
    # made of it when it adapted every row (what earlier versions wrote).
    _two_with_digests(storage, settings)
    with storage.engine.connect() as conn:
        ledger = conn.execute(select(deliveries.c.created_at).distinct()).scalars().all()
        digest = conn.execute(select(digests.c.created_at).distinct()).scalars().all()
        assert ledger == digest == [NOW]
        if storage.engine.dialect.name == "sqlite":
            stored = conn.execute(text("SELECT DISTINCT created_at FROM deliveries")).scalars()
            assert stored.all() == [NOW.astimezone(UTC).replace(tzinfo=None).isoformat(" ")]


def test_deleting_a_subscriber_deletes_their_ledger_and_only_theirs(
    storage: Storage, settings: Settings
) -> None:
    kept, gone = _two_with_digests(storage, settings)
    before = _ledger(storage)[kept]
    assert storage.delete_subscriber(gone) is True
    assert _ledger(storage) == {kept: before}
    assert storage.delete_subscriber(gone) is False
    # The same address subscribing again is a new person: offered the papers afresh.
    again, _ = storage.save_subscriber("gone@example.org", None, [Interest("rl", "robot")], JOINED)
    outcomes = {
        d.subscriber.email: d.outcome for d in pipeline.compose_digests(storage, settings, NOW)
    }
    assert outcomes["gone@example.org"] == "created"
    assert _ledger(storage)[again.id] == before


def test_forgetting_an_unconfirmed_sign_up_deletes_the_ledger_it_had(
    storage: Storage, settings: Settings
) -> None:
    # Added from the command line (never confirmed on the web), got digests, left,
    # then typed their address into the sign-up form again and never confirmed.
    kept, gone = _two_with_digests(storage, settings)
    with storage.engine.begin() as conn:
        conn.execute(
            text("UPDATE subscribers SET status = 'pending', confirmed_at = NULL WHERE id = :id"),
            {"id": gone},
        )
    assert storage.forget_unconfirmed(NOW + timedelta(days=8)) == 1
    assert _ledger(storage).keys() == {kept}
    assert storage.subscriber_by_id(gone) is None


def test_a_digest_for_a_subscriber_deleted_meanwhile_leaves_no_ledger_rows(
    storage: Storage, settings: Settings
) -> None:
    # A composer read the batch, then the subscriber was deleted before it stored.
    pipeline.ingest(storage, "s", seed_bytes(0), NOW - timedelta(hours=1))
    subscriber, _ = storage.save_subscriber(
        "late@example.org", None, [Interest("rl", "robot")], JOINED
    )
    [composed] = pipeline.compose_digests(storage, settings, NOW, record=False)
    assert composed.content is not None and composed.content.papers
    storage.delete_subscriber(subscriber.id)
    digest = NewDigest(composed.content, (), "<late@notifier.test>")
    assert storage.record_digests([digest], NOW) == [None]
    assert _ledger(storage) == {}
    assert storage.digest_counts() == {}


def test_the_ledger_still_refuses_a_paper_offered_twice(
    storage: Storage, settings: Settings
) -> None:
    kept, _ = _two_with_digests(storage, settings)
    with storage.engine.connect() as conn:
        paper_id, digest_id = conn.execute(
            text("SELECT paper_id, digest_id FROM deliveries WHERE subscriber_id = :s LIMIT 1"),
            {"s": kept},
        ).one()
    with pytest.raises(IntegrityError), storage.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO deliveries (subscriber_id, paper_id, digest_id, interest, score,"
                " reason, shown, created_at) VALUES (:s, :p, :d, 'rl', 1, 'again', true, :t)"
            ),
            {"s": kept, "p": paper_id, "d": digest_id, "t": NOW},
        )


def _alembic(storage: Storage, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with storage.engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)


def test_the_schema_head_is_the_newest_migration() -> None:
    # A new migration without SCHEMA_HEAD moved on would never be applied to an
    # existing database: migrate() compares against the constant, not the files.
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_HEAD


def test_a_database_one_migration_behind_is_brought_to_the_head(storage: Storage) -> None:
    _alembic(storage, "downgrade", "0007")
    assert storage.schema_revision() == "0007"
    assert storage.migrate() is True
    assert storage.schema_revision() == SCHEMA_HEAD
    assert storage.migrate() is False  # up to date: nothing applied, Alembic not needed


def test_upgrading_a_0007_ledger_keeps_every_row_and_its_key(
    storage: Storage, settings: Settings
) -> None:
    kept, gone = _two_with_digests(storage, settings)
    columns = "subscriber_id, paper_id, digest_id, interest, score, reason, shown"
    with storage.engine.connect() as conn:
        rows = sorted(conn.execute(text(f"SELECT {columns} FROM deliveries")).all())
    _alembic(storage, "downgrade", "0007")
    with storage.engine.connect() as conn:
        assert sorted(conn.execute(text(f"SELECT {columns} FROM deliveries")).all()) == rows
        ids = conn.execute(text("SELECT count(DISTINCT id) FROM deliveries")).scalar_one()
        assert ids == len(rows)
    _alembic(storage, "upgrade", "head")
    assert storage.schema_revision() == "0012"
    with storage.engine.connect() as conn:
        assert sorted(conn.execute(text(f"SELECT {columns} FROM deliveries")).all()) == rows
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []
    # And the upgraded ledger works as before: nothing offered twice, deletes reach it.
    again = pipeline.compose_digests(storage, settings, NOW + timedelta(days=1))
    assert {d.outcome for d in again} == {"empty"}
    storage.delete_subscriber(gone)
    assert _ledger(storage).keys() == {kept}


def test_a_digest_offering_a_paper_already_offered_is_dropped_whole(
    storage: Storage, settings: Settings
) -> None:
    # As when a concurrent composer offered the papers first: the ledger's key refuses
    # them (on PostgreSQL inside a COPY), and the digest goes with its ledger rows.
    pipeline.ingest(storage, "s", seed_bytes(0), NOW - timedelta(hours=1))
    subscriber, _ = storage.save_subscriber(
        "k@example.org", None, [Interest("rl", "robot")], JOINED
    )
    [drafted] = pipeline.compose_digests(storage, settings, NOW, record=False)
    [stored] = pipeline.compose_digests(storage, settings, NOW)
    assert drafted.content is not None and stored.content is not None
    ledger = _ledger(storage)
    later = dataclasses.replace(drafted.content, period="2026-W99")
    assert storage.record_digests([NewDigest(later, (), "<again@notifier.test>")], NOW) == [None]
    assert _ledger(storage) == ledger
    assert [d.period for d in storage.digest_history(subscriber.id, 10)] == [stored.content.period]

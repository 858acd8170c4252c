"""Each subscriber on their own clock: cadences, zones, DST and downtime, on an injected clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from notifier import pipeline
from notifier.models import Interest
from notifier.schedule import (
    Cadence,
    Slot,
    last_slot,
    next_due,
    next_slot,
    parse_weekday,
    resolve,
)
from notifier.settings import Settings, load_settings
from notifier.storage import Storage
from notifier.storage.schema import deliveries, digests, papers, subscribers
from tests.conftest import SEED_FILES, Cli, SmtpServer, seed_bytes


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def lexical_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    """Return settings with lexical matching (no model: these tests compose hundreds of times)."""
    (tmp_path / "state").mkdir(exist_ok=True)
    return load_settings(
        state_dir=tmp_path / "state",
        database_url=database_url,
        sender_address="digests@notifier.test.example",
        matching="lexical",
        **overrides,
    )


@pytest.fixture
def lexical(tmp_path: Path, database_url: str) -> Settings:
    return lexical_settings(tmp_path, database_url)


@pytest.fixture
def store(lexical: Settings) -> Storage:
    storage = Storage(lexical.database)
    storage.migrate()
    return storage


def subscribe(storage: Storage, email: str, now: datetime, **schedule: object) -> None:
    storage.save_subscriber(
        email, None, [Interest("agents", "agent OR agents")], now, schedule=schedule
    )


def simulate(
    storage: Storage, settings: Settings, start: datetime, end: datetime, step: timedelta
) -> dict[str, list[tuple[str, datetime]]]:
    """Compose at every step from start to end; return each email's (period, composed at)."""
    moment = start
    while moment <= end:
        pipeline.compose_digests(storage, settings, moment)
        moment += step
    query = (
        select(subscribers.c.email, digests.c.period, digests.c.created_at)
        .join(subscribers, subscribers.c.id == digests.c.subscriber_id)
        .order_by(digests.c.id)
    )
    found: dict[str, list[tuple[str, datetime]]] = {}
    with storage.engine.connect() as conn:
        for email, period, created in conn.execute(query):
            found.setdefault(email, []).append((period, created.replace(tzinfo=UTC)))
    return found


# -- the pure rules -----------------------------------------------------------


def test_daily_weekdays_and_weekly_slots_across_a_week() -> None:
    daily = Cadence("daily", time(7), "Europe/Berlin")
    weekdays = Cadence("weekdays", time(7), "America/New_York")
    weekly = Cadence("weekly", time(18), "UTC", weekday=parse_weekday("wed"))
    saturday_noon = utc(2026, 11, 21, 12)
    assert last_slot(daily, saturday_noon) == Slot("2026-11-21", utc(2026, 11, 21, 6))
    # Weekdays: Saturday's last slot is Friday's, the next is Monday's (EST is UTC-5).
    assert last_slot(weekdays, saturday_noon) == Slot("2026-11-20", utc(2026, 11, 20, 12))
    assert next_slot(weekdays, saturday_noon) == Slot("2026-11-23", utc(2026, 11, 23, 12))
    # Weekly digests are keyed by ISO week.
    assert last_slot(weekly, saturday_noon) == Slot("2026-W47", utc(2026, 11, 18, 18))
    assert next_slot(weekly, saturday_noon) == Slot("2026-W48", utc(2026, 11, 25, 18))
    assert weekly.describe() == "weekly on Wednesday at 18:00 (UTC)"


@pytest.mark.parametrize(
    ("zone", "day", "at", "due"),
    [
        # Spring forward: 02:30 does not exist; RFC 5545 reads it with the old offset (03:30).
        ("Europe/Berlin", (2026, 3, 29), time(2, 30), utc(2026, 3, 29, 1, 30)),
        ("America/New_York", (2026, 3, 8), time(2, 30), utc(2026, 3, 8, 7, 30)),
        # Fall back: the time happens twice; the first occurrence counts.
        ("Europe/Berlin", (2026, 10, 25), time(2, 30), utc(2026, 10, 25, 0, 30)),
        ("America/New_York", (2026, 11, 1), time(1, 30), utc(2026, 11, 1, 5, 30)),
    ],
)
def test_a_send_time_that_dst_skips_or_repeats_has_one_slot(
    zone: str, day: tuple[int, int, int], at: time, due: datetime
) -> None:
    cadence = Cadence("daily", at, zone)
    period = f"{day[0]:04d}-{day[1]:02d}-{day[2]:02d}"
    slot = last_slot(cadence, due)
    assert slot is not None and (slot.period, slot.due_at) == (period, due)
    assert last_slot(cadence, due - timedelta(seconds=1)).period != period  # type: ignore[union-attr]
    # Two hours later (past any repeated hour) the same slot is still the latest one.
    assert last_slot(cadence, due + timedelta(hours=2)) == slot


def test_unknown_choices_are_refused_with_the_expected_form() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        Cadence("daily", time(7), "Mars/Olympus")
    # A folder of zones, which zoneinfo tries to open as a file.
    with pytest.raises(ValueError, match="unknown time zone 'America'"):
        Cadence("daily", time(7), "America")
    with pytest.raises(ValueError, match="cadence must be one of daily, weekdays, weekly"):
        Cadence("hourly")
    with pytest.raises(ValueError, match="weekday must be a day name"):
        parse_weekday("someday")
    default = Cadence("weekly", time(7), "Europe/Berlin", 4)
    assert resolve(default, None, "09:15", None, None) == Cadence(
        "weekly", time(9, 15), "Europe/Berlin", 4
    )


# -- composing on the clock, on each backend ----------------------------------


def test_each_cadence_gets_one_digest_per_period_at_its_local_time(
    store: Storage, lexical: Settings
) -> None:
    monday = utc(2026, 11, 16)
    pipeline.ingest(store, "seed", seed_bytes(0), monday - timedelta(hours=1))
    subscribe(store, "daily@example.org", monday, send_time="07:00", timezone="Europe/Berlin")
    subscribe(
        store,
        "weekdays@example.org",
        monday,
        cadence="weekdays",
        send_time="07:00",
        timezone="America/New_York",
    )
    subscribe(store, "weekly@example.org", monday, cadence="weekly", send_time="18:00", weekday=2)
    found = simulate(store, lexical, monday, utc(2026, 11, 22, 23, 30), timedelta(minutes=30))
    # Subscribed on Monday 00:00 UTC: the first digest is at each one's first slot
    # after that, never at once for a slot before they subscribed; then one per period.
    assert found["daily@example.org"] == [
        (f"2026-11-{d}", utc(2026, 11, d, 6)) for d in range(16, 23)
    ]
    assert found["weekdays@example.org"] == [
        (f"2026-11-{d}", utc(2026, 11, d, 12)) for d in range(16, 21)
    ]
    assert found["weekly@example.org"] == [("2026-W47", utc(2026, 11, 18, 18))]


def test_the_first_digest_comes_at_the_first_slot_after_subscribing(
    store: Storage, lexical: Settings
) -> None:
    # Monday 03:00 in New York; the weekly digest is on Mondays at 09:00 there.
    signed_up = utc(2026, 11, 16, 8)
    pipeline.ingest(store, "seed", seed_bytes(0), signed_up - timedelta(hours=1))
    subscribe(
        store,
        "weekly@example.org",
        signed_up,
        cadence="weekly",
        send_time="09:00",
        timezone="America/New_York",
        weekday=0,
    )
    subscribe(store, "daily@example.org", signed_up)  # daily at 00:00 UTC
    found = simulate(store, lexical, signed_up, utc(2026, 11, 17, 12), timedelta(minutes=30))
    assert found["weekly@example.org"] == [("2026-W47", utc(2026, 11, 16, 14))]
    assert found["daily@example.org"] == [("2026-11-17", utc(2026, 11, 17))]
    # What status says agrees: the next digest, from the moment of signing up, is then.
    subscriber = store.subscriber_by_email("weekly@example.org")
    _, due = next_due(lexical.default_cadence, subscriber, signed_up)
    assert due == utc(2026, 11, 16, 14)


@pytest.mark.parametrize(
    ("zone", "at", "start", "expected"),
    [
        (
            "Europe/Berlin",
            "02:30",
            utc(2026, 3, 28),
            [
                (28, utc(2026, 3, 28, 1, 30)),
                (29, utc(2026, 3, 29, 1, 30)),
                (30, utc(2026, 3, 30, 0, 30)),
            ],
        ),
        (
            "Europe/Berlin",
            "02:30",
            utc(2026, 10, 24),
            [
                (24, utc(2026, 10, 24, 0, 30)),
                (25, utc(2026, 10, 25, 0, 30)),
                (26, utc(2026, 10, 26, 1, 30)),
            ],
        ),
        (
            "America/New_York",
            "02:30",
            utc(2026, 3, 7, 5),
            [(7, utc(2026, 3, 7, 7, 30)), (8, utc(2026, 3, 8, 7, 30)), (9, utc(2026, 3, 9, 6, 30))],
        ),
        (
            "America/New_York",
            "01:30",
            utc(2026, 10, 31, 5),
            [
                (31, utc(2026, 10, 31, 5, 30)),
                (1, utc(2026, 11, 1, 5, 30)),
                (2, utc(2026, 11, 2, 6, 30)),
            ],
        ),
    ],
)
def test_dst_transitions_send_once_at_the_next_valid_time(  # noqa: PLR0917
    store: Storage,
    lexical: Settings,
    zone: str,
    at: str,
    start: datetime,
    expected: list[tuple[int, datetime]],
) -> None:
    pipeline.ingest(store, "seed", seed_bytes(0), start - timedelta(days=1))
    subscribe(store, "dst@example.org", start - timedelta(days=1), send_time=at, timezone=zone)
    # Primed the day before, so the run at `start` has nothing to catch up.
    simulate(
        store, lexical, start - timedelta(minutes=15), start - timedelta(minutes=15), timedelta(1)
    )
    found = simulate(store, lexical, start, start + timedelta(hours=71), timedelta(minutes=15))
    composed = found["dst@example.org"][1:]
    assert [(int(period[-2:]), when) for period, when in composed] == expected


def test_after_a_three_day_outage_one_digest_covers_every_missed_day(
    store: Storage, lexical: Settings
) -> None:
    day1 = utc(2026, 3, 10, 6)
    subscribe(store, "a@example.org", day1 - timedelta(days=1), send_time="07:00")
    pipeline.ingest(store, "s0", seed_bytes(0), day1)
    simulate(store, lexical, day1 + timedelta(hours=1), day1 + timedelta(hours=1), timedelta(1))
    # Down from day 1 evening to day 5 morning; listings kept arriving (another host ingested).
    for k in (1, 2, 3):
        pipeline.ingest(store, f"s{k}", seed_bytes(k), day1 + timedelta(days=k))
    found = simulate(
        store,
        lexical,
        day1 + timedelta(days=4, hours=1),
        day1 + timedelta(days=4, hours=12),
        timedelta(hours=1),
    )
    assert [period for period, _ in found["a@example.org"]] == ["2026-03-10", "2026-03-14"]
    # That one digest holds papers first seen on each missed day, none offered before.
    query = (
        select(digests.c.period, papers.c.first_seen_at)
        .select_from(deliveries)
        .join(digests, digests.c.id == deliveries.c.digest_id)
        .join(papers, papers.c.id == deliveries.c.paper_id)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    days = {seen.day for period, seen in rows if period == "2026-03-14"}
    assert days == {11, 12, 13}


def test_a_paused_subscriber_gets_nothing_until_resumed(store: Storage, lexical: Settings) -> None:
    now = utc(2026, 3, 11, 8)
    pipeline.ingest(store, "s", seed_bytes(0), now - timedelta(hours=1))
    subscribe(store, "p@example.org", now - timedelta(days=1))
    store.save_subscriber("p@example.org", None, [], now, status="paused")
    assert pipeline.compose_digests(store, lexical, now) == []
    store.save_subscriber("p@example.org", None, [], now, status="active")
    [resumed] = pipeline.compose_digests(store, lexical, now + timedelta(minutes=5))
    assert resumed.subscriber.email == "p@example.org" and resumed.outcome == "created"


# -- from the command line ----------------------------------------------------


def test_an_empty_period_sends_nothing_unless_asked_and_status_says_why(
    run: Cli, smtp_server: SmtpServer
) -> None:
    run.env["NOTIFIER_SMTP_URL"] = smtp_server.url
    run("ingest", str(SEED_FILES[0]))
    nothing = "x=zyzzyvaquark"
    assert run.subscribe_earlier("quiet@example.org", "--interest", nothing).exit_code == 0
    noted = run.subscribe_earlier("note@example.org", "--interest", nothing, "--empty-note")
    assert "a short note when nothing is new" in noted.output
    result = run("digest")
    assert result.exit_code == 0, result.output
    [note] = smtp_server.handler.received
    assert note.rcpt_tos == ["note@example.org"]
    message = note.message
    assert str(message["Subject"]).startswith("Nothing new for you (")
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "you have not seen matched your interests" in text
    status = run("status", "quiet@example.org").output
    assert "empty" in status and "you have not seen matched your interests" in status


def test_subscriber_edit_sets_the_clock_pauses_and_resumes(run: Cli) -> None:
    run("ingest", str(SEED_FILES[0]))
    assert run.subscribe_earlier("a@example.org", "--interest", "agents=agent").exit_code == 0
    edited = run(
        "subscriber",
        "edit",
        "a@example.org",
        "--cadence",
        "weekly",
        "--weekday",
        "fri",
        "--send-time",
        "7:30",
        "--timezone",
        "Europe/Berlin",
    )
    assert edited.exit_code == 0, edited.output
    assert "schedule: weekly on Friday at 07:30 (Europe/Berlin); next digest " in edited.output
    bad = run("subscriber", "edit", "a@example.org", "--timezone", "Mars/Olympus")
    assert bad.exit_code == 1
    assert bad.stderr.strip() == (
        "notifier: error: unknown time zone 'Mars/Olympus': use an IANA name such as "
        "Europe/Berlin or UTC"
    )
    assert "Europe/Berlin" in run("status", "a@example.org").output  # unchanged
    paused = run("subscriber", "edit", "a@example.org", "--pause")
    assert "schedule: none while paused" in paused.output
    # Pausing stops email, not the private feed a reader may follow.
    assert run("feeds").exit_code == 0
    feed_url = json.loads(run("subscribers", "--json").output)["feed"]
    token_feed = Path(run.env["NOTIFIER_STATE_DIR"]) / "feeds" / "subscribers"
    assert any(feed_url.endswith(f.name) for f in token_feed.iterdir())
    assert "a@example.org" not in run("digest", "--dry-run").output
    assert "--resume" in run("status", "a@example.org").output
    run("subscriber", "edit", "a@example.org", "--resume", "--cadence", "default")
    assert "a@example.org: " in run("digest", "--dry-run").output
    missing = run("subscriber", "edit", "nobody@example.org", "--pause")
    assert missing.exit_code == 1 and "no subscriber with the address" in missing.stderr


def test_composing_in_two_processes_gives_every_subscriber_one_digest(
    tmp_path: Path, database_url: str
) -> None:
    settings = lexical_settings(tmp_path, database_url, compose_workers=2)
    storage = Storage(settings.database)
    storage.migrate()
    now = utc(2026, 3, 11, 8)
    pipeline.ingest(storage, "s", seed_bytes(0), now - timedelta(hours=1))
    for k in range(25):
        subscribe(storage, f"r{k}@example.org", now - timedelta(days=1))
    first = pipeline.compose_due(storage, settings, now)
    assert first["created"] + first["empty"] == 25 and first["created"] > 0
    with storage.engine.connect() as conn:
        owners = [row[0] for row in conn.execute(select(digests.c.subscriber_id))]
    assert sorted(owners) == sorted(set(owners)) and len(owners) == 25
    again = pipeline.compose_due(storage, settings, now + timedelta(minutes=5))
    assert again == {"up to date": 25}
    storage.close()

"""Composers on several processes (or machines) share one PostgreSQL: each digest once."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from notifier import pipeline
from notifier.models import Interest
from notifier.pipeline.parts import PARTS
from notifier.settings import Settings, load_settings
from notifier.storage import Storage
from notifier.storage.schema import digests
from tests.conftest import JOINED, NOW, PG_SECRET_KEY, seed_bytes

pytestmark = pytest.mark.postgres
SUBSCRIBERS = 2_400


def _settings(pg_url: str, state: str) -> Settings:
    """Return lexical settings on the test's schema (no embedding model needed)."""
    return load_settings(
        state_dir=state,
        database_url=pg_url,
        sender_address="digests@notifier.test.example",
        secret_key=PG_SECRET_KEY,
        matching="lexical",
    )


def _populate(pg_url: str) -> Storage:
    """Store a day's seed listing and SUBSCRIBERS subscribers, each with a query."""
    storage = Storage(pg_url)
    storage.migrate()
    pipeline.ingest(storage, "day0", seed_bytes(0), NOW - timedelta(hours=1))
    words = ["learning", "language", "robot*", "vision", "reasoning", "agents"]
    storage.add_subscribers(
        [
            (f"reader{n}@example.org", None, [Interest("topic", query=words[n % len(words)])])
            for n in range(SUBSCRIBERS)
        ],
        JOINED,
    )
    return storage


def _compose(data: dict[str, Any], start: Any) -> dict[str, int]:
    """Compose in a process of its own once every composer is ready; return its outcomes."""
    settings = Settings(**data)
    storage = Storage(settings.database)
    start.wait()
    try:
        return dict(pipeline.compose_due(storage, settings, NOW))
    finally:
        storage.close()


def test_two_composing_processes_give_every_subscriber_exactly_one_digest(
    pg_url: str, tmp_path: Any
) -> None:
    storage = _populate(pg_url)
    settings = _settings(pg_url, str(tmp_path))
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Manager().Barrier(2)
    with spawn.Pool(2) as pool:
        outcomes = pool.starmap(_compose, [(settings.model_dump(), start)] * 2)
    created = [o.get("created", 0) + o.get("empty", 0) for o in outcomes]
    # Each composed a share, and together every subscriber once.
    assert all(n > 0 for n in created), outcomes
    assert sum(created) == SUBSCRIBERS
    with storage.engine.connect() as conn:
        per_subscriber = conn.execute(
            select(digests.c.subscriber_id, func.count()).group_by(digests.c.subscriber_id)
        ).all()
    assert len(per_subscriber) == SUBSCRIBERS
    assert {n for _, n in per_subscriber} == {1}
    # A third run finds everyone up to date.
    again = pipeline.compose_due(storage, settings, NOW)
    assert again["up to date"] == SUBSCRIBERS
    assert not again["created"]
    storage.close()


def test_a_part_held_by_another_composer_is_composed_once_it_is_let_go(
    pg_url: str, tmp_path: Any
) -> None:
    storage = _populate(pg_url)
    settings = _settings(pg_url, str(tmp_path))
    held_part = 5
    outcomes: Counter[str] = Counter()
    with storage.part_claim(held_part) as held:
        assert held
        composer = threading.Thread(
            target=lambda: outcomes.update(
                pipeline.compose_due(storage, settings, NOW, claims=(0, 1))
            )
        )
        composer.start()
        # Everything but the held part gets composed; the composer then waits.
        others = SUBSCRIBERS - len([n for n in range(1, SUBSCRIBERS + 1) if n % PARTS == held_part])
        deadline = time.monotonic() + 60
        while _digests(storage) < others and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        assert composer.is_alive()
        assert _digests(storage) == others
    composer.join(20)
    assert not composer.is_alive()
    assert outcomes["created"] + outcomes["empty"] == SUBSCRIBERS
    storage.close()


def _digests(storage: Storage) -> int:
    """Return how many digests are stored."""
    with storage.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(digests)).scalar_one())

"""The demo: the bundled listing snapshots replayed as consecutive days, with three subscribers.

The snapshots (seeds/) are also the papers the evaluation set judges (seed_papers).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Protocol

from notifier.app import make_outbox, make_renderer
from notifier.delivery import Transport
from notifier.errors import NotifierError
from notifier.ingest import parse_listing
from notifier.matching import matching_for
from notifier.models import ComposeResult, IngestSummary, Interest, Paper, PaperData
from notifier.pipeline import (
    build_feeds,
    compose_digests,
    ingest,
    period_of,
    send_pending,
)
from notifier.render.email import EmailRenderer
from notifier.settings import Settings
from notifier.storage import Storage

DEMO_SUBSCRIBERS = (
    (
        "ada@example.org",
        "Ada Lovelace",
        (
            Interest(
                "robot-learning",
                "robot* OR manipulation",
                "robots learning manipulation skills from demonstrations and videos",
            ),
            Interest(
                "imitation", '"imitation learning" OR "behavior cloning" OR "behavioral cloning"'
            ),
        ),
    ),
    (
        "grace@example.org",
        "Grace Hopper",
        (
            Interest(
                "llm-reasoning",
                about="making large language models reason better on math and code, with chain "
                "of thought or reinforcement learning",
            ),
            Interest("diffusion", "diffusion -robot -robotic", sensitivity="broad"),
        ),
    ),
    (
        "alan@example.org",
        None,
        (
            Interest("offline-rl", '"offline reinforcement learning" OR "offline RL"'),
            Interest(
                "world-models",
                about="world models: learning a model of the environment to plan or to train "
                "agents inside it",
            ),
        ),
    ),
)


def demo_seeds() -> list[tuple[str, bytes]]:
    """Return the bundled listing snapshots, in order."""
    folder = resources.files("notifier") / "demo" / "seeds"
    entries = sorted((e for e in folder.iterdir() if e.name.endswith(".txt")), key=lambda e: e.name)
    return [(e.name, e.read_bytes()) for e in entries]


def seed_papers() -> list[Paper]:
    """Return the distinct papers of the bundled snapshots (what the eval set judges)."""
    seen: dict[str, PaperData] = {}
    for name, data in demo_seeds():
        for paper in parse_listing("snapshot", data, name, None).papers:
            seen.setdefault(paper.key, paper)
    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        Paper(i, p.key, f"urn:notifier:{p.key}", p.title, p.abstract, "", epoch, epoch)
        for i, p in enumerate(seen.values())
    ]


@dataclass
class DemoReport:
    """What the demo did, day by day."""

    days: list[tuple[str, IngestSummary, list[ComposeResult]]] = field(default_factory=list)
    sent: int = 0
    feeds: list[Path] = field(default_factory=list)


def _fixed_clock(moment: datetime) -> Callable[[], datetime]:
    """Return a clock stopped at moment (the demo replays past days)."""
    return lambda: moment


DemoDay = tuple[str, IngestSummary, list[ComposeResult]]


async def run_demo(
    storage: Storage,
    settings: Settings,
    renderer: EmailRenderer,
    outbox: Transport,
    now: datetime,
    *,
    on_day: Callable[[DemoDay], None] | None = None,
) -> DemoReport:
    """Replay the bundled snapshots as consecutive days ending today, with three subscribers.

    on_day hears of each day as soon as it is done (the command prints it then).
    """
    seeds = demo_seeds()
    first_day = now - timedelta(days=len(seeds) - 1)
    for email, name, interests in DEMO_SUBSCRIBERS:
        # The day before: a first digest is due at the first slot after signing up.
        storage.save_subscriber(email, name, interests, first_day - timedelta(days=1))
    report = DemoReport()
    for offset, (name, data) in enumerate(seeds):
        day = first_day + timedelta(days=offset)
        summary = ingest(storage, f"demo/{name}", data, day - timedelta(hours=1))
        composed = compose_digests(storage, settings, day)
        sent = await send_pending(storage, renderer, outbox, clock=_fixed_clock(day))
        report.sent += sent.recorded
        report.days.append((period_of(day), summary, composed))
        if on_day is not None:
            on_day(report.days[-1])
    report.feeds = build_feeds(storage, settings, now)
    return report


class DemoListener(Protocol):
    """Hears how `notifier demo` goes, as it goes."""

    def preparing(self) -> None:
        """Hear that the matching model is being prepared (the first time on a machine is slow)."""

    def day_done(self, day: DemoDay) -> None:
        """Hear of one day replayed: its period, the listing ingested, the digests composed."""


def play_demo(
    storage: Storage,
    settings: Settings,
    now: datetime,
    listener: DemoListener,
    *,
    reset: bool = False,
) -> DemoReport:
    """Run the demo on an empty database, writing digests to the outbox (see run_demo).

    With reset, a database that holds data is emptied first, and the outbox and
    feeds deleted; without, it raises NotifierError.
    """
    if storage.count_papers() or storage.subscribers():
        if not reset:
            raise NotifierError(
                f"the database {storage.safe_url()} already holds data; "
                "run `notifier demo --reset` to start over (deletes it)"
            )
        storage.reset()
        for folder in (settings.outbox_dir, settings.feeds_dir):
            shutil.rmtree(folder, ignore_errors=True)
    # Said before the wait, not after it: the first run on a machine prepares the
    # embedding model, which takes a while.
    listener.preparing()
    matching_for(settings)
    return asyncio.run(
        run_demo(
            storage,
            settings,
            make_renderer(settings),
            make_outbox(settings),
            now,
            on_day=listener.day_done,
        )
    )

"""Composing alone: N subscribers x 3 interests against 500 papers, one process, SQLite.

Prepares one database (synthetic subscribers, by default each writing their
own interests, see synthetic.py; their stored embeddings; a day's listing and
its papers' embeddings), then composes every due digest in a fresh copy of
it, several times. With
--reference DIR (another checkout of notifier, e.g. a `git worktree` of main)
the runs alternate between that code and this one, and the medians and their
ratio are printed, so a noisy machine affects both alike.

    .venv/bin/python bench/compose_rate.py --subscribers 20000 --reference /tmp/base
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from checkouts import run_child
from synthetic import add_mode_option, embed_interests, listing, populate

from notifier import pipeline
from notifier.matching import paper_index
from notifier.settings import load_settings
from notifier.storage import Storage

NOW = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)
HERE = Path(__file__).resolve().parent.parent

# Run in a child process with the code under test first on sys.path.
CHILD = """
import json, resource, sys, time
from datetime import datetime
from notifier import pipeline
from notifier.settings import load_settings
from notifier.storage import Storage
settings = load_settings(None)
storage = Storage(settings.database)
storage.migrate()
matching = pipeline.matching_for(settings)
started = time.perf_counter()
outcomes = pipeline.compose_due(storage, settings, datetime.fromisoformat(sys.argv[1]), matching)
print(json.dumps({"seconds": time.perf_counter() - started, "created": outcomes["created"],
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def environment(state: str, database: str, matching: str) -> dict[str, str]:
    """Return the environment of one compose run."""
    return os.environ | {
        "NOTIFIER_STATE_DIR": state,
        "NOTIFIER_DATABASE_URL": database,
        "NOTIFIER_MATCHING": matching,
        "NOTIFIER_MAX_PAPERS": "20",
        "NOTIFIER_COMPOSE_WORKERS": "1",
        "NOTIFIER_SENDER_ADDRESS": "digests@bench.example.org",
    }


def main() -> None:
    """Prepare the database, then time compose runs (alternating with --reference)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--papers", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--matching", default="hybrid", choices=("lexical", "semantic", "hybrid"))
    parser.add_argument("--reference", type=Path, help="another checkout to compare against")
    add_mode_option(parser)
    args = parser.parse_args()
    mode = args.subscribers_from

    with tempfile.TemporaryDirectory() as prepared:
        template = Path(prepared) / "bench.db"
        os.environ.update(environment(prepared, f"sqlite:///{template}", args.matching))
        settings = load_settings(None)
        storage = Storage(settings.database)
        storage.migrate()
        started = time.perf_counter()
        populate(storage, args.subscribers, NOW - timedelta(days=1), mode=mode)
        matching = pipeline.matching_for(settings)
        embed_interests(storage, matching)
        data = listing(args.papers, seed=1, mode=mode)
        pipeline.ingest(storage, "daily", data, NOW - timedelta(minutes=5))
        # Embed the papers now: that is a fixed ~13 s per run (bench/daily_cycle.py counts
        # it); here only the per-subscriber work is timed.
        paper_index(storage, matching, storage.latest_papers(args.papers))
        storage.close()
        print(
            f"set-up: {args.subscribers:,} subscribers x 3 interests ({mode}), {args.papers} "
            f"papers ({args.matching}) in {time.perf_counter() - started:.0f} s"
        )
        codes = {"this": HERE}
        if args.reference is not None:
            codes = {"reference": args.reference.resolve(), **codes}
        seconds: dict[str, list[float]] = {name: [] for name in codes}
        for run in range(args.runs):
            for name, code in codes.items():
                result = run_child(
                    CHILD,
                    code,
                    template,
                    lambda state, url: environment(state, url, args.matching),
                    NOW.isoformat(),
                )
                seconds[name].append(result["seconds"])
                rate = result["created"] / result["seconds"]
                print(
                    f"run {run + 1} {name:<9} {result['seconds']:6.1f} s  "
                    f"{int(result['created']):,} digests  {rate:,.0f}/s  "
                    f"peak RSS {result['rss']:,.0f} MiB"
                )
    for name, values in seconds.items():
        median = statistics.median(values)
        print(
            f"{name:<9} median {median:6.1f} s  "
            f"{median * 1000 / args.subscribers:.2f} ms per subscriber"
        )
    if args.reference is not None:
        ratio = statistics.median(seconds["reference"]) / statistics.median(seconds["this"])
        print(f"speed-up of this over the reference: {ratio:.2f}x")


if __name__ == "__main__":
    main()

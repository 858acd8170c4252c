"""Ingest alone: a synthetic listing of N papers into an empty database, then the same again.

Each run times two ingests of the same listing with `pipeline.ingest` (parse,
diff, store in one transaction, the raw bytes kept), each in a fresh process
as `notifier ingest` runs: the first into an empty database (a new SQLite
file, or on PostgreSQL this script's own schema emptied) stores every paper
as new; the second finds every paper seen and stores only its run and
sightings. A fresh process for the second, because psycopg prepares a
statement run five times on a connection, and PostgreSQL may keep the plan it
made for the diff's lookups while the table was empty (no statistics): one
process doing both spent about 17 s of the second ingest in those lookups on either
code (2026-12-06), which measures that and not the writes. With --reference DIR
(another checkout of notifier, e.g. a `git worktree` of main) the runs
alternate between that code and this one, and the medians and their ratio are
printed, so a noisy machine affects both alike.

    .venv/bin/python bench/ingest_rate.py [--papers N] [--runs N] [--database URL]
        [--reference /tmp/base]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from machine import cpu_ticks, steal_share
from sqlalchemy import create_engine
from synthetic import listing

from notifier.storage import Storage

NOW = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)
HERE = Path(__file__).resolve().parent.parent
STEPS = ("first", "again")  # all papers new, then all seen

# Run in a child process with the code under test first on sys.path.
CHILD = """
import json, sys, time
from datetime import datetime
from pathlib import Path
import notifier
from notifier import pipeline
from notifier.storage import Storage
url, path, now = sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3])
data = Path(path).read_bytes()
storage = Storage(url)
storage.migrate()  # connects; the schema is there already
started, cpu = time.perf_counter(), time.process_time()
summary = pipeline.ingest(storage, "bench", data, now)
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
storage.close()
print(json.dumps({"code": notifier.__file__, "seconds": seconds, "cpu": cpu, "new": summary.new}))
"""


def run_child(code: Path, url: str, listing_path: Path, now: datetime) -> dict[str, Any]:
    """Run CHILD with code first on the path: one ingest of the listing into url at now."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(listing_path), now.isoformat()],
        env=os.environ | {"PYTHONPATH": str(code)},
        cwd=listing_path.parent,  # not a checkout: `python -c` puts the cwd first on the path
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    if not result["code"].startswith(str(code)):
        raise SystemExit(f"the child ran {result['code']}, not the code in {code}")
    return result


@contextmanager
def empty_databases(database: str | None, work: Path) -> Iterator[Callable[[str], str]]:
    """Yield a function that returns the URL of an empty, migrated database for one run.

    SQLite: a new file per run in work. PostgreSQL: one schema of this script's
    own, emptied for every run (the other schemas of the database are left
    alone) and dropped at the end.
    """
    admin = None if database is None else create_engine(database)
    schema = f"bench_ingest_{uuid.uuid4().hex[:8]}"
    if admin is not None:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")

    def empty(run: str) -> str:
        if database is None:
            for old in work.glob("run-*.db*"):
                old.unlink()
            url = f"sqlite:///{work}/run-{run}.db"
        else:
            url = f"{database}{'&' if '?' in database else '?'}options=-csearch_path%3D{schema}"
        storage = Storage(url)
        storage.migrate()
        storage.reset()
        storage.close()
        return url

    try:
        yield empty
    finally:
        if admin is not None:
            with admin.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            admin.dispose()


def main() -> None:
    """Make the listing, then time ingest runs (alternating with --reference)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", help="PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument("--reference", type=Path, help="another checkout to compare against")
    args = parser.parse_args()

    codes = {"this": HERE}
    if args.reference is not None:
        codes = {"reference": args.reference.resolve(), **codes}
    seconds: dict[str, dict[str, list[float]]] = {name: {s: [] for s in STEPS} for name in codes}
    with tempfile.TemporaryDirectory() as work:
        listing_path = Path(work) / "listing.txt"
        listing_path.write_bytes(listing(args.papers, seed=1))
        size = listing_path.stat().st_size / 1e6
        print(f"listing: {args.papers:,} papers, {size:.1f} MB; database: ", end="")
        print("SQLite" if args.database is None else "PostgreSQL (a schema of its own)")
        with empty_databases(args.database, Path(work)) as empty:
            for run in range(args.runs):
                for name, code in codes.items():
                    url = empty(f"{run}-{name}")
                    before = cpu_ticks()
                    result = {
                        step: run_child(code, url, listing_path, NOW + timedelta(hours=hours))
                        for hours, step in enumerate(STEPS)
                    }
                    steal = steal_share(before, cpu_ticks())
                    parts = []
                    for step in STEPS:
                        timing = result[step]
                        seconds[name][step].append(timing["seconds"])
                        parts.append(
                            f"{step} {timing['seconds']:5.2f} s "
                            f"({args.papers / timing['seconds']:6,.0f}/s, "
                            f"CPU {timing['cpu']:4.2f} s, {timing['new']:,} new)"
                        )
                    print(f"run {run + 1} {name:<9} {'  '.join(parts)}  steal {steal}")
    for name, steps in seconds.items():
        medians = {step: statistics.median(values) for step, values in steps.items()}
        print(
            f"{name:<9} median "
            + ", ".join(
                f"{step} {medians[step]:5.2f} s ({args.papers / medians[step]:,.0f} papers/s)"
                for step in STEPS
            )
        )
    if args.reference is not None:
        for step in STEPS:
            ratio = statistics.median(seconds["reference"][step]) / statistics.median(
                seconds["this"][step]
            )
            print(f"speed-up of this over the reference, {step}: {ratio:.2f}x")


if __name__ == "__main__":
    main()

"""The whole daily cycle: 100,000 subscribers x 3 interests, 500 new papers, into smtp-sink.

Set-up (not timed): synthetic subscribers (synthetic.py) and their interest
embeddings, as a previous day leaves them. Timed, one stage after the other as
`notifier run-once` would: ingest the day's listing (parse, diff, store),
compose every digest (embed the new papers, match, record digests and ledger),
and send them all with `notifier send --workers 2` to Postfix's smtp-sink,
until the last message is accepted. Printed per stage: wall time, peak RSS,
the share of CPU time the hypervisor took and the share left idle, the CPU
time of the busiest programs (bench/machine.py: python is this script and the
`notifier send` workers, postgres the server); on PostgreSQL also the WAL the
server wrote and the checkpoints it made.

Run: .venv/bin/python bench/daily_cycle.py [--subscribers N] [--database URL]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from machine import cpu_by_program, cpu_shares, cpu_ticks, program_shares
from postfix import DEFAULT_CACHE_DIR, postfix_tools, sink
from send_rate import bench_env, timed_send
from synthetic import embed_interests, listing, populate

from notifier import pipeline
from notifier.settings import load_settings
from notifier.storage import Storage

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def rss_mib() -> float:
    """Return this process's peak RSS so far in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_rss_mib() -> float:
    """Return the largest peak RSS of the finished child processes (compose workers), MiB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


class WalMeter:
    """Read how much WAL a PostgreSQL server has written and how many checkpoints it made."""

    def __init__(self, database: str) -> None:
        self._url = database.replace("postgresql+psycopg://", "postgresql://", 1)

    def reading(self) -> tuple[int, int]:
        """Return (WAL position in bytes, checkpoints so far)."""
        import psycopg

        with psycopg.connect(self._url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn,"
                " checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    @staticmethod
    def between(before: tuple[int, int], after: tuple[int, int]) -> str:
        """Return the WAL written and the checkpoints made between two readings."""
        checkpoints = after[1] - before[1]
        return f"   WAL {(after[0] - before[0]) / 2**20:6,.0f} MiB, {checkpoints} checkpoint(s)"


class Stage(NamedTuple):
    """What was measured of one stage of the cycle."""

    name: str
    seconds: float
    peak_mib: float
    cpu_shares: str  # steal and idle
    wal: str  # PostgreSQL only, else ""
    programs: str  # CPU seconds of the busiest programs


def print_stages(stages: list[Stage], total_shares: str) -> None:
    """Print each stage's wall time, peak RSS, CPU steal and idle, WAL and the CPU
    time of its busiest programs, then the totals.
    """
    width = max(len(stage.name) for stage in stages)
    for stage in stages:
        print(
            f"{stage.name:<{width}}  {stage.seconds:7.1f} s   peak RSS {stage.peak_mib:6.0f} MiB"
            f"   {stage.cpu_shares}{stage.wal}"
        )
        print(f"{'':<{width}}  CPU time: {stage.programs}")
    total = sum(stage.seconds for stage in stages)
    peak = max(stage.peak_mib for stage in stages)
    print(
        f"{'total':<{width}}  {total:7.1f} s   peak RSS {peak:6.0f} MiB   {total_shares} "
        "(peak: the largest process)"
    )


def parse_arguments() -> argparse.Namespace:
    """Return the command line's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--papers", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2, help="sending processes")
    parser.add_argument("--compose-workers", type=int, default=2, help="composing processes")
    parser.add_argument("--matching", default="hybrid", choices=("lexical", "semantic", "hybrid"))
    parser.add_argument("--database", help="database URL (default: SQLite in a temp dir)")
    return parser.parse_args()


def main() -> None:
    """Set up the subscribers, then time ingest, compose and send."""
    args = parse_arguments()
    tools = postfix_tools(DEFAULT_CACHE_DIR)
    with tempfile.TemporaryDirectory() as state, sink(tools) as server:
        database = args.database or f"sqlite:///{state}/bench.db"
        env = bench_env(state, database, f"smtp://{server.host}:{server.port}", args.matching)
        env["NOTIFIER_SMTP_CONNECTIONS"] = "2"
        env["NOTIFIER_COMPOSE_WORKERS"] = str(args.compose_workers)
        os.environ.update(env)
        settings = load_settings(None)
        storage = Storage(database)
        storage.migrate()
        storage.reset()
        started = time.perf_counter()
        populate(storage, args.subscribers, NOW - timedelta(days=1))
        matching = pipeline.matching_for(settings)
        embed_interests(storage, matching)
        print(
            f"set-up: {args.subscribers:,} subscribers x 3 interests ({args.matching}) in "
            f"{time.perf_counter() - started:.0f} s; database {database.split(':')[0]}"
        )
        data = listing(args.papers, seed=1)

        stages: list[Stage] = []
        ticks = [cpu_ticks()]
        programs = [cpu_by_program()]
        meter = WalMeter(database) if database.startswith("postgresql") else None
        wal = [meter.reading()] if meter else []

        def stage(name: str, seconds: float, peak: float) -> None:
            ticks.append(cpu_ticks())
            programs.append(cpu_by_program())
            written = ""
            if meter is not None:
                wal.append(meter.reading())
                written = meter.between(wal[-2], wal[-1])
            shares = cpu_shares(ticks[-2], ticks[-1])
            spent = program_shares(programs[-2], programs[-1])
            stages.append(Stage(name, seconds, peak, shares, written, spent))

        t0 = time.perf_counter()
        summary = pipeline.ingest(storage, "daily", data, NOW - timedelta(minutes=5))
        t1 = time.perf_counter()
        stage(f"ingest ({summary.new} new papers)", t1 - t0, rss_mib())
        outcomes = pipeline.compose_due(storage, settings, NOW, matching)
        t2 = time.perf_counter()
        composed = ", ".join(f"{n:,} {k}" for k, n in outcomes.items() if n)
        stage(
            f"compose ({args.compose_workers} processes: {composed})",
            t2 - t1,
            max(rss_mib(), children_rss_mib()),
        )
        storage.close()
        before = server.messages()
        run = timed_send(env, args.workers)
        arrived = server.messages() - before
        stage(
            f"send ({run.totals['sent']:,} sent, {arrived:,} at the sink)", run.wall, run.rss / 1024
        )
        if arrived != outcomes["created"]:
            raise SystemExit(f"{outcomes['created']} digests composed but {arrived} arrived")

    print_stages(stages, cpu_shares(ticks[0], ticks[-1]))


if __name__ == "__main__":
    main()

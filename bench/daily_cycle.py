"""The whole daily cycle: 100,000 subscribers x 3 interests, 500 new papers, into smtp-sink.

Set-up (not timed): synthetic subscribers (synthetic.py: by default each
writes their own interests; --subscribers-from shared-topics for the 100
shared topics) and their interest embeddings, as a previous day leaves them.
Then, in steady state (the default), --history-days earlier days (7), each
day's listing of new papers ingested and its digests composed, then marked
sent: today's compose looks at every paper first seen in the candidate window
(max(backlog_days, 8) days: 4,000 papers with 7 earlier days of 500), of which
the earlier days' are already in each subscriber's ledger, as in production.
--history-days 0 composes against today's papers alone. Timed, one stage after
the other as `notifier run-once` would: ingest the day's listing (parse, diff,
store), compose every digest (embed the new papers, match, record digests and
ledger), and send them all with `notifier send --workers 2` to Postfix's
smtp-sink, until the last message is accepted. Printed per stage: wall time,
peak RSS, the share of CPU time the hypervisor took and the share left idle,
the CPU time of the busiest programs (bench/machine.py: python is this script
and the `notifier send` workers, postgres the server); on PostgreSQL also the
WAL the server wrote and the checkpoints it made. The compose stage names the
candidates it scored.

Run: .venv/bin/python bench/daily_cycle.py [--subscribers N] [--database URL]
     [--subscribers-from realistic|shared-topics] [--history-days N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from machine import PeakRss, cpu_by_program, cpu_shares, cpu_ticks, program_shares
from postfix import DEFAULT_CACHE_DIR, postfix_tools, sink
from send_rate import bench_env, timed_send
from sqlalchemy import text
from synthetic import add_mode_option, embed_interests, listing, populate

from notifier import pipeline
from notifier.matching import Matching, candidate_window
from notifier.settings import Settings, load_settings
from notifier.storage import Storage

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)

# What sending an earlier day's digests leaves: each accepted by the server.
MARK_SENT = """
UPDATE digests SET status = 'sent', attempts = 1, sent_at = :sent_at, last_reply = '250 2.0.0 Ok'
WHERE status = 'pending'
"""


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


def run_history(  # noqa: PLR0917
    storage: Storage,
    settings: Settings,
    matching: Matching,
    days: int,
    papers: int,
    mode: str,
) -> tuple[int, int]:
    """Ingest and compose days earlier days (oldest first), marking their digests sent.

    Day k before today lists papers of seed 1 + k (today's is seed 1), so
    every day's papers are new. Returns (papers ingested, digests marked sent).
    """
    ingested = sent = 0
    for before in range(days, 0, -1):
        day = NOW - timedelta(days=before)
        data = listing(papers, seed=1 + before, mode=mode)
        ingested += pipeline.ingest(storage, "daily", data, day - timedelta(minutes=5)).new
        pipeline.compose_due(storage, settings, day, matching)
        with storage.engine.begin() as conn:
            sent += conn.execute(text(MARK_SENT), {"sent_at": day + timedelta(minutes=10)}).rowcount
    if storage.engine.dialect.name == "postgresql":
        # What autovacuum would have done over a week (it is off on the bench server).
        with storage.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE digests, deliveries, papers, subscribers"))
    return ingested, sent


def set_up(
    storage: Storage, settings: Settings, args: argparse.Namespace, database: str
) -> Matching:
    """Store the subscribers and their interests' embeddings, then the earlier days."""
    mode = args.subscribers_from
    started = time.perf_counter()
    joined = NOW - timedelta(days=1 + args.history_days)  # before the first day's slot
    distinct = populate(storage, args.subscribers, joined, mode=mode)
    matching = pipeline.matching_for(settings)
    embed_interests(storage, matching)
    print(
        f"set-up: {args.subscribers:,} subscribers x 3 interests ({mode}: {distinct:,} "
        f"distinct; {args.matching}) in {time.perf_counter() - started:.0f} s; "
        f"database {database.split(':', maxsplit=1)[0]}"
    )
    if args.history_days:
        started = time.perf_counter()
        ingested, sent = run_history(
            storage, settings, matching, args.history_days, args.papers, mode
        )
        print(
            f"history (set-up): {args.history_days} earlier days, {ingested:,} papers, "
            f"{sent:,} digests composed and marked sent, in {time.perf_counter() - started:.0f} s"
        )
    return matching


def parse_arguments() -> argparse.Namespace:
    """Return the command line's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--papers", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2, help="sending processes")
    parser.add_argument("--compose-workers", type=int, default=2, help="composing processes")
    parser.add_argument("--matching", default="hybrid", choices=("lexical", "semantic", "hybrid"))
    parser.add_argument("--database", help="database URL (default: SQLite in a temp dir)")
    parser.add_argument(
        "--history-days",
        type=int,
        default=7,
        help="earlier days ingested and composed before the timed day (0: today's papers only)",
    )
    add_mode_option(parser)
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
        matching = set_up(storage, settings, args, database)
        data = listing(args.papers, seed=1, mode=args.subscribers_from)

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

        with PeakRss() as peak:
            t0 = time.perf_counter()
            summary = pipeline.ingest(storage, "daily", data, NOW - timedelta(minutes=5))
            t1 = time.perf_counter()
        stage(f"ingest ({summary.new} new papers)", t1 - t0, peak.mib)
        with PeakRss() as peak:
            t1 = time.perf_counter()  # not counting the previous stage's readings
            outcomes = pipeline.compose_due(storage, settings, NOW, matching)
            t2 = time.perf_counter()
        composed = ", ".join(f"{n:,} {k}" for k, n in outcomes.items() if n)
        candidates = len(storage.recent_papers(NOW - candidate_window(settings), NOW))
        stage(
            f"compose ({args.compose_workers} processes, {candidates:,} candidates: {composed})",
            t2 - t1,
            peak.mib,
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

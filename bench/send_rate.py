"""Delivery speed: 20,000 digests of about 20 papers into Postfix's smtp-sink.

Composes the digests once (synthetic papers and subscribers, see synthetic.py;
subscribers who write their own interests by default: a paper's block carries
the reason of the interest that matched it, so distinct interests render
distinct blocks; --subscribers-from shared-topics for the earlier figures),
then for each (worker processes, connections per process) pair puts every
digest back to pending and times `notifier send --workers W` as a subprocess,
from start to exit, against smtp-sink. In the same run, Postfix's smtp-source
sends the same number of messages of the same size over the same connections:
the ceiling of this machine. Printed per row: digests per second (raw, and
without the process start-up measured by a `send` with nothing due), the
ceiling, the ratio, the peak RSS of the largest process, and the CPU time of
every sending process per digest (less disturbed by other load on the machine
than wall time), and the share of CPU time the hypervisor took during the send
(bench/machine.py).

With --reference DIR (another checkout, e.g. a `git worktree` of main) each
pair is timed --repeat times, alternating the two checkouts on the same
digests, and the medians and their ratio are printed: the machine's noise
falls on both alike.

Run: .venv/bin/python bench/send_rate.py [--digests N] [--database URL] [--runs 2x1,2x2]
     [--repeat 3 --reference /tmp/base]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from machine import cpu_ticks, steal_share
from postfix import DEFAULT_CACHE_DIR, postfix_tools, sink, source_rate
from sqlalchemy import text
from synthetic import REALISTIC, add_mode_option, listing, populate

from notifier import pipeline
from notifier.app import make_renderer
from notifier.settings import load_settings
from notifier.storage import Storage

NOTIFIER = Path(sys.executable).parent / "notifier"
NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
RUNS = ((1, 1), (1, 2), (1, 4), (2, 1), (2, 2))  # (worker processes, connections each)

RESET = """
UPDATE digests SET status = 'pending', attempts = 0, sent_at = NULL, last_reply = NULL,
    last_error = NULL, lease_owner = NULL, lease_until = NULL, next_attempt_at = NULL
WHERE status <> 'empty'
"""


def bench_env(state: str, database: str, smtp_url: str, matching: str) -> dict[str, str]:
    """Return the environment of a benchmark's notifier: its state, database and sink."""
    return os.environ | {
        "NOTIFIER_STATE_DIR": state,
        "NOTIFIER_DATABASE_URL": database,
        "NOTIFIER_MATCHING": matching,
        "NOTIFIER_MAX_PAPERS": "20",
        "NOTIFIER_SEND_RATE": "0",
        "NOTIFIER_SMTP_URL": smtp_url,
        "NOTIFIER_SENDER_ADDRESS": "digests@bench.example.org",
        # Required with PostgreSQL (never invented there); harmless with SQLite.
        "NOTIFIER_SECRET_KEY": "bench-link-key-0123456789abcdef",
    }


def prepare(env: dict[str, str], digests: int, mode: str = REALISTIC) -> tuple[int, int]:
    """Compose digests for synthetic subscribers; return (digests pending, mean message size)."""
    settings = load_settings(None)
    storage = Storage(settings.database)
    storage.migrate()
    pipeline.ingest(storage, "bench", listing(500, mode=mode), NOW - timedelta(hours=1))
    populate(storage, digests, NOW - timedelta(days=1), mode=mode)  # joined before the slot
    composed = [c for c in pipeline.iter_composed(storage, settings, NOW) if c.outcome == "created"]
    renderer = make_renderer(settings)
    sizes = [
        len(renderer.render(c.content, c.subscriber, "<x@bench.example.org>", NOW).data)
        for c in composed[:200]
        if c.content is not None
    ]
    shown = [len(c.content.papers) for c in composed if c.content is not None]
    print(
        f"composed {len(composed)} digests ({mode}), {statistics.mean(shown):.1f} papers each "
        f"(median {statistics.median(shown)}), message size {statistics.mean(sizes):,.0f} bytes"
    )
    storage.close()
    return len(composed), int(statistics.mean(sizes))


def reset(database: str) -> None:
    """Put every composed digest back to pending, as if never sent."""
    storage = Storage(database)
    with storage.engine.begin() as conn:
        conn.execute(text(RESET))
    if storage.engine.dialect.name == "postgresql":
        with storage.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE digests"))
    storage.close()


@dataclass(frozen=True)
class SendRun:
    """What one `notifier send` took: wall and CPU seconds, its totals, the peak RSS in KiB."""

    wall: float
    cpu: float  # user + system of the command and every worker process it started
    totals: dict[str, int]
    rss: int  # of the largest process


def timed_send(env: dict[str, str], workers: int, code: Path | None = None) -> SendRun:
    """Run `notifier send` (of the checkout code, else this one) and time it."""
    if code is not None:
        env = env | {"PYTHONPATH": str(code)}
    # A wrapper process so the peak RSS is this run's alone (ru_maxrss of children
    # only grows within one process). CPU time is less disturbed than wall time by
    # the rest of a noisy machine.
    wrapper = (
        "import resource, subprocess, sys, time;"
        "t = time.perf_counter();"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        "w = time.perf_counter() - t;"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print(w, u.ru_utime + u.ru_stime, u.ru_maxrss, r.returncode);"
        "print(r.stderr)"
    )
    command = [str(NOTIFIER), "send", "--json", "--workers", str(workers)]
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *command],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    first, _, rest = done.stdout.partition("\n")
    wall, cpu, rss, status = first.split()
    if status != "0":
        raise SystemExit(f"notifier send failed: {rest.strip()}")
    totals = json.loads(rest.strip().splitlines()[-1])  # --json puts the totals on stderr
    return SendRun(float(wall), float(cpu), totals, int(rss))


def print_medians(medians: dict[tuple[int, ...], dict[str, tuple[float, float]]]) -> None:
    """Print each pair's median rate and CPU per digest per checkout, and their ratios."""
    print("\nmedians (rate without start-up; CPU of every sending process, start-up included):")
    for (workers, connections), by_code in medians.items():
        shown = "  ".join(
            f"{name} {rate:,.0f}/s {cpu:.3f} ms" for name, (rate, cpu) in by_code.items()
        )
        ratio = ""
        if "reference" in by_code:
            (rate, cpu), (reference_rate, reference_cpu) = by_code["this"], by_code["reference"]
            ratio = (
                f"  this is {rate / reference_rate:.2f}x the reference's rate, "
                f"{cpu / reference_cpu:.2f}x its CPU"
            )
        print(f"{workers} x {connections}: {shown}{ratio}")


def parse_arguments() -> argparse.Namespace:
    """Return the command line's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digests", type=int, default=20_000)
    parser.add_argument("--database", help="database URL (default: SQLite in a temp dir)")
    parser.add_argument(
        "--runs",
        default=",".join(f"{w}x{c}" for w, c in RUNS),
        help="workers x connections pairs to time, e.g. 2x1,2x2",
    )
    parser.add_argument("--repeat", type=int, default=1, help="times each pair is timed")
    parser.add_argument("--reference", type=Path, help="another checkout to alternate with")
    add_mode_option(parser)
    return parser.parse_args()


def main() -> None:
    """Prepare the digests, then print the send rate of each run beside the ceiling."""
    args = parse_arguments()
    pairs = [tuple(int(n) for n in pair.split("x")) for pair in args.runs.split(",")]
    codes: dict[str, Path | None] = {"this": None}
    if args.reference is not None:
        codes = {"reference": args.reference.resolve(), **codes}

    tools = postfix_tools(DEFAULT_CACHE_DIR)
    with tempfile.TemporaryDirectory() as state, sink(tools) as server:
        database = args.database or f"sqlite:///{state}/bench.db"
        # The send path does not depend on the matching mode.
        env = bench_env(state, database, f"smtp://{server.host}:{server.port}", "lexical")
        os.environ.update(env)
        if args.database:
            storage = Storage(database)
            storage.migrate()  # a fresh database has no tables to empty yet
            storage.reset()
            storage.close()
        started = time.perf_counter()
        count, size = prepare(env, args.digests, args.subscribers_from)
        print(f"setup {time.perf_counter() - started:.1f} s; database {database.split(':')[0]}")
        reset(database)
        timed_send(env, 1)  # a warm-up run: the database pages and the binaries in the cache
        startups = {name: timed_send(env, 1, code).wall for name, code in codes.items()}
        for name, startup in startups.items():
            print(f"`notifier send` ({name}) with nothing due: {startup:.2f} s (start-up)")
        print("(subtracted in the 'no start-up' column)\n")
        print(
            "workers x conns | code      | digests/s (raw) | digests/s (no start-up) | "
            "smtp-source ceiling | ratio | peak RSS | CPU per digest | steal"
        )
        medians: dict[tuple[int, ...], dict[str, tuple[float, float]]] = {}
        for pair in pairs:
            workers, connections = pair
            env["NOTIFIER_SMTP_CONNECTIONS"] = str(connections)
            rates: dict[str, list[float]] = {name: [] for name in codes}
            cpus: dict[str, list[float]] = {name: [] for name in codes}
            for _ in range(args.repeat):
                for name, code in codes.items():
                    reset(database)
                    before = server.messages()
                    ticks = cpu_ticks()
                    run = timed_send(env, workers, code)
                    stolen = steal_share(ticks, cpu_ticks())
                    arrived = server.messages() - before
                    if run.totals.get("sent") != count or arrived != count:
                        raise SystemExit(
                            f"expected {count} sent, got {run.totals} and {arrived} at the sink"
                        )
                    ceiling = source_rate(
                        tools,
                        server.host,
                        server.port,
                        messages=count,
                        size=size,
                        connections=workers * connections,
                    )
                    net = count / max(run.wall - startups[name], 1e-9)
                    cpu = 1000 * run.cpu / count
                    rates[name].append(net)
                    cpus[name].append(cpu)
                    print(
                        f"{workers} x {connections}           | {name:<9} | "
                        f"{count / run.wall:15,.0f} | {net:23,.0f} | "
                        f"{ceiling:19,.0f} | {net / ceiling:5.2f} | {run.rss / 1024:4.0f} MiB | "
                        f"{cpu:.3f} ms       | {stolen}"
                    )
            medians[pair] = {
                name: (statistics.median(rates[name]), statistics.median(cpus[name]))
                for name in codes
            }
    if args.repeat > 1 or args.reference is not None:
        print_medians(medians)
    setup_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this script (composing the digests): {setup_rss:.0f} MiB")


if __name__ == "__main__":
    main()

"""Sending over a link with a round-trip time: digests through a delaying relay into smtp-sink.

A mail server is rarely on the same machine: every reply the sender waits for
costs a round trip. This times `notifier send` of N digests (one worker, C
connections) through a TCP relay that holds every chunk for half the RTT in
each direction, in front of Postfix's smtp-sink. With --reference DIR (another
checkout, e.g. a `git worktree` of main) the runs alternate between that code
and this one and the medians and their ratio are printed. The digests are
composed for subscribers who write their own interests by default, as in
send_rate.py (--subscribers-from shared-topics for the earlier figures).
Printed per run: digests per second without the start-up, and the round trips
per digest that rate implies (connections / (rate x RTT)).

Run: .venv/bin/python bench/send_latency.py [--digests 1000] [--rtt-ms 10] [--connections 2]
     [--repeat 2 --reference /tmp/base]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import statistics
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from postfix import DEFAULT_CACHE_DIR, postfix_tools, sink
from send_rate import bench_env, prepare, reset, timed_send
from synthetic import add_mode_option


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy reader to writer, each chunk delay seconds after it was read, in order."""
    loop = asyncio.get_running_loop()
    held: collections.deque[tuple[float, bytes]] = collections.deque()
    arrived = asyncio.Event()

    async def release() -> None:
        while True:
            await arrived.wait()
            while held:
                due, chunk = held[0]
                await asyncio.sleep(max(0.0, due - loop.time()))
                held.popleft()
                if chunk:
                    writer.write(chunk)
                else:
                    writer.close()
                    return
            arrived.clear()

    releasing = asyncio.create_task(release())
    while True:
        chunk = await reader.read(1 << 16)
        held.append((loop.time() + delay, chunk))
        arrived.set()
        if not chunk:
            break
    await releasing


@contextmanager
def delaying_relay(target_host: str, target_port: int, rtt: float) -> Iterator[int]:
    """Run a relay to target that adds rtt to every round trip; yield its port."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    port: list[int] = []

    async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(target_host, target_port)
        await asyncio.gather(
            _pump(reader, upstream_writer, rtt / 2),
            _pump(upstream_reader, writer, rtt / 2),
            return_exceptions=True,
        )

    async def serve() -> None:
        server = await asyncio.start_server(connect, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        started.set()
        async with server:
            await server.serve_forever()

    serving = loop.create_task(serve())

    def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(serving)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(5)
    try:
        yield port[0]
    finally:
        loop.call_soon_threadsafe(serving.cancel)
        thread.join(5)


def main() -> None:
    """Prepare the digests, then time each checkout's send through the relay."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digests", type=int, default=1_000)
    parser.add_argument("--rtt-ms", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--reference", type=Path, help="another checkout to alternate with")
    add_mode_option(parser)
    args = parser.parse_args()
    rtt = args.rtt_ms / 1000
    codes: dict[str, Path | None] = {"this": None}
    if args.reference is not None:
        codes = {"reference": args.reference.resolve(), **codes}

    tools = postfix_tools(DEFAULT_CACHE_DIR)
    with (
        tempfile.TemporaryDirectory() as state,
        sink(tools) as server,
        delaying_relay(server.host, server.port, rtt) as port,
    ):
        database = f"sqlite:///{state}/bench.db"
        env = bench_env(state, database, f"smtp://127.0.0.1:{port}", "lexical")
        env["NOTIFIER_SMTP_CONNECTIONS"] = str(args.connections)
        os.environ.update(env)
        count, _ = prepare(env, args.digests, args.subscribers_from)
        timed_send(env, 1)  # a warm-up: the database pages and the binaries in the cache
        startups = {name: timed_send(env, 1, code).wall for name, code in codes.items()}
        print(f"RTT {args.rtt_ms:g} ms, 1 worker x {args.connections} connections")
        print(
            "start-up (a send with nothing due) subtracted: "
            + ", ".join(f"{name} {startup:.2f} s" for name, startup in startups.items())
            + "\n"
        )
        print("code      | digests/s | round trips per digest")
        rates: dict[str, list[float]] = {name: [] for name in codes}
        for _ in range(args.repeat):
            for name, code in codes.items():
                reset(database)
                before = server.messages()
                run = timed_send(env, 1, code)
                arrived = server.messages() - before
                if run.totals.get("sent") != count or arrived != count:
                    raise SystemExit(f"expected {count} sent, got {run.totals} and {arrived}")
                rate = count / max(run.wall - startups[name], 1e-9)
                rates[name].append(rate)
                trips = args.connections / (rate * rtt)
                print(f"{name:<9} | {rate:9,.0f} | {trips:.2f}")
    medians = {name: statistics.median(found) for name, found in rates.items()}
    print("\nmedians: " + "  ".join(f"{name} {rate:,.0f}/s" for name, rate in medians.items()))
    if "reference" in medians:
        print(f"this is {medians['this'] / medians['reference']:.2f}x the reference's rate")


if __name__ == "__main__":
    main()

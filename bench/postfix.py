"""Give benchmarks Postfix's smtp-sink and smtp-source without installing a mail system."""

# Usage from another bench script (bench/ is on sys.path when run as `python bench/x.py`):
#
#     from postfix import DEFAULT_CACHE_DIR, postfix_tools, sink, source_rate
#
#     tools = postfix_tools(DEFAULT_CACHE_DIR)
#     with sink(tools) as server:
#         rate = source_rate(tools, server.host, server.port,
#                            messages=20_000, size=40_000, connections=2)
#
# The binaries come from Debian's postfix package, unpacked (never installed) under the
# cache directory. Neither program reads /etc/postfix, so no configuration is needed.
#
# Flag notes, found by experiment with Postfix 3.7:
# - smtp-sink exits with "fatal: -u option is required if running as root" unless given
#   -u USER when run as root; it binds first, then drops to USER.
# - smtp-sink advertises PIPELINING, 8BITMIME, DSN etc. by default and accepts messages
#   until killed (-M/-n would make it stop); it only writes messages to disk with -d/-D.
# - smtp-sink -c writes running counters "sess=N quit=N mesg=N" separated by "\r".
# - smtp-source -l N sends a body of N bytes counting its CRLF line ends (80-byte lines),
#   plus a final CRLF; its own From/To/Date/Message-Id headers (~120 bytes) come on top.
# - smtp-source speaks plain SMTP (HELO, no pipelining), and without -d it opens a new
#   connection for every message; -s only bounds how many run at once.
# - smtp-source -m is a total shared by the -s sessions, not a count per session.

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE_DIR = Path(__file__).parent / ".cache" / "postfix"

# How long smtp-sink may take to start listening, and to exit after SIGTERM.
_START_TIMEOUT = 5.0
_STOP_TIMEOUT = 5.0
# A free port found by binding to port 0 can be taken by someone else before
# smtp-sink binds it, so a failed start is retried on a fresh port.
_START_ATTEMPTS = 5


@dataclass(frozen=True)
class PostfixTools:
    """Hold the smtp-sink and smtp-source paths and the environment they need."""

    smtp_sink: Path
    smtp_source: Path
    env: dict[str, str]


@dataclass(frozen=True)
class SinkServer:
    """Describe a running smtp-sink and read its message counter."""

    host: str
    port: int
    pid: int
    counters: Path

    def messages(self) -> int:
        """Return how many messages the sink has accepted since it started."""
        counts = re.findall(r"mesg=(\d+)", self.counters.read_text(errors="replace"))
        return int(counts[-1]) if counts else 0


def postfix_tools(cache_dir: Path = DEFAULT_CACHE_DIR) -> PostfixTools:
    """Return smtp-sink and smtp-source, unpacking the postfix .deb into cache_dir if needed."""
    cache_dir = cache_dir.resolve()
    root = cache_dir / "root"
    sbin = root / "usr" / "sbin"
    if not (sbin / "smtp-sink").exists():
        _unpack_postfix(cache_dir, root)
    lib_dir = root / "usr" / "lib" / "postfix"
    env = dict(os.environ)
    # The binaries link against libpostfix-*.so, which live in usr/lib/postfix.
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(lib_dir), env.get("LD_LIBRARY_PATH", "")) if p
    )
    return PostfixTools(smtp_sink=sbin / "smtp-sink", smtp_source=sbin / "smtp-source", env=env)


def _unpack_postfix(cache_dir: Path, root: Path) -> None:
    """Download the postfix .deb into cache_dir and unpack it into root."""
    manual = f"cd {cache_dir} && apt-get download postfix && dpkg -x postfix_*.deb root"
    cache_dir.mkdir(parents=True, exist_ok=True)
    for old in cache_dir.glob("postfix_*.deb"):
        old.unlink()  # so the glob below finds only the version just downloaded
    _run_or_explain(["apt-get", "download", "postfix"], cache_dir, manual)
    debs = sorted(cache_dir.glob("postfix_*.deb"))
    if len(debs) != 1:
        raise RuntimeError(f"apt-get download left {len(debs)} postfix .debs; run: {manual}")
    # Unpack beside root and rename, so an interrupted run never leaves a root that has
    # smtp-sink (the "already unpacked" marker) but lacks its libraries.
    partial = cache_dir / "root.partial"
    shutil.rmtree(partial, ignore_errors=True)
    _run_or_explain(["dpkg", "-x", str(debs[0]), str(partial)], cache_dir, manual)
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)


def _run_or_explain(command: list[str], cwd: Path, manual: str) -> None:
    """Run command in cwd, raising a one-line RuntimeError that names the manual fix."""
    try:
        # apt-get warns that it downloads "unsandboxed as root"; that is harmless, so
        # output is captured and shown only if the command fails.
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise RuntimeError(f"{command[0]} not found; run: {manual}") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        detail = lines[-1] if lines else f"exit status {done.returncode}"
        hint = " (apt-get update first?)" if command[0] == "apt-get" else ""
        raise RuntimeError(f"{' '.join(command)} failed: {detail}{hint}; run: {manual}")


def _free_port(host: str) -> int:
    """Return a TCP port on host that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _greets_as_sink(host: str, port: int) -> bool:
    """Return whether host:port answers with smtp-sink's 220 greeting."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as conn:
            # Checking the banner, not just the connect, makes sure the listener is
            # our smtp-sink and not another program that took the port first.
            return conn.recv(512).startswith(b"220 smtp-sink")
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop process with SIGTERM, or SIGKILL if it does not exit in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def sink(tools: PostfixTools, *, backlog: int = 256) -> Iterator[SinkServer]:
    """Start smtp-sink on a free 127.0.0.1 port, yield it, and stop it on exit."""
    host = "127.0.0.1"
    command = [str(tools.smtp_sink), "-c"]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]  # smtp-sink refuses to run as root without -u
    with tempfile.TemporaryDirectory(prefix="smtp-sink-") as scratch:
        counters = Path(scratch) / "counters"
        errors = Path(scratch) / "stderr"
        failure = "no attempt"
        for _ in range(_START_ATTEMPTS):
            port = _free_port(host)
            # Counters go to a file, not a pipe: nobody drains a pipe while the benchmark
            # runs, and a full one would stall smtp-sink after a few thousand messages.
            with counters.open("wb") as out, errors.open("wb") as err:
                process = subprocess.Popen(
                    [*command, f"{host}:{port}", str(backlog)],
                    env=tools.env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                )
            try:
                deadline = time.monotonic() + _START_TIMEOUT
                while process.poll() is None and time.monotonic() < deadline:
                    if _greets_as_sink(host, port):
                        yield SinkServer(host=host, port=port, pid=process.pid, counters=counters)
                        return
                    time.sleep(0.02)
            finally:
                _stop(process)
            failure = errors.read_text(errors="replace").strip() or "no greeting"
        raise RuntimeError(f"smtp-sink did not start: {failure}")


def source_rate(
    tools: PostfixTools,
    host: str,
    port: int,
    *,
    messages: int,
    size: int,
    connections: int,
    reuse_connections: bool = True,
) -> float:
    """Return the messages per second smtp-source sends to host:port over connections sessions."""
    command = [str(tools.smtp_source), "-c", "-s", str(connections), "-m", str(messages)]
    command += ["-l", str(size), "-f", "sender@example.org", "-t", "rcpt@example.org"]
    if reuse_connections:
        # Without -d smtp-source opens a new connection for every message, which
        # measures TCP and SMTP session setup more than message throughput.
        command.append("-d")
    command.append(f"{host}:{port}")
    start = time.perf_counter()
    done = subprocess.run(command, env=tools.env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source failed: {done.stderr.strip() or done.returncode}")
    # -c prints a counter after every completed DATA; its last value is what was sent.
    counts = re.findall(r"\d+", done.stdout)
    sent = int(counts[-1]) if counts else 0
    if sent != messages:
        raise RuntimeError(f"smtp-source sent {sent} messages, not {messages}")
    return messages / elapsed


def _wait_for_count(server: SinkServer, expected: int) -> int:
    """Return the sink's message count once it reaches expected, or after a second."""
    # smtp-sink may write its counter just after smtp-source has seen the reply and exited.
    deadline = time.monotonic() + 1.0
    while (count := server.messages()) < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return count


def main() -> None:
    """Print smtp-source's rate into smtp-sink at 1, 2 and 4 connections."""
    messages, size, runs = 20_000, 40_000, 3
    tools = postfix_tools(DEFAULT_CACHE_DIR)
    with sink(tools) as server:
        print(f"smtp-sink on {server.host}:{server.port}; {messages:,} messages of {size:,} bytes")
        for connections in (1, 2, 4):
            rates = []
            for _ in range(runs):
                before = server.messages()
                rates.append(
                    source_rate(
                        tools,
                        server.host,
                        server.port,
                        messages=messages,
                        size=size,
                        connections=connections,
                    )
                )
                received = _wait_for_count(server, before + messages) - before
                if received != messages:
                    raise RuntimeError(f"smtp-sink counted {received} messages, not {messages}")
            runs_text = ", ".join(f"{r:.0f}" for r in rates)
            print(
                f"smtp-source {connections} conn: {statistics.median(rates):.0f} msg/s"
                f" (median of {runs}: {runs_text})"
            )


if __name__ == "__main__":
    main()

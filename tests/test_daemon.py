"""`notifier run` and `notifier run-once` as real subprocesses against a real SMTP server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import sqlalchemy

from notifier import scheduler
from notifier.settings import Settings
from notifier.storage import Storage
from tests.conftest import PG_URL, SEED_FILES, Cli, SmtpServer
from tests.test_delivery import ROBOTS

NOTIFIER = Path(sys.executable).parent / "notifier"


class Daemon:
    """A `notifier run` subprocess whose log is read as it is written."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out: IO[bytes] = log.open("wb")
        self.process = subprocess.Popen(
            [str(NOTIFIER), "run"], env=env, stdout=self._out, stderr=subprocess.STDOUT
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 60.0) -> None:
        """Wait until the log shows needle, or fail with the log."""
        until_ok(
            lambda: needle in self.text(), timeout, lambda: f"{needle!r} not in:\n{self.text()}"
        )

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(timeout)
        self._out.close()
        return code


def until_ok(check: Callable[[], bool], timeout: float, explain: Callable[[], str]) -> None:
    """Poll check until it holds, or fail after timeout seconds with explain()."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(explain())
        time.sleep(0.1)


@pytest.fixture
def service(run: Cli, smtp_server: SmtpServer, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Return the environment of a daemon with a short schedule, and kill leftovers after."""
    run.env.update(
        {
            "NOTIFIER_SMTP_URL": smtp_server.url,
            "NOTIFIER_MATCHING": "lexical",
            "NOTIFIER_COMPOSE_EVERY": "1",
            "NOTIFIER_SEND_EVERY": "1",
            "NOTIFIER_STANDBY_POLL": "0.3",
        }
    )
    run("ingest", str(SEED_FILES[0]))
    env = {**os.environ, **run.env}
    yield env


def received_by(smtp_server: SmtpServer) -> Counter[str]:
    return Counter(to for message in smtp_server.handler.received for to in message.rcpt_tos)


def test_the_daemon_delivers_due_digests_and_stops_cleanly_on_sigterm(
    run: Cli, smtp_server: SmtpServer, service: dict[str, str], tmp_path: Path
) -> None:
    for name in ("ada", "bob"):
        assert run.subscribe_earlier(f"{name}@example.org", "--interest", ROBOTS).exit_code == 0
    daemon = Daemon(service, tmp_path / "run.log")
    try:
        until_ok(
            lambda: received_by(smtp_server) == {"ada@example.org": 1, "bob@example.org": 1},
            60,
            lambda: f"received {received_by(smtp_server)}; log:\n{daemon.text()}",
        )
        daemon.wait_for("compose: ok")
    finally:
        code = daemon.stop()
    assert code == 0, daemon.text()
    log = daemon.text()
    assert "stopping: no new jobs" in log and log.rstrip().endswith("stopped cleanly")
    assert "Traceback" not in log
    status = run("status").output
    assert "  compose: ok at " in status and "  send: ok at " in status
    # Nothing more was sent while it kept running: one digest per subscriber and period.
    assert received_by(smtp_server) == {"ada@example.org": 1, "bob@example.org": 1}


def test_a_standby_takes_over_when_the_leader_is_killed(
    run: Cli, smtp_server: SmtpServer, service: dict[str, str], tmp_path: Path
) -> None:
    run.subscribe_earlier("ada@example.org", "--interest", ROBOTS)
    leader = Daemon(service, tmp_path / "leader.log")
    standby = None
    try:
        leader.wait_for("leader on")
        until_ok(lambda: received_by(smtp_server)["ada@example.org"] == 1, 60, leader.text)
        standby = Daemon(service, tmp_path / "standby.log")
        standby.wait_for("standby: another `notifier run` is the leader")
        assert leader.stop(signal.SIGKILL) == -signal.SIGKILL
        standby.wait_for("leader on", timeout=30)
        # The new leader serves a subscriber who arrives after the takeover.
        run.subscribe_earlier("bob@example.org", "--interest", ROBOTS)
        until_ok(
            lambda: received_by(smtp_server)["bob@example.org"] == 1,
            60,
            lambda: f"received {received_by(smtp_server)}; log:\n{standby.text()}",
        )
    finally:
        if leader.process.poll() is None:
            leader.stop(signal.SIGKILL)
        code = standby.stop() if standby is not None else 0
    assert code == 0
    assert received_by(smtp_server) == {"ada@example.org": 1, "bob@example.org": 1}


def test_two_run_once_at_the_same_moment_send_each_digest_once(
    run: Cli, smtp_server: SmtpServer, service: dict[str, str]
) -> None:
    emails = [f"reader{k}@example.org" for k in range(12)]
    for email in emails:
        assert run.subscribe_earlier(email, "--interest", ROBOTS).exit_code == 0
    both = [
        subprocess.Popen(
            [str(NOTIFIER), "run-once"], env=service, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in both]
    for process, (out, err) in zip(both, results, strict=True):
        assert process.returncode == 0, (out + err).decode()
    assert received_by(smtp_server) == dict.fromkeys(emails, 1)
    composed = [out.decode() for out, _ in results]
    assert all("composed: " in text for text in composed)
    # Back to back: a third run finds everyone up to date and sends nothing.
    third = run("run-once")
    assert third.exit_code == 0
    assert "composed: 12 up to date" in third.output
    assert "sent 0, failed 0" in third.output
    assert received_by(smtp_server) == dict.fromkeys(emails, 1)
    healthy = run("health")
    assert healthy.exit_code == 0
    assert healthy.output.startswith("healthy: the last run-once was ok 0 min ago")


def test_run_once_exits_non_zero_with_one_line_when_the_mail_server_is_down(
    run: Cli, service: dict[str, str]
) -> None:
    run.env["NOTIFIER_SMTP_URL"] = "smtp://127.0.0.1:9"  # discard port: nothing listens
    run.subscribe_earlier("ada@example.org", "--interest", ROBOTS)
    result = run("run-once")
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("notifier: error: cannot reach the mail server 127.0.0.1:9: ")
    # Composed and kept: the next run, with the server back, sends it.
    assert "pending" in run("status").output
    assert "run-once: failed" in run("status").output
    unhealthy = run("health")
    assert unhealthy.exit_code == 1
    assert unhealthy.stderr.startswith(
        "notifier: error: unhealthy: the last run-once failed 0 min ago"
    )


def test_sigterm_lets_messages_in_flight_finish_and_gives_the_rest_back(
    run: Cli, smtp_server: SmtpServer, service: dict[str, str], tmp_path: Path
) -> None:
    emails = [f"reader{k}@example.org" for k in range(6)]
    for email in emails:
        run.subscribe_earlier(email, "--interest", ROBOTS)
    smtp_server.handler.stall = dict.fromkeys(emails, 1.0)  # each reply comes a second late
    daemon = Daemon({**service, "NOTIFIER_SMTP_CONNECTIONS": "1"}, tmp_path / "run.log")
    try:
        until_ok(lambda: len(smtp_server.handler.received) >= 1, 60, daemon.text)
    finally:
        code = daemon.stop()  # while the first message waits for its reply
    assert code == 0, daemon.text()
    arrived = received_by(smtp_server)
    status = run("status").output
    assert f"{sum(arrived.values())} sent" in status
    assert "sending" not in status  # nothing left leased: the rest was given back
    smtp_server.handler.stall = {}
    assert run("run-once").exit_code == 0
    assert received_by(smtp_server) == dict.fromkeys(emails, 1)


@pytest.mark.postgres
def test_a_leader_whose_lock_connection_dies_stops_and_exits_1(
    run: Cli, service: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the advisory lock lives on a PostgreSQL connection")
    daemon = Daemon(service, tmp_path / "run.log")
    try:
        daemon.wait_for("leader on")
        engine = sqlalchemy.create_engine(PG_URL)
        with engine.begin() as conn:
            killed = conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() "
                f"AND objid = (SELECT hashtext('{database_url.rsplit('%3D', 1)[1]}')::oid)"
            ).all()
        engine.dispose()
        assert killed == [(True,)]
        code = daemon.process.wait(60)
    finally:
        if daemon.process.poll() is None:
            daemon.stop(signal.SIGKILL)
    assert code == 1, daemon.text()
    assert "lost the leader lock" in daemon.text()
    assert daemon.text().rstrip().splitlines()[-1] == (
        "notifier: error: lost the leader lock (its database connection died); stopped so "
        "that the service manager restarts notifier run, which then waits as a standby"
    )


def test_a_job_counts_as_running_until_its_run_is_recorded(
    settings: Settings, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On SIGTERM the daemon waits for the jobs it counts as running, then ends the
    # loop; a job dropped from that count before recording its end was cancelled
    # half-way, its run left "running" for `notifier status`.
    recording = threading.Event()
    release = threading.Event()
    finish = storage.finish_job

    def slow_finish(*args: Any) -> None:
        recording.set()
        release.wait(10)
        finish(*args)

    monkeypatch.setattr(storage, "finish_job", slow_finish)
    daemon = scheduler.Daemon(settings, storage, None, None, list)  # type: ignore[arg-type]

    async def work() -> str:
        return "did it"

    async def scenario() -> None:
        job = asyncio.create_task(daemon._job("probe", work))
        while not recording.is_set():
            await asyncio.sleep(0.01)
        assert job in daemon._running  # its work is done, its record is not
        release.set()
        await job
        assert job not in daemon._running

    asyncio.run(scenario())
    with storage.engine.connect() as conn:
        runs = conn.execute(sqlalchemy.text("SELECT job, status, detail FROM job_runs")).all()
    assert [tuple(r) for r in runs] == [("probe", "ok", "did it")]

"""Crash safety and parallel workers, with the real `notifier send` in subprocesses."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from notifier.storage import Storage
from tests.conftest import NOW, PG_SECRET_KEY, SmtpServer

NOTIFIER = Path(sys.executable).parent / "notifier"


def make_digests(url: str, count: int) -> set[str]:
    """Store count subscribers with one pending digest each (bulk SQL); return Message-IDs."""
    storage = Storage(url)
    storage.migrate()
    paper = {
        "paper_id": 1,
        "guid": "urn:notifier:arxiv:2401.00001",
        "title": "Robots that learn",
        "abstract": "We teach robots from videos.",
        "url": "https://arxiv.org/abs/2401.00001",
        "score": 0.5,
        "reason": "“robots” in title",
        "terms": ["robots"],
        "also_matches": [],
    }
    with storage.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO subscribers (id, email, status, feed_token, manage_token, created_at, "
                "hard_bounces) VALUES (:id, :email, 'active', :f, :m, :t, 0)"
            ),
            [
                {"id": i, "email": f"s{i}@example.org", "f": f"f{i}", "m": f"m{i}", "t": NOW}
                for i in range(1, count + 1)
            ],
        )
        conn.execute(
            text(
                "INSERT INTO digests (subscriber_id, period, status, message_id, content, papers, "
                "created_at, attempts) VALUES (:s, '2026-03-11', 'pending', :mid, :c, 1, :t, 0)"
            ),
            [
                {
                    "s": i,
                    "mid": f"<digest.{i}@notifier.test.example>",
                    "t": NOW,
                    "c": json.dumps(
                        {
                            "version": 1,
                            "subscriber_id": i,
                            "period": "2026-03-11",
                            "more": 0,
                            "candidates": 1,
                            "reason": "1 matched",
                            "sections": [{"interest": "rl", "papers": [paper]}],
                        }
                    ),
                }
                for i in range(1, count + 1)
            ],
        )
    # As composing does: with the statistics of the empty tables, PostgreSQL plans each
    # claim as a loop over every subscriber (0.1-0.3 s a claim at 20,000 digests).
    storage.refresh_statistics()
    storage.close()
    return {f"<digest.{i}@notifier.test.example>" for i in range(1, count + 1)}


def statuses(url: str) -> Counter[str]:
    storage = Storage(url)
    with storage.engine.connect() as conn:
        rows = conn.execute(text("SELECT status, count(*) FROM digests GROUP BY status")).all()
    storage.close()
    return Counter({r[0]: r[1] for r in rows})


def sender_env(tmp_path: Path, url: str, server: SmtpServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env.update(
        {
            "NOTIFIER_STATE_DIR": str(tmp_path / "state"),
            "NOTIFIER_DATABASE_URL": url,
            "NOTIFIER_SMTP_URL": server.url,
            "NOTIFIER_SENDER_ADDRESS": "digests@notifier.test.example",
            # One key for every sender: with PostgreSQL, notifier never invents one.
            "NOTIFIER_SECRET_KEY": PG_SECRET_KEY,
        }
    )
    env.update(extra)
    return env


def test_killing_the_sender_at_random_points_never_loses_a_digest(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    url = f"sqlite:///{tmp_path / 'state' / 'notifier.db'}"
    expected = make_digests(url, 600)
    # Paced so no run can finish before it is killed: at most ~40 sends per run.
    env = sender_env(
        tmp_path,
        url,
        smtp_server,
        NOTIFIER_SEND_RATE="25",
        NOTIFIER_SMTP_CONNECTIONS="2",
        NOTIFIER_LEASE_SECONDS="1",
    )
    rng = random.Random(20261122)
    kills = runs = 0
    # A run may also end by itself when every remaining digest is still leased by
    # a killed sender (1 s): keep going until 20 runs were killed mid-way.
    while kills < 20 and runs < 60:
        runs += 1
        process = subprocess.Popen(
            [str(NOTIFIER), "send"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.4, 1.6))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    # Restart until everything is delivered (claims of killed workers expire after 1 s).
    env["NOTIFIER_SEND_RATE"] = "0"
    for _ in range(10):
        time.sleep(1.1)
        done = subprocess.run(
            [str(NOTIFIER), "send"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        if statuses(url) == Counter({"sent": 600}):
            break
    assert statuses(url) == Counter({"sent": 600}), done.stderr
    received = Counter(str(r.message["Message-ID"]) for r in smtp_server.handler.received)
    assert set(received) == expected  # every digest arrived
    duplicates = sum(n - 1 for n in received.values())
    # Only a message in flight when its sender died can arrive twice (same Message-ID):
    # at most one per connection per kill.
    assert kills == 20
    assert duplicates <= 2 * kills


@pytest.mark.postgres
def test_four_workers_drain_20000_digests_exactly_once(
    tmp_path: Path, pg_url: str, smtp_server: SmtpServer
) -> None:
    expected = make_digests(pg_url, 20_000)
    env = sender_env(
        tmp_path, pg_url, smtp_server, NOTIFIER_SEND_RATE="0", NOTIFIER_SMTP_CONNECTIONS="2"
    )
    result = subprocess.run(
        [str(NOTIFIER), "send", "--workers", "4"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sent 20000, failed 0, deferred 0, unknown 0"
    received = Counter(str(r.message["Message-ID"]) for r in smtp_server.handler.received)
    assert set(received) == expected
    assert max(received.values()) == 1  # exactly once
    assert statuses(pg_url) == Counter({"sent": 20_000})


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_sender_finishes_what_is_in_flight_and_gives_the_rest_back(
    tmp_path: Path, smtp_server: SmtpServer, signum: signal.Signals
) -> None:
    url = f"sqlite:///{tmp_path / 'state' / 'notifier.db'}"
    expected = make_digests(url, 60)
    # Every DATA takes 0.3 s, so messages are in flight on both connections when
    # the signal comes; a long lease shows the rest was given back, not left to expire.
    smtp_server.handler.stall.update({f"s{i}@example.org": 0.3 for i in range(1, 61)})
    env = sender_env(
        tmp_path, url, smtp_server, NOTIFIER_SMTP_CONNECTIONS="2", NOTIFIER_LEASE_SECONDS="3600"
    )
    process = subprocess.Popen(
        [str(NOTIFIER), "send"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Signal once sending is under way: start-up alone took over 2.5 s on a loaded
    # machine, and a signal before the handlers are installed kills the process.
    deadline = time.monotonic() + 60
    while not smtp_server.handler.received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert smtp_server.handler.received, "the sender sent nothing within 60 s"
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    sent = int(stdout.split()[1].rstrip(","))
    assert 0 < sent < 60
    assert stdout.strip() == f"sent {sent}, failed 0, deferred 0, unknown 0"
    # What arrived was recorded as sent; nothing stays claimed.
    assert len(smtp_server.handler.received) == sent
    assert statuses(url) == Counter({"sent": sent, "pending": 60 - sent})

    smtp_server.handler.stall.clear()
    again = subprocess.run(
        [str(NOTIFIER), "send"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.stdout.strip() == f"sent {60 - sent}, failed 0, deferred 0, unknown 0"
    received = Counter(str(r.message["Message-ID"]) for r in smtp_server.handler.received)
    assert set(received) == expected
    assert max(received.values()) == 1  # a graceful stop never sends twice

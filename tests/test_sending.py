"""Delivery you can trust: leases, retries, unknown outcomes, bounces, stopping cleanly."""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dkim
import pytest
from sqlalchemy import text

from notifier import pipeline
from notifier.app import make_renderer
from notifier.delivery.journal import SentJournal
from notifier.delivery.journal import recover as recover_journals
from notifier.delivery.limits import RateLimit
from notifier.delivery.smtp import SmtpTransport
from notifier.errors import ConfigError, ServerUnavailable, StorageError
from notifier.models import Interest
from notifier.settings import Settings, SmtpTarget, load_settings
from notifier.storage import Storage
from tests.conftest import JOINED, NOW, Cli, SmtpServer, seed_bytes

FAST = pipeline.RetryPolicy(base=0.001, cap=0.001, lease=timedelta(minutes=5), bounce_limit=2)


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def compose_for(storage: Storage, settings: Settings, emails: list[str]) -> None:
    """Ingest a seed and compose one digest per address."""
    pipeline.ingest(storage, "day1", seed_bytes(0), NOW - timedelta(hours=1))
    for email in emails:
        storage.save_subscriber(email, None, [Interest("rl", '"reinforcement learning"')], JOINED)
    pipeline.compose_digests(storage, settings, NOW)


def states(storage: Storage) -> dict[str, tuple[str, int]]:
    with storage.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT s.email, d.status, d.attempts FROM digests d "
                "JOIN subscribers s ON s.id = d.subscriber_id"
            )
        ).all()
    return {r[0]: (r[1], r[2]) for r in rows}


def transports(server: SmtpServer, n: int = 2, timeout: float = 5.0) -> list[SmtpTransport]:
    target = SmtpTarget("127.0.0.1", server.port, None, None, False)
    return [SmtpTransport(target, timeout) for _ in range(n)]


def deliver(
    storage: Storage, settings: Settings, server: SmtpServer, **kwargs: object
) -> pipeline.SendReport:
    options: dict[str, object] = {"worker": "w1", "clock": at(NOW), "policy": FAST}
    options.update(kwargs)
    sockets = options.pop("transports", None) or transports(server)
    return asyncio.run(
        pipeline.deliver(storage, make_renderer(settings), sockets, **options)  # type: ignore[arg-type]
    )


EMAILS = ["ok@example.org", "busy@example.org", "gone@example.org", "drop@example.org"]


def test_each_misbehaviour_ends_in_the_right_state(
    storage: Storage, settings: Settings, smtp_server: SmtpServer
) -> None:
    handler = smtp_server.handler
    handler.data_reply["busy@example.org"] = "451 4.3.0 Mailbox busy, try later"
    handler.refuse["gone@example.org"] = "550 5.1.1 No such user"
    handler.drop_after_data.add("drop@example.org")
    compose_for(storage, settings, EMAILS)
    report = deliver(storage, settings, smtp_server)
    assert report.sent == ["ok@example.org"]
    assert [e for e, _ in report.deferred] == ["busy@example.org"]
    assert [e for e, _ in report.failed] == ["gone@example.org"]
    assert [e for e, _ in report.unknown] == ["drop@example.org"]
    assert states(storage) == {
        "ok@example.org": ("sent", 1),
        "busy@example.org": ("pending", 1),
        "gone@example.org": ("failed", 1),
        "drop@example.org": ("unknown", 1),
    }
    arrived = Counter(r.rcpt_tos[0] for r in handler.received)
    assert arrived == {"ok@example.org": 1, "drop@example.org": 1}

    # The next run: the busy mailbox is free again; the unknown one is sent again
    # with the same Message-ID, so the reader's client can drop the duplicate.
    handler.data_reply.clear()
    handler.drop_after_data.clear()
    deliver(storage, settings, smtp_server, clock=at(NOW + timedelta(minutes=1)))
    assert states(storage)["busy@example.org"] == ("sent", 2)
    assert states(storage)["drop@example.org"] == ("sent", 2)
    assert states(storage)["gone@example.org"] == ("failed", 1)  # 5xx is never retried
    drops = [
        r.message["Message-ID"] for r in handler.received if r.rcpt_tos == ["drop@example.org"]
    ]
    assert len(drops) == 2 and drops[0] == drops[1]


def test_a_server_that_stalls_past_the_timeout_leaves_the_outcome_unknown(
    storage: Storage, settings: Settings, smtp_server: SmtpServer
) -> None:
    smtp_server.handler.stall["slow@example.org"] = 3.0
    compose_for(storage, settings, ["slow@example.org", "ok@example.org"])
    report = deliver(storage, settings, smtp_server, transports=transports(smtp_server, 1, 0.5))
    assert [e for e, _ in report.unknown] == ["slow@example.org"]
    assert "may have arrived" in report.unknown[0][1]
    assert report.sent == ["ok@example.org"]  # a slow subscriber does not block the others
    assert states(storage)["slow@example.org"] == ("unknown", 1)


def test_repeated_hard_bounces_suspend_the_subscriber(
    storage: Storage, settings: Settings, smtp_server: SmtpServer
) -> None:
    smtp_server.handler.refuse["gone@example.org"] = "550 5.1.1 No such user"
    compose_for(storage, settings, ["gone@example.org"])
    assert deliver(storage, settings, smtp_server).suspended == []
    # A second digest (next day) bounces too: the limit of 2 is reached.
    pipeline.ingest(storage, "day2", seed_bytes(1), NOW + timedelta(hours=23))
    pipeline.compose_digests(storage, settings, NOW + timedelta(days=1))
    report = deliver(storage, settings, smtp_server, clock=at(NOW + timedelta(days=1)))
    assert report.suspended == ["gone@example.org"]
    assert storage.subscriber_by_email("gone@example.org").status == "suspended"
    # A suspended subscriber gets no more digests composed.
    pipeline.ingest(storage, "day3", seed_bytes(2), NOW + timedelta(hours=47))
    assert pipeline.compose_digests(storage, settings, NOW + timedelta(days=2)) == []


def test_retries_stop_at_the_deadline(
    storage: Storage, settings: Settings, smtp_server: SmtpServer
) -> None:
    smtp_server.handler.data_reply["busy@example.org"] = "451 4.3.0 Try later"
    compose_for(storage, settings, ["busy@example.org"])
    late = NOW + FAST.deadline + timedelta(minutes=1)
    report = deliver(storage, settings, smtp_server, clock=at(late))
    assert report.failed[0][1].startswith("gave up after 1 attempts: 451 4.3.0 Try later")
    assert states(storage)["busy@example.org"] == ("failed", 1)


def test_a_dead_workers_lease_expires_and_its_late_result_is_ignored(
    storage: Storage, settings: Settings, smtp_server: SmtpServer
) -> None:
    compose_for(storage, settings, ["a@example.org"])
    [held] = storage.claim_digests("dead", 10, NOW, timedelta(minutes=5))
    # Another worker cannot take it while the lease lasts...
    assert deliver(storage, settings, smtp_server, worker="w2").sent == []
    # ...but can once it has expired.
    later = at(NOW + timedelta(minutes=6))
    assert deliver(storage, settings, smtp_server, worker="w2", clock=later).sent == [
        "a@example.org"
    ]
    # The dead worker waking up cannot overwrite what w2 recorded.
    assert storage.finish_sent("dead", [(held.id, "250 late")], NOW) == 0
    assert states(storage)["a@example.org"] == ("sent", 2)
    assert len(smtp_server.handler.received) == 1


def test_a_group_of_marks_records_each_reply_and_skips_leases_taken_over(
    storage: Storage, settings: Settings
) -> None:
    compose_for(storage, settings, ["a@example.org", "b@example.org", "c@example.org"])
    a, b = storage.claim_digests("w1", 2, NOW, timedelta(minutes=5))
    [c] = storage.claim_digests("w1", 1, NOW - timedelta(minutes=10), timedelta(minutes=5))
    # c's lease expired and w2 took it over before w1's marks were committed.
    [taken] = storage.claim_digests("w2", 10, NOW, timedelta(minutes=5))
    assert taken.id == c.id
    marks = [(a.id, "250 queued as A"), (b.id, "250 queued as B"), (c.id, "250 queued as C")]
    assert storage.finish_sent("w1", marks, NOW) == 2
    with storage.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, status, last_reply, lease_owner FROM digests"))
        found = {r[0]: tuple(r[1:]) for r in rows}
    assert found[a.id] == ("sent", "250 queued as A", None)
    assert found[b.id] == ("sent", "250 queued as B", None)
    assert found[c.id] == ("sending", None, "w2")


def test_stopping_finishes_what_is_in_flight_and_gives_the_rest_back(
    storage: Storage, settings: Settings, smtp_server: SmtpServer
) -> None:
    emails = [f"s{i}@example.org" for i in range(6)]
    compose_for(storage, settings, emails)
    stop = asyncio.Event()
    sent: list[int] = []

    def progress(step: int) -> None:
        sent.append(step)
        if len(sent) == 2:
            stop.set()  # as SIGTERM does

    report = deliver(
        storage,
        settings,
        smtp_server,
        stop=stop,
        on_progress=progress,
        transports=transports(smtp_server, 1),
    )
    assert len(report.sent) == 2
    after = states(storage)
    assert sorted(s for s, _ in after.values()) == ["pending"] * 4 + ["sent"] * 2
    # Given back untouched: no attempt counted, no lease left behind.
    assert all(a == 0 for s, a in after.values() if s == "pending")
    with storage.engine.connect() as conn:
        leased = conn.execute(text("SELECT count(*) FROM digests WHERE lease_owner IS NOT NULL"))
        assert leased.scalar_one() == 0
    assert len(deliver(storage, settings, smtp_server).sent) == 4
    # The digest whose envelope went ahead of the stop arrived once, in the next run;
    # the transaction opened for it was aborted, not ended with an empty message.
    assert sorted(r.rcpt_tos[0] for r in smtp_server.handler.received) == sorted(emails)
    assert all(r.message["Subject"] for r in smtp_server.handler.received)


def on_marking_sent(storage: Storage, body: dict[str, str]) -> None:
    """Make the database run body (per dialect) whenever a digest is marked sent."""
    with storage.engine.begin() as conn:
        if storage.engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER on_sent BEFORE UPDATE ON digests WHEN NEW.status = 'sent' "
                f"BEGIN {body['sqlite']}; END"
            )
            return
        conn.exec_driver_sql(
            "CREATE FUNCTION on_sent() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {body['postgresql']}; RETURN NEW; END $$"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER on_sent BEFORE UPDATE ON digests FOR EACH ROW "
            "WHEN (NEW.status = 'sent') EXECUTE FUNCTION on_sent()"
        )


def test_a_stop_while_marks_are_committing_leaves_every_accepted_message_sent(
    storage: Storage, settings: Settings, smtp_server: SmtpServer
) -> None:
    emails = [f"s{i}@example.org" for i in range(8)]
    compose_for(storage, settings, emails)
    # A slow database: each mark takes 0.2 s to commit (PostgreSQL; SQLite has no sleep),
    # so the stop comes while accepted messages are not yet recorded.
    on_marking_sent(storage, {"sqlite": "SELECT 1", "postgresql": "PERFORM pg_sleep(0.2)"})
    stop = asyncio.Event()

    def progress(_step: int) -> None:
        stop.set()  # as SIGTERM does, right after the server accepted a message

    report = deliver(storage, settings, smtp_server, stop=stop, on_progress=progress)
    # What the server accepted is recorded as sent before deliver returns; the rest
    # is given back, and nothing stays claimed.
    received = {r.rcpt_tos[0] for r in smtp_server.handler.received}
    assert 1 <= len(received) <= 2  # the other connection may have had one in flight
    assert sorted(report.sent) == sorted(received)
    after = states(storage)
    assert {e for e, (s, _) in after.items() if s == "sent"} == received
    assert Counter(s for s, _ in after.values()) == {
        "sent": len(received),
        "pending": 8 - len(received),
    }
    with storage.engine.connect() as conn:
        leased = conn.execute(text("SELECT count(*) FROM digests WHERE lease_owner IS NOT NULL"))
        assert leased.scalar_one() == 0


def test_marks_that_cannot_be_committed_stop_send_with_one_line_and_lose_nothing(
    storage: Storage, settings: Settings, smtp_server: SmtpServer, run: Cli
) -> None:
    emails = [f"s{i}@example.org" for i in range(5)]
    compose_for(storage, settings, emails)
    on_marking_sent(
        storage,
        {
            "sqlite": "SELECT RAISE(ABORT, 'disk quota exceeded')",
            "postgresql": "RAISE EXCEPTION 'disk quota exceeded' USING ERRCODE = '53100'",
        },
    )
    run.env.update({"NOTIFIER_SMTP_URL": smtp_server.url})
    failed = run("send")
    assert failed.exit_code == 1
    [line] = failed.stderr.splitlines()
    journals = list((settings.state_dir / "journal").glob("*.jsonl"))
    assert len(journals) == 1
    assert line.startswith(
        "notifier: error: cannot record accepted messages as sent: database error: "
        "disk quota exceeded"
    )
    assert line.endswith(f"; they are kept in {journals[0]} and the next send records them")
    # Accepted but not in the database: still claimed; the rest was given back.
    # Nothing is marked sent that the database refused.
    accepted = {r.rcpt_tos[0] for r in smtp_server.handler.received}
    after = states(storage)
    assert accepted
    assert {e for e, (s, _) in after.items() if s == "sending"} == accepted
    assert {e for e, (s, _) in after.items() if s == "pending"} == set(emails) - accepted

    postgresql = storage.engine.dialect.name == "postgresql"
    with storage.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER on_sent" + (" ON digests" if postgresql else ""))
    # The next send records them from the journal at once (no lease to wait for) and
    # sends only the rest: every digest arrives exactly once.
    again = run("send")
    assert again.exit_code == 0, again.stderr
    rest, recorded = len(emails) - len(accepted), len(accepted)
    assert again.output.splitlines()[-1] == (
        f"sent {rest}, failed 0, deferred 0, unknown 0 "
        f"({recorded} sent by a stopped sender recorded from its journal)"
    )
    assert {s for s, _ in states(storage).values()} == {"sent"}
    arrived = Counter(r.message["Message-ID"] for r in smtp_server.handler.received)
    assert len(arrived) == 5 and max(arrived.values()) == 1
    assert not list((settings.state_dir / "journal").glob("*.jsonl"))


def test_a_failed_run_leaves_the_callers_stop_alone(
    storage: Storage, settings: Settings, smtp_server: SmtpServer
) -> None:
    # The daemon passes one stop event to every send run: a run that fails must
    # raise, not stop the daemon.
    compose_for(storage, settings, ["a@example.org", "b@example.org"])
    on_marking_sent(
        storage,
        {
            "sqlite": "SELECT RAISE(ABORT, 'disk quota exceeded')",
            "postgresql": "RAISE EXCEPTION 'disk quota exceeded' USING ERRCODE = '53100'",
        },
    )
    stop = asyncio.Event()
    with pytest.raises(StorageError, match="cannot record accepted messages as sent"):
        deliver(storage, settings, smtp_server, stop=stop, transports=transports(smtp_server, 1))
    assert not stop.is_set()
    assert sorted(s for s, _ in states(storage).values()) == ["pending", "sending"]


@pytest.mark.parametrize("connections", [1, 3])
def test_every_digest_is_sent_once_over_several_connections(
    storage: Storage, settings: Settings, smtp_server: SmtpServer, connections: int
) -> None:
    emails = [f"r{i}@example.org" for i in range(12)]
    compose_for(storage, settings, emails)
    report = deliver(
        storage, settings, smtp_server, transports=transports(smtp_server, connections)
    )
    assert sorted(report.sent) == sorted(emails)
    assert Counter(r.rcpt_tos[0] for r in smtp_server.handler.received) == dict.fromkeys(emails, 1)


def test_dkim_signature_covers_the_unsubscribe_headers_and_verifies(
    storage: Storage, settings: Settings, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    signed = load_settings(
        **settings.model_dump(exclude={"dkim_domain", "dkim_selector", "dkim_key_file"}),
        dkim_domain="notifier.test.example",
        dkim_selector="mail2026",
        dkim_key_file=key,
    )
    compose_for(storage, signed, ["a@example.org"])
    asyncio.run(
        pipeline.deliver(
            storage,
            make_renderer(signed),
            transports(smtp_server, 1),
            worker="w",
            clock=at(NOW),
            policy=FAST,
        )
    )
    [received] = smtp_server.handler.received

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"mail2026._domainkey.notifier.test.example."
        return record

    assert dkim.verify(received.data, dnsfunc=dns)
    signature = received.message["DKIM-Signature"]
    covered = re.search(r"h=([^;]+)", signature.replace(" ", ""))
    assert covered is not None
    names = covered.group(1).lower().split(":")
    assert "list-unsubscribe" in names and "list-unsubscribe-post" in names
    # Tampering with the unsubscribe link breaks the signature.
    forged = received.data.replace(b"/unsubscribe/", b"/unsubscrib3/")
    assert not dkim.verify(forged, dnsfunc=dns)


def test_incomplete_dkim_settings_are_refused(settings: Settings) -> None:
    with pytest.raises(
        ConfigError, match="dkim_domain, dkim_selector and dkim_key_file go together"
    ):
        load_settings(**settings.model_dump(exclude={"dkim_domain"}), dkim_domain="x.org")


# A sending process that records two accepted messages in its journal and dies
# before the database hears of them (os._exit: no cleanup, as under SIGKILL).
DYING_SENDER = """
import os, sys
from datetime import datetime, UTC
from pathlib import Path
from typing import Any
from notifier.delivery.journal import SentJournal
journal = SentJournal(Path(sys.argv[1]), "host:123:dead")
for digest_id in sys.argv[2:]:
    journal.record(int(digest_id), "250 2.0.0 queued", datetime.now(UTC))
os._exit(9)
"""


def test_a_dead_senders_journal_is_recorded_by_the_next_send_and_nothing_is_sent_twice(
    storage: Storage, settings: Settings, smtp_server: SmtpServer, run: Cli
) -> None:
    emails = [f"j{i}@example.org" for i in range(5)]
    compose_for(storage, settings, emails)
    # The dead sender had claimed two digests, which the server accepted.
    claimed = storage.claim_digests("host:123:dead", 2, NOW, timedelta(hours=1))
    journal_dir = settings.state_dir / "journal"
    subprocess.run(
        [sys.executable, "-c", DYING_SENDER, str(journal_dir), *(str(d.id) for d in claimed)],
        check=False,
    )
    assert [p.name for p in journal_dir.glob("*.jsonl")] == ["host_123_dead.jsonl"]

    run.env.update({"NOTIFIER_SMTP_URL": smtp_server.url})
    result = run("send")
    assert result.exit_code == 0, result.stderr
    assert result.output.splitlines()[-1] == (
        "sent 3, failed 0, deferred 0, unknown 0 "
        "(2 sent by a stopped sender recorded from its journal)"
    )
    # Recorded without waiting for the dead sender's lease; only the other three went out.
    assert {s for s, _ in states(storage).values()} == {"sent"}
    received = [r.rcpt_tos[0] for r in smtp_server.handler.received]
    assert sorted(received) == sorted(set(emails) - {d.subscriber.email for d in claimed})
    assert not list(journal_dir.iterdir())  # this run's journal went too, once recorded


def test_a_live_senders_journal_is_left_to_it(storage: Storage, settings: Settings) -> None:
    compose_for(storage, settings, ["live@example.org"])
    [digest] = storage.claim_digests("live", 1, NOW, timedelta(hours=1))
    journal = SentJournal(settings.state_dir / "journal", "live")
    journal.record(digest.id, "250 ok", NOW)
    try:
        # Another process on the machine starting a run: the file is locked, so its
        # owner is alive and will record the mark itself.
        assert recover_journals(settings.state_dir / "journal", storage.recover_sent) == 0
        assert journal.path.exists()
        assert states(storage)["live@example.org"][0] == "sending"
    finally:
        journal.close(delete=False)
    assert recover_journals(settings.state_dir / "journal", storage.recover_sent) == 1
    assert states(storage)["live@example.org"][0] == "sent"
    assert not journal.path.exists()


def test_a_journal_that_cannot_be_written_stops_send_before_anything_is_claimed(
    storage: Storage, settings: Settings, smtp_server: SmtpServer, run: Cli
) -> None:
    compose_for(storage, settings, ["a@example.org"])
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    (settings.state_dir / "journal").write_text("not a directory")
    run.env.update({"NOTIFIER_SMTP_URL": smtp_server.url})
    result = run("send")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(
        f"notifier: error: cannot write the send journal in {settings.state_dir / 'journal'}: "
    )
    assert line.endswith("; check that state_dir is writable")
    assert states(storage) == {"a@example.org": ("pending", 0)}
    assert not smtp_server.handler.received


def test_an_unknown_outcome_is_given_up_at_the_deadline_and_never_sent_again(
    storage: Storage, settings: Settings, smtp_server: SmtpServer, run: Cli
) -> None:
    # The server keeps every message and hangs up after the final ".", for ever.
    smtp_server.handler.drop_after_data.add("drop@example.org")
    compose_for(storage, settings, ["drop@example.org"])
    assert [e for e, _ in deliver(storage, settings, smtp_server).unknown] == ["drop@example.org"]
    late = NOW + FAST.deadline + timedelta(minutes=1)
    report = deliver(storage, settings, smtp_server, clock=at(late))
    [(email, why)] = report.unconfirmed
    assert email == "drop@example.org"
    assert why.startswith("outcome unknown, gave up after 2 tries: ")
    assert states(storage)["drop@example.org"] == ("unconfirmed", 2)
    # However often a sender runs after the deadline, no copy goes out again.
    for minutes in (2, 60, 600):
        later = at(late + timedelta(minutes=minutes))
        assert deliver(storage, settings, smtp_server, clock=later).unconfirmed == []
    assert len(smtp_server.handler.received) == 2
    assert "unconfirmed" in pipeline.describe_report(report)
    shown = run("status", "drop@example.org").stdout
    assert "unconfirmed" in shown and "outcome unknown, gave up after 2 tries" in shown


def test_a_4xx_after_an_unknown_outcome_never_turns_it_into_failed(
    storage: Storage, settings: Settings, smtp_server: SmtpServer
) -> None:
    handler = smtp_server.handler
    handler.drop_after_data.add("drop@example.org")
    compose_for(storage, settings, ["drop@example.org"])
    deliver(storage, settings, smtp_server)
    # Before the deadline a 4xx keeps it "unknown": it may be in the mailbox already.
    handler.drop_after_data.clear()
    handler.data_reply["drop@example.org"] = "451 4.3.0 Try later"
    deliver(storage, settings, smtp_server, clock=at(NOW + timedelta(minutes=1)))
    assert states(storage)["drop@example.org"] == ("unknown", 2)
    late = at(NOW + FAST.deadline + timedelta(minutes=1))
    report = deliver(storage, settings, smtp_server, clock=late)
    assert report.failed == []
    assert report.unconfirmed[0][1].startswith("outcome unknown, gave up after 3 tries: 451")
    assert states(storage)["drop@example.org"] == ("unconfirmed", 3)


@pytest.mark.parametrize("slowness", ["rate", "server"])
def test_two_staggered_senders_with_a_short_lease_send_each_digest_once(
    storage: Storage, settings: Settings, smtp_server: SmtpServer, slowness: str
) -> None:
    emails = [f"reader{i}@example.org" for i in range(40)]
    compose_for(storage, settings, emails)
    # A 2 s lease, and 40 messages that take 4 s or more: a slow rate limits how
    # many are claimed at once; a slow server needs the leases renewed.
    policy = pipeline.RetryPolicy(base=0.001, cap=0.001, lease=timedelta(seconds=2))
    limit = RateLimit(per_second=10) if slowness == "rate" else None
    if slowness == "server":
        smtp_server.handler.stall.update(dict.fromkeys(emails, 0.1))

    async def both() -> list[pipeline.SendReport]:
        def sender(name: str) -> Any:
            return pipeline.deliver(
                storage,
                make_renderer(settings),
                transports(smtp_server, 1),
                worker=name,
                clock=lambda: datetime.now(UTC),
                policy=policy,
                limit=limit,
            )

        first = asyncio.ensure_future(sender("first"))
        await asyncio.sleep(2.5)  # past the first claim's lease
        second = asyncio.ensure_future(sender("second"))
        return list(await asyncio.gather(first, second))

    reports = asyncio.run(both())
    arrived = Counter(r.rcpt_tos[0] for r in smtp_server.handler.received)
    assert arrived == dict.fromkeys(emails, 1)  # every digest once, none twice
    assert sum(r.recorded for r in reports) == len(emails)
    assert set(states(storage).values()) == {("sent", 1)}


def test_a_server_that_refuses_in_its_greeting_is_reported_in_words() -> None:
    async def refuse(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"554 5.3.2 no service here\r\n")
        await writer.drain()
        writer.close()

    async def connect() -> str:
        server = await asyncio.start_server(refuse, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            transport = SmtpTransport(SmtpTarget("127.0.0.1", port, None, None, False), 5.0)
            with pytest.raises(ServerUnavailable) as info:
                async with transport:
                    pass
            return str(info.value)

    message = asyncio.run(connect())
    assert "refused the connection: 554 5.3.2 no service here" in message
    assert "(554," not in message  # no Python tuple

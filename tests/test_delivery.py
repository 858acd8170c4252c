"""Digests delivered to a real SMTP server (aiosmtpd), parsed back and checked."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

from sqlalchemy import text

from notifier import pipeline
from notifier.app import make_renderer, make_transport
from notifier.models import Interest
from notifier.settings import Settings, load_settings
from notifier.storage import Storage
from tests.conftest import JOINED, NOW, SEED_FILES, Cli, SmtpServer, seed_bytes

ROBOTS = "robots=robot OR robots OR robotic"
DIFFUSION = 'diffusion="diffusion model" OR "diffusion models"'


def subscribe_two(run: Cli) -> None:
    assert (
        run.subscribe_earlier("ada@example.org", "--name", "Ada", "--interest", ROBOTS).exit_code
        == 0
    )
    assert run.subscribe_earlier("bob@example.org", "--interest", DIFFUSION).exit_code == 0


def digest_rows(storage_url: str) -> list[tuple[str, str, str, int]]:
    store = Storage(storage_url)
    with store.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT s.email, d.status, d.message_id, d.attempts FROM digests d "
                "JOIN subscribers s ON s.id = d.subscriber_id ORDER BY s.email"
            )
        ).all()
    store.close()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def fixed(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_digests_arrive_with_headers_both_parts_and_links(
    run: Cli, smtp_server: SmtpServer
) -> None:
    run.env["NOTIFIER_SMTP_URL"] = smtp_server.url
    run("ingest", str(SEED_FILES[0]))
    subscribe_two(run)
    result = run("digest")
    assert result.exit_code == 0, result.output + result.stderr
    assert result.output.splitlines()[-1] == "sent 2, failed 0, deferred 0, unknown 0"
    received = {r.rcpt_tos[0]: r for r in smtp_server.handler.received}
    assert sorted(received) == ["ada@example.org", "bob@example.org"]

    ada = received["ada@example.org"]
    msg = ada.message
    assert ada.mail_from == "digests@notifier.test.example"
    assert msg["From"] == "notifier <digests@notifier.test.example>"
    assert msg["To"] == "Ada <ada@example.org>"
    assert re.fullmatch(r"\d+ new papers on robots \(\d{4}-\d{2}-\d{2}\)", msg["Subject"])
    assert parsedate_to_datetime(msg["Date"]).tzinfo is not None
    assert msg["List-Id"] == "notifier digests <digests.notifier.test.example>"
    # One HTTPS URL (RFC 8058) holding a signed, dated token: key.timestamp.signature.
    unsubscribe = msg["List-Unsubscribe"].strip("<>")
    assert re.fullmatch(
        r"https://papers\.example\.org/unsubscribe/[\w-]{32}\.[\w-]+\.[\w-]{43}", unsubscribe
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # The Message-ID is the one recorded with the digest, so a retry is recognisable.
    recorded = {
        email: message_id
        for email, _, message_id, _ in digest_rows(run.env["NOTIFIER_DATABASE_URL"])
    }
    assert msg["Message-ID"] == recorded["ada@example.org"]

    assert msg.get_content_type() == "multipart/alternative"
    # Alternatives go from worst to best: text first, HTML last (RFC 2046).
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None and html is not None
    text_body, html_body = plain.get_content(), html.get_content()
    assert "<style" not in html_body and 'style="' in html_body  # CSS inlined
    assert "== robots ==" in text_body and "Why: " in text_body
    assert unsubscribe in text_body and f'href="{unsubscribe}"' in html_body
    paper_links = re.findall(r'href="(https://arxiv\.org/search/[^"]+)"', html_body)
    subject_count = int(msg["Subject"].split()[0])
    assert len(paper_links) == subject_count
    for link in paper_links:
        assert link.replace("&amp;", "&") in text_body
    assert "/feeds/subscribers/" in text_body


def test_a_second_run_the_same_day_sends_nothing_more(run: Cli, smtp_server: SmtpServer) -> None:
    run.env["NOTIFIER_SMTP_URL"] = smtp_server.url
    run("ingest", str(SEED_FILES[0]))
    subscribe_two(run)
    run("digest")
    again = run("digest")
    assert again.exit_code == 0
    assert "2 subscriber(s) have nothing due: they have the digest of their current" in (
        again.output
    )
    assert again.output.splitlines()[-1] == "sent 0, failed 0, deferred 0, unknown 0"
    assert len(smtp_server.handler.received) == 2


def test_consecutive_days_never_repeat_a_paper(
    storage: Storage, settings: Settings, smtp_server: SmtpServer
) -> None:
    storage.save_subscriber(
        "ada@example.org", "Ada", [Interest("rl", '"reinforcement learning" OR RL')], JOINED
    )
    smtp = load_settings(**settings.model_dump(exclude={"smtp_url"}), smtp_url=smtp_server.url)
    renderer = make_renderer(settings)
    for day in range(3):
        now = NOW + timedelta(days=day)
        pipeline.ingest(storage, f"day{day}", seed_bytes(day), now - timedelta(hours=1))
        pipeline.compose_digests(storage, settings, now)
        asyncio.run(pipeline.send_pending(storage, renderer, make_transport(smtp), fixed(now)))
    titles = []
    for received in smtp_server.handler.received:
        plain = received.message.get_body(("plain",))
        assert plain is not None
        titles += re.findall(r"^\* (.+)$", plain.get_content(), re.M)
    assert len(smtp_server.handler.received) == 3
    assert len(titles) == len(set(titles)) > 30


def test_refused_recipient_fails_alone_and_others_are_served(
    run: Cli, smtp_server: SmtpServer
) -> None:
    run.env["NOTIFIER_SMTP_URL"] = smtp_server.url
    smtp_server.handler.refuse["ada@example.org"] = "550 5.1.1 No such user"
    run("ingest", str(SEED_FILES[0]))
    subscribe_two(run)
    result = run("digest")
    assert result.exit_code == 1
    assert (
        "notifier: error: ada@example.org: not delivered: 550 5.1.1 No such user" in result.stderr
    )
    assert [r.rcpt_tos for r in smtp_server.handler.received] == [["bob@example.org"]]
    states = {
        email: status for email, status, _, _ in digest_rows(run.env["NOTIFIER_DATABASE_URL"])
    }
    assert states == {"ada@example.org": "failed", "bob@example.org": "sent"}
    status = run("status", "ada@example.org")
    assert "failed" in status.output and "550 5.1.1 No such user" in status.output


def test_temporary_refusal_is_retried_on_the_next_run(run: Cli, smtp_server: SmtpServer) -> None:
    run.env["NOTIFIER_SMTP_URL"] = smtp_server.url
    smtp_server.handler.refuse["ada@example.org"] = "451 4.7.1 Try again later"
    run("ingest", str(SEED_FILES[0]))
    subscribe_two(run)
    first = run("digest")
    assert first.exit_code == 1
    assert "ada@example.org: will retry later: 451 4.7.1 Try again later" in first.stderr
    del smtp_server.handler.refuse["ada@example.org"]
    second = run("digest")
    assert second.exit_code == 0
    assert second.output.splitlines()[-1] == "sent 1, failed 0, deferred 0, unknown 0"
    rows = digest_rows(run.env["NOTIFIER_DATABASE_URL"])
    assert [(email, status, attempts) for email, status, _, attempts in rows] == [
        ("ada@example.org", "sent", 2),
        ("bob@example.org", "sent", 1),
    ]


def test_dead_smtp_server_stops_with_one_line_and_loses_nothing(
    run: Cli, smtp_server: SmtpServer
) -> None:
    run.env["NOTIFIER_SMTP_URL"] = f"smtp://127.0.0.1:{free_port()}"
    run("ingest", str(SEED_FILES[0]))
    subscribe_two(run)
    dead = run("digest")
    assert dead.exit_code == 1
    [line] = dead.stderr.splitlines()
    assert line.startswith("notifier: error: cannot reach the mail server 127.0.0.1:")
    assert line.endswith("check NOTIFIER_SMTP_URL and that the server is running")
    pending = digest_rows(run.env["NOTIFIER_DATABASE_URL"])
    assert [status for _, status, _, _ in pending] == ["pending", "pending"]

    run.env["NOTIFIER_SMTP_URL"] = smtp_server.url
    assert run("digest").exit_code == 0
    received = {r.rcpt_tos[0]: r.message["Message-ID"] for r in smtp_server.handler.received}
    assert received == {email: mid for email, _, mid, _ in pending}


def test_no_mail_server_configured_is_explained_and_nothing_recorded(run: Cli) -> None:
    run("ingest", str(SEED_FILES[0]))
    subscribe_two(run)
    outbox = Path(run.env["NOTIFIER_STATE_DIR"]) / "outbox"
    for command in ("digest", "send", "run-once"):
        result = run(command)
        assert result.exit_code == 1
        assert result.stderr == (
            "notifier: error: no mail server configured: set NOTIFIER_SMTP_URL "
            "(smtp://user:pass@host:port), or run `notifier digest --dry-run` to write the "
            f"digests to {outbox}/\n"
        ), command
    assert digest_rows(run.env["NOTIFIER_DATABASE_URL"]) == []
    # What the message suggests works.
    assert run("digest", "--dry-run").exit_code == 0
    assert list(outbox.glob("*.eml"))


def test_dry_run_writes_previews_and_records_nothing(run: Cli, smtp_server: SmtpServer) -> None:
    run("ingest", str(SEED_FILES[0]))
    subscribe_two(run)
    preview = run("digest", "--dry-run")
    assert preview.exit_code == 0
    outbox = sorted(p.name for p in (run_state(run) / "outbox").glob("*.eml"))
    assert len(outbox) == 2 and all(name.startswith("dry-run_") for name in outbox)
    assert digest_rows(run.env["NOTIFIER_DATABASE_URL"]) == []
    run.env["NOTIFIER_SMTP_URL"] = smtp_server.url
    assert run("digest").exit_code == 0
    assert len(smtp_server.handler.received) == 2


def test_digest_json_lists_sections_papers_scores_and_reasons(run: Cli) -> None:
    run("ingest", str(SEED_FILES[0]))
    subscribe_two(run)
    run.subscribe_earlier("eve@example.org", "--interest", "nothing=zzzunmatchable")
    result = run("digest", "--dry-run", "--json")
    digests = {d["subscriber"]: d for d in map(json.loads, result.stdout.splitlines())}
    ada = digests["ada@example.org"]
    assert ada["outcome"] == "created"
    [section] = ada["sections"]
    assert section["interest"] == "robots"
    scores = [p["score"] for p in section["papers"]]
    assert scores == sorted(scores, reverse=True)
    assert all(p["title"] and p["reason"].startswith("“robot") for p in section["papers"])
    eve = digests["eve@example.org"]
    assert (eve["outcome"], eve["sections"]) == ("empty", [])
    assert eve["reason"] == "none of the 72 recent papers you have not seen matched your interests"
    assert result.stderr.startswith("dry run: wrote 2 preview(s)")


def run_state(run: Cli) -> Path:
    return Path(run.env["NOTIFIER_STATE_DIR"])

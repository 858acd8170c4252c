"""Digests posted to Slack, Discord, Matrix and signed webhooks: once, retried, given up."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import httpx
import orjson
import pytest

from notifier import pipeline, validation
from notifier.chat import message_for
from notifier.delivery.webhooks import WebhookPoster, channel_request, post_test, retry_after
from notifier.errors import InvalidInput, StorageError
from notifier.matching import matching_for
from notifier.models import Channel, ChannelKind, ChannelStatus, Interest, PostStatus
from notifier.pipeline.channels import (
    PostReport,
    channel_digest,
    compose_topic_digests,
    post_channels,
)
from notifier.settings import Settings, Topic
from notifier.storage import Storage
from notifier.storage.schema import channel_posts, topic_digests, topic_ledger
from tests.conftest import NOW, Cli, seed_bytes
from tests.matrix_server import MatrixServer
from tests.webhook_server import Answer, WebhookServer, signature_ok

JOINED = NOW - timedelta(days=6)


@pytest.fixture
def local(settings: Settings) -> Settings:
    """Return the settings with channels allowed on loopback and short timeouts."""
    return settings.model_copy(update={"channel_private_hosts": True, "channel_timeout": 1.0})


def _ingest(storage: Storage, days: int = 5, end: datetime = NOW) -> None:
    """Ingest the bundled listings a day apart, ending an hour before end."""
    for day in range(days):
        when = end - timedelta(days=days - 1 - day, hours=1)
        pipeline.ingest(storage, f"day{day}", seed_bytes(day), when)


def _subscriber_channel(
    storage: Storage, settings: Settings, kind: str, url: str, **fields: str
) -> Channel:
    """Store a subscriber with a broad interest and one channel, then compose their digest."""
    _ingest(storage)
    subscriber, _ = storage.save_subscriber(
        "ada@example.org", "Ada", [Interest("Learning", "learning")], JOINED
    )
    spec = validation.channel(kind, url, allow_http=True, **fields)
    channel = storage.add_channel(
        spec.kind,
        spec.label,
        spec.url,
        NOW - timedelta(days=1),
        subscriber_id=subscriber.id,
        room=spec.room,
        secret=spec.secret,
    )
    [result] = pipeline.compose_digests(storage, settings, NOW)
    assert result.content is not None and result.content.paper_count > 10
    return channel


def _post(storage: Storage, settings: Settings, at: datetime = NOW) -> PostReport:
    """Run one posting run at a fixed moment."""
    return asyncio.run(post_channels(storage, settings, lambda: at))


def _posts(storage: Storage) -> list[dict[str, object]]:
    """Return every post row."""
    with storage.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(channel_posts.select())]


def _digest_titles(storage: Storage) -> list[str]:
    """Return the titles of the subscriber's digest, in order."""
    [record] = storage.digest_page(0, 10)
    found = storage.digest_content(digest_id=record.id)
    assert found is not None
    return [p.title for p in found[1].papers]


def test_a_webhook_gets_the_digest_once_signed_with_its_key(
    storage: Storage, local: Settings, webhook_server: WebhookServer
) -> None:
    channel = _subscriber_channel(storage, local, "webhook", f"{webhook_server.url}/hook")
    report = _post(storage, local)
    assert report.sent == 1 and not report.failed
    [request] = webhook_server.requests
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert channel.secret and signature_ok(
        channel.secret, request.headers["notifier-signature"], request.body
    )
    # A receiver that checks with another key refuses it.
    assert not signature_ok("not-the-key", request.headers["notifier-signature"], request.body)
    payload = orjson.loads(request.body)
    assert payload["type"] == "digest"
    assert payload["id"] == request.headers["idempotency-key"]
    titles = [p["title"] for s in payload["sections"] for p in s["papers"]]
    assert titles == _digest_titles(storage)
    assert payload["url"].startswith("https://papers.example.org/digest/")
    # A second run, and a later one, post nothing more.
    assert _post(storage, local, NOW + timedelta(minutes=5)).sent == 0
    assert len(webhook_server.requests) == 1
    [post] = _posts(storage)
    assert post["status"] == PostStatus.SENT and post["attempts"] == 1
    assert storage.channel(channel.id).last_sent_at is not None  # type: ignore[union-attr]


def test_a_429_waits_as_long_as_retry_after_says_and_repeats_the_same_message(
    storage: Storage, local: Settings, webhook_server: WebhookServer
) -> None:
    _subscriber_channel(storage, local, "slack", f"{webhook_server.url}/services/T0/B0/x")
    webhook_server.answer(Answer(429, b"rate_limited", {"Retry-After": "120"}))
    first = _post(storage, local)
    assert first.sent == 0 and first.retried == 1
    [post] = _posts(storage)
    assert post["status"] == PostStatus.PENDING
    assert "429" in str(post["last_error"]) and "rate_limited" in str(post["last_error"])
    # Not before the two minutes are up...
    assert _post(storage, local, NOW + timedelta(seconds=100)).sent == 0
    assert len(webhook_server.requests) == 1
    # ...then the same message again.
    assert _post(storage, local, NOW + timedelta(seconds=121)).sent == 1
    assert [r.body for r in webhook_server.requests] == [webhook_server.requests[0].body] * 2
    assert _posts(storage)[0]["status"] == PostStatus.SENT


def test_a_discord_429_with_retry_after_in_its_body_is_honoured(
    storage: Storage, local: Settings, webhook_server: WebhookServer
) -> None:
    _subscriber_channel(storage, local, "discord", f"{webhook_server.url}/api/webhooks/1/abc")
    webhook_server.answer(
        Answer(429, b'{"message": "You are being rate limited.", "retry_after": 3.5}')
    )
    assert _post(storage, local).retried == 1
    assert _post(storage, local, NOW + timedelta(seconds=3)).sent == 0
    assert _post(storage, local, NOW + timedelta(seconds=4)).sent == 1
    # Discord is asked to answer once the message exists, so a refusal says why.
    assert webhook_server.requests[-1].path == "/api/webhooks/1/abc?wait=true"
    body = orjson.loads(webhook_server.requests[-1].body)
    assert body["allowed_mentions"] == {"parse": []}


def test_a_5xx_is_retried_with_backoff_and_a_4xx_is_given_up_with_its_reason(
    storage: Storage, local: Settings, webhook_server: WebhookServer
) -> None:
    channel = _subscriber_channel(storage, local, "webhook", f"{webhook_server.url}/hook")
    webhook_server.answer(Answer(503, b"busy"), Answer(400, b'{"error": "bad digest"}'))
    first = _post(storage, local)
    assert first.retried == 1
    [post] = _posts(storage)
    wait = post["next_attempt_at"] - NOW  # type: ignore[operator]
    # retry_base (60 s) with jitter: not at once, not hours.
    assert timedelta(seconds=25) <= wait <= timedelta(seconds=95)
    second = _post(storage, local, NOW + timedelta(hours=1))
    assert second.failed == [(channel.label, 'webhook answered 400: {"error": "bad digest"}')]
    assert _posts(storage)[0]["status"] == PostStatus.FAILED
    # Given up: never tried again, and the channel counts one refusal.
    assert _post(storage, local, NOW + timedelta(hours=3)).sent == 0
    assert len(webhook_server.requests) == 2
    stored = storage.channel(channel.id)
    assert stored is not None and stored.failures == 1 and stored.status is ChannelStatus.ACTIVE


def test_a_webhook_that_is_gone_suspends_its_channel(
    storage: Storage, local: Settings, webhook_server: WebhookServer
) -> None:
    channel = _subscriber_channel(storage, local, "slack", f"{webhook_server.url}/services/x")
    webhook_server.answer(Answer(404, b"no_service"))
    report = _post(storage, local)
    assert report.suspended == [channel.label]
    stored = storage.channel(channel.id)
    assert stored is not None and stored.status is ChannelStatus.SUSPENDED
    assert "404: no_service" in str(stored.last_error)
    # Resumed by its owner, it is posted to again (the next digest).
    assert storage.resume_channel(channel.id)
    assert storage.channel(channel.id).status is ChannelStatus.ACTIVE  # type: ignore[union-attr]


def test_status_names_a_suspended_channel_and_why(
    storage: Storage, local: Settings, webhook_server: WebhookServer, run: Cli
) -> None:
    channel = _subscriber_channel(
        storage, local, "discord", f"{webhook_server.url}/api/webhooks/9/t"
    )
    webhook_server.answer(Answer(404, b'{"message": "Unknown Webhook", "code": 10015}'))
    _post(storage, local)
    service = run("status")
    assert service.exit_code == 0
    assert f"channel SUSPENDED: {channel.id} {channel.label}" in service.output
    assert "Unknown Webhook" in service.output
    assert f"`notifier channel resume {channel.id}`" in service.output
    assert "channel posts: 1 failed" in service.output
    one = run("status", "ada@example.org")
    assert (
        f"channel {channel.id} discord {channel.label!r} [suspended]: nothing posted yet"
        in one.output
    )
    assert webhook_server.url not in one.output + service.output  # the secret URL is never shown


def test_a_channel_on_a_private_address_is_refused_unless_allowed(
    storage: Storage, settings: Settings, webhook_server: WebhookServer
) -> None:
    channel = _subscriber_channel(storage, settings, "webhook", f"{webhook_server.url}/hook")
    report = _post(storage, settings)
    assert not webhook_server.requests  # nothing left the machine
    [(label, why)] = report.failed
    assert label == channel.label
    assert "127.0.0.1, a private or local address" in why and "channel_private_hosts" in why
    assert report.suspended == [channel.label]


@pytest.mark.parametrize(
    ("target", "posted_again"),
    [(("webhook", "/hook"), True), (("slack", "/services/T/B/x"), False)],
)
def test_a_post_cut_off_by_a_crash_is_repeated_only_where_the_receiver_can_tell(
    storage: Storage,
    local: Settings,
    webhook_server: WebhookServer,
    target: tuple[str, str],
    posted_again: bool,
) -> None:
    kind, path = target
    _subscriber_channel(storage, local, kind, webhook_server.url + path)
    # A worker leases the post, says it is posting, and dies before recording anything.
    [claimed] = storage.claim_posts("dead:1", 10, NOW, timedelta(minutes=5), NOW)
    assert storage.start_post(claimed.id, "dead:1", NOW, timedelta(minutes=5))
    # Its lease is not up yet: nobody takes the post over.
    assert _post(storage, local, NOW + timedelta(minutes=1)).sent == 0
    report = _post(storage, local, NOW + timedelta(minutes=6))
    [post] = _posts(storage)
    if posted_again:
        # The same key again: a receiver that keeps keys sees one message.
        assert report.sent == 1 and post["status"] == PostStatus.SENT
        [request] = webhook_server.requests
        assert request.headers["idempotency-key"] == claimed.key
    else:
        # Slack cannot tell a repeat: at most once, and the reason says so.
        assert not webhook_server.requests
        assert post["status"] == PostStatus.UNCONFIRMED
        assert "cannot tell a repeat" in str(post["last_error"])


@pytest.mark.parametrize(("kind", "path"), [("webhook", "/hook"), ("discord", "/api/webhooks/1/t")])
def test_no_answer_after_the_request_went_out(
    storage: Storage, local: Settings, webhook_server: WebhookServer, kind: str, path: str
) -> None:
    _subscriber_channel(storage, local, kind, webhook_server.url + path)
    webhook_server.answer(Answer(hang_up=True))
    report = _post(storage, local)
    [post] = _posts(storage)
    assert post["unknown_since"] is not None
    if kind == "webhook":
        assert report.retried == 1 and post["status"] == PostStatus.PENDING
        assert _post(storage, local, NOW + timedelta(hours=2)).sent == 1
        keys = {r.headers["idempotency-key"] for r in webhook_server.requests}
        assert len(keys) == 1 and len(webhook_server.requests) == 2
    else:
        assert post["status"] == PostStatus.UNCONFIRMED
        assert "no answer after the message went out" in str(post["last_error"])


def test_a_paused_subscriber_and_a_removed_channel_get_no_posts(
    storage: Storage, local: Settings, webhook_server: WebhookServer
) -> None:
    channel = _subscriber_channel(storage, local, "webhook", f"{webhook_server.url}/hook")
    subscriber = storage.subscriber_by_email("ada@example.org")
    storage.update_preferences(subscriber.id, status="paused", now=NOW)
    assert _post(storage, local).sent == 0
    assert storage.remove_channel(channel.id)
    storage.update_preferences(subscriber.id, status="active", now=NOW)
    assert _post(storage, local).sent == 0
    assert not webhook_server.requests and not _posts(storage)


def test_a_topic_channel_gets_the_topic_digest_and_no_paper_twice(
    storage: Storage, local: Settings, webhook_server: WebhookServer
) -> None:
    settings = local.model_copy(
        update={"topics": (Topic(name="Robots", slug="robots", query="robot*"),)}
    )
    storage.add_channel(
        ChannelKind.SLACK,
        "Lab channel",
        f"{webhook_server.url}/services/lab",
        NOW - timedelta(days=10),
        topic="robots",
    )
    _ingest(storage, days=3, end=NOW - timedelta(days=2))
    matching = matching_for(settings)
    first_day = NOW - timedelta(days=2)
    assert compose_topic_digests(storage, settings, first_day, matching) == 1
    assert compose_topic_digests(storage, settings, first_day, matching) == 0  # once a period
    assert _post(storage, settings, first_day).sent == 1
    first = orjson.loads(webhook_server.requests[0].body)
    assert "Robots" in first["text"]
    first_text = orjson.dumps(first["blocks"]).decode()
    assert "robot" in first_text.lower()
    # Two days later, with two more listings: only what the first did not offer.
    for day in (3, 4):
        pipeline.ingest(
            storage, f"day{day}", seed_bytes(day), NOW - timedelta(days=4 - day, hours=1)
        )
    assert compose_topic_digests(storage, settings, NOW, matching) == 1
    assert _post(storage, settings, NOW).sent == 1
    with storage.engine.connect() as conn:
        digests = conn.execute(topic_digests.select().order_by(topic_digests.c.id)).all()
        ledger = conn.execute(topic_ledger.select()).all()
    assert len(ledger) == len({r.paper_id for r in ledger})
    first_ids = {p["paper_id"] for s in digests[0].content["sections"] for p in s["papers"]}
    second_ids = {p["paper_id"] for s in digests[1].content["sections"] for p in s["papers"]}
    assert first_ids and not first_ids & second_ids
    assert first["blocks"][-1]["type"] in ("section", "context")


def test_send_a_test_message(local: Settings, webhook_server: WebhookServer) -> None:
    spec = validation.channel("webhook", f"{webhook_server.url}/hook", allow_http=True)
    channel = Channel(1, spec.kind, spec.label, spec.url, subscriber_id=1, secret=spec.secret)
    assert (
        asyncio.run(post_test(channel, NOW, timeout=1, private_hosts=True))
        == "webhook answered 200"
    )
    [request] = webhook_server.requests
    assert orjson.loads(request.body)["type"] == "test"
    assert spec.secret and signature_ok(
        spec.secret, request.headers["notifier-signature"], request.body
    )
    webhook_server.answer(Answer(403, b"invalid_token"))
    with pytest.raises(Exception, match="webhook answered 403: invalid_token"):
        asyncio.run(post_test(channel, NOW, timeout=1, private_hosts=True))


def test_a_matrix_room_gets_the_digest_once_even_when_posted_again(
    storage: Storage, local: Settings, matrix_server: MatrixServer
) -> None:
    _, token = matrix_server.register(f"bot-{secrets.token_hex(4)}")
    room = matrix_server.create_room(token, "Papers")
    _, reader_token = matrix_server.register(f"reader-{secrets.token_hex(4)}")
    matrix_server.join(reader_token, room)
    _subscriber_channel(storage, local, "matrix", matrix_server.base_url, room=room, token=token)
    # The first attempt reaches Synapse, then its worker dies before recording it.
    [claimed] = storage.claim_posts("dead:1", 10, NOW, timedelta(minutes=5), NOW)
    assert storage.start_post(claimed.id, "dead:1", NOW, timedelta(minutes=5))
    body = message_for("matrix", channel_digest(claimed, local, None)).body
    request = channel_request(claimed.channel, body, claimed.key, NOW)

    async def first_attempt() -> int:
        async with WebhookPoster(timeout=5, private_hosts=True) as poster:
            return (await poster.post(request, NOW)).status

    assert asyncio.run(first_attempt()) == 200
    # Taken over once the lease is up: posted again with the same transaction id.
    report = _post(storage, local, NOW + timedelta(minutes=6))
    assert report.sent == 1
    messages = matrix_server.messages(reader_token, room)
    assert len(messages) == 1  # Synapse saw a repeat, not a second message
    content = messages[0]["content"]
    assert content["msgtype"] == "m.notice"
    assert content["format"] == "org.matrix.custom.html"
    assert _digest_titles(storage)[0] in content["body"]


def test_a_matrix_token_that_is_not_valid_suspends_the_channel(
    storage: Storage, local: Settings, matrix_server: MatrixServer
) -> None:
    _, token = matrix_server.register(f"bot-{secrets.token_hex(4)}")
    room = matrix_server.create_room(token, "Papers 2")
    channel = _subscriber_channel(
        storage, local, "matrix", matrix_server.base_url, room=room, token="not-a-token"
    )
    report = _post(storage, local)
    assert report.suspended == [channel.label]
    assert "matrix answered 401" in report.failed[0][1] and "M_UNKNOWN_TOKEN" in report.failed[0][1]


def test_channel_urls_are_checked_and_never_shown_in_full() -> None:
    url = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXabcd"
    spec = validation.channel("slack", url)
    channel = Channel(1, spec.kind, spec.label, spec.url)
    assert channel.shown_url == "https://hooks.slack.com/…abcd"
    assert "XXXX" not in repr(channel.shown_url)
    assert spec.label == "Slack (hooks.slack.com)"
    refusals: list[tuple[Callable[[], object], str]] = [
        (lambda: validation.channel("telegram", url), "unknown channel kind 'telegram'"),
        (lambda: validation.channel("slack", "http://hooks.slack.com/x"), "https://"),
        (lambda: validation.channel("slack", "javascript:alert(1)"), "https://"),
        (
            lambda: validation.channel("discord", "https://discord.com/channels/1/2"),
            "/api/webhooks/ID/TOKEN",
        ),
        (
            lambda: validation.channel(
                "matrix", "https://matrix.org", room="#papers:matrix.org", token="t"
            ),
            "room's id",
        ),
        (
            lambda: validation.channel("matrix", "https://matrix.org", room="!a:matrix.org"),
            "access token",
        ),
        (lambda: validation.channel("webhook", "https://u:p@example.org/h"), "user name"),
    ]
    for call, message in refusals:
        with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace("?", r"\?")):
            call()
    # A webhook without a key is given a random one.
    made = validation.channel("webhook", "https://example.org/hook")
    assert made.secret and len(made.secret) >= 40


class _LosesTheFirstMark(Storage):
    """Storage whose first "sent" mark fails as a locked or lost database would."""

    failed = False

    def finish_post_sent(self, post_id: int, worker: str, now: datetime) -> None:
        if not self.failed:
            self.failed = True
            raise StorageError("database is locked")
        super().finish_post_sent(post_id, worker, now)


def test_a_mark_lost_after_slack_took_the_post_never_posts_it_again(
    settings: Settings, local: Settings, webhook_server: WebhookServer
) -> None:
    storage = _LosesTheFirstMark(settings.database)
    storage.migrate()
    try:
        _subscriber_channel(storage, local, "slack", f"{webhook_server.url}/services/T/B/x")
        _post(storage, local)  # Slack answers 200; the mark cannot be written
        assert len(webhook_server.requests) == 1
        # Once the lease is up the post may have arrived: Slack cannot tell a repeat.
        report = _post(storage, local, NOW + timedelta(minutes=6))
        assert len(webhook_server.requests) == 1
        [post] = _posts(storage)
        assert post["status"] == PostStatus.UNCONFIRMED
        assert report.unconfirmed and "cannot tell a repeat" in report.unconfirmed[0][1]
    finally:
        storage.close()


def test_a_channel_url_never_reaches_the_logs(
    storage: Storage,
    local: Settings,
    webhook_server: WebhookServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "services/T0001/B0002/Zk3JmQxv9TqLw"
    _subscriber_channel(storage, local, "slack", f"{webhook_server.url}/{secret}")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger().setLevel(logging.INFO)  # as notifier run and serve set it
        assert _post(storage, local).sent == 1
    assert webhook_server.requests[0].path == f"/{secret}"
    assert "Zk3JmQxv9TqLw" not in caplog.text


def test_a_stopping_run_posts_nothing_more_and_leaves_the_posts_due(
    storage: Storage, local: Settings, webhook_server: WebhookServer
) -> None:
    _subscriber_channel(storage, local, "webhook", f"{webhook_server.url}/hook")
    stop = asyncio.Event()
    stop.set()
    report = asyncio.run(post_channels(storage, local, lambda: NOW, stop=stop))
    assert report.sent == 0 and not webhook_server.requests
    [post] = _posts(storage)
    assert post["status"] == PostStatus.PENDING and post["lease_owner"] is None
    assert _post(storage, local).sent == 1


def test_posts_given_up_after_the_deadline_do_not_count_against_the_channel(
    storage: Storage, local: Settings, webhook_server: WebhookServer
) -> None:
    channel = _subscriber_channel(storage, local, "webhook", f"{webhook_server.url}/hook")
    # The channel was suspended for a week; its posts waited out the suspension.
    with storage.engine.begin() as conn:
        conn.execute(channel_posts.update().values(created_at=NOW - timedelta(days=7)))
    report = _post(storage, local)
    assert not webhook_server.requests
    assert report.failed and report.failed[0][1].startswith("gave up after 0 attempts")
    stored = storage.channel(channel.id)
    assert stored is not None and stored.failures == 0 and stored.status is ChannelStatus.ACTIVE


def test_a_refusal_is_kept_as_printable_words(
    storage: Storage, local: Settings, webhook_server: WebhookServer
) -> None:
    _subscriber_channel(storage, local, "webhook", f"{webhook_server.url}/hook")
    webhook_server.answer(Answer(400, b"\x1b[2J\x1b[31mno such\r\nhook\x07"))
    report = _post(storage, local)
    [(_, why)] = report.failed
    assert why == "webhook answered 400: [2J [31mno such hook"
    assert not any(not c.isprintable() for c in why)


def test_a_digest_composed_before_a_channel_was_added_is_not_posted(
    storage: Storage, local: Settings, webhook_server: WebhookServer
) -> None:
    _ingest(storage, days=4)
    subscriber, _ = storage.save_subscriber(
        "ada@example.org", "Ada", [Interest("Learning", "learning")], JOINED
    )
    pipeline.compose_digests(storage, local, NOW)
    storage.add_channel(
        ChannelKind.WEBHOOK, "Hook", f"{webhook_server.url}/hook", NOW, subscriber_id=subscriber.id
    )
    assert _post(storage, local, NOW + timedelta(minutes=1)).sent == 0
    # The next day's digest is.
    pipeline.ingest(storage, "day4", seed_bytes(4), NOW + timedelta(hours=23))
    pipeline.compose_digests(storage, local, NOW + timedelta(days=1))
    assert _post(storage, local, NOW + timedelta(days=1)).sent == 1


def test_the_command_line_offers_every_channel_kind() -> None:
    from notifier.chat import KINDS as FORMATS
    from notifier.cli.channels import KINDS

    assert KINDS == tuple(k.value for k in ChannelKind) == FORMATS


def test_two_posting_runs_at_once_post_each_message_once(
    storage: Storage, settings: Settings, local: Settings, webhook_server: WebhookServer
) -> None:
    _ingest(storage)
    for n in range(3):
        subscriber, _ = storage.save_subscriber(
            f"reader{n}@example.org", None, [Interest("Learning", "learning")], JOINED
        )
        for k in range(10):
            storage.add_channel(
                ChannelKind.WEBHOOK,
                f"Hook {n}.{k}",
                f"{webhook_server.url}/hook/{n}/{k}",
                NOW - timedelta(days=1),
                subscriber_id=subscriber.id,
                secret="k",
            )
    pipeline.compose_digests(storage, local, NOW)
    # Each post waits a little at the receiver, so the two runs' claims overlap.
    webhook_server.answer(*[Answer(stall=0.05) for _ in range(30)])
    others = [Storage(settings.database) for _ in range(2)]
    try:
        with ThreadPoolExecutor(2) as pool:
            reports = list(
                pool.map(lambda s: asyncio.run(post_channels(s, local, lambda: NOW)), others)
            )
    finally:
        for other in others:
            other.close()
    assert sum(r.sent for r in reports) == 30
    keys = [r.headers["idempotency-key"] for r in webhook_server.requests]
    assert len(keys) == len(set(keys)) == 30
    assert {r.path for r in webhook_server.requests} == {
        f"/hook/{n}/{k}" for n in range(3) for k in range(10)
    }


@pytest.mark.parametrize(
    ("headers", "body", "wait"),
    [
        ({"Retry-After": "120"}, b"", 120.0),
        ({"Retry-After": "Wed, 11 Mar 2026 08:02:30 GMT"}, b"", 150.0),  # RFC 9110 10.2.3
        ({}, b'{"message": "You are being rate limited.", "retry_after": 0.75}', 0.75),
        ({}, b'{"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 2500}', 2.5),
        ({"Retry-After": "soon"}, b"not json", None),
        ({}, b'{"retry_after": true}', None),
        ({"Retry-After": "-5"}, b"", 0.0),
    ],
)
def test_how_long_a_429_asks_to_wait(
    headers: dict[str, str], body: bytes, wait: float | None
) -> None:
    assert retry_after(httpx.Headers(headers), body, NOW) == wait

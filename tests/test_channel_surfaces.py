"""Channels as their owners set them up: the CLI, the admin API, the preferences page.

Everything here runs against the real pieces, on each database backend: the
`notifier` commands, the web app under uvicorn on a real port, and a recording
HTTP server standing in for Slack, Discord or a receiver of signed webhooks.
Each test checks what a person would see: command output, JSON, page text and
the messages the receiver got. The last tests follow a digest from
`notifier digest` to the receiver, and from the message's link to the page.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from notifier import pipeline
from notifier.models import Interest
from notifier.storage.schema import digests
from notifier.tokens import LinkTokens, Purpose
from tests.conftest import NOW, SEED_FILES, Cli, SmtpServer, WebServer, seed_bytes
from tests.test_api import TOKEN, problems
from tests.test_feedback import text_of as email_text
from tests.test_web import SECRET, csrf_of, heading, with_signature_changed
from tests.webhook_server import Answer, WebhookServer, signature_ok

# Loopback webhooks allowed (the recording server is on 127.0.0.1), short timeouts.
LOCAL: dict[str, Any] = {"channel_private_hosts": True, "channel_timeout": 2}
ROBOTS = "robots=robot OR robots OR robotic"
# Long enough that only its last four characters are ever shown.
HOOK = "/hooks/T0123/B0456/s3cr3tPathPart-abcd"
SLACK = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXwxyz"
MATRIX_TOKEN = "syt_bWF0cml4LXRva2Vu_secretsecret_1a2b3c"
KEY = re.compile(r"[A-Za-z0-9_-]{43}")  # a signing key notifier makes (token_urlsafe(32))
TOPICS = '[[topics]]\nname = "Robots"\nslug = "robots"\nquery = "robot OR robots OR robotic"\n'
GONE_HINT = "(the webhook or room is gone, or the token may not post there; add it again)"


# -- helpers --------------------------------------------------------------------------


def page_text(response: httpx.Response) -> str:
    """Return a page as its reader sees it: the words, tags gone, entities read."""
    words = re.sub(r"<[^>]+>", " ", response.text)
    return re.sub(r"\s+", " ", html.unescape(words)).strip()


def channels_section(response: httpx.Response) -> str:
    """Return the text of the preferences page's "Chat and webhooks" section."""
    found = re.search(r'<section class="card" id="channels">(.*?)</section>', response.text, re.S)
    assert found, "the page has no channels section"
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", found.group(1)))).strip()


def paper_titles(response: httpx.Response) -> list[str]:
    """Return the titles a digest page lists, in order."""
    found = re.findall(r'<p class="paper-title"><a href="[^"]*">(.*?)</a></p>', response.text)
    return [html.unescape(t) for t in found]


def payload_titles(payload: dict[str, Any]) -> list[str]:
    """Return the titles of a webhook digest's JSON, in order."""
    return [p["title"] for s in payload["sections"] for p in s["papers"]]


def one_line(text: str) -> str:
    """Return the only line of text, insisting there is one."""
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture
def cli(run: Cli) -> Cli:
    """Return the CLI runner with channels allowed on loopback and short timeouts."""
    run.env["NOTIFIER_CHANNEL_PRIVATE_HOSTS"] = "true"
    run.env["NOTIFIER_CHANNEL_TIMEOUT"] = "2"
    return run


def added_id(result: Any) -> int:
    """Return the id `channel add` printed."""
    assert result.exit_code == 0, result.output
    found = re.match(r"added channel (\d+): ", result.stdout)
    assert found, result.stdout
    return int(found.group(1))


class Admin:
    """The admin API of a running server, through a client carrying the bearer token."""

    def __init__(self, server: WebServer, http: httpx.Client) -> None:
        self.server = server
        self.http = http

    def subscriber(self, email: str = "ada@example.org") -> int:
        """Create a subscriber through the API; return its id."""
        body = {"email": email, "interests": [{"name": "robots", "query": "robot*"}]}
        response = self.http.post("/subscribers", json=body)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])


@pytest.fixture
def admin_for(serve_web: Callable[..., WebServer]) -> Iterator[Callable[..., Admin]]:
    """Return a function that starts the app (settings overridden) and gives its API."""
    clients: list[httpx.Client] = []

    def start(**overrides: Any) -> Admin:
        server = serve_web(admin_token=TOKEN, **overrides)
        http = httpx.Client(
            base_url=f"{server.url}/api/v1",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        clients.append(http)
        return Admin(server, http)

    yield start
    for client in clients:
        client.close()


def manage_path(web: WebServer, email: str = "ada@example.org", name: str = "Ada") -> str:
    """Store an active subscriber; return their preferences page's path."""
    subscriber, _ = web.storage.save_subscriber(
        email, name, [Interest("robots", "robot*")], NOW - timedelta(days=3)
    )
    return f"/manage/{web.context.tokens.make(Purpose.MANAGE, subscriber.manage_token)}"


def post_form(client: httpx.Client, path: str, **fields: str) -> httpx.Response:
    """Open the preferences page as a browser does, then send its channel form."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    return client.post(f"{path}/channels", data={"csrf": csrf_of(page.text), **fields})


def add_on_page(
    client: httpx.Client, path: str, kind: str, url: str, **fields: str
) -> httpx.Response:
    """Fill in and send the "Add a channel" form."""
    form = {"action": "add", "kind": kind, "url": url, "label": "", "room": "", "token": ""}
    return post_form(client, path, **{**form, **fields})


def shown_key(response: httpx.Response) -> str:
    """Return the signing key the "Channel added" page shows."""
    assert response.status_code == 200, response.text
    assert heading(response) == "Channel added"
    found = re.search(r"it is not shown again: ([A-Za-z0-9_-]+)", page_text(response))
    assert found, page_text(response)
    assert KEY.fullmatch(found.group(1))
    return found.group(1)


def channel_ids(response: httpx.Response) -> list[int]:
    """Return the ids of the channels the preferences page lists."""
    return [int(i) for i in re.findall(r'name="channel" value="(\d+)"', response.text)]


# -- the command line --------------------------------------------------------------------


def test_cli_adds_a_webhook_prints_its_key_once_lists_it_masked_and_tests_it(
    cli: Cli, webhook_server: WebhookServer
) -> None:
    assert cli("subscribe", "ada@example.org", "--interest", ROBOTS).exit_code == 0
    url = webhook_server.url + HOOK
    added = cli("channel", "add", "webhook", url, "--email", "ada@example.org", "--label", "Lab")
    channel = added_id(added)
    port = url.split(":")[2].split("/")[0]
    shown = f"http://127.0.0.1:{port}/…abcd"
    first, second = added.stdout.splitlines()
    assert re.fullmatch(
        rf"added channel {channel}: subscriber \d+: webhook 'Lab' {shown}: active", first
    )
    found = re.fullmatch(
        r"signing key \(shown once; keep it for checking signatures\): (\S+)", second
    )
    assert found and KEY.fullmatch(found.group(1))
    key = found.group(1)

    listed = cli("channel", "list", "--email", "ada@example.org")
    assert listed.exit_code == 0
    assert re.fullmatch(
        rf"{channel}: subscriber \d+: webhook 'Lab' {shown}: active\n", listed.stdout
    )
    as_json = cli("channel", "list", "--email", "ada@example.org", "--json")
    [item] = json.loads(as_json.stdout)
    assert item["url"] == shown and item["label"] == "Lab" and item["status"] == "active"
    assert item["last_sent_at"] is None and item["failures"] == 0
    for output in (listed.output, as_json.output):
        assert key not in output and "s3cr3tPathPart" not in output

    tested = cli("channel", "test", str(channel))
    assert tested.exit_code == 0, tested.output
    assert tested.stdout == f"channel {channel}: test message posted: webhook answered 200\n"
    [request] = webhook_server.requests
    assert request.method == "POST" and request.path == HOOK
    assert signature_ok(key, request.headers["notifier-signature"], request.body)
    body = orjson.loads(request.body)
    assert body["type"] == "test" and "“Lab”" in body["text"]


def test_cli_says_in_one_line_why_a_test_failed_and_removes_a_channel(
    cli: Cli, webhook_server: WebhookServer
) -> None:
    assert cli("subscribe", "ada@example.org", "--interest", ROBOTS).exit_code == 0
    channel = added_id(
        cli("channel", "add", "slack", webhook_server.url + HOOK, "--email", "ada@example.org")
    )
    webhook_server.answer(Answer(403, b"invalid_token"))
    refused = cli("channel", "test", str(channel))
    assert refused.exit_code == 1
    assert one_line(refused.stderr) == (
        f"notifier: error: channel {channel}: test message not posted: "
        f"slack answered 403: invalid_token {GONE_HINT}"
    )
    assert refused.stdout == ""

    removed = cli("channel", "remove", str(channel))
    assert removed.exit_code == 0 and removed.stdout == f"removed channel {channel}\n"
    assert cli("channel", "list", "--email", "ada@example.org").stdout == "no channels\n"
    for command in ("remove", "test", "resume"):
        again = cli("channel", command, str(channel))
        assert again.exit_code == 1
        assert one_line(again.stderr) == (
            f"notifier: error: no channel {channel}: `notifier channel list` shows them"
        )
    assert len(webhook_server.requests) == 1  # the test of a removed channel posted nothing


def test_cli_topic_channels_need_a_configured_topic_and_never_show_a_token(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "notifier.toml").write_text(TOPICS)
    slack = added_id(cli("channel", "add", "slack", SLACK, "--topic", "robots"))
    cli.env["NOTIFIER_CHANNEL_TOKEN"] = MATRIX_TOKEN  # a token stays out of argv and history
    matrix = cli(
        "channel", "add", "matrix", "https://matrix.example.org", "--topic", "robots",
        "--room", "!AbCdEf:example.org", "--label", "Lab room",
    )  # fmt: skip
    room = added_id(matrix)
    assert "signing key" not in matrix.output  # only a webhook has one

    listed = cli("channel", "list")
    assert listed.stdout.splitlines() == [
        f"{slack}: topic robots: slack 'Slack (hooks.slack.com)' "
        "https://hooks.slack.com/…wxyz: active",
        f"{room}: topic robots: matrix 'Lab room' https://matrix.example.org/ "
        "room !AbCdEf:example.org: active",
    ]
    as_json = cli("channel", "list", "--topic", "robots", "--json")
    items = json.loads(as_json.stdout)
    assert [(i["id"], i["topic"], i["subscriber_id"]) for i in items] == [
        (slack, "robots", None),
        (room, "robots", None),
    ]
    for output in (listed.output, as_json.output, matrix.output):
        assert MATRIX_TOKEN not in output and "XXXXXXXX" not in output
    assert all(not {"token", "secret", "signing_key"} & set(i) for i in items)

    unknown = cli("channel", "add", "slack", SLACK, "--topic", "nope")
    assert unknown.exit_code == 1
    assert one_line(unknown.stderr) == (
        "notifier: error: no topic 'nope' in the config (topics: robots)"
    )
    for owners in ((), ("--topic", "robots", "--email", "ada@example.org")):
        both = cli("channel", "add", "slack", SLACK, *owners)
        assert both.exit_code == 2
        assert one_line(both.stderr) == (
            "notifier: error: name the channel's owner: --email ADDRESS or --topic SLUG"
        )
    nobody = cli("channel", "add", "slack", SLACK, "--email", "nobody@example.org")
    assert nobody.exit_code == 1
    assert one_line(nobody.stderr) == (
        "notifier: error: no subscriber with the address 'nobody@example.org'"
    )
    assert len(json.loads(cli("channel", "list", "--json").stdout)) == 2


@pytest.mark.parametrize("blank", ["", "   "], ids=["empty", "spaces"])
def test_cli_a_blank_token_is_no_token_and_the_key_made_is_printed(
    cli: Cli, webhook_server: WebhookServer, blank: str
) -> None:
    assert cli("subscribe", "ada@example.org", "--interest", ROBOTS).exit_code == 0
    cli.env["NOTIFIER_CHANNEL_TOKEN"] = blank  # set, but to nothing
    added = cli(
        "channel", "add", "webhook", webhook_server.url + HOOK, "--email", "ada@example.org"
    )
    channel = added_id(added)
    lines = added.stdout.splitlines()
    assert len(lines) == 2, added.stdout
    key = lines[1].removeprefix("signing key (shown once; keep it for checking signatures): ")
    assert KEY.fullmatch(key), lines[1]
    assert cli("channel", "test", str(channel)).exit_code == 0
    [request] = webhook_server.requests
    assert signature_ok(key, request.headers["notifier-signature"], request.body)


HOSTILE = [
    pytest.param(("webhook", "javascript:alert(1)"), "needs its https:// URL", id="javascript"),
    pytest.param(
        ("webhook", "https://ada:hunter2@example.org/hook"), "user name or password", id="userinfo"
    ),
    pytest.param(
        ("matrix", "https://matrix.example.org", "#papers:example.org", MATRIX_TOKEN),
        "room's id, like !abcdef:example.org",
        id="room-alias",
    ),
    pytest.param(
        ("webhook", "https://example.org/" + "a" * 3000),
        "at most 2000 characters",
        id="3000-characters",
    ),
    pytest.param(
        ("discord", "https://discord.com/channels/1/2"), "/api/webhooks/ID/TOKEN", id="discord-page"
    ),
]


@pytest.mark.parametrize(("given", "message"), HOSTILE)
def test_cli_refuses_a_bad_channel_in_one_line_and_stores_nothing(
    cli: Cli, given: tuple[str, ...], message: str
) -> None:
    assert cli("subscribe", "ada@example.org", "--interest", ROBOTS).exit_code == 0
    kind, url, *matrix = given
    extra = ["--room", matrix[0], "--token", matrix[1]] if matrix else []
    refused = cli("channel", "add", kind, url, "--email", "ada@example.org", *extra)
    assert refused.exit_code == 1
    line = one_line(refused.stderr)
    assert line.startswith("notifier: error: channel not added: ") and message in line
    assert "hunter2" not in refused.output and "aaaaaaaaaa" not in refused.output
    assert cli("channel", "list", "--email", "ada@example.org").stdout == "no channels\n"


def test_cli_refuses_plain_http_unless_private_hosts_are_allowed(run: Cli) -> None:
    assert run("subscribe", "ada@example.org", "--interest", ROBOTS).exit_code == 0
    url = "http://hooks.example.org/services/T0/B0/abcdefgh"
    refused = run("channel", "add", "slack", url, "--email", "ada@example.org")
    assert refused.exit_code == 1
    assert one_line(refused.stderr) == (
        "notifier: error: channel not added: a slack channel needs an https:// URL, not http://"
        " (the channel_private_hosts setting allows http:// inside your own network)"
    )
    assert run("channel", "list", "--email", "ada@example.org").stdout == "no channels\n"


# -- the admin API ----------------------------------------------------------------------


def test_api_adds_a_webhook_returns_its_key_once_and_never_the_url(
    admin_for: Callable[..., Admin], webhook_server: WebhookServer
) -> None:
    admin = admin_for(**LOCAL)
    ada = admin.subscriber()
    url = webhook_server.url + HOOK
    shown = url.rsplit("/", 4)[0] + "/…abcd"
    created = admin.http.post(
        f"/subscribers/{ada}/channels", json={"kind": "webhook", "url": url, "label": "Lab"}
    )
    assert created.status_code == 201, created.text
    made = created.json()
    key = made.pop("signing_key")
    assert KEY.fullmatch(key)
    assert made == {
        "id": made["id"],
        "kind": "webhook",
        "label": "Lab",
        "url": shown,
        "room": None,
        "subscriber_id": ada,
        "topic": None,
        "status": "active",
        "failures": 0,
        "last_error": None,
        "created_at": made["created_at"],
        "last_sent_at": None,
    }
    listed = admin.http.get(f"/subscribers/{ada}/channels")
    one = admin.http.get(f"/channels/{made['id']}")
    assert listed.json() == [one.json()]
    assert one.json() == made
    for response in (created, listed, one):
        assert "s3cr3tPathPart" not in response.text
    for response in (listed, one):
        assert key not in response.text and "signing_key" not in response.text

    tested = admin.http.post(f"/channels/{made['id']}/test")
    assert tested.status_code == 200
    assert tested.json() == {"posted": True, "answer": "webhook answered 200"}
    [request] = webhook_server.requests
    assert request.path == HOOK
    assert signature_ok(key, request.headers["notifier-signature"], request.body)

    webhook_server.answer(Answer(403, b'{"error": "invalid_token"}'))
    refused = admin.http.post(f"/channels/{made['id']}/test")
    assert refused.status_code == 200
    assert refused.json() == {
        "posted": False,
        "answer": f'test message not posted: webhook answered 403: {{"error": "invalid_token"}} '
        f"{GONE_HINT}",
    }

    assert admin.http.delete(f"/channels/{made['id']}").status_code == 204
    assert admin.http.get(f"/subscribers/{ada}/channels").json() == []
    for method, path in [
        ("GET", ""),
        ("DELETE", ""),
        ("POST", "/test"),
        ("POST", "/resume"),
    ]:
        gone = admin.http.request(method, f"/channels/{made['id']}{path}")
        assert gone.status_code == 404
        assert gone.json() == {"detail": f"no channel with id {made['id']}"}
    assert len(webhook_server.requests) == 2


def test_api_a_webhook_with_its_own_key_and_a_matrix_room_keep_their_tokens_secret(
    admin_for: Callable[..., Admin], webhook_server: WebhookServer
) -> None:
    admin = admin_for(**LOCAL)
    ada = admin.subscriber()
    own = "my-own-signing-key-0123456789"
    hook = admin.http.post(
        f"/subscribers/{ada}/channels",
        json={"kind": "webhook", "url": webhook_server.url + HOOK, "token": own},
    )
    assert hook.status_code == 201 and hook.json()["signing_key"] is None
    room = admin.http.post(
        f"/subscribers/{ada}/channels",
        json={
            "kind": "matrix",
            "url": "https://matrix.example.org",
            "room": "!AbCdEf:example.org",
            "token": MATRIX_TOKEN,
        },
    )
    assert room.status_code == 201, room.text
    assert room.json()["room"] == "!AbCdEf:example.org" and room.json()["signing_key"] is None
    assert room.json()["label"] == "Matrix (matrix.example.org)"
    listed = admin.http.get(f"/subscribers/{ada}/channels")
    assert [c["kind"] for c in listed.json()] == ["webhook", "matrix"]
    for response in (hook, room, listed):
        assert own not in response.text and MATRIX_TOKEN not in response.text

    assert admin.http.post(f"/channels/{hook.json()['id']}/test").status_code == 200
    [request] = webhook_server.requests
    assert signature_ok(own, request.headers["notifier-signature"], request.body)


def test_api_topic_channels_are_for_configured_topics_only(
    admin_for: Callable[..., Admin],
) -> None:
    admin = admin_for(topics=[{"name": "Robots", "slug": "robots", "query": "robot*"}])
    created = admin.http.post("/topics/robots/channels", json={"kind": "slack", "url": SLACK})
    assert created.status_code == 201, created.text
    made = created.json()
    assert (made["topic"], made["subscriber_id"], made["url"]) == (
        "robots",
        None,
        "https://hooks.slack.com/…wxyz",
    )
    assert made["signing_key"] is None and "XXXXXXXX" not in created.text
    listed = admin.http.get("/topics/robots/channels")
    assert [c["id"] for c in listed.json()] == [made["id"]]
    for response in (
        admin.http.get("/topics/nope/channels"),
        admin.http.post("/topics/nope/channels", json={"kind": "slack", "url": SLACK}),
    ):
        assert response.status_code == 404
        assert response.json() == {"detail": "no topic 'nope' is configured"}
    assert list(problems(admin.http.get("/topics/Not_A_Slug/channels"))) == ["slug"]
    missing = admin.http.post("/subscribers/999/channels", json={"kind": "slack", "url": SLACK})
    assert missing.status_code == 404
    assert admin.http.get("/topics/robots/channels").json() == listed.json()


SECRET_PASSWORD = "hunter2-secret"
LONG_URL = "https://example.org/" + "a" * 3000
LONG_TOKEN = "t" * 1001


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"kind": "webhook", "url": "javascript:alert(1)"}, "url", "needs its https:// URL"),
        (
            {"kind": "webhook", "url": f"https://ada:{SECRET_PASSWORD}@example.org/hook"},
            "url",
            "cannot carry a user name or password",
        ),
        (
            {
                "kind": "matrix",
                "url": "https://matrix.example.org",
                "room": "#papers:example.org",
                "token": MATRIX_TOKEN,
            },
            "room",
            "not its #alias",
        ),
        (
            {"kind": "matrix", "url": "https://matrix.example.org", "room": "!AbC:example.org"},
            "token",
            "needs an access token",
        ),
        ({"kind": "webhook", "url": LONG_URL}, "url", "at most 2000 characters"),
        (
            {"kind": "webhook", "url": "https://example.org/hook", "token": LONG_TOKEN},
            "token",
            "at most 1000 characters",
        ),
        ({"kind": "telegram", "url": "https://example.org/hook"}, "kind", "'slack'"),
        (
            {"kind": "slack", "url": SLACK, "secret": MATRIX_TOKEN},
            "secret",
            "Extra inputs are not permitted",
        ),
    ],
    ids=[
        "javascript",
        "userinfo",
        "room-alias",
        "no-token",
        "long-url",
        "long-token",
        "kind",
        "extra",
    ],
)
def test_api_a_bad_channel_is_a_422_naming_the_field_and_echoes_no_secret(
    admin_for: Callable[..., Admin], body: dict[str, str], field: str, message: str
) -> None:
    admin = admin_for(**LOCAL)
    ada = admin.subscriber()
    response = admin.http.post(f"/subscribers/{ada}/channels", json=body)
    found = problems(response)
    assert list(found) == [field] and message in found[field], found
    for secret in (SECRET_PASSWORD, MATRIX_TOKEN, LONG_URL, LONG_TOKEN):
        assert secret not in response.text
    assert admin.http.get(f"/subscribers/{ada}/channels").json() == []


def test_api_refuses_plain_http_unless_private_hosts_are_allowed(
    admin_for: Callable[..., Admin],
) -> None:
    admin = admin_for()
    ada = admin.subscriber()
    body = {"kind": "slack", "url": "http://hooks.example.org/services/T0/B0/abcdefgh"}
    found = problems(admin.http.post(f"/subscribers/{ada}/channels", json=body))
    assert found == {
        "url": "a slack channel needs an https:// URL, not http:// "
        "(the channel_private_hosts setting allows http:// inside your own network)"
    }
    assert admin.http.get(f"/subscribers/{ada}/channels").json() == []


def test_api_channel_routes_need_the_admin_token(admin_for: Callable[..., Admin]) -> None:
    admin = admin_for(**LOCAL)
    ada = admin.subscriber()
    made = admin.http.post(f"/subscribers/{ada}/channels", json={"kind": "slack", "url": SLACK})
    channel = made.json()["id"]
    with httpx.Client(base_url=admin.http.base_url) as stranger:
        for method, path, body in [
            ("GET", f"/subscribers/{ada}/channels", None),
            ("POST", f"/subscribers/{ada}/channels", {"kind": "webhook", "url": LONG_URL}),
            ("GET", f"/channels/{channel}", None),
            ("DELETE", f"/channels/{channel}", None),
            ("POST", f"/channels/{channel}/test", None),
            ("POST", f"/channels/{channel}/resume", None),
        ]:
            response = stranger.request(method, path, json=body)
            assert response.status_code == 401, (method, path)
            assert response.json() == {"detail": "missing or wrong bearer token"}
    assert [c["id"] for c in admin.http.get(f"/subscribers/{ada}/channels").json()] == [channel]


def test_api_a_body_that_is_not_json_text_is_a_400_the_spec_documents(
    admin_for: Callable[..., Admin],
) -> None:
    admin = admin_for(topics=[{"name": "Robots", "slug": "robots", "query": "robot*"}])
    ada = admin.subscriber()
    spec = httpx.get(f"{admin.server.url}/api/v1/openapi.json").json()["paths"]
    for path, documented in [
        (f"/subscribers/{ada}/channels", "/api/v1/subscribers/{subscriber_id}/channels"),
        ("/topics/robots/channels", "/api/v1/topics/{slug}/channels"),
    ]:
        response = admin.http.post(
            path, content=b"\xff\xfe{not json", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json() == {"detail": "There was an error parsing the body"}
        assert "400" in spec[documented]["post"]["responses"]
    assert admin.http.get(f"/subscribers/{ada}/channels").json() == []


# -- the preferences page ----------------------------------------------------------------


def test_page_adds_a_webhook_shows_its_key_once_and_posts_a_test_message(
    serve_web: Callable[..., WebServer], webhook_server: WebhookServer
) -> None:
    web = serve_web(**LOCAL)
    path = manage_path(web)
    url = webhook_server.url + HOOK
    with httpx.Client(base_url=web.url, follow_redirects=True) as client:
        before = client.get(path)
        assert "Chat and webhooks" in channels_section(before)
        assert "None yet: your digests go by email only." in channels_section(before)

        added = add_on_page(client, path, "webhook", url)
        key = shown_key(added)
        assert added.headers["cache-control"] == "no-store"  # the key is in it
        assert "Each post to Webhook (127.0.0.1) is signed with this key" in page_text(added)
        assert "Back to your preferences" in page_text(added)

        page = client.get(path)
        section = channels_section(page)
        shown = url.rsplit("/", 4)[0] + "/…abcd"
        assert f"Webhook (127.0.0.1) webhook · {shown} · nothing posted yet" in section
        assert key not in page.text and "s3cr3tPathPart" not in page.text
        [channel] = channel_ids(page)

        tested = post_form(client, path, action="test", channel=str(channel))
        assert tested.status_code == 200 and heading(tested) == "Test message posted"
        assert "Webhook (127.0.0.1): webhook answered 200." in page_text(tested)
        assert key not in tested.text
    [request] = webhook_server.requests
    assert request.path == HOOK
    assert signature_ok(key, request.headers["notifier-signature"], request.body)
    assert orjson.loads(request.body)["type"] == "test"


def test_page_says_why_a_test_message_was_not_posted_and_removes_the_channel(
    serve_web: Callable[..., WebServer], webhook_server: WebhookServer
) -> None:
    web = serve_web(**LOCAL)
    path = manage_path(web)
    with httpx.Client(base_url=web.url, follow_redirects=True) as client:
        added = add_on_page(client, path, "slack", webhook_server.url + HOOK, label="Lab channel")
        assert added.status_code == 200 and str(added.url).endswith(f"{path}?saved=1#channels")
        page = added
        [channel] = channel_ids(page)
        assert "Lab channel slack ·" in channels_section(page)

        webhook_server.answer(Answer(404, b"no_service"))
        refused = post_form(client, path, action="test", channel=str(channel))
        assert refused.status_code == 200
        assert heading(refused) == "Test message not posted"
        assert f"Slack answered 404: no_service {GONE_HINT}." in page_text(refused)

        removed = post_form(client, path, action="remove", channel=str(channel))
        assert removed.status_code == 200
        assert str(removed.url).endswith(f"{path}?saved=1#channels")
        assert "None yet: your digests go by email only." in channels_section(removed)
        again = post_form(client, path, action="test", channel=str(channel))
        assert again.status_code == 404 and heading(again) == "No such channel"
    assert len(webhook_server.requests) == 1


def test_page_refuses_another_subscribers_channel_and_a_form_without_its_csrf_token(
    serve_web: Callable[..., WebServer], webhook_server: WebhookServer
) -> None:
    web = serve_web(**LOCAL)
    ada, bob = manage_path(web), manage_path(web, "bob@example.org", "Bob")
    with httpx.Client(base_url=web.url, follow_redirects=True) as client:
        add_on_page(client, bob, "slack", webhook_server.url + HOOK, label="Bob's room")
        [bobs] = channel_ids(client.get(bob))
        for action in ("test", "remove", "resume"):
            for chosen in (str(bobs), "99999999999999999999", "1 OR 1=1", ""):
                refused = post_form(client, ada, action=action, channel=chosen)
                assert refused.status_code == 404, (action, chosen)
                assert heading(refused) == "No such channel"
        assert "Bob's room" in channels_section(client.get(bob))  # still there, untouched
        assert "Bob's room" not in page_text(client.get(ada))

        form = {"action": "add", "kind": "slack", "url": SLACK}
        no_token = client.post(f"{ada}/channels", data=form)
        stolen = client.post(
            f"{ada}/channels", data={**form, "csrf": csrf_of(httpx.get(f"{web.url}/").text)}
        )
        cross_site = client.post(
            f"{ada}/channels",
            data={**form, "csrf": csrf_of(client.get(ada).text)},
            headers={"Origin": "https://evil.example"},
        )
        for response in (no_token, stolen, cross_site):
            assert response.status_code == 403
            assert heading(response) == "Please try again"
        with_token = post_form(client, ada, action="add", kind="slack", url=SLACK)
        assert with_token.status_code == 200  # the same form with its token works...
        page = client.get(with_signature_changed(ada))
        assert page.status_code == 404 and heading(page) == "This link does not work"
        bad_link = client.post(
            f"{with_signature_changed(ada)}/channels",
            data={**form, "csrf": csrf_of(client.get(ada).text)},
        )
        assert bad_link.status_code == 404 and heading(bad_link) == "This link does not work"
    assert len(channel_ids(httpx.get(f"{web.url}{ada}"))) == 1  # ...and only it added one
    assert not webhook_server.requests


@pytest.mark.parametrize(("given", "message"), HOSTILE)
def test_page_refuses_a_bad_channel_with_a_message_and_stores_nothing(
    serve_web: Callable[..., WebServer], given: tuple[str, ...], message: str
) -> None:
    web = serve_web(**LOCAL)
    path = manage_path(web)
    kind, url, *matrix = given
    extra = {"room": matrix[0], "token": matrix[1]} if matrix else {}
    with httpx.Client(base_url=web.url, follow_redirects=True) as client:
        refused = add_on_page(client, path, kind, url, **extra)
        assert refused.status_code == 400
        assert heading(refused) == "Channel not added"
        assert message in page_text(refused)
        for secret in ("hunter2", "aaaaaaaaaa", MATRIX_TOKEN):
            assert secret not in refused.text
        assert channel_ids(client.get(path)) == []


def test_page_refuses_plain_http_unless_private_hosts_are_allowed(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    path = manage_path(web)
    with httpx.Client(base_url=web.url) as client:
        refused = add_on_page(client, path, "slack", "http://hooks.example.org/services/T/B/abcd")
        assert refused.status_code == 400 and heading(refused) == "Channel not added"
        assert "A slack channel needs an https:// URL, not http://" in page_text(refused)
        assert channel_ids(client.get(path)) == []


def test_page_escapes_a_label_with_markup_and_keeps_a_matrix_token_out(
    serve_web: Callable[..., WebServer], webhook_server: WebhookServer
) -> None:
    web = serve_web(**LOCAL)
    path = manage_path(web)
    label = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    with httpx.Client(base_url=web.url, follow_redirects=True) as client:
        added = add_on_page(client, path, "webhook", webhook_server.url + HOOK, label=label)
        shown_key(added)
        room = add_on_page(
            client,
            path,
            "matrix",
            "https://matrix.example.org",
            label="Lab room",
            room="!AbCdEf:example.org",
            token=MATRIX_TOKEN,
        )
        assert room.status_code == 200  # redirected back to the preferences
        page = client.get(path)
        [hook, _] = channel_ids(page)
        tested = post_form(client, path, action="test", channel=str(hook))
        for response in (added, page, tested):
            assert "<script>alert" not in response.text and "<img src=x" not in response.text
        assert "&lt;script&gt;" in page.text
        assert label in channels_section(page)  # shown as the text it is
        assert label in page_text(added) and label in page_text(tested)
        section = channels_section(page)
        assert "Lab room matrix · https://matrix.example.org/ · !AbCdEf:example.org" in section
        assert MATRIX_TOKEN not in page.text
    [request] = webhook_server.requests
    assert label in orjson.loads(request.body)["text"]


def test_channels_their_service_refused_are_suspended_and_resumed_on_each_surface(
    cli: Cli,
    serve_web: Callable[..., WebServer],
    smtp_server: SmtpServer,
    webhook_server: WebhookServer,
) -> None:
    web = serve_web(admin_token=TOKEN, **LOCAL)
    cli.env.update(NOTIFIER_SMTP_URL=smtp_server.url, NOTIFIER_SECRET_KEY=SECRET.decode())
    assert cli("ingest", str(SEED_FILES[0])).exit_code == 0
    assert cli.subscribe_earlier("ada@example.org", "--interest", ROBOTS).exit_code == 0
    subscriber = web.storage.subscriber_by_email("ada@example.org")
    path = f"/manage/{web.context.tokens.make(Purpose.MANAGE, subscriber.manage_token)}"
    labels = ["By page", "By API", "By CLI"]
    api = httpx.Client(base_url=f"{web.url}/api/v1", headers={"Authorization": f"Bearer {TOKEN}"})
    with httpx.Client(base_url=web.url, follow_redirects=True) as client, api:
        for label in labels:
            add_on_page(client, path, "slack", webhook_server.url + HOOK, label=label)
        ids = dict(zip(labels, channel_ids(client.get(path)), strict=True))

        webhook_server.answer(*[Answer(404, b"no_service")] * 3)
        ran = cli("digest")
        assert ran.exit_code == 1
        why = f"slack answered 404: no_service {GONE_HINT}"
        errors = [line for line in ran.stderr.splitlines() if line.startswith("notifier: error")]
        assert sorted(errors) == sorted(
            f"notifier: error: channel {label}: not posted: {why}" for label in labels
        )
        [totals] = [line for line in ran.output.splitlines() if line.startswith("channels: ")]
        assert totals.startswith("channels: 0 posted, 3 failed, channels suspended: ")
        assert sorted(totals.split("suspended: ")[1].split(", ")) == sorted(labels)
        assert len(smtp_server.handler.received) == 1  # the email went all the same

        listed = cli("channel", "list", "--email", "ada@example.org").stdout.splitlines()
        assert all(line.endswith(f": suspended (last error: {why})") for line in listed)
        page = client.get(path)
        shown = f"{webhook_server.url}/…abcd"
        for label in labels:
            assert f"{label} slack · {shown} · suspended {why}" in channels_section(page)
        assert page.text.count('value="resume">Resume</button>') == 3
        before = api.get(f"/channels/{ids['By API']}").json()
        assert (before["status"], before["failures"], before["last_error"]) == (
            "suspended",
            1,
            why,
        )

        resumed = post_form(client, path, action="resume", channel=str(ids["By page"]))
        assert resumed.status_code == 200
        assert f"By page slack · {shown} · nothing posted yet" in channels_section(resumed)
        assert resumed.text.count('value="resume">Resume</button>') == 2
        by_api = api.post(f"/channels/{ids['By API']}/resume")
        assert by_api.status_code == 200
        assert (by_api.json()["status"], by_api.json()["failures"]) == ("active", 0)
        assert by_api.json()["last_error"] is None
        by_cli = cli("channel", "resume", str(ids["By CLI"]))
        assert by_cli.stdout == f"channel {ids['By CLI']} is active again\n"

        listed = cli("channel", "list", "--email", "ada@example.org").stdout.splitlines()
        for label, line in zip(labels, listed, strict=True):
            assert (
                line == f"{ids[label]}: subscriber {subscriber.id}: slack '{label}' {shown}: active"
            )
        assert "Resume</button>" not in client.get(path).text
        assert [c["status"] for c in api.get(f"/subscribers/{subscriber.id}/channels").json()] == [
            "active"
        ] * 3


def test_an_owner_has_at_most_ten_channels_on_every_surface(
    cli: Cli, serve_web: Callable[..., WebServer]
) -> None:
    web = serve_web(admin_token=TOKEN)
    path = manage_path(web)
    ada = web.storage.subscriber_by_email("ada@example.org")
    api = httpx.Client(base_url=f"{web.url}/api/v1", headers={"Authorization": f"Bearer {TOKEN}"})
    with api, httpx.Client(base_url=web.url) as client:
        for number in range(10):
            made = api.post(
                f"/subscribers/{ada.id}/channels",
                json={"kind": "slack", "url": f"{SLACK}{number}", "label": f"Room {number}"},
            )
            assert made.status_code == 201, made.text
        eleventh = api.post(f"/subscribers/{ada.id}/channels", json={"kind": "slack", "url": SLACK})
        assert eleventh.status_code == 409
        assert eleventh.json() == {"detail": "at most 10 channels each; remove one first"}
        refused = add_on_page(client, path, "slack", SLACK)
        assert refused.status_code == 400 and heading(refused) == "Channel not added"
        assert "At most 10 channels each; remove one first" in page_text(refused)
        assert len(channel_ids(client.get(path))) == 10
    by_cli = cli("channel", "add", "slack", SLACK, "--email", "ada@example.org")
    assert by_cli.exit_code == 1
    assert one_line(by_cli.stderr) == (
        "notifier: error: channel not added: at most 10 channels each; remove one first"
    )
    assert len(cli("channel", "list", "--email", "ada@example.org").stdout.splitlines()) == 10


# -- the digest page ----------------------------------------------------------------------


def composed_digest(web: WebServer, email: str = "ada@example.org") -> tuple[str, str]:
    """Store a subscriber, take in a listing and compose their digest at NOW.

    Returns the subscriber's manage key and the digest's Message-ID.
    """
    subscriber, _ = web.storage.save_subscriber(
        email, None, [Interest("robots", "robot*")], NOW - timedelta(days=3)
    )
    pipeline.ingest(web.storage, "day0", seed_bytes(0), NOW - timedelta(hours=1))
    results = pipeline.compose_digests(web.storage, web.settings, NOW)
    assert any(r.content is not None and r.content.paper_count > 3 for r in results)
    with web.storage.engine.connect() as conn:
        message_id = conn.execute(
            select(digests.c.message_id).where(digests.c.subscriber_id == subscriber.id)
        ).scalar_one()
    return subscriber.manage_token, message_id


def test_the_digest_page_shows_every_paper_with_its_links_and_nothing_personal(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    key, message_id = composed_digest(web)
    found = web.storage.digest_content(message_id=message_id)
    assert found is not None
    content = found[1]
    link = f"/digest/{web.context.tokens.make_message(Purpose.VIEW, message_id, time.time())}"
    page = httpx.get(f"{web.url}{link}")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-robots-tag"] == "noindex"
    assert heading(page) == f"{content.paper_count} new papers for your interests"
    papers = [p for s in content.sections for p in s.papers]
    assert paper_titles(page) == [p.title for p in papers]
    assert f"{content.period} · {content.paper_count} papers" in page_text(page)
    for paper in papers:
        assert f'href="{html.escape(paper.abs_url or paper.url or "")}"' in page.text
        if paper.pdf_url:
            assert f'<a href="{html.escape(paper.pdf_url)}">PDF</a>' in page.text
    assert [s.interest for s in content.sections] == re.findall(r"<h2>(.*?)</h2>", page.text)
    # Shared in a chat room: it opens the digest and nothing of its subscriber's.
    for personal in ("/manage/", "/unsubscribe", "/more/", "/less/", "/mute/", "/citations/"):
        assert personal not in page.text
    assert "/feeds/subscribers/" not in page.text and "<form" not in page.text
    assert key not in page.text and "ada@example.org" not in page.text


def test_the_digest_page_shows_markup_in_titles_as_text(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    web.storage.save_subscriber(
        "ada@example.org", None, [Interest("robots", "robot*")], NOW - timedelta(days=3)
    )
    titles = [
        "Robot <b>bold</b> & <script>alert(1)</script> friends",
        'Robot arms"><img src=x onerror=alert(2)>',
    ]
    abstract = (
        "We present a robot that learns to fold laundry from a handful of demonstrations, "
        "and we evaluate it on many household garments."
    )
    listing = "".join(f"{title}\n{abstract}\n" for title in titles).encode()
    pipeline.ingest(web.storage, "hostile.txt", listing, NOW - timedelta(hours=1))
    pipeline.compose_digests(web.storage, web.settings, NOW)
    with web.storage.engine.connect() as conn:
        message_id = conn.execute(select(digests.c.message_id)).scalar_one()
    token = web.context.tokens.make_message(Purpose.VIEW, message_id, time.time())
    page = httpx.get(f"{web.url}/digest/{token}")
    assert page.status_code == 200
    assert sorted(paper_titles(page)) == sorted(titles)
    assert "<script" not in page.text and "<img" not in page.text and "<b>" not in page.text


def test_a_bad_digest_link_is_refused(serve_web: Callable[..., WebServer]) -> None:
    web = serve_web()
    key, message_id = composed_digest(web)
    tokens, now = web.context.tokens, time.time()
    good = tokens.make_message(Purpose.VIEW, message_id, now)
    made_long_ago = now - timedelta(days=web.settings.link_days + 1).total_seconds()
    refused = {
        "tampered": with_signature_changed(good),
        "another purpose": tokens.make_message(Purpose.CITE, message_id, now),
        "a preferences token": tokens.make(Purpose.MANAGE, key),
        "a token with the manage key": tokens.make_digest(Purpose.VIEW, key, message_id),
        "no such digest": tokens.make_message(Purpose.VIEW, "<nope@example.org>", now),
        "another server's key": LinkTokens(b"another-secret-key-0123456789").make_message(
            Purpose.VIEW, message_id, now
        ),
        "garbage": "not-a-token",
    }
    with httpx.Client(base_url=web.url) as client:
        assert client.get(f"/digest/{good}").status_code == 200
        for what, token in refused.items():
            page = client.get(f"/digest/{token}")
            assert page.status_code == 404, what
            assert heading(page) == "This link does not work", what
            assert "this link is not valid" in page_text(page), what
            assert paper_titles(page) == []
        expired = tokens.make_message(Purpose.VIEW, message_id, made_long_ago)
        old = client.get(f"/digest/{expired}")
        assert old.status_code == 400 and "this link has expired" in page_text(old)
        assert paper_titles(old) == []


def test_an_unknown_topic_or_period_is_a_404_page(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web(topics=[{"name": "Robots", "slug": "robots", "query": "robot*"}])
    with httpx.Client(base_url=web.url) as client:
        for path in (
            "/topics/robots/2026-03-11",
            "/topics/robots/2026-W11",
            "/topics/nope/2026-03-11",
            "/topics/robots/yesterday",
            "/topics/robots/2026-03-11%27%20OR%201=1",
        ):
            page = client.get(path)
            assert page.status_code == 404, path
            assert heading(page) == "No such digest", path
            assert "There is no digest of this topic for that day." in page_text(page)


# -- end to end: a channel set up on a surface gets the next `notifier digest` -----------


@pytest.mark.parametrize("surface", ["page", "api"])
def test_the_next_digest_reaches_a_webhook_added_on_the_page_or_the_api_signed_and_linked(
    cli: Cli,
    serve_web: Callable[..., WebServer],
    smtp_server: SmtpServer,
    webhook_server: WebhookServer,
    surface: str,
) -> None:
    web = serve_web(admin_token=TOKEN, **LOCAL)
    cli.env.update(
        NOTIFIER_SMTP_URL=smtp_server.url,
        NOTIFIER_BASE_URL=web.url,  # links lead to the running server
        NOTIFIER_SECRET_KEY=SECRET.decode(),
    )
    assert cli("ingest", str(SEED_FILES[0])).exit_code == 0
    assert cli.subscribe_earlier("ada@example.org", "--interest", ROBOTS).exit_code == 0
    ada = web.storage.subscriber_by_email("ada@example.org")
    url = webhook_server.url + HOOK
    with httpx.Client(base_url=web.url, follow_redirects=True) as client:
        if surface == "page":
            path = f"/manage/{web.context.tokens.make(Purpose.MANAGE, ada.manage_token)}"
            key = shown_key(add_on_page(client, path, "webhook", url, label="Lab"))
        else:
            made = client.post(
                f"/api/v1/subscribers/{ada.id}/channels",
                json={"kind": "webhook", "url": url, "label": "Lab"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert made.status_code == 201, made.text
            key = made.json()["signing_key"]

        ran = cli("digest")
        assert ran.exit_code == 0, ran.output
        assert "channels: 1 posted" in ran.output.splitlines()
        [request] = webhook_server.requests
        assert request.path == HOOK
        assert signature_ok(key, request.headers["notifier-signature"], request.body)
        payload = orjson.loads(request.body)
        assert payload["type"] == "digest" and payload["id"] == request.headers["idempotency-key"]
        titles = payload_titles(payload)
        assert len(titles) > 3 and payload["left"] == 0
        assert payload["title"] == f"notifier: {len(titles)} new papers for your interests"

        # The message's link opens the whole digest on the running server, and names
        # nothing of its subscriber's: everyone in the room can read it.
        assert payload["url"].startswith(f"{web.url}/digest/")
        assert ada.manage_token not in payload["url"]
        page = client.get(payload["url"])
        assert page.status_code == 200
        assert heading(page) == f"{len(titles)} new papers for your interests"
        assert paper_titles(page) == titles
        # The email of the same digest lists the same papers.
        [mail] = smtp_server.handler.received
        assert re.findall(r"^\* (.+)$", email_text(mail.message), re.M) == titles

        again = cli("digest")
        assert again.exit_code == 0 and "channels:" not in again.output
        assert len(webhook_server.requests) == 1


def test_a_topic_channel_added_on_the_cli_gets_the_topic_digest_and_its_page(
    cli: Cli,
    serve_web: Callable[..., WebServer],
    smtp_server: SmtpServer,
    webhook_server: WebhookServer,
    tmp_path: Path,
) -> None:
    (tmp_path / "notifier.toml").write_text(TOPICS)
    web = serve_web(**LOCAL)
    cli.env.update(
        NOTIFIER_SMTP_URL=smtp_server.url,
        NOTIFIER_BASE_URL=web.url,
        NOTIFIER_SECRET_KEY=SECRET.decode(),
    )
    added = cli("channel", "add", "webhook", webhook_server.url + HOOK, "--topic", "robots")
    added_id(added)
    key = added.stdout.splitlines()[1].rsplit(": ", 1)[1]
    assert cli("ingest", str(SEED_FILES[0])).exit_code == 0
    ran = cli("digest")
    assert ran.exit_code == 0, ran.output
    assert "composed 1 topic digest(s) for channels" in ran.output.splitlines()
    [request] = webhook_server.requests
    assert signature_ok(key, request.headers["notifier-signature"], request.body)
    payload = orjson.loads(request.body)
    assert payload["title"] == "notifier: Robots"
    titles = payload_titles(payload)
    assert len(titles) > 3 and payload["left"] == 0
    assert payload["url"] == f"{web.url}/topics/robots/{payload['period']}"
    page = httpx.get(payload["url"])
    assert page.status_code == 200 and heading(page) == "Robots"
    assert paper_titles(page) == titles
    assert "/manage/" not in page.text and "<form" not in page.text

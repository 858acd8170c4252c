"""The admin JSON API of notifier serve, over real HTTP on a real port, on each backend."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from notifier import pipeline
from notifier.models import SourceState
from tests.conftest import NOW, WebServer, back_date_subscribers, seed_bytes

TOKEN = "admin-token-0123456789-abcdef"
RL = {"name": "rl", "query": '"reinforcement learning"'}
ROBOTS = {"name": "robots", "query": "robot*"}  # matches papers of the first seed listing
WORLD = {"name": "worlds", "query": '"world model" OR "world models"'}
PATHS = {
    "/api/v1/subscribers": {"get", "post"},
    "/api/v1/subscribers/import": {"post"},
    "/api/v1/subscribers/{subscriber_id}": {"get", "patch", "delete"},
    "/api/v1/subscribers/{subscriber_id}/suspend": {"post"},
    "/api/v1/subscribers/{subscriber_id}/interests": {"get", "put"},
    "/api/v1/subscribers/{subscriber_id}/interests/{name}/library": {"post"},
    "/api/v1/subscribers/{subscriber_id}/ratings": {"get"},
    "/api/v1/subscribers/{subscriber_id}/ratings/{example_id}": {"delete"},
    "/api/v1/subscribers/{subscriber_id}/digests": {"get"},
    "/api/v1/digests": {"get"},
    "/api/v1/digests/{digest_id}/citations": {"get"},
    "/api/v1/runs": {"get"},
    "/api/v1/sources": {"get"},
    "/api/v1/subscribers/{subscriber_id}/channels": {"get", "post"},
    "/api/v1/topics/{slug}/channels": {"get", "post"},
    "/api/v1/channels/{channel_id}": {"get", "delete"},
    "/api/v1/channels/{channel_id}/resume": {"post"},
    "/api/v1/channels/{channel_id}/test": {"post"},
}
SUBSCRIBER_FIELDS = {
    "id",
    "email",
    "name",
    "status",
    "interests",
    "max_papers",
    "cadence",
    "send_time",
    "timezone",
    "weekday",
    "empty_note",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
}


@dataclass
class Admin:
    """A running server and an HTTP client that carries the admin token."""

    server: WebServer
    http: httpx.Client

    def create(self, email: str, **fields: Any) -> dict[str, Any]:
        """Create a subscriber (one interest in robots unless told), insisting it works."""
        body = {"email": email, "interests": [ROBOTS], **fields}
        response = self.http.post("/subscribers", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def emails(self, **params: Any) -> list[str]:
        """Return the addresses of the first page of subscribers."""
        response = self.http.get("/subscribers", params=params)
        assert response.status_code == 200, response.text
        return [s["email"] for s in response.json()["items"]]


@pytest.fixture
def admin(serve_web: Callable[..., WebServer]) -> Iterator[Admin]:
    """Start the app with an admin token and yield a client that sends it."""
    server = serve_web(admin_token=TOKEN)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=30) as http:
        yield Admin(server, http)


def problems(response: httpx.Response) -> dict[str, str]:
    """Return a 422's messages keyed by the field they name (its location after "body")."""
    assert response.status_code == 422, response.text
    return {
        ".".join(str(part) for part in error["loc"][1:]): error["msg"]
        for error in response.json()["detail"]
    }


# -- the token ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-the-token", f"Basic {TOKEN}", f"bearer{TOKEN}", "Bearer", TOKEN],
    ids=["none", "wrong-token", "wrong-scheme", "no-space", "empty", "bare-token"],
)
def test_a_request_without_the_admin_token_is_refused_with_401(
    admin: Admin, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    with httpx.Client(base_url=admin.http.base_url, headers=headers) as stranger:
        listed = stranger.get("/subscribers")
        created = stranger.post(
            "/subscribers", json={"email": "eve@example.org", "interests": [RL]}
        )
    for response in (listed, created):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json() == {"detail": "missing or wrong bearer token"}
    assert admin.emails() == []  # the refused POST stored nothing


def test_the_scheme_is_case_insensitive_as_http_says(admin: Admin) -> None:
    response = admin.http.get("/subscribers", headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200


def test_without_an_admin_token_configured_the_api_is_off(
    serve_web: Callable[..., WebServer],
) -> None:
    server = serve_web()
    response = httpx.get(
        f"{server.url}/api/v1/subscribers", headers={"Authorization": "Bearer anything"}
    )
    assert response.status_code == 403
    assert response.json() == {"detail": "the admin API is off: set NOTIFIER_ADMIN_TOKEN to use it"}
    # The spec stays readable: it holds nothing secret.
    assert httpx.get(f"{server.url}/api/v1/openapi.json").status_code == 200


@pytest.mark.parametrize("short", ["x", "0123456789abcde", "   padded-15-chars  "])
def test_a_short_admin_token_is_refused_with_one_line(tmp_path: Path, short: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env |= {"NOTIFIER_STATE_DIR": str(tmp_path / "state"), "NOTIFIER_ADMIN_TOKEN": short}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "notifier"), "serve", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr == (
        "notifier: error: setting 'admin_token' (no config file or NOTIFIER_ADMIN_TOKEN): "
        "too short: use at least 16 random characters\n"
    )


def test_a_path_with_a_stray_slash_redirects_to_base_url_whatever_the_host_says(
    admin: Admin,
) -> None:
    base = admin.server.settings.base_url
    for path, where in (
        ("/subscribers/?limit=2", f"{base}/api/v1/subscribers?limit=2"),
        ("/digests/", f"{base}/api/v1/digests"),
    ):
        response = admin.http.get(path, headers={"Host": "evil.example"})
        assert response.status_code == 307
        assert response.headers["location"] == where
    followed = admin.http.get("/subscribers/", follow_redirects=True)
    assert followed.status_code == 200 and followed.json()["items"] == []
    # A path that matches nothing either way is a plain 404.
    assert admin.http.get("/nothing/here/", headers={"Host": "evil.example"}).status_code == 404


# -- subscribers ----------------------------------------------------------------------


def test_new_interests_reach_the_private_feed_at_once(admin: Admin) -> None:
    server = admin.server
    pipeline.ingest(server.storage, "day0", seed_bytes(0), NOW)
    ada = admin.create("ada@example.org", interests=[ROBOTS])
    token = server.storage.subscriber_by_email("ada@example.org").feed_token
    feed = f"{server.url}/feeds/subscribers/{token}.atom"

    def titles() -> list[str]:
        response = httpx.get(feed)
        assert response.status_code == 200
        return re.findall(r"<title>(.*?)</title>", response.text)[1:]

    robots = titles()
    assert robots
    assert admin.http.put(f"/subscribers/{ada['id']}/interests", json=[RL]).status_code == 200
    rl = titles()
    assert rl != robots
    patched = admin.http.patch(f"/subscribers/{ada['id']}", json={"interests": [WORLD]})
    assert patched.status_code == 200
    assert titles() not in (robots, rl)


def test_a_subscriber_from_creation_to_deletion(admin: Admin) -> None:
    http = admin.http
    response = http.post(
        "/subscribers",
        json={
            "email": " Ada.Lovelace@Example.ORG ",
            "name": "Ada",
            "interests": [
                RL,
                {"name": "robots", "about": "robot learning", "sensitivity": "broad"},
            ],
            "cadence": "weekly",
            "send_time": "7:5",
            "timezone": "Europe/Berlin",
            "weekday": "fri",
            "max_papers": 12,
        },
    )
    assert response.status_code == 201, response.text
    ada = response.json()
    assert set(ada) == SUBSCRIBER_FIELDS  # no feed or manage token
    assert ada["email"] == "ada.lovelace@example.org"
    assert ada["status"] == "active"  # no double opt-in for admin-created subscribers
    assert (ada["cadence"], ada["send_time"], ada["timezone"], ada["weekday"]) == (
        "weekly",
        "07:05",
        "Europe/Berlin",
        4,
    )
    assert ada["interests"] == [
        {"name": "rl", "query": '"reinforcement learning"', "about": None, "sensitivity": "normal"},
        {"name": "robots", "query": None, "about": "robot learning", "sensitivity": "broad"},
    ]
    assert ada["max_papers"] == 12
    assert http.get(response.headers["Location"]).json() == ada

    stored = admin.server.storage.subscriber_by_id(ada["id"])
    assert stored is not None
    for secret in (stored.feed_token, stored.manage_token):
        assert secret not in response.text

    # Paging: ids in order, next_after until the last page.
    others = [admin.create(f"reader{k}@example.org")["id"] for k in range(3)]
    first = http.get("/subscribers", params={"limit": 2}).json()
    assert [s["id"] for s in first["items"]] == [ada["id"], others[0]]
    assert first["next_after"] == others[0]
    second = http.get("/subscribers", params={"limit": 2, "after": first["next_after"]}).json()
    assert [s["id"] for s in second["items"]] == others[1:]
    assert second["next_after"] is None

    # PATCH: the interest list is replaced, null puts a clock field back to the default.
    response = http.patch(
        f"/subscribers/{ada['id']}",
        json={
            "name": "Ada L.",
            "interests": [{"name": "agents", "query": "agent*"}],
            "timezone": None,
            "send_time": None,
            "status": "paused",
        },
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["name"] == "Ada L."
    assert [i["name"] for i in changed["interests"]] == ["agents"]
    assert (changed["timezone"], changed["send_time"]) == (None, None)
    assert (changed["cadence"], changed["weekday"]) == ("weekly", 4)  # not given: kept
    assert changed["status"] == "paused"
    assert http.get(f"/subscribers/{ada['id']}/interests").json() == changed["interests"]
    assert admin.emails(status="paused") == ["ada.lovelace@example.org"]

    response = http.post(f"/subscribers/{ada['id']}/suspend")
    assert response.status_code == 200
    assert response.json()["status"] == "suspended"
    assert admin.emails(status="suspended") == ["ada.lovelace@example.org"]

    response = http.delete(f"/subscribers/{ada['id']}")
    assert response.status_code == 204
    assert response.content == b""
    for method, path in [
        ("GET", f"/subscribers/{ada['id']}"),
        ("PATCH", f"/subscribers/{ada['id']}"),
        ("DELETE", f"/subscribers/{ada['id']}"),
        ("POST", f"/subscribers/{ada['id']}/suspend"),
        ("GET", f"/subscribers/{ada['id']}/interests"),
        ("GET", f"/subscribers/{ada['id']}/digests"),
    ]:
        response = http.request(method, path, json={} if method == "PATCH" else None)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"detail": f"there is no subscriber with id {ada['id']}"}
    assert "ada.lovelace@example.org" not in admin.emails()


def test_interests_can_be_replaced_on_their_own(admin: Admin) -> None:
    ada = admin.create("ada@example.org")
    response = admin.http.put(
        f"/subscribers/{ada['id']}/interests",
        json=[{"name": "robots", "about": "legged robots"}, {"name": "rl", "query": "RL"}],
    )
    assert response.status_code == 200, response.text
    assert [(i["name"], i["query"], i["about"]) for i in response.json()] == [
        ("robots", None, "legged robots"),
        ("rl", "RL", None),
    ]
    assert admin.http.get(f"/subscribers/{ada['id']}").json()["interests"] == response.json()


def test_unsubscribing_through_patch_records_when(admin: Admin) -> None:
    ada = admin.create("ada@example.org")
    response = admin.http.patch(f"/subscribers/{ada['id']}", json={"status": "unsubscribed"})
    assert response.status_code == 200
    assert response.json()["status"] == "unsubscribed"
    assert response.json()["unsubscribed_at"] is not None


def test_an_address_already_subscribed_is_a_conflict_and_stays_as_it_was(admin: Admin) -> None:
    admin.create("ada@example.org", name="Ada")
    response = admin.http.post(
        "/subscribers",
        json={"email": "ADA@example.org", "name": "Impostor", "interests": [RL]},
    )
    assert response.status_code == 409
    assert response.json() == {
        "detail": "a subscriber with the address ada@example.org already exists"
    }
    [ada] = admin.http.get("/subscribers").json()["items"]
    assert ada["name"] == "Ada"


# -- invalid input ----------------------------------------------------------------------

VALID = {"email": "ada@example.org", "interests": [RL]}
NESTED = "(" * 240 + "robots" + ")" * 240


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"email": "ada at example.org"}, "email", "that is not a valid email address"),
        ({"email": ""}, "email", "at least 1 character"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "unknown time zone 'Mars/Olympus_Mons'"),
        # A folder of the zone database, which zoneinfo tries to open as a file.
        ({"timezone": "America"}, "timezone", "unknown time zone 'America'"),
        ({"cadence": "hourly"}, "cadence", "cadence must be one of daily, weekdays, weekly"),
        ({"send_time": "25:00"}, "send_time", "send time must be HH:MM"),
        ({"weekday": 7}, "weekday", "weekday must be a day name"),
        ({"max_papers": 0}, "max_papers", "greater than or equal to 1"),
        ({"status": "pending"}, "status", "'active' or 'paused'"),
        ({"interests": []}, "interests", "at least 1 item"),
        (
            {"interests": [{"name": "rl", "query": "robots AND"}]},
            "interests.0",
            "query 'robots AND': AND needs a term on each side",
        ),
        (
            {"interests": [{"name": "rl", "query": NESTED}]},
            "interests.0",
            "parentheses nested more than 20 deep",
        ),
        ({"interests": [{"name": "rl"}]}, "interests.0", "needs a query, a description, or both"),
        (
            {"interests": [{"name": "rl", "query": "RL", "sensitivity": "loose"}]},
            "interests.0",
            "sensitivity must be one of strict, normal, broad",
        ),
        ({"interests": [RL, {**RL, "name": "RL"}]}, "interests", "two interests are called 'RL'"),
        ({"timezon": "UTC"}, "timezon", "Extra inputs are not permitted"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_invalid_input_is_a_422_naming_the_field_and_nothing_is_stored(
    admin: Admin, change: dict[str, Any], field: str, message: str
) -> None:
    response = admin.http.post("/subscribers", json={**VALID, **change})
    found = problems(response)
    assert list(found) == [field]
    assert message in found[field]
    assert admin.emails() == []


def test_an_invalid_change_is_a_422_and_changes_nothing(admin: Admin) -> None:
    ada = admin.create("ada@example.org", timezone="Europe/Berlin")
    path = f"/subscribers/{ada['id']}"
    for change, field in [
        ({"name": "Ada", "timezone": "Nowhere/Special"}, "timezone"),
        ({"name": "Ada", "interests": [{"name": "x", "query": "-"}]}, "interests.0"),
        ({"name": "Ada", "interests": None}, "interests"),  # null would mean no interests
        ({"name": "Ada", "status": "pending"}, "status"),
    ]:
        assert list(problems(admin.http.patch(path, json=change))) == [field]
    response = admin.http.put(f"{path}/interests", json=[{"name": "x", "query": '"open'}])
    assert list(problems(response)) == ["0"]
    assert admin.http.get(path).json() == ada


@pytest.mark.parametrize("subscriber_id", ["0", "2147483648", "99999999999999999999", "ada"])
def test_an_id_no_subscriber_can_have_is_a_422(admin: Admin, subscriber_id: str) -> None:
    assert list(problems(admin.http.get(f"/subscribers/{subscriber_id}"))) == ["subscriber_id"]


# -- digests, runs and sources -----------------------------------------------------------


def test_a_digests_papers_come_as_bibtex_and_ris(admin: Admin) -> None:
    admin.create("reader@example.org")
    storage, settings = admin.server.storage, admin.server.settings
    back_date_subscribers(settings.database, before=NOW)
    pipeline.ingest(storage, "day1", seed_bytes(0), NOW - timedelta(hours=1))
    pipeline.compose_digests(storage, settings, NOW)
    [digest] = admin.http.get("/digests").json()["items"]

    bib = admin.http.get(f"/digests/{digest['id']}/citations")
    assert bib.status_code == 200
    assert bib.headers["content-type"].startswith("application/x-bibtex")
    assert bib.text.count("@misc{") == digest["papers"]
    ris = admin.http.get(f"/digests/{digest['id']}/citations", params={"format": "ris"})
    assert ris.headers["content-type"].startswith("application/x-research-info-systems")
    assert ris.text.count("TY  - ") == digest["papers"]

    missing = admin.http.get(f"/digests/{digest['id'] + 100}/citations")
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"there is no digest with id {digest['id'] + 100}"
    assert admin.http.get(f"/digests/{digest['id']}/citations?format=pdf").status_code == 422


def test_digests_are_listed_with_their_state_but_never_their_content(admin: Admin) -> None:
    reader = admin.create("reader@example.org")
    quiet = admin.create("quiet@example.org", interests=[{"name": "none", "query": "zyxxyzzy"}])
    storage, settings = admin.server.storage, admin.server.settings
    back_date_subscribers(settings.database, before=NOW)  # signed up before NOW's slot
    pipeline.ingest(storage, "day1", seed_bytes(0), NOW - timedelta(hours=1))
    pipeline.compose_digests(storage, settings, NOW)

    every = admin.http.get("/digests").json()
    assert every["next_after"] is None
    assert [(d["email"], d["status"]) for d in every["items"]] == [
        ("reader@example.org", "pending"),
        ("quiet@example.org", "empty"),
    ]
    sent = every["items"][0]
    assert set(sent) == {
        "id",
        "subscriber_id",
        "email",
        "period",
        "status",
        "papers",
        "attempts",
        "last_error",
        "created_at",
        "sent_at",
    }
    assert sent["subscriber_id"] == reader["id"]
    assert sent["papers"] > 0
    assert (sent["attempts"], sent["sent_at"]) == (0, None)
    assert sent["period"] == "2026-03-11"

    pending = admin.http.get("/digests", params={"status": "pending"}).json()["items"]
    assert [d["email"] for d in pending] == ["reader@example.org"]
    first = admin.http.get("/digests", params={"limit": 1}).json()
    assert first["next_after"] == sent["id"]
    rest = admin.http.get("/digests", params={"after": first["next_after"]}).json()
    assert [d["email"] for d in rest["items"]] == ["quiet@example.org"]

    [history] = admin.http.get(f"/subscribers/{quiet['id']}/digests").json()
    assert (history["period"], history["status"], history["papers"]) == ("2026-03-11", "empty", 0)
    assert history["reason"]  # an empty digest says why


def test_runs_and_sources_show_health_without_secrets(
    serve_web: Callable[..., WebServer],
) -> None:
    secret_url = "https://reader:hunter2@listings.example.org/daily?api_key=sk-123"
    server = serve_web(
        admin_token=TOKEN,
        sources=[{"name": "private-listing", "kind": "feed", "url": secret_url}],
    )
    pipeline.ingest(server.storage, "day1", seed_bytes(0), NOW)
    pipeline.ingest(server.storage, secret_url, seed_bytes(1), NOW)  # ad hoc: named by its URL
    server.storage.save_source_state(
        SourceState(
            name="private-listing",
            kind="feed",
            url=secret_url,
            last_checked_at=NOW,
            last_status="failed",
            last_error=f"listing 'private-listing': {secret_url} answered 503",
            consecutive_failures=4,
        )
    )
    job = server.storage.start_job("run-once", "worker-1", NOW)
    server.storage.finish_job(job, "ok", "ingested 1 listing", NOW + timedelta(seconds=5))
    headers = {"Authorization": f"Bearer {TOKEN}"}

    sources = httpx.get(f"{server.url}/api/v1/sources", headers=headers)
    assert sources.status_code == 200
    [listing] = sources.json()
    assert listing["name"] == "private-listing"
    assert listing["url"] == "https://listings.example.org/daily"
    assert listing["last_error"] == (
        "listing 'private-listing': https://listings.example.org/daily answered 503"
    )
    assert (listing["configured"], listing["consecutive_failures"], listing["failing"]) == (
        True,
        4,
        True,
    )
    assert "hunter2" not in sources.text and "sk-123" not in sources.text

    response = httpx.get(f"{server.url}/api/v1/runs", headers=headers)
    assert "hunter2" not in response.text and "sk-123" not in response.text
    runs = response.json()
    assert [(r["source"], r["status"]) for r in runs["ingest"]] == [
        ("https://listings.example.org/daily", "ok"),
        ("day1", "ok"),
    ]
    assert runs["ingest"][1]["new"] == runs["ingest"][1]["papers"] > 0
    assert runs["jobs"] == [
        {
            "job": "run-once",
            "host": "worker-1",
            "started_at": "2026-03-11T08:00:00Z",
            "finished_at": "2026-03-11T08:00:05Z",
            "status": "ok",
            "detail": "ingested 1 listing",
        }
    ]


# -- the spec -----------------------------------------------------------------------------


def test_the_openapi_spec_describes_every_route_and_its_errors(admin: Admin) -> None:
    response = httpx.get(f"{admin.server.url}/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert {path: set(operations) for path, operations in spec["paths"].items()} == PATHS
    assert spec["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The admin_token setting (NOTIFIER_ADMIN_TOKEN).",
    }
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"401", "403"} <= codes, (method, path)
            assert operation["security"] == [{"HTTPBearer": []}]
            assert operation["operationId"].isidentifier()
            if "{subscriber_id}" in path:
                assert {"404", "422"} <= codes, (method, path)
    assert "409" in spec["paths"]["/api/v1/subscribers"]["post"]["responses"]
    schemas = spec["components"]["schemas"]
    assert not {"feed_token", "manage_token"} & set(schemas["SubscriberOut"]["properties"])
    assert "content" not in schemas["DigestOut"]["properties"]
    # A channel's token never comes back; its URL only masked.
    assert not {"token", "secret"} & set(schemas["ChannelOut"]["properties"])


# -- fuzzing --------------------------------------------------------------------------------

CHECKS = ",".join(
    [
        "not_a_server_error",
        "response_schema_conformance",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "negative_data_rejection",
        "ignored_auth",
    ]
)


def schemathesis(server: WebServer, *options: str) -> subprocess.CompletedProcess[str]:
    """Run the schemathesis CLI against the server's spec with the admin token."""
    command = Path(sys.executable).parent / "schemathesis"
    return subprocess.run(
        [
            str(command),
            "run",
            f"{server.url}/api/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            # serve_web's socket is made without IPPROTO_TCP, so asyncio leaves Nagle's
            # algorithm on and a reused connection waits ~40 ms on each delayed ACK.
            "--header",
            "Connection: close",
            "--checks",
            CHECKS,
            "--seed",
            "20260311",  # failures reproduce; the examples differ only when the spec does
            "--generation-database",
            "none",
            "--workers",
            "1",
            "--no-color",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_schemathesis_finds_no_server_error_and_no_answer_off_the_spec(admin: Admin) -> None:
    # Real rows behind every route, so responses are checked with data in them.
    pipeline.ingest(admin.server.storage, "day1", seed_bytes(0), NOW - timedelta(hours=1))
    for k in range(3):
        admin.create(f"reader{k}@example.org")
    pipeline.compose_digests(admin.server.storage, admin.server.settings, NOW)

    # Everything but DELETE first, so the rows stay for every phase; then DELETE alone.
    rest = schemathesis(
        admin.server,
        "--exclude-method",
        "DELETE",
        "--max-examples",
        "150",
        "--phases",
        "examples,coverage,fuzzing,stateful",
    )
    deleting = schemathesis(admin.server, "--include-method", "DELETE", "--max-examples", "150")
    for run in (rest, deleting):
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        cases = re.search(r"(\d+) generated, \1 passed", run.stdout)
        assert cases is not None, run.stdout[-3000:]
    assert int(re.findall(r"(\d+) generated", rest.stdout)[0]) >= 500
    assert admin.http.get("/subscribers").status_code == 200  # still serving after it all


def test_a_digest_given_up_unconfirmed_is_listed_as_such(admin: Admin) -> None:
    admin.create("reader@example.org")
    storage, settings = admin.server.storage, admin.server.settings
    back_date_subscribers(settings.database, before=NOW)
    pipeline.ingest(storage, "day1", seed_bytes(0), NOW - timedelta(hours=1))
    pipeline.compose_digests(storage, settings, NOW)
    with storage.engine.begin() as conn:  # as a sender leaves it at retry_deadline
        conn.execute(text("UPDATE digests SET status = 'unconfirmed'"))
    listed = admin.http.get("/digests")
    assert listed.status_code == 200
    assert [d["status"] for d in listed.json()["items"]] == ["unconfirmed"]
    assert admin.http.get("/digests", params={"status": "unconfirmed"}).status_code == 200

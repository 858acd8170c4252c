"""notifier serve over real HTTP: sign-up, links, RFC 8058, feeds, abuse and security."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import feedparser
import httpx
import pytest

from notifier import pipeline
from notifier.models import Interest
from notifier.tokens import LinkTokens, Purpose
from tests.conftest import NOW, SEED_FILES, SmtpServer, WebServer, seed_bytes

SECRET = b"test-secret-key-0123456789"
ROBOTS = {"interest_name": "robots", "interest_about": "robots learning manipulation"}


def form_fields(**fields: str) -> dict[str, str]:
    """Return a complete sign-up form with fields overriding the defaults."""
    return {
        "email": "ada@example.org",
        "name": "Ada",
        **ROBOTS,
        "interest_query": "",
        "cadence": "daily",
        "send_time": "07:00",
        "timezone": "Europe/Berlin",
        **fields,
    }


def csrf_of(html: str) -> str:
    """Return the CSRF token a page's form carries."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no form"
    return found.group(1)


def sign_up(client: httpx.Client, **fields: str) -> httpx.Response:
    """Open the front page like a browser, then send the sign-up form."""
    front = client.get("/")
    return client.post("/subscribe", data={"csrf": csrf_of(front.text), **form_fields(**fields)})


def heading(response: httpx.Response) -> str:
    """Return the page's first heading."""
    found = re.search(r"<h1>(.*?)</h1>", response.text)
    return found.group(1) if found else ""


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Poll until condition holds (background sends finish after the response)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def link_in(data: bytes, path: str) -> str:
    """Return the first link to path in an email's text part."""
    found = re.search(rf"https?://[^\s\"<>]+/{path}/[\w.-]+", data.decode())
    assert found, f"no /{path}/ link in the email"
    return found.group(0)


def confirm_link(client: httpx.Client, link: str) -> httpx.Response:
    """Follow a confirmation link from an email as its reader does: open it, press the button."""
    path = urlsplit(link).path
    page = client.get(path)
    assert heading(page) == "Confirm your subscription?", page.text
    return client.post(path, data={"csrf": csrf_of(page.text)})


def active_subscriber(web: WebServer, email: str = "bob@example.org") -> tuple[int, str]:
    """Create an active subscriber the way the CLI does; return its id and manage key."""
    subscriber, _ = web.storage.save_subscriber(
        email, "Bob", [Interest("robots", "robot*")], datetime.now(UTC)
    )
    return subscriber.id, subscriber.manage_token


def token(purpose: Purpose, key: str, age: timedelta = timedelta()) -> str:
    """Return a token for key made age ago with the test server's secret."""
    made_at = time.time() - age.total_seconds()
    return LinkTokens(SECRET, clock=lambda: made_at).make(purpose, key)


def with_signature_changed(made: str) -> str:
    """Return a token with the first character of its signature replaced."""
    # Not the last character: it carries unused base64 bits, so changing it can leave
    # the decoded signature as it was.
    head, signature = made.rsplit(".", 1)
    return f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"


def subscriber_count(web: WebServer) -> int:
    """Return how many subscribers are stored."""
    return sum(web.storage.metrics_figures().subscribers.values())


# -- tokens ------------------------------------------------------------------------


def test_a_token_is_refused_when_tampered_with_expired_or_used_for_another_purpose() -> None:
    tokens = LinkTokens(SECRET)
    made = tokens.make(Purpose.CONFIRM, "key-123")
    assert tokens.read(Purpose.CONFIRM, made, max_age=3600) == "key-123"

    key, stamp, signature = made.split(".")
    forged = [
        f"key-124.{stamp}.{signature}",
        with_signature_changed(made),
        f"{key}.{stamp}",
        "",
    ]
    for bad in forged:
        with pytest.raises(ValueError, match="not valid"):
            tokens.read(Purpose.CONFIRM, bad, max_age=3600)
    with pytest.raises(ValueError, match="not valid"):
        tokens.read(Purpose.UNSUBSCRIBE, made, max_age=3600)
    with pytest.raises(ValueError, match="not valid"):
        LinkTokens(b"another-secret-key-0123").read(Purpose.CONFIRM, made, max_age=3600)

    old = token(Purpose.CONFIRM, "key-123", age=timedelta(hours=73))
    with pytest.raises(ValueError, match="expired"):
        tokens.read(Purpose.CONFIRM, old, max_age=72 * 3600)


# -- double opt-in -------------------------------------------------------------------


def test_sign_up_sends_one_confirmation_and_the_link_confirms(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer
) -> None:
    web = serve_web(smtp_url=smtp_server.url)
    with httpx.Client(base_url=web.url) as client:
        response = sign_up(client, email="Ada@Example.org")
        assert response.status_code == 200
        assert heading(response) == "Check your inbox"
        assert wait_for(lambda: len(smtp_server.handler.received) == 1)
        subscriber = web.storage.subscriber_by_email("ada@example.org")
        assert subscriber.status == "pending"
        assert [i.about for i in subscriber.interests] == ["robots learning manipulation"]

        email = smtp_server.handler.received[0]
        assert email.rcpt_tos == ["ada@example.org"]
        assert email.message["Subject"] == "Confirm your notifier subscription"
        link = link_in(email.data, "confirm")
        assert link.startswith(web.url)

        # Signing up again within 48 hours: the same page, and no second email.
        again = sign_up(client, email="ada@example.org")
        assert heading(again) == "Check your inbox"
        time.sleep(0.3)
        assert len(smtp_server.handler.received) == 1

        assert heading(confirm_link(client, link)) == "You are subscribed"
        assert web.storage.subscriber_by_email("ada@example.org").status == "active"
        # A second click is harmless.
        assert heading(client.get(urlsplit(link).path)) == "You are subscribed"


def test_a_second_sign_up_never_rewrites_a_pending_request(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer
) -> None:
    web = serve_web(smtp_url=smtp_server.url)
    received = smtp_server.handler.received
    with httpx.Client(base_url=web.url) as owner:
        assert heading(sign_up(owner, email="ada@example.org")) == "Check your inbox"
    assert wait_for(lambda: len(received) == 1)
    stranger_choices = {
        "email": "ada@example.org",
        "name": "Mallory",
        "interest_name": "coins",
        "interest_about": "cryptocurrency trading signals",
        "cadence": "weekly",
        "weekday": "friday",
        "send_time": "23:00",
        "timezone": "America/New_York",
    }

    def stored() -> tuple[object, ...]:
        ada = web.storage.subscriber_by_email("ada@example.org")
        interests = [(i.name, i.about) for i in ada.interests]
        return ada.status, ada.name, interests, ada.cadence, ada.send_time, ada.timezone

    what_ada_chose = (
        "pending",
        "Ada",
        [("robots", "robots learning manipulation")],
        "daily",
        "07:00",
        "Europe/Berlin",
    )
    with httpx.Client(base_url=web.url) as stranger:
        # Within the resend limit: the same page, no email, nothing changed.
        assert heading(sign_up(stranger, **stranger_choices)) == "Check your inbox"
        time.sleep(0.3)
        assert len(received) == 1 and stored() == what_ada_chose
        # Past it: the pending request's confirmation goes again, still Ada's choices.
        later = datetime.now(UTC) + timedelta(hours=49)
        web.context.clock = lambda: later
        assert heading(sign_up(stranger, **stranger_choices)) == "Check your inbox"
        assert wait_for(lambda: len(received) == 2)
        assert stored() == what_ada_chose
    assert received[1].message["To"] == "Ada <ada@example.org>"

    # Either link activates exactly what Ada chose.
    with httpx.Client(base_url=web.url) as owner:
        confirmed = confirm_link(owner, link_in(received[1].data, "confirm"))
    assert heading(confirmed) == "You are subscribed"
    assert stored() == ("active", *what_ada_chose[1:])


def test_the_page_says_the_same_whether_the_address_is_known_or_not(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer
) -> None:
    web = serve_web(smtp_url=smtp_server.url)
    active_subscriber(web, "bob@example.org")
    with httpx.Client(base_url=web.url) as client:
        known = sign_up(client, email="bob@example.org", interest_about="anything else")
        unknown = sign_up(client, email="carol@example.org")

    def without_csrf(text: str) -> str:
        return re.sub(r'value="[^"]+"', "", text)

    assert known.status_code == unknown.status_code == 200
    assert without_csrf(known.text) == without_csrf(unknown.text)
    assert wait_for(lambda: len(smtp_server.handler.received) == 2)
    subjects = {r.rcpt_tos[0]: r.message["Subject"] for r in smtp_server.handler.received}
    # The known address gets its preferences link, and keeps its interests: anyone
    # can type anyone's address into the form.
    assert subjects["bob@example.org"] == "You are already subscribed to notifier"
    assert subjects["carol@example.org"] == "Confirm your notifier subscription"
    bob = web.storage.subscriber_by_email("bob@example.org")
    assert bob.status == "active" and [i.query for i in bob.interests] == ["robot*"]


def test_confirmation_links_are_refused_when_forged_expired_or_meant_for_unsubscribing(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    with httpx.Client(base_url=web.url) as client:
        sign_up(client)
        key = web.storage.subscriber_by_email("ada@example.org").manage_token

        expired = client.get(f"/confirm/{token(Purpose.CONFIRM, key, timedelta(hours=73))}")
        assert expired.status_code == 400
        assert "this link has expired" in expired.text

        forged = token(Purpose.CONFIRM, key)[:-3] + "abc"
        assert client.get(f"/confirm/{forged}").status_code == 404
        other_purpose = client.get(f"/confirm/{token(Purpose.UNSUBSCRIBE, key)}")
        assert other_purpose.status_code == 404
        assert "this link is not valid" in other_purpose.text
        assert web.storage.subscriber_by_email("ada@example.org").status == "pending"

        # Within 72 hours it works.
        fresh = f"/confirm/{token(Purpose.CONFIRM, key, timedelta(hours=71))}"
        assert heading(confirm_link(client, fresh)) == "You are subscribed"


def test_opening_a_confirmation_link_changes_nothing_until_its_button_is_pressed(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    with httpx.Client(base_url=web.url) as person:
        sign_up(person, email="ada@example.org")
    key = web.storage.subscriber_by_email("ada@example.org").manage_token
    path = f"/confirm/{token(Purpose.CONFIRM, key)}"
    for _ in range(3):  # a link scanner, a preview pane, a person
        page = httpx.get(web.url + path)
        assert page.status_code == 200 and heading(page) == "Confirm your subscription?"
        assert page.headers["cache-control"] == "no-store"
        assert '<button type="submit" class="primary">Confirm my subscription</button>' in page.text
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    assert "ada@example.org , daily at 07:00 (Europe/Berlin)" in text
    assert "robots : robots learning manipulation" in text
    assert web.storage.subscriber_by_email("ada@example.org").status == "pending"

    with httpx.Client(base_url=web.url) as scanner:
        # The button's form needs the page's CSRF token and cookie, like every form.
        forged = scanner.post(path, data={"csrf": "x"})
        assert forged.status_code == 403 and "Reload the page" in forged.text
        stolen = httpx.post(web.url + path, data={"csrf": csrf_of(page.text)})
        assert stolen.status_code == 403
        assert web.storage.subscriber_by_email("ada@example.org").status == "pending"

    with httpx.Client(base_url=web.url) as person:
        done = confirm_link(person, path)
    assert heading(done) == "You are subscribed"
    assert "Open my preferences" in done.text
    assert web.storage.subscriber_by_email("ada@example.org").status == "active"


def test_a_dead_mail_server_loses_no_sign_up_and_the_next_try_sends(
    serve_web: Callable[..., WebServer], caplog: pytest.LogCaptureFixture
) -> None:
    web = serve_web(smtp_url="smtp://127.0.0.1:9", smtp_timeout=2)
    with (
        caplog.at_level(logging.INFO, logger="notifier.web"),
        httpx.Client(base_url=web.url) as client,
    ):
        response = sign_up(client)
        assert heading(response) == "Check your inbox"
        assert wait_for(lambda: "could not send the confirmation" in caplog.text)
    subscriber = web.storage.subscriber_by_email("ada@example.org")
    assert subscriber.status == "pending"
    # The failed email does not count against the one-per-48-hours limit.
    _, action = web.storage.request_subscription(
        "ada@example.org",
        name=None,
        chosen=subscriber.interests,
        schedule={},
        now=datetime.now(UTC),
        resend_after=timedelta(hours=48),
    )
    assert action == "confirm"


# -- preferences ---------------------------------------------------------------------


def test_preferences_change_interests_schedule_and_pause(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    subscriber_id, key = active_subscriber(web)
    path = f"/manage/{token(Purpose.MANAGE, key)}"
    with httpx.Client(base_url=web.url, follow_redirects=True) as client:
        page = client.get(path)
        assert heading(page) == "Your preferences"
        assert page.headers["cache-control"] == "no-store"
        assert 'value="robot*"' in page.text

        saved = client.post(
            path,
            data={
                "csrf": csrf_of(page.text),
                "name": "Bob B.",
                "interest_name": ["vision", ""],
                "interest_about": ["image segmentation", ""],
                "interest_query": ["", ""],
                "cadence": "weekly",
                "weekday": "friday",
                "send_time": "18:30",
                "timezone": "America/New_York",
                "paused": "1",
            },
        )
        assert saved.status_code == 200 and "Saved." in saved.text
    bob = web.storage.subscriber_by_id(subscriber_id)
    assert bob is not None
    assert [(i.name, i.about) for i in bob.interests] == [("vision", "image segmentation")]
    assert (bob.cadence, bob.weekday, bob.send_time, bob.timezone) == (
        "weekly",
        4,
        "18:30",
        "America/New_York",
    )
    assert bob.status == "paused" and bob.name == "Bob B."


def test_preferences_say_how_many_papers_each_interest_finds(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    pipeline.ingest(web.storage, "day0", seed_bytes(0), datetime.now(UTC) - timedelta(hours=1))
    subscriber, _ = web.storage.save_subscriber(
        "amy@example.org",
        None,
        [Interest("robots", "robot*"), Interest("worlds", about="world models for planning")],
        datetime.now(UTC),
    )
    web.context.prepare_matching()  # as the server does when it starts
    with httpx.Client(base_url=web.url) as client:
        page = client.get(f"/manage/{token(Purpose.MANAGE, subscriber.manage_token)}")
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    robots = re.search(
        r"robots : (\d+) of 72 recent papers you have not seen passed the query", text
    )
    assert robots is not None and int(robots.group(1)) > 5, text
    assert "all are delivered, best first" in text
    assert re.search(
        r"worlds : 72 recent papers you have not seen: \d+ scored at least 0\.\d\d \(normal\)", text
    )
    assert "closest below: “" in text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timezone", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("send_time", "25:99", "send time must be HH:MM"),
        ("interest_query", '"unclosed phrase', "query"),
        ("interest_about", "x" * 600, "under 500 characters"),
        ("name", "n" * 150, "at most 100 characters"),
    ],
)
def test_bad_preferences_show_a_message_and_change_nothing(
    serve_web: Callable[..., WebServer], field: str, value: str, message: str
) -> None:
    web = serve_web()
    subscriber_id, key = active_subscriber(web)
    before = web.storage.subscriber_by_id(subscriber_id)
    path = f"/manage/{token(Purpose.MANAGE, key)}"
    with httpx.Client(base_url=web.url) as client:
        page = client.get(path)
        fields = {
            "csrf": csrf_of(page.text),
            "name": "Bob",
            "interest_name": "robots",
            "interest_about": "",
            "interest_query": "robot*",
            "cadence": "daily",
            "send_time": "07:00",
            "timezone": "UTC",
            field: value,
        }
        response = client.post(path, data=fields)
    assert response.status_code == 400
    assert message in response.text.replace("&#39;", "'").replace("&#34;", '"')
    assert web.storage.subscriber_by_id(subscriber_id) == before


def test_the_opml_file_lists_the_private_and_public_feeds(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    _, key = active_subscriber(web)
    feed_token = web.storage.subscriber_by_email("bob@example.org").feed_token
    response = httpx.get(f"{web.url}/manage/{token(Purpose.MANAGE, key)}/feeds.opml")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/x-opml; charset=utf-8"
    outlines = ET.fromstring(response.content).findall("./body/outline")
    urls = [o.get("xmlUrl") for o in outlines]
    assert urls == [
        f"{web.url}/feeds/subscribers/{feed_token}.atom",
        f"{web.url}/feeds/all.atom",
    ]
    assert outlines[0].get("title") == "notifier: papers for Bob"
    # The same list in JSON Feed, which the preferences page links as well.
    manage = f"{web.url}/manage/{token(Purpose.MANAGE, key)}"
    as_json = httpx.get(f"{manage}/feeds.opml", params={"format": "json"})
    assert [o.get("xmlUrl") for o in ET.fromstring(as_json.content).findall("./body/outline")] == [
        f"{web.url}/feeds/subscribers/{feed_token}.json",
        f"{web.url}/feeds/all.json",
    ]
    page = httpx.get(manage).text
    assert f'href="{web.url}/feeds/subscribers/{feed_token}.json"' in page
    assert "feeds.opml?format=json" in page
    for suffix in (".bib", ".ris"):  # the feed's papers for a reference manager
        assert f'href="{web.url}/feeds/subscribers/{feed_token}{suffix}"' in page


# -- unsubscribe (RFC 8058) ------------------------------------------------------------


def test_a_get_of_the_unsubscribe_link_changes_nothing(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    subscriber_id, key = active_subscriber(web)
    link = f"{web.url}/unsubscribe/{token(Purpose.UNSUBSCRIBE, key)}"
    for _ in range(3):  # a link scanner, a preview, a person
        page = httpx.get(link)
        assert heading(page) == "Unsubscribe?"
        assert '<button type="submit" class="primary danger">Unsubscribe</button>' in page.text
    assert httpx.head(link).status_code in (200, 405)
    subscriber = web.storage.subscriber_by_id(subscriber_id)
    assert subscriber is not None and subscriber.status == "active"


def test_a_one_click_post_unsubscribes_without_a_cookie_or_a_page(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    subscriber_id, key = active_subscriber(web)
    feeds = web.settings.feeds_dir / "subscribers"
    feeds.mkdir(parents=True)
    feed_token = web.storage.subscriber_by_email("bob@example.org").feed_token
    (feeds / f"{feed_token}.atom").write_text("<feed/>")
    # What Gmail sends (RFC 8058 section 3.2): a POST with this body and nothing else.
    link = f"{web.url}/unsubscribe/{token(Purpose.UNSUBSCRIBE, key, timedelta(days=61))}"
    response = httpx.post(
        link,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert heading(response) == "You are unsubscribed"
    subscriber = web.storage.subscriber_by_id(subscriber_id)
    assert subscriber is not None and subscriber.status == "unsubscribed"
    assert not (feeds / f"{feed_token}.atom").exists()
    # Unsubscribed people are in no schedule group, so nothing more is composed.
    assert web.storage.schedule_groups() == []
    # A second POST is harmless.
    assert httpx.post(link, content=b"List-Unsubscribe=One-Click").status_code == 200


def test_unsubscribe_links_are_refused_when_forged_or_meant_for_another_purpose(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    subscriber_id, key = active_subscriber(web)
    for bad in (
        token(Purpose.MANAGE, key),
        token(Purpose.CONFIRM, key),
        with_signature_changed(token(Purpose.UNSUBSCRIBE, key)),
        token(Purpose.UNSUBSCRIBE, key, timedelta(days=91)),
        "not-a-token",
    ):
        response = httpx.post(f"{web.url}/unsubscribe/{bad}", content=b"List-Unsubscribe=One-Click")
        assert response.status_code in (400, 404)
        assert heading(response) == "This link does not work"
    subscriber = web.storage.subscriber_by_id(subscriber_id)
    assert subscriber is not None and subscriber.status == "active"


# -- feeds ---------------------------------------------------------------------------


def test_feeds_have_validators_and_answer_conditional_requests_with_304(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    for i in range(len(SEED_FILES)):
        pipeline.ingest(web.storage, SEED_FILES[i].name, seed_bytes(i), NOW + timedelta(days=i))
    active_subscriber(web)
    pipeline.build_feeds(web.storage, web.settings, NOW + timedelta(days=5))
    feed_token = web.storage.subscriber_by_email("bob@example.org").feed_token

    for path, content_type in (
        ("/feeds/all.atom", "application/atom+xml; charset=utf-8"),
        ("/feeds/all.rss", "application/rss+xml; charset=utf-8"),
        (f"/feeds/subscribers/{feed_token}.atom", "application/atom+xml; charset=utf-8"),
        ("/feeds/all.json", "application/feed+json; charset=utf-8"),
        (f"/feeds/subscribers/{feed_token}.json", "application/feed+json; charset=utf-8"),
    ):
        first = httpx.get(web.url + path)
        assert first.status_code == 200
        assert first.headers["content-type"] == content_type
        assert b"<title>" in first.content or b'"title":' in first.content
        etag, modified = first.headers["etag"], first.headers["last-modified"]

        again = httpx.get(web.url + path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        assert httpx.get(web.url + path, headers={"If-Modified-Since": modified}).status_code == 304
        assert httpx.get(web.url + path, headers={"If-None-Match": '"stale"'}).status_code == 200
        # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
        both = {"If-None-Match": '"stale"', "If-Modified-Since": modified}
        assert httpx.get(web.url + path, headers=both).status_code == 200

    for missing in (
        "/feeds/nothing.atom",
        "/feeds/all.xml",
        "/feeds/subscribers/not-a-real-token-0000.atom",
        "/feeds/../notifier.db",
        "/feeds/%2e%2e/notifier.db",
    ):
        assert httpx.get(web.url + missing).status_code == 404, missing


def test_a_private_feed_is_there_right_after_confirming_and_keeps_up(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer
) -> None:
    web = serve_web(smtp_url=smtp_server.url)
    started = datetime.now(UTC)
    pipeline.ingest(web.storage, "day0", seed_bytes(0), started - timedelta(hours=2))
    # A request here builds a feed, which takes a second or two, more on a busy
    # machine: the test is about what it gets, not how fast (httpx's default is 5 s).
    with httpx.Client(base_url=web.url, timeout=60) as person:
        sign_up(person, email="ada@example.org", interest_query="robot*", interest_about="")
        assert wait_for(lambda: len(smtp_server.handler.received) == 1)
        confirmed = confirm_link(person, link_in(smtp_server.handler.received[0].data, "confirm"))
        preferences = person.get(re.findall(r'href="(/manage/[^"]+)"', confirmed.text)[0])
        links = re.findall(r'href="([^"]+/feeds/subscribers/[^"]+)"', preferences.text)
        suffixes = [urlsplit(link).path.rpartition(".")[2] for link in links]
        assert suffixes == ["atom", "rss", "json", "bib", "ris"]

        # No `notifier feeds` has run: the feed is built when first asked for.
        feeds = [person.get(urlsplit(link).path) for link in links]
        assert [f.status_code for f in feeds] == [200] * 5
        entries = feedparser.parse(feeds[0].content).entries
        assert entries and all("robot" in (e.title + e.summary).lower() for e in entries)
        atom_path = urlsplit(links[0]).path
        stored = web.settings.feeds_dir / atom_path.removeprefix("/feeds/")
        built = stored.read_bytes()

        # A newer listing: not rebuilt on every poll, but once the file is five minutes old.
        pipeline.ingest(web.storage, "day1", seed_bytes(1), datetime.now(UTC))
        assert person.get(atom_path).content == built
        old = time.time() - 600
        os.utime(stored, (old, old))
        refreshed = feedparser.parse(person.get(atom_path).content).entries
        day1 = set(seed_bytes(1).decode().splitlines()) - set(seed_bytes(0).decode().splitlines())
        assert refreshed[0].title in day1
        assert person.get(atom_path).content == stored.read_bytes()  # no rebuild now

        # New interests: the feed follows them at once.
        form = {
            "csrf": csrf_of(preferences.text),
            "name": "Ada",
            "interest_name": "worlds",
            "interest_about": "",
            "interest_query": '"world model" OR "world models"',
            "cadence": "daily",
            "send_time": "07:00",
            "timezone": "Europe/Berlin",
        }
        saved = person.post(urlsplit(str(preferences.url)).path, data=form)
        assert saved.status_code == 303
        entries = feedparser.parse(person.get(atom_path).content).entries
        assert entries and all(
            "world model" in e.title.lower() + e.summary.lower() for e in entries
        )

    # No feed for a token nobody has, nor for someone who left.
    assert httpx.get(f"{web.url}/feeds/subscribers/{'x' * 32}.atom").status_code == 404
    ada = web.storage.subscriber_by_email("ada@example.org")
    web.storage.unsubscribe(ada.id, datetime.now(UTC))
    stored.unlink()
    assert httpx.get(web.url + atom_path).status_code == 404
    assert not stored.exists()


def test_feeds_answer_head_and_go_gzipped_with_their_validators(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    for i in range(2):
        pipeline.ingest(web.storage, SEED_FILES[i].name, seed_bytes(i), NOW + timedelta(days=i))
    pipeline.build_feeds(web.storage, web.settings, NOW + timedelta(days=2))
    stored = (web.settings.feeds_dir / "all.atom").read_bytes()
    gzip = {"Accept-Encoding": "gzip"}
    with httpx.Client(base_url=web.url) as reader:
        plain = reader.get("/feeds/all.atom", headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200 and plain.content == stored
        assert "content-encoding" not in plain.headers
        assert plain.headers["vary"] == "Accept-Encoding"

        zipped = reader.get("/feeds/all.atom", headers=gzip)
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.headers["vary"] == "Accept-Encoding"
        assert zipped.content == stored  # httpx unzips it
        on_the_wire = int(zipped.headers["content-length"])
        assert on_the_wire < len(stored) / 3
        assert zipped.headers["etag"] == plain.headers["etag"]
        assert zipped.headers["etag"].startswith('W/"')

        # HEAD: a GET's headers, no body.
        head = reader.head("/feeds/all.atom", headers=gzip)
        assert head.status_code == 200 and head.content == b""
        for name in ("etag", "last-modified", "content-type", "content-encoding"):
            assert head.headers[name] == zipped.headers[name], name
        assert int(head.headers["content-length"]) == on_the_wire

        unchanged = reader.get(
            "/feeds/all.atom", headers={**gzip, "If-None-Match": zipped.headers["etag"]}
        )
        assert unchanged.status_code == 304 and unchanged.content == b""
        assert unchanged.headers["vary"] == "Accept-Encoding"
        assert reader.head("/feeds/all.rss").status_code == 200
        assert reader.head("/feeds/nothing.atom").status_code == 404

        # The front page answers HEAD too, and pages are never compressed: they hold a
        # CSRF token beside what the visitor typed (BREACH).
        front = reader.head("/", headers=gzip)
        assert front.status_code == 200 and front.content == b""
        assert front.headers["content-type"] == "text/html; charset=utf-8"
        assert "content-encoding" not in reader.get("/", headers=gzip).headers
        assert reader.head("/healthz").status_code == 200


# -- abuse -------------------------------------------------------------------------


def test_forms_without_a_matching_csrf_token_or_from_another_site_are_refused(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    with httpx.Client(base_url=web.url) as client:
        no_cookie = httpx.post(f"{web.url}/subscribe", data={"csrf": "x", **form_fields()})
        assert no_cookie.status_code == 403
        assert "Reload the page" in no_cookie.text

        valid = csrf_of(client.get("/").text)
        other_visitor = csrf_of(httpx.get(f"{web.url}/").text)
        stolen = client.post("/subscribe", data={"csrf": other_visitor, **form_fields()})
        assert stolen.status_code == 403
        cross_site = client.post(
            "/subscribe",
            data={"csrf": valid, **form_fields()},
            headers={"Origin": "https://evil.example"},
        )
        assert cross_site.status_code == 403
    assert subscriber_count(web) == 0


def test_the_honeypot_and_the_per_client_cap_stop_bots_quietly(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer
) -> None:
    web = serve_web(smtp_url=smtp_server.url, signups_per_client=2)
    with httpx.Client(base_url=web.url) as client:
        bot = sign_up(client, email="bot@example.org", website="http://spam.example")
        assert heading(bot) == "Check your inbox"
        assert heading(sign_up(client, email="one@example.org")) == "Check your inbox"
        assert heading(sign_up(client, email="two@example.org")) == "Check your inbox"
        third = sign_up(client, email="three@example.org")
        assert third.status_code == 429
        assert heading(third) == "Too many sign-ups"
    assert wait_for(lambda: len(smtp_server.handler.received) == 2)
    time.sleep(0.2)
    assert sorted(r.rcpt_tos[0] for r in smtp_server.handler.received) == [
        "one@example.org",
        "two@example.org",
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"email": "not-an-address"}, "that is not a valid email address"),
        ({"email": ""}, "enter your email address"),
        ({"timezone": "Europe/Atlantis"}, "unknown time zone"),
        ({"timezone": "America"}, "unknown time zone"),  # a folder of zones, not a zone
        ({"interest_query": "(" * 240 + "a" + ")" * 240}, "nested more than 20 deep"),
        ({"cadence": "hourly"}, "choose one of daily, weekdays, weekly"),
        ({"interest_name": "", "interest_about": ""}, "describe at least one interest"),
        ({"interest_query": "robot AND (", "interest_about": ""}, "query"),
        ({"email": "a\r\nBcc: victim@example.org@example.org"}, "not a valid email address"),
        ({"name": "<script>alert(1)</script>" * 10}, "at most 100 characters"),
    ],
)
def test_bad_sign_ups_show_a_clear_message_and_store_nothing(
    serve_web: Callable[..., WebServer], fields: dict[str, str], message: str
) -> None:
    web = serve_web()
    with httpx.Client(base_url=web.url) as client:
        response = sign_up(client, **fields)
    assert response.status_code == 400
    assert message in response.text
    assert "<script>alert" not in response.text  # what was typed comes back escaped
    assert subscriber_count(web) == 0


def test_huge_requests_are_refused_before_they_are_read(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    with httpx.Client(base_url=web.url) as client:
        csrf = csrf_of(client.get("/").text)
        huge = client.post("/subscribe", data={"csrf": csrf, **form_fields(name="x" * 200_000)})
        assert huge.status_code == 413
        assert "Request too large" in huge.text

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            for _ in range(200):
                yield b"name=" + b"x" * 10_000

        streamed = client.post(
            "/subscribe",
            content=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert streamed.status_code == 413
    assert subscriber_count(web) == 0


def test_every_page_has_strict_security_headers_and_logs_hold_no_tokens(
    serve_web: Callable[..., WebServer], caplog: pytest.LogCaptureFixture
) -> None:
    web = serve_web()
    _, key = active_subscriber(web)
    manage = token(Purpose.MANAGE, key)
    with caplog.at_level(logging.INFO, logger="notifier.web"):
        for path in ("/", f"/manage/{manage}", "/feeds/missing.atom", "/healthz"):
            headers = httpx.get(web.url + path).headers
            assert "script-src 'self'" in headers["content-security-policy"]
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "no-referrer"
            assert headers["x-frame-options"] == "DENY"
    assert "GET /manage/[token] 200" in caplog.text
    assert manage not in caplog.text and key not in caplog.text


# -- operations --------------------------------------------------------------------


ADMIN_TOKEN = "admin-token-0123456789-abcdef"


def test_healthz_and_metrics_report_what_happened(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web(admin_token=ADMIN_TOKEN)
    health = httpx.get(f"{web.url}/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"

    summary = pipeline.ingest(web.storage, SEED_FILES[0].name, seed_bytes(0), NOW)
    metrics = httpx.get(f"{web.url}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["notifier_papers_ingested_total"] == summary.new > 0
    assert values["notifier_digests_sent_total"] == 0
    assert "# TYPE notifier_send_latency_seconds gauge" in metrics.text


def test_metrics_are_for_the_admin_token_unless_made_public(
    serve_web: Callable[..., WebServer],
) -> None:
    guarded = serve_web(admin_token=ADMIN_TOKEN)
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        refused = httpx.get(f"{guarded.url}/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.text == "missing or wrong bearer token\n"
        assert "notifier_subscribers" not in refused.text

    without_token = serve_web()
    off = httpx.get(f"{without_token.url}/metrics")
    assert off.status_code == 403
    assert off.text == (
        "/metrics needs the admin token: set NOTIFIER_ADMIN_TOKEN "
        "(or metrics_public = true to open it to anyone)\n"
    )

    public = serve_web(metrics_public=True)
    opened = httpx.get(f"{public.url}/metrics")
    assert opened.status_code == 200 and "# TYPE notifier_subscribers gauge" in opened.text


def test_the_preview_shows_recent_papers_the_interests_would_match(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    summary = pipeline.ingest(web.storage, SEED_FILES[0].name, seed_bytes(0), NOW)
    found = httpx.get(
        f"{web.url}/preview",
        params={"interest_name": "world", "interest_query": "world model*", "interest_about": ""},
    ).json()
    assert found["looked_at"] == summary.new
    [world] = found["interests"]
    assert world["name"] == "world" and world["matched"] >= len(world["papers"]) == 3
    assert "Facing Off World Model Backbones: RNNs, Transformers, and S4" in [
        p["title"] for p in world["papers"]
    ]
    assert all("world" in p["reason"].lower() for p in world["papers"])

    # Each interest shows whether it finds anything, not only the best overall.
    two = httpx.get(
        f"{web.url}/preview",
        params={
            "interest_name": ["world", "nothing"],
            "interest_query": ["world model*", "zzyzx"],
            "interest_about": ["", ""],
        },
    ).json()
    assert [(i["name"], i["matched"]) for i in two["interests"]][1] == ("nothing", 0)

    broken = httpx.get(f"{web.url}/preview", params={"interest_query": '"unclosed'})
    assert broken.status_code == 200
    assert broken.json()["interests"] == [] and "query" in str(broken.json()["errors"])


def test_the_server_prepares_the_matching_model_when_it_starts(
    serve_web: Callable[..., WebServer], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="notifier.web"):
        web = serve_web(lifespan=True, matching="hybrid")
        # No request needed: the model is prepared in the background after start...
        assert "preparing the hybrid matching model in the background" in caplog.text
        assert wait_for(lambda: web.context.matching_ready, seconds=120)
        assert "the hybrid matching model is ready" in caplog.text
    # ...while the server answered from the start.
    assert httpx.get(f"{web.url}/healthz").status_code == 200
    pipeline.ingest(web.storage, SEED_FILES[0].name, seed_bytes(0), NOW)
    found = httpx.get(
        f"{web.url}/preview",
        params={"interest_name": "world", "interest_about": "world models for planning"},
        timeout=60,
    )
    assert found.status_code == 200 and found.json()["interests"][0]["matched"] > 0


def test_the_preview_says_the_model_is_being_prepared_instead_of_hanging(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    pipeline.ingest(web.storage, SEED_FILES[0].name, seed_bytes(0), NOW)
    prepared = threading.Event()
    build = web.context.matching_factory

    calls = []

    def slow_model() -> Any:  # as the first start on a loaded machine: half a minute
        calls.append(time.monotonic())
        assert prepared.wait(60)
        return build()

    web.context.matching_factory = slow_model
    params = {"interest_name": "world", "interest_query": "world model*", "interest_about": ""}
    asked = time.monotonic()
    waiting = httpx.get(f"{web.url}/preview", params=params)
    assert time.monotonic() - asked < 10
    assert waiting.status_code == 503 and waiting.headers["retry-after"] == "2"
    assert waiting.json()["preparing"] is True
    assert waiting.json()["message"].startswith("Preparing the matching model")
    # Asking again does not start a second preparation; it says the same.
    assert httpx.get(f"{web.url}/preview", params=params).json()["preparing"] is True

    prepared.set()
    assert wait_for(lambda: web.context.matching_ready, seconds=30)
    assert len(calls) == 1
    found = httpx.get(f"{web.url}/preview", params=params)
    assert found.status_code == 200
    assert found.json()["interests"][0]["matched"] > 0


def test_a_hostile_name_cannot_add_headers_or_markup_to_the_confirmation(
    serve_web: Callable[..., WebServer], smtp_server: SmtpServer
) -> None:
    web = serve_web(smtp_url=smtp_server.url)
    hostile = '<img src=x onerror="alert(1)">\r\nBcc: victim@example.org\x07'
    with httpx.Client(base_url=web.url) as client:
        assert heading(sign_up(client, name=hostile)) == "Check your inbox"
    assert wait_for(lambda: len(smtp_server.handler.received) == 1)
    received = smtp_server.handler.received[0]
    assert received.rcpt_tos == ["ada@example.org"]
    message = received.message
    assert message["Bcc"] is None
    assert "\n" not in message["To"] and "victim" not in message["To"].split("<")[-1]
    html = message.get_body(("html",))
    assert html is not None
    body = html.get_content()
    assert "<img src=x" not in body and "&lt;img src=x" in body
    stored = web.storage.subscriber_by_email("ada@example.org").name
    assert stored is not None and "\r" not in stored and "\x07" not in stored


def test_an_interest_error_stays_with_its_row_when_blank_rows_are_dropped(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    with httpx.Client(base_url=web.url) as client:
        csrf = csrf_of(client.get("/").text)
        response = client.post(
            "/subscribe",
            data={
                "csrf": csrf,
                **form_fields(),
                "interest_name": ["robots", "", ""],
                "interest_about": ["robots learning manipulation", "", ""],
                "interest_query": ["", "", '"unclosed'],
            },
        )
    assert response.status_code == 400
    rows = re.findall(r'<div class="interest( invalid)?">(.*?)</div>', response.text, re.DOTALL)
    # The bad query is shown again in the second row, with its message and nothing else.
    assert rows[1][0] == " invalid"
    assert "&#34;unclosed" in rows[1][1] and 'class="error"' in rows[1][1]
    assert rows[0][0] == "" and 'class="error"' not in rows[0][1]
    assert "One thing needs fixing" in response.text
    assert subscriber_count(web) == 0


def test_sign_ups_never_confirmed_are_forgotten_after_a_week(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web()
    storage, settings = web.storage, web.settings
    asked = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    interests = [Interest("robots", "robot*")]

    def sign_up_at(email: str, when: datetime) -> None:
        storage.request_subscription(
            email,
            name=None,
            chosen=interests,
            schedule={},
            now=when,
            resend_after=timedelta(hours=48),
        )

    sign_up_at("never@example.org", asked)
    sign_up_at("recent@example.org", asked + timedelta(days=6))
    # Confirmed once, unsubscribed, then signed up again: a former subscriber stays.
    sign_up_at("back@example.org", asked)
    back = storage.subscriber_by_email("back@example.org")
    storage.confirm_subscriber(back.id, asked)
    storage.unsubscribe(back.id, asked)
    sign_up_at("back@example.org", asked + timedelta(hours=1))

    outcomes = pipeline.compose_due(storage, settings, asked + timedelta(days=7, hours=1))
    assert outcomes["unconfirmed sign-ups forgotten"] == 1
    assert "1 unconfirmed sign-ups forgotten" in pipeline.describe_outcomes(outcomes)
    remaining = {s.email: s.status for s in storage.subscribers()}
    assert remaining == {"recent@example.org": "pending", "back@example.org": "pending"}

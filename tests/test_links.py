"""Links from sources: only absolute http(s) URLs become links, in emails, feeds and the web.

A feed entry's link or a Hugging Face githubRepo of javascript:, vbscript:, data: or
//host is dropped where the listing is parsed; papers stored or frozen into digests
before that are guarded where links are rendered. A paper with a bad link is still
delivered, without it.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from notifier import pipeline
from notifier.app import make_renderer
from notifier.models import Interest
from notifier.papers import http_url
from notifier.settings import Settings
from notifier.storage import Storage
from notifier.storage.schema import paper_cards, papers
from tests.conftest import JOINED, NOW, Cli, SmtpServer, WebServer, parse_message

ATOM = "{http://www.w3.org/2005/Atom}"
ABSTRACT = "A robot learns to fold laundry from a handful of demonstrations in a home."
HOSTILE = [
    "javascript:alert(document.cookie)",
    "JaVaScRiPt:alert(1)",
    "vbscript:msgbox(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "//evil.example/robots",
    "/relative/robots",
]
TELLTALES = ["javascript", "vbscript", "data:", "evil.example", "relative/robots", "alert("]
GOOD_CODE = "https://github.com/lab/robots"


@pytest.fixture
def lexical(settings: Settings) -> Settings:
    """Return the test settings matching lexically (no model to load)."""
    return settings.model_copy(update={"matching": "lexical"})


class _Hrefs(HTMLParser):
    """Collect every href and src a mail client would follow."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [v or "" for k, v in attrs if k in ("href", "src")]


def hrefs(html: str) -> list[str]:
    """Return the links of an HTML document."""
    parser = _Hrefs()
    parser.feed(html)
    parser.close()
    return parser.links


def visible(html: str) -> str:
    """Return the text of an HTML document as a mail client shows it, tags removed."""
    return re.sub(r"<[^>]+>", "", html)


def hostile_feed() -> bytes:
    """Return an RSS feed whose entries link to each hostile URL, and one good entry."""
    items = "".join(
        f"<item><title>Robot paper {n}</title><link>{url.replace('&', '&amp;')}</link>"
        f"<guid isPermaLink='false'>hostile-{n}</guid><description>{ABSTRACT}</description></item>"
        for n, url in enumerate(HOSTILE)
    )
    good = (
        "<item><title>Robot paper good</title><link>https://lab.example.org/good</link>"
        f"<description>{ABSTRACT}</description></item>"
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Lab</title>'
        f"<link>https://lab.example.org/</link><description>d</description>{items}{good}"
        "</channel></rss>"
    ).encode()


def hostile_hf() -> bytes:
    """Return an HF API listing whose papers give each hostile URL as their code."""
    return json.dumps(
        [
            {
                "paper": {
                    "id": f"2409.{n:05d}",
                    "title": f"Robot gripper {n}",
                    "summary": ABSTRACT,
                    "githubRepo": url,
                    "projectPage": url,
                }
            }
            for n, url in enumerate([*HOSTILE, GOOD_CODE], start=1)
        ]
    ).encode()


def assert_no_bad_link(text: str) -> None:
    """Check a rendered document carries none of the hostile URLs."""
    lowered = text.lower()
    for telltale in TELLTALES:
        assert telltale not in lowered, telltale


def rendered(storage: Storage, settings: Settings) -> tuple[str, str]:
    """Return the HTML and text of the digest composed for a robot subscriber now."""
    subscriber, _ = storage.save_subscriber(
        "r@example.org", None, [Interest("robots", "robot")], JOINED
    )
    [composed] = pipeline.compose_digests(storage, settings, NOW + timedelta(hours=1), record=False)
    assert composed.content is not None
    message = parse_message(
        make_renderer(settings).render(composed.content, subscriber, "<m@x>", NOW).data
    )
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None and text is not None
    return str(html.get_content()), str(text.get_content())


def assert_feeds_link_only_http(settings: Settings, titles: list[str]) -> None:
    """Check the "all" feeds carry every title and only http(s) links."""
    for suffix in (".rss", ".atom"):
        path = settings.feeds_dir / f"all{suffix}"
        assert_no_bad_link(path.read_text(encoding="utf-8"))
        root = ET.parse(path).getroot()
        if suffix == ".rss":
            links = [e.text or "" for e in root.iter("link")]
            shown = [e.text for e in root.iter("title")]
        else:
            links = [e.get("href") or "" for e in root.iter(f"{ATOM}link")]
            shown = [e.text for e in root.iter(f"{ATOM}title")]
        assert links and all(link.startswith(("https://", "http://")) for link in links)
        assert set(titles) <= set(shown)


@pytest.mark.parametrize("url", [*HOSTILE, "http://", "https:evil.example", "ftp://x.org/a", 7])
def test_only_absolute_http_urls_are_links(url: object) -> None:
    assert http_url(url) is None


@pytest.mark.parametrize(
    "url", ["https://arxiv.org/abs/2409.00001", "http://lab.example.org/a?b=c#d", GOOD_CODE]
)
def test_absolute_http_urls_are_kept(url: str) -> None:
    assert http_url(f" {url} ") == url


def test_hostile_links_in_listings_never_reach_emails_or_feeds(
    storage: Storage, lexical: Settings
) -> None:
    pipeline.ingest(storage, "lab", hostile_feed(), NOW, "feed")
    pipeline.ingest(storage, "hf", hostile_hf(), NOW, "hf-api")
    titles = [f"Robot paper {n}" for n in range(len(HOSTILE))]
    titles += ["Robot paper good", *(f"Robot gripper {n}" for n in range(1, len(HOSTILE) + 2))]

    html, text = rendered(storage, lexical)
    assert_no_bad_link(html)
    assert_no_bad_link(text)
    assert all(link.startswith(("https://", "http://")) for link in hrefs(html))
    # Every paper is delivered, each bad link dropped and the good ones kept.
    shown = visible(html)
    for title in titles:
        assert f"* {title}\n" in text
        assert title in shown
    assert "https://lab.example.org/good" in html
    # The good paper names the same address as its code and its project page.
    assert hrefs(html).count(GOOD_CODE) == 2
    assert text.count(f"Code: {GOOD_CODE}") == 1
    assert text.count(f"Project page: {GOOD_CODE}") == 1

    pipeline.build_feeds(storage, lexical, NOW + timedelta(hours=1))
    assert_feeds_link_only_http(lexical, titles)


def stored_with_bad_links(storage: Storage) -> None:
    """Store a good listing, then give its papers the links an older version let in."""
    pipeline.ingest(storage, "lab", hostile_feed().replace(b"<link>", b"<link>x"), NOW, "feed")
    with storage.engine.begin() as conn:
        rows = conn.execute(select(papers.c.id)).scalars().all()
        for n, paper_id in enumerate(rows):
            bad = HOSTILE[n % len(HOSTILE)]
            conn.execute(
                update(papers)
                .where(papers.c.id == paper_id)
                .values(url=bad, meta={"github": bad, "upvotes": 3})
            )


def test_links_stored_before_they_were_checked_are_not_rendered(
    storage: Storage, lexical: Settings
) -> None:
    stored_with_bad_links(storage)
    titles = [f"Robot paper {n}" for n in range(len(HOSTILE))] + ["Robot paper good"]

    html, text = rendered(storage, lexical)
    assert_no_bad_link(html)
    assert_no_bad_link(text)
    for title in titles:
        assert f"* {title}\n" in text
    assert all(link.startswith(("https://", "http://")) for link in hrefs(html))

    pipeline.build_feeds(storage, lexical, NOW + timedelta(hours=1))
    assert_feeds_link_only_http(lexical, titles)


def test_a_digest_frozen_with_bad_links_is_sent_without_them(
    storage: Storage, lexical: Settings, run: Cli, smtp_server: SmtpServer
) -> None:
    pipeline.ingest(storage, "lab", hostile_feed(), NOW, "feed")
    storage.save_subscriber("r@example.org", None, [Interest("robots", "robot")], JOINED)
    [composed] = pipeline.compose_digests(storage, lexical, NOW + timedelta(hours=1))
    assert composed.outcome == "created"
    # What a digest composed before links were checked holds.
    with storage.engine.begin() as conn:
        cards = conn.execute(select(paper_cards.c.id, paper_cards.c.card)).all()
        for n, (card_id, card) in enumerate(cards):
            bad = HOSTILE[n % len(HOSTILE)]
            conn.execute(
                update(paper_cards)
                .where(paper_cards.c.id == card_id)
                .values(card={**card, "url": bad, "code_url": bad})
            )

    run.env.update({"NOTIFIER_SMTP_URL": smtp_server.url})
    sent = run("send")
    assert sent.exit_code == 0, sent.stderr
    [received] = smtp_server.handler.received
    message = received.message
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None and text is not None
    assert_no_bad_link(html.get_content())
    assert_no_bad_link(text.get_content())
    # Delivered, each title shown without a link.
    assert len(cards) == len(HOSTILE) + 1
    assert html.get_content().count('<span class="title"') == len(cards)
    for n in range(len(HOSTILE)):
        assert f"* Robot paper {n}\n" in text.get_content()


def test_the_web_preview_links_only_http_urls(serve_web: Callable[..., WebServer]) -> None:
    web = serve_web()
    stored_with_bad_links(web.storage)
    found: dict[str, Any] = httpx.get(
        f"{web.url}/preview",
        params={"interest_name": "robots", "interest_query": "robot", "interest_about": ""},
    ).json()
    [robots] = found["interests"]
    assert robots["papers"]
    for paper in robots["papers"]:
        assert paper["url"].startswith("https://")
    assert_no_bad_link(json.dumps(found))


def test_a_feed_item_with_a_bad_link_is_built_without_it() -> None:
    from notifier.render.feed import FeedItem, FeedMeta, build_feed

    meta = FeedMeta("urn:x", "Robots", "d", "https://papers.example.org", "https://p.example/f")
    items = [
        FeedItem(f"urn:{n}", f"Robot {n}", url, ABSTRACT, NOW, NOW) for n, url in enumerate(HOSTILE)
    ]
    rss, atom = build_feed(meta, items, NOW)
    for document in (rss, atom):
        assert_no_bad_link(document.decode())
        assert all(f"Robot {n}" in document.decode() for n in range(len(HOSTILE)))

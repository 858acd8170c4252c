"""Hostile input: markup, control characters, header injection, huge and binary listings."""

from __future__ import annotations

import asyncio
import random
import re
import xml.etree.ElementTree as ET
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import feedparser
import orjson
import pytest
import rispy
from bibtexparser.entrypoint import parse_string

from notifier import pipeline
from notifier.app import make_outbox, make_renderer
from notifier.errors import ConfigError, ListingError
from notifier.models import Interest
from notifier.settings import Settings, load_settings
from notifier.storage import Storage
from tests.conftest import JOINED, NOW, Cli, SmtpServer

ABSTRACT = (
    "We present a robot that learns to fold laundry from a handful of demonstrations, "
    "and we evaluate it on many household garments."
)
assert len(ABSTRACT) >= 100

T_SCRIPT = "Robot <b>bold</b> & <script>alert(1)</script> &amp; friends"
T_IMG = "Robot <img src=x onerror=alert(2)> arms & legs"
T_ENTITIES = "Robotic &lt;tag&gt; &#60;x&#62; AT&T ]]> <!-- c --> \"quoted\" 'single'"
HOSTILE_TITLES = (T_SCRIPT, T_IMG, T_ENTITIES)

ATOM = "{http://www.w3.org/2005/Atom}"
# Characters XML 1.0 forbids that str.splitlines() does not treat as line breaks.
INLINE_CONTROLS = [chr(c) for c in (*range(0x01, 0x09), *range(0x0E, 0x1C), 0x1F, 0x7F)]
# Characters XML 1.0 forbids that str.splitlines() *does* treat as line breaks.
LINE_BREAKING_CONTROLS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]
ALL_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def listing(*titles: str, abstract: str = ABSTRACT) -> bytes:
    """Return a header-less snapshot: one title line and one abstract line per paper."""
    return "".join(f"{title}\n{abstract}\n" for title in titles).encode()


def parse_feed(path: Path) -> Any:
    """Parse a feed file as a reader would, insisting it is well formed."""
    feed = feedparser.parse(path.read_bytes())
    assert feed.bozo == 0, f"{path.name}: {feed.get('bozo_exception')}"
    return feed


class _TitleText(HTMLParser):
    """Collect the text a mail client shows inside each <a class="title">."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.titles: list[str] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a" and ("class", "title") in attrs:
            self._inside = True
            self.titles.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._inside = False

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.titles[-1] += data


def shown_titles(html: str) -> list[str]:
    """Return the paper titles as a mail client renders them from the HTML part."""
    parser = _TitleText()
    parser.feed(html)
    parser.close()
    return parser.titles


def header_block(raw: bytes) -> str:
    """Return the top-level header section of a raw message."""
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("ascii")


# -- markup in titles -------------------------------------------------------


def test_markup_in_titles_is_escaped_in_email_and_kept_in_feeds(
    storage: Storage, settings: Settings
) -> None:
    summary = pipeline.ingest(storage, "hostile.txt", listing(*HOSTILE_TITLES), NOW)
    assert summary.papers == 3
    storage.save_subscriber(
        "eve@example.org", "Eve", [Interest("robots", "robot OR robotic")], JOINED
    )

    composed = asyncio.run(
        pipeline.preview_digests(
            storage, settings, make_renderer(settings), make_outbox(settings), NOW
        )
    )
    assert [c.outcome for c in composed] == ["created"]
    emls = sorted(settings.outbox_dir.glob("*.eml"))
    assert len(emls) == 1
    message = message_from_bytes(emls[0].read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    html_part = message.get_body(("html",))
    text_part = message.get_body(("plain",))
    assert html_part is not None
    assert text_part is not None
    html = html_part.get_content()
    text = text_part.get_content()

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert "<!-- c" not in html
    # A mail client renders each title as exactly the text of the listing.
    assert sorted(shown_titles(html)) == sorted(HOSTILE_TITLES)
    # The text part shows each title verbatim, as plain text.
    for title in HOSTILE_TITLES:
        assert f"* {title}" in text.splitlines()

    pipeline.build_feeds(storage, settings, NOW)
    for suffix in (".rss", ".atom"):
        path = settings.feeds_dir / f"all{suffix}"
        # The XML carries each title as character data, never as elements.
        root = ET.parse(path).getroot()
        items = root.findall("channel/item") if suffix == ".rss" else root.findall(f"{ATOM}entry")
        title_elements = [i.find("title" if suffix == ".rss" else f"{ATOM}title") for i in items]
        assert all(t is not None and len(t) == 0 for t in title_elements)
        assert sorted(t.text or "" for t in title_elements if t is not None) == sorted(
            HOSTILE_TITLES
        )
        titles = [e.title for e in parse_feed(path).entries]
        assert len(titles) == 3
        assert T_SCRIPT in titles
        assert T_IMG in titles
        if suffix == ".atom":
            # RSS <title> is ambiguous (feedparser guesses HTML when a title holds an
            # entity-like text and no unknown tag); Atom's type="text" is not.
            assert T_ENTITIES in titles


# -- control characters -----------------------------------------------------


def with_controls(text: str, controls: list[str]) -> str:
    """Return text with the control characters spread between its words."""
    words = text.split(" ")
    return "".join(
        word + (controls[i % len(controls)] if i < len(words) - 1 else "")
        for i, word in enumerate(words)
    )


def assert_controls_removed_and_feeds_parse(
    storage: Storage, settings: Settings, controls: list[str]
) -> None:
    titles = [f"Robot{ch}arm number {i}" for i, ch in enumerate(controls)]
    abstract = with_controls(ABSTRACT, controls) + "".join(controls)
    summary = pipeline.ingest(storage, "controls.txt", listing(*titles, abstract=abstract), NOW)

    assert summary.papers == len(controls)
    stored = storage.latest_papers(1000)
    assert len(stored) == len(controls)
    for paper in stored:
        assert not ALL_CONTROLS.search(paper.title), repr(paper.title)
        assert not ALL_CONTROLS.search(paper.abstract), repr(paper.abstract)
        # Nothing but the control characters went: every word is still there.
        assert paper.abstract.split() == ABSTRACT.split()
    assert sorted(p.title.split() for p in stored) == sorted(
        ["Robot", "arm", "number", str(i)] for i in range(len(controls))
    )

    storage.save_subscriber("cc@example.org", "Cc", [Interest("robots", "robot")], JOINED)
    pipeline.build_feeds(storage, settings, NOW)
    files = sorted(p for p in settings.feeds_dir.rglob("*") if p.is_file())
    # All and one private feed: RSS, Atom, JSON Feed, BibTeX and RIS.
    assert len(files) == 10
    for path in files:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            entries = orjson.loads(text)["items"]
        elif path.suffix == ".bib":
            library = parse_string(text)
            assert not library.failed_blocks
            entries = library.entries
        elif path.suffix == ".ris":
            entries = rispy.loads(text)
        else:
            entries = parse_feed(path).entries
        assert len(entries) == len(controls), path.name
        assert not ALL_CONTROLS.search(text), path.name


def test_control_characters_are_removed_and_feeds_stay_valid(
    storage: Storage, settings: Settings
) -> None:
    assert_controls_removed_and_feeds_parse(storage, settings, INLINE_CONTROLS)


def test_line_breaking_control_characters_inside_a_line_are_removed(
    storage: Storage, settings: Settings
) -> None:
    assert_controls_removed_and_feeds_parse(storage, settings, LINE_BREAKING_CONTROLS)


def test_control_characters_in_a_stored_subscriber_name_do_not_break_feeds(
    storage: Storage, settings: Settings
) -> None:
    pipeline.ingest(storage, "robots.txt", listing("A robot paper", "Another robot paper"), NOW)
    # Storage takes names as given (only the CLI cleans them), e.g. from a future web form.
    ada, _ = storage.save_subscriber(
        "ada@example.org", "Ada\x07\x1b", [Interest("r", "robot")], JOINED
    )
    bob, _ = storage.save_subscriber("bob@example.org", "Bob", [Interest("r", "robot")], JOINED)

    pipeline.build_feeds(storage, settings, NOW)

    for subscriber in (ada, bob):
        for suffix in (".rss", ".atom"):
            path = settings.feeds_dir / f"subscribers/{subscriber.feed_token}{suffix}"
            assert len(parse_feed(path).entries) == 2


def test_control_characters_in_a_topic_name_do_not_break_feeds(
    storage: Storage, settings: Settings
) -> None:
    try:
        topical = load_settings(
            state_dir=settings.state_dir,
            database_url=settings.database_url,
            topics=[{"name": "Robots\x07", "slug": "robots", "query": "robot"}],
        )
    except ConfigError as e:
        assert "topics" in str(e)  # refusing the name in one line is fine too
        return
    pipeline.ingest(storage, "robots.txt", listing("A robot paper", "Another robot paper"), NOW)

    pipeline.build_feeds(storage, topical, NOW)

    feed = parse_feed(topical.feeds_dir / "topics/robots.atom")
    assert len(feed.entries) == 2
    assert not ALL_CONTROLS.search(feed.feed.title)


# -- header injection -------------------------------------------------------

ROBOT_LISTING = listing("A robot that folds towels", "Robotic hands for everyone")


def send_one_digest(run: Cli, smtp_server: SmtpServer, tmp_path: Path) -> EmailMessage:
    """Ingest a robot listing and send today's digests; return the single message received."""
    path = tmp_path / "robots.txt"
    path.write_bytes(ROBOT_LISTING)
    assert run("ingest", str(path)).exit_code == 0
    run.env["NOTIFIER_SMTP_URL"] = smtp_server.url
    result = run("digest")
    assert result.exit_code == 0, result.stderr
    assert "sent 1, failed 0, deferred 0, unknown 0" in result.output
    assert len(smtp_server.handler.received) == 1
    received = smtp_server.handler.received[0]
    assert received.rcpt_tos == ["m@example.org"]
    headers = header_block(received.data)
    assert not re.search(r"^bcc:", headers, re.IGNORECASE | re.MULTILINE), headers
    return received.message


def test_crlf_in_subscriber_name_cannot_add_recipients(
    run: Cli, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    result = run.subscribe_earlier(
        "m@example.org",
        "--name",
        "Mallory\r\nBcc: victim@example.org",
        "--interest",
        "x=robot",
    )
    assert result.exit_code == 0, result.stderr

    message = send_one_digest(run, smtp_server, tmp_path)

    assert message.get_all("Bcc") is None
    assert message.get_all("Cc") is None
    to_headers = message.get_all("To")
    assert to_headers is not None
    assert len(to_headers) == 1
    addresses = message["To"].addresses
    assert [a.addr_spec for a in addresses] == ["m@example.org"]
    assert "\r" not in addresses[0].display_name
    assert "\n" not in addresses[0].display_name
    assert addresses[0].display_name.startswith("Mallory")


def test_crlf_in_interest_name_cannot_add_headers(
    run: Cli, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    result = run.subscribe_earlier("m@example.org", "--interest", "a\r\nBcc: x@y.org=robot")

    if result.exit_code != 0:
        # Refused: one line saying why, and nobody subscribed.
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith("notifier: error: ")
        assert "m@example.org" not in run("subscribers").output
        return
    # Accepted: the name was cleaned and the subject carries no line break.
    message = send_one_digest(run, smtp_server, tmp_path)
    assert message.get_all("Bcc") is None
    subject = str(message["Subject"])
    assert "\r" not in subject
    assert "\n" not in subject
    assert [a.addr_spec for a in message["To"].addresses] == ["m@example.org"]


# -- oversized and binary listings ------------------------------------------


def test_ten_megabyte_single_line_listing_is_refused_in_one_line(run: Cli, tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    path.write_bytes(b"x" * 10_000_000)

    result = run("ingest", str(path))

    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[:500]
    assert len(lines[0]) < 300
    assert str(path) in lines[0]
    assert "line 1" in lines[0]
    status = run("status")
    assert status.exit_code == 0
    assert "papers: 0," in status.output
    failed = [line for line in status.output.splitlines() if "failed" in line]
    assert len(failed) == 1
    assert str(path) in failed[0]
    assert "line 1" in failed[0]


GOOD_PAIR = listing("A perfectly good robot paper")  # lines 1 and 2
JUNK = bytes(b or 0xFF for b in random.Random(20260311).randbytes(4096))  # no NUL


@pytest.mark.parametrize(
    ("data", "where"),
    [
        pytest.param(b"\xff" + JUNK, "line 1", id="random-junk"),
        pytest.param(GOOD_PAIR + b"caf\xe9 au lait\n" + ABSTRACT.encode(), "line 3", id="latin-1"),
        pytest.param(GOOD_PAIR + b"a NUL \x00 here\n" + ABSTRACT.encode(), "line 3", id="nul"),
        pytest.param(b"", None, id="empty"),
        pytest.param(b"\n  \n\t\r\n", None, id="blank"),
    ],
)
def test_binary_or_empty_listing_is_refused_and_nothing_stored(
    storage: Storage, data: bytes, where: str | None
) -> None:
    with pytest.raises(ListingError) as refused:
        pipeline.ingest(storage, "junk.txt", data, NOW)

    error = str(refused.value)
    assert error.startswith("listing 'junk.txt': ")
    assert len(error.splitlines()) == 1
    if where is not None:
        assert f"{where}:" in error
    else:
        # There is no line at fault in a file without text; it says so instead.
        assert "empty" in error
    assert storage.count_papers() == 0
    runs = storage.ingest_runs()
    assert [(r.source, r.status, r.papers, r.error) for r in runs] == [
        ("junk.txt", "failed", 0, error)
    ]

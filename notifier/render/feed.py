"""Build RSS 2.0 and Atom documents with feedgen, and JSON Feed 1.1. Pure: items in, bytes out."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from feedgen.feed import FeedGenerator

from notifier.models import SubscriberStatus
from notifier.papers import clean_text, http_url

# Subscribers whose private feed is kept (any other status removes it).
FEED_STATUSES = frozenset(
    {SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED, SubscriberStatus.SUSPENDED}
)


def feed_url(base_url: str, name: str) -> str:
    """Return where the feed called name is published, without its .rss/.atom suffix."""
    return f"{base_url}/feeds/{name}"


def private_feed_name(feed_token: str) -> str:
    """Return the name of a subscriber's private feed (unguessable: it holds the token)."""
    return f"subscribers/{feed_token}"


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One feed entry; guid never changes for a paper."""

    guid: str
    title: str
    link: str
    summary: str
    published: datetime
    updated: datetime
    # (label, URL) links after the text: a private feed's "more like this" and the rest.
    actions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class FeedMeta:
    """What a feed is: its id, title, description, links and who publishes it."""

    feed_id: str
    title: str
    description: str
    link: str
    # Where the feed is published, without suffix: <self_base>.rss and <self_base>.atom.
    self_base: str
    # The feed's atom:author, which every entry inherits (RFC 4287 section 4.1.1).
    author: str = "notifier"


def build_feed(
    meta: FeedMeta, items: Sequence[FeedItem], empty_date: datetime
) -> tuple[bytes, bytes]:
    """Return (rss, atom) bytes for items, newest first as given.

    The feed's own date is its newest item's, so rebuilding unchanged content
    gives identical bytes; empty_date is used when there are no items.
    """
    dates = distinct_dates(items)
    updated = max(dates, default=empty_date)
    fg = FeedGenerator()
    fg.id(meta.feed_id)
    # Titles can carry subscriber and topic names; lxml refuses control characters.
    fg.title(clean_text(meta.title))
    fg.description(clean_text(meta.description))
    fg.author({"name": clean_text(meta.author), "uri": meta.link})
    fg.language("en")
    fg.generator("notifier")
    fg.updated(updated)
    fg.lastBuildDate(updated)
    for item, date in zip(items, dates, strict=True):
        # append keeps our order; feedgen prepends by default.
        entry = fg.add_entry(order="append")
        entry.id(item.guid)
        entry.guid(item.guid, permalink=False)
        entry.title(clean_text(item.title))
        # Only an absolute http(s) link: a stored javascript: URL must not reach readers.
        if link := http_url(item.link):
            entry.link(href=link)
        entry.published(min(item.published, date))
        entry.updated(date)
        # RSS 2.0 readers take <description> as HTML, so the plain text goes in
        # escaped ("a < b" would start a tag); Atom's <content> says it is HTML,
        # so that an abstract that mentions "</s>" is not taken for markup either.
        summary = html.escape(clean_text(item.summary), quote=False)
        if item.actions:
            summary += "<p>" + " · ".join(_action(label, url) for label, url in item.actions)
            summary += "</p>"
        entry.content(summary, type="html")  # also RSS's <description>
    fg.link(href=f"{meta.self_base}.rss", rel="self", replace=True)
    # feedgen gives RSS the *last* link, so the alternate link goes last.
    fg.link(href=meta.link, rel="alternate")
    rss = _hex_references(fg.rss_str(pretty=True))
    fg.link(href=f"{meta.self_base}.atom", rel="self", replace=True)
    fg.link(href=meta.link, rel="alternate")
    atom: bytes = fg.atom_str(pretty=True)
    return rss, atom


JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"


def build_json_feed(meta: FeedMeta, items: Sequence[FeedItem]) -> bytes:
    """Return the JSON Feed 1.1 document of the same feed (https://jsonfeed.org/version/1.1).

    Same items, order and dates as the RSS and Atom documents, so a rebuild of
    unchanged content gives the same bytes. content_text carries the plain
    text; an item with actions (a private feed's rating links) also carries
    content_html, the text escaped and the links after it, as in Atom.
    """
    entries = []
    for item, date in zip(items, distinct_dates(items), strict=True):
        text = clean_text(item.summary)
        entry: dict[str, object] = {"id": item.guid}
        if link := http_url(item.link):
            entry["url"] = link
        entry["title"] = clean_text(item.title)
        entry["content_text"] = text
        if item.actions:
            links = " · ".join(_action(label, url) for label, url in item.actions)
            entry["content_html"] = f"<p>{html.escape(text, quote=False)}</p><p>{links}</p>"
        entry["date_published"] = _rfc3339(min(item.published, date))
        entry["date_modified"] = _rfc3339(date)
        entries.append(entry)
    document = {
        "version": JSON_FEED_VERSION,
        "title": clean_text(meta.title),
        "home_page_url": meta.link,
        "feed_url": f"{meta.self_base}.json",
        "description": clean_text(meta.description),
        "authors": [{"name": clean_text(meta.author), "url": meta.link}],
        "language": "en",
        "items": entries,
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def _rfc3339(moment: datetime) -> str:
    """Return a moment as RFC 3339 in UTC, as JSON Feed's dates are written."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _action(label: str, url: str) -> str:
    """Return one link of an item's actions as HTML."""
    return f'<a href="{html.escape(url)}">{html.escape(label)}</a>'


def distinct_dates(items: Sequence[FeedItem]) -> list[datetime]:
    """Return each item's updated date, a second earlier than any newer item that has it.

    Papers stored by one ingest share its instant, and Atom readers (and the
    W3C validator: "two entries with the same value for atom:updated") expect
    each entry its own. Moving ties back keeps the newest-first order and
    depends only on the items before, so a rebuild gives the same dates.
    """
    used: set[datetime] = set()
    dates = []
    for item in items:
        date = item.updated
        while date in used:
            date -= timedelta(seconds=1)
        used.add(date)
        dates.append(date)
    return dates


def _hex_references(document: bytes) -> bytes:
    """Return an RSS document with "&" and "<" in text written as hexadecimal references.

    The RSS Advisory Board's profile asks for &#x26; and &#x3C; in plain text, so
    a reader can tell an escaped character from escaped markup; for an XML
    parser both spellings are the same character.
    """
    return document.replace(b"&amp;", b"&#x26;").replace(b"&lt;", b"&#x3C;")

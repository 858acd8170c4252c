"""Build RSS 2.0 and Atom documents with feedgen. Pure: items in, bytes out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from feedgen.feed import FeedGenerator

from notifier.papers import clean_text, http_url


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


@dataclass(frozen=True, slots=True)
class FeedMeta:
    """What a feed is: its id, title, description and links."""

    feed_id: str
    title: str
    description: str
    link: str
    # Where the feed is published, without suffix: <self_base>.rss and <self_base>.atom.
    self_base: str


def build_feed(
    meta: FeedMeta, items: Sequence[FeedItem], empty_date: datetime
) -> tuple[bytes, bytes]:
    """Return (rss, atom) bytes for items, newest first as given.

    The feed's own date is its newest item's, so rebuilding unchanged content
    gives identical bytes; empty_date is used when there are no items.
    """
    updated = max((i.updated for i in items), default=empty_date)
    fg = FeedGenerator()
    fg.id(meta.feed_id)
    # Titles can carry subscriber and topic names; lxml refuses control characters.
    fg.title(clean_text(meta.title))
    fg.description(clean_text(meta.description))
    fg.language("en")
    fg.generator("notifier")
    fg.updated(updated)
    fg.lastBuildDate(updated)
    for item in items:
        # append keeps our order; feedgen prepends by default.
        entry = fg.add_entry(order="append")
        entry.id(item.guid)
        entry.guid(item.guid, permalink=False)
        entry.title(clean_text(item.title))
        # Only an absolute http(s) link: a stored javascript: URL must not reach readers.
        if link := http_url(item.link):
            entry.link(href=link)
        entry.description(clean_text(item.summary))
        entry.published(item.published)
        entry.updated(item.updated)
    documents = []
    for suffix, render in ((".rss", fg.rss_str), (".atom", fg.atom_str)):
        # feedgen gives RSS the *last* link, so the alternate link goes last.
        fg.link(href=f"{meta.self_base}{suffix}", rel="self", replace=True)
        fg.link(href=meta.link, rel="alternate")
        documents.append(render(pretty=True))
    return documents[0], documents[1]

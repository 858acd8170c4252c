"""Feeds over HTTP: the files build_feeds wrote, with ETag, Last-Modified, 304s and gzip; OPML.

RSS readers poll every few minutes; a 304 costs them and us a header, not a feed,
and a changed feed goes gzipped (a 100 kB feed is about 25 kB on the wire).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from xml.etree import ElementTree as ET

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from notifier.errors import NotifierError
from notifier.papers import clean_text
from notifier.render.feed import FEED_STATUSES, private_feed_name
from notifier.web.context import WebContext

log = logging.getLogger("notifier.web")

CONTENT_TYPES = {
    ".rss": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",  # JSON Feed 1.1's own type
    # A feed's papers for reference managers (Zotero and Mendeley import both).
    ".bib": "application/x-bibtex; charset=utf-8",
    ".ris": "application/x-research-info-systems; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class FeedFile:
    """A feed document as served: its bytes and validators."""

    data: bytes
    content_type: str
    etag: str
    last_modified: datetime

    def headers(self) -> dict[str, str]:
        """Return the validator and caching headers sent with the feed (and with a 304)."""
        return {
            "ETag": self.etag,
            "Last-Modified": format_datetime(self.last_modified, usegmt=True),
            # Readers may keep it a few minutes, then must ask again (cheaply, with a 304).
            "Cache-Control": "max-age=300, must-revalidate",
        }


def read_feed(path: Path) -> FeedFile | None:
    """Return the feed at path with its validators, or None when there is no such feed."""
    content_type = CONTENT_TYPES.get(path.suffix)
    if content_type is None:
        return None
    try:
        data = path.read_bytes()
        modified = path.stat().st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return None
    # From the bytes, so a rebuild of unchanged content keeps it; weak because one
    # validator covers the identity and gzip codings (RFC 9110 section 8.8.3).
    etag = 'W/"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    last_modified = datetime.fromtimestamp(int(modified), UTC)
    return FeedFile(data, content_type, etag, last_modified)


def not_modified(feed: FeedFile, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """Tell whether a conditional GET can be answered 304 (RFC 9110 section 13.2.2)."""
    if if_none_match is not None:
        # If-None-Match wins over If-Modified-Since; weak comparison for GET.
        candidates = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in candidates or feed.etag.removeprefix("W/") in candidates
    if if_modified_since is not None:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError, IndexError):
            return False  # an unparseable date is ignored, as RFC 9110 says
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return feed.last_modified <= since
    return False


class CompressFeeds:
    """Gzip the feeds and static files for clients that accept it; leave the pages alone.

    Starlette's GZipMiddleware does the work (and adds Vary: Accept-Encoding).
    Pages are not compressed: they carry a CSRF token next to text the visitor
    typed, the pairing BREACH reads secrets from through compressed sizes.
    """

    PREFIXES = ("/feeds/", "/static/")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send feed and static responses through gzip, everything else as it is."""
        if scope["type"] == "http" and scope["path"].startswith(self.PREFIXES):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    """One feed in an OPML list."""

    title: str
    url: str
    kind: str = "rss"


def build_opml(title: str, feeds: Sequence[OpmlFeed], created: datetime) -> bytes:
    """Return an OPML 2.0 document listing feeds, which RSS readers import in one step."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = clean_text(title)
    ET.SubElement(head, "dateCreated").text = format_datetime(created, usegmt=True)
    body = ET.SubElement(root, "body")
    for feed in feeds:
        ET.SubElement(
            body,
            "outline",
            type=feed.kind,
            text=clean_text(feed.title),
            title=clean_text(feed.title),
            xmlUrl=feed.url,
        )
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


class PrivateFeeds:
    """Build a subscriber's private feed when it is asked for and missing or behind.

    `notifier feeds` (and the service after each ingest with news) writes every
    feed; until it runs, a subscriber who just confirmed would find "No such
    feed." behind the links on their preferences page. A feed is
    built here when its file is missing (new subscriber, interests just
    changed), or when papers were stored after it was written and it is at
    least REFRESH_AFTER old, so a reader polling a stale feed does not make the
    server rebuild it on every poll.
    """

    REFRESH_AFTER = timedelta(minutes=5)

    def __init__(self, context: WebContext) -> None:
        self.context = context
        self.storage = context.storage
        self.feeds_dir = context.settings.feeds_dir
        # One build at a time: a second request for the same feed waits, then finds it.
        self._building = threading.Lock()

    def refresh(self, feed_token: str) -> None:
        """Write the private feed with this token if it is missing or behind the papers."""
        if not self._behind(feed_token):
            return
        subscriber = self.storage.subscriber_by_feed_token(feed_token)
        if subscriber is None or subscriber.status not in FEED_STATUSES:
            return
        with self._building:
            if not self._behind(feed_token):
                return
            try:
                self.context.write_private_feed(
                    subscriber, self.context.clock(), self.context.matching
                )
            except NotifierError as e:
                # The file as it is (or a 404) beats an error page for a feed reader.
                log.warning("could not build the feed of subscriber %d: %s", subscriber.id, e)
                return
        log.info("built the private feed of subscriber %d", subscriber.id)

    def _behind(self, feed_token: str) -> bool:
        """Tell whether a private feed is missing, or older than the newest paper stored."""
        stem = self.feeds_dir / private_feed_name(feed_token)
        try:
            # Every format: one written before JSON Feed was may lack its .json.
            written = min(
                datetime.fromtimestamp(stem.with_name(f"{stem.name}{s}").stat().st_mtime, UTC)
                for s in CONTENT_TYPES
            )
        except (FileNotFoundError, NotADirectoryError):
            return True
        if written > self.context.clock() - self.REFRESH_AFTER:
            return False
        newest = self.storage.newest_paper_seen_at()
        return newest is not None and newest > written


def remove_private_feed(feeds_dir: Path, feed_token: str) -> None:
    """Delete a subscriber's private feed files now rather than at the next feed build."""
    for suffix in CONTENT_TYPES:
        (feeds_dir / f"{private_feed_name(feed_token)}{suffix}").unlink(missing_ok=True)

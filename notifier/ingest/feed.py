"""Parse any RSS or Atom feed (a lab blog, a journal) with feedparser. Pure."""

from __future__ import annotations

import calendar
import io
from datetime import UTC, datetime
from typing import Any

import feedparser

from notifier.errors import ListingError
from notifier.ingest.common import (
    ERROR_CHARS,
    excerpt,
    listing_label,
    looks_like_html,
    make_paper,
    unique_by_key,
    utc_moment,
)
from notifier.models import Listing, PaperData
from notifier.papers import clean_text, html_to_text, normalise_arxiv_id

# feedparser flags these yet parses the document whole; anything else is refused.
_HARMLESS = (feedparser.CharacterEncodingOverride,)


def parse_feed(data: bytes, source: str, content_type: str | None = None) -> Listing:
    """Parse an RSS or Atom feed; its entries become papers (keyed by arXiv id when linked)."""
    if not data.strip():
        raise ListingError(source, "empty response: no feed to read")
    if looks_like_html(data, content_type):
        raise ListingError(source, "expected an RSS or Atom feed but got an HTML page")
    try:
        # A stream, never bytes: feedparser reads bytes that name a file from that file.
        parsed = feedparser.parse(
            io.BytesIO(data), sanitize_html=False, resolve_relative_uris=False
        )
    except (ValueError, RecursionError) as e:
        # An encoding declared as "UTF\0-8" makes feedparser's codec lookup raise.
        raise ListingError(source, f"not a readable feed: {excerpt(str(e))}") from None
    problem = parsed.get("bozo_exception")
    if parsed.get("bozo") and not isinstance(problem, _HARMLESS):
        line = problem.getLineNumber() if hasattr(problem, "getLineNumber") else None
        raise ListingError(
            source,
            f"not a well-formed feed (truncated?): {excerpt(str(problem), ERROR_CHARS)}",
            line,
        )
    if not parsed.get("version"):
        raise ListingError(source, "not an RSS or Atom feed")
    entries = parsed.get("entries", [])
    papers = unique_by_key(_entry(e, source, rank) for rank, e in enumerate(entries, 1))
    return Listing(
        source,
        papers,
        label=listing_label(parsed.feed.get("title")),
        empty_reason=None if papers else "the feed has no entries",
    )


def _entry(entry: Any, source: str, rank: int) -> PaperData:
    """Return the paper of one feed entry."""
    link = entry.get("link") or ""
    identifier = entry.get("id") or link
    arxiv_id = normalise_arxiv_id(link) or normalise_arxiv_id(identifier)
    return make_paper(
        source,
        f"entry {rank} ({excerpt(identifier) or 'no id'})",
        title=_text(entry, "title"),
        abstract=_summary(entry),
        rank=rank,
        arxiv_id=arxiv_id,
        url=link or None,
        authors=[a.get("name", "") for a in entry.get("authors", [])],
        published_at=_date(entry.get("published_parsed") or entry.get("updated_parsed")),
        meta={"categories": [t.get("term") for t in entry.get("tags", []) if t.get("term")]},
    )


def _text(entry: Any, field: str) -> str:
    """Return a text construct as plain text, converting HTML ones."""
    value = str(entry.get(field, ""))
    detail = entry.get(f"{field}_detail") or {}
    return html_to_text(value) if "html" in detail.get("type", "") else clean_text(value)


def _summary(entry: Any) -> str:
    """Return the entry's summary or, failing that, its content, as plain text.

    feedparser copies content into `summary` without a `summary_detail` when
    there is no summary; a summary of unknown type is read as HTML, which is
    what RSS descriptions are by convention.
    """
    detail = entry.get("summary_detail")
    if entry.get("summary") and detail:
        return _text(entry, "summary")
    for content in entry.get("content", []):
        value = str(content.get("value", ""))
        return html_to_text(value) if "html" in content.get("type", "") else clean_text(value)
    return html_to_text(str(entry.get("summary", "")))


def _date(parsed: Any) -> datetime | None:
    """Return feedparser's UTC struct_time as an aware datetime, or None if out of range."""
    if not parsed:
        return None
    try:
        return utc_moment(datetime.fromtimestamp(calendar.timegm(parsed), UTC))
    except (OverflowError, ValueError, OSError):
        return None

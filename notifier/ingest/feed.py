"""Parse any RSS or Atom feed (a lab blog, a journal) with feedparser. Pure."""

from __future__ import annotations

import calendar
import io
import re
from datetime import UTC, datetime
from html.entities import name2codepoint
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
# What expat says when a document stops before its elements close.
_TRUNCATED = frozenset({"no element found", "unclosed token", "unclosed CDATA section"})
# XML's own named entities; HTML 4 has 248 more, which feeds written by HTML tools use.
_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
_ENTITY_REFERENCE = re.compile(rb"&([A-Za-z][A-Za-z0-9]*);")
_ENTITY_DECLARATION = re.compile(rb"<!ENTITY\s+%?\s*([A-Za-z][\w.-]*)")
_CDATA = re.compile(rb"<!\[CDATA\[.*?\]\]>", re.DOTALL)
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def parse_feed(data: bytes, source: str, content_type: str | None = None) -> Listing:
    """Parse an RSS or Atom feed; its entries become papers (keyed by arXiv id when linked).

    Entries without a title are skipped and counted; the rest of the feed goes in.
    """
    if not data.strip():
        raise ListingError(source, "empty response: no feed to read")
    if looks_like_html(data, content_type):
        raise ListingError(source, "expected an RSS or Atom feed but got an HTML page")
    parsed = _feedparser(data, source)
    problem = parsed.get("bozo_exception")
    if parsed.get("bozo") and _message(problem) == "undefined entity":
        # An HTML entity such as &aacute; is no XML: read it as feedparser's own
        # fallback parser and browsers do, strictly otherwise.
        parsed = _feedparser(html_entities_as_references(data), source)
        problem = parsed.get("bozo_exception")
    if parsed.get("bozo") and not isinstance(problem, _HARMLESS):
        raise _not_well_formed(problem, data, source)
    if not parsed.get("version"):
        raise ListingError(source, "not an RSS or Atom feed")
    entries = parsed.get("entries", [])
    titled = [(rank, e) for rank, e in enumerate(entries, 1) if _text(e, "title")]
    papers = unique_by_key(_entry(e, source, rank) for rank, e in titled)
    skipped = len(entries) - len(titled)
    if not entries:
        empty_reason = "the feed has no entries"
    else:
        empty_reason = f"none of its {len(entries)} entries has a title"
    return Listing(
        source,
        papers,
        label=listing_label(parsed.feed.get("title")),
        empty_reason=None if papers else empty_reason,
        skipped=skipped,
    )


def html_entities_as_references(data: bytes) -> bytes:
    """Return a feed with HTML's named entities as character references (&aacute; -> &#225;).

    The names are those feedparser reads (html.entities.name2codepoint); XML's
    own, those the document declares and text inside CDATA sections are kept.
    """
    declared = {m.group(1) for m in _ENTITY_DECLARATION.finditer(data)}

    def reference(match: re.Match[bytes]) -> bytes:
        name = match.group(1)
        code = name2codepoint.get(name.decode("ascii"))
        if code is None or name.decode("ascii") in _XML_ENTITIES or name in declared:
            return match.group(0)
        return b"&#%d;" % code

    parts, last = [], 0
    for section in _CDATA.finditer(data):
        parts += [_ENTITY_REFERENCE.sub(reference, data[last : section.start()]), section[0]]
        last = section.end()
    parts.append(_ENTITY_REFERENCE.sub(reference, data[last:]))
    return b"".join(parts)


def _feedparser(data: bytes, source: str) -> Any:
    """Return what feedparser makes of a document, or raise ListingError if it cannot read it."""
    try:
        # A stream, never bytes: feedparser reads bytes that name a file from that file.
        return feedparser.parse(io.BytesIO(data), sanitize_html=False, resolve_relative_uris=False)
    except (ValueError, RecursionError) as e:
        # An encoding declared as "UTF\0-8" makes feedparser's codec lookup raise.
        raise ListingError(source, f"not a readable feed: {excerpt(str(e))}") from None


def _message(problem: Any) -> str:
    """Return what the XML parser said, without the position it prefixes."""
    getter = getattr(problem, "getMessage", None)
    return str(getter()) if callable(getter) else str(problem)


def _not_well_formed(problem: Any, data: bytes, source: str) -> ListingError:
    """Return the error of a feed the XML parser refused: what, where, and what to suspect."""
    message = _message(problem)
    line = problem.getLineNumber() if hasattr(problem, "getLineNumber") else None
    if line is not None and not _declares_xml(data):
        line -= 1  # feedparser put an XML declaration of its own in front
    if hasattr(problem, "getColumnNumber"):
        message += f" at column {problem.getColumnNumber() + 1}"
    if _message(problem) == "undefined entity":
        unknown = [
            m.group(0).decode("ascii")
            for m in _ENTITY_REFERENCE.finditer(data)
            if name2codepoint.get(m.group(1).decode("ascii")) is None
            and m.group(1).decode("ascii") not in _XML_ENTITIES
        ]
        if unknown:
            message = f"{unknown[0]} is an entity neither XML nor HTML defines ({message})"
    elif _message(problem) in _TRUNCATED:
        message += " (truncated?)"
    return ListingError(source, f"not a well-formed feed: {excerpt(message, ERROR_CHARS)}", line)


def _declares_xml(data: bytes) -> bool:
    """Tell whether a document starts with an XML declaration (after a byte order mark)."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data[len(bom) : len(bom) + 10].decode(codec, "replace").startswith("<?xml")
    return data.startswith(b"<?xml")


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

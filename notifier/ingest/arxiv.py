"""Parse arXiv: the query API (Atom) and the listing feeds (RSS 2.0 / Atom). Pure.

The XML is parsed strictly, so a truncated response is refused rather than
half-read. Facts this relies on (docs/design.md links the reference):
- the API reports errors as a feed with one entry titled "Error", with HTTP 200;
- listing items say `new`, `cross`, `replace` or `replace-cross`; only the
  first two are new papers;
- listing descriptions read "arXiv:<id>vN Announce Type: <t> Abstract: <text>".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from lxml import etree

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
from notifier.models import Announce, Listing, PaperData
from notifier.papers import arxiv_version, normalise_arxiv_id, strip_markup

NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "arxiv": "http://arxiv.org/schemas/atom",
    "opensearch": "http://a9.com/-/spec/opensearch/1.1/",
    "dc": "http://purl.org/dc/elements/1.1/",
}
EMPTY_LISTING = "arXiv announced nothing (no announcements on weekends and holidays)"
_DESCRIPTION = re.compile(
    r"^\s*arXiv:\S+\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s*)?", re.IGNORECASE
)
_COUNT = re.compile(r"[0-9]{1,18}")
_AUTHOR_SPLIT = re.compile(r",\s*(?:and\s+)?|\s+and\s+")


def parse_arxiv_api(data: bytes, source: str, content_type: str | None = None) -> Listing:
    """Parse an arXiv API query response (Atom with opensearch counts)."""
    root = _xml(data, source, content_type)
    if root.tag != f"{{{NS['atom']}}}feed":
        raise ListingError(
            source, f"expected an Atom feed from the arXiv API, got <{_local(root.tag)}>"
        )
    entries = root.findall("atom:entry", NS)
    for entry in entries:
        if _text(entry, "atom:title") == "Error":
            # Errors arrive as HTTP 200 with one "Error" entry (arXiv API manual).
            raise ListingError(
                source,
                "the arXiv API reported an error: "
                + excerpt(_text(entry, "atom:summary"), ERROR_CHARS),
            )
    papers = unique_by_key(_api_entry(e, source, rank) for rank, e in enumerate(entries, 1))
    if papers:
        return Listing(source, papers)
    total = _int(_text(root, "opensearch:totalResults"))
    start = _int(_text(root, "opensearch:startIndex")) or 0
    if total and total > start:
        raise ListingError(
            source,
            f"the API returned an empty page although it reports {total} results "
            "(a known arXiv glitch); try again later",
        )
    return Listing(source, (), empty_reason="the query matched no papers")


def parse_arxiv_listing(data: bytes, source: str, content_type: str | None = None) -> Listing:
    """Parse an rss.arxiv.org listing feed, RSS 2.0 or Atom."""
    root = _xml(data, source, content_type)
    if root.tag == "rss":
        channel = root.find("channel")
        if channel is None:
            raise ListingError(source, "RSS feed without a <channel>")
        items = channel.findall("item")
        label = channel.findtext("pubDate") or channel.findtext("lastBuildDate")
        papers = unique_by_key(_rss_item(i, source, rank) for rank, i in enumerate(items, 1))
    elif root.tag == f"{{{NS['atom']}}}feed":
        entries = root.findall("atom:entry", NS)
        label = _text(root, "atom:updated")
        papers = unique_by_key(_atom_item(e, source, rank) for rank, e in enumerate(entries, 1))
    else:
        raise ListingError(
            source, f"expected an arXiv RSS 2.0 or Atom listing feed, got <{_local(root.tag)}>"
        )
    return Listing(
        source,
        papers,
        label=listing_label(label),
        empty_reason=None if papers else EMPTY_LISTING,
    )


def _xml(data: bytes, source: str, content_type: str | None) -> Any:
    """Parse XML strictly and safely (no entities, no network), or raise ListingError."""
    stripped = data.strip()
    if not stripped:
        raise ListingError(source, "empty response: no feed to read")
    if stripped.startswith(b"Rate exceeded"):
        raise ListingError(
            source, "arXiv is throttling requests ('Rate exceeded.'); poll less often"
        )
    if looks_like_html(data, content_type):
        raise ListingError(source, "expected an XML feed but got an HTML page (an error page?)")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        return etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as e:
        line = e.position[0] if e.position else None
        if "Resource limit exceeded" in str(e.msg):
            raise ListingError(
                source, "a text in the XML is too large (over 10 MB)", line
            ) from None
        message = str(e.msg).split(", line ")[0].strip()  # libxml2 repeats the position
        raise ListingError(source, f"not well-formed XML (truncated?): {message}", line) from None


def _api_entry(entry: Any, source: str, rank: int) -> PaperData:
    """Return the paper of one API entry."""
    raw_id = _text(entry, "atom:id")
    where = f"entry {rank} ({excerpt(raw_id) or 'no id'})"
    arxiv_id, version = _identify(raw_id, source, where)
    primary = entry.find("arxiv:primary_category", NS)
    return make_paper(
        source,
        where,
        title=strip_markup(_text(entry, "atom:title")),
        abstract=strip_markup(_text(entry, "atom:summary")),
        rank=rank,
        arxiv_id=arxiv_id,
        version=version,
        url=f"https://arxiv.org/abs/{arxiv_id}",
        authors=[_text(a, "atom:name") for a in entry.findall("atom:author", NS)],
        published_at=_iso(_text(entry, "atom:published")),
        meta={
            "primary_category": primary.get("term") if primary is not None else None,
            "categories": [c.get("term") for c in entry.findall("atom:category", NS)],
            "comment": _text(entry, "arxiv:comment"),
            "journal_ref": _text(entry, "arxiv:journal_ref"),
            "doi": _text(entry, "arxiv:doi"),
        },
    )


def _rss_item(item: Any, source: str, rank: int) -> PaperData:
    """Return the paper of one RSS 2.0 listing item."""
    guid = item.findtext("guid") or item.findtext("link") or ""
    return _listing_paper(
        source,
        rank,
        raw_id=guid,
        title=item.findtext("title") or "",
        description=item.findtext("description") or "",
        announce=item.findtext("arxiv:announce_type", namespaces=NS),
        creators=item.findtext("dc:creator", namespaces=NS),
        categories=[c.text or "" for c in item.findall("category")],
        date=_rfc822(item.findtext("pubDate")),
    )


def _atom_item(entry: Any, source: str, rank: int) -> PaperData:
    """Return the paper of one Atom listing entry."""
    return _listing_paper(
        source,
        rank,
        raw_id=_text(entry, "atom:id"),
        title=_text(entry, "atom:title"),
        description=_text(entry, "atom:summary"),
        announce=_text(entry, "arxiv:announce_type") or None,
        creators=_text(entry, "dc:creator") or None,
        categories=[c.get("term") or "" for c in entry.findall("atom:category", NS)],
        date=_iso(_text(entry, "atom:published")),
    )


def _listing_paper(
    source: str,
    rank: int,
    *,
    raw_id: str,
    title: str,
    description: str,
    announce: str | None,
    creators: str | None,
    categories: list[str],
    date: datetime | None,
) -> PaperData:
    """Return a listing paper from the fields RSS and Atom share."""
    where = f"item {rank} ({excerpt(raw_id) or 'no id'})"
    arxiv_id, version = _identify(raw_id, source, where)
    match = _DESCRIPTION.match(description)
    kind = (announce or (match.group("type") if match else "new")).strip().lower()
    try:
        announced = Announce(kind)
    except ValueError:
        raise ListingError(source, f"{where}: unknown announce type {excerpt(kind)!r}") from None
    abstract = description[match.end() :] if match else description
    return make_paper(
        source,
        where,
        title=strip_markup(title),
        abstract=strip_markup(abstract),
        rank=rank,
        arxiv_id=arxiv_id,
        version=version,
        url=f"https://arxiv.org/abs/{arxiv_id}",
        authors=[a for a in _AUTHOR_SPLIT.split(creators or "") if a.strip()],
        published_at=date,
        announce=announced,
        meta={"categories": [c for c in categories if c], "announced": kind},
    )


def _identify(raw_id: str, source: str, where: str) -> tuple[str, int | None]:
    """Return the arXiv id and version of an entry's id, or raise ListingError naming it."""
    arxiv_id = normalise_arxiv_id(raw_id)
    if arxiv_id is None:
        raise ListingError(source, f"{where}: the id is not an arXiv id")
    try:
        return arxiv_id, arxiv_version(raw_id)
    except ValueError as e:
        raise ListingError(source, f"{where}: the id's {e}") from None


def _text(element: Any, path: str) -> str:
    """Return the text of a child element, or ''."""
    found = element.find(path, NS)
    return (found.text or "").strip() if found is not None else ""


def _local(tag: Any) -> str:
    """Return a tag without its namespace."""
    return str(tag).rpartition("}")[2]


def _int(text: str) -> int | None:
    """Return a count as an int, or None when it is not one.

    Only ASCII digits: str.isdigit() also accepts "²", which int() refuses.
    """
    return int(text) if _COUNT.fullmatch(text.strip()) else None


def _iso(text: str) -> datetime | None:
    """Return an Atom date as an aware UTC datetime, or None."""
    try:
        return utc_moment(datetime.fromisoformat(text))
    except ValueError:
        return None


def _rfc822(text: str | None) -> datetime | None:
    """Return an RSS date as an aware UTC datetime, or None."""
    if not text:
        return None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError):
        return None
    # RFC 5322 3.3: "-0000" is UTC with no local zone known; Python gives it naive.
    return utc_moment(moment if moment.tzinfo else moment.replace(tzinfo=UTC))

"""Build validated PaperData from the fields a parser found. Pure; shared by every format."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from notifier.errors import ListingError
from notifier.models import Announce, PaperData
from notifier.papers import clean_text, http_url, paper_key

MAX_TITLE_CHARS = 1_000
MAX_ABSTRACT_CHARS = 20_000
MAX_AUTHORS = 500
# ingest_runs.label is VARCHAR(40) (notifier/storage/schema.py): a feed's title
# or a listing's date line is shortened to fit.
MAX_LABEL_CHARS = 40
# How much of a value a source supplied an error message quotes, and of an
# upstream error message.
EXCERPT_CHARS = 60
ERROR_CHARS = 300


def make_paper(
    source: str,
    where: str,
    *,
    title: str,
    abstract: str,
    rank: int,
    arxiv_id: str | None = None,
    version: int | None = None,
    url: str | None = None,
    authors: Iterable[str] = (),
    published_at: datetime | None = None,
    announce: Announce = Announce.NEW,
    meta: Mapping[str, Any] | None = None,
) -> PaperData:
    """Return a PaperData, or raise ListingError naming the item (where) and field at fault."""
    clean_title = clean_text(title)
    if not clean_title:
        raise ListingError(source, f"{where}: the title is empty")
    if len(clean_title) > MAX_TITLE_CHARS:
        raise ListingError(
            source,
            f"{where}: the title is {len(clean_title):,} characters long "
            f"(limit {MAX_TITLE_CHARS:,})",
        )
    clean_abstract = clean_text(abstract)
    if len(clean_abstract) > MAX_ABSTRACT_CHARS:
        raise ListingError(
            source,
            f"{where}: the abstract is {len(clean_abstract):,} characters long "
            f"(limit {MAX_ABSTRACT_CHARS:,})",
        )
    names = tuple(n for n in (clean_text(a) for a in authors) if n)[:MAX_AUTHORS]
    extras = {k: v for k, v in (meta or {}).items() if v not in (None, "", [], ())}
    return PaperData(
        key=paper_key(clean_title, arxiv_id),
        title=clean_title,
        abstract=clean_abstract,
        rank=rank,
        arxiv_id=arxiv_id,
        version=version,
        url=http_url(url),  # a javascript: link is no link; the paper stays
        authors=names,
        published_at=published_at,
        announce=announce,
        meta=extras,
    )


def unique_by_key(papers: Iterable[PaperData]) -> tuple[PaperData, ...]:
    """Return papers with later duplicates of a key dropped (the first, best rank wins)."""
    seen: dict[str, PaperData] = {}
    for paper in papers:
        seen.setdefault(paper.key, paper)
    return tuple(seen.values())


def looks_like_html(data: bytes, content_type: str | None) -> bool:
    """Tell whether a response is an HTML page (typically an error page) by type or content."""
    if content_type and "html" in content_type.lower():
        return True
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html"))


def listing_label(value: Any) -> str | None:
    """Return a listing's label (a date, a feed title) as one short line, or None if not text."""
    if not isinstance(value, str):
        return None
    label = clean_text(value)
    if len(label) > MAX_LABEL_CHARS:
        label = label[: MAX_LABEL_CHARS - 1].rstrip() + "…"
    return label or None


def utc_moment(moment: datetime | None) -> datetime | None:
    """Return an aware datetime in UTC, or None when it is naive or has no UTC equivalent.

    "0001-01-01T00:00+01:00" is a valid ISO date whose UTC time falls before
    year 1, which Python cannot represent.
    """
    if moment is None or moment.tzinfo is None:
        return None
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """Return a value a source supplied as one line short enough to quote in an error."""
    line = clean_text(text)
    return line if len(line) <= limit else line[: limit - 1] + "…"

"""Build validated PaperData from the fields a parser found. Pure; shared by every format."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from notifier.errors import ListingError
from notifier.models import Announce, PaperData
from notifier.papers import clean_text, paper_key

MAX_TITLE_CHARS = 1_000
MAX_ABSTRACT_CHARS = 20_000
MAX_AUTHORS = 500


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
        url=url,
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

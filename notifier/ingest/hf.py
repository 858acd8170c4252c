"""Parse Hugging Face daily papers: the JSON API and the papers HTML pages. Pure.

API items hold a `paper` object (arXiv id without version, title, summary,
authors, upvotes, ...) and item-level fields. Two `publishedAt` fields mean
different things: `paper.publishedAt` is the arXiv date, the item's is when
the paper was listed on Daily Papers.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from lxml import etree, html

from notifier.errors import ListingError
from notifier.ingest.common import (
    listing_label,
    looks_like_html,
    make_paper,
    unique_by_key,
    utc_moment,
)
from notifier.models import Listing, PaperData
from notifier.papers import normalise_arxiv_id

HF = "https://huggingface.co"
EMPTY_DAY = "Hugging Face listed no papers (a weekend, a holiday, or a day not yet published)"
# Where the papers pages keep their list, newest layouts first.
_LIST_KEYS = ("dailyPapers", "papers", "trendingPapers")


def parse_hf_api(data: bytes, source: str, content_type: str | None = None) -> Listing:
    """Parse a /api/daily_papers response (a JSON array of items)."""
    if looks_like_html(data, content_type):
        raise ListingError(source, "expected JSON but got an HTML page (an error page?)")
    items = _load_json(data, source)
    if isinstance(items, dict) and "error" in items:
        raise ListingError(source, f"the API answered with an error: {items['error']}")
    if not isinstance(items, list):
        raise ListingError(source, f"expected a JSON array of papers, got {type(items).__name__}")
    papers = _papers(items, source)
    return Listing(source, papers, empty_reason=None if papers else EMPTY_DAY)


def api_page_items(data: bytes) -> list[Any] | None:
    """Return the items of one API page, or None when it is not a JSON array (an error)."""
    try:
        items = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return items if isinstance(items, list) else None


def join_api_pages(pages: list[list[Any]]) -> bytes:
    """Return several API pages as the one JSON array parse_hf_api reads (and replay keeps)."""
    return json.dumps([item for page in pages for item in page]).encode()


def parse_hf_page(data: bytes, source: str, content_type: str | None = None) -> Listing:
    """Parse a huggingface.co/papers page: its embedded JSON, else its visible markup."""
    if not data.strip():
        raise ListingError(source, "empty response: no page to read")
    try:
        document = html.fromstring(data)
    except (etree.ParserError, ValueError) as e:
        raise ListingError(source, f"not an HTML page: {e}") from None
    for props in cast(list[str], document.xpath("//*[@data-props]/@data-props")):
        # lxml has already undone the attribute escaping (&quot; -> ").
        try:
            decoded = json.loads(props)
        except json.JSONDecodeError:
            continue
        items = _paper_list(decoded)
        if items is not None:
            papers = _papers(items, source)
            label = listing_label(decoded.get("dateString") if isinstance(decoded, dict) else None)
            return Listing(source, papers, label=label, empty_reason=None if papers else EMPTY_DAY)
    papers = _papers_from_markup(document, source)
    if not papers:
        raise ListingError(
            source,
            "no papers found: the page has neither the embedded paper list (data-props) nor "
            "paper articles; has the page layout changed?",
        )
    return Listing(source, papers)


def _load_json(data: bytes, source: str) -> Any:
    """Decode JSON, or raise ListingError with the line and column at fault."""
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise ListingError(source, f"not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ListingError(
            source, f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg} (truncated?)"
        ) from None


def _paper_list(props: Any) -> list[Any] | None:
    """Return the list of paper items inside a page's data-props, if it holds one."""
    if not isinstance(props, dict):
        return None
    for key in _LIST_KEYS:
        if isinstance(props.get(key), list):
            return list(props[key])
    return None


def _papers(items: list[Any], source: str) -> tuple[PaperData, ...]:
    """Return the papers of API-shaped items, skipping withdrawn ones."""
    papers: list[PaperData] = []
    for index, item in enumerate(items, start=1):
        where = f"item {index}"
        if not isinstance(item, dict):
            raise ListingError(source, f"{where}: expected an object, got {type(item).__name__}")
        # Trending pages list bare papers; daily lists wrap them in {"paper": ...}.
        paper = item.get("paper", item)
        if not isinstance(paper, dict):
            raise ListingError(source, f"{where}: 'paper' is not an object")
        if paper.get("withdrawnAt"):
            continue
        papers.append(_paper(item, paper, source, where, rank=len(papers) + 1))
    return unique_by_key(papers)


def _paper(
    item: dict[str, Any], paper: dict[str, Any], source: str, where: str, rank: int
) -> PaperData:
    """Return one paper from an API item and its paper object."""
    paper_id = str(paper.get("id") or "")
    if not paper_id:
        raise ListingError(source, f"{where}: the paper has no id")
    title = item.get("title") or paper.get("title")
    if not isinstance(title, str):
        raise ListingError(source, f"{where} ({paper_id}): no title")
    summary = paper.get("summary") or item.get("summary") or ""
    authors = [
        a["name"]
        for a in paper.get("authors") or ()
        if isinstance(a, dict) and isinstance(a.get("name"), str)
    ]
    return make_paper(
        source,
        f"{where} ({paper_id})",
        title=title,
        abstract=str(summary),
        rank=rank,
        arxiv_id=normalise_arxiv_id(paper_id),
        url=f"{HF}/papers/{paper_id}",
        authors=authors,
        published_at=_timestamp(paper.get("publishedAt")),
        meta={
            "upvotes": _count(paper.get("upvotes")),
            "comments": _count(item.get("numComments")),
            "github": paper.get("githubRepo") or item.get("githubRepo"),
            "github_stars": _count(paper.get("githubStars")),
            "ai_summary": paper.get("ai_summary") or item.get("ai_summary"),
            "project_page": paper.get("projectPage"),
            "hf_url": f"{HF}/papers/{paper_id}",
            "listed_at": item.get("publishedAt") or paper.get("submittedOnDailyAt"),
        },
    )


def _papers_from_markup(document: Any, source: str) -> tuple[PaperData, ...]:
    """Return papers from the page's articles: h3 > a[href=/papers/<id>] (titles only)."""
    papers: list[PaperData] = []
    for article in document.xpath("//article"):
        links = article.xpath(".//h3//a[@href]")
        if not links:
            continue
        link = links[0]
        paper_id = str(link.get("href")).rstrip("/").rsplit("/", 1)[-1]
        abstract = " ".join(p.text_content() for p in article.xpath(".//p"))
        papers.append(
            make_paper(
                source,
                f"article {len(papers) + 1} ({paper_id})",
                title=link.text_content(),
                abstract=abstract,
                rank=len(papers) + 1,
                arxiv_id=normalise_arxiv_id(paper_id),
                url=f"{HF}/papers/{paper_id}",
            )
        )
    return unique_by_key(papers)


def _timestamp(value: Any) -> datetime | None:
    """Return an ISO-8601 timestamp ('2024-09-17T11:03:46.000Z') as an aware datetime."""
    if not isinstance(value, str):
        return None
    try:
        return utc_moment(datetime.fromisoformat(value))
    except ValueError:
        return None


def _count(value: Any) -> int | None:
    """Return a count the API may give as a float (the OpenAPI spec says number)."""
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

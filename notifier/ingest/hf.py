"""Parse Hugging Face daily papers: the JSON API and the papers HTML pages. Pure.

API items hold a `paper` object (arXiv id without version, title, summary,
authors, upvotes, ...) and item-level fields. Two `publishedAt` fields mean
different things: `paper.publishedAt` is the arXiv date, the item's is when
the paper was listed on Daily Papers.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, cast
from urllib.parse import quote

from lxml import etree, html

from notifier.errors import ListingError
from notifier.ingest.common import (
    excerpt,
    listing_label,
    looks_like_html,
    make_paper,
    unique_by_key,
    utc_moment,
)
from notifier.models import Listing, PaperData
from notifier.papers import clean_text, http_url, normalise_arxiv_id

HF = "https://huggingface.co"
EMPTY_DAY = "Hugging Face listed no papers (a weekend, a holiday, or a day not yet published)"
# Where the papers pages keep their list, newest layouts first.
_LIST_KEYS = ("dailyPapers", "papers", "trendingPapers")
# Longer integers become floats (infinity beyond 1e308), as 1e999 does: int() refuses
# more than 4,300 digits, and no count or id of the API comes near 18.
MAX_INT_DIGITS = 18
MAX_ID_CHARS = 100
MAX_SUMMARY_CHARS = 5_000


def parse_hf_api(data: bytes, source: str, content_type: str | None = None) -> Listing:
    """Parse a /api/daily_papers response (a JSON array of items)."""
    if looks_like_html(data, content_type):
        raise ListingError(source, "expected JSON but got an HTML page (an error page?)")
    items = _load_json(data, source)
    if isinstance(items, dict) and "error" in items:
        message = excerpt(clean_text(str(items["error"])))
        raise ListingError(source, f"the API answered with an error: {message}")
    if not isinstance(items, list):
        raise ListingError(source, f"expected a JSON array of papers, got {type(items).__name__}")
    papers = _papers(items, source)
    return Listing(source, papers, empty_reason=None if papers else EMPTY_DAY)


def api_page_items(data: bytes) -> list[Any] | None:
    """Return the items of one API page, or None when it is not a JSON array (an error)."""
    try:
        items = _decode(data)
    except (ValueError, RecursionError):  # the parser says what is wrong with it
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
        raise ListingError(source, f"not an HTML page: {excerpt(str(e))}") from None
    for props in cast(list[str], document.xpath("//*[@data-props]/@data-props")):
        # lxml has already undone the attribute escaping (&quot; -> ").
        try:
            decoded = _decode(props)
        except (ValueError, RecursionError):
            continue  # not the paper list; without one the page is refused below
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
        return _decode(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise ListingError(source, f"not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ListingError(
            source, f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg} (truncated?)"
        ) from None
    except RecursionError:
        raise ListingError(source, "invalid JSON: arrays or objects nested too deeply") from None


def _decode(text: str | bytes) -> Any:
    """Decode JSON, reading an integer too long for int() as a float (see MAX_INT_DIGITS)."""
    return json.loads(text, parse_int=_integer)


def _integer(digits: str) -> int | float:
    """Return a JSON integer, or a float when it has more than MAX_INT_DIGITS digits."""
    return int(digits) if len(digits.lstrip("-")) <= MAX_INT_DIGITS else float(digits)


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
    raw_id = paper.get("id")
    if not raw_id:
        raise ListingError(source, f"{where}: the paper has no id")
    if not isinstance(raw_id, str) or len(raw_id) > MAX_ID_CHARS:
        shown = excerpt(raw_id) if isinstance(raw_id, str) else type(raw_id).__name__
        raise ListingError(source, f"{where}: the paper id is not an id ({shown})")
    paper_id = raw_id.strip()
    where = f"{where} ({excerpt(paper_id)})"
    title = item.get("title") or paper.get("title")
    if not isinstance(title, str):
        raise ListingError(source, f"{where}: no title")
    summary = paper.get("summary") or item.get("summary") or ""
    if not isinstance(summary, str):
        raise ListingError(source, f"{where}: the summary is not text")
    listed_authors = paper.get("authors") or []
    if not isinstance(listed_authors, list):
        raise ListingError(source, f"{where}: 'authors' is not a list")
    authors = [
        a["name"] for a in listed_authors if isinstance(a, dict) and isinstance(a.get("name"), str)
    ]
    return make_paper(
        source,
        where,
        title=title,
        abstract=summary,
        rank=rank,
        arxiv_id=normalise_arxiv_id(paper_id),
        url=_page(paper_id),
        authors=authors,
        published_at=_timestamp(paper.get("publishedAt")),
        meta={
            "upvotes": _count(paper.get("upvotes")),
            "comments": _count(item.get("numComments")),
            "github": http_url(paper.get("githubRepo") or item.get("githubRepo")),
            "github_stars": _count(paper.get("githubStars")),
            "ai_summary": _text(
                paper.get("ai_summary") or item.get("ai_summary"), MAX_SUMMARY_CHARS
            ),
            "project_page": http_url(paper.get("projectPage")),
            "hf_url": _page(paper_id),
            "listed_at": _text(
                item.get("publishedAt") or paper.get("submittedOnDailyAt"), MAX_ID_CHARS
            ),
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
                f"article {len(papers) + 1} ({excerpt(paper_id)})",
                title=link.text_content(),
                abstract=abstract,
                rank=len(papers) + 1,
                arxiv_id=normalise_arxiv_id(paper_id),
                url=_page(paper_id),
            )
        )
    return unique_by_key(papers)


def _page(paper_id: str) -> str:
    """Return the paper's page on Hugging Face, its id percent-encoded as a path segment."""
    return f"{HF}/papers/{quote(paper_id, safe='')}"


def _timestamp(value: Any) -> datetime | None:
    """Return an ISO-8601 timestamp ('2024-09-17T11:03:46.000Z') as an aware datetime."""
    if not isinstance(value, str):
        return None
    try:
        return utc_moment(datetime.fromisoformat(value))
    except ValueError:
        return None


def _count(value: Any) -> int | None:
    """Return a count the API may give as a float (the OpenAPI spec says number), if plausible.

    Infinity, NaN and 1e999 are no counts, and PostgreSQL's JSON cannot hold them.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value) if value >= 0 else None


def _text(value: Any, limit: int) -> str | None:
    """Return an extra shown with a paper (a summary, a link) as one line, if it is text."""
    if not isinstance(value, str):
        return None
    text = clean_text(value)
    return text if 0 < len(text) <= limit else None

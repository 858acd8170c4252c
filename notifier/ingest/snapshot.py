"""Parse the text snapshots of trending-paper pages: a header, then title / abstract lines.

Two header variants are known (see tests/data/): one with "new", "Subscribe", a
"byAK ..." line and an optional date line, each separated by blank lines; and
one without a date, no blank lines, and the first title glued to "Subscribe".
"""

from __future__ import annotations

import re

from notifier.errors import ListingError
from notifier.ingest.common import listing_label
from notifier.models import Listing, PaperData
from notifier.papers import clean_text, paper_key

MAX_TITLE_CHARS = 300
MIN_ABSTRACT_CHARS = 100
MAX_LINE_CHARS = 20_000

_HEADER_LINES = (
    re.compile(r"new", re.IGNORECASE),
    re.compile(r"get trending papers in your email inbox( once a day)?!?", re.IGNORECASE),
    re.compile(r"subscribe", re.IGNORECASE),
    re.compile(r"by ?ak and the research community", re.IGNORECASE),
)
_DATE_LINE = re.compile(
    r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]* \d{1,2}(, \d{4})?", re.IGNORECASE
)
_GLUED_SUBSCRIBE = "Subscribe"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def parse_snapshot(data: bytes, source: str) -> Listing:
    """Parse snapshot bytes into a Listing, or raise ListingError naming the line at fault."""
    lines = _decode_lines(data, source)
    body, label = _skip_header(lines)
    if not body:
        raise ListingError(source, "empty listing: no papers found")
    papers: dict[str, PaperData] = {}
    for i in range(0, len(body), 2):
        title_no, title = body[i]
        if len(title) > MAX_TITLE_CHARS:
            raise ListingError(
                source,
                f"expected a title but found a {len(title):,}-character line "
                "(an abstract without a title?)",
                title_no,
            )
        if i + 1 == len(body):
            raise ListingError(
                source, f"title {_quote(title)} has no abstract (file ends)", title_no
            )
        abstract_no, abstract = body[i + 1]
        if len(abstract) < MIN_ABSTRACT_CHARS:
            raise ListingError(
                source,
                f"title {_quote(title)} has no abstract "
                f"(line {abstract_no} is too short to be one: is it the next title?)",
                title_no,
            )
        clean_title, clean_abstract = clean_text(title), clean_text(abstract)
        if not clean_title:
            raise ListingError(source, "title is empty after removing control characters", title_no)
        key = paper_key(clean_title)
        # A paper listed twice keeps its first (best) rank.
        papers.setdefault(key, PaperData(key, clean_title, clean_abstract, rank=len(papers) + 1))
    return Listing(source=source, papers=tuple(papers.values()), label=listing_label(label))


def _decode_lines(data: bytes, source: str) -> list[tuple[int, str]]:
    """Return (line number, text) for every non-blank line, or refuse binary or oversized input."""
    if not data.strip():
        raise ListingError(source, "empty listing: the file holds no text")
    if (nul := data.find(b"\x00")) >= 0:
        raise ListingError(
            source, "binary data (NUL byte), not a text listing", _line_of(data, nul)
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ListingError(
            source, "not UTF-8 text (binary or wrongly encoded data)", _line_of(data, e.start)
        ) from None
    numbered = []
    # Only CR, LF and CRLF end a line: str.splitlines() would also split on
    # \x0b, \x0c, \x1c-\x1e, \x85 and U+2028, which are junk inside a title
    # (removed by clean_text), not line breaks, and would shift line numbers.
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        if len(line) > MAX_LINE_CHARS:
            raise ListingError(
                source, f"line is {len(line):,} characters long (limit {MAX_LINE_CHARS:,})", number
            )
        if line.strip():
            numbered.append((number, line.strip()))
    return numbered


def _skip_header(lines: list[tuple[int, str]]) -> tuple[list[tuple[int, str]], str | None]:
    """Return the body lines after the page header, and the listing's date label if it has one."""
    label = None
    for index, (number, line) in enumerate(lines):
        if any(p.fullmatch(line) for p in _HEADER_LINES):
            continue
        if _DATE_LINE.fullmatch(line):
            label = line
            continue
        if line.startswith(_GLUED_SUBSCRIBE) and index > 0:
            # The page text ran "Subscribe" into the first title.
            return [(number, line[len(_GLUED_SUBSCRIBE) :].strip()), *lines[index + 1 :]], label
        return lines[index:], label
    return [], label


def _line_of(data: bytes, offset: int) -> int:
    """Return the 1-based line number of a byte offset."""
    return data.count(b"\n", 0, offset) + 1


def _quote(title: str) -> str:
    """Return a title short enough to quote in an error line."""
    return repr(title if len(title) <= 60 else title[:57] + "...")

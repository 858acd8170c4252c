"""Reading listings: one pure parser per format, and the file side of getting bytes.

Every parser takes (bytes, source name, content type) and returns a Listing or
raises ListingError naming the source and what was wrong, so each is tested
without a network. HTTP lives in fetch.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from notifier.errors import ListingError
from notifier.models import Listing

Parser = Callable[[bytes, str, str | None], Listing]


# Each parser's module is imported when a listing of its kind is parsed, so the
# commands that parse nothing (`notifier --help`, `status`) do not load them all.
def _snapshot(data: bytes, source: str, _type: str | None) -> Listing:
    from notifier.ingest.snapshot import parse_snapshot

    return parse_snapshot(data, source)


def _hf_api(data: bytes, source: str, content_type: str | None) -> Listing:
    from notifier.ingest.hf import parse_hf_api

    return parse_hf_api(data, source, content_type)


def _hf_page(data: bytes, source: str, content_type: str | None) -> Listing:
    from notifier.ingest.hf import parse_hf_page

    return parse_hf_page(data, source, content_type)


def _arxiv_api(data: bytes, source: str, content_type: str | None) -> Listing:
    from notifier.ingest.arxiv import parse_arxiv_api

    return parse_arxiv_api(data, source, content_type)


def _arxiv_rss(data: bytes, source: str, content_type: str | None) -> Listing:
    from notifier.ingest.arxiv import parse_arxiv_listing

    return parse_arxiv_listing(data, source, content_type)


def _feed(data: bytes, source: str, content_type: str | None) -> Listing:
    from notifier.ingest.feed import parse_feed

    return parse_feed(data, source, content_type)


PARSERS: dict[str, Parser] = {
    "snapshot": _snapshot,
    "hf-api": _hf_api,
    "hf-page": _hf_page,
    "arxiv-api": _arxiv_api,
    "arxiv-rss": _arxiv_rss,
    "feed": _feed,
}
KINDS = tuple(PARSERS)
LISTING_SUFFIXES = (".txt",)


def guess_kind(location: str) -> str:
    """Return the kind of listing a URL or path most likely holds, or raise ListingError."""
    lower = location.lower()
    path = lower.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    if not lower.startswith(("http://", "https://")):
        return "snapshot"
    rules = (
        ("huggingface.co/api/daily_papers", "hf-api"),
        ("huggingface.co/papers", "hf-page"),
        ("arxiv.org/api/", "arxiv-api"),
        ("rss.arxiv.org/", "arxiv-rss"),
        ("arxiv.org/rss/", "arxiv-rss"),
    )
    for fragment, kind in rules:
        if fragment in lower:
            return kind
    if path.endswith((".rss", ".atom", ".xml", "/feed", "/rss", "/atom")):
        return "feed"
    if path.endswith(".txt"):
        return "snapshot"
    raise ListingError(
        location, f"cannot tell what kind of listing this URL is; pass --kind ({', '.join(KINDS)})"
    )


def parse_listing(kind: str, data: bytes, source: str, content_type: str | None) -> Listing:
    """Parse bytes with the parser of kind."""
    return PARSERS[kind](data, source, content_type)


def expand_paths(paths: list[str]) -> list[str]:
    """Return the listing files named by paths, expanding directories in name order."""
    found: list[str] = []
    for raw in paths:
        path = Path(raw)
        if raw != "-" and not raw.startswith(("http://", "https://")) and path.is_dir():
            found.extend(
                str(p)
                for p in sorted(path.iterdir())
                if p.suffix in LISTING_SUFFIXES and p.is_file()
            )
        else:
            found.append(raw)
    return found


def read_file(raw: str, max_bytes: int) -> bytes:
    """Return the bytes of a file (or stdin for -), or raise ListingError naming it.

    At most max_bytes + 1 bytes are read, so a huge file, a device or an endless
    pipe is refused without being held in memory.
    """
    name = "stdin" if raw == "-" else raw
    try:
        if raw == "-":
            data = sys.stdin.buffer.read(max_bytes + 1)
        else:
            with Path(raw).open("rb") as file:
                data = file.read(max_bytes + 1)
    except OSError as e:
        raise ListingError(name, f"cannot read the file: {e.strerror or e}") from None
    if len(data) > max_bytes:
        raise ListingError(
            name,
            f"larger than max_listing_bytes ({max_bytes:,} bytes); refused "
            "(raise NOTIFIER_MAX_LISTING_BYTES to read it)",
        )
    return data

"""Reading listings: bytes from files or stdin, parsed by pure per-format parsers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from notifier.errors import ListingError

LISTING_SUFFIXES = (".txt",)


def expand_paths(paths: list[str]) -> list[str]:
    """Return the listing files named by paths, expanding directories in name order."""
    found: list[str] = []
    for raw in paths:
        path = Path(raw)
        if raw != "-" and path.is_dir():
            found.extend(
                str(p)
                for p in sorted(path.iterdir())
                if p.suffix in LISTING_SUFFIXES and p.is_file()
            )
        else:
            found.append(raw)
    return found


def read_listings(paths: list[str]) -> Iterator[tuple[str, bytes | ListingError]]:
    """Yield (source name, bytes) per listing, or the error that kept it from being read."""
    for raw in paths:
        if raw == "-":
            yield "stdin", sys.stdin.buffer.read()
            continue
        try:
            yield raw, Path(raw).read_bytes()
        except OSError as e:
            yield raw, ListingError(raw, f"cannot read the file: {e.strerror or e}")

"""Read a reference library export (BibTeX, RIS, CSL-JSON) into titles and abstracts. Pure.

Zotero, Mendeley and Google Scholar all export these formats; an import teaches
an interest with its papers (notifier/feedback.py). A file that does not parse
whole is refused whole, so nothing is half-imported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import bibtexparser
import orjson
import rispy
from bibtexparser.middlewares import LatexDecodingMiddleware

from notifier.errors import LibraryError
from notifier.papers import clean_text, normalise_title

MAX_BYTES = 10 * 1024 * 1024
MAX_ENTRIES = 2_000
MAX_TITLE = 500
MAX_ABSTRACT = 5_000
_RIS = re.compile(r"^TY  - ", re.MULTILINE)
_BIBTEX = re.compile(r"@\w+\s*[{(]")
_BRACES = re.compile(r"[{}]")
_FORMATS = "a BibTeX, RIS or CSL-JSON export"


@dataclass(frozen=True, slots=True)
class LibraryEntry:
    """One paper of a library export: its title and abstract (may be "")."""

    title: str
    abstract: str


def read_library(data: bytes, name: str) -> tuple[LibraryEntry, ...]:
    """Return the entries of a BibTeX, RIS or CSL-JSON export, or raise LibraryError."""
    where = f"library '{name}'"
    if len(data) > MAX_BYTES:
        raise LibraryError(f"{where}: over 10 MiB; split the export into smaller files")
    if not data.strip():
        raise LibraryError(f"{where}: empty file; nothing to import")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if "\x00" in text:
        raise LibraryError(f"{where}: not {_FORMATS}; export the collection in one of these")
    kind = _kind(name, text)
    if kind == "json":
        raw = _from_csl_json(text, where)
    elif kind == "ris":
        raw = _from_ris(text, where)
    elif kind == "bibtex":
        raw = _from_bibtex(text, where)
    else:
        raise LibraryError(
            f"{where}: not {_FORMATS}; export the collection from Zotero, Mendeley or "
            "Google Scholar in one of these formats"
        )
    entries = _distinct(raw)
    if not entries:
        raise LibraryError(f"{where}: no entry has a title; nothing to import")
    if len(entries) > MAX_ENTRIES:
        raise LibraryError(
            f"{where}: has {len(entries):,} entries; at most {MAX_ENTRIES:,} can be imported "
            "at once: split the file"
        )
    return entries


def _kind(name: str, text: str) -> str | None:
    """Return the format by the file's extension, else by its content."""
    suffix = name.lower().rpartition(".")[2] if "." in name else ""
    if suffix in ("bib", "bibtex"):
        return "bibtex"
    if suffix == "ris":
        return "ris"
    if suffix == "json":
        return "json"
    head = text.lstrip()[:1]
    if head in ("[", "{"):
        return "json"
    if _RIS.search(text):
        return "ris"
    if _BIBTEX.search(text):
        return "bibtex"
    return None


def _from_csl_json(text: str, where: str) -> list[tuple[Any, Any]]:
    """Return (title, abstract) of each CSL-JSON item: a list, one item, or {"items": [...]}."""
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise LibraryError(f"{where}: not valid JSON ({e}); export it again as CSL JSON") from None
    if isinstance(parsed, Mapping):
        parsed = parsed.get("items", [parsed])
    if not isinstance(parsed, list):
        raise LibraryError(f"{where}: CSL-JSON must be a list of items; export it again")
    pairs = []
    for number, item in enumerate(parsed, 1):
        if not isinstance(item, Mapping):
            raise LibraryError(f"{where}: item {number} is not a CSL-JSON object")
        pairs.append((item.get("title"), item.get("abstract")))
    return pairs


def _from_ris(text: str, where: str) -> list[tuple[Any, Any]]:
    """Return (title, abstract) of each RIS record."""
    try:
        records = rispy.loads(text.replace("\r\n", "\n"))
    except Exception as e:  # rispy raises plain errors of several kinds on bad records
        raise LibraryError(f"{where}: could not read it as RIS ({_one_line(e)})") from None
    return [
        (r.get("title") or r.get("primary_title"), r.get("abstract") or r.get("notes_abstract"))
        for r in records
    ]


def _from_bibtex(text: str, where: str) -> list[tuple[Any, Any]]:
    """Return (title, abstract) of each BibTeX entry; any block that fails refuses the file."""
    try:
        library = bibtexparser.parse_string(  # type: ignore[attr-defined]
            text, append_middleware=[LatexDecodingMiddleware()]
        )
    except Exception as e:  # the parser's own errors are of several kinds
        raise LibraryError(f"{where}: could not read it as BibTeX ({_one_line(e)})") from None
    if library.failed_blocks:
        failed = library.failed_blocks[0]
        line = getattr(failed, "start_line", None)
        at = f" at line {line + 1}" if isinstance(line, int) else ""
        raise LibraryError(
            f"{where}: a BibTeX entry{at} is not valid (an unclosed brace?); fix it and try again"
        )
    pairs = []
    for entry in library.entries:
        fields = entry.fields_dict
        title = fields["title"].value if "title" in fields else None
        abstract = fields["abstract"].value if "abstract" in fields else None
        pairs.append((title, abstract))
    return pairs


def _distinct(pairs: Iterable[tuple[Any, Any]]) -> tuple[LibraryEntry, ...]:
    """Return the entries with a title, cleaned, each title once."""
    seen: set[str] = set()
    entries = []
    for title, abstract in pairs:
        if not isinstance(title, str):
            continue
        clean = clean_text(_BRACES.sub("", title))[:MAX_TITLE]
        key = normalise_title(clean)
        if not key or key in seen:
            continue
        seen.add(key)
        text = (
            clean_text(_BRACES.sub("", abstract))[:MAX_ABSTRACT]
            if isinstance(abstract, str)
            else ""
        )
        entries.append(LibraryEntry(clean, text))
    return tuple(entries)


def _one_line(error: BaseException) -> str:
    """Return an error's message on one line."""
    return " ".join(str(error).split())[:200] or type(error).__name__

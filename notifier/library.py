"""Reference-library exports read into the titles and abstracts of their papers. Pure.

What Zotero, Mendeley and Google Scholar write: BibTeX (parsed by bibtexparser, its
LaTeX decoded by pylatexenc through bibtexparser's middleware), RIS (rispy) and
CSL-JSON (orjson). The imported papers teach an interest, so a file is taken whole
or refused whole: every refusal is one LibraryError line that names the file and
says what to do, whatever the bytes were.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

import orjson
import rispy
from bibtexparser.entrypoint import parse_string
from bibtexparser.exceptions import BlockAbortedException
from bibtexparser.library import Library
from bibtexparser.middlewares import LatexDecodingMiddleware
from bibtexparser.model import (
    Block,
    DuplicateBlockKeyBlock,
    DuplicateFieldKeyBlock,
    Entry,
    Field,
    MiddlewareErrorBlock,
    ParsingFailedBlock,
)

from notifier.errors import LibraryError
from notifier.papers import clean_text, normalise_title, strip_markup

MAX_BYTES = 10 * 1024 * 1024
MAX_ENTRIES = 2_000
MAX_TITLE_CHARS = 500
MAX_ABSTRACT_CHARS = 5_000
# LaTeX decoding costs about 6 µs a character and more on long words, so only this
# much of a field is decoded: twice its cap, as markup shrinks when decoded.
_RAW_TITLE_CHARS = 2 * MAX_TITLE_CHARS
_RAW_ABSTRACT_CHARS = 2 * MAX_ABSTRACT_CHARS
_KEYS = ("title", "abstract")
_RAW_CHARS = (_RAW_TITLE_CHARS, _RAW_ABSTRACT_CHARS)

Format = Literal["BibTeX", "RIS", "CSL-JSON"]
_BY_SUFFIX: dict[str, Format] = {
    ".bib": "BibTeX",
    ".bibtex": "BibTeX",
    ".ris": "RIS",
    ".json": "CSL-JSON",
}
_NOT_AN_EXPORT = (
    "not a BibTeX, RIS or CSL-JSON export; export the collection from Zotero, "
    "Mendeley or Google Scholar in one of these formats"
)
_RIS_RECORD = re.compile(r"^TY  -", re.MULTILINE)
_BIBTEX_ENTRY = re.compile(r"@[A-Za-z]+\s*[{(]")
_BIBTEX_RECORD = re.compile(r"@(?!(?:string|comment|preamble)\b)[A-Za-z]+\s*[{(]", re.IGNORECASE)
# A file of more records than this is refused before they are parsed one by one
# (300,000 tiny BibTeX entries take bibtexparser 12 s); below it there is room
# for untitled and repeated entries, which are not imported.
_MAX_RECORDS = 2 * MAX_ENTRIES
# Controls that no text export holds (tab, line breaks and form feed aside).
_BINARY = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Only a field with one of these changes when decoded: the others skip pylatexenc,
# which keeps a 2,000-paper export with plain abstracts fast.
_LATEX = re.compile(r"[\\{}$~]|--|``|''")
# In a field value % and & are the characters themselves (exporters from other
# tools write them bare), not a LaTeX comment that would drop the rest of the line
# or an alignment tab that would drop the character.
_BARE_SPECIAL = re.compile(r"(?<!\\)([%&])")
# Escaped specials, which are most of the LaTeX in an exported abstract ("12\%",
# "R\&D"): a field with no other markup is unescaped here, as pylatexenc would,
# at a thousandth of its cost (2,000 such abstracts take it 15 s).
_SIMPLE_ESCAPE = re.compile(r"\\([%&#_])")
# Its warnings repeat what the LibraryError says, and the CLI's stderr is one line.
logging.getLogger("bibtexparser").setLevel(logging.CRITICAL)


@dataclass(frozen=True, slots=True)
class LibraryEntry:
    """One paper of a library export: its title and abstract (may be "")."""

    title: str
    abstract: str


def read_library(data: bytes, name: str) -> tuple[LibraryEntry, ...]:
    """Return the entries of a BibTeX, RIS or CSL-JSON export, or raise LibraryError."""
    where = f"library '{clean_text(name)[:200]}'"
    if len(data) > MAX_BYTES:
        raise LibraryError(
            f"{where}: the file is over 10 MiB; split it and import the parts one at a time"
        )
    text = _decode(data)
    if not text.strip():
        raise LibraryError(f"{where}: empty file; nothing to import")
    binary = len(_BINARY.findall(text))
    if "\x00" in text or binary * 100 > len(text):
        raise LibraryError(f"{where}: {_NOT_AN_EXPORT}")
    form = _format(text, name)
    if form is None:
        raise LibraryError(f"{where}: {_NOT_AN_EXPORT}")
    if form == "BibTeX":
        fields = _read_bibtex(text, where)
    elif form == "RIS":
        fields = _read_ris(text, where)
    else:
        fields = _read_csl_json(text, where)
    return _entries(fields, where)


def _decode(data: bytes) -> str:
    """Return the text of an export: UTF-8 (or UTF-16 with its mark), else Windows-1252."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass  # not UTF-16 after all: read as one of the 8-bit encodings below
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # What an older Windows tool writes; a superset of latin-1's printable part.
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _format(text: str, name: str) -> Format | None:
    """Return the format the content shows, else the one the file name's suffix hints at."""
    if text.lstrip()[:1] in ("[", "{"):
        return "CSL-JSON"
    if _RIS_RECORD.search(text):
        return "RIS"
    if _BIBTEX_ENTRY.search(text):
        return "BibTeX"
    # The content shows none of them: the suffix picks the parser whose message
    # says best what is wrong ("not valid JSON at line 3").
    suffix = PurePosixPath(name.replace("\\", "/")).suffix.lower()
    return _BY_SUFFIX.get(suffix)


# -- BibTeX ---------------------------------------------------------------------------


def _read_bibtex(text: str, where: str) -> list[tuple[str, str]]:
    """Return the LaTeX-decoded (title, abstract) of each BibTeX entry, refusing the
    file if any block cannot be read."""
    records = len(_BIBTEX_RECORD.findall(text))
    if records > _MAX_RECORDS:
        raise _too_many(where, records)
    try:
        library = parse_string(text)
    except Exception as e:  # a parser bug on odd input is still a file we cannot read
        raise LibraryError(
            f"{where}: could not read it as BibTeX ({_reason(e)}); export the collection again"
        ) from None
    entries: list[Entry] = []
    for block in library.blocks:
        if isinstance(block, DuplicateBlockKeyBlock) and isinstance(
            block.ignore_error_block, Entry
        ):
            # Two entries under one key (Google Scholar snippets pasted together) are
            # both readable; a repeated paper is dropped by its title later.
            entries.append(block.ignore_error_block)
        elif isinstance(block, ParsingFailedBlock):
            raise _invalid_entry(where, block)
        elif isinstance(block, Entry):
            entries.append(block)
    if not entries:
        raise LibraryError(f"{where}: {_NOT_AN_EXPORT}")
    raw = [(_field(entry, "title"), _field(entry, "abstract")) for entry in entries]
    distinct = {normalise_title(title) for title, _ in raw} - {""}
    if len(distinct) > MAX_ENTRIES:
        # Refused before decoding: decoding is what takes time on a large file.
        raise _too_many(where, len(distinct))
    return _decode_latex(raw, entries, where)


def _field(entry: Entry, key: str) -> str:
    """Return an entry's field as text, whatever the case of its key ("" if absent)."""
    # Some exporters write Title or TITLE; the first of them counts.
    for field in entry.fields:
        if field.key.lower() == key and isinstance(field.value, str):
            return field.value
    return ""


def _decode_latex(
    raw: list[tuple[str, str]], entries: list[Entry], where: str
) -> list[tuple[str, str]]:
    """Return the titles and abstracts with their LaTeX decoded to text."""
    decoded: list[list[str]] = []
    # Only the fields that need pylatexenc go through it, in small entries of their
    # own: the middleware would otherwise decode every field (authors, files) too.
    slim: list[Block] = []
    for index, values in enumerate(raw):
        fields: list[Field] = []
        texts: list[str] = []
        for key, value, cap in zip(_KEYS, values, _RAW_CHARS, strict=True):
            text = value[:cap]
            unescaped = _SIMPLE_ESCAPE.sub(r"\1", text)
            if _LATEX.search(unescaped):
                fields.append(Field(key, _BARE_SPECIAL.sub(r"\\\1", text)))
            texts.append(unescaped)
        decoded.append(texts)
        if fields:
            slim.append(Entry("article", str(index), fields, start_line=entries[index].start_line))
    if slim:
        library = LatexDecodingMiddleware().transform(Library(slim))
        for block in library.blocks:
            if isinstance(block, ParsingFailedBlock):
                raise _invalid_entry(where, block)
            if isinstance(block, Entry):
                for field in block.fields:
                    decoded[int(block.key)][_KEYS.index(field.key)] = field.value
    return [(title, abstract) for title, abstract in decoded]


def _invalid_entry(where: str, block: ParsingFailedBlock) -> LibraryError:
    """Return the error refusing a file for one BibTeX block that could not be read."""
    error = block.error
    if isinstance(block, DuplicateFieldKeyBlock):
        keys = clean_text(", ".join(sorted(block.duplicate_keys)))[:200]
        why = f"it has more than one {keys} field"
    elif isinstance(block, MiddlewareErrorBlock):
        why = "its LaTeX could not be decoded"
    elif isinstance(error, BlockAbortedException):
        reason = error.abort_reason
        if "end of file" in reason or "block start" in reason:
            why = "an unclosed brace?"
        else:
            why = clean_text(reason)[:200].rstrip(".")
    else:
        why = _reason(error)
    at = f" at line {block.start_line + 1}" if block.start_line is not None else ""
    return LibraryError(f"{where}: a BibTeX entry{at} is not valid ({why}); fix it and try again")


# -- RIS ------------------------------------------------------------------------------


def _read_ris(text: str, where: str) -> list[tuple[str, str]]:
    """Return the (title, abstract) of each RIS record, refusing the file if one is
    not closed by its ER line."""
    records: list[tuple[int, list[str]]] = []
    current: list[str] | None = None
    start = 0
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        tag = line[:2] if line[2:5] == "  -" else None
        if tag == "TY":
            if current is not None:
                # rispy would merge the two records into one, silently.
                raise _unreadable_record(
                    where, len(records) + 1, start, f"no ER line ends it before line {number}"
                )
            current, start = [line], number
        elif current is not None:
            current.append(line)
            if tag == "ER":
                records.append((start, current))
                current = None
    if current is not None:
        # rispy would drop an unclosed last record, silently.
        raise _unreadable_record(where, len(records) + 1, start, "no ER line ends it")
    if not records:
        raise LibraryError(f"{where}: {_NOT_AN_EXPORT}")
    if len(records) > _MAX_RECORDS:
        raise _too_many(where, len(records))
    fields: list[tuple[str, str]] = []
    for number, (start, lines) in enumerate(records, start=1):
        try:
            [record] = rispy.loads("\n".join(lines))
        except Exception as e:  # whatever rispy trips on, the record is unreadable
            raise _unreadable_record(where, number, start, _reason(e)) from None
        title = _ris_text(record.get("title")) or _ris_text(record.get("primary_title"))
        abstract = _ris_text(record.get("abstract")) or _ris_text(record.get("notes_abstract"))
        fields.append((title, abstract))
    return fields


def _ris_text(value: object) -> str:
    """Return a RIS value as text: a repeated tag's values joined, anything else ""."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(v for v in value if isinstance(v, str))
    return ""


def _unreadable_record(where: str, number: int, line: int, why: str) -> LibraryError:
    """Return the error refusing a file for one RIS record that could not be read."""
    return LibraryError(
        f"{where}: could not read entry {number} at line {line} ({why}); fix it and try again"
    )


# -- CSL-JSON -------------------------------------------------------------------------


def _read_csl_json(text: str, where: str) -> list[tuple[str, str]]:
    """Return the (title, abstract) of each CSL-JSON item."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise LibraryError(
            f"{where}: not valid JSON at line {e.lineno} column {e.colno} "
            f"({clean_text(e.msg)[:200]}); export the collection again as CSL JSON"
        ) from None
    # Zotero and Mendeley write an array; some exporters one item, or {"items": [...]}.
    if isinstance(document, dict) and isinstance(document.get("items"), list):
        document = document["items"]
    elif isinstance(document, dict) and "title" in document:
        document = [document]
    if not isinstance(document, list):
        raise LibraryError(
            f"{where}: a CSL-JSON export must be a list of items, not {_json_kind(document)}; "
            "export the collection again as CSL JSON"
        )
    fields: list[tuple[str, str]] = []
    for number, item in enumerate(document, start=1):
        if not isinstance(item, dict):
            raise LibraryError(
                f"{where}: item {number} is not a CSL-JSON object but {_json_kind(item)}; "
                "export the collection again as CSL JSON"
            )
        # Zotero keeps rich text (<i>, <sub>, <span class="nocase">) in CSL-JSON.
        title, abstract = item.get("title"), item.get("abstract")
        fields.append(
            (
                strip_markup(title) if isinstance(title, str) else "",
                strip_markup(abstract) if isinstance(abstract, str) else "",
            )
        )
    return fields


def _json_kind(value: object) -> str:
    """Return what a JSON value is, as a message names it."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true or false"
    if value is None:
        return "null"
    return "a number"


# -- All formats ----------------------------------------------------------------------


def _entries(fields: list[tuple[str, str]], where: str) -> tuple[LibraryEntry, ...]:
    """Return the titled entries, each paper once, or refuse too many or none."""
    entries: list[LibraryEntry] = []
    seen: set[str] = set()
    for raw_title, abstract in fields:
        title = clean_text(raw_title)[:MAX_TITLE_CHARS].rstrip()
        key = normalise_title(title)
        if not key or key in seen:
            continue
        seen.add(key)
        entries.append(LibraryEntry(title, clean_text(abstract)[:MAX_ABSTRACT_CHARS].rstrip()))
    if not entries:
        raise LibraryError(f"{where}: no entry has a title; nothing to import")
    if len(entries) > MAX_ENTRIES:
        raise _too_many(where, len(entries))
    return tuple(entries)


def _too_many(where: str, count: int) -> LibraryError:
    """Return the error refusing a file of more entries than one import takes."""
    return LibraryError(
        f"{where}: has {count:,} entries; at most {MAX_ENTRIES:,} can be imported at once: "
        "split the file"
    )


def _reason(error: BaseException) -> str:
    """Return an exception as a short phrase for the one line of a LibraryError."""
    text = clean_text(str(error))[:200]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__

"""A digest's or a feed's papers as BibTeX and RIS, for reference managers. Pure.

Written with the libraries that read them (bibtexparser 2, rispy), from the
identities the project keeps: the arXiv id when there is one (an `eprint`
with `archivePrefix = arXiv`, as arXiv's own BibTeX gives), else the paper's
link. Text is LaTeX-encoded for BibTeX (`&`, `%`, `ö`...) by bibtexparser's
own middleware.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import bibtexparser
import rispy
from bibtexparser.library import Library
from bibtexparser.middlewares import LatexEncodingMiddleware
from bibtexparser.model import Entry, Field

from notifier.models import DigestPaper, Paper
from notifier.papers import clean_text, http_url, normalise_arxiv_id

_WORD = re.compile(r"[a-z0-9]+")
# Words a citation key skips, as Google Scholar's and Zotero's keys do.
_SKIPPED = frozenset({"a", "an", "the", "on", "of", "for", "and", "in", "to", "with", "from"})
# New-style arXiv ids start with the year and month of submission (YYMM).
_NEW_STYLE = re.compile(r"^(\d{2})(\d{2})\.\d{4,5}$")


@dataclass(frozen=True, slots=True)
class Citation:
    """What a reference manager needs of a paper."""

    title: str
    authors: tuple[str, ...]
    year: int | None
    url: str | None
    arxiv_id: str | None = None
    abstract: str = ""


def paper_citation(paper: Paper) -> Citation:
    """Return the citation of a stored paper (feeds): its year from its id, else first sight."""
    return Citation(
        title=paper.title,
        authors=paper.authors,
        year=year_of(paper.arxiv_id, paper.first_seen_at.year),
        url=http_url(paper.url),
        arxiv_id=normalise_arxiv_id(paper.arxiv_id) if paper.arxiv_id else None,
        abstract=paper.abstract,
    )


def digest_citation(paper: DigestPaper, composed: datetime) -> Citation:
    """Return the citation of a paper as a digest froze it (its year from its id, or composed)."""
    return Citation(
        title=paper.title,
        authors=paper.authors,
        year=year_of(paper.arxiv_id, composed.year),
        url=http_url(paper.url),
        arxiv_id=paper.arxiv_id,
        abstract=paper.abstract,
    )


def year_of(arxiv_id: str | None, fallback: int | None) -> int | None:
    """Return a paper's year: from a new-style arXiv id (2401.01234 is 2024), else fallback."""
    bare = normalise_arxiv_id(arxiv_id) if arxiv_id else None
    if bare is not None and (m := _NEW_STYLE.match(bare)):
        return 2000 + int(m.group(1))
    return fallback


def bibtex(citations: Sequence[Citation]) -> str:
    """Return the citations as a BibTeX file, one @misc entry each, with distinct keys."""
    # Text is LaTeX-encoded; the url and the eprint go as they are (BibTeX styles
    # print them verbatim), so they join the entries after the encoding.
    text, verbatim = Library(), []
    for citation, key in zip(citations, _keys(citations), strict=True):
        fields = [Field("title", clean_text(citation.title))]
        if citation.authors:
            fields.append(Field("author", " and ".join(clean_text(a) for a in citation.authors)))
        if citation.year is not None:
            fields.append(Field("year", str(citation.year)))
        if citation.abstract:
            fields.append(Field("abstract", clean_text(citation.abstract)))
        text.add(Entry("misc", key, fields))
        raw = []
        if citation.arxiv_id:
            raw += [Field("eprint", citation.arxiv_id), Field("archivePrefix", "arXiv")]
        if citation.url:
            # Braces would end the field early; percent-encoded they mean the same URL.
            url = citation.url.replace("{", "%7B").replace("}", "%7D")
            raw.append(Field("url", url))
        verbatim.append(raw)
    encoded = LatexEncodingMiddleware(enclose_urls=False).transform(text)
    for entry, raw in zip(encoded.entries, verbatim, strict=True):
        for field in raw:
            entry.set_field(field)
    written: str = bibtexparser.write_string(encoded)  # type: ignore[attr-defined]
    return written


class _PlainRis(rispy.RisWriter):  # type: ignore[misc]
    """Write RIS as reference managers do: no numbered line before each record."""

    def set_header(self, count: int) -> str:
        """Return no header line."""
        return ""


def ris(citations: Sequence[Citation]) -> str:
    """Return the citations as an RIS file: preprints (arXiv) as ELEC with their id, else GEN."""
    records = []
    for citation in citations:
        record: dict[str, object] = {
            "type_of_reference": "ELEC" if citation.arxiv_id else "GEN",
            "title": clean_text(citation.title),
        }
        if citation.authors:
            record["authors"] = [clean_text(a) for a in citation.authors]
        if citation.year is not None:
            record["year"] = str(citation.year)
        if citation.arxiv_id:
            record["publisher"] = "arXiv"
            record["notes"] = [f"arXiv:{citation.arxiv_id}"]
        if citation.url:
            record["urls"] = [citation.url]
        if citation.abstract:
            record["abstract"] = clean_text(citation.abstract)
        records.append(record)
    written: str = rispy.dumps(records, implementation=_PlainRis)
    return written


def _keys(citations: Sequence[Citation]) -> list[str]:
    """Return a citation key per paper: first author's last name, year, first title word."""
    keys: list[str] = []
    used: dict[str, int] = {}
    for citation in citations:
        base = (
            "".join(
                _ascii_word(part)
                for part in (
                    citation.authors[0].split()[-1] if citation.authors else "paper",
                    str(citation.year or ""),
                    next(iter(_title_words(citation.title)), ""),
                )
            )
            or "paper"
        )
        seen = used.get(base, 0)
        used[base] = seen + 1
        keys.append(base if not seen else f"{base}{_suffix(seen)}")
    return keys


def _title_words(title: str) -> Iterable[str]:
    """Yield the title's words that a key may start with."""
    for word in _WORD.findall(_ascii_word(title, keep_spaces=True)):
        if word not in _SKIPPED:
            yield word


def _ascii_word(text: str, keep_spaces: bool = False) -> str:
    """Return text lower-cased with its accents dropped and anything but a-z0-9 removed."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return folded if keep_spaces else "".join(_WORD.findall(folded))


def _suffix(n: int) -> str:
    """Return the letter suffix of the n-th repeat of a key: b, c, ..., z, ba, bb, ..."""
    letters = ""  # the first repeat is "b", as BibTeX tools letter them
    while n:
        n, rest = divmod(n, 26)
        letters = "abcdefghijklmnopqrstuvwxyz"[rest] + letters
    return letters

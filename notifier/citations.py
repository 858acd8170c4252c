"""A digest's or a feed's papers as BibTeX and RIS, for reference managers. Pure.

Written with the libraries that read them (bibtexparser 2, rispy), from the
identities the project keeps: the arXiv id when there is one (an `eprint`
with `archivePrefix = arXiv`, as arXiv's own BibTeX gives), else the paper's
link. Text is LaTeX-encoded for BibTeX (`&`, `%`, `ö`...) by
pylatexenc, which bibtexparser uses as well (see _LATEX).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import rispy
from bibtexparser.entrypoint import write_string
from bibtexparser.library import Library
from bibtexparser.model import Entry, Field
from pylatexenc.latexencode import RULE_DICT, UnicodeToLatexConversionRule, UnicodeToLatexEncoder

from notifier.models import DigestPaper, Paper
from notifier.papers import clean_text, http_url, normalise_arxiv_id

_WORD = re.compile(r"[a-z0-9]+")
_MATH = re.compile(r"\$[^$]+\$")  # one inline formula, shortest first
_UNSAFE_IN_MATH = re.compile(r"[%&#]")
# Words a citation key skips, as Google Scholar's and Zotero's keys do.
_SKIPPED = frozenset({"a", "an", "the", "on", "of", "for", "and", "in", "to", "with", "from"})
# arXiv ids hold the year and month of submission: 2401.01234, hep-th/9901001.
_NEW_STYLE = re.compile(r"^(\d{2})(\d{2})\.\d{4,5}$")
_OLD_STYLE = re.compile(r"^[a-z-]+(?:\.[a-z]{2})?/(\d{2})(\d{2})\d{3}$")


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
    """Return a paper's year: from its arXiv id (2401.01234: 2024, hep-th/9901001: 1999).

    Without an arXiv id, fallback. arXiv began in 1991, so old-style years from
    91 are 19xx and the rest 20xx (old-style ids ended in 2007).
    """
    bare = normalise_arxiv_id(arxiv_id) if arxiv_id else None
    if bare is not None and (m := _NEW_STYLE.match(bare)):
        return 2000 + int(m.group(1))
    if bare is not None and (m := _OLD_STYLE.match(bare)):
        year = int(m.group(1))
        return 1900 + year if year >= 91 else 2000 + year
    return fallback


# Text for BibTeX: LaTeX for every special and accented character, each braced so
# styles that change case or abbreviate names keep it whole. A brace of the text
# becomes \textbraceleft/right: BibTeX counts braces whatever escapes them, so one
# alone would end the field. Characters LaTeX has no name for (CJK, emoji) stay
# as they are, unlogged. Math ($\alpha$) is kept as written when it is safe
# (see _latex); pylatexenc's own rule keeps everything from a title's first "$"
# to its last, "&" and "%" between them included.
_LATEX = UnicodeToLatexEncoder(
    conversion_rules=[
        UnicodeToLatexConversionRule(
            RULE_DICT, {ord("{"): r"{\textbraceleft}", ord("}"): r"{\textbraceright}"}
        ),
        "defaults",
    ],
    replacement_latex_protection="braces-all",
    unknown_char_policy="keep",
    unknown_char_warning=False,
)


def bibtex(citations: Sequence[Citation]) -> str:
    """Return the citations as a BibTeX file, one @misc entry each, with distinct keys."""
    library = Library()
    for citation, key in zip(citations, _keys(citations), strict=True):
        fields = [Field("title", _latex(citation.title))]
        if authors := _authors(citation):
            fields.append(Field("author", " and ".join(_latex(a) for a in authors)))
        if citation.year is not None:
            fields.append(Field("year", str(citation.year)))
        if citation.arxiv_id:
            fields += [Field("eprint", citation.arxiv_id), Field("archivePrefix", "arXiv")]
        if citation.url:
            # Verbatim (styles print it as it is); braces percent-encoded mean the same URL.
            fields.append(Field("url", citation.url.replace("{", "%7B").replace("}", "%7D")))
        if citation.abstract:
            fields.append(Field("abstract", _latex(citation.abstract)))
        library.add(Entry("misc", key, fields))
    written: str = write_string(library)
    return written


def _latex(text: str) -> str:
    """Return text as a BibTeX field holds it: math kept where safe, the rest encoded."""
    text = clean_text(text)
    parts: list[str] = []
    last = 0
    for found in _MATH.finditer(text):
        span = found.group(0)
        parts += [_encoded(text[last : found.start()]), span if _safe(span) else _encoded(span)]
        last = found.end()
    return "".join([*parts, _encoded(text[last:])])


def _encoded(text: str) -> str:
    """Return text LaTeX-encoded (_LATEX)."""
    encoded: str = _LATEX.unicode_to_latex(text)
    return encoded


def _safe(math: str) -> bool:
    """Tell whether a $...$ span can stand in a BibTeX field as written.

    ASCII, braces balanced, and no character that ends a field's line or breaks
    LaTeX even in math (%, &, #).
    """
    depth = 0
    for char in math:
        depth += (char == "{") - (char == "}")
        if depth < 0:
            return False
    return depth == 0 and math.isascii() and not _UNSAFE_IN_MATH.search(math)


class _PlainRis(rispy.RisWriter):  # type: ignore[misc]
    """Write RIS as reference managers do: no numbered line before each record."""

    def set_header(self, count: int) -> str:
        """Return no header line."""
        return ""


def ris(citations: Sequence[Citation]) -> str:
    """Return the citations as an RIS file.

    An arXiv paper is a JOUR whose journal is "arXiv preprint arXiv:<id>", as
    Google Scholar exports one (Zotero reads ELEC as a web page); others are GEN.
    """
    records = []
    for citation in citations:
        record: dict[str, object] = {
            "type_of_reference": "JOUR" if citation.arxiv_id else "GEN",
            "title": clean_text(citation.title),
        }
        if authors := _authors(citation):
            record["authors"] = authors
        if citation.year is not None:
            record["year"] = str(citation.year)
        if citation.arxiv_id:
            record["journal_name"] = f"arXiv preprint arXiv:{citation.arxiv_id}"
        if citation.url:
            record["urls"] = [citation.url]
        if citation.abstract:
            record["abstract"] = clean_text(citation.abstract)
        records.append(record)
    written: str = rispy.dumps(records, implementation=_PlainRis)
    return written


def _keys(citations: Sequence[Citation]) -> list[str]:
    """Return a distinct citation key per paper: first author's last name, year, title word."""
    keys: list[str] = []
    issued: set[str] = set()
    for citation in citations:
        authors = _authors(citation)
        names = authors[0].split() if authors else ["paper"]
        base = (
            "".join(
                _ascii_word(part)
                for part in (
                    names[-1],
                    str(citation.year or ""),
                    next(iter(_title_words(citation.title)), ""),
                )
            )
            or "paper"
        )
        key, repeat = base, 0
        while key in issued:  # b, c, ... as BibTeX tools letter repeats
            repeat += 1
            key = f"{base}{_suffix(repeat)}"
        issued.add(key)
        keys.append(key)
    return keys


def _authors(citation: Citation) -> list[str]:
    """Return the paper's author names, cleaned, the empty ones left out."""
    return [name for name in (clean_text(a) for a in citation.authors) if name]


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

"""Interest queries: parse them, match papers, and explain each match. Pure.

Syntax: words and "quoted phrases" must all appear (AND); `a OR b` accepts
either; `-word` or `-"a phrase"` excludes. Matching is case-insensitive on word
boundaries over title and abstract; a phrase matches only as that sequence of
words (spaces or hyphens between them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from notifier.errors import QueryError
from notifier.models import Match

TITLE_WEIGHT = 3.0
ABSTRACT_WEIGHT = 1.0
_TOKEN = re.compile(r'\s*(?:(-?)"([^"]*)("?)|(\S+))')


@dataclass(frozen=True, slots=True)
class Term:
    """One word or phrase of a query, with its compiled pattern."""

    text: str
    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: every clause must match one of its terms; no excluded term may match."""

    text: str
    clauses: tuple[tuple[Term, ...], ...]
    excluded: tuple[Term, ...]


def parse_query(text: str) -> Query:
    """Parse query text, or raise QueryError pointing at the position at fault."""
    clauses: list[list[Term]] = []
    excluded: list[Term] = []
    pending_or: int | None = None  # position of an OR still waiting for its right side
    pos = 0
    text_end = len(text.rstrip())
    while pos < text_end:
        m = _TOKEN.match(text, pos)
        assert m is not None  # the pattern accepts any non-space run
        start = m.start(2) - 1 if m.group(2) is not None else m.start(4)
        pos = m.end()
        if m.group(2) is not None:
            negate, words = bool(m.group(1)), m.group(2)
            if not m.group(3):
                raise QueryError(text, "unclosed quote", start)
            if not words.strip():
                raise QueryError(text, "empty phrase", start)
        else:
            raw = m.group(4)
            if raw == "OR":
                if not clauses or pending_or is not None:
                    raise QueryError(text, "OR needs a term on each side", start)
                pending_or = start
                continue
            negate, words = raw.startswith("-"), raw.removeprefix("-")
            if not words:
                raise QueryError(text, "'-' must be followed by a word to exclude", start)
            if '"' in words:
                raise QueryError(text, "a quote must start a phrase", start + raw.index('"'))
        term = _term(words)
        if negate:
            if pending_or is not None:
                raise QueryError(text, "an excluded term cannot be part of OR", start)
            excluded.append(term)
        elif pending_or is not None:
            clauses[-1].append(term)
            pending_or = None
        else:
            clauses.append([term])
    if pending_or is not None:
        raise QueryError(text, "OR needs a term on each side", pending_or)
    if not clauses:
        raise QueryError(text, "the query needs at least one word or phrase to look for")
    return Query(text, tuple(tuple(c) for c in clauses), tuple(excluded))


def _term(words: str) -> Term:
    """Compile a word or phrase into a case-insensitive whole-word pattern."""
    parts = words.split()
    body = r"[\s\-]+".join(re.escape(p) for p in parts)
    return Term(" ".join(parts), re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE))


def match_paper(query: Query, interest: str, title: str, abstract: str) -> Match | None:
    """Return why the paper matches the query (score, terms, reason), or None if it does not."""
    if any(t.pattern.search(title) or t.pattern.search(abstract) for t in query.excluded):
        return None
    score = 0.0
    terms: list[str] = []
    explanations: list[str] = []
    for clause in query.clauses:
        hits = [(t, _hits(t, title), _hits(t, abstract)) for t in clause]
        found = [
            (t, in_title, in_abstract)
            for t, in_title, in_abstract in hits
            if in_title or in_abstract
        ]
        if not found:
            return None
        for term, in_title, in_abstract in found:
            # Title hits weigh most; repeated abstract mentions add with diminishing returns.
            score += TITLE_WEIGHT * bool(in_title) + ABSTRACT_WEIGHT * math.log1p(in_abstract)
            terms.append(term.text)
            explanations.append(_explain(term.text, in_title, in_abstract))
    return Match(interest, round(score, 3), tuple(terms), "; ".join(explanations))


def _hits(term: Term, text: str) -> int:
    """Return how many times a term occurs in text."""
    return sum(1 for _ in term.pattern.finditer(text))


def _explain(term: str, in_title: int, in_abstract: int) -> str:
    """Return a short human reason for one matched term."""
    where = []
    if in_title:
        where.append("title")
    if in_abstract:
        where.append("abstract" if in_abstract == 1 else f"abstract ({in_abstract} times)")
    return f"“{term}” in {' and '.join(where)}"


def best_match(
    queries: Sequence[tuple[str, Query]], title: str, abstract: str
) -> tuple[Match, tuple[Match, ...]] | None:
    """Return a paper's best match over several interests and the others it also matches.

    The highest score wins; on a tie, the interest listed first.
    """
    order = {name: i for i, (name, _) in enumerate(queries)}
    matches = [
        m for name, query in queries if (m := match_paper(query, name, title, abstract)) is not None
    ]
    if not matches:
        return None
    matches.sort(key=lambda m: (-m.score, order[m.interest]))
    return matches[0], tuple(matches[1:])

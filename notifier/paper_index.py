"""The paper index: each run's candidate papers, searchable by term. Pure.

Evaluating queries paper by paper in Python does not scale, so the index is
built once per run over the candidate papers; every query is answered from
its postings and every description's terms are scored against all papers at
once (BM25F, title weighted), with the papers' embeddings kept beside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from notifier.query import FIELDS, Expr, Term
from notifier.terms import stem, words

Vector = npt.NDArray[np.float64]
# Per paper: passes the filter, fused score, lexical score, semantic score (or None).
Scored = tuple[npt.NDArray[np.bool_], Vector, Vector, Vector | None]
_FIELD_WEIGHTS = {"title": 3.0, "abstract": 1.0}
_K1, _B = 1.2, 0.75
# idf as if the run's papers sat among this many more that lack the term: a
# small pool (one listing, a quiet day) must not make every word worthless.
_IDF_PRIOR_DOCS = 50


@dataclass(frozen=True, slots=True)
class IndexedPaper:
    """What the index needs of a paper."""

    id: int
    title: str
    abstract: str
    authors: tuple[str, ...] = ()


@dataclass
class _Hits:
    """Where one term occurs: per paper, its count in title and abstract."""

    title: dict[int, int]
    abstract: dict[int, int]
    papers: frozenset[int]
    mask: npt.NDArray[np.bool_]  # papers as a boolean row, for vectorised AND / OR
    score: Vector  # BM25F contribution per paper (0 where absent)
    row: int  # this term's row in PaperIndex.scores()


class PaperScores(Protocol):
    """What scoring reads of an index: the papers, their embeddings, term hits and scores."""

    n: int
    total: int  # papers in the whole index (a head scores with the whole one's statistics)
    papers: list[IndexedPaper]
    embeddings: Any
    everything: npt.NDArray[np.bool_]

    def hits(self, term: Term) -> _Hits:
        """Return where a term occurs (positions in the whole index)."""
        ...

    def mask(self, expr: Expr) -> npt.NDArray[np.bool_]:
        """Return which papers an expression matches, as a boolean row."""
        ...

    def summed(self, terms: Sequence[Term]) -> Vector:
        """Return the summed scores of terms for every paper."""
        ...


class PaperIndex:
    """Positional postings over a run's papers, with per-term results cached."""

    def __init__(self, papers: Sequence[IndexedPaper], embeddings: Any = None) -> None:
        self.papers = list(papers)
        self.n = self.total = len(self.papers)
        self.embeddings = embeddings  # (n, dim) float32 rows, unit length, or None
        self._postings: dict[str, dict[str, dict[int, list[int]]]] = {f: {} for f in FIELDS}
        self._lengths = {f: np.zeros(self.n) for f in ("title", "abstract")}
        for i, paper in enumerate(self.papers):
            for name, text in (
                ("title", paper.title),
                ("abstract", paper.abstract),
                ("author", " ".join(paper.authors)),
            ):
                tokens = words(text)
                if name in self._lengths:
                    self._lengths[name][i] = len(tokens)
                postings = self._postings[name]
                for pos, token in enumerate(tokens):
                    postings.setdefault(token, {}).setdefault(i, []).append(pos)
        self._vocabulary = {f: sorted(p) for f, p in self._postings.items()}
        # Every form of a stem in each field: a folded term looks up all of them.
        self._forms: dict[str, dict[str, list[str]]] = {f: {} for f in FIELDS}
        for name, vocabulary in self._vocabulary.items():
            for token in vocabulary:
                self._forms[name].setdefault(stem(token), []).append(token)
        self._folded: dict[tuple[str, str], dict[int, list[int]]] = {}
        self._avg = {
            f: max(float(v.mean()), 1.0) if self.n else 1.0 for f, v in self._lengths.items()
        }
        self._cache: dict[str, _Hits] = {}
        # Row 0 is all zeros: every term no paper has shares it, so memory grows
        # with the terms the papers hold, not with how many interests name words
        # (with subscribers who each write their own, most of their terms are in
        # no paper of the day).
        self._matrix: npt.NDArray[np.float64] = np.zeros((256, self.n))
        self._rows = 1
        self.everything = np.ones(self.n, dtype=bool)
        self.nothing = np.zeros(self.n)
        self._absent = _Hits({}, {}, frozenset(), np.zeros(self.n, dtype=bool), self.nothing, 0)

    def hits(self, term: Term) -> _Hits:
        """Return where a term occurs (cached for the index's lifetime)."""
        cached = self._cache.get(term.key)
        if cached is None:
            cached = self._cache[term.key] = self._compute(term)
        return cached

    def _compute(self, term: Term) -> _Hits:
        counts = {
            name: (self._count(name, term) if term.field in (None, name) else {})
            for name in ("title", "abstract")
        }
        if term.field == "author":
            authors = self._count("author", term)
            counts = {"title": {}, "abstract": authors}  # scored like an abstract hit
        papers = frozenset(counts["title"]) | frozenset(counts["abstract"])
        if not papers:
            return self._absent
        mask = np.zeros(self.n, dtype=bool)
        mask[list(papers)] = True
        saturated = self._saturated(counts)
        df = len(papers)
        idf = math.log(1 + (self.n + _IDF_PRIOR_DOCS - df + 0.5) / (df + 0.5)) if df else 0.0
        row = self._rows
        if row == self._matrix.shape[0]:  # full: double the capacity (amortised O(1))
            grown = np.zeros((max(2 * row, 256), self.n))
            grown[:row] = self._matrix
            self._matrix = grown
        self._matrix[row] = idf * saturated
        self._rows += 1
        return _Hits(counts["title"], counts["abstract"], papers, mask, self._matrix[row], row)

    def scores(self) -> npt.NDArray[np.float64]:
        """Return the score rows of the looked-up terms found in some paper, as one matrix.

        Row 0 is the zero row that every term found in no paper shares.
        """
        return self._matrix[: self._rows]

    def summed(self, terms: Sequence[Term]) -> Vector:
        """Return the summed scores of terms for every paper (one gather in C)."""
        if len(terms) == 1:
            return self.hits(terms[0]).score
        if not terms:
            return self.nothing
        rows = [self.hits(t).row for t in terms]
        summed: Vector = self.scores()[rows].sum(axis=0)
        return summed

    def head(self, n: int) -> PaperScores:
        """Return the first n papers of this index, scored with the whole index's statistics."""
        return self if n >= self.n else _Head(self, n)

    def _count(self, name: str, term: Term) -> dict[int, int]:
        """Return, per paper, how many times the term occurs in one field."""
        postings = self._postings[name]
        if term.prefix:
            vocabulary = self._vocabulary[name]
            start = _bisect(vocabulary, term.tokens[0])
            found: dict[int, int] = {}
            for token in vocabulary[start:]:
                if not token.startswith(term.tokens[0]):
                    break
                for paper, positions in postings[token].items():
                    found[paper] = found.get(paper, 0) + len(positions)
            return found
        folded = term.folded and name != "author"
        lists = [self._positions(name, token, folded) for token in term.tokens]
        first = lists[0]
        if len(lists) == 1:
            return {paper: len(positions) for paper, positions in first.items()}
        rest = lists[1:]
        candidates = set(first).intersection(*rest)
        found = {}
        for paper in candidates:
            # Positions where the phrase starts: word k must sit k places further on.
            starts = set(first[paper])
            for k, postings_k in enumerate(rest, start=1):
                starts &= {p - k for p in postings_k[paper]}
                if not starts:
                    break
            if starts:
                found[paper] = len(starts)
        return found

    def _positions(self, name: str, token: str, folded: bool) -> dict[int, list[int]]:
        """Return, per paper, where a word occurs in one field: any of its forms when folded."""
        postings = self._postings[name]
        if not folded:
            return postings.get(token, {})
        root = stem(token)
        forms = self._forms[name].get(root, ())
        if len(forms) <= 1:
            return postings.get(forms[0], {}) if forms else {}
        merged = self._folded.get((name, root))
        if merged is None:
            merged = {}
            for form in forms:
                for paper, positions in postings[form].items():
                    merged.setdefault(paper, []).extend(positions)
            self._folded[(name, root)] = merged
        return merged

    def _saturated(self, counts: Mapping[str, Mapping[int, int]]) -> Vector:
        """Return BM25F's saturated, length-normalised term frequency for every paper."""
        weighted = np.zeros(self.n)
        for name, per_paper in counts.items():
            if not per_paper:
                continue
            idx = np.fromiter(per_paper, dtype=np.int64)
            tf = np.fromiter(per_paper.values(), dtype=np.float64)
            norm = 1 - _B + _B * self._lengths[name][idx] / self._avg[name]
            weighted[idx] += _FIELD_WEIGHTS[name] * tf / norm
        result: Vector = weighted / (_K1 + weighted)
        return result

    def matching(self, expr: Expr) -> frozenset[int]:
        """Return the positions of the papers an expression matches."""
        return frozenset(np.flatnonzero(self.mask(expr)).tolist())

    def mask(self, expr: Expr) -> npt.NDArray[np.bool_]:
        """Return which papers an expression matches, as a boolean row (never mutate it)."""
        if isinstance(expr, Term):
            return self.hits(expr).mask
        masks = [self.mask(child) for child in expr.children]
        combine = np.logical_or if expr.op == "or" else np.logical_and
        result = combine(masks[0], masks[1])
        for other in masks[2:]:
            combine(result, other, out=result)
        return result


class _Head:
    """The first n papers of an index: positions and term statistics are the index's own.

    Composing puts the papers new to a subscriber first, so scoring a prefix
    decides only those, with the same idf (and so the same scores) as the
    whole candidate window would give them.
    """

    def __init__(self, index: PaperIndex, n: int) -> None:
        self._index = index
        self.n = n
        self.total = index.total
        self.papers = index.papers[:n]
        self.embeddings = None if index.embeddings is None else index.embeddings[:n]
        self.everything = index.everything[:n]

    def hits(self, term: Term) -> _Hits:
        """Return where a term occurs in the whole index (positions below n are this head's)."""
        return self._index.hits(term)

    def mask(self, expr: Expr) -> npt.NDArray[np.bool_]:
        """Return which of the first n papers an expression matches."""
        return self._index.mask(expr)[: self.n]

    def summed(self, terms: Sequence[Term]) -> Vector:
        """Return the summed scores of terms for the first n papers."""
        if not terms:
            return self._index.nothing[: self.n]
        rows = [self._index.hits(t).row for t in terms]
        summed: Vector = self._index.scores()[rows, : self.n].sum(axis=0)
        return summed


def _bisect(items: list[str], value: str) -> int:
    """Return the first position whose item is not below value."""
    lo, hi = 0, len(items)
    while lo < hi:
        mid = (lo + hi) // 2
        if items[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo

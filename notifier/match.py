"""Interest matching: a per-run paper index, hybrid scores and reasons. Pure.

An interest's query (notifier/query.py) is a hard filter: every paper it
lets through is delivered, best first, with no score cut. A description in
plain words is scored: a lexical BM25F score over its distinctive words and
word pairs (title weighted) fused with the cosine similarity of sentence
embeddings, and a paper is kept when the fused score reaches the interest's
sensitivity threshold. With both, the query filters and the description
ranks (docs/matching.md says what each sensitivity does then). Evaluating
queries paper by paper in Python does not scale, so a PaperIndex is built
once per run over the candidate papers and every query is answered from its
postings.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from notifier.errors import QueryError
from notifier.models import InterestVolume, Match
from notifier.query import FIELDS, Expr, Query, Term, parse_query
from notifier.terms import is_filler, is_stopword, stem, words

SENSITIVITIES = ("strict", "normal", "broad")
_PHRASE_SPLIT = re.compile(r"[,;:()]|\be\.g\.|\bsuch as\b|\bfor example\b", re.IGNORECASE)
# A dash between spaces separates facets too: hyphen, en dash or em dash.
_FACET_SPLIT = re.compile(r"[,;:()]|\s[-\u2013\u2014]\s")


# -- the paper index --------------------------------------------------------

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


class PaperIndex:
    """Positional postings over a run's papers, with per-term results cached."""

    def __init__(self, papers: Sequence[IndexedPaper], embeddings: Any = None) -> None:
        self.papers = list(papers)
        self.n = len(self.papers)
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
        self._matrix: npt.NDArray[np.float64] = np.zeros((0, self.n))
        self._rows = 0
        self.everything = np.ones(self.n, dtype=bool)
        self.nothing = np.zeros(self.n)

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
        """Return every looked-up term's score row as one matrix."""
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


# -- interests and scoring --------------------------------------------------


MODES = ("lexical", "semantic", "hybrid")


@dataclass(frozen=True, slots=True)
class MatchParams:
    """How lexical and semantic scores are fused and where each sensitivity cuts."""

    mode: str = "hybrid"  # hybrid | semantic | lexical
    semantic_weight: float = 0.5
    # A query's lexical score s (BM25F summed over its terms) counts as s / (s + scale);
    # a description's, averaged over its words and word pairs, with its own scale.
    lexical_scale: float = 1.5
    description_scale: float = 0.5
    # A paper close enough in meaning passes without sharing a word: its score is
    # at least its similarity minus this margin (1.0 turns that path off).
    semantic_margin: float = 1.0
    # A description's lexical score blends the mean over all its words with the
    # mean over its best facet's words, weighted by this.
    facet_weight: float = 0.0
    thresholds: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def cut(self, mode: str, sensitivity: str) -> float:
        """Return the fused score a paper needs under a mode and sensitivity."""
        return self.thresholds[mode][sensitivity]


# Chosen with `notifier eval --tune` on tests/data/eval (17 descriptions, 411 papers
# each judged for each): normal maximises macro F1; strict and broad halve and
# double normal's volume. Only descriptions are cut: a query delivers all it
# matches. docs/matching.md has the figures, and those of interests not tuned on.
_THRESHOLDS = {
    "hybrid": {"strict": 0.55, "normal": 0.49, "broad": 0.43},
    "semantic": {"strict": 0.50, "normal": 0.45, "broad": 0.39},
    "lexical": {"strict": 0.61, "normal": 0.53, "broad": 0.42},
}
_DEFAULTS = {
    "hybrid": MatchParams(
        "hybrid",
        semantic_weight=0.5,
        lexical_scale=2.5,
        description_scale=0.3,
        semantic_margin=0.1,
        facet_weight=0.3,
        thresholds=_THRESHOLDS,
    ),
    "semantic": MatchParams("semantic", semantic_weight=1.0, thresholds=_THRESHOLDS),
    "lexical": MatchParams(
        "lexical",
        semantic_weight=0.0,
        lexical_scale=2.5,
        description_scale=0.2,
        thresholds=_THRESHOLDS,
    ),
}


def default_params(mode: str = "hybrid") -> MatchParams:
    """Return the tuned parameters of a mode."""
    return _DEFAULTS[mode]


@dataclass(frozen=True, slots=True)
class CompiledInterest:
    """An interest ready to score: its query, description terms and embeddings."""

    name: str
    query: Query | None
    about: str | None
    sensitivity: str = "normal"
    vector: Any = None  # unit (dim,) embedding of the description (or the query words)
    phrases: tuple[str, ...] = ()
    phrase_vectors: Any = None  # (k, dim) embeddings of the description's phrases
    description_terms: tuple[Term, ...] = ()
    # The description's facets ("Minecraft, StarCraft, Atari"): each its own terms.
    facets: tuple[tuple[Term, ...], ...] = ()


def compile_interest(
    name: str, query: str | None, about: str | None, sensitivity: str = "normal"
) -> CompiledInterest:
    """Parse an interest's query and split its description; embeddings are attached later."""
    if sensitivity not in SENSITIVITIES:
        raise QueryError(sensitivity, f"sensitivity must be one of {', '.join(SENSITIVITIES)}")
    parsed = parse_query(query) if query else None
    described = bool(about and about.strip())
    if parsed is None and not described:
        raise QueryError(name, "an interest needs a query, a description, or both")
    if parsed is not None and parsed.include is None and not described:
        raise QueryError(
            parsed.text,
            "the query needs at least one word or phrase to look for (or a description)",
        )
    return CompiledInterest(
        name,
        parsed,
        about,
        sensitivity,
        phrases=description_phrases(about or ""),
        description_terms=description_terms(about or ""),
        facets=description_facets(about or ""),
    )


def description_terms(about: str) -> tuple[Term, ...]:
    """Return the distinctive words of a description and the pairs of adjacent words.

    Function words and the filler of research prose ("making", "better",
    "models") are left out: they would carry unrelated papers in and be quoted
    as the reason. A pair may end in a filler word ("world models", "imitation
    learning": English compounds put the head last) but not start with one
    ("making world"); a pair is precise evidence that single words are not.
    """
    unigrams: list[Term] = []
    pairs: list[Term] = []
    for phrase in _FACET_SPLIT.split(about):  # no pair across a comma or a dash
        content = words(phrase)
        for a, b in itertools.pairwise(content):
            if not (is_filler(a) or is_stopword(b)):
                pairs.append(Term(f"{a} {b}", (a, b)))
        unigrams += [Term(w, (w,)) for w in content if not is_filler(w)]
    # One term per stem: "policy" and "policies" in one description count once.
    return tuple({t.key: t for t in reversed(unigrams + pairs)}.values())[::-1]


def description_facets(about: str) -> tuple[tuple[Term, ...], ...]:
    """Return the terms of each facet of a description: the parts between commas and dashes.

    Subscribers list alternatives ("Minecraft, StarCraft, Atari, poker"); a
    paper about one of them shares few of all the words, but most of a facet's.
    """
    facets = (description_terms(part) for part in _FACET_SPLIT.split(about))
    return tuple(f for f in facets if f)


def description_phrases(about: str) -> tuple[str, ...]:
    """Split a description into the phrases a semantic reason can quote."""
    parts = [" ".join(p.split()) for p in _PHRASE_SPLIT.split(about)]
    return tuple(dict.fromkeys(p for p in parts if len(p.split()) >= 2)) or (
        (" ".join(about.split()),) if about.strip() else ()
    )


def embedding_text(interest: CompiledInterest) -> str:
    """Return the text whose embedding stands for the interest."""
    if interest.about and interest.about.strip():
        return interest.about
    assert interest.query is not None
    return " ".join(t.text.strip('"') for t in interest.query.terms())


def effective_mode(index: PaperIndex, interest: CompiledInterest, params: MatchParams) -> str:
    """Return the mode actually used: without embeddings every mode is lexical."""
    if params.mode == "lexical" or index.embeddings is None or interest.vector is None:
        return "lexical"
    return params.mode


def score(
    index: PaperIndex,
    interest: CompiledInterest,
    params: MatchParams,
    similarity: Vector | None = None,
) -> Scored:
    """Return (passes the filter, fused score, lexical score, semantic score) per paper.

    similarity may be given precomputed (match_many computes it for many
    interests with one matrix product).
    """
    query = interest.query
    if query is not None and query.include is not None:
        allowed = index.mask(query.include)
    else:
        allowed = index.everything
    for expr in query.exclude if query is not None else ():
        allowed = allowed & ~index.mask(expr)
    keyword = query is not None and query.include is not None
    terms: Sequence[Term] = query.terms() if keyword and query else interest.description_terms
    lexical = index.summed(terms)
    if not keyword:
        # A description has many words: their mean, so length does not inflate it;
        # blended with its best facet's mean, so a paper about one listed
        # alternative is not drowned by the others (+0.02 held-out macro F1).
        lexical = lexical / max(len(terms), 1)
        if len(interest.facets) > 1 and params.facet_weight:
            best = np.max([index.summed(f) / len(f) for f in interest.facets], axis=0)
            lexical = (1 - params.facet_weight) * lexical + params.facet_weight * best
        lexical_norm = lexical / (lexical + params.description_scale)
    else:
        lexical_norm = lexical / (lexical + params.lexical_scale)
    mode = effective_mode(index, interest, params)
    if mode == "lexical":
        return allowed, lexical_norm, lexical, None
    if similarity is None:
        similarity = (index.embeddings @ interest.vector).astype(np.float64)
    if interest.phrase_vectors is not None and len(interest.phrases) > 1:
        # A description often lists facets ("grasping, dexterous hands, pick and
        # place"); a paper about one of them is close to that phrase, not to the
        # whole. Averaging the two lifted held-out macro F1 by 0.02 (docs/matching.md).
        closest = (interest.phrase_vectors @ index.embeddings.T).max(axis=0)
        similarity = (similarity + closest.astype(np.float64)) / 2
    if mode == "semantic":
        return allowed, similarity, lexical, similarity
    w = params.semantic_weight
    fused = np.maximum(w * similarity + (1 - w) * lexical_norm, similarity - params.semantic_margin)
    return allowed, fused, lexical, similarity


def _chosen(
    index: PaperIndex,
    interest: CompiledInterest,
    params: MatchParams,
    scored: Scored,
) -> npt.NDArray[np.intp]:
    """Return the positions that pass the filter and, for a description alone, the threshold.

    A query is a hard filter: everything it lets through is delivered, ranked
    (DESIGN.md invariant 7); only a plain-words description is cut by a score.
    """
    allowed, fused, _, _ = scored
    if interest.query is not None and interest.query.include is not None:
        return np.flatnonzero(allowed)
    cut = params.cut(effective_mode(index, interest, params), interest.sensitivity)
    return np.flatnonzero(allowed & (fused >= cut))


def volume(
    index: PaperIndex,
    interest: CompiledInterest,
    params: MatchParams,
    exclude: Collection[int] = (),
    closest: int = 3,
) -> InterestVolume:
    """Say how many papers an interest finds and why not more: its query, then its cut.

    exclude holds positions (papers already offered). The closest papers below
    the cut are named with their scores, so "why so few" has an answer.
    """
    scored = score(index, interest, params)
    allowed, fused = scored[0].copy(), scored[1]
    if exclude:
        allowed[list(exclude)] = False
    keyword = interest.query is not None and interest.query.include is not None
    chosen = set(_chosen(index, interest, params, scored).tolist()) - set(exclude)
    below = [int(i) for i in np.flatnonzero(allowed) if int(i) not in chosen]
    below.sort(key=lambda i: -fused[i])
    cut = (
        None
        if keyword
        else params.cut(effective_mode(index, interest, params), interest.sensitivity)
    )
    return InterestVolume(
        interest=interest.name,
        looked_at=index.n - len(set(exclude)),
        passed_query=int(allowed.sum()) if interest.query is not None else None,
        delivered=len(chosen),
        below_cut=len(below),
        cut=cut,
        sensitivity=interest.sensitivity,
        closest=tuple((index.papers[i].title, round(float(fused[i]), 2)) for i in below[:closest]),
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """One interest decided against the index: the matching positions and their scores."""

    interest: CompiledInterest
    positions: npt.NDArray[np.intp]
    scores: Vector
    scored: Scored  # kept so reasons need no second scoring pass
    # The matches without reasons, built once: every subscriber with this interest
    # shares them (subscriber_matches), instead of building their own.
    matches: tuple[Match, ...]

    def explain(self, index: PaperIndex, positions: Sequence[int]) -> list[Match]:
        """Return the Matches, with reasons, of the given positions."""
        return _matches(index, self.interest, self.scored, positions)


def match_many(
    index: PaperIndex,
    interests: Sequence[CompiledInterest],
    params: MatchParams,
    chunk: int = 2048,
) -> Iterator[Decision]:
    """Decide many interests at once: similarities come from one matrix product per chunk.

    Yields one Decision per interest, in order; reasons are built afterwards,
    only for what will be shown (Decision.explain).
    """
    for start in range(0, len(interests), chunk):
        batch = interests[start : start + chunk]
        rows: Any = None
        semantic = params.mode != "lexical" and index.embeddings is not None
        with_vectors = [k for k, i in enumerate(batch) if i.vector is not None]
        if semantic and with_vectors:
            vectors = np.stack([batch[k].vector for k in with_vectors])
            similarities = (vectors @ index.embeddings.T).astype(np.float64)
            rows = dict(zip(with_vectors, similarities, strict=True))
        for k, interest in enumerate(batch):
            similarity = rows.get(k) if rows is not None else None
            scored = score(index, interest, params, similarity)
            chosen = _chosen(index, interest, params, scored)
            fused = scored[1][chosen]
            name, rounded = interest.name, np.round(fused, 4).tolist()
            matches = tuple(
                Match(name, value, (), "", position)
                for position, value in zip(chosen.tolist(), rounded, strict=True)
            )
            yield Decision(interest, chosen, fused, scored, matches)


def subscriber_matches(decisions: Sequence[Decision], exclude: Collection[int] = ()) -> list[Match]:
    """Return every (interest, paper) match of one subscriber, without reasons yet.

    Scores are rounded as explained ones are, so ranking on them is the same.
    exclude holds positions (papers already offered). Reasons cost more than
    deciding, so they are built later, only for the papers a digest shows
    (see explainer).
    """
    return [m for decision in decisions for m in decision.matches if m.paper not in exclude]


def explainer(
    index: PaperIndex, decisions: Sequence[Decision]
) -> Callable[[Sequence[Match]], list[Match]]:
    """Return a function that gives matches of these decisions their reasons."""
    by_name = {decision.interest.name: decision for decision in decisions}

    def explain(matches: Sequence[Match]) -> list[Match]:
        return [
            by_name[m.interest].explain(index, [m.paper])[0] if not m.reason else m for m in matches
        ]

    return explain


def match_interest(
    index: PaperIndex,
    interest: CompiledInterest,
    params: MatchParams,
    exclude: frozenset[int] = frozenset(),
) -> list[Match]:
    """Return the papers that match (Match.paper is the index position), best first."""
    scored = score(index, interest, params)
    chosen = [
        p
        for p in _chosen(index, interest, params, scored).tolist()
        if index.papers[p].id not in exclude
    ]
    return sorted(_matches(index, interest, scored, chosen), key=lambda m: -m.score)


def _matches(
    index: PaperIndex,
    interest: CompiledInterest,
    scored: Scored,
    positions: Sequence[int],
) -> list[Match]:
    """Return the Match, with its reason, of each position."""
    _, fused, lexical, similarity = scored
    return [
        _explain(
            index,
            interest=interest,
            i=position,
            fused=float(fused[position]),
            lexical=float(lexical[position]),
            similarity=None if similarity is None else float(similarity[position]),
        )
        for position in positions
    ]


def _explain(
    index: PaperIndex,
    *,
    interest: CompiledInterest,
    i: int,
    fused: float,
    lexical: float,
    similarity: float | None,
) -> Match:
    """Say why paper i matches: the terms found and where, and the closest phrase."""
    terms: list[str] = []
    parts: list[str] = []
    keyword = interest.query is not None and interest.query.include is not None
    query_terms = (
        interest.query.terms() if keyword and interest.query else interest.description_terms
    )
    for term in query_terms:
        hits = index.hits(term)
        in_title, in_abstract = hits.title.get(i, 0), hits.abstract.get(i, 0)
        if in_title or in_abstract:
            # Match.terms is what the email highlights: "=" keeps an exact form exact.
            # Author names are never folded, so never highlighted in folded forms.
            exact = term.exact or term.field == "author"
            terms.append(("=" if exact else "") + term.label)
            if keyword:
                parts.append(_where(term.label, in_title, in_abstract, term.field))
    if not keyword and terms:
        parts.append("words " + ", ".join(f"“{t}”" for t in terms[:6]))  # never filler
    if similarity is not None and interest.phrase_vectors is not None and interest.phrases:
        row = index.embeddings[i]
        closeness = interest.phrase_vectors @ row
        best = int(np.argmax(closeness))
        parts.append(f"close to “{interest.phrases[best]}” ({float(closeness[best]):.2f})")
    return Match(
        interest=interest.name,
        score=float(np.round(fused, 4)),  # as match_many rounds, so rankings agree
        terms=tuple(terms),
        reason="; ".join(parts) or "matched",
        paper=i,
        lexical=round(lexical, 4),
        semantic=None if similarity is None else round(similarity, 4),
    )


def _where(term: str, in_title: int, in_abstract: int, field_name: str | None) -> str:
    """Return a short human reason for one matched term."""
    if field_name == "author":
        return f"author “{term}”"
    where = []
    if in_title:
        where.append("title")
    if in_abstract:
        where.append("abstract" if in_abstract == 1 else f"abstract ({in_abstract} times)")
    return f"“{term}” in {' and '.join(where)}"

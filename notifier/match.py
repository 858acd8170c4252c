"""Interest matching: query syntax, a per-run paper index, hybrid scores and reasons. Pure.

A query is a hard filter:
    words and "quoted phrases" must all appear (AND, implicit or written);
    a OR b accepts either (OR binds tighter than AND: `x y OR z` is x AND (y OR z));
    ( ) group; -term, -"phrase", -(group) or NOT term exclude, wherever they stand;
    title:, abstract:, author: restrict a term to one field; reinforc* matches a prefix.
Matching is case-insensitive on whole words over title and abstract.

A paper the filter lets through (or any paper, for an interest without a
query) is then scored: a lexical BM25F score (title weighted) fused with the
cosine similarity of sentence embeddings, and kept when the fused score
reaches the interest's sensitivity threshold. Evaluating queries paper by
paper in Python does not scale, so a PaperIndex is built once per run over
the candidate papers and every query is answered from its postings.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from notifier.errors import QueryError
from notifier.models import Match

FIELDS = ("title", "abstract", "author")
SENSITIVITIES = ("strict", "normal", "broad")
_WORD = re.compile(r"\w+")
_QUERY_TOKEN = re.compile(r'\s*(?:(\()|(\))|(-?)"([^"]*)("?)|([^\s()"]+))')
_PHRASE_SPLIT = re.compile(r"[,;:()]|\be\.g\.|\bsuch as\b|\bfor example\b", re.IGNORECASE)
_STOPWORDS = frozenset(
    "a an and are as at be by for from has have in into is it its of on or that the their "
    "them these this those to was were with without via using use used we our us can about "
    "also other such e g eg etc i ie".split()
)


def words(text: str) -> list[str]:
    """Return the casefolded words of a text, as the index and the queries see them."""
    return [w.casefold() for w in _WORD.findall(text)]


# -- the query language -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Term:
    """A word, phrase or prefix, optionally restricted to one field."""

    text: str  # as the user wrote it, for reasons
    tokens: tuple[str, ...]
    field: str | None = None  # None: title or abstract
    prefix: bool = False
    # What the index caches the term under: a str hashes once, a dataclass every time.
    key: str = dataclasses.field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        key = f"{self.field or ''}|{'*' if self.prefix else ''}|{' '.join(self.tokens)}"
        object.__setattr__(self, "key", key)


@dataclass(frozen=True, slots=True)
class Node:
    """An AND or OR of terms and nodes."""

    op: str  # "and" | "or"
    children: tuple[Term | Node, ...]


Expr = Term | Node


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: what must match, and what excludes a paper wherever it appears."""

    text: str
    include: Expr | None  # None: only exclusions (next to a description)
    exclude: tuple[Expr, ...]
    positive: tuple[Term, ...] = ()  # the include's terms, in the order written

    def __post_init__(self) -> None:
        if self.include is not None and not self.positive:
            object.__setattr__(self, "positive", tuple(_terms(self.include)))

    def terms(self) -> tuple[Term, ...]:
        """Return the positive terms, in the order written."""
        return self.positive


def _terms(expr: Expr) -> Iterable[Term]:
    if isinstance(expr, Term):
        yield expr
    else:
        for child in expr.children:
            yield from _terms(child)


MAX_NESTING = 20


class _Parser:
    """Recursive descent over the query text, remembering positions for errors."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._lex(text)
        self.i = 0
        self.depth = 0
        self.excluded: list[Expr] = []

    def _lex(self, text: str) -> list[tuple[str, str, int]]:
        tokens: list[tuple[str, str, int]] = []
        pos, end = 0, len(text.rstrip())
        while pos < end:
            m = _QUERY_TOKEN.match(text, pos)
            assert m is not None
            pos = m.end()
            if m.group(1):
                tokens.append(("(", "(", m.start(1)))
            elif m.group(2):
                tokens.append((")", ")", m.start(2)))
            elif m.group(4) is not None:
                start = m.start(4) - 1 - len(m.group(3))
                if not m.group(5):
                    raise QueryError(text, "unclosed quote", start + len(m.group(3)))
                if not m.group(4).strip():
                    raise QueryError(text, "empty phrase", start + len(m.group(3)))
                kind = "-phrase" if m.group(3) else "phrase"
                tokens.append((kind, m.group(4), start))
            else:
                word, start = m.group(6), m.start(6)
                if word in ("OR", "AND", "NOT"):
                    tokens.append((word, word, start))
                elif word == "-" and text.startswith("(", pos):
                    tokens.append(("-", "-", start))  # -(a OR b) excludes the group
                elif word == "-":
                    raise QueryError(text, "'-' must be followed by a word to exclude", start)
                elif word.startswith("-"):
                    tokens.append(("-", "-", start))
                    tokens.append(("word", word[1:], start + 1))
                else:
                    tokens.append(("word", word, start))
        return tokens

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def parse(self) -> Query:
        if not self.tokens:
            raise QueryError(self.text, "the query needs at least one word or phrase to look for")
        include = self.conjunction(top=True)
        if (token := self.peek()) is not None:
            raise QueryError(self.text, "unmatched ')'", token[2])
        return Query(self.text, include, tuple(self.excluded))

    def conjunction(self, top: bool = False) -> Expr | None:
        parts: list[Expr] = []
        while (token := self.peek()) is not None and token[0] != ")":
            if token[0] == "AND":
                if not parts and not self.excluded_since_start(parts):
                    raise QueryError(self.text, "AND needs a term on each side", token[2])
                self.i += 1
                nxt = self.peek()
                if nxt is None or nxt[0] in (")", "AND", "OR"):
                    raise QueryError(self.text, "AND needs a term on each side", token[2])
                continue
            if token[0] == "OR":
                raise QueryError(self.text, "OR needs a term on each side", token[2])
            part = self.disjunction()
            if part is not None:
                parts.append(part)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else Node("and", tuple(parts))

    def excluded_since_start(self, parts: list[Expr]) -> bool:
        return bool(self.excluded)

    def disjunction(self) -> Expr | None:
        first = self.unary()
        options = [first] if first is not None else []
        while (token := self.peek()) is not None and token[0] == "OR":
            if first is None:
                raise QueryError(self.text, "an excluded term cannot be part of OR", token[2])
            self.i += 1
            nxt = self.peek()
            if nxt is None or nxt[0] in (")", "OR", "AND"):
                raise QueryError(self.text, "OR needs a term on each side", token[2])
            if nxt[0] in ("-", "-phrase", "NOT"):
                raise QueryError(self.text, "an excluded term cannot be part of OR", nxt[2])
            option = self.unary()
            assert option is not None
            options.append(option)
        if not options:
            return None
        return options[0] if len(options) == 1 else Node("or", tuple(options))

    def unary(self) -> Expr | None:
        token = self.peek()
        assert token is not None
        if token[0] in ("-", "NOT"):
            self.i += 1
            nxt = self.peek()
            if nxt is None or nxt[0] in (")", "OR", "AND"):
                raise QueryError(self.text, "'-' must be followed by a word to exclude", token[2])
            excluded = self.unary()
            if excluded is not None:
                self.excluded.append(excluded)
            return None
        if token[0] == "-phrase":
            self.i += 1
            self.excluded.append(self.term(token[1], token[2], phrase=True))
            return None
        return self.atom()

    def atom(self) -> Expr:
        token = self.peek()
        assert token is not None
        kind, value, start = token
        self.i += 1
        if kind == "(":
            # Each level is a few Python frames: refuse what no person writes
            # before it can exhaust the stack (a 500-character web field can).
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise QueryError(
                    self.text, f"parentheses nested more than {MAX_NESTING} deep", start
                )
            inner = self.conjunction()
            self.depth -= 1
            closing = self.peek()
            if closing is None or closing[0] != ")":
                raise QueryError(self.text, "unclosed '('", start)
            self.i += 1
            if inner is None:
                raise QueryError(self.text, "empty parentheses", start)
            return inner
        if kind == ")":
            raise QueryError(self.text, "unmatched ')'", start)
        if kind == "phrase":
            return self.term(value, start, phrase=True)
        return self.term(value, start, phrase=False)

    def term(self, value: str, start: int, phrase: bool) -> Term:
        field_name = None
        if not phrase and ":" in value:
            head, _, rest = value.partition(":")
            if head.lower() in FIELDS:
                field_name = head.lower()
                if not rest:
                    nxt = self.peek()
                    if nxt is None or nxt[0] != "phrase":
                        raise QueryError(self.text, f"'{head}:' needs a word or phrase", start)
                    self.i += 1
                    return self._make(nxt[1], nxt[2], field_name, phrase=True)
                value = rest
        return self._make(value, start, field_name, phrase)

    def _make(self, value: str, start: int, field_name: str | None, phrase: bool) -> Term:
        prefix = not phrase and value.endswith("*")
        stem = value.rstrip("*") if prefix else value
        if "*" in stem:
            raise QueryError(self.text, "'*' is only allowed at the end of a word", start)
        tokens = tuple(words(stem))
        if not tokens:
            raise QueryError(self.text, f"{value!r} has no letters or digits to look for", start)
        if prefix and (len(tokens) != 1 or len(tokens[0]) < 3):
            raise QueryError(self.text, "a wildcard needs at least 3 letters before '*'", start)
        return Term(value if not phrase else f'"{value}"', tokens, field_name, prefix)


def parse_query(text: str) -> Query:
    """Parse query text, or raise QueryError pointing at the position at fault."""
    return _Parser(text).parse()


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
        first = postings.get(term.tokens[0], {})
        if len(term.tokens) == 1:
            return {paper: len(positions) for paper, positions in first.items()}
        rest = [postings.get(t, {}) for t in term.tokens[1:]]
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
    thresholds: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def cut(self, mode: str, sensitivity: str) -> float:
        """Return the fused score a paper needs under a mode and sensitivity."""
        return self.thresholds[mode][sensitivity]


# Chosen with `notifier eval --tune` on tests/data/eval (2,877 judgments, 7 interests):
# normal maximises macro F1; strict is the lowest cut with macro precision >= 0.9,
# broad the highest with macro recall >= 0.9. docs/matching.md has the figures.
_THRESHOLDS = {
    "hybrid": {"strict": 0.44, "normal": 0.38, "broad": 0.27},
    "semantic": {"strict": 0.58, "normal": 0.42, "broad": 0.20},
    "lexical": {"strict": 0.44, "normal": 0.32, "broad": 0.12},
}
_DEFAULTS = {
    "hybrid": MatchParams(
        "hybrid",
        semantic_weight=0.3,
        lexical_scale=2.5,
        description_scale=0.5,
        semantic_margin=0.15,
        thresholds=_THRESHOLDS,
    ),
    "semantic": MatchParams("semantic", semantic_weight=1.0, thresholds=_THRESHOLDS),
    "lexical": MatchParams(
        "lexical",
        semantic_weight=0.0,
        lexical_scale=2.5,
        description_scale=0.5,
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
    )


def description_terms(about: str) -> tuple[Term, ...]:
    """Return the content words of a description and the pairs of adjacent ones.

    Pairs ("world models", "preference optimization") are precise evidence that
    single words are not; the eval gained 0.06 F1 on description-only interests.
    """
    unigrams: list[Term] = []
    pairs: list[Term] = []
    for phrase in re.split(r"[,;:()]", about):
        content = words(phrase)
        for a, b in itertools.pairwise(content):
            if a not in _STOPWORDS and b not in _STOPWORDS:
                pairs.append(Term(f"{a} {b}", (a, b)))
        unigrams += [Term(w, (w,)) for w in content if w not in _STOPWORDS and len(w) > 1]
    return tuple(dict.fromkeys(unigrams + pairs))


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
        # A description has many words: their mean, so length does not inflate it.
        lexical = lexical / max(len(terms), 1)
        lexical_norm = lexical / (lexical + params.description_scale)
    else:
        lexical_norm = lexical / (lexical + params.lexical_scale)
    mode = effective_mode(index, interest, params)
    if mode == "lexical":
        return allowed, lexical_norm, lexical, None
    if similarity is None:
        similarity = (index.embeddings @ interest.vector).astype(np.float64)
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
    """Return the positions that pass the filter and the sensitivity's threshold."""
    allowed, fused, _, _ = scored
    cut = params.cut(effective_mode(index, interest, params), interest.sensitivity)
    return np.flatnonzero(allowed & (fused >= cut))


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
            matches = tuple(
                Match(interest.name, round(value, 4), (), "", position)
                for position, value in zip(chosen.tolist(), fused.tolist(), strict=True)
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
            terms.append(term.text.strip('"'))
            if keyword:
                parts.append(_where(term.text.strip('"'), in_title, in_abstract, term.field))
    if not keyword and terms:
        parts.append("words " + ", ".join(f"“{t}”" for t in terms[:6]))
    if similarity is not None and interest.phrase_vectors is not None and interest.phrases:
        row = index.embeddings[i]
        closeness = interest.phrase_vectors @ row
        best = int(np.argmax(closeness))
        parts.append(f"close to “{interest.phrases[best]}” ({float(closeness[best]):.2f})")
    return Match(
        interest=interest.name,
        score=round(fused, 4),
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

"""Interest matching: hybrid scores, the cut and reasons, against a PaperIndex. Pure.

An interest's query (notifier/query.py) is a hard filter: every paper it
lets through is delivered, best first, with no score cut. A description in
plain words is scored: a lexical BM25F score over its distinctive words and
word pairs (title weighted) fused with the cosine similarity of sentence
embeddings, and a paper is kept when the fused score reaches the interest's
sensitivity threshold. With both, the query filters and the description
ranks (docs/matching.md says what each sensitivity does then). Scores come
from the run's PaperIndex (notifier/paper_index.py).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from notifier.errors import QueryError
from notifier.learned import learned_score, taught_terms
from notifier.models import SENSITIVITIES, InterestVolume, Match
from notifier.paper_index import PaperScores, Scored, Vector
from notifier.query import Query, Term, parse_query
from notifier.terms import is_filler, is_stopword, words

_PHRASE_SPLIT = re.compile(r"[,;:()]|\be\.g\.|\bsuch as\b|\bfor example\b", re.IGNORECASE)
# A dash between spaces separates facets too: hyphen, en dash or em dash.
_FACET_SPLIT = re.compile(r"[,;:()]|\s[-\u2013\u2014]\s")


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
    # An interest with example papers adds feedback_weight times the lexical score of
    # the feedback_terms words its examples share that are rarest among the candidates
    # (notifier/feedback.py).
    feedback_weight: float = 0.2
    feedback_terms: int = 20
    feedback_negative: float = 0.5  # how much the words of rejected examples take off
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
# The words a reason names as what an interest's examples taught (as scoring picks them).
FEEDBACK_TERMS = MatchParams().feedback_terms
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
    # What its example papers teach (feedback.example_terms): words with their counts.
    learned: tuple[tuple[Term, float], ...] = ()
    examples: int = 0  # how many rated or imported papers taught it


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
    facets = _facet_terms(about or "")
    return CompiledInterest(
        name,
        parsed,
        about,
        sensitivity,
        phrases=description_phrases(about or ""),
        description_terms=_all_terms(facets),
        facets=_each_facet(facets),
    )


def description_terms(about: str) -> tuple[Term, ...]:
    """Return the distinctive words of a description and the pairs of adjacent words.

    Function words and the filler of research prose ("making", "better",
    "models") are left out: they would carry unrelated papers in and be quoted
    as the reason. A pair may end in a filler word ("world models", "imitation
    learning": English compounds put the head last) but not start with one
    ("making world"); a pair is precise evidence that single words are not.
    """
    return _all_terms(_facet_terms(about))


def description_facets(about: str) -> tuple[tuple[Term, ...], ...]:
    """Return the terms of each facet of a description: the parts between commas and dashes.

    Subscribers list alternatives ("Minecraft, StarCraft, Atari, poker"); a
    paper about one of them shares few of all the words, but most of a facet's.
    """
    return _each_facet(_facet_terms(about))


_FacetTerms = list[tuple[list[Term], list[Term]]]  # per facet: its words, its word pairs


def _facet_terms(about: str) -> _FacetTerms:
    """Return the words and the word pairs of each facet (no pair across a comma or a dash)."""
    facets = []
    for phrase in _FACET_SPLIT.split(about):
        content = words(phrase)
        pairs = [
            _pair_term(a, b)
            for a, b in itertools.pairwise(content)
            if not (is_filler(a) or is_stopword(b))
        ]
        facets.append(([_word_term(w) for w in content if not is_filler(w)], pairs))
    return facets


def _all_terms(facets: _FacetTerms) -> tuple[Term, ...]:
    """Return the terms of a whole description: every facet's words, then every pair."""
    return _one_per_stem(
        [t for words_, _ in facets for t in words_] + [t for _, pairs in facets for t in pairs]
    )


def _each_facet(facets: _FacetTerms) -> tuple[tuple[Term, ...], ...]:
    """Return the terms of each facet that has any."""
    each = (_one_per_stem(words_ + pairs) for words_, pairs in facets)
    return tuple(terms for terms in each if terms)


def _one_per_stem(terms: list[Term]) -> tuple[Term, ...]:
    """Return terms with one per stem: "policy" and "policies" in one description count once."""
    return tuple({t.key: t for t in reversed(terms)}.values())[::-1]


# Descriptions share most of their words: a term is built (and its words stemmed)
# once while it is in use, not once per interest. Bounded (some 6 MB each), since a
# daemon or the web server keeps them for as long as it runs.
@functools.lru_cache(maxsize=16_384)
def _word_term(word: str) -> Term:
    """Return the term of one description word."""
    return Term(word, (word,))


@functools.lru_cache(maxsize=16_384)
def _pair_term(first: str, second: str) -> Term:
    """Return the term of two adjacent description words."""
    return Term(f"{first} {second}", (first, second))


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


def effective_mode(index: PaperScores, interest: CompiledInterest, params: MatchParams) -> str:
    """Return the mode actually used: without embeddings every mode is lexical."""
    if params.mode == "lexical" or index.embeddings is None or interest.vector is None:
        return "lexical"
    return params.mode


def score(
    index: PaperScores,
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
    taught: Vector | float = 0.0
    if interest.learned:
        taught = params.feedback_weight * learned_score(
            index,
            interest.learned,
            params.feedback_terms,
            params.feedback_negative,
            params.description_scale,
        )
    if mode == "lexical":
        return allowed, lexical_norm + taught, lexical, None
    if similarity is None:
        similarity = (index.embeddings @ interest.vector).astype(np.float64)
    if interest.phrase_vectors is not None and len(interest.phrases) > 1:
        # A description often lists facets ("grasping, dexterous hands, pick and
        # place"); a paper about one of them is close to that phrase, not to the
        # whole. Averaging the two lifted held-out macro F1 by 0.02 (docs/matching.md).
        closest = (interest.phrase_vectors @ index.embeddings.T).max(axis=0)
        similarity = (similarity + closest.astype(np.float64)) / 2
    if mode == "semantic":
        return allowed, similarity + taught, lexical, similarity
    w = params.semantic_weight
    fused = np.maximum(w * similarity + (1 - w) * lexical_norm, similarity - params.semantic_margin)
    return allowed, fused + taught, lexical, similarity


def _chosen(
    index: PaperScores,
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
    index: PaperScores,
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
    """One interest decided against the index: the matching positions and their scores.

    Only the matched papers' scores are kept (not a row per candidate), so a
    run can keep thousands of decisions in little memory.
    """

    interest: CompiledInterest
    positions: npt.NDArray[np.intp]  # ascending
    scores: Vector
    lexical: Vector  # at positions, for reasons
    semantic: Vector | None  # at positions, for reasons (None when lexical)
    # The matches without reasons, built once: every subscriber with this interest
    # shares them (subscriber_matches), instead of building their own.
    matches: tuple[Match, ...]

    def explain(self, index: PaperScores, positions: Sequence[int]) -> list[Match]:
        """Return the Matches, with reasons, of the given positions (each one it matched)."""
        at = np.searchsorted(self.positions, positions)
        return _explain_all(
            index,
            self.interest,
            positions,
            self.scores[at],
            self.lexical[at],
            None if self.semantic is None else self.semantic[at],
        )


def match_many(
    index: PaperScores,
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
            _, fused, lexical, closeness = scored
            name, rounded = interest.name, np.round(fused[chosen], 4).tolist()
            matches = tuple(
                Match(name, value, (), "", position)
                for position, value in zip(chosen.tolist(), rounded, strict=True)
            )
            yield Decision(
                interest,
                chosen,
                fused[chosen],
                lexical[chosen],
                None if closeness is None else closeness[chosen],
                matches,
            )


def subscriber_matches(decisions: Sequence[Decision], exclude: Collection[int] = ()) -> list[Match]:
    """Return every (interest, paper) match of one subscriber, without reasons yet.

    Scores are rounded as explained ones are, so ranking on them is the same.
    exclude holds positions (papers already offered). Reasons cost more than
    deciding, so they are built later, only for the papers a digest shows
    (see explainer).
    """
    return [m for decision in decisions for m in decision.matches if m.paper not in exclude]


def explainer(
    index: PaperScores, decisions: Sequence[Decision]
) -> Callable[[Sequence[Match]], list[Match]]:
    """Return a function that gives matches of these decisions their reasons."""
    by_name = {decision.interest.name: decision for decision in decisions}

    def explain(matches: Sequence[Match]) -> list[Match]:
        return [
            by_name[m.interest].explain(index, [m.paper])[0] if not m.reason else m for m in matches
        ]

    return explain


def match_interest(
    index: PaperScores,
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
    index: PaperScores,
    interest: CompiledInterest,
    scored: Scored,
    positions: Sequence[int],
) -> list[Match]:
    """Return the Match, with its reason, of each position."""
    _, fused, lexical, similarity = scored
    at = list(positions)
    return _explain_all(
        index,
        interest,
        at,
        fused[at],
        lexical[at],
        None if similarity is None else similarity[at],
    )


def _explain_all(  # noqa: PLR0917
    index: PaperScores,
    interest: CompiledInterest,
    positions: Sequence[int],
    fused: Vector,
    lexical: Vector,
    similarity: Vector | None,
) -> list[Match]:
    """Say why each paper at positions matches: the terms found and where, the closest phrase.

    fused, lexical and similarity hold the scores of those papers, in order.
    The terms are looked up and the phrases compared once for all of them.
    """
    keyword = interest.query is not None and interest.query.include is not None
    query_terms = (
        interest.query.terms() if keyword and interest.query else interest.description_terms
    )
    found = [(term, index.hits(term)) for term in query_terms]
    found = [(term, hits) for term, hits in found if hits.papers]
    closest: list[tuple[int, float]] | None = None
    if similarity is not None and interest.phrase_vectors is not None and interest.phrases:
        closeness = interest.phrase_vectors @ index.embeddings[list(positions)].T
        best = closeness.argmax(axis=0)
        values = closeness[best, np.arange(len(best))]
        closest = list(zip(best.tolist(), values.tolist(), strict=True))
    taught = [
        (term, index.hits(term))
        for term in taught_terms(index, interest.learned, FEEDBACK_TERMS, liked=True)
    ]
    scores = np.round(fused, 4).tolist()  # as match_many rounds, so rankings agree
    lexicals = [round(value, 4) for value in lexical.tolist()]
    semantics = None if similarity is None else [round(v, 4) for v in similarity.tolist()]
    matches = []
    for k, i in enumerate(positions):
        terms: list[str] = []
        parts: list[str] = []
        for term, hits in found:
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
        if closest is not None:
            phrase, value = closest[k]
            parts.append(f"close to “{interest.phrases[phrase]}” ({value:.2f})")
        shared = [
            term.label
            for term, hits in taught
            if term.label not in terms and (i in hits.title or i in hits.abstract)
        ]
        if shared:
            parts.append("like papers you marked: " + ", ".join(f"“{t}”" for t in shared[:4]))
        matches.append(
            Match(
                interest=interest.name,
                score=scores[k],
                terms=tuple(terms),
                reason="; ".join(parts) or "matched",
                paper=i,
                lexical=lexicals[k],
                semantic=None if semantics is None else semantics[k],
            )
        )
    return matches


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

"""Measure matching against judged papers: precision, recall, F1 and nDCG@10.

Pure apart from reading the evaluation files; the embedder is passed in.
The standard definitions, on what a subscriber would be sent:
- relevant: a paper graded 1 (partly) or 2 (relevant);
- precision: the share of delivered papers that are relevant;
- recall: the share of relevant papers that are delivered;
- nDCG@10: the delivered list, best first, with the grades as gains
  (2^grade - 1), against the ten best-graded papers of the whole set.

Two tracks, each interest alone: its plain-words description (`--about`)
and, where the subscriber wrote one, its query. Thresholds are judged by
leave-one-interest-out cross-validation: each interest is scored at the cut
chosen on all the others, so a figure never rests on its own judgments.
"""

from __future__ import annotations

import csv
import itertools
import math
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from notifier.embedding import Embedder
from notifier.errors import ConfigError
from notifier.feedback import example_terms, example_text
from notifier.match import (
    MODES,
    CompiledInterest,
    MatchParams,
    compile_interest,
    embedding_text,
    match_interest,
    score,
)
from notifier.models import Paper
from notifier.paper_index import IndexedPaper, PaperIndex
from notifier.papers import embedding_input

__all__ = [
    "MODES",
    "TRACKS",
    "EvalSet",
    "Metrics",
    "Tuning",
    "build_index",
    "cross_validate",
    "evaluate",
    "load_eval_set",
    "mean",
    "metrics",
    "sweep",
    "tune",
    "with_vectors",
]

TRACKS = ("description", "query")
_CUTS = tuple(round(float(c), 2) for c in np.arange(0.05, 0.95, 0.01))


@dataclass(frozen=True, slots=True)
class Metrics:
    """The figures for one interest under one scorer."""

    precision: float
    recall: float
    f1: float
    ndcg10: float
    retrieved: int


@dataclass(frozen=True, slots=True)
class EvalSet:
    """Interests of one track, judged papers and their grades."""

    interests: tuple[CompiledInterest, ...]
    papers: tuple[Paper, ...]
    grades: Mapping[tuple[str, str], int]  # (interest, paper key) -> 0/1/2

    def grades_of(self, interest: str) -> dict[str, int]:
        """Return one interest's grades by paper key."""
        return {k: g for (name, k), g in self.grades.items() if name == interest}


def load_eval_set(directory: Path, papers: Sequence[Paper], track: str) -> EvalSet:
    """Read interests.toml and judgments/*.tsv for one track (description or query)."""
    spec = tomllib.loads((directory / "interests.toml").read_text(encoding="utf-8"))
    field = {"description": "about", "query": "query"}[track]
    interests = []
    for entry in spec["interests"]:
        if not entry.get(field):
            continue
        query, about = (None, entry["about"]) if track == "description" else (entry["query"], None)
        interests.append(compile_interest(entry["name"], query, about))
    grades: dict[tuple[str, str], int] = {}
    for part in sorted((directory / "judgments").glob("*.tsv")):
        with part.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                grades[(row["interest"], row["key"])] = int(row["grade"])
    keys = {p.key for p in papers}
    for interest in interests:
        judged = {k for (name, k) in grades if name == interest.name}
        if missing := len(keys - judged):
            raise ConfigError(
                f"{directory}: interest {interest.name!r} lacks judgments for {missing} papers; "
                "judge every paper for every interest"
            )
    return EvalSet(tuple(interests), tuple(papers), grades)


def build_index(evalset: EvalSet, embedder: Embedder | None) -> PaperIndex:
    """Index the judged papers, with their embeddings when an embedder is given."""
    indexed = [IndexedPaper(p.id, p.title, p.abstract, p.authors) for p in evalset.papers]
    texts = [embedding_input(p.title, p.abstract) for p in evalset.papers]
    vectors = embedder.embed(texts) if embedder else None
    return PaperIndex(indexed, vectors)


def with_vectors(interest: CompiledInterest, embedder: Embedder) -> CompiledInterest:
    """Return the interest with its description and phrase embeddings."""
    texts = [embedding_text(interest), *interest.phrases]
    vectors = embedder.embed(texts)
    return replace(
        interest, vector=vectors[0], phrase_vectors=vectors[1:] if interest.phrases else None
    )


def evaluate(evalset: EvalSet, index: PaperIndex, params: MatchParams) -> dict[str, Metrics]:
    """Return the metrics per interest of what each would deliver under params."""
    results = {}
    for interest in evalset.interests:
        delivered = [evalset.papers[m.paper].key for m in match_interest(index, interest, params)]
        results[interest.name] = metrics(evalset.grades_of(interest.name), delivered)
    return results


def metrics(grades: Mapping[str, int], delivered: Sequence[str]) -> Metrics:
    """Return precision, recall, F1 and nDCG@10 of one interest's delivered list, best first."""
    relevant = {k for k, g in grades.items() if g >= 1}
    found = sum(1 for k in delivered if k in relevant)
    precision = found / len(delivered) if delivered else 0.0
    recall = found / len(relevant) if relevant else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Metrics(precision, recall, f1, _ndcg10(grades, delivered), len(delivered))


def _ndcg10(grades: Mapping[str, int], ranked: Sequence[str]) -> float:
    """Return nDCG@10 of a ranked list, with 2^grade - 1 as each paper's gain."""
    gains = [grades.get(k, 0) for k in ranked[:10]]
    ideal = sorted(grades.values(), reverse=True)[:10]
    dcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(gains))
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def mean(results: Mapping[str, Metrics]) -> Metrics:
    """Return the macro average over interests."""
    values = list(results.values())
    n = len(values) or 1
    return Metrics(
        sum(m.precision for m in values) / n,
        sum(m.recall for m in values) / n,
        sum(m.f1 for m in values) / n,
        sum(m.ndcg10 for m in values) / n,
        sum(m.retrieved for m in values),
    )


# -- choosing thresholds and settings -------------------------------------------

# Per interest and cut: the metrics of what that cut delivers.
_Table = dict[str, dict[float, Metrics]]


def sweep(evalset: EvalSet, index: PaperIndex, params: MatchParams) -> _Table:
    """Return, per interest and cut, the metrics of the papers scoring at least the cut."""
    keys = [p.key for p in evalset.papers]
    table: _Table = {}
    for interest in evalset.interests:
        grades = evalset.grades_of(interest.name)
        allowed, fused, _, _ = score(index, interest, params)
        order = [int(i) for i in np.argsort(-fused, kind="stable") if allowed[i]]
        table[interest.name] = {
            cut: metrics(grades, [keys[i] for i in order if fused[i] >= cut]) for cut in _CUTS
        }
    return table


def _macro(
    table: _Table, names: Sequence[str], cut: float, pick: Callable[[Metrics], float]
) -> float:
    return float(np.mean([pick(table[n][cut]) for n in names]))


def _f1(m: Metrics) -> float:
    return m.f1


def cross_validate(table: _Table) -> dict[str, Metrics]:
    """Score each interest at the cut that maximises macro F1 over the other interests."""
    names = list(table)
    held_out = {}
    for name in names:
        others = [n for n in names if n != name] or names
        cut = max(_CUTS, key=lambda c: _macro(table, others, c, _f1))
        held_out[name] = table[name][cut]
    return held_out


@dataclass(frozen=True, slots=True)
class Tuning:
    """The settings chosen for one mode, and how they fare on interests not tuned on."""

    params: MatchParams
    tuned: dict[str, Metrics]  # every interest at the chosen settings
    held_out: dict[str, Metrics]  # each interest with settings chosen on the others


def tune(evalset: EvalSet, index: PaperIndex, mode: str, base: MatchParams) -> Tuning:
    """Search fusion settings and cuts for one mode's descriptions, cross-validated.

    normal maximises macro F1; strict and broad are the cuts that halve and
    double normal's volume (the papers delivered over all interests), so each
    step changes volume predictably. held_out chooses the settings and the
    cut on all interests but one and scores that one, for every interest.
    """
    hybrid = mode == "hybrid"
    lexical = mode != "semantic"
    grid = list(
        itertools.product(
            [0.4, 0.5, 0.6] if hybrid else [base.semantic_weight],
            [0.1, 0.2, 1.0] if hybrid else [base.semantic_margin],
            [0.2, 0.3, 0.5] if lexical else [base.description_scale],
            [0.0, 0.3, 0.5] if lexical else [base.facet_weight],
        )
    )
    tables = []
    for weight, margin, d_scale, facet in grid:
        params = replace(
            base,
            mode=mode,
            semantic_weight=weight,
            semantic_margin=margin,
            description_scale=d_scale,
            facet_weight=facet,
        )
        tables.append((params, sweep(evalset, index, params)))
    names = [i.name for i in evalset.interests]

    def best(among: Sequence[str]) -> tuple[MatchParams, _Table, float]:
        return max(
            ((p, t, c) for p, t in tables for c in _CUTS),
            key=lambda ptc: _macro(ptc[1], among, ptc[2], _f1),
        )

    held_out = {}
    for name in names:
        _, table, cut = best([n for n in names if n != name] or names)
        held_out[name] = table[name][cut]
    params, table, normal = best(names)
    thresholds = {**params.thresholds, mode: _levels(table, names, normal)}
    tuned = {n: table[n][normal] for n in names}
    return Tuning(replace(params, thresholds=thresholds), tuned, held_out)


def _levels(table: _Table, names: Sequence[str], normal: float) -> dict[str, float]:
    """Return the cuts of the three sensitivities: normal, half its volume, twice it."""

    def volume(cut: float) -> int:
        return sum(table[n][cut].retrieved for n in names)

    base = volume(normal)
    strict = min(_CUTS, key=lambda c: (abs(volume(c) - base / 2), -c))
    broad = min(_CUTS, key=lambda c: (abs(volume(c) - base * 2), c))
    return {"strict": max(strict, normal), "normal": normal, "broad": min(broad, normal)}


# -- feedback: ratings of each interest's top papers, scored on the rest -------

FEEDBACK_RATINGS = (10, 30)
FEEDBACK_WEIGHTS = (0.05, 0.1, 0.15, 0.2)


@dataclass(frozen=True, slots=True)
class FeedbackRun:
    """Per interest, the held-out metrics without and with what its ratings taught."""

    ratings: int
    without: dict[str, Metrics]
    with_feedback: dict[str, Metrics]
    held_out: dict[str, Metrics]  # each interest at the weight chosen on the others


def simulate_feedback(
    evalset: EvalSet, index: PaperIndex, params: MatchParams, ratings: int
) -> FeedbackRun:
    """Rate each interest's top papers by their grades, then score the papers not rated.

    The reader rates the first `ratings` papers of the interest's ranking
    (graded 1 or 2: "more like this", 0: "not for me"); those are held out of
    every figure, which measures the remaining papers only, as the next
    digests would deliver them. The weight of what was learned is the
    service's default; "held out" instead takes, for each interest, the
    weight with the best macro F1 over the other interests.
    """
    without: dict[str, Metrics] = {}
    by_weight: dict[float, dict[str, Metrics]] = {w: {} for w in FEEDBACK_WEIGHTS}
    with_feedback: dict[str, Metrics] = {}
    for interest in evalset.interests:
        grades = evalset.grades_of(interest.name)
        _, fused, _, _ = score(index, interest, params)
        rated = [int(i) for i in np.argsort(-fused, kind="stable")[:ratings]]
        keys = {evalset.papers[i].key for i in rated}
        rest = {k: g for k, g in grades.items() if k not in keys}
        taught = replace(
            interest,
            learned=example_terms(
                interest.about,
                [
                    (
                        example_text(evalset.papers[i].title, evalset.papers[i].abstract),
                        grades[evalset.papers[i].key] >= 1,
                    )
                    for i in rated
                ],
            ),
            examples=len(rated),
        )

        without[interest.name] = metrics(rest, _unrated(evalset, index, interest, params, keys))
        with_feedback[interest.name] = metrics(rest, _unrated(evalset, index, taught, params, keys))
        for weight in FEEDBACK_WEIGHTS:
            used = replace(params, feedback_weight=weight)
            by_weight[weight][interest.name] = metrics(
                rest, _unrated(evalset, index, taught, used, keys)
            )
    names = [i.name for i in evalset.interests]
    held_out = {}
    for name in names:
        others = [n for n in names if n != name]
        best = max(
            FEEDBACK_WEIGHTS, key=lambda w: sum(by_weight[w][n].f1 for n in others) / len(others)
        )
        held_out[name] = by_weight[best][name]
    return FeedbackRun(ratings, without, with_feedback, held_out)


def _unrated(
    evalset: EvalSet,
    index: PaperIndex,
    interest: CompiledInterest,
    params: MatchParams,
    rated: Collection[str],
) -> list[str]:
    """Return the keys an interest delivers, best first, leaving out the rated papers."""
    found = [evalset.papers[m.paper].key for m in match_interest(index, interest, params)]
    return [k for k in found if k not in rated]

"""Measure matching against judged papers: precision, recall, F1 and nDCG@10.

Pure apart from reading the evaluation files; the embedder is passed in.
A retrieved paper graded 1 or 2 counts as correct for precision; recall asks
for the papers graded 2; nDCG@10 ranks every paper the query lets through and
uses the grades as gains.
"""

from __future__ import annotations

import csv
import itertools
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from notifier.embedding import Embedder
from notifier.match import (
    MODES,
    CompiledInterest,
    IndexedPaper,
    MatchParams,
    PaperIndex,
    compile_interest,
    embedding_text,
    match_interest,
    score,
)
from notifier.models import Paper
from notifier.papers import embedding_input

__all__ = [
    "MODES",
    "EvalSet",
    "Metrics",
    "Tuning",
    "build_index",
    "evaluate",
    "load_eval_set",
    "mean",
    "metrics",
    "tune",
    "with_vectors",
]


STRICT_PRECISION = 0.9
BROAD_RECALL = 0.9


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
    """Interests, judged papers and their grades."""

    interests: tuple[CompiledInterest, ...]
    papers: tuple[Paper, ...]
    grades: Mapping[tuple[str, str], int]  # (interest, paper key) -> 0/1/2


def load_eval_set(directory: Path, papers: Sequence[Paper]) -> EvalSet:
    """Read interests.toml and judgments/*.tsv; papers are the judged ones."""
    spec = tomllib.loads((directory / "interests.toml").read_text())
    interests = tuple(
        compile_interest(i["name"], i.get("query"), i.get("about"), i.get("sensitivity", "normal"))
        for i in spec["interests"]
    )
    grades: dict[tuple[str, str], int] = {}
    for part in sorted((directory / "judgments").glob("*.tsv")):
        with part.open(newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                grades[(row["interest"], row["key"])] = int(row["grade"])
    return EvalSet(interests, tuple(papers), grades)


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
    """Return the metrics per interest for one scorer (params.mode) at its thresholds."""
    results = {}
    for interest in evalset.interests:
        matches = match_interest(index, interest, params)
        allowed, fused, _, _ = score(index, interest, params)
        ranked = [int(i) for i in np.argsort(-fused, kind="stable") if allowed[i]][:10]
        results[interest.name] = metrics(
            _grades(evalset, interest.name),
            [evalset.papers[m.paper].key for m in matches],
            [evalset.papers[i].key for i in ranked],
        )
    return results


def _grades(evalset: EvalSet, interest: str) -> dict[str, int]:
    """Return one interest's grades by paper key."""
    return {k: g for (name, k), g in evalset.grades.items() if name == interest}


@dataclass(frozen=True, slots=True)
class Tuning:
    """The best settings found for one mode, and how well they generalise."""

    params: MatchParams
    f1: float
    loio_f1: float  # macro F1 when each interest's threshold is chosen on the others


def tune(evalset: EvalSet, index: PaperIndex, mode: str, base: MatchParams) -> Tuning:
    """Search fusion weights, scales and thresholds for one mode on the judged set.

    normal maximises macro F1; strict is the lowest cut whose macro precision
    reaches 0.9, broad the highest whose macro recall reaches 0.9, so each
    level promises something measurable.
    """
    cuts = [round(float(c), 2) for c in np.arange(0.05, 0.95, 0.01)]
    weights = [0.3, 0.4, 0.5, 0.6, 0.7] if mode == "hybrid" else [base.semantic_weight]
    margins = [0.1, 0.15, 0.2, 0.25, 0.3, 1.0] if mode == "hybrid" else [base.semantic_margin]
    scales = [1.0, 1.5, 2.5, 4.0] if mode != "semantic" else [base.lexical_scale]
    description_scales = (
        [0.2, 0.3, 0.5, 0.8, 1.2] if mode != "semantic" else [base.description_scale]
    )
    best: tuple[float, MatchParams, dict[str, dict[float, tuple[float, float, float]]]] | None = (
        None
    )
    grid = itertools.product(weights, scales, description_scales, margins)
    for w, scale, d_scale, margin in grid:
        params = replace(
            base,
            mode=mode,
            semantic_weight=w,
            lexical_scale=scale,
            description_scale=d_scale,
            semantic_margin=margin,
        )
        table = _sweep(evalset, index, params, cuts)
        f1 = max(float(np.mean([table[n][c][0] for n in table])) for c in cuts)
        if best is None or f1 > best[0]:
            best = (f1, params, table)
    assert best is not None
    f1, params, table = best
    names = list(table)

    def macro(cut: float, column: int) -> float:
        return float(np.mean([table[n][cut][column] for n in names]))

    normal = max(cuts, key=lambda c: macro(c, 0))
    precise = [c for c in cuts if macro(c, 1) >= STRICT_PRECISION]
    recalled = [c for c in cuts if macro(c, 2) >= BROAD_RECALL]
    strict = min(precise) if precise else max(cuts, key=lambda c: macro(c, 1))
    broad = max(recalled) if recalled else min(cuts)

    loio = []
    for name in names:
        others = [n for n in names if n != name]
        cut = max(cuts, key=lambda c: np.mean([table[n][c][0] for n in others]))
        loio.append(table[name][cut][0])
    levels = {"strict": max(strict, normal), "normal": normal, "broad": min(broad, normal)}
    thresholds = {**params.thresholds, mode: levels}
    return Tuning(replace(params, thresholds=thresholds), float(f1), float(np.mean(loio)))


def _sweep(
    evalset: EvalSet, index: PaperIndex, params: MatchParams, cuts: Sequence[float]
) -> dict[str, dict[float, tuple[float, float, float]]]:
    """Return, per interest and threshold, (F1, precision, recall)."""
    table: dict[str, dict[float, tuple[float, float, float]]] = {}
    for interest in evalset.interests:
        grades = _grades(evalset, interest.name)
        allowed, fused, _, _ = score(index, interest, params)
        keys = [p.key for p in evalset.papers]
        row = {}
        for cut in cuts:
            chosen = [keys[i] for i in np.flatnonzero(allowed & (fused >= cut))]
            m = metrics(grades, chosen, [])
            row[float(cut)] = (m.f1, m.precision, m.recall)
        table[interest.name] = row
    return table


def metrics(grades: Mapping[str, int], retrieved: Sequence[str], ranked: Sequence[str]) -> Metrics:
    """Return precision, recall, F1 and nDCG@10 of one interest's results."""
    correct = sum(1 for k in retrieved if grades.get(k, 0) >= 1)
    relevant = {k for k, g in grades.items() if g == 2}
    found = sum(1 for k in retrieved if k in relevant)
    precision = correct / len(retrieved) if retrieved else 0.0
    recall = found / len(relevant) if relevant else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    gains = [grades.get(k, 0) for k in ranked[:10]]
    ideal = sorted(grades.values(), reverse=True)[:10]
    dcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(gains))
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return Metrics(precision, recall, f1, dcg / idcg if idcg else 0.0, len(retrieved))


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

"""What an interest's example papers taught, scored against a run's index. Pure.

notifier/feedback.py counts the words of an interest's examples; here the
words that weigh most among the candidates are picked and scored, for
match.score (the score) and match's reasons (the words named).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from notifier.paper_index import PaperScores, Vector
from notifier.query import Term


def learned_score(
    index: PaperScores,
    learned: Sequence[tuple[Term, float]],
    terms: int,
    negative: float,
    scale: float,
) -> Vector:
    """Return the lexical score of what an interest's examples taught, per paper.

    The words liked examples share and the words rejected ones hold are each
    picked (taught_terms, at most terms of each) and scored like a description's
    words (s / (s + scale)); the second, times negative, is taken off the first.
    """
    scored = np.zeros(index.n)
    for liked, factor in ((True, 1.0), (False, -negative)):
        chosen = taught_terms(index, learned, terms, liked)
        if chosen:
            summed = index.summed(chosen) / len(chosen)
            scored = scored + factor * summed / (summed + scale)
    return scored


def taught_terms(
    index: PaperScores, learned: Sequence[tuple[Term, float]], limit: int, liked: bool
) -> list[Term]:
    """Return the liked (or rejected) words that weigh most: count times rarity.

    A word in fewer than two candidates is passed over: it mostly names one paper.
    """
    weighed = []
    for term, count in learned:
        if (count > 0) != liked:
            continue
        found = len(index.hits(term).papers)
        if found >= 2:
            rarity = math.log((index.total + 1) / (found + 0.5))
            weighed.append((abs(count) * rarity, term.key, term))
    weighed.sort(key=lambda w: (-w[0], w[1]))
    return [term for _, _, term in weighed[:limit]]

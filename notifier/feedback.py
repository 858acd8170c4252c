"""What an interest learns from its example papers: the words that set them apart. Pure.

A reader's ratings ("more like this", "not for me") and an imported library
are examples of an interest. Each example's distinctive words and word pairs
count for it (+1 in a positive example, -0.5 in a negative one) and the
description counts as one positive example; match.score then picks the
words that are both shared by the examples and rare among the candidates and
adds their BM25F score to the interest's own. This is Rocchio's relevance
feedback over the lexical index: on the judged set it beat a linear model
on the sentence embeddings, a nearest-example similarity and arxiv-sanity's
SVM (docs/matching.md, "Feedback").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from notifier.match import CompiledInterest, description_terms
from notifier.models import InterestExample, Verdict
from notifier.query import Term

NEGATIVE_WEIGHT = 0.5  # a word in a paper marked "not for me" counts against, half as much
# Words kept per interest before the candidates' rarity picks among them: bounds the
# lookups per interest whatever the size of an imported library.
CANDIDATE_TERMS = 200


def example_text(title: str, abstract: str) -> str:
    """Return the text an example teaches with: its title and abstract."""
    return f"{title}. {abstract}" if abstract else title


def example_terms(
    about: str | None, examples: Iterable[tuple[str, bool]]
) -> tuple[tuple[Term, float], ...]:
    """Return the words the examples share, each with its count (positive minus negative).

    examples are (text, positive) pairs; about, the interest's description,
    counts as one more positive example. Only words with a positive count are
    kept, the most shared first.
    """
    terms: dict[str, Term] = {}
    counts: dict[str, float] = {}
    texts = [(about, True)] if about and about.strip() else []
    for text, positive in [*texts, *examples]:
        weight = 1.0 if positive else -NEGATIVE_WEIGHT
        for term in description_terms(text):
            terms.setdefault(term.key, term)
            counts[term.key] = counts.get(term.key, 0.0) + weight
    kept = sorted(
        (key for key, count in counts.items() if count > 0), key=lambda k: (-counts[k], k)
    )
    return tuple((terms[key], counts[key]) for key in kept[:CANDIDATE_TERMS])


def taught(interest: CompiledInterest, examples: Sequence[InterestExample]) -> CompiledInterest:
    """Return a compiled interest with what its example papers teach."""
    if not examples:
        return interest
    learned = example_terms(
        interest.about,
        [(example_text(e.title, e.abstract), e.verdict == Verdict.MORE) for e in examples],
    )
    return replace(interest, learned=learned, examples=len(examples))

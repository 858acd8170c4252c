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


# What one interest learns from: its newest examples, each its title and the start
# of its abstract. Bounds the work of an interest taught by a 2,000-paper library
# (finding the words of 10 MB of abstracts took 16 s; these 750 kB, about 1 s,
# once per process: description_terms remembers texts).
TAUGHT_BY = 500
ABSTRACT_CHARS = 1_500


def example_text(title: str, abstract: str) -> str:
    """Return the text an example teaches with: its title and the start of its abstract."""
    return f"{title}. {abstract[:ABSTRACT_CHARS]}" if abstract else title


def example_terms(
    about: str | None, examples: Iterable[tuple[str, bool]]
) -> tuple[tuple[Term, float], ...]:
    """Return the words the examples share, each with its count (positive minus negative).

    examples are (text, positive) pairs; about, the interest's description,
    counts as one more positive example when there is a positive example at
    all (a "not for me" alone must not lift the description's own words).
    Words with a positive count come first, the most shared first, then those
    with a negative count, the most rejected first.
    """
    given = list(examples)
    texts = [(about, True)] if about and about.strip() and any(p for _, p in given) else []
    terms: dict[str, Term] = {}
    counts: dict[str, float] = {}
    for text, positive in [*texts, *given]:
        weight = 1.0 if positive else -NEGATIVE_WEIGHT
        for term in description_terms(text):
            terms.setdefault(term.key, term)
            counts[term.key] = counts.get(term.key, 0.0) + weight
    liked = sorted((k for k, c in counts.items() if c > 0), key=lambda k: (-counts[k], k))
    disliked = sorted((k for k, c in counts.items() if c < 0), key=lambda k: (counts[k], k))
    kept = liked[:CANDIDATE_TERMS] + disliked[:CANDIDATE_TERMS]
    return tuple((terms[key], counts[key]) for key in kept)


def taught(interest: CompiledInterest, examples: Sequence[InterestExample]) -> CompiledInterest:
    """Return a compiled interest with what its example papers teach."""
    if not examples:
        return interest
    newest = sorted(examples, key=lambda e: (e.created_at, e.id))[-TAUGHT_BY:]
    learned = example_terms(
        interest.about,
        [(example_text(e.title, e.abstract), e.verdict == Verdict.MORE) for e in newest],
    )
    return replace(interest, learned=learned, examples=len(examples))

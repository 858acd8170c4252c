"""Matching at scale: 100,000 subscribers x 3 interests against 500 new papers.

Prints, for the lexical and hybrid scorers, the median of 3 runs of deciding
every interest against a freshly built index (postings and per-term scores are
built inside the timed part; paper and interest embeddings are precomputed, as
they are stored in production), the cost of explaining the papers a digest
shows, a reference run of the naive per-paper loop on a sample (extrapolated),
how the time grows with subscribers and papers, and peak memory.

Run: make bench   (or .venv/bin/python bench/match_scale.py [--quick])
"""

from __future__ import annotations

import argparse
import random
import re
import resource
import statistics
import time
from collections import Counter
from dataclasses import replace

import numpy as np

from notifier.demo import seed_papers
from notifier.embedding import shared_embedder
from notifier.match import CompiledInterest, compile_interest, default_params, match_many
from notifier.paper_index import IndexedPaper, PaperIndex
from notifier.papers import embedding_input
from notifier.terms import words

SHOWN_PER_SUBSCRIBER = 30


def make_papers(n: int) -> tuple[list[IndexedPaper], np.ndarray]:
    """Return n papers (the seeds, repeated with new ids past 411) and their embeddings."""
    seeds = seed_papers()
    embedder = shared_embedder("hybrid")
    assert embedder is not None
    vectors = embedder.embed([embedding_input(p.title, p.abstract) for p in seeds])
    papers = [
        IndexedPaper(i, seeds[i % len(seeds)].title, seeds[i % len(seeds)].abstract)
        for i in range(n)
    ]
    return papers, np.stack([vectors[i % len(seeds)] for i in range(n)])


def make_interests(count: int, rng: random.Random) -> list[CompiledInterest]:
    """Return interests as subscribers write them: queries, descriptions, or both."""
    seeds = seed_papers()
    stop = {"a", "an", "and", "for", "of", "the", "to", "in", "with", "via", "on", "from", "by"}
    vocabulary = Counter(w for p in seeds for w in words(p.title) if w not in stop and len(w) > 2)
    terms = [w for w, _ in vocabulary.most_common(1500)]
    weights = [c for _, c in vocabulary.most_common(1500)]
    phrases = [
        " ".join(words(p.title)[i : i + 2])
        for p in seeds
        for i in range(0, max(len(words(p.title)) - 1, 1), 3)
    ]
    descriptions = [
        f"{rng.choice(phrases)}, {rng.choice(phrases)} and {rng.choice(phrases)}"
        for _ in range(1000)
    ]
    embedder = shared_embedder("hybrid")
    assert embedder is not None
    pool = embedder.embed(descriptions)  # "interest embeddings already stored"
    interests = []
    for i in range(count):
        a, b, c = rng.choices(terms, weights=weights, k=3)
        query = rng.choice(
            [
                f"{a} OR {b}",
                f'"{a} {b}"',
                f"{a} {b}",
                f"{a} -{b}",
                f"{a[:5]}* {b}",
                f"({a} OR {b}) {c}",
            ]
        )
        kind = rng.random()
        about = f"{rng.choice(phrases)}, {rng.choice(phrases)} and {rng.choice(phrases)}"
        if kind < 0.5:
            interest = compile_interest(f"i{i}", query, None)
        elif kind < 0.75:
            interest = compile_interest(f"i{i}", None, about)
        else:
            interest = compile_interest(f"i{i}", query, about)
        interests.append(replace(interest, vector=pool[rng.randrange(len(pool))]))
    return interests


def decide_all(
    papers: list[IndexedPaper], vectors: np.ndarray, interests: list[CompiledInterest], mode: str
) -> tuple[float, int]:
    """Time building the index and deciding every interest; return (seconds, matches)."""
    params = default_params(mode)
    started = time.perf_counter()
    index = PaperIndex(papers, vectors if mode != "lexical" else None)
    matches = sum(len(d.positions) for d in match_many(index, interests, params))
    return time.perf_counter() - started, matches


def naive_reference(papers: list[IndexedPaper], interests: list[CompiledInterest]) -> float:
    """Time the per-paper loop (a regex per query term per paper) on interests; return s."""
    started = time.perf_counter()
    for interest in interests:
        if interest.query is None:
            continue
        patterns = [
            re.compile(r"(?<!\w)" + r"\W+".join(map(re.escape, t.tokens)) + r"(?!\w)", re.I)
            for t in interest.query.terms()
        ]
        for paper in papers:
            text = f"{paper.title} {paper.abstract}"
            all(p.search(text) for p in patterns)
    return time.perf_counter() - started


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 subscribers, 1 run")
    args = parser.parse_args()
    subscribers = 10_000 if args.quick else 100_000
    runs = 1 if args.quick else 3
    rng = random.Random(7)
    papers, vectors = make_papers(500)
    interests = make_interests(3 * subscribers, rng)
    print(f"{subscribers:,} subscribers x 3 interests = {len(interests):,} interests; 500 papers")
    results = {}
    for mode in ("lexical", "hybrid"):
        times, matches = [], 0
        for _ in range(runs):
            seconds, matches = decide_all(papers, vectors, interests, mode)
            times.append(seconds)
        median = statistics.median(times)
        results[mode] = median
        per = median / len(interests) * 1e6
        print(
            f"{mode:8} median {median:6.2f} s  ({per:5.1f} µs per interest, "
            f"runs {', '.join(f'{t:.2f}' for t in times)}), {matches:,} matches"
        )
    # Reasons are built only for what a digest shows: up to 30 papers per subscriber.
    index = PaperIndex(papers, vectors)
    params = default_params("hybrid")
    sample = interests[:3000]
    decided = list(match_many(index, sample, params))
    started = time.perf_counter()
    explained = 0
    for decision in decided:
        shown = [int(p) for p in decision.positions[: SHOWN_PER_SUBSCRIBER // 3]]
        explained += len(decision.explain(index, shown))
    per_reason = (time.perf_counter() - started) / max(explained, 1)
    print(f"reasons  {per_reason * 1e6:6.1f} µs per shown paper ({explained:,} explained)")
    sample = interests[:1000]
    naive = naive_reference(papers, sample) * len(interests) / len(sample)
    print(
        f"naive per-paper loop (extrapolated from {len(sample):,} interests): {naive:6.1f} s; "
        f"lexical is {naive / results['lexical']:.0f}x faster, "
        f"hybrid {naive / results['hybrid']:.0f}x"
    )
    if not args.quick:
        print("growth (one run each):")
        for count in (25_000, 50_000):
            part = interests[: 3 * count]
            lex, _ = decide_all(papers, vectors, part, "lexical")
            hyb, _ = decide_all(papers, vectors, part, "hybrid")
            print(
                f"  {count:>7,} subscribers, 500 papers: lexical {lex:5.2f} s, hybrid {hyb:5.2f} s"
            )
        for n in (250, 1000):
            more, more_vectors = make_papers(n)
            lex, _ = decide_all(more, more_vectors, interests, "lexical")
            hyb, _ = decide_all(more, more_vectors, interests, "hybrid")
            print(
                f"  {subscribers:>7,} subscribers, {n:>4} papers: "
                f"lexical {lex:5.2f} s, hybrid {hyb:5.2f} s"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak:.0f} MB")


if __name__ == "__main__":
    main()

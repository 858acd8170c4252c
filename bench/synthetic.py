"""Make synthetic papers and subscribers for the delivery and daily-cycle benchmarks.

Papers are a snapshot listing (the format of the bundled seeds) whose titles
and abstracts each name two of 100 two-word topics; subscribers have three
interests, each a quoted topic, so a subscriber matches about 30 of 500
papers and a digest shows about 20 (max_papers 20). Everything is seeded, so
two runs make the same data.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime

from notifier import pipeline
from notifier.matching import Matching, compile_interests
from notifier.models import Interest
from notifier.storage import Storage

ADJECTIVES = (
    "sparse",
    "multimodal",
    "causal",
    "federated",
    "contrastive",
    "hierarchical",
    "probabilistic",
    "robust",
    "efficient",
    "generative",
)
NOUNS = (
    "attention",
    "retrieval",
    "planning",
    "segmentation",
    "distillation",
    "alignment",
    "tokenization",
    "navigation",
    "reasoning",
    "forecasting",
)
TOPICS = tuple(f"{a} {n}" for a in ADJECTIVES for n in NOUNS)
FILLER = (
    "we propose a method that improves results on standard benchmarks while using "
    "fewer parameters and less compute than strong baselines across several settings "
    "experiments show consistent gains and ablations explain where they come from"
).split()
HEADER = (
    "New\n\nGet trending papers in your email inbox!\n\nSubscribe\n\n"
    "byAK and the research community\n\nNov 22\n\n"
)


def listing(papers: int, seed: int = 0) -> bytes:
    """Return a snapshot listing of distinct synthetic papers, two topics each."""
    rng = random.Random(seed)
    parts = [HEADER]
    for number in range(papers):
        first, second = rng.sample(TOPICS, 2)
        title = f"{first.title()} Meets {second.title()}: Study {seed}-{number}"
        words = rng.choices(FILLER, k=120)
        words[10:10] = first.split()
        words[60:60] = second.split()
        words[100:100] = first.split()
        abstract = " ".join(words).capitalize() + "."
        parts.append(f"{title}\n\n{abstract}\n\n")
    return "".join(parts).encode()


def subscribers(count: int, seed: int = 0) -> Iterator[tuple[str, str | None, list[Interest]]]:
    """Yield subscribers (address, name, three interests on distinct topics)."""
    rng = random.Random(seed)
    for number in range(count):
        topics = rng.sample(TOPICS, 3)
        interests = [Interest(topic.replace(" ", "-"), f'"{topic}"') for topic in topics]
        yield f"reader{number}@bench.example.org", f"Reader {number}", interests


def populate(storage: Storage, count: int, now: datetime, seed: int = 0) -> None:
    """Store count subscribers and, for semantic matching, their interests' embeddings.

    Embeddings are stored as in production after a first day; the embedder's
    memory of texts it has seen makes this fast for the 100 distinct queries.
    """
    storage.add_subscribers(list(subscribers(count, seed)), now)


def embed_interests(storage: Storage, matching: Matching) -> None:
    """Compute and store every stored interest's embeddings (what a first day leaves)."""
    if matching.embedder is None:
        return
    for batch in storage.subscriber_batches(pipeline.COMPOSE_BATCH):
        interests = [i for s in batch for i in s.interests]
        compile_interests(storage, matching, interests)

"""Make synthetic papers and subscribers for the delivery, compose and daily-cycle benchmarks.

Two kinds of data, chosen with `--subscribers-from` (the papers follow):

realistic: papers name two topics of one of 15 research fields and, half of
them, a third topic (of another field, mostly), out of 271 topics
(bench/vocabulary.py), with a method and an adjective, in a title of their own
and an abstract of research prose (about 125 words, as long as the
shared-topic abstracts). Subscribers write their own interests from the same topics:
of each person's three interests, 30 % are a description in plain words (one
or two sentences, 14 phrasings; a tenth strict and a tenth broad), 40 % a
query (phrases, words, OR, -exclusions, prefix*, groups) and 30 % both, and no
two people write the same one. 15 % of subscribers belong to a lab (one per
100 subscribers) and take its three interests. Against a day's 500 papers,
with hybrid matching, a subscriber matches a median of 28 (10th-90th
percentile 11-57); a query alone a median of 6, a description 15.

shared-topics: papers name two of 100 two-word topics ("sparse retrieval");
every interest is one of those topics quoted, so a compose run decides at most
100 distinct interests, each shared by a thousand subscribers at 100,000. A
subscriber matches about 30 of 500 papers.

Everything is seeded, so two runs make the same data; a listing's seed is its
day, and no two days list the same title.
"""

from __future__ import annotations

import argparse
import functools
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime

from vocabulary import (
    ADJECTIVES,
    BACKGROUND,
    CONTRIBUTIONS,
    DETAILS,
    FIELDS,
    FINDINGS,
    LIMITATIONS,
    METHODS,
    STUDIES,
    SYLLABLES,
)

from notifier import pipeline
from notifier.matching import Matching, compile_interests
from notifier.models import Interest
from notifier.storage import Storage
from notifier.terms import stem, words

REALISTIC = "realistic"
SHARED_TOPICS = "shared-topics"
MODES = (REALISTIC, SHARED_TOPICS)

HEADER = (
    "New\n\nGet trending papers in your email inbox!\n\nSubscribe\n\n"
    "byAK and the research community\n\nNov 22\n\n"
)

Subscriber = tuple[str, str | None, list[Interest]]


def add_mode_option(parser: argparse.ArgumentParser, default: str = REALISTIC) -> None:
    """Add --subscribers-from: which synthetic subscribers (and papers) a benchmark uses."""
    parser.add_argument(
        "--subscribers-from",
        choices=MODES,
        default=default,
        help=f"realistic: every subscriber writes their own interests from a research "
        f"vocabulary; shared-topics: every interest one of 100 shared topics (default {default})",
    )


def listing(papers: int, seed: int = 0, mode: str = REALISTIC) -> bytes:
    """Return a snapshot listing of papers distinct synthetic papers (seed: the day)."""
    if mode == SHARED_TOPICS:
        return _shared_listing(papers, seed)
    return _realistic_listing(papers, seed)


def subscribers(count: int, seed: int = 0, mode: str = REALISTIC) -> Iterator[Subscriber]:
    """Yield subscribers (address, name, three interests)."""
    if mode == SHARED_TOPICS:
        return _shared_subscribers(count, seed)
    return _realistic_subscribers(count, seed)


def populate(
    storage: Storage, count: int, now: datetime, seed: int = 0, mode: str = REALISTIC
) -> int:
    """Store count subscribers, joined at now; return how many distinct interests they have."""
    made = list(subscribers(count, seed, mode))
    storage.add_subscribers(made, now)
    return len({(i.name, i.query, i.about, i.sensitivity) for _, _, mine in made for i in mine})


def embed_interests(storage: Storage, matching: Matching) -> None:
    """Compute and store every stored interest's embeddings (what a first day leaves).

    With shared topics the embedder's memory of texts it has seen makes this
    fast (100 distinct queries); realistic interests are each embedded.
    """
    if matching.embedder is None:
        return
    for batch in storage.subscriber_batches(pipeline.COMPOSE_BATCH):
        interests = [i for s in batch for i in s.interests]
        compile_interests(storage, matching, interests)


# -- shared topics ------------------------------------------------------------

SHARED_ADJECTIVES = (
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
SHARED_NOUNS = (
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
TOPICS = tuple(f"{a} {n}" for a in SHARED_ADJECTIVES for n in SHARED_NOUNS)
FILLER = (
    "we propose a method that improves results on standard benchmarks while using "
    "fewer parameters and less compute than strong baselines across several settings "
    "experiments show consistent gains and ablations explain where they come from"
).split()


def _shared_listing(papers: int, seed: int) -> bytes:
    """Return a listing whose papers each name two of the 100 shared topics."""
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


def _shared_subscribers(count: int, seed: int) -> Iterator[Subscriber]:
    """Yield subscribers whose three interests are quoted shared topics."""
    rng = random.Random(seed)
    for number in range(count):
        topics = rng.sample(TOPICS, 3)
        interests = [Interest(topic.replace(" ", "-"), f'"{topic}"') for topic in topics]
        yield f"reader{number}@bench.example.org", f"Reader {number}", interests


# -- realistic ----------------------------------------------------------------

FIELD_NAMES = tuple(FIELDS)
FIELD_WEIGHTS = tuple(weight for _, weight, _ in FIELDS.values())


def _popularity(items: Sequence[str], salt: int) -> list[float]:
    """Return a Zipf-like weight per item: a few topics are popular, most are rare."""
    order = list(range(len(items)))
    random.Random(salt).shuffle(order)
    return [1 / (1 + rank) ** 0.5 for rank in order]


TOPIC_WEIGHTS = {
    field: _popularity(topics, k) for k, (field, (_, _, topics)) in enumerate(FIELDS.items())
}
METHOD_WEIGHTS = _popularity(METHODS, 99)


def _field(rng: random.Random, avoid: str | None = None) -> str:
    """Return a field drawn by its share of papers (other than avoid)."""
    while True:
        field = rng.choices(FIELD_NAMES, FIELD_WEIGHTS)[0]
        if field != avoid:
            return field


def _topics(rng: random.Random, field: str, k: int) -> list[str]:
    """Return k distinct topics of a field, popular ones more often."""
    topics = FIELDS[field][2]
    chosen: list[str] = []
    while len(chosen) < k:
        topic = rng.choices(topics, TOPIC_WEIGHTS[field])[0]
        if topic not in chosen:
            chosen.append(topic)
    return chosen


def _other_topics(rng: random.Random, field: str, have: Sequence[str], k: int) -> list[str]:
    """Return k topics of a field, none of them in have."""
    topics = [t for t in FIELDS[field][2] if t not in have]
    weights = [
        w for t, w in zip(FIELDS[field][2], TOPIC_WEIGHTS[field], strict=True) if t not in have
    ]
    chosen: list[str] = []
    while len(chosen) < k:
        topic = rng.choices(topics, weights)[0]
        if topic not in chosen:
            chosen.append(topic)
    return chosen


def _method(rng: random.Random) -> str:
    """Return a method, popular ones more often."""
    return rng.choices(METHODS, METHOD_WEIGHTS)[0]


def _system_name(seed: int, number: int) -> str:
    """Return the name a paper gives its system ("Kalomi", "Ratozen-12"), one per (seed, number).

    (seed, number) is mixed by an odd multiplier modulo 2**24, a one-to-one
    map, so names differ for seeds up to 255 and up to 65,536 papers a day.
    """
    value = ((seed * 65_536 + number) * 0x9E3779) % 2**24
    value, syllables = divmod(value, len(SYLLABLES) ** 3)
    name = "".join(
        SYLLABLES[syllables // len(SYLLABLES) ** k % len(SYLLABLES)] for k in range(3)
    ).capitalize()
    return f"{name}-{value}" if value else name


def _title_case(text: str) -> str:
    """Return text with each word capitalised as titles do, acronyms kept."""
    small = {"and", "of", "for", "in", "with", "to", "from", "at", "on", "via"}
    return " ".join(
        w if w.lower() in small or not w.islower() else w[:1].upper() + w[1:] for w in text.split()
    )


def _a(word: str) -> str:
    """Return word with its indefinite article."""
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _realistic_listing(papers: int, seed: int) -> bytes:
    """Return a listing of papers on topics of one or two fields, each titled and named."""
    rng = random.Random(1_000 + seed)
    parts = [HEADER]
    for number in range(papers):
        title, abstract = _paper(rng, _system_name(seed, number))
        parts.append(f"{title}\n\n{abstract}\n\n")
    return "".join(parts).encode()


def _paper(rng: random.Random, name: str) -> tuple[str, str]:
    """Return the title and abstract of one paper: two topics of a field, half a third."""
    field = _field(rng)
    main, second = _topics(rng, field, 2)
    # Half the papers reach into another field (or a third topic of their own).
    third = None
    if rng.random() < 0.5:
        third = _topics(rng, _field(rng, field) if rng.random() < 0.6 else field, 1)[0]
    method, adjective = _method(rng), rng.choice(ADJECTIVES)
    title = rng.choice(
        (
            f"{adjective} {main} with {method}",
            f"towards {adjective} {main} via {second}",
            f"{main} meets {third or method}",
            f"rethinking {main} for {second}",
            f"on the {rng.choice(STUDIES)} of {method} in {main}",
            f"learning {main} from {second}",
            f"{main} at scale",
            f"{adjective} {method} for {main} and {second}",
        )
    )
    sentences = [
        rng.choice(
            (
                f"{main.capitalize()} is a central problem, but {rng.choice(LIMITATIONS)}.",
                f"Recent progress in {main} has been driven by {method}, "
                f"yet {rng.choice(LIMITATIONS)}.",
                f"We study {main} in the context of {second}.",
                f"{main.capitalize()} and {second} are usually treated separately.",
            )
        ),
        *rng.sample(BACKGROUND, 2),
        f"We present {name}, {_a(adjective)} approach to {main} that "
        f"{rng.choice(CONTRIBUTIONS)} {second} using {method}.",
        *(
            detail.format(m=method, a=main, b=second, j=rng.choice(ADJECTIVES))
            for detail in rng.sample(DETAILS, 2)
        ),
        *rng.sample(FINDINGS, 4),
    ]
    if third is not None:
        sentences.insert(
            4,
            rng.choice(
                (
                    f"Unlike prior work, {name} {rng.choice(CONTRIBUTIONS)} {third}.",
                    f"We further show how the same idea applies to {third}.",
                    f"Our formulation connects {main} to {third}.",
                    f"A key ingredient is {_a(rng.choice(ADJECTIVES))} treatment of {third}.",
                )
            ),
        )
    if rng.random() < 0.3:
        area = FIELDS[field][0]
        sentences.insert(-4, f"We evaluate {name} on {main} benchmarks from {area}.")
    return _title_case(f"{name}: {title[:1].upper()}{title[1:]}"), " ".join(sentences)


# Share of subscribers who belong to a lab and take its three interests.
LAB_SHARE = 0.15
SUBSCRIBERS_PER_LAB = 100  # one lab per this many subscribers
SENSITIVITIES = ("normal",) * 8 + ("strict", "broad")


def _realistic_subscribers(count: int, seed: int) -> Iterator[Subscriber]:
    """Yield subscribers who wrote their own interests; a few share their lab's."""
    rng = random.Random(2_000 + seed)
    written: set[tuple[str | None, str | None]] = set()
    labs = [_person(rng, written) for _ in range(max(1, count // SUBSCRIBERS_PER_LAB))]
    for number in range(count):
        if rng.random() < LAB_SHARE:
            interests = labs[rng.randrange(len(labs))]
        else:
            interests = _person(rng, written)
        yield f"reader{number}@bench.example.org", f"Reader {number}", interests


def _person(rng: random.Random, written: set[tuple[str | None, str | None]]) -> list[Interest]:
    """Return three interests of one person, none written by anyone before."""
    home = _field(rng)
    interests: list[Interest] = []
    names: set[str] = set()
    while len(interests) < 3:
        field = home if rng.random() < 0.7 else _field(rng, home)
        interest = _interest(rng, field)
        key = (interest.query, interest.about)
        if key in written:
            continue
        written.add(key)
        name = interest.name
        while name in names:
            name += "-2"
        names.add(name)
        interests.append(Interest(name, interest.query, interest.about, interest.sensitivity))
    return interests


def _interest(rng: random.Random, field: str) -> Interest:
    """Return one interest in a field: a description, a query, or both."""
    topics = _topics(rng, field, rng.choice((1, 1, 2, 2, 3)))
    name = re.sub(r"[^a-z0-9]+", "-", topics[0].lower()).strip("-")
    kind = rng.random()
    query = _query(rng, field, topics) if kind >= 0.3 else None
    about = _description(rng, field, topics) if kind < 0.6 else None
    sensitivity = rng.choice(SENSITIVITIES) if about else "normal"
    return Interest(name, query, about, sensitivity)


@functools.cache
def _common_stems() -> frozenset[str]:
    """Return the stems in more than 3 % of a day's papers, or in several topics.

    Nobody follows "learning" or "separately" alone; "servoing" they might.
    """
    names = [t for _, _, topics in FIELDS.values() for t in topics] + list(METHODS)
    in_topics = Counter(s for name in names for s in {stem(w) for w in words(name)})
    text = _realistic_listing(500, seed=0).decode().split("\n\n")[6:]
    in_papers = Counter(s for paper in text for s in {stem(w) for w in words(paper)})
    return frozenset(
        s for s in in_topics.keys() | in_papers.keys() if in_topics[s] > 1 or in_papers[s] > 15
    )


def _words(topic: str) -> list[str]:
    """Return a topic's words of four letters or more (those a query would use)."""
    found = re.split(r"[\s-]+", topic)
    return [w for w in found if len(w) >= 4] or found


def _rare_words(topic: str) -> list[str]:
    """Return the words of a topic someone might follow alone ("servoing", not "learning")."""
    return [w for w in _words(topic) if stem(w.lower()) not in _common_stems()]


def _distinctive(topic: str) -> str:
    """Return the topic's longest rare word, else the topic quoted."""
    rare = _rare_words(topic)
    return max(rare, key=len) if rare else _quoted(topic)


def _quoted(topic: str) -> str:
    """Return a topic as a query writes it: a phrase in quotes, one word bare."""
    return f'"{topic}"' if " " in topic or "-" in topic else topic


def _query(rng: random.Random, field: str, topics: list[str]) -> str:
    """Return a query on the topics, in one of the shapes people write."""
    quoted = [_quoted(t) for t in topics]
    other = _other_topics(rng, field, topics, 1)[0]
    shape = rng.randrange(8)
    if shape == 0:
        return " OR ".join(quoted)
    if shape == 1:
        return " OR ".join([*quoted, _quoted(other)])
    rare = _rare_words(topics[0])
    if shape == 2 and len(rare) >= 2:  # words, all required
        return " ".join(rare)
    if shape == 3:
        return f"{' OR '.join(quoted)} -{_distinctive(other)}"
    if shape == 4 and rare:  # a word's stem as a prefix, and the topic's other rare words
        longest = max(rare, key=len)
        return " ".join([f"{stem(longest.lower())}*", *(w for w in rare if w != longest)])
    if shape == 5:
        return f"({' OR '.join(quoted)}) {_distinctive(_method(rng))}"
    if shape == 6:
        return " OR ".join(dict.fromkeys([*(_distinctive(t) for t in topics), quoted[0]]))
    return f"{' OR '.join(quoted)} -{_quoted(other)}"


def _description(rng: random.Random, field: str, topics: list[str]) -> str:
    """Return a description of the topics in plain words, one or two sentences."""
    a, b, c = (topics + _other_topics(rng, field, topics, 3))[:3]
    method, adjective, area = _method(rng), rng.choice(ADJECTIVES), FIELDS[field][0]
    text = rng.choice(
        (
            f"{a}, {b} and {c}",
            f"I'm interested in {a}, especially {b}.",
            f"Papers on {a} that use {method}.",
            f"New methods for {a} and their applications in {area}.",
            f"Anything about {a} or {b}.",
            f"My group works on {a}. I want to follow work on {b} and {c}.",
            f"{a} - in particular {adjective} approaches and {b}",
            f"Work applying {method} to {a}; also {b}.",
            f"{adjective} {a} for {b}, e.g. with {method}",
            f"I follow research on {a} in {area}: {b}, {c}, benchmarks and open problems.",
            f"How {method} can help with {a} and {b}",
            f"{a} ({b}, {c}) and how to evaluate it",
            f"Theory and practice of {a}, with a focus on {adjective} methods.",
            f"Using {a} for {b}. Also interested in {c}.",
        )
    )
    return text[:1].upper() + text[1:]

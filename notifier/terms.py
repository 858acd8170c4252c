"""Words as matching sees them: casefolded tokens, stems, and words that say nothing. Pure.

Queries, descriptions, the paper index and the highlighting in emails all
fold words the same way, the way search engines do: `model` finds `models`,
`policy` finds `policies`, `learned` finds `learning` (the Snowball English
stemmer, "Porter2": https://snowballstem.org/algorithms/english/stemmer.html).
"""

from __future__ import annotations

import functools
import re
import threading

import Stemmer

_WORD = re.compile(r"\w+")

# Function words: they carry no topic in a query or a description.
STOPWORDS = frozenset(
    "a an and are as at be by for from has have in into is it its of on or that the their "
    "them these this those to was were with without via using use used we our us can about "
    "also other such e g eg etc i ie my me im am want interested interest interests "
    "work works working papers paper anything everything things thing any all how what "
    "which who whose where when why do does doing done more most less much many some "
    "very well just like especially particularly mainly mostly either both each new".split()
)

# The filler of research prose: words every abstract uses whatever its topic.
# A description's "making models better" must neither pick papers nor be
# quoted as the reason one was picked. Matched by exact form, so
# each inflection is listed.
FILLER_WORDS = frozenset(
    "approach approaches method methods technique techniques framework frameworks "
    "model models modeling modelling system systems algorithm algorithms "
    "make making makes made better best good improve improving improved improvement "
    "improvements enhance enhancing novel propose proposed proposes present presents "
    "show shows shown study studies studying result results performance perform "
    "task tasks problem problems setting settings based towards toward via "
    "efficient effective effectively simple general generally various different "
    "large small high low learn learning learned learns learnt train training trained "
    "data dataset datasets experiment experiments evaluate evaluation evaluations "
    "benchmark benchmarks analysis analyze understand understanding "
    "recent recently research field area areas topic topics application applications "
    "apply applied applying related relevant including include includes "
    "control controls controlling way ways help helps helping allow allows enable "
    "enables enabling given give gives one two three first second across within "
    "able ability abilities capability capabilities improves enhances enhanced "
    "showing showed studied trains evaluating evaluated allow allowed allowing enable "
    "enabled presents presented proposing".split()
)


class _Stemmers(threading.local):
    """One Snowball stemmer per thread: a PyStemmer object is not thread-safe."""

    def __init__(self) -> None:
        self.english = Stemmer.Stemmer("english")


_STEMMERS = _Stemmers()


def words(text: str) -> list[str]:
    """Return the casefolded words of a text, as the index and the queries see them."""
    return [w.casefold() for w in _WORD.findall(text)]


_VOWELS = frozenset("aeiouy")
# Agent nouns name a thing of their own ("transformer", "optimizer", "encoder",
# "controller"): Snowball folds them into their verb (transform, optim, encod,
# control), which a query, a hard filter, must not do. They fold their plural only.
_AGENT_NOUN = ("er", "or", "ers", "ors")


@functools.lru_cache(maxsize=262_144)
def stem(word: str) -> str:
    """Return a casefolded word's stem (plural and inflection folded); bounded cache."""
    if len(word) <= 3 or not word.isalpha():
        return word  # "rl", "gpt", "s4", "3d": short words and codes stay as they are
    if word.endswith("s") and not _VOWELS.intersection(word[:-1]):
        return word[:-1]  # an acronym's plural: "llms", "gnns", "mdps"
    if word.endswith(_AGENT_NOUN) and len(word) > 5:
        return word.removesuffix("s")
    result: str = _STEMMERS.english.stemWord(word)
    return result


def is_stopword(word: str) -> bool:
    """Return whether a casefolded word is a function word (no topic at all)."""
    return word in STOPWORDS or len(word) < 2


def is_filler(word: str) -> bool:
    """Return whether a casefolded word says nothing about a topic (function word or filler).

    By its exact form, not its stem: "relation" or "experience" share a stem with
    filler ("relative", "experiment") and are topics all the same.
    """
    return is_stopword(word) or word in FILLER_WORDS

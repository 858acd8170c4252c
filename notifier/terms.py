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
    "also other such e g eg etc i ie my me i'm im am want interested interest interests "
    "work works working papers paper anything everything things thing any all how what "
    "which who whose where when why do does doing done more most less much many some "
    "very well just like especially particularly mainly mostly either both each new".split()
)

# The filler of research prose: words every abstract uses whatever its topic.
# A description's "making models better" must neither pick papers nor be
# quoted as the reason one was picked (issue 20). Matched by stem, so one
# entry covers its inflections ("improve", "improving", "improved").
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
    "able ability abilities capability capabilities".split()
)


class _Stemmers(threading.local):
    """One Snowball stemmer per thread: a PyStemmer object is not thread-safe."""

    def __init__(self) -> None:
        self.english = Stemmer.Stemmer("english")


_STEMMERS = _Stemmers()


def words(text: str) -> list[str]:
    """Return the casefolded words of a text, as the index and the queries see them."""
    return [w.casefold() for w in _WORD.findall(text)]


@functools.lru_cache(maxsize=262_144)
def stem(word: str) -> str:
    """Return a casefolded word's stem (plural and inflection folded); bounded cache."""
    if len(word) <= 3 or not word.isalpha():
        return word  # "rl", "gpt", "s4", "3d": short words and codes stay as they are
    result: str = _STEMMERS.english.stemWord(word)
    return result


_SILENT_STEMS = frozenset(stem(w) for w in FILLER_WORDS | STOPWORDS)


def is_stopword(word: str) -> bool:
    """Return whether a casefolded word is a function word (no topic at all)."""
    return word in STOPWORDS or len(word) < 2


def is_filler(word: str) -> bool:
    """Return whether a casefolded word says nothing about a topic (function word or filler)."""
    return is_stopword(word) or stem(word) in _SILENT_STEMS

"""Rendering: Jinja2 emails and feedgen feeds from frozen data. Pure apart from template loading."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    pass_environment,
    select_autoescape,
)
from markupsafe import Markup, escape

from notifier.terms import stem, words

_PACKAGED = Path(__file__).resolve().parent.parent / "_templates"  # inside a built wheel
_SOURCE_TREE = Path(__file__).resolve().parent.parent.parent / "templates"  # a checkout


def default_templates_dir() -> Path:
    """Return the templates shipped with notifier (the wheel's copy, else the checkout's)."""
    return _PACKAGED if _PACKAGED.is_dir() else _SOURCE_TREE


def make_environment(templates_dir: Path | None = None) -> Environment:
    """Build the Jinja2 environment: a user's templates_dir overrides defaults file by file."""
    loaders = [FileSystemLoader(templates_dir)] if templates_dir else []
    loaders.append(FileSystemLoader(default_templates_dir()))
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["highlight"] = highlight
    env.filters["wordwrap"] = _remembered(env.filters["wordwrap"])
    env.filters["truncate"] = _remembered(env.filters["truncate"])
    return env


def _remembered(jinja_filter: Callable[..., Any]) -> Callable[..., Any]:
    """Return a Jinja filter that gives back its result for arguments seen recently.

    A paper's block is rendered again for every interest it matched (the
    reason and the marked terms differ), and wrapping its abstract for the
    text part was a fifth of that; the abstract is the same each time.
    """
    remember = functools.lru_cache(maxsize=4096)(jinja_filter)

    @pass_environment
    def remembered(environment: Environment, text: Any, *args: Any, **kwargs: Any) -> Any:
        # Plain text only: Markup equals its text but the filters treat it apart.
        if type(text) is not str:
            return jinja_filter(environment, text, *args, **kwargs)
        try:
            return remember(environment, text, *args, **kwargs)
        except TypeError:  # an argument that cannot be a key: work it out
            return jinja_filter(environment, text, *args, **kwargs)

    return remembered


def highlight(text: str, terms: Sequence[str]) -> Markup:
    """Return text HTML-escaped with each matched term wrapped in <mark>, as matching folds words.

    A term is a word or phrase (`world models`: every inflection, as the
    query matched), `=models` (that form only) or a prefix (`robot*`).
    Where terms overlap, the leftmost wins, and the longest of those that
    start at the same word.
    """
    # Plain text only: Markup equals its text but is escaped apart.
    if type(text) is str and type(terms) is tuple:
        return _highlighted(text, terms)
    return _highlight(text, terms)


# A paper's title and abstract are marked again for every interest that found the
# same terms in it (a digest paper's terms are a tuple). A day's 500 papers found
# by 10,000 subscribers' own interests make some 90,000 pairs, met in no order:
# 16,384 results (some 15 MB) found three in four again, 4,096 two in five.
@functools.lru_cache(maxsize=16_384)
def _highlighted(text: str, terms: tuple[str, ...]) -> Markup:
    """Return highlight(text, terms), remembered for recent texts and terms."""
    return _highlight(text, terms)


def _highlight(text: str, terms: Sequence[str]) -> Markup:
    """Return text escaped and marked (see highlight)."""
    escaped = str(escape(text))
    wanted = [w for w in map(_highlight_term, terms) if w]
    if not wanted:
        return Markup(escaped)
    words_of = _markable(escaped)
    spans, stems = words_of.spans, words_of.stems
    # Each term is looked for only where its first word stands (a text's words are
    # filed by stem and by form once), not checked at every word of the text.
    longest: dict[int, int] = {}
    for w in wanted:
        kind, form = w[0]
        if kind == "~":
            starts: Iterable[int] = words_of.by_stem.get(form, ())
        elif kind == "=":
            starts = words_of.by_form.get(form, ())
        else:
            starts = (i for i, span in enumerate(spans) if span[2].startswith(form))
        for i in starts:
            if len(w) > longest.get(i, 0) and _starts_at(escaped, spans, stems, i, w):
                longest[i] = len(w)
    out, last, after = [], 0, 0
    for i in sorted(longest):
        if i < after:
            continue  # inside a term marked already
        after = i + longest[i]
        start, end = spans[i][0], spans[after - 1][1]
        out += [escaped[last:start], f"<mark>{escaped[start:end]}</mark>"]
        last = end
    out.append(escaped[last:])
    return Markup("".join(out))


_MARKABLE = re.compile(r"(?<![\w&#])\w+")
_Wanted = tuple[tuple[str, str], ...]  # per word: (how it matches: ~ = *, the form)


@functools.lru_cache(maxsize=16_384)
def _highlight_term(term: str) -> _Wanted:
    """Return how each word of a matched term is recognised in text."""
    kind = "=" if term.startswith("=") else "*" if term.endswith("*") else "~"
    parts = words(term.strip("=*"))
    return tuple((kind, stem(p) if kind == "~" else p) for p in parts)


class _Markable(NamedTuple):
    """The words of an escaped text, where they stand, and where each stem and form is."""

    spans: tuple[tuple[int, int, str], ...]  # start, end, casefolded word
    stems: tuple[str, ...]
    by_stem: dict[str, list[int]]
    by_form: dict[str, list[int]]


# A day's digests show a few hundred papers: their titles and abstracts, at
# up to some 60 kB each (offsets, words, stems and their positions of 200 words).
@functools.lru_cache(maxsize=1024)
def _markable(escaped: str) -> _Markable:
    """Return the words of escaped text not inside an entity (&amp;), with their stems.

    Kept for recent texts: a paper's title and abstract are marked again for
    each interest it matched.
    """
    spans = tuple((m.start(), m.end(), m.group(0).casefold()) for m in _MARKABLE.finditer(escaped))
    stems = tuple(stem(word) for _, _, word in spans)
    by_stem: dict[str, list[int]] = {}
    by_form: dict[str, list[int]] = {}
    for i, (word_stem, (_, _, word)) in enumerate(zip(stems, spans, strict=True)):
        by_stem.setdefault(word_stem, []).append(i)
        by_form.setdefault(word, []).append(i)
    return _Markable(spans, stems, by_stem, by_form)


def _starts_at(
    text: str,
    spans: Sequence[tuple[int, int, str]],
    stems: Sequence[str],
    i: int,
    wanted: _Wanted,
) -> bool:
    """Return whether the words from spans[i] on are the term, joined by spaces or hyphens."""
    if i + len(wanted) > len(spans):
        return False
    for k, (kind, form) in enumerate(wanted):
        word = spans[i + k][2]
        if k and _JOINER.fullmatch(text, spans[i + k - 1][1], spans[i + k][0]) is None:
            return False
        if kind == "~" and stems[i + k] != form:
            return False
        if kind == "=" and word != form:
            return False
        if kind == "*" and not word.startswith(form):
            return False
    return True


_JOINER = re.compile(r"[\s\-]+")

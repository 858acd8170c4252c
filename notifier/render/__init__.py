"""Rendering: Jinja2 emails and feedgen feeds from frozen data. Pure apart from template loading."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape
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
    return env


def highlight(text: str, terms: Sequence[str]) -> Markup:
    """Return text HTML-escaped with each matched term wrapped in <mark>, as matching folds words.

    A term is a word or phrase (`world models`: every inflection, as the
    query matched), `=models` (that form only) or a prefix (`robot*`).
    """
    escaped = str(escape(text))
    wanted = [_highlight_term(term) for term in terms]
    wanted = [w for w in wanted if w]
    if not wanted:
        return Markup(escaped)
    # Words not inside an entity (&amp;), with where each starts and ends.
    spans = [(m.start(), m.end(), m.group(0).casefold()) for m in _MARKABLE.finditer(escaped)]
    marks: list[tuple[int, int]] = []
    i = 0
    while i < len(spans):
        length = max((len(w) for w in wanted if _starts_at(escaped, spans, i, w)), default=0)
        if length:
            marks.append((spans[i][0], spans[i + length - 1][1]))
            i += length
        else:
            i += 1
    out, last = [], 0
    for start, end in marks:
        out += [escaped[last:start], f"<mark>{escaped[start:end]}</mark>"]
        last = end
    out.append(escaped[last:])
    return Markup("".join(out))


_MARKABLE = re.compile(r"(?<![\w&#])\w+")
_Wanted = tuple[tuple[str, str], ...]  # per word: (how it matches: ~ = *, the form)


def _highlight_term(term: str) -> _Wanted:
    """Return how each word of a matched term is recognised in text."""
    kind = "=" if term.startswith("=") else "*" if term.endswith("*") else "~"
    parts = words(term.strip("=*"))
    return tuple((kind, stem(p) if kind == "~" else p) for p in parts)


def _starts_at(text: str, spans: list[tuple[int, int, str]], i: int, wanted: _Wanted) -> bool:
    """Return whether the words from spans[i] on are the term, joined by spaces or hyphens."""
    if i + len(wanted) > len(spans):
        return False
    for k, (kind, form) in enumerate(wanted):
        word = spans[i + k][2]
        if k and _JOINER.fullmatch(text, spans[i + k - 1][1], spans[i + k][0]) is None:
            return False
        if kind == "~" and stem(word) != form:
            return False
        if kind == "=" and word != form:
            return False
        if kind == "*" and not word.startswith(form):
            return False
    return True


_JOINER = re.compile(r"[\s\-]+")

"""Rendering: Jinja2 emails and feedgen feeds from frozen data. Pure apart from template loading."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

_WORD = re.compile(r"\w+")

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
    """Return text HTML-escaped with each matched query term wrapped in <mark>."""
    escaped = str(escape(text))
    patterns = []
    for term in terms:
        prefix = term.endswith("*")
        parts = _WORD.findall(term.rstrip("*"))
        if parts:
            body = r"[\s\-]+".join(re.escape(p) for p in parts) + (r"\w*" if prefix else "")
            patterns.append(body)
    if not patterns:
        return Markup(escaped)
    # Not inside an entity (&amp;) and on word boundaries, as the query matched.
    pattern = re.compile(rf"(?<![\w&#])(?:{'|'.join(patterns)})(?!\w)", re.IGNORECASE)
    return Markup(pattern.sub(lambda m: f"<mark>{m.group(0)}</mark>", escaped))

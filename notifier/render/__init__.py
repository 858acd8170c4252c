"""Rendering: Jinja2 emails and feedgen feeds from frozen data. Pure apart from template loading."""

from __future__ import annotations

from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

_PACKAGED = Path(__file__).resolve().parent.parent / "_templates"  # inside a built wheel
_SOURCE_TREE = Path(__file__).resolve().parent.parent.parent / "templates"  # a checkout


def default_templates_dir() -> Path:
    """Return the templates shipped with notifier (the wheel's copy, else the checkout's)."""
    return _PACKAGED if _PACKAGED.is_dir() else _SOURCE_TREE


def make_environment(templates_dir: Path | None = None) -> Environment:
    """Build the Jinja2 environment: a user's templates_dir overrides defaults file by file."""
    loaders = [FileSystemLoader(templates_dir)] if templates_dir else []
    loaders.append(FileSystemLoader(default_templates_dir()))
    return Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )

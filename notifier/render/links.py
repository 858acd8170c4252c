"""A paper's feedback links in digests and private feeds: signed per purpose, paper, interest."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from jinja2 import Template
from markupsafe import escape

from notifier.render.shell import InlinedTemplate
from notifier.tokens import LinkTokens, PaperLink, Purpose


@dataclass(frozen=True, slots=True)
class PaperLinks:
    """A paper's "more like this", "not for me" and "mute an author" links."""

    more: str
    less: str
    mute: str | None  # None when the paper names no authors


def paper_links(  # noqa: PLR0917
    tokens: LinkTokens,
    base_url: str,
    manage_key: str,
    paper_id: int,
    interest: str,
    has_authors: bool,
    at: float | None = None,
) -> PaperLinks:
    """Return a paper's feedback links for one subscriber and interest, dated at (default now)."""
    link = PaperLink(manage_key, paper_id, interest)
    return PaperLinks(
        more=f"{base_url}/more/{tokens.make_paper(Purpose.MORE, link, at)}",
        less=f"{base_url}/less/{tokens.make_paper(Purpose.LESS, link, at)}",
        mute=f"{base_url}/mute/{tokens.make_paper(Purpose.MUTE, link, at)}"
        if has_authors
        else None,
    )


class LinkFragments:
    """Render a paper's feedback links: the templates once per shape, each paper's URLs filled in.

    The links differ for every subscriber and paper, so the fragments could not
    be shared like the paper blocks; rendering and inlining them per paper made
    a digest 1.7 times as slow to render. The templates are rendered with
    random markers instead of URLs, once with and once without a mute link, and
    kept when filling other markers in gives exactly what rendering them does;
    otherwise (a custom template that transforms the URLs) each is rendered.
    """

    def __init__(self, html: InlinedTemplate, text: Template) -> None:
        self._html = html
        self._text = text
        self._shapes: dict[bool, tuple[list[str], list[str]] | None] = {}

    def render(self, links: PaperLinks) -> tuple[str, str]:
        """Return the HTML and text fragments of a paper's links."""
        muting = links.mute is not None
        if muting not in self._shapes:
            self._shapes[muting] = self._shape(muting)
        shape = self._shapes[muting]
        if shape is None:
            return self._rendered(links)
        values = (links.more, links.less, links.mute or "")
        return _filled(shape[0], [str(escape(v)) for v in values]), _filled(shape[1], values)

    def _rendered(self, links: PaperLinks) -> tuple[str, str]:
        """Return the fragments rendered from the templates."""
        return self._html.render({"links": links}).rstrip("\n"), self._text.render(links=links)

    def _shape(self, muting: bool) -> tuple[list[str], list[str]] | None:
        """Return the fragments split at each URL, or None if filling them in is not exact."""
        first, second = (_markers(muting) for _ in range(2))
        html, text = self._rendered(first)
        marks = [m for m in (first.more, first.less, first.mute) if m is not None]
        pattern = re.compile("|".join(marks))
        if any(html.count(m) != 1 or text.count(m) != 1 for m in marks):
            return None
        index = {m: k for k, m in enumerate((first.more, first.less, first.mute or ""))}
        shape = (_split(pattern, html, index), _split(pattern, text, index))
        values = (second.more, second.less, second.mute or "")
        if (_filled(shape[0], list(values)), _filled(shape[1], values)) != self._rendered(second):
            return None
        return shape


def _markers(muting: bool) -> PaperLinks:
    """Return random stand-ins for a paper's three URLs (letters and digits only)."""
    more, less, mute = (f"notifierlink{secrets.token_hex(8)}" for _ in range(3))
    return PaperLinks(more, less, mute if muting else None)


def _split(pattern: re.Pattern[str], rendered: str, index: dict[str, int]) -> list[str]:
    """Return rendered as text, slot number (as a string of its index), text, ..."""
    parts: list[str] = []
    last = 0
    for found in pattern.finditer(rendered):
        parts += [rendered[last : found.start()], str(index[found.group(0)])]
        last = found.end()
    return [*parts, rendered[last:]]


def _filled(shape: list[str], values: Sequence[str]) -> str:
    """Return a split fragment with its URLs in their slots."""
    return "".join(values[int(part)] if k % 2 else part for k, part in enumerate(shape))

"""A digest paper's HTML and text blocks, rendered once per paper and filled with each reason.

Subscribers who write their own interests are shown a paper for reasons of
their own ("words “world models”", "close to “planning” (0.71)"), with a
score of their own, so whole blocks are rarely shared. When the paper
templates only print the reason where it stands and never read the score,
a block is rendered once per paper, marked terms and "also matches", with a
random placeholder for the reason, and each reason is put in its place: the
output is what rendering the block for that reason gives, without running
the templates again. Otherwise, or for a reason CSS could see (empty, or
with characters the HTML parser changes), each block is rendered whole.
"""

from __future__ import annotations

import collections
import re
import secrets
import threading
from dataclasses import fields, replace
from typing import Any

import css_inline
from jinja2 import Environment, meta, nodes
from markupsafe import escape

from notifier.models import DigestPaper
from notifier.papers import http_url
from notifier.render.mime import Chunk, chunk
from notifier.render.shell import InlinedTemplate, template_tree

HTML_TEMPLATE = "email/paper.html.j2"
TEXT_TEMPLATE = "email/paper.txt.j2"
# What a body depends on: every field of a digest paper but the reason and the
# score (which the templates do not read where bodies are shared).
_BODY_FIELDS = tuple(f.name for f in fields(DigestPaper) if f.name not in ("reason", "score"))
# Reasons the HTML parser would read differently from their text: never filled in.
_UNFILLABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def linkable(paper: DigestPaper) -> DigestPaper:
    """Return a paper with only absolute http(s) links, "" or None in place of any other.

    Papers frozen into digests before links were checked at ingest may still
    hold a javascript: or data: URL; templates, custom ones included, only ever
    see links fit for an href.
    """
    url, code_url = http_url(paper.url) or "", http_url(paper.code_url)
    project_url = http_url(paper.project_url)
    if (url, code_url, project_url) == (paper.url, paper.code_url, paper.project_url):
        return paper
    return replace(paper, url=url, code_url=code_url, project_url=project_url)


# Inlined skeletons and bodies kept per sender (a few kB each): a day's papers, each
# marked for a handful of term sets. With 10,000 subscribers' own interests a day
# makes some 45,000 bodies, met in no order.
SHAPES = 4096
BODIES = 16_384


class PaperBlocks:
    """Render digest papers into HTML and text blocks, sharing what their reasons leave alike."""

    def __init__(self, env: Environment, inliner: css_inline.CSSInliner, css: str) -> None:
        # A paper's title and abstract, marked for the terms an interest found, make
        # its skeleton; the rest is filled in, so different interests that found the
        # same terms in a paper share one inlining (render/shell.py).
        self._html = InlinedTemplate(env, HTML_TEMPLATE, inliner, SHAPES, fragment_css=css)
        self._text = env.get_template(TEXT_TEMPLATE)
        self._placeholder = f"notifierreason{secrets.token_hex(8)}"
        self._fillable = _prints_reason_only(env, HTML_TEMPLATE) and _prints_reason_only(
            env, TEXT_TEMPLATE
        )
        self._inside_tag = re.compile(f"<[^>]*{self._placeholder}")
        self._bodies: collections.OrderedDict[tuple[Any, ...], tuple[str, str] | None] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def render(self, paper: DigestPaper) -> tuple[Chunk, Chunk]:
        """Return a paper's HTML and text blocks."""
        shown = linkable(paper)
        reason = shown.reason
        if self._fillable and reason.strip() and not _UNFILLABLE.search(reason):
            body = self._body(shown)
            if body is not None:
                html, text = body
                return (
                    chunk(html.replace(self._placeholder, escape(reason))),
                    chunk(text.replace(self._placeholder, reason)),
                )
        return self._whole(shown)

    def _body(self, paper: DigestPaper) -> tuple[str, str] | None:
        """Return the paper's blocks with the placeholder for a reason, rendered once."""
        key = tuple(getattr(paper, name) for name in _BODY_FIELDS)
        bodies = self._bodies
        with self._lock:  # a daemon's jobs may render at once
            if key in bodies:
                bodies.move_to_end(key)
                return bodies[key]
        body = self._placeholder_body(replace(paper, reason=self._placeholder, score=0.0))
        with self._lock:
            bodies[key] = body
            if len(bodies) > BODIES:
                bodies.popitem(last=False)
        return body

    def _whole(self, paper: DigestPaper) -> tuple[Chunk, Chunk]:
        """Return the blocks of a paper rendered as they are."""
        html = self._html.render({"paper": paper})
        return chunk(html.rstrip("\n")), chunk(self._text.render(paper=paper))

    def _placeholder_body(self, paper: DigestPaper) -> tuple[str, str] | None:
        """Return the blocks with the placeholder reason, or None if it is not plain text there."""
        html = self._html.render({"paper": paper}).rstrip("\n")
        text = self._text.render(paper=paper)
        if self._inside_tag.search(html) or self._placeholder not in html + text:
            return None  # in an attribute (CSS might see it), or not printed as written
        return html, text


def _prints_reason_only(env: Environment, name: str) -> bool:
    """Tell whether a paper template prints paper.reason as it is and never reads paper.score.

    Then the reason changes nothing but its own place in the output. Any other
    use of the paper as a whole (passed to a macro, looped over, filtered) or
    of the reason (tested, filtered, joined), or another template pulled in,
    says no.
    """
    tree = template_tree(env, name)
    if tree is None or any(True for _ in meta.find_referenced_templates(tree)):
        return False
    return _only_printed(tree, printed=False)


def _only_printed(node: nodes.Node, printed: bool) -> bool:
    """Check node and its children: the reason printed directly, the paper read field by field."""
    if isinstance(node, nodes.Getattr | nodes.Getitem) and _is_paper(node.node):
        field = node.attr if isinstance(node, nodes.Getattr) else _constant(node.arg)
        return field not in (None, "score") and (field != "reason" or printed)
    if _is_paper(node):
        return False  # the paper as a whole: anything could read its reason
    direct = isinstance(node, nodes.Output)  # its children are what it prints
    return all(_only_printed(child, printed=direct) for child in node.iter_child_nodes())


def _is_paper(node: nodes.Node) -> bool:
    """Tell whether a node is the template's `paper` variable."""
    return isinstance(node, nodes.Name) and node.name == "paper"


def _constant(node: nodes.Node) -> str | None:
    """Return a constant string subscript (paper["reason"]), else None."""
    return node.value if isinstance(node, nodes.Const) and isinstance(node.value, str) else None

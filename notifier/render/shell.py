"""Inline the CSS of an HTML template once per shape of page, not once per render.

css_inline parses the page and its CSS and matches every selector on each
call: about 0.2 ms for a digest's shell, the largest single cost of a message
to the sender. Which rules apply to an element depends on the elements, their
classes and ids and where they stand, not on the text a subscriber's name or
links put in them. So the template is rendered with each printed value
({{ ... }}) replaced by a slot marker (Jinja's finalize), which gives a
skeleton shared by every render that took the same branches; the skeleton is
inlined once and each render's escaped values go back into its slots.

A value is slotted only where CSS cannot see it: text outside <style> and
<script>, a comment, or the value of an attribute other than class, id,
style, lang and dir, on a tag other than link, style, script and base, when
the page's CSS has no attribute selector. A skeleton with a slot anywhere
else, or whose slots do not all come back from the inliner exactly once, is
inlined whole for every render, as before. The result differs from inlining
the whole page only in how the values are escaped (Jinja's &#39; where
html5ever would write '), which is the same HTML.

A fragment styled by a stylesheet of its own (a digest's paper block and
digest.css) is inlined the same way: its skeleton is the paper's title and
abstract with the matched terms marked, so the interests that found the same
terms in a paper share one inlining whatever their reasons.
"""

from __future__ import annotations

import functools
import re
import secrets
from typing import Any

import css_inline
from jinja2 import Environment, TemplateNotFound, meta, nodes, pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

# The context variable that carries one render's slot values to finalize.
_SLOTS = "_notifier_shell_slots"
# Values the HTML parser would change, not only re-escape: kept in the skeleton.
_PARSER_CHANGES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# A tag ends at the first > outside quotes: title="a > b" is one attribute.
_TAG = re.compile(
    r"""<!--.*?-->|<(/?)([A-Za-z][^\s/>]*)((?:[^>"']|"[^"]*"|'[^']*')*)>""", re.DOTALL
)
_ATTRIBUTE = re.compile(r"""([^\s=/>]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]*))?""")
_RAW_TEXT = ("style", "script")
_STYLED_ATTRIBUTES = frozenset(("class", "id", "style", "lang", "dir"))
_RESOURCE_TAGS = frozenset(("link", "style", "script", "base"))
# Template code that works on rendered output would work on slot markers instead
# ({% filter upper %}, {% set x %}...{% endset %}, a macro's result, {% call %}).
_REWORKING = (nodes.FilterBlock, nodes.AssignBlock, nodes.Macro, nodes.CallBlock)

Shape = tuple[str | int, ...]  # inlined skeleton: text, slot number, text, ...


class InlinedTemplate:
    """Render one HTML template and inline its CSS, the inlining shared by same-shaped pages."""

    def __init__(
        self,
        env: Environment,
        name: str,
        inliner: css_inline.CSSInliner,
        shapes: int = 256,
        *,
        fragment_css: str | None = None,
    ) -> None:
        """Compile the template; with fragment_css it renders a fragment styled by that CSS."""
        self._inliner = inliner
        self._fragment_css = fragment_css
        self._marker = f"slot{secrets.token_hex(8)}n"  # random: no value can forge one
        self._slot_pattern = re.compile(f"{self._marker}(\\d+)e")
        marker = self._marker

        # Markers are Markup, so the template does not escape them again; made once.
        markers = [Markup(f"{marker}{number}e") for number in range(64)]

        @pass_context
        def slot(context: Context, value: Any) -> Any:
            """Return a marker for value and keep value escaped, unless CSS could see it."""
            if hasattr(value, "__html__"):
                return value  # markup: its elements may be styled, so it is inlined too
            escaped = escape(value)
            if not escaped or escaped.isspace() or _PARSER_CHANGES.search(escaped):
                return escaped  # Markup, so the template does not escape it twice
            slots: list[str] = context[_SLOTS]
            number = len(slots)
            slots.append(escaped)
            return markers[number] if number < len(markers) else Markup(f"{marker}{number}e")

        # Not reloaded: the template itself is compiled once, so its includes are too
        # (with auto_reload, each render would stat every included file).
        self._template = env.overlay(finalize=slot, auto_reload=False).get_template(name)
        self._plain = env.overlay(auto_reload=False).get_template(name)
        self._shared = not _reworks_output(env, name)
        self._shape = functools.lru_cache(maxsize=shapes)(self._inline_skeleton)

    def render(self, context: dict[str, Any]) -> str:
        """Return the template rendered with context, its CSS inlined."""
        if not self._shared:
            return self._inline(self._plain.render(context))
        values: list[str] = []
        skeleton = self._template.render(context, **{_SLOTS: values})
        if len(values) != len(self._slot_pattern.findall(skeleton)):
            # A marker changed or dropped on its way into the page: render it plainly.
            return self._inline(self._plain.render(context))
        shape = self._shape(skeleton)
        if shape is None:
            return self._inline(self._filled(skeleton, values))
        return "".join(values[part] if isinstance(part, int) else part for part in shape)

    def _inline(self, html: str) -> str:
        """Return html with its CSS inlined: a page's own, or a fragment's stylesheet."""
        if self._fragment_css is None:
            return self._inliner.inline(html)
        return self._inliner.inline_fragment(html, self._fragment_css)

    def _filled(self, skeleton: str, values: list[str]) -> str:
        """Return the skeleton with every slot holding its value: the page as rendered."""
        return self._slot_pattern.sub(lambda m: values[int(m.group(1))], skeleton)

    def _inline_skeleton(self, skeleton: str) -> Shape | None:
        """Return the inlined skeleton split at its slots, or None if it must be inlined whole."""
        slots = len(self._slot_pattern.findall(skeleton))
        if not self._slots_unseen_by_css(skeleton):
            return None
        parts = self._slot_pattern.split(self._inline(skeleton))
        numbers = sorted(int(n) for n in parts[1::2])
        if numbers != list(range(slots)):
            return None  # the inliner dropped or moved a slot out of sight: no sharing
        return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))

    def _slots_unseen_by_css(self, skeleton: str) -> bool:
        """Tell whether every slot is where no selector or stylesheet can depend on it."""
        marker = self._marker
        if re.search(f"&[#\\w]*{marker}", skeleton):
            return False  # "&" then a value ("amp;"): the parser would read one entity
        css: list[str] = [] if self._fragment_css is None else [self._fragment_css]
        slotted_attributes = False
        raw_until = ""  # inside <style> or <script>: the closing tag's name
        raw_start = 0
        for match in _TAG.finditer(skeleton):
            closing, name, attributes = match.group(1), (match.group(2) or "").lower(), match[3]
            if raw_until:
                if closing and name == raw_until:
                    raw_text = skeleton[raw_start : match.start()]
                    if marker in raw_text:
                        return False
                    css.append(raw_text)
                    raw_until = ""
                continue
            if not name:
                continue  # a comment: slots there are never styled
            if name in _RAW_TEXT and not closing:
                raw_until, raw_start = name, match.end()
            if name == "link" or (marker in attributes and name in _RESOURCE_TAGS):
                return False  # a stylesheet we do not see, or a slot that picks one
            if marker in attributes:
                for attribute in _ATTRIBUTE.finditer(attributes):
                    attribute_name, value = attribute[1], attribute[2] or ""
                    if marker in attribute_name or (
                        marker in value and attribute_name.lower() in _STYLED_ATTRIBUTES
                    ):
                        return False
                slotted_attributes = True
        if raw_until:
            return False  # an unclosed <style>: do not guess
        # An attribute selector ([href^=...]) could match on a slotted value.
        return not (slotted_attributes and any("[" in c for c in css))


def _reworks_output(env: Environment, name: str, seen: frozenset[str] = frozenset()) -> bool:
    """Tell whether a template, or one it includes, imports or extends, works on rendered output.

    Such code would see slot markers, not values, so the template is rendered
    plainly (and inlined whole) every time. A template named at run time
    counts as such: it cannot be checked.
    """
    tree = template_tree(env, name)
    if tree is None or any(True for _ in tree.find_all(_REWORKING)):
        return True
    return any(
        other is None or (other not in seen and _reworks_output(env, other, seen | {name}))
        for other in meta.find_referenced_templates(tree)
    )


def template_tree(env: Environment, name: str) -> nodes.Template | None:
    """Return a template's syntax tree, or None if its source cannot be found."""
    if env.loader is None:
        return None
    try:
        source, _, _ = env.loader.get_source(env, name)
    except TemplateNotFound:
        return None
    return env.parse(source)

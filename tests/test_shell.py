"""A page inlined once per shape reads, in an HTML parser, as the page inlined whole."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import css_inline
import pytest
from jinja2 import DictLoader, Environment, StrictUndefined, UndefinedError

from notifier.render import make_environment
from notifier.render.shell import InlinedTemplate

CSS = "p.lead { color: #111; } .footer a { color: #00e; } h2 { margin: 0; }"


class _Tokens(HTMLParser):
    """Collect what a browser builds from a page: tags, attributes and text, entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tokens: list[Any] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tokens.append(("start", tag, sorted(attrs)))

    def handle_endtag(self, tag: str) -> None:
        self.tokens.append(("end", tag))

    def handle_data(self, data: str) -> None:
        if self.tokens and self.tokens[-1][0] == "text":
            self.tokens[-1] = ("text", self.tokens[-1][1] + data)
        else:
            self.tokens.append(("text", data))

    def handle_comment(self, data: str) -> None:
        self.tokens.append(("comment", data))


def parsed(html: str) -> list[Any]:
    """Return the page as a parser reads it."""
    reader = _Tokens()
    reader.feed(html)
    reader.close()
    return reader.tokens


def environment(**templates: str) -> Environment:
    """Return an autoescaping environment holding the given templates (name.html: source)."""
    return Environment(
        loader=DictLoader({f"{name}.html": source for name, source in templates.items()}),
        autoescape=True,
        undefined=StrictUndefined,
    )


def whole(env: Environment, name: str, context: dict[str, Any]) -> str:
    """Return the page rendered and inlined whole, as before shapes were shared."""
    return css_inline.CSSInliner(keep_style_tags=False).inline(
        env.get_template(name).render(context)
    )


PAGE = (
    "<html><head><title>{{ subject }}</title><style>" + CSS + "</style></head><body>"
    '<p class="lead">{% if name %}Hello {{ name }}, here{% else %}Here{% endif %} are '
    "{{ count }} papers.</p>{% for s in sections %}<h2>{{ s }}</h2>{% endfor %}"
    '<p class="footer"><a href="{{ link }}">Unsubscribe</a> from {{ email }}</p>'
    "</body></html>"
)

READERS = [
    {"name": "Alice", "email": "a@example.org", "link": "https://x.example/u/1"},
    {"name": "O'Brien & <Sons>", "email": "o@example.org", "link": "https://x.example/u/2?a=1&b=2"},
    {"name": "", "email": "n@example.org", "link": "https://x.example/u/3"},
    {"name": 'Zoë "quoted"', "email": "z@example.org", "link": "https://x.example/u/4"},
    {"name": "<script>alert(1)</script>", "email": "s@example.org", "link": "javascript:x"},
    {"name": "tab\there", "email": "t@example.org", "link": "https://x.example/u/5"},
    {"name": "nul\x00bell\x07 <b>&", "email": "c@example.org", "link": "https://x.example/u/6"},
    {"name": "  <  ", "email": "w@example.org", "link": "https://x.example/u/7"},
    {"name": "   ", "email": "v@example.org", "link": "https://x.example/u/8"},
]


@pytest.mark.parametrize("reader", READERS, ids=lambda r: repr(r["name"]))
def test_a_shared_shape_gives_each_reader_the_page_inlined_whole(reader: dict[str, str]) -> None:
    env = environment(page=PAGE)
    template = InlinedTemplate(env, "page.html", css_inline.CSSInliner(keep_style_tags=False))
    context = {"subject": "Papers & <more>", "count": 3, "sections": ["robots", "a<b"], **reader}
    # Twice, so the second render comes from the shared shape.
    template.render({**READERS[0], "subject": "s", "count": 1, "sections": ["robots", "x"]})
    page = template.render(context)
    assert parsed(page) == parsed(whole(env, "page.html", context))
    assert 'style="color: #111;"' in page  # the lead paragraph's rule, inlined
    assert "<style" not in page
    assert "&amp;lt;" not in page and "&amp;amp;" not in page  # escaped once, not twice


def test_readers_with_the_same_branches_share_one_inlining() -> None:
    template = InlinedTemplate(
        environment(page=PAGE), "page.html", css_inline.CSSInliner(keep_style_tags=False)
    )
    pages = [
        template.render({**reader, "subject": "s", "count": 2, "sections": ["a", "b"]})
        for reader in READERS[:2] + READERS[3:5]
    ]
    assert template._shape.cache_info().misses == 1
    assert "Hello Alice, here are 2 papers." in pages[0]
    assert "Hello O&#39;Brien &amp; &lt;Sons&gt;, here" in pages[1]
    assert 'href="https://x.example/u/2?a=1&amp;b=2"' in pages[1]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[3] and "<script>" not in pages[3]
    # Another branch (no name) or another number of sections is another shape.
    template.render({**READERS[2], "subject": "s", "count": 2, "sections": ["a", "b"]})
    template.render({**READERS[0], "subject": "s", "count": 2, "sections": ["a"]})
    assert template._shape.cache_info().misses == 3


@pytest.mark.parametrize(
    ("source", "contexts", "expected"),
    [
        # A value that picks a class: each reader gets their class's rule.
        (
            '<style>.red { color: red } .blue { color: blue }</style><p class="{{ c }}">x</p>',
            [{"c": "red"}, {"c": "blue"}],
            ["color: red", "color: blue"],
        ),
        # A value inside the stylesheet.
        (
            "<style>p { color: {{ c }} }</style><p>x</p>",
            [{"c": "red"}, {"c": "blue"}],
            ["color: red", "color: blue"],
        ),
        # An attribute selector that reads a slotted value.
        (
            '<style>a[href^="https"] { color: green }</style><a href="{{ c }}">x</a>',
            [{"c": "https://x.example"}, {"c": "http://x.example"}],
            ["color: green", 'href="http://x.example">'],
        ),
        # A style attribute of the template's own, merged with the rules.
        (
            '<style>p { margin: 0 }</style><p style="color: {{ c }}">x</p>',
            [{"c": "red"}, {"c": "blue"}],
            ["color: red", "color: blue"],
        ),
    ],
)
def test_a_value_that_styles_can_see_is_inlined_per_render(
    source: str, contexts: list[dict[str, str]], expected: list[str]
) -> None:
    env = environment(page=source)
    template = InlinedTemplate(env, "page.html", css_inline.CSSInliner(keep_style_tags=False))
    for context, shown in zip(contexts, expected, strict=True):
        page = template.render(context)
        assert shown in page
        assert parsed(page) == parsed(whole(env, "page.html", context))
    if "[" not in source:
        assert "color: red" not in page  # the second reader's page is their own


def test_an_undefined_value_fails_the_render_as_before() -> None:
    template = InlinedTemplate(
        environment(page="<p>{{ missing }}</p>"),
        "page.html",
        css_inline.CSSInliner(keep_style_tags=False),
    )
    with pytest.raises(UndefinedError):
        template.render({})


def test_the_shipped_digest_shell_is_shared_and_reads_as_inlined_whole() -> None:
    env = make_environment()
    template = InlinedTemplate(
        env, "email/digest.html.j2", css_inline.CSSInliner(keep_style_tags=False)
    )

    class Digest:
        is_empty = False
        paper_count = 4
        period = "2026-11-22"
        reason = ""
        more = 2

    def context(name: str, email: str) -> dict[str, Any]:
        links: dict[str, str | None] = {
            k: f"https://n.example/{k}/{email}?t=1&u=2" for k in ("feed", "manage")
        }
        links |= {"bibtex": None, "ris": None}
        links["unsubscribe"] = f"https://n.example/unsubscribe/{email}"
        return {
            "subscriber": {"email": email},
            "display_name": name,
            "digest": Digest(),
            "links": type("Links", (), links),
            "subject": f"4 new papers for {name}",
            "sections": [
                type("S", (), {"interest": "robots & <arms>", "papers_html": "", "tuned_by": 0})
            ],
        }

    for name, email in [("Ada", "ada@example.org"), ("O'Neil <x>", "o@example.org")]:
        page = template.render(context(name, email))
        assert parsed(page) == parsed(whole(env, "email/digest.html.j2", context(name, email)))
        assert 'class="lead" style="' in page
    assert template._shape.cache_info().hits == 1


@pytest.mark.parametrize(
    ("source", "values"),
    [
        # Template code that works on rendered output sees the value, never a marker.
        ("<p>{% filter upper %}{{ c }}{% endfilter %}</p>", ["hot", "cold"]),
        (
            "{% set r %}{{ c }}{% endset %}<p>{% if r|length > 8 %}long{% else %}short"
            "{% endif %} {{ r }}</p>",
            ["tiny", "much longer than eight"],
        ),
        (
            '{% macro m(x) %}<b>{{ x }}</b>{% endmacro %}<p title="{{ m(c)|striptags }}">x</p>',
            ["a <b>", "c"],
        ),
        # A quoted ">" inside a tag does not hide the class that a value picks.
        ('<p title="a > b" class="{{ c }}">x</p>', ["hot", "cold"]),
        # "&" then a value: one entity, as the page reads it whole.
        ("<p>&{{ c }}</p>", ["amp;", "lt;"]),
    ],
)
def test_a_template_that_reworks_its_values_renders_as_if_inlined_whole(
    source: str, values: list[str]
) -> None:
    css = ".hot { color: red } .cold { color: blue } p { margin: 0 }"
    env = environment(page=source)
    template = InlinedTemplate(
        env, "page.html", css_inline.CSSInliner(keep_style_tags=False), fragment_css=css
    )
    for value in values:
        block = template.render({"c": value})
        plain = css_inline.inline_fragment(env.get_template("page.html").render(c=value), css)
        assert parsed(block) == parsed(plain)
        assert "slot" not in block

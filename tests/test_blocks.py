"""A paper's block with each interest's reason filled in is the block rendered whole."""

from __future__ import annotations

from pathlib import Path

import css_inline
import pytest

from notifier.models import DigestPaper
from notifier.render import make_environment
from notifier.render.blocks import PaperBlocks
from notifier.render.links import LinkFragments, PaperLinks
from notifier.render.mime import Chunk
from notifier.render.shell import InlinedTemplate
from tests.test_shell import parsed


def paper(
    reason: str, score: float = 0.7, terms: tuple[str, ...] = ("world models",)
) -> DigestPaper:
    """Return one paper as a digest shows it, for the given reason."""
    return DigestPaper(
        paper_id=1,
        guid="arxiv:2611.00001",
        title="World models for O'Brien's robots",
        abstract="We learn world models & plan with them <fast>.",
        url="https://arxiv.org/abs/2611.00001",
        score=score,
        reason=reason,
        terms=terms,
        authors=("Ada O'Brien", "Zoë <Z>"),
    )


def blocks_of(templates: Path | None = None) -> PaperBlocks:
    """Return the paper blocks of the shipped templates, or of a user's templates_dir."""
    env = make_environment(templates)
    css = env.get_template("email/digest.css").render()
    return PaperBlocks(env, css_inline.CSSInliner(keep_style_tags=False), css)


def text(block: Chunk) -> str:
    """Return a block's text as it goes into the message."""
    return bytes(block.data).decode()


REASONS = [
    "words “world models”",
    "close to “planning with learned <models> & more” (0.71)",
    "“robot” in title; author “O'Brien”",
]


def test_reasons_are_filled_into_one_rendering_of_the_paper() -> None:
    blocks = blocks_of()
    for number, reason in enumerate(REASONS):
        shown = paper(reason, score=0.5 + number / 10)
        html, plain = blocks.render(shown)
        assert (html, plain) == blocks._whole(shown)
        assert "Why: " + reason in text(plain)
        assert "planning with learned &lt;models&gt; &amp; more" in text(html) or number != 1
    assert len(blocks._bodies) == 1  # three reasons and scores, one paper rendered once
    blocks.render(paper(REASONS[0], terms=("robot",)))  # other marked words: another body
    assert len(blocks._bodies) == 2


@pytest.mark.parametrize("reason", ["", "   ", "bell\x07 in it"])
def test_a_reason_the_parser_would_change_is_rendered_whole(reason: str) -> None:
    blocks = blocks_of()
    shown = paper(reason)
    assert blocks.render(shown) == blocks._whole(shown)
    assert not blocks._bodies


@pytest.mark.parametrize(
    ("html_source", "expected"),
    [
        # The reason tested, filtered, or read through the whole paper: never filled in.
        (
            '<p class="why">{% if paper.reason|length > 20 %}long{% else %}short{% endif %}</p>',
            ["short", "long", "long"],
        ),
        ('<p class="why">{{ paper.reason | upper }}</p>', ["WORDS “WORLD MODELS”"]),
        ('<p class="why">{{ paper.score }}</p>', ["0.5", "0.6"]),
        ('{% set p = paper %}<p class="why">{{ p.reason }}</p>', ["words “world models”"]),
        # Printed where CSS sees it: each block rendered with its own reason.
        ('<p class="{{ paper.reason }}">x</p>', ['class="words “world models”"']),
    ],
)
def test_a_template_that_reads_the_reason_otherwise_gets_each_block_whole(
    tmp_path: Path, html_source: str, expected: list[str]
) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "paper.html.j2").write_text(html_source)
    blocks = blocks_of(tmp_path)
    for number, reason in enumerate(REASONS):
        shown = paper(reason, score=0.5 + number / 10)
        html, plain = blocks.render(shown)
        assert (html, plain) == blocks._whole(shown)
        if number < len(expected):
            assert expected[number] in text(html)
    assert not any(blocks._bodies.values())  # nothing to fill a reason into


def test_paper_blocks_with_the_same_marked_terms_share_one_inlining() -> None:
    """A paper found by two interests for different reasons, with the same terms: one inlining."""
    env = make_environment()
    css = env.get_template("email/digest.css").render()
    template = InlinedTemplate(
        env,
        "email/paper.html.j2",
        css_inline.CSSInliner(keep_style_tags=False),
        fragment_css=css,
    )
    shown = [
        paper("words “world models”", terms=("world models",)),
        paper("close to “planning with learned <models>” (0.71)", terms=("world models",)),
        paper("words “robots”", terms=("robot",)),
    ]
    for one in shown:
        block = template.render({"paper": one})
        plain = env.get_template("email/paper.html.j2").render(paper=one)
        assert parsed(block) == parsed(css_inline.inline_fragment(plain, css))
        assert '<mark style="' in block  # the marks are styled as the stylesheet says
        assert 'class="why" style="' in block
    # The second differs from the first only in its reason; the third marks other words.
    assert template._shape.cache_info().misses == 2
    assert "planning with learned &lt;models&gt;" in template.render({"paper": shown[1]})


def link_fragments(templates: Path | None = None) -> LinkFragments:
    """Return the feedback links' renderer over the shipped (or given) templates."""
    env = make_environment(templates)
    css = env.get_template("email/digest.css").render()
    inliner = css_inline.CSSInliner(keep_style_tags=False)
    html = InlinedTemplate(env, "email/rate.html.j2", inliner, fragment_css=css)
    return LinkFragments(html, env.get_template("email/rate.txt.j2"))


@pytest.mark.parametrize("mute", ["https://n.example/mute/m~1~c.d.e", None])
def test_feedback_links_are_filled_in_as_rendering_gives_them(mute: str | None) -> None:
    links = PaperLinks("https://n.example/more/a~1~b.c.d", "https://n.example/less/x&y", mute)
    fragments = link_fragments()
    fragments.render(links)  # the shape, made on first use
    assert fragments.render(links) == fragments._rendered(links)
    html, text = fragments.render(links)
    assert (
        'href="https://n.example/less/x&amp;y"' in html
        and "Not for me: https://n.example/less/x&y" in text
    )
    assert ("Mute an author" in html) == (mute is not None)


def test_a_links_template_that_reworks_the_urls_is_rendered_for_each_paper(
    tmp_path: Path,
) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "rate.txt.j2").write_text(
        "  More: {{ links.more | upper }}\n  Less: {{ links.less }}\n"
    )
    links = PaperLinks("https://n.example/more/abc", "https://n.example/less/def", None)
    html, text = link_fragments(tmp_path).render(links)
    assert text == "  More: HTTPS://N.EXAMPLE/MORE/ABC\n  Less: https://n.example/less/def\n"
    assert 'href="https://n.example/more/abc"' in html

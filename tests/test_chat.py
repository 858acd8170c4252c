"""Digests as chat and webhook messages: what Slack, Discord, Matrix and a receiver show.

Every body is parsed back from its JSON and read as the service would show it:
the services' limits hold, papers keep their order and are cut at a paper,
"and N more" counts what is left out, and titles, authors, reasons and interest
names from outside stay text (no mention, no link, no markup of theirs).
"""

from __future__ import annotations

import dataclasses
import json
import re
from html.parser import HTMLParser
from typing import Any

import orjson
import pytest

from notifier import chat
from notifier.chat import ChannelDigest, ChannelMessage
from notifier.models import DigestPaper, DigestSection

DIGEST_URL = "https://notifier.example/d/Yk3x9Q/2026-12-07"
REASON = "Matches “diffusion” and “image synthesis” in the abstract"
TITLES = [
    "Scaling Rectified Flow Transformers for High-Resolution Image Synthesis",
    "Diffusion Policy: Visuomotor Policy Learning via Action Diffusion",
    "Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
    "Consistency Models Made Easy",
    "3D Gaussian Splatting for Real-Time Radiance Field Rendering",
    "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
    "Segment Anything in Images and Videos",
    "Flow Matching for Generative Modeling",
    "Scalable Diffusion Models with Transformers",
    "Open X-Embodiment: Robotic Learning Datasets and RT-X Models",
]
AUTHORS = (
    "Patrick Esser",
    "Sumith Kulal",
    "Andreas Blattmann",
    "Rahim Entezari",
    "Jonas Müller",
)
INTERESTS = ("Diffusion models", "Robot learning", "Sequence models")
# Titles from outside that try what a chat message must not let them do.
T_MENTION = "Attention <!channel> please <@U024BE7LH> & <#C024BE7LR>"
T_EVERYONE = "@everyone @here: a Survey of Scaling Laws"
T_FAKE_LINK = "[click](https://evil.example) to claim your GPU credits"
T_SCRIPT = "Robust RLHF</a><script>alert(1)</script>"
T_PIPE = "Speech | Text > Vision: <https://evil.example|a trick> Models"
HOSTILE_TITLES = (T_MENTION, T_EVERYONE, T_FAKE_LINK, T_SCRIPT, T_PIPE)


def paper(
    number: int,
    *,
    title: str | None = None,
    authors: tuple[str, ...] = AUTHORS,
    arxiv_id: str | None = "",
    url: str | None = None,
    code_url: str | None = None,
    project_url: str | None = None,
    reason: str = REASON,
    abstract: str = "We train a rectified flow transformer on image-text pairs.",
) -> DigestPaper:
    """Return a realistic digest paper: an arXiv id like 2412.01234, unless told otherwise."""
    arxiv = f"2412.{1000 + number:05d}" if arxiv_id == "" else arxiv_id
    return DigestPaper(
        paper_id=number,
        guid=f"arxiv:{arxiv}" if arxiv else f"hf:{number}",
        title=title or TITLES[number % len(TITLES)],
        abstract=abstract,
        url=url or (f"https://arxiv.org/abs/{arxiv}" if arxiv else "https://hf.co/papers/x"),
        score=round(0.9 - number / 1000, 3),
        reason=reason,
        terms=("diffusion",),
        also_matches=("Robot learning",) if number % 7 == 0 else (),
        authors=authors,
        code_url=code_url,
        summary="A transformer trained with rectified flow beats DiT.",
        arxiv_id=arxiv,
        project_url=project_url,
    )


def digest(
    *sections: DigestSection,
    more: int = 0,
    url: str | None = DIGEST_URL,
    reason: str = "",
    title: str = "notifier: new papers",
) -> ChannelDigest:
    """Return a channel digest of these sections."""
    return ChannelDigest(
        title=title,
        period="2026-12-07",
        sections=sections,
        more=more,
        reason=reason,
        url=url,
        key="post-7f3a9c",
    )


def sixty(**paper_fields: Any) -> ChannelDigest:
    """Return a digest of 60 papers in three interests of 20, numbered 0 to 59 in order."""
    sections = tuple(
        DigestSection(name, tuple(paper(20 * i + n, **paper_fields) for n in range(20)))
        for i, name in enumerate(INTERESTS)
    )
    return digest(*sections, more=5, title="notifier: 65 new papers")


def hostile() -> ChannelDigest:
    """Return a digest whose titles, authors, reasons and interest names attack the format."""
    papers = tuple(
        paper(
            n,
            title=title,
            authors=("<@U024BE7LH>", "@everyone", "*Bold* _Mallory_ [x](https://evil.example)"),
            reason="<!here> matched ](https://evil.example) </em><img src=x onerror=alert(1)>",
            code_url="javascript:alert(document.cookie)",
            project_url="https://evil.example/p|<!channel>",
        )
        for n, title in enumerate(HOSTILE_TITLES)
    )
    return digest(DigestSection("<!channel> @everyone [Evil](https://evil.example)", papers))


def body(message: ChannelMessage) -> dict[str, Any]:
    """Return a message's JSON body parsed back, insisting it is valid UTF-8 JSON."""
    parsed = json.loads(message.body.decode("utf-8"))
    assert parsed == orjson.loads(message.body)
    assert isinstance(parsed, dict)
    return parsed


def units(text: str) -> int:
    """Return text's length as Slack and Discord count it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


# Slack: reading mrkdwn as Slack does.

SLACK_LINK = re.compile(r"<([^<>|]*)\|([^<>]*)>")


def slack_links(text: str) -> list[tuple[str, str]]:
    """Return the (url, label) of each link in Slack mrkdwn, entities decoded."""
    return [(unslack(u), unslack(label)) for u, label in SLACK_LINK.findall(text)]


def unslack(text: str) -> str:
    """Return Slack mrkdwn text as shown: links as their labels, entities decoded."""
    text = SLACK_LINK.sub(lambda m: m.group(2), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def slack_texts(parsed: dict[str, Any]) -> list[str]:
    """Return every mrkdwn text of a Slack message's blocks, in order."""
    texts = []
    for block in parsed["blocks"]:
        if block["type"] == "section":
            texts.append(block["text"]["text"])
        elif block["type"] == "context":
            texts.extend(element["text"] for element in block["elements"])
    return texts


def assert_slack_within_limits(parsed: dict[str, Any]) -> None:
    """Insist on Slack's documented limits, and that mrkdwn is never parsed for bare text."""
    assert len(parsed["blocks"]) <= 50
    assert units(parsed["text"]) <= 300
    assert parsed["unfurl_links"] is False
    assert parsed["unfurl_media"] is False
    for block in parsed["blocks"]:
        texts = [block["text"]] if "text" in block else block["elements"]
        for text in texts:
            assert 1 <= units(text["text"]) <= (150 if block["type"] == "header" else 3000)
            if text["type"] == "mrkdwn":
                assert text["verbatim"] is True
                # What is left once our links are taken out has no control character.
                assert not re.search(r"[<>]", SLACK_LINK.sub("", text["text"]))


# Discord: reading its markdown as Discord does.

DISCORD_ESCAPE = re.compile(r"\\([^\w\s])")


def undiscord(text: str) -> str:
    """Return Discord markdown as shown: escaped characters as themselves."""
    return DISCORD_ESCAPE.sub(r"\1", text)


def discord_links(text: str) -> list[tuple[str, str]]:
    """Return the (label, url) of each masked link Discord would make of text."""
    live = DISCORD_ESCAPE.sub("\x00", text)  # an escaped character takes part in nothing
    return re.findall(r"\[([^\[\]]*)\]\(<?([^()<>\s]*)>?\)", live)


def assert_discord_within_limits(parsed: dict[str, Any]) -> None:
    """Insist on Discord's documented limits and that nothing can ping anyone."""
    assert parsed["allowed_mentions"] == {"parse": []}
    assert 1 <= units(parsed["content"]) <= 2000
    embeds = parsed["embeds"]
    assert len(embeds) <= 10
    total = 0
    for embed in embeds:
        assert units(embed["title"]) <= 256
        assert units(embed.get("description", "")) <= 4096
        assert units(embed["author"]["name"]) <= 256
        total += units(embed["title"]) + units(embed.get("description", ""))
        total += units(embed["author"]["name"])
    assert total <= 6000


# Matrix: reading the HTML as a client does.


class Html(HTMLParser):
    """Collect an HTML body's tags, links and visible text."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.anchors: list[str] = []
        self.text: list[str] = []
        self._in_anchor = False
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        # No attribute but a link's href: no style, no onerror, no class to smuggle in.
        assert [name for name, _ in attrs] == (["href"] if tag == "a" else []), (tag, attrs)
        if tag == "a":
            self.hrefs.append(attrs[0][1] or "")
            self._in_anchor = True
            self.anchors.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._in_anchor = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_anchor:
            self.anchors[-1] += data


MATRIX_TAGS = {"h4", "p", "ul", "li", "a", "strong", "em", "br"}


def matrix(message: ChannelMessage) -> tuple[dict[str, Any], Html]:
    """Return a Matrix message's content and its HTML read back, insisting on its limits."""
    parsed = body(message)
    assert len(message.body) <= 48_000
    assert parsed["msgtype"] == "m.notice"
    assert parsed["format"] == "org.matrix.custom.html"
    assert parsed["m.mentions"] == {}
    html = Html(parsed["formatted_body"])
    assert set(html.tags) <= MATRIX_TAGS
    return parsed, html


def test_message_for_dispatches_on_kind_and_refuses_others() -> None:
    d = digest(DigestSection("Diffusion models", (paper(1), paper(2))))
    for kind, build in zip(
        chat.KINDS,
        (chat.slack_message, chat.discord_message, chat.matrix_message, chat.webhook_message),
        strict=True,
    ):
        assert chat.message_for(kind, d) == build(d)
    with pytest.raises(ValueError, match="telegram"):
        chat.message_for("telegram", d)
    with pytest.raises(ValueError, match="email"):
        chat.test_message("email", "hello", "k")


def test_slack_shows_each_interest_and_paper_with_its_links() -> None:
    d = digest(
        DigestSection(
            "Diffusion models",
            (
                paper(1234, code_url="https://github.com/Stability-AI/sd3", project_url=None),
                paper(1, authors=("Cheng Chi", "Shuran Song")),
            ),
        ),
        DigestSection(
            "Robot learning",
            (paper(2, arxiv_id=None, url="https://hf.co/papers/open-x", project_url=None),),
        ),
        title="notifier: 3 new papers",
    )
    message = chat.slack_message(d)
    parsed = body(message)
    assert_slack_within_limits(parsed)
    assert (message.shown, message.left) == (3, 0)
    assert parsed["text"] == "notifier: 3 new papers · 2026-12-07"
    header, period, *rest = parsed["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "notifier: 3 new papers"},
    }
    assert period["type"] == "context"
    assert period["elements"][0]["text"] == "2026-12-07"
    texts = [block["text"]["text"] for block in rest]
    assert all(block["type"] == "section" for block in rest)  # no "and N more": none left
    assert texts[0] == "*Diffusion models*"
    assert texts[3] == "*Robot learning*"
    first = texts[1]
    assert slack_links(first) == [
        ("https://arxiv.org/abs/2412.02234", TITLES[1234 % 10]),
        ("https://arxiv.org/pdf/2412.02234", "PDF"),
        ("https://github.com/Stability-AI/sd3", "Code"),
    ]
    assert unslack(first).splitlines()[1:] == [
        "Patrick Esser, Sumith Kulal, Andreas Blattmann et al.",
        f"Why: {REASON}",
        "PDF · Code",
    ]
    assert unslack(texts[2]).splitlines()[1] == "Cheng Chi, Shuran Song"  # no "et al." for two
    # Not on arXiv: the title links to the paper's own page, and there is no PDF.
    assert slack_links(texts[4]) == [("https://hf.co/papers/open-x", TITLES[2])]


def test_slack_keeps_hostile_text_as_text() -> None:
    message = chat.slack_message(hostile())
    parsed = body(message)
    assert_slack_within_limits(parsed)
    assert message.shown == len(HOSTILE_TITLES)
    texts = slack_texts(parsed)
    raw = "\n".join(texts) + parsed["text"]
    for control in ("<!channel>", "<!here>", "<@U024BE7LH>", "<#C024BE7LR>", "<https://evil"):
        assert control not in raw
    links = [link for text in texts for link in slack_links(text)]
    # Only the papers' own pages and PDFs are links: nothing from a title, author or reason,
    # nor the javascript: code link or the project URL with a < in it.
    assert [url for url, _ in links] == [
        f"https://arxiv.org/{kind}/2412.{1000 + n:05d}"
        for n in range(len(HOSTILE_TITLES))
        for kind in ("abs", "pdf")
    ]
    for text in texts:
        for _, label in SLACK_LINK.findall(text):  # as sent: a label ends at the first >
            assert "|" not in label
            assert ">" not in label
    shown = [unslack(text) for text in texts]
    assert shown[:2] == ["2026-12-07", "*<!channel> @everyone [Evil](https://evil.example)*"]
    titles = [text.splitlines()[0] for text in shown[2:]]
    # Each title reads as it was written; a | inside a link's label shows as a look-alike.
    assert titles == [t.replace("|", "\u2223") for t in HOSTILE_TITLES]
    assert shown[2].splitlines()[1:3] == [
        "<@U024BE7LH>, @everyone, *Bold* _Mallory_ [x](https://evil.example)",
        "Why: <!here> matched ](https://evil.example) </em><img src=x onerror=alert(1)>",
    ]
    assert "javascript" not in message.body.decode()


def test_slack_escapes_the_project_link_s_pipe_and_drops_javascript() -> None:
    d = digest(
        DigestSection(
            "Diffusion models",
            (
                paper(
                    3,
                    code_url="javascript:alert(1)",
                    project_url="https://example.org/sd3?a=1&b=2|x",
                ),
            ),
        )
    )
    text = slack_texts(body(chat.slack_message(d)))[2]
    assert slack_links(text)[1:] == [
        ("https://arxiv.org/pdf/2412.01003", "PDF"),
        ("https://example.org/sd3?a=1&b=2%7Cx", "Project"),
    ]
    assert "<https://example.org/sd3?a=1&amp;b=2%7Cx|Project>" in text
    assert "Code" not in text


def test_sixty_papers_fit_slack_in_order_with_and_n_more() -> None:
    message = chat.slack_message(sixty())
    parsed = body(message)
    assert_slack_within_limits(parsed)
    assert len(parsed["blocks"]) == 50
    assert message.shown + message.left == 60
    # header, period, and N more, and one heading per interest shown
    assert message.shown == 50 - 3 - 3
    texts = slack_texts(parsed)
    papers = [t for t in texts[1:-1] if not t.startswith("*")]
    pages = [slack_links(t)[0][0] for t in papers]
    assert pages == [f"https://arxiv.org/abs/2412.{1000 + n:05d}" for n in range(message.shown)]
    headings = [t for t in texts if t.startswith("*")]
    assert headings == ["*Diffusion models*", "*Robot learning*", "*Sequence models*"]
    last = parsed["blocks"][-1]
    assert last["type"] == "context"
    assert slack_links(last["elements"][0]["text"]) == [
        (DIGEST_URL, f"and {message.left + 5} more")
    ]
    assert message.left + 5 == 21


def test_slack_paper_with_enormous_links_stays_within_a_section() -> None:
    long_code = "https://github.com/lab/" + "&a" * 990  # 2,003 characters, & escaped: 4,963
    d = digest(DigestSection("Diffusion models", (paper(5, code_url=long_code[:2000]),)))
    parsed = body(chat.slack_message(d))
    assert_slack_within_limits(parsed)
    text = parsed["blocks"][3]["text"]["text"]
    # The link that cannot fit is left out; the paper, its page and its PDF are not.
    assert [label for _, label in slack_links(text)] == [TITLES[5], "PDF"]


def test_discord_one_embed_a_paper_with_escaped_markdown() -> None:
    d = digest(
        DigestSection(
            "Diffusion models",
            (paper(4, code_url="https://github.com/graphdeco-inria/gaussian-splatting"),),
        ),
        title="notifier: Diffusion models",
    )
    message = chat.discord_message(d)
    parsed = body(message)
    assert_discord_within_limits(parsed)
    assert (message.shown, message.left) == (1, 0)
    assert undiscord(parsed["content"]) == "**notifier: Diffusion models** · 2026-12-07"
    (embed,) = parsed["embeds"]
    assert undiscord(embed["title"]) == TITLES[4]
    assert embed["url"] == "https://arxiv.org/abs/2412.01004"
    assert embed["author"] == {"name": "Diffusion models"}
    assert undiscord(embed["description"]).splitlines() == [
        "Patrick Esser, Sumith Kulal, Andreas Blattmann et al.",
        f"Why: {REASON}",
        "[PDF](https://arxiv.org/pdf/2412.01004) · "
        "[Code](https://github.com/graphdeco-inria/gaussian-splatting)",
    ]
    assert discord_links(embed["description"]) == [
        ("PDF", "https://arxiv.org/pdf/2412.01004"),
        ("Code", "https://github.com/graphdeco-inria/gaussian-splatting"),
    ]


def test_discord_keeps_hostile_text_as_text() -> None:
    message = chat.discord_message(hostile())
    parsed = body(message)
    assert_discord_within_limits(parsed)
    embeds = parsed["embeds"]
    assert [undiscord(e["title"]) for e in embeds] == list(HOSTILE_TITLES)
    for embed in embeds:
        assert discord_links(embed["title"]) == []
        # Only the PDF is a link: the Code link was javascript:, the project URL had a <.
        assert [label for label, _ in discord_links(embed["description"])] == ["PDF"]
        assert "\\@everyone" in embed["description"]
        assert "\\<\\@U024BE7LH\\>" in embed["description"]
        # The interest name is a plain-text line, never markdown: shown as written.
        assert embed["author"]["name"] == "<!channel> @everyone [Evil](https://evil.example)"
    fake = next(e for e in embeds if "click" in e["title"])
    assert fake["title"].startswith("\\[click\\]\\(https://evil.example\\)")
    assert "@everyone" not in DISCORD_ESCAPE.sub("", parsed["content"])
    assert "javascript" not in message.body.decode()


def test_discord_line_markdown_at_the_start_of_a_title_stays_text() -> None:
    d = digest(
        DigestSection(
            "Sequence models",
            (
                paper(0, title="-# Mamba-2: Structured State Space Duality"),
                paper(1, title="# RWKV-7 > Transformers?", authors=("- Bo Peng",)),
            ),
        )
    )
    embeds = body(chat.discord_message(d))["embeds"]
    assert embeds[0]["title"] == "\\-\\# Mamba-2: Structured State Space Duality"
    assert embeds[1]["title"] == "\\# RWKV-7 \\> Transformers?"
    assert embeds[1]["description"].startswith("\\- Bo Peng\n")
    assert [undiscord(e["title"]) for e in embeds] == [
        "-# Mamba-2: Structured State Space Duality",
        "# RWKV-7 > Transformers?",
    ]


def test_sixty_papers_fit_discord_with_and_n_more_linking_the_digest() -> None:
    message = chat.discord_message(sixty())
    parsed = body(message)
    assert_discord_within_limits(parsed)
    assert message.shown == 10
    assert message.left == 50
    assert [e["url"] for e in parsed["embeds"]] == [
        f"https://arxiv.org/abs/2412.{1000 + n:05d}" for n in range(10)
    ]
    assert parsed["content"].splitlines()[-1] == f"[and 55 more](<{DIGEST_URL}>)"
    assert discord_links(parsed["content"]) == [("and 55 more", DIGEST_URL)]


def test_discord_long_titles_share_the_6000_characters() -> None:
    long_title = "Towards " + "Scalable, Robust and Efficient " * 12 + "World Models"
    long_reason = "Matches " + ", ".join(f"“manipulation skill {n}”" for n in range(20))
    d = digest(
        DigestSection(
            "Robot learning",
            tuple(paper(n, title=long_title, reason=long_reason) for n in range(10)),
        )
    )
    message = chat.discord_message(d)
    parsed = body(message)
    assert_discord_within_limits(parsed)
    assert 0 < message.shown < 10
    assert message.shown + message.left == 10
    assert all(units(e["title"]) == 256 and e["title"].endswith("…") for e in parsed["embeds"])
    assert parsed["content"].endswith(f"[and {message.left} more](<{DIGEST_URL}>)")


def test_matrix_lists_papers_in_html_and_plain_text() -> None:
    d = digest(
        DigestSection("Diffusion models", (paper(0, project_url="https://stability.ai/sd3"),)),
        DigestSection("Robot learning", (paper(1, authors=("Cheng Chi",)),)),
        title="notifier: 2 new papers",
    )
    message = chat.matrix_message(d)
    parsed, html = matrix(message)
    assert (message.shown, message.left) == (2, 0)
    assert html.hrefs == [
        "https://arxiv.org/abs/2412.01000",
        "https://arxiv.org/pdf/2412.01000",
        "https://stability.ai/sd3",
        "https://arxiv.org/abs/2412.01001",
        "https://arxiv.org/pdf/2412.01001",
    ]
    assert html.anchors == [TITLES[0], "PDF", "Project", TITLES[1], "PDF"]
    assert html.tags.count("li") == 2
    assert html.tags.count("h4") == 1
    assert "".join(html.text).startswith("notifier: 2 new papers2026-12-07Diffusion models")
    assert parsed["body"].splitlines() == [
        "notifier: 2 new papers (2026-12-07)",
        "",
        "Diffusion models",
        f"- {TITLES[0]} https://arxiv.org/abs/2412.01000",
        "  Patrick Esser, Sumith Kulal, Andreas Blattmann et al.",
        f"  Why: {REASON}",
        "  PDF: https://arxiv.org/pdf/2412.01000 · Project: https://stability.ai/sd3",
        "",
        "Robot learning",
        f"- {TITLES[1]} https://arxiv.org/abs/2412.01001",
        "  Cheng Chi",
        f"  Why: {REASON}",
        "  PDF: https://arxiv.org/pdf/2412.01001",
    ]


def test_matrix_keeps_hostile_text_as_text() -> None:
    message = chat.matrix_message(hostile())
    parsed, html = matrix(message)
    assert "script" not in html.tags
    assert "img" not in html.tags
    assert html.anchors[0::2] == list(HOSTILE_TITLES)  # each paper's title, then its PDF
    assert html.anchors[1::2] == ["PDF"] * len(HOSTILE_TITLES)
    assert all(h.startswith("https://arxiv.org/") for h in html.hrefs)
    assert "<!channel> @everyone [Evil](https://evil.example)" in html.text
    assert "<script>" not in parsed["formatted_body"]
    assert "&lt;script&gt;" in parsed["formatted_body"]
    assert T_SCRIPT in parsed["body"]  # the plain body is text: shown as written
    assert "javascript" not in message.body.decode()


def test_matrix_drops_papers_from_the_end_to_stay_under_48000_bytes() -> None:
    huge_abstract = "We study diffusion models. " * 740  # 19,980 characters, never sent to chat
    reason = "Matches “扩散模型” and “image synthesis” 🎨 in the abstract and the title " * 4
    sections = tuple(
        DigestSection(
            name,
            tuple(
                paper(100 * i + n, abstract=huge_abstract, reason=reason[:300]) for n in range(100)
            ),
        )
        for i, name in enumerate(INTERESTS)
    )
    message = chat.matrix_message(digest(*sections, more=2))
    parsed, html = matrix(message)
    assert 0 < message.shown < 300
    assert message.shown + message.left == 300
    assert "We study diffusion models" not in parsed["body"]
    assert html.hrefs[-1] == DIGEST_URL
    assert html.anchors[-1] == f"and {message.left + 2} more"
    assert parsed["body"].endswith(f"and {message.left + 2} more: {DIGEST_URL}")
    # Whole papers, in digest order: the last shown is complete, with its PDF link.
    numbers = [100 * i + n for i in range(3) for n in range(100)][: message.shown]
    assert html.hrefs[:-1] == [
        f"https://arxiv.org/{kind}/2412.{1000 + number:05d}"
        for number in numbers
        for kind in ("abs", "pdf")
    ]


def test_sixty_papers_with_20000_character_abstracts_in_matrix() -> None:
    message = chat.matrix_message(sixty(abstract="x" * 20_000))
    parsed, html = matrix(message)
    assert (message.shown, message.left) == (60, 0)
    assert "x" * 100 not in parsed["body"]
    assert html.anchors[-1] == "and 5 more"  # the digest's own overflow, on its page
    assert parsed["body"].endswith(f"and 5 more: {DIGEST_URL}")


def test_webhook_gives_every_field_and_only_http_links() -> None:
    d = digest(
        DigestSection(
            "Diffusion models",
            (
                paper(
                    0,
                    code_url="javascript:alert(1)",
                    project_url="https://stability.ai/sd3",
                ),
            ),
        ),
        DigestSection("Robot learning", (paper(1, arxiv_id=None),)),
        more=3,
    )
    message = chat.webhook_message(d)
    parsed = body(message)
    assert (message.shown, message.left) == (2, 0)
    assert {k: v for k, v in parsed.items() if k != "sections"} == {
        "type": "digest",
        "id": "post-7f3a9c",
        "title": "notifier: new papers",
        "period": "2026-12-07",
        "url": DIGEST_URL,
        "more": 3,
        "left": 0,
        "reason": "",
    }
    first, second = parsed["sections"]
    assert first["interest"] == "Diffusion models"
    assert first["papers"] == [
        {
            "title": TITLES[0],
            "authors": list(AUTHORS),
            "abstract": "We train a rectified flow transformer on image-text pairs.",
            "summary": "A transformer trained with rectified flow beats DiT.",
            "reason": REASON,
            "score": 0.9,
            "arxiv_id": "2412.01000",
            "links": {
                "page": "https://arxiv.org/abs/2412.01000",
                "abstract": "https://arxiv.org/abs/2412.01000",
                "pdf": "https://arxiv.org/pdf/2412.01000",
                "project": "https://stability.ai/sd3",
            },
            "also_matches": ["Robot learning"],
        }
    ]
    assert second["papers"][0]["links"] == {"page": "https://hf.co/papers/x"}
    assert second["papers"][0]["arxiv_id"] is None


def test_webhook_keeps_hostile_text_verbatim_as_json_strings() -> None:
    parsed = body(chat.webhook_message(hostile()))
    (section,) = parsed["sections"]
    assert section["interest"] == "<!channel> @everyone [Evil](https://evil.example)"
    assert [p["title"] for p in section["papers"]] == list(HOSTILE_TITLES)
    assert all("code" not in p["links"] for p in section["papers"])


def test_webhook_drops_papers_from_the_end_to_stay_under_512_kib() -> None:
    message = chat.webhook_message(sixty(abstract="We study diffusion models. " * 740))
    parsed = body(message)
    assert len(message.body) <= 512 * 1024
    assert 0 < message.shown < 60
    assert parsed["left"] == message.left == 60 - message.shown
    assert parsed["more"] == 5
    ids = [p["arxiv_id"] for s in parsed["sections"] for p in s["papers"]]
    assert ids == [f"2412.{1000 + n:05d}" for n in range(message.shown)]
    assert all(len(p["abstract"]) == 19_980 for s in parsed["sections"] for p in s["papers"])


@pytest.mark.parametrize("kind", chat.KINDS)
def test_empty_digest_says_why(kind: str) -> None:
    d = digest(reason="No new papers matched your 3 interests today", url=None)
    message = chat.message_for(kind, d)
    parsed = body(message)
    assert (message.shown, message.left) == (0, 0)
    line = "No new papers: No new papers matched your 3 interests today"
    if kind == "slack":
        assert_slack_within_limits(parsed)
        assert unslack(slack_texts(parsed)[-1]) == line
        assert line in parsed["text"]
    elif kind == "discord":
        assert_discord_within_limits(parsed)
        assert parsed["embeds"] == []
        assert undiscord(parsed["content"]).splitlines()[-1] == line
    elif kind == "matrix":
        parsed, html = matrix(message)
        assert parsed["body"].splitlines()[-1] == line
        assert html.hrefs == []
    else:
        assert parsed["sections"] == []
        assert parsed["left"] == 0
        assert parsed["reason"] == "No new papers matched your 3 interests today"


@pytest.mark.parametrize("kind", ["slack", "discord", "matrix"])
def test_and_n_more_counts_the_digest_s_own_overflow(kind: str) -> None:
    d = digest(DigestSection("Diffusion models", (paper(0), paper(1))), more=7, url=None)
    message = chat.message_for(kind, d)
    assert (message.shown, message.left) == (2, 0)
    text = message.body.decode()
    assert "and 7 more" in text
    assert "notifier.example" not in text  # no page to link to


def test_a_javascript_digest_url_is_not_linked() -> None:
    d = dataclasses.replace(sixty(), url="javascript:alert(1)")
    for kind in chat.KINDS:
        text = chat.message_for(kind, d).body.decode()
        assert "javascript" not in text
    assert body(chat.webhook_message(d))["url"] is None
    assert body(chat.discord_message(d))["content"].endswith("and 55 more")


def test_unicode_titles_are_cut_by_characters_not_bytes() -> None:
    cjk = "基于扩散模型的高分辨率图像合成研究" * 5  # 85 characters, 255 bytes
    emoji = "🤖🦾" * 100 + " Robots"  # 400 UTF-16 units
    d = digest(
        DigestSection(
            "扩散模型 🎨",
            (paper(0, title=cjk), paper(1, title=emoji), paper(2, title="Über Diffusion")),
        ),
        title="notifier: 扩散模型 🎨 " + "🤖" * 200,
    )
    slack = body(chat.slack_message(d))
    assert_slack_within_limits(slack)
    header = slack["blocks"][0]["text"]["text"]
    assert header.startswith("notifier: 扩散模型 🎨 🤖")
    assert header.endswith("🤖…")  # cut between emoji, never inside one
    texts = slack_texts(slack)
    assert texts[1] == "*扩散模型 🎨*"
    assert slack_links(texts[2])[0][1] == cjk  # whole: 85 characters fit, whatever the bytes
    assert unslack(texts[3]).splitlines()[0] == emoji
    discord = body(chat.discord_message(d))
    assert_discord_within_limits(discord)
    titles = [e["title"] for e in discord["embeds"]]
    assert titles[0] == cjk
    assert units(titles[1]) <= 256
    assert titles[1].endswith("…")
    assert titles[1].startswith("🤖🦾" * 60)
    assert titles[2] == "Über Diffusion"
    assert discord["embeds"][0]["author"]["name"] == "扩散模型 🎨"
    parsed, html = matrix(chat.matrix_message(d))
    assert html.anchors[0] == cjk
    assert cjk in parsed["body"]


def test_test_messages_in_each_format() -> None:
    text = "This is a test from notifier for <!channel> & @everyone [x](https://evil.example)"
    slack = orjson.loads(chat.test_message("slack", text, "test-1"))
    assert slack == {
        "text": "This is a test from notifier for &lt;!channel&gt; &amp; @everyone "
        "[x](https://evil.example)"
    }
    discord = orjson.loads(chat.test_message("discord", text, "test-1"))
    assert discord["allowed_mentions"] == {"parse": []}
    assert undiscord(discord["content"]) == text
    assert discord_links(discord["content"]) == []
    matrix_body = orjson.loads(chat.test_message("matrix", text, "test-1"))
    assert matrix_body == {"msgtype": "m.notice", "body": text, "m.mentions": {}}
    webhook = orjson.loads(chat.test_message("webhook", text, "test-1"))
    assert webhook == {"type": "test", "id": "test-1", "text": text}
    # One line, whatever it was given.
    assert orjson.loads(chat.test_message("webhook", "a\nb\r\nc", "k"))["text"] == "a b c"

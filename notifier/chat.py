"""Build a digest's chat and webhook messages (Slack, Discord, Matrix, our JSON). Pure."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from markupsafe import Markup

from notifier.models import ChannelKind, DigestPaper, DigestSection
from notifier.papers import clean_text, http_url

KINDS = tuple(kind.value for kind in ChannelKind)

# What a chat message shows of a paper, before any format's escaping: a line each,
# not a page. The formats' own limits (below) still cut further where they must.
TITLE_CHARS = 300
AUTHOR_CHARS = 100  # one author's name
SHOWN_AUTHORS = 3
REASON_CHARS = 300
INTEREST_CHARS = 150
HEADING_CHARS = 200  # the digest's title
TEST_CHARS = 500  # the preferences page's "send a test message"
UNTITLED = "Untitled"
ELLIPSIS = "…"

# Slack, Block Kit: https://api.slack.com/reference/block-kit/blocks
SLACK_BLOCKS = 50  # blocks in one message
# https://api.slack.com/reference/block-kit/blocks#section (and context elements' text objects)
SLACK_TEXT_UNITS = 3000
SLACK_HEADER_UNITS = 150  # https://api.slack.com/reference/block-kit/blocks#header
# The top-level text is truncated past 40,000 characters
# (https://api.slack.com/methods/chat.postMessage#truncating); it is only the notification
# and fallback here, so it stays as short as a notification shows.
SLACK_FALLBACK_UNITS = 300
# Each untrusted part of a paper's section, escaped (& becomes five characters): together
# with the links they stay under SLACK_TEXT_UNITS whatever the text holds.
SLACK_PART_UNITS = 600
# https://api.slack.com/reference/surfaces/formatting#escaping: only these three are
# control characters, and escaping them is what turns <!channel> or <url|label> into text.
_SLACK_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# A link's label ends at ">" and its URL at the first "|": neither may be in a label, and
# Slack has no escape for "|", so a look-alike stands in.
_SLACK_LABEL_ESCAPES = {**_SLACK_ESCAPES, "|": "\u2223"}

# Discord: https://discord.com/developers/docs/resources/webhook#execute-webhook and
# https://discord.com/developers/docs/resources/message#embed-object-embed-limits
DISCORD_CONTENT_UNITS = 2000
DISCORD_EMBEDS = 10
DISCORD_TITLE_UNITS = 256
DISCORD_AUTHOR_UNITS = 256
DISCORD_DESCRIPTION_UNITS = 4096
DISCORD_TOTAL_UNITS = 6000  # all embeds' titles, descriptions, authors, fields and footers
# Our own cap on one paper's description: the 6000 shared by ten embeds leaves about 600
# a paper, and one paper with very long links must not crowd out the rest.
DISCORD_PAPER_UNITS = 1500
DISCORD_PART_UNITS = 400  # authors, reason: escaped, each
# Everything Discord's markdown gives a meaning: a backslash before any ASCII punctuation
# shows it as itself, so a title cannot make a fake [link](url), a spoiler, a quote or a
# <@mention> (allowed_mentions keeps even a real one from pinging). A list or subtext
# needs its - first on a line, where untrusted text may start: only there is it escaped.
_DISCORD_MARKDOWN = frozenset("\\*_~`|<>[]()#@")
_DISCORD_LINE_START = frozenset("-+")

# Matrix: the whole event must stay under 65,536 bytes
# (https://spec.matrix.org/v1.11/client-server-api/#size-limits); the homeserver adds the
# event's envelope (ids, signatures, hashes), so the content keeps well below that.
MATRIX_BYTES = 48_000

# Our own JSON webhook's limit, abstracts included: a digest of 30 papers is about 60 KB,
# and half a mebibyte passes any web server's default body limit (nginx's is 1 MiB).
WEBHOOK_BYTES = 512 * 1024

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ChannelDigest:
    """One digest as a channel message shows it."""

    title: str  # heading, e.g. "notifier: 12 new papers" or "notifier: Diffusion models"
    period: str  # e.g. "2026-12-07" or "2026-W49"
    sections: tuple[DigestSection, ...]
    more: int  # papers the digest itself left over its cap (they are in the "rest" page too)
    reason: str  # the digest's one-line reason (shown when it has no papers)
    url: str | None  # a web page with the whole digest: the "and N more" link (None: no link)
    key: str  # the delivery's idempotency key (stable across retries)


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """A message ready to post: its JSON body and how many papers it left out."""

    body: bytes  # UTF-8 JSON (orjson.dumps)
    shown: int  # papers in the message
    left: int  # papers of the digest not in it (the message says "and N more")


@dataclass(frozen=True, slots=True)
class _Entry:
    """A paper as every chat format shows it: its text cleaned and cut, its links checked."""

    section: int  # position of its section in the digest
    interest: str
    title: str
    link: str | None  # what the title links to
    authors: str
    reason: str
    links: tuple[tuple[str, str], ...]  # (label, url): PDF, Code, Project


def message_for(kind: str, digest: ChannelDigest) -> ChannelMessage:
    """Return the digest's message in a channel kind's format (ValueError for an unknown kind)."""
    try:
        build = _BUILDERS[kind]
    except KeyError:
        raise ValueError(f"unknown channel kind {kind!r}: expected one of {KINDS}") from None
    return build(digest)


def test_message(kind: str, text: str, key: str) -> bytes:
    """Return a one-line test message in a channel kind's format (ValueError: unknown kind)."""
    line = _short(text, TEST_CHARS)
    if kind == "slack":
        # TEST_CHARS escaped is at most five times as long: far below any limit.
        return orjson.dumps({"text": "".join(_slack_pieces(line))})
    if kind == "discord":
        content = "".join(_discord_pieces(line))
        return orjson.dumps({"content": content, "allowed_mentions": {"parse": []}})
    if kind == "matrix":
        return orjson.dumps({"msgtype": "m.notice", "body": line, "m.mentions": {}})
    if kind == "webhook":
        return orjson.dumps({"type": "test", "id": key, "text": line})
    raise ValueError(f"unknown channel kind {kind!r}: expected one of {KINDS}")


def slack_message(digest: ChannelDigest) -> ChannelMessage:
    """Return the digest as a Slack incoming-webhook message of Block Kit blocks."""
    entries = _entries(digest)
    title = _short(digest.title, HEADING_CHARS) or "notifier"
    period = _slack_escaped(_short(digest.period, HEADING_CHARS), SLACK_TEXT_UNITS)
    fallback = f"{title} · {digest.period}"
    if not entries and not digest.more:
        fallback = f"{fallback}: {_nothing_new(digest)}"

    def build(shown: int) -> dict[str, Any]:
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                # plain_text is never parsed for mentions or links: it needs no escaping.
                "text": {"type": "plain_text", "text": _cut(title, SLACK_HEADER_UNITS)},
            },
        ]
        if period:
            blocks.append(_slack_context(period))
        if not entries and not digest.more:
            blocks.append(_slack_section(_slack_escaped(_nothing_new(digest), SLACK_TEXT_UNITS)))
        section = -1
        for entry in entries[:shown]:
            if entry.section != section:
                section = entry.section
                heading = _slack_escaped(entry.interest, SLACK_TEXT_UNITS - 2)
                blocks.append(_slack_section(f"*{heading}*"))
            blocks.append(_slack_section(_slack_paper(entry)))
        if left := len(entries) - shown + digest.more:
            blocks.append(_slack_context(_slack_more(left, digest.url)))
        return {
            "text": _cut(_slack_pieces(fallback), SLACK_FALLBACK_UNITS),
            "blocks": blocks,
            "unfurl_links": False,
            "unfurl_media": False,
        }

    shown, body = _most_that_fit(len(entries), build, lambda b: len(b["blocks"]) <= SLACK_BLOCKS)
    return ChannelMessage(orjson.dumps(body), shown, len(entries) - shown)


def discord_message(digest: ChannelDigest) -> ChannelMessage:
    """Return the digest as a Discord webhook message: one embed a paper."""
    entries = _entries(digest)
    heading = _discord_escaped(_short(digest.title, HEADING_CHARS) or "notifier", HEADING_CHARS)
    top = f"**{heading}** · {_discord_escaped(_short(digest.period, HEADING_CHARS), HEADING_CHARS)}"
    embeds = [_discord_embed(entry) for entry in entries]

    def build(shown: int) -> dict[str, Any]:
        lines = [top]
        if not entries and not digest.more:
            lines.append(_discord_escaped(_nothing_new(digest), DISCORD_PART_UNITS))
        if left := len(entries) - shown + digest.more:
            lines.append(_discord_more(left, digest.url, top))
        return {
            "content": "\n".join(lines),
            "embeds": embeds[:shown],
            # Nothing in a digest is meant to ping anyone: not even a real mention.
            "allowed_mentions": {"parse": []},
        }

    def fits(body: dict[str, Any]) -> bool:
        total = sum(_discord_units(embed) for embed in body["embeds"])
        return len(body["embeds"]) <= DISCORD_EMBEDS and total <= DISCORD_TOTAL_UNITS

    shown, body = _most_that_fit(len(entries), build, fits)
    return ChannelMessage(orjson.dumps(body), shown, len(entries) - shown)


def matrix_message(digest: ChannelDigest) -> ChannelMessage:
    """Return the digest as a Matrix m.notice event's content: plain text and HTML."""
    entries = _entries(digest)
    title = _short(digest.title, HEADING_CHARS) or "notifier"
    period = _short(digest.period, HEADING_CHARS)

    def build(shown: int) -> bytes:
        text = [f"{title} ({period})"]
        html = [Markup("<h4>{}</h4><p><em>{}</em></p>").format(title, period)]
        if not entries and not digest.more:
            text.append(_nothing_new(digest))
            html.append(Markup("<p>{}</p>").format(_nothing_new(digest)))
        section = -1
        for entry in entries[:shown]:
            if entry.section != section:
                if section >= 0:
                    html.append(Markup("</ul>"))
                section = entry.section
                text.append(f"\n{entry.interest}")
                html.append(Markup("<p><strong>{}</strong></p><ul>").format(entry.interest))
            text.append(_matrix_text(entry))
            html.append(_matrix_html(entry))
        if section >= 0:
            html.append(Markup("</ul>"))
        if left := len(entries) - shown + digest.more:
            url = http_url(digest.url)
            more = f"and {left} more"
            text.append(f"\n{more}: {url}" if url else f"\n{more}")
            link = Markup('<a href="{}">{}</a>').format(url, more) if url else more
            html.append(Markup("<p>{}</p>").format(link))
        return orjson.dumps(
            {
                # m.notice: what bots post, which other bots do not answer
                # (https://spec.matrix.org/v1.11/client-server-api/#mnotice).
                "msgtype": "m.notice",
                "body": "\n".join(text),
                "format": "org.matrix.custom.html",
                "formatted_body": "".join(html),
                # An empty m.mentions says the event mentions no one: clients that see it
                # do not treat "@room" or a name in a title as a mention
                # (https://spec.matrix.org/v1.11/client-server-api/#user-and-room-mentions).
                "m.mentions": {},
            }
        )

    shown, body = _most_that_fit(len(entries), build, lambda b: len(b) <= MATRIX_BYTES)
    return ChannelMessage(body, shown, len(entries) - shown)


def webhook_message(digest: ChannelDigest) -> ChannelMessage:
    """Return the digest as our own JSON webhook body, abstracts included."""
    papers = [(number, s, p) for number, s in enumerate(digest.sections) for p in s.papers]

    def build(shown: int) -> bytes:
        sections: list[dict[str, Any]] = []
        last = -1
        for number, section, paper in papers[:shown]:
            if number != last:
                last = number
                sections.append({"interest": section.interest, "papers": []})
            sections[-1]["papers"].append(_webhook_paper(paper))
        return orjson.dumps(
            {
                "type": "digest",
                "id": digest.key,
                "title": digest.title,
                "period": digest.period,
                "url": http_url(digest.url),
                "more": digest.more,
                "left": len(papers) - shown,
                "reason": digest.reason,
                "sections": sections,
            }
        )

    shown, body = _most_that_fit(len(papers), build, lambda b: len(b) <= WEBHOOK_BYTES)
    return ChannelMessage(body, shown, len(papers) - shown)


_BUILDERS: dict[str, Callable[[ChannelDigest], ChannelMessage]] = {
    "slack": slack_message,
    "discord": discord_message,
    "matrix": matrix_message,
    "webhook": webhook_message,
}


def _most_that_fit(
    total: int, build: Callable[[int], _T], fits: Callable[[_T], bool]
) -> tuple[int, _T]:
    """Return how many papers (the first, in digest order) fit one message, and that message.

    With papers left out the message grows with each paper it shows, so the most that
    fit are found by bisection; with none left out it has no "and N more" line, which
    may let all of them fit when all but one would not.
    """
    whole = build(total)
    if fits(whole):
        return total, whole
    low, high = 0, total - 1
    while low < high:
        middle = (low + high + 1) // 2
        if fits(build(middle)):
            low = middle
        else:
            high = middle - 1
    return low, build(low)


def _short(text: str, limit: int) -> str:
    """Return text on one line, cleaned, cut to limit characters with an ellipsis when longer."""
    text = clean_text(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def _units(text: str) -> int:
    """Return the length of text in UTF-16 code units.

    Slack and Discord count "characters" in JavaScript, where an emoji outside the
    Basic Multilingual Plane is two; counting so can only keep a message shorter.
    """
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def _cut(pieces: Iterable[str], limit: int) -> str:
    """Return the pieces joined, at most limit UTF-16 units: whole pieces, then an ellipsis.

    A piece is one character as a format escapes it (&amp;, \\*), so a cut never
    splits an escape.
    """
    pieces = list(pieces)
    if sum(_units(p) for p in pieces) <= limit:
        return "".join(pieces)
    kept: list[str] = []
    used = _units(ELLIPSIS)
    for piece in pieces:
        used += _units(piece)
        if used > limit:
            break
        kept.append(piece)
    return "".join(kept).rstrip() + ELLIPSIS


def _nothing_new(digest: ChannelDigest) -> str:
    """Return the line a digest without papers shows."""
    reason = _short(digest.reason, REASON_CHARS)
    return f"No new papers: {reason}" if reason else "No new papers."


def _entries(digest: ChannelDigest) -> list[_Entry]:
    """Return the digest's papers, in order, as the chat formats show them."""
    entries: list[_Entry] = []
    for number, section in enumerate(digest.sections):
        interest = _short(section.interest, INTEREST_CHARS) or "Papers"
        entries.extend(_entry(number, interest, paper) for paper in section.papers)
    return entries


def _entry(section: int, interest: str, paper: DigestPaper) -> _Entry:
    """Return one paper as the chat formats show it."""
    names = [name for name in (_short(a, AUTHOR_CHARS) for a in paper.authors) if name]
    authors = ", ".join(names[:SHOWN_AUTHORS])
    if len(names) > SHOWN_AUTHORS:
        authors += " et al."
    candidates = (("PDF", paper.pdf_url), ("Code", paper.code_url), ("Project", paper.project_url))
    return _Entry(
        section=section,
        interest=interest,
        title=_short(paper.title, TITLE_CHARS) or UNTITLED,
        link=http_url(paper.abs_url) or http_url(paper.url),
        authors=authors,
        reason=_short(paper.reason, REASON_CHARS),
        links=tuple((label, url) for label, raw in candidates if (url := http_url(raw))),
    )


# Slack


def _slack_pieces(text: str, escapes: dict[str, str] = _SLACK_ESCAPES) -> list[str]:
    """Return text's characters as Slack mrkdwn shows them literally."""
    return [escapes.get(c, c) for c in text]


def _slack_escaped(text: str, limit: int) -> str:
    """Return text escaped for Slack mrkdwn, cut to limit units."""
    return _cut(_slack_pieces(text), limit)


def _slack_link(url: str, label: str) -> str:
    """Return a Slack mrkdwn link; the label is escaped, the URL is a checked http(s) one."""
    # http_url refuses < and >; & is escaped like any text, and | would end the URL.
    target = url.replace("&", "&amp;").replace("|", "%7C")
    return f"<{target}|{_cut(_slack_pieces(label, _SLACK_LABEL_ESCAPES), SLACK_PART_UNITS)}>"


def _slack_text(text: str) -> dict[str, Any]:
    """Return a Slack mrkdwn text object that turns no bare URL, name or word into a link."""
    # verbatim: no automatic parsing of URLs, channel names or @here in the plain text
    # (https://api.slack.com/reference/block-kit/composition-objects#text).
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _slack_section(text: str) -> dict[str, Any]:
    """Return a Slack section block of mrkdwn text."""
    return {"type": "section", "text": _slack_text(text)}


def _slack_context(text: str) -> dict[str, Any]:
    """Return a Slack context block: one line of small mrkdwn text."""
    return {"type": "context", "elements": [_slack_text(text)]}


def _slack_paper(entry: _Entry) -> str:
    """Return a paper's Slack section text: title link, authors, reason, links."""
    lines = [_slack_escaped(entry.title, SLACK_PART_UNITS)]
    if entry.authors:
        lines.append(_slack_escaped(entry.authors, SLACK_PART_UNITS))
    if entry.reason:
        lines.append("Why: " + _slack_escaped(entry.reason, SLACK_PART_UNITS))
    # The text above is at most about 1,800 units; a link goes in only while it fits.
    if entry.link:
        linked = _slack_link(entry.link, entry.title)
        if _units("\n".join([linked, *lines[1:]])) <= SLACK_TEXT_UNITS:
            lines[0] = linked
    links: list[str] = []
    for label, url in entry.links:
        candidate = [*links, _slack_link(url, label)]
        if _units("\n".join([*lines, " · ".join(candidate)])) <= SLACK_TEXT_UNITS:
            links = candidate
    if links:
        lines.append(" · ".join(links))
    return "\n".join(lines)


def _slack_more(left: int, url: str | None) -> str:
    """Return Slack's "and N more" line, linking to the whole digest when it fits."""
    more = f"and {left} more"
    target = http_url(url)
    if target and _units(linked := _slack_link(target, more)) <= SLACK_TEXT_UNITS:
        return linked
    return more


# Discord


def _discord_pieces(text: str) -> list[str]:
    """Return text's characters as Discord markdown shows them literally."""
    pieces = ["\\" + c if c in _DISCORD_MARKDOWN else c for c in text]
    if text and text[0] in _DISCORD_LINE_START:
        pieces[0] = "\\" + text[0]
    return pieces


def _discord_escaped(text: str, limit: int) -> str:
    """Return text escaped for Discord markdown, cut to limit units."""
    return _cut(_discord_pieces(text), limit)


def _discord_url(url: str) -> str:
    """Return a checked http(s) URL fit to go inside a markdown link's parentheses."""
    return url.replace("(", "%28").replace(")", "%29")


def _discord_embed(entry: _Entry) -> dict[str, Any]:
    """Return a paper's Discord embed: title and link, interest, authors, reason, links."""
    lines = []
    if entry.authors:
        lines.append(_discord_escaped(entry.authors, DISCORD_PART_UNITS))
    if entry.reason:
        lines.append("Why: " + _discord_escaped(entry.reason, DISCORD_PART_UNITS))
    links: list[str] = []
    for label, url in entry.links:
        candidate = [*links, f"[{label}]({_discord_url(url)})"]
        if _units("\n".join([*lines, " · ".join(candidate)])) <= DISCORD_PAPER_UNITS:
            links = candidate
    if links:
        lines.append(" · ".join(links))
    embed: dict[str, Any] = {
        # An embed's title is markdown (a link in it is not): escaped like the rest.
        "title": _discord_escaped(entry.title, DISCORD_TITLE_UNITS),
        # The author line is plain text, never markdown: escaping would show backslashes.
        "author": {"name": _cut(entry.interest, DISCORD_AUTHOR_UNITS)},
    }
    if entry.link:
        embed["url"] = entry.link
    if lines:  # at most DISCORD_PAPER_UNITS, far below DISCORD_DESCRIPTION_UNITS
        embed["description"] = "\n".join(lines)
    return embed


def _discord_units(embed: dict[str, Any]) -> int:
    """Return what an embed counts towards the 6000 characters all of a message's may have."""
    return (
        _units(embed["title"])
        + _units(embed.get("description", ""))
        + _units(embed["author"]["name"])
    )


def _discord_more(left: int, url: str | None, top: str) -> str:
    """Return Discord's "and N more" line, linking to the whole digest when it fits."""
    more = f"and {left} more"
    target = http_url(url)
    # <url> inside the parentheses: a link, but no preview card under the message.
    linked = f"[{more}](<{_discord_url(target)}>)" if target else more
    if _units(top) + 1 + _units(linked) <= DISCORD_CONTENT_UNITS:
        return linked
    return more


# Matrix


def _matrix_text(entry: _Entry) -> str:
    """Return a paper as the plain-text body of a Matrix event shows it."""
    lines = [f"- {entry.title}" + (f" {entry.link}" if entry.link else "")]
    if entry.authors:
        lines.append(f"  {entry.authors}")
    if entry.reason:
        lines.append(f"  Why: {entry.reason}")
    if entry.links:
        lines.append("  " + " · ".join(f"{label}: {url}" for label, url in entry.links))
    return "\n".join(lines)


def _matrix_html(entry: _Entry) -> Markup:
    """Return a paper as a list item of a Matrix event's HTML body."""
    if entry.link:
        parts = [Markup('<a href="{}">{}</a>').format(entry.link, entry.title)]
    else:
        parts = [Markup("<strong>{}</strong>").format(entry.title)]
    if entry.authors:
        parts.append(Markup("{}").format(entry.authors))
    if entry.reason:
        parts.append(Markup("<em>Why: {}</em>").format(entry.reason))
    if entry.links:
        anchors = (Markup('<a href="{}">{}</a>').format(url, label) for label, url in entry.links)
        parts.append(Markup(" · ").join(anchors))
    return Markup("<li>{}</li>").format(Markup("<br>").join(parts))


# Webhook


def _webhook_paper(paper: DigestPaper) -> dict[str, Any]:
    """Return a paper as our webhook's JSON gives it: all it has, only http(s) links."""
    links = {
        name: url
        for name, raw in (
            ("page", paper.url),
            ("abstract", paper.abs_url),
            ("pdf", paper.pdf_url),
            ("code", paper.code_url),
            ("project", paper.project_url),
        )
        if (url := http_url(raw))
    }
    return {
        "title": paper.title,
        "authors": list(paper.authors),
        "abstract": paper.abstract,
        "summary": paper.summary,
        "reason": paper.reason,
        "score": paper.score,
        "arxiv_id": paper.arxiv_id,
        "links": links,
        "also_matches": list(paper.also_matches),
    }

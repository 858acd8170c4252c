"""Turn a frozen digest into a multipart/alternative email with list headers."""

from __future__ import annotations

import functools
import re
import secrets
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import format_datetime
from typing import Any

import css_inline
from jinja2 import Environment, TemplateError
from markupsafe import Markup

from notifier.errors import RenderError
from notifier.memo import IdentityMemo
from notifier.models import DigestContent, DigestPaper, OutgoingMessage, Subscriber
from notifier.papers import clean_text
from notifier.render.blocks import PaperBlocks
from notifier.render.feed import feed_url, private_feed_name
from notifier.render.links import LinkFragments, paper_links
from notifier.render.mime import Chunk, build_message, chunk, header_text, joined, mailbox
from notifier.render.shell import InlinedTemplate
from notifier.tokens import LinkTokens, Purpose

_LINE_BREAK = chunk("\n")


@dataclass(frozen=True, slots=True)
class DkimKey:
    """What signs outgoing mail: the d= domain, the s= selector and the private key."""

    domain: str
    selector: str
    private_key: bytes


# RFC 8058 section 3.3: both List-Unsubscribe headers MUST be covered by the signature.
DKIM_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
)


@dataclass(frozen=True, slots=True)
class MailIdentity:
    """Who digests come from and where their links point."""

    sender_address: str
    sender_name: str
    base_url: str
    tokens: LinkTokens
    dkim: DkimKey | None = None

    @property
    def domain(self) -> str:
        """Return the sender's domain."""
        return self.sender_address.rpartition("@")[2]


@dataclass(frozen=True, slots=True)
class SubscriberLinks:
    """The personal links every email carries."""

    unsubscribe: str
    manage: str
    feed: str
    # A digest's own papers as BibTeX and RIS (digests only; see citation_links).
    bibtex: str | None = None
    ris: str | None = None


def citation_links(
    identity: MailIdentity, subscriber: Subscriber, message_id: str
) -> tuple[str, str]:
    """Return the links to a digest's papers as BibTeX and as RIS, signed for its subscriber."""
    token = identity.tokens.make_digest(Purpose.CITE, subscriber.manage_token, message_id)
    base = f"{identity.base_url}/citations/{token}"
    return f"{base}.bib", f"{base}.ris"


def subscriber_links(identity: MailIdentity, subscriber: Subscriber) -> SubscriberLinks:
    """Return a subscriber's unsubscribe, preferences and private feed links.

    The first two carry tokens signed for their purpose and dated now, so they
    expire (link_days) and one cannot stand in for the other; the feed URL is
    a plain secret because feed readers keep it for years.
    """
    base = identity.base_url
    key = subscriber.manage_token
    return SubscriberLinks(
        unsubscribe=f"{base}/unsubscribe/{identity.tokens.make(Purpose.UNSUBSCRIBE, key)}",
        manage=f"{base}/manage/{identity.tokens.make(Purpose.MANAGE, key)}",
        feed=feed_url(base, private_feed_name(subscriber.feed_token)) + ".atom",
    )


@dataclass(frozen=True, slots=True)
class SectionView:
    """One interest's section as the digest templates see it, its papers rendered already."""

    interest: str
    papers: tuple[DigestPaper, ...]
    papers_html: Markup  # a placeholder until the shell is inlined; then the blocks
    papers_text: str
    tuned_by: int = 0  # papers the subscriber rated or imported for this interest


class EmailRenderer:
    """Render digests: templates compiled once, each paper's block rendered and inlined once."""

    def __init__(
        self, env: Environment, identity: MailIdentity, blocks: int = 20_000, sections: int = 1_000
    ) -> None:
        self.identity = identity
        try:
            self._inliner = css_inline.CSSInliner(keep_style_tags=False)
            self._html = InlinedTemplate(env, "email/digest.html.j2", self._inliner)
            self._text = env.get_template("email/digest.txt.j2")
            css = env.get_template("email/digest.css").render()
            papers = PaperBlocks(env, self._inliner, css)
            self._links = LinkFragments(
                InlinedTemplate(env, "email/rate.html.j2", self._inliner, fragment_css=css),
                env.get_template("email/rate.txt.j2"),
            )
        except TemplateError as e:
            raise RenderError(f"email template problem: {e}") from e
        self._from = mailbox(clean_text(identity.sender_name), identity.sender_address, "From")
        self._list_id = f"notifier digests <digests.{identity.domain}>"

        # A paper's block (its "why" included) depends only on the frozen paper, so
        # every subscriber shown the same paper for the same reason shares it: the
        # same interest text gives the same reason (pipeline/compose.py, _ComposeRun). Kept as
        # message-ready bytes. Bounded, so a long-running sender does not grow.
        self._paper_blocks_of = functools.lru_cache(maxsize=blocks)(papers.render)
        # The same blocks by the identity of the paper, and a section's papers joined
        # by the identity of its papers: claims share one frozen paper between digests
        # (storage/codec.py), so subscribers with the same interest share the whole
        # section, and hashing a DigestPaper (every field, its abstract included) was
        # most of a section's cost. A section is about 20 kB, so at most some 20 MB.
        self._blocks: IdentityMemo[tuple[Chunk, Chunk]] = IdentityMemo(blocks)
        self._sections: IdentityMemo[tuple[tuple[Chunk, Chunk], ...]] = IdentityMemo(sections)
        # Where a section's papers go in the rendered shells. Random per renderer, so
        # no text a subscriber controls (their name, an interest's) can stand for one.
        self._marker = f"notifier-section-{secrets.token_hex(8)}-"
        self._html_marks = re.compile(f"<!--{self._marker}(\\d+)-->")
        self._text_marks = re.compile(f"{self._marker}(\\d+)")

    def _section_blocks(self, papers: tuple[DigestPaper, ...]) -> tuple[tuple[Chunk, Chunk], ...]:
        """Return the HTML and text blocks of a section's papers."""
        key = tuple(map(id, papers))
        known = self._sections.get(key)
        if known is not None:
            return known
        return self._sections.put(key, papers, tuple(self._paper_blocks(p) for p in papers))

    def _section_with_links(
        self, subscriber: Subscriber, interest: str, papers: tuple[DigestPaper, ...]
    ) -> tuple[Chunk, Chunk]:
        """Return a section's HTML and text: each paper's block, then its own feedback links."""
        html: list[Chunk] = []
        text: list[Chunk] = []
        for paper, (block_html, block_text) in zip(
            papers, self._section_blocks(papers), strict=True
        ):
            identity = self.identity
            links = paper_links(
                identity.tokens,
                identity.base_url,
                subscriber.manage_token,
                paper.paper_id,
                interest,
                bool(paper.authors),
            )
            rate_html, rate_text = self._links.render(links)
            html.append(joined((block_html, _LINE_BREAK, chunk(rate_html))))
            text.extend((block_text, chunk(rate_text)))
        return joined(_between(html, _LINE_BREAK)), joined(text)

    def _paper_blocks(self, paper: DigestPaper) -> tuple[Chunk, Chunk]:
        """Return a paper's HTML and text blocks, rendered and inlined once per run."""
        known = self._blocks.get(id(paper))
        if known is not None:
            return known
        return self._blocks.put(id(paper), paper, self._paper_blocks_of(paper))

    def render(
        self, content: DigestContent, subscriber: Subscriber, message_id: str, now: datetime
    ) -> OutgoingMessage:
        """Return the digest as a message ready for SMTP or the outbox."""
        links = subscriber_links(self.identity, subscriber)
        if not content.is_empty:
            bib, ris = citation_links(self.identity, subscriber, message_id)
            links = replace(links, bibtex=bib, ris=ris)
        # The shells are rendered per message with a marker per section (the HTML one
        # inlined once per shape, render/shell.py); the paper blocks, ready once per
        # run, are joined in afterwards.
        sections: list[SectionView] = []
        papers_html: list[Chunk] = []
        papers_text: list[Chunk] = []
        try:
            for number, section in enumerate(content.sections):
                html, text = self._section_with_links(subscriber, section.interest, section.papers)
                papers_html.append(html)
                papers_text.append(text)
                sections.append(
                    SectionView(
                        section.interest,
                        section.papers,
                        Markup(f"<!--{self._marker}{number}-->"),
                        f"{self._marker}{number}",
                        section.tuned_by,
                    )
                )
        except TemplateError as e:
            raise RenderError(f"email template problem: {e}") from e

        display_name = clean_text(subscriber.name or "")
        subject = subject_line(content)
        context: dict[str, Any] = {
            "subscriber": subscriber,
            "display_name": display_name or None,
            "digest": content,
            "links": links,
            "base_url": self.identity.base_url,
            "subject": subject,
            "sections": sections,
        }
        try:
            text_shell = self._text.render(context)
            html_shell = self._html.render(context)
        except TemplateError as e:
            raise RenderError(f"email template problem: {e}") from e
        text = _filled(self._text_marks.split(text_shell), papers_text)
        html = _filled(self._html_marks.split(html_shell), papers_html)

        headers = [
            ("From", self._from),
            ("To", mailbox(display_name, subscriber.email)),
            ("Subject", header_text(subject)),
            ("Date", _date_header(now.replace(microsecond=0))),
            ("Message-ID", message_id),
            ("List-Id", self._list_id),
            # No mailto: alternative, since no one reads replies to the sender address;
            # RFC 8058 one-click: a POST to this URL unsubscribes without a page.
            ("List-Unsubscribe", f"<{links.unsubscribe}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("Auto-Submitted", "auto-generated"),  # RFC 3834: no auto-replies
        ]
        data = build_message(headers, text, html)
        if self.identity.dkim is not None:
            data = sign(data, self.identity.dkim)
        return OutgoingMessage(self.identity.sender_address, subscriber.email, message_id, data)


class NoticeRenderer:
    """Render the one-off emails of the web sign-up: a confirmation, or "already subscribed"."""

    def __init__(self, env: Environment, identity: MailIdentity, confirm_hours: int) -> None:
        self.identity = identity
        self.confirm_hours = confirm_hours
        try:
            self._html = env.get_template("email/notice.html.j2")
            self._text = env.get_template("email/notice.txt.j2")
        except TemplateError as e:
            raise RenderError(f"email template problem: {e}") from e
        self._inliner = css_inline.CSSInliner(keep_style_tags=False)
        self._from = mailbox(clean_text(identity.sender_name), identity.sender_address, "From")

    def render(self, kind: str, subscriber: Subscriber, now: datetime) -> OutgoingMessage:
        """Return the confirmation ("confirm") or reminder ("remind") email for subscriber."""
        key = subscriber.manage_token
        base = self.identity.base_url
        if kind == "confirm":
            link = f"{base}/confirm/{self.identity.tokens.make(Purpose.CONFIRM, key)}"
            subject = "Confirm your notifier subscription"
        else:
            link = f"{base}/manage/{self.identity.tokens.make(Purpose.MANAGE, key)}"
            subject = "You are already subscribed to notifier"
        display_name = clean_text(subscriber.name or "")
        context = {
            "kind": kind,
            "link": link,
            "subject": subject,
            "display_name": display_name or None,
            "confirm_hours": self.confirm_hours,
        }
        try:
            text = self._text.render(context)
            html = self._inliner.inline(self._html.render(context))
        except TemplateError as e:
            raise RenderError(f"email template problem: {e}") from e
        message_id = f"<notice.{uuid.uuid4().hex}@{self.identity.domain}>"
        headers = [
            ("From", self._from),
            ("To", mailbox(display_name, subscriber.email)),
            ("Subject", subject),
            ("Date", format_datetime(now)),
            ("Message-ID", message_id),
            ("Auto-Submitted", "auto-generated"),
        ]
        data = build_message(headers, text, html)
        if self.identity.dkim is not None:
            data = sign(data, self.identity.dkim)
        return OutgoingMessage(self.identity.sender_address, subscriber.email, message_id, data)


@functools.lru_cache(maxsize=4)
def _date_header(now: datetime) -> str:
    """Return now (whole seconds) as a Date header; a run renders many messages a second."""
    return format_datetime(now)


def _between(chunks: Iterable[Chunk], separator: Chunk) -> Iterator[Chunk]:
    """Yield the chunks with separator between each two."""
    for number, part in enumerate(chunks):
        if number:
            yield separator
        yield part


def _filled(pieces: list[str], sections: Sequence[Chunk]) -> Chunk:
    """Return a shell split at its section markers (re.split: text, number, text, ...)
    with each marker replaced by that section's papers.
    """
    return joined(
        sections[int(piece)] if number % 2 else chunk(piece) for number, piece in enumerate(pieces)
    )


def sign(data: bytes, key: DkimKey) -> bytes:
    """Return the message with a DKIM-Signature header computed over its bytes."""
    # Imported here: dkimpy brings dnspython (60 ms), which only signing senders need.
    import dkim

    try:
        header: bytes = dkim.sign(
            data,
            key.selector.encode(),
            key.domain.encode(),
            key.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=list(DKIM_HEADERS),
            linesep=b"\r\n",
        )
    except dkim.DKIMException as e:
        raise RenderError(f"DKIM signing failed: {e}; check dkim_key_file") from e
    return header + data


def subject_line(content: DigestContent) -> str:
    """Return the subject: how many papers, for which interests, for which period."""
    if content.is_empty:
        return clean_text(f"Nothing new for you ({content.period})")
    count = content.paper_count + content.more
    interests = ", ".join(s.interest for s in content.sections)
    noun = "paper" if count == 1 else "papers"
    return clean_text(f"{count} new {noun} on {interests} ({content.period})")

"""Turn a frozen digest into a multipart/alternative email with list headers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import css_inline
import dkim
from jinja2 import Environment, TemplateError

from notifier.errors import RenderError
from notifier.models import DigestContent, Subscriber
from notifier.papers import clean_text
from notifier.render.feed import feed_url, private_feed_name

# RFC 5322 allows 998 octets per line; the default 78 makes the email package
# RFC 2047-encode long unbreakable tokens (the List-Unsubscribe URLs), which
# clients then cannot parse.
MAIL_POLICY = policy.SMTP.clone(max_line_length=998)


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
    dkim: DkimKey | None = None

    @property
    def domain(self) -> str:
        """Return the sender's domain."""
        return self.sender_address.rpartition("@")[2]


@dataclass(frozen=True, slots=True)
class SubscriberLinks:
    """The personal links every email carries."""

    unsubscribe: str
    unsubscribe_mailto: str
    manage: str
    feed: str


def subscriber_links(identity: MailIdentity, subscriber: Subscriber) -> SubscriberLinks:
    """Return a subscriber's unsubscribe, preferences and private feed links."""
    base = identity.base_url
    return SubscriberLinks(
        unsubscribe=f"{base}/unsubscribe/{subscriber.manage_token}",
        unsubscribe_mailto=(
            f"mailto:{identity.sender_address}?subject=unsubscribe-{subscriber.manage_token}"
        ),
        manage=f"{base}/manage/{subscriber.manage_token}",
        feed=feed_url(base, private_feed_name(subscriber.feed_token)) + ".atom",
    )


class EmailRenderer:
    """Render digests; templates are compiled and the CSS inliner built once per instance."""

    def __init__(self, env: Environment, identity: MailIdentity) -> None:
        self.identity = identity
        try:
            self._html = env.get_template("email/digest.html.j2")
            self._text = env.get_template("email/digest.txt.j2")
        except TemplateError as e:
            raise RenderError(f"email template problem: {e}") from e
        self._inliner = css_inline.CSSInliner(keep_style_tags=False)

    def render(
        self, content: DigestContent, subscriber: Subscriber, message_id: str, now: datetime
    ) -> EmailMessage:
        """Return the digest as an EmailMessage ready for SMTP or the outbox."""
        links = subscriber_links(self.identity, subscriber)
        context: dict[str, Any] = {
            "subscriber": subscriber,
            "display_name": clean_text(subscriber.name or "") or None,
            "digest": content,
            "links": links,
            "base_url": self.identity.base_url,
            "subject": subject_line(content),
        }
        try:
            text = self._text.render(context)
            html = self._inliner.inline(self._html.render(context))
        except TemplateError as e:
            raise RenderError(f"email template problem: {e}") from e

        message = EmailMessage(policy=MAIL_POLICY)
        # Address objects, never f-strings: the email package refuses CR/LF in
        # them, and clean_text has already removed every control character.
        message["From"] = Address(
            clean_text(self.identity.sender_name), addr_spec=self.identity.sender_address
        )
        message["To"] = Address(context["display_name"] or "", addr_spec=subscriber.email)
        message["Subject"] = context["subject"]
        message["Date"] = format_datetime(now)
        message["Message-ID"] = message_id
        message["List-Id"] = f"notifier digests <digests.{self.identity.domain}>"
        message["List-Unsubscribe"] = f"<{links.unsubscribe}>, <{links.unsubscribe_mailto}>"
        # RFC 8058 one-click: a POST to the URL above unsubscribes without a page.
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        if self.identity.dkim is not None:
            sign(message, self.identity.dkim)
        return message


def sign(message: EmailMessage, key: DkimKey) -> None:
    """Add a DKIM-Signature header computed over the message as it will be sent."""
    try:
        header = dkim.sign(
            message.as_bytes(),  # fixes the MIME boundary, so later serialisations match
            key.selector.encode(),
            key.domain.encode(),
            key.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=list(DKIM_HEADERS),
        )
    except dkim.DKIMException as e:
        raise RenderError(f"DKIM signing failed: {e}; check dkim_key_file") from e
    name, _, value = header.decode().partition(":")
    # Relaxed canonicalisation tolerates the email package's own folding of it.
    message[name] = " ".join(value.split())


def subject_line(content: DigestContent) -> str:
    """Return the subject: how many papers, for which interests, for which period."""
    count = len(content.papers) + content.more
    interests = ", ".join(s.interest for s in content.sections)
    noun = "paper" if count == 1 else "papers"
    return clean_text(f"{count} new {noun} on {interests} ({content.period})")

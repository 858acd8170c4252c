"""Signed, expiring, per-purpose tokens for the links in emails (itsdangerous).

A token signs a subscriber's random manage key with a salt per purpose, so a
confirmation token cannot be replayed as an unsubscribe token, and carries the
moment it was made, so each purpose has its own lifetime. Rotating the manage
key revokes every link at once. Signatures are checked in constant time by
itsdangerous (hmac.compare_digest).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from itsdangerous.encoding import base64_encode, int_to_bytes, want_bytes


class Purpose(StrEnum):
    """What a link lets its holder do; each is signed with its own salt."""

    CONFIRM = "confirm"
    MANAGE = "manage"
    UNSUBSCRIBE = "unsubscribe"
    CSRF = "csrf"
    # A paper's links in a digest or a private feed, each for one paper and interest.
    MORE = "more"  # more like this
    LESS = "less"  # not for me
    MUTE = "mute"  # mute one of its authors
    CITE = "cite"  # a digest's papers as BibTeX or RIS
    VIEW = "view"  # a digest as a web page (the "and N more" link of a chat message)


PAPER_PURPOSES = (Purpose.MORE, Purpose.LESS, Purpose.MUTE)


@dataclass(frozen=True, slots=True)
class PaperLink:
    """What a paper's link names: whose, which paper, for which of their interests."""

    key: str  # the subscriber's manage key
    paper_id: int
    interest: str


class TokenError(ValueError):
    """A token that is forged, for another purpose, or too old; the message says which."""


class _ClockSigner(TimestampSigner):
    """A TimestampSigner whose clock can be set (tests move it forward)."""

    def __init__(self, secret: bytes, salt: str, clock: Callable[[], float]) -> None:
        super().__init__(secret, salt=salt, digest_method=hashlib.sha256)
        self._clock = clock
        self._key = super().derive_key()
        # Keyed once: hmac.new sets the key up again for every token, and a digest
        # signs three per paper (more, less, mute).
        self._mac = hmac.new(self._key, digestmod=hashlib.sha256)

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        """Return the signing key, derived once: a sender signs two links per message."""
        if secret_key is None:
            return self._key
        return super().derive_key(secret_key)

    def get_signature(self, value: str | bytes) -> bytes:
        """Return the signature of value, as itsdangerous makes it (HMAC-SHA256, base64)."""
        mac = self._mac.copy()
        mac.update(want_bytes(value))
        return base64_encode(mac.digest())

    def get_timestamp(self) -> int:
        """Return the current moment of the injected clock."""
        return int(self._clock())

    def sign_at(self, value: str, moment: int) -> bytes:
        """Sign value as made at moment (TimestampSigner.sign, with the moment given)."""
        stamped = want_bytes(value) + self.sep + base64_encode(int_to_bytes(moment))
        return stamped + self.sep + self.get_signature(stamped)


class LinkTokens:
    """Make and check the tokens in confirmation, preferences and unsubscribe links."""

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("the secret key must be at least 16 bytes")
        self._signers = {
            purpose: _ClockSigner(secret, f"notifier.{purpose}", clock) for purpose in Purpose
        }

    def make(self, purpose: Purpose, key: str) -> str:
        """Return a token for key (a subscriber's manage key) valid only for purpose."""
        return self._signers[purpose].sign(key).decode()

    def make_paper(self, purpose: Purpose, link: PaperLink, at: float | None = None) -> str:
        """Return a token for one paper and interest of a subscriber, valid only for purpose.

        The interest goes by name (base64url, so any name fits), since a frozen
        digest names its sections; the manage key makes it the subscriber's own.
        at dates the token (a feed's links are dated by their item, so an
        unchanged feed rebuilds byte for byte); by default it is made now.
        """
        value = f"{link.key}~{link.paper_id}~{_encoded(link.interest)}"
        if at is None:
            return self.make(purpose, value)
        return self._signers[purpose].sign_at(value, int(at)).decode()

    def read_paper(self, purpose: Purpose, token: str, max_age: float) -> PaperLink:
        """Return what a paper's token names, or raise TokenError saying why it is refused."""
        value = self.read(purpose, token, max_age)
        try:
            key, paper, name = value.split("~")
            return PaperLink(key, int(paper), _decoded(name))
        except (ValueError, UnicodeDecodeError):
            raise TokenError("this link is not valid") from None

    def make_message(self, purpose: Purpose, message_id: str, at: float) -> str:
        """Return a token naming a digest by its Message-ID alone, dated at.

        No manage key in it: a token is signed, not encrypted, and this one is
        shown in chat rooms. Dated by the post, so every attempt is the same bytes.
        """
        return self._signers[purpose].sign_at(_encoded(message_id), int(at)).decode()

    def read_message(self, purpose: Purpose, token: str, max_age: float) -> str:
        """Return the Message-ID a make_message token names, or raise TokenError."""
        value = self.read(purpose, token, max_age)
        try:
            return _decoded(value)
        except (ValueError, UnicodeDecodeError):
            raise TokenError("this link is not valid") from None

    def make_digest(self, purpose: Purpose, key: str, message_id: str) -> str:
        """Return a token for one of a subscriber's digests (named by its Message-ID)."""
        return self.make(purpose, f"{key}~{_encoded(message_id)}")

    def read_digest(self, purpose: Purpose, token: str, max_age: float) -> tuple[str, str]:
        """Return the manage key and Message-ID a digest's token names, or raise TokenError."""
        value = self.read(purpose, token, max_age)
        try:
            key, name = value.split("~")
            return key, _decoded(name)
        except (ValueError, UnicodeDecodeError):
            raise TokenError("this link is not valid") from None

    def read(self, purpose: Purpose, token: str, max_age: float) -> str:
        """Return the key a token signs, or raise TokenError saying why it is refused."""
        try:
            value: bytes = self._signers[purpose].unsign(token, max_age=int(max_age))
            return value.decode()
        except SignatureExpired:
            raise TokenError("this link has expired") from None
        except (BadSignature, UnicodeDecodeError):
            raise TokenError("this link is not valid") from None


def _encoded(text: str) -> str:
    """Return text as base64url without padding: any text, in characters a token may hold."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decoded(name: str) -> str:
    """Return the text _encoded gave name for (ValueError, UnicodeDecodeError if none)."""
    return base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()

"""Signed, expiring, per-purpose tokens for the links in emails (itsdangerous).

A token signs a subscriber's random manage key with a salt per purpose, so a
confirmation token cannot be replayed as an unsubscribe token, and carries the
moment it was made, so each purpose has its own lifetime. Rotating the manage
key revokes every link at once. Signatures are checked in constant time by
itsdangerous (hmac.compare_digest).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from enum import StrEnum

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner


class Purpose(StrEnum):
    """What a link lets its holder do; each is signed with its own salt."""

    CONFIRM = "confirm"
    MANAGE = "manage"
    UNSUBSCRIBE = "unsubscribe"
    CSRF = "csrf"


class TokenError(ValueError):
    """A token that is forged, for another purpose, or too old; the message says which."""


class _ClockSigner(TimestampSigner):
    """A TimestampSigner whose clock can be set (tests move it forward)."""

    def __init__(self, secret: bytes, salt: str, clock: Callable[[], float]) -> None:
        super().__init__(secret, salt=salt, digest_method=hashlib.sha256)
        self._clock = clock
        self._key = super().derive_key()

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        """Return the signing key, derived once: a sender signs two links per message."""
        if secret_key is None:
            return self._key
        return super().derive_key(secret_key)

    def get_timestamp(self) -> int:
        """Return the current moment of the injected clock."""
        return int(self._clock())


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

    def read(self, purpose: Purpose, token: str, max_age: float) -> str:
        """Return the key a token signs, or raise TokenError saying why it is refused."""
        try:
            value: bytes = self._signers[purpose].unsign(token, max_age=int(max_age))
            return value.decode()
        except SignatureExpired:
            raise TokenError("this link has expired") from None
        except (BadSignature, UnicodeDecodeError):
            raise TokenError("this link is not valid") from None

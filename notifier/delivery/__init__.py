"""Delivery: put rendered digests on the wire (SMTP) or in files (outbox, feeds)."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from notifier.models import OutgoingMessage


class Transport(Protocol):
    """Something that accepts a message or raises a DeliveryError subclass."""

    async def __aenter__(self) -> Self:
        """Open what the transport needs (a connection, a directory)."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close it."""

    async def send(self, message: OutgoingMessage, following: OutgoingMessage | None = None) -> str:
        """Deliver one message; return the server's reply or where it went.

        following is the message this transport will be given next, when known:
        a transport may start on it early (SMTP sends its envelope ahead).
        """

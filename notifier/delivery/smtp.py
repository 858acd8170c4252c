"""Send over SMTP with aiosmtplib, one connection reused across a run."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import aiosmtplib

from notifier.errors import (
    DeliveryUnknown,
    RecipientRejected,
    ServerUnavailable,
    TemporaryDeliveryError,
)
from notifier.models import OutgoingMessage
from notifier.settings import SmtpTarget


class SmtpTransport:
    """Deliver messages to one SMTP server, translating its replies into our errors."""

    def __init__(self, target: SmtpTarget, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self._client: aiosmtplib.SMTP | None = None

    async def __aenter__(self) -> Self:
        """Connect (and log in) now, so a dead server stops the run before any work."""
        await self._connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Say QUIT politely; a server that already went away is fine."""
        if self._client is not None and self._client.is_connected:
            try:
                await self._client.quit()
            except aiosmtplib.SMTPException:
                self._client.close()
        self._client = None

    async def _connect(self) -> aiosmtplib.SMTP:
        """Open a connection, or raise ServerUnavailable naming the server."""
        target = self.target
        client = aiosmtplib.SMTP(
            hostname=target.host,
            port=target.port,
            use_tls=target.implicit_tls,
            # STARTTLS when the server offers it (aiosmtplib's default), never required
            # for plain smtp:// so local relays and test servers work.
            start_tls=None,
            timeout=self.timeout,
        )
        try:
            await client.connect()
            if target.username:
                await client.login(target.username, target.password or "")
        except aiosmtplib.SMTPAuthenticationError as e:
            raise ServerUnavailable(
                f"mail server {target.describe()} refused the login for {target.username!r}: "
                f"{e.code} {e.message}; check the user and password in NOTIFIER_SMTP_URL"
            ) from e
        except (aiosmtplib.SMTPException, OSError) as e:
            raise ServerUnavailable(
                f"cannot reach the mail server {target.describe()}: {_describe(e)}; "
                "check NOTIFIER_SMTP_URL and that the server is running"
            ) from e
        self._client = client
        return client

    async def send(self, message: OutgoingMessage) -> str:
        """Send one message; raise a DeliveryError subclass when it is not accepted.

        MAIL, RCPT and DATA are sent one by one so a failure is classified by where
        it happened: after the data went out, the outcome is unknown, not failed
        (RFC 5321 4.5.3.2: a spurious timeout there "would typically result in
        delivery of multiple copies").
        """
        client = self._client
        if client is None or not client.is_connected:
            client = await self._connect()
        options, encoding = [], "ascii"
        if message.needs_smtputf8:
            if not client.supports_extension("smtputf8"):
                raise RecipientRejected(
                    f"mail server {self.target.describe()} does not accept internationalised "
                    f"addresses (no SMTPUTF8), so {message.recipient!r} cannot be reached"
                )
            options, encoding = ["SMTPUTF8"], "utf-8"
        try:
            await client.mail(message.sender, options=options, encoding=encoding)
            await client.rcpt(message.recipient, encoding=encoding)
        except aiosmtplib.SMTPSenderRefused as e:
            await self._reset(client)
            if 500 <= e.code < 600:
                # The sender address is refused for every message: stop the run.
                raise ServerUnavailable(
                    f"mail server {self.target.describe()} refused the sender "
                    f"{e.sender!r}: {e.code} {e.message}; check sender_address"
                ) from e
            raise TemporaryDeliveryError(f"{e.code} {e.message}") from e
        except aiosmtplib.SMTPResponseException as e:
            await self._reset(client)
            raise _by_code(e.code, f"{e.code} {e.message}") from e
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as e:
            self._drop(client)
            raise TemporaryDeliveryError(f"connection lost: {_describe(e)}") from e
        try:
            reply = await client.data(message.data)
        except aiosmtplib.SMTPResponseException as e:
            raise _by_code(e.code, f"{e.code} {e.message}") from e
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as e:
            self._drop(client)
            raise DeliveryUnknown(
                f"connection lost after the message was sent ({_describe(e)}); it may have arrived"
            ) from e
        return f"{reply.code} {reply.message}"

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        """End a failed transaction so the connection can carry the next message."""
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            self._drop(client)

    def _drop(self, client: aiosmtplib.SMTP) -> None:
        """Forget a broken connection; the next send opens a new one."""
        self._client = None
        client.close()


def _by_code(code: int, text: str) -> RecipientRejected | TemporaryDeliveryError:
    """Return the error for an SMTP reply: 5xx is permanent, anything else temporary."""
    if 500 <= code < 600:
        return RecipientRejected(text)
    return TemporaryDeliveryError(text)


def _describe(error: BaseException) -> str:
    """Return an exception as a short phrase."""
    return str(error) or type(error).__name__

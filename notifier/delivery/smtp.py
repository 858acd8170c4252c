"""Send over SMTP, one connection reused across a run, pipelining when the server allows.

aiosmtplib still opens the connection (TLS or STARTTLS, EHLO, AUTH); then the
transport is handed to _Connection, a small protocol of ours, for the mail
transactions. aiosmtplib's protocol cannot carry pipelined commands (RFC 2920):
it parses one reply per wait, drops bytes that arrive while a parsed reply
awaits pickup and leaves a second reply from the same packet unparsed until
more bytes come. Its DATA path also runs two regexes over every message (0.35
of 0.82 ms per message); rendered messages have CRLF line ends already
(render/mime.py), so dot-stuffing is one substitution after each CRLF here.

With PIPELINING, the envelope of the message a lane sends next goes out in the
same write as this message's data (RFC 2920 3.1: "the actual transfer of
message content is explicitly allowed to be the first 'command' in a group"),
so each message costs one round trip, not two, and the server and the sender
are woken once per message instead of twice.
"""

from __future__ import annotations

import asyncio
import collections
import re
from types import TracebackType
from typing import Self, cast

import aiosmtplib
from aiosmtplib.email import quote_address

from notifier.errors import (
    DeliveryError,
    DeliveryUnknown,
    RecipientRejected,
    ServerUnavailable,
    TemporaryDeliveryError,
)
from notifier.models import OutgoingMessage
from notifier.settings import SmtpTarget

# A reply, or a run of continuation lines, longer than this is not SMTP: stop reading.
MAX_REPLY = 32 * 1024
# What each envelope command must be answered with to go on (aiosmtplib's rules).
MAIL_OK = (250,)
RCPT_OK = (250, 251)
DATA_OK = (354,)
CLOSING = 421  # the server is about to hang up: the connection cannot be reused

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A dot-atom ASCII address (RFC 5322 3.2.3), the usual case: nothing to quote or check.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")

Reply = tuple[int, str]


class SmtpTransport:
    """Deliver messages to one SMTP server, translating its replies into our errors."""

    def __init__(self, target: SmtpTarget, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self._conn: _Connection | None = None
        self._mail_from: tuple[tuple[str, bool] | None, bytes] = (None, b"")
        # The message whose MAIL, RCPT and DATA went out after the last message's
        # data, and on which connection; its send reads their replies.
        self._ahead: tuple[OutgoingMessage, _Connection] | None = None
        # Cleared for good when a server puts envelopes sent ahead out of step.
        self._send_ahead = True

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
        """Say QUIT politely (hang up instead on a transaction opened ahead); a server
        that already went away is fine.
        """
        conn, self._conn = self._conn, None
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            # A transaction was opened for a message that will not be sent: the server
            # may wait for its data, where QUIT would be taken for text. Hanging up
            # aborts the transaction (RFC 5321 3.8); nothing is delivered.
            self._drop(ahead[1])
        if conn is not None and conn.is_open:
            try:
                conn.write(b"QUIT\r\n")
                await conn.reply(self.timeout)
            except (aiosmtplib.SMTPException, OSError):
                pass
            finally:
                conn.close()

    async def _connect(self) -> _Connection:
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
            if client.is_ehlo_or_helo_needed:  # after implicit TLS or STARTTLS without AUTH
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
        except aiosmtplib.SMTPAuthenticationError as e:
            client.close()
            raise ServerUnavailable(
                f"mail server {target.describe()} refused the login for {target.username!r}: "
                f"{e.code} {e.message}; check the user and password in NOTIFIER_SMTP_URL"
            ) from e
        except aiosmtplib.SMTPResponseException as e:
            # A greeting of 421 or 554 (RFC 5321 3.1): the server is there and says no.
            client.close()
            raise ServerUnavailable(
                f"mail server {target.describe()} refused the connection: {e.code} "
                f"{e.message}; it is busy (4xx, sending resumes on the next run) or does "
                "not take mail from here (5xx, check NOTIFIER_SMTP_URL)"
            ) from e
        except (aiosmtplib.SMTPException, OSError) as e:
            client.close()
            raise ServerUnavailable(
                f"cannot reach the mail server {target.describe()}: {_describe(e)}; "
                "check NOTIFIER_SMTP_URL and that the server is running"
            ) from e
        if client.transport is None:  # the server hung up right after its EHLO reply
            raise ServerUnavailable(
                f"cannot reach the mail server {target.describe()}: connection lost; "
                "check NOTIFIER_SMTP_URL and that the server is running"
            )
        # The connection is ours from here on; aiosmtplib's client is never used again.
        transport = cast(asyncio.Transport, client.transport)
        conn = _Connection(transport, set(client.esmtp_extensions))
        transport.set_protocol(conn)
        self._conn = conn
        return conn

    async def send(self, message: OutgoingMessage, following: OutgoingMessage | None = None) -> str:
        """Send one message; raise a DeliveryError subclass when it is not accepted.

        MAIL, RCPT and DATA go out in one write when the server offers PIPELINING,
        else one by one; either way every reply is read and a failure is
        classified by the command it answers. following, the message this
        transport will be given next, has its MAIL, RCPT and DATA sent right
        after this message's data when the server pipelines; its own send reads
        their replies. After the data went out, a lost connection leaves the
        outcome unknown, not failed (RFC 5321 4.5.3.2: a spurious timeout there
        "would typically result in delivery of multiple copies").
        """
        conn, commands = await self._transaction(message)
        then = self._commands_ahead(conn, following)
        body = await self._envelope(conn, commands, message, then)
        try:
            conn.write(body, replies=4 if then else 1)
            if following is not None and then:
                self._ahead = (following, conn)
            code, text = await conn.reply(self.timeout)
        except (aiosmtplib.SMTPException, OSError) as e:
            self._drop(conn)
            raise DeliveryUnknown(
                f"connection lost after the message was sent ({_describe(e)}); it may have arrived"
            ) from e
        if code != 250:
            if code == CLOSING:
                self._drop(conn)
            raise _by_code(code, f"{code} {text}")
        return f"{code} {text}"

    async def _transaction(
        self, message: OutgoingMessage
    ) -> tuple[_Connection, tuple[bytes, bytes, bytes] | None]:
        """Return the connection to send message over and its MAIL, RCPT and DATA lines,
        None for those when they went out ahead, after the previous message's data.
        """
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            opened, ahead_on = ahead
            if opened is message and ahead_on is self._conn and ahead_on.is_open:
                return ahead_on, None
            # Opened for another message, or on a connection since lost: only hanging
            # up ends that transaction.
            self._drop(ahead_on)
        conn = self._conn
        if conn is None or not conn.is_open:
            conn = await self._connect()
        if conn.cannot_carry(message):
            raise RecipientRejected(
                f"mail server {self.target.describe()} does not accept internationalised "
                f"addresses (no SMTPUTF8), so {message.recipient!r} cannot be reached"
            )
        return conn, self._commands(message, message.needs_smtputf8)

    def _commands(self, message: OutgoingMessage, smtputf8: bool) -> tuple[bytes, bytes, bytes]:
        """Return the MAIL, RCPT and DATA lines of message's transaction."""
        return (
            self._mail_command(message.sender, smtputf8),
            b"RCPT TO:" + _address(message.recipient, smtputf8) + b"\r\n",
            b"DATA\r\n",
        )

    def _commands_ahead(self, conn: _Connection, following: OutgoingMessage | None) -> bytes:
        """Return following's MAIL, RCPT and DATA to send after this message's data, or b""
        when they cannot go ahead: no PIPELINING, or an address its own send refuses.
        """
        if following is None or not conn.pipelining or not self._send_ahead:
            return b""
        if conn.cannot_carry(following):
            return b""
        try:
            return b"".join(self._commands(following, following.needs_smtputf8))
        except ValueError:
            return b""

    async def _envelope(
        self,
        conn: _Connection,
        commands: tuple[bytes, bytes, bytes] | None,
        message: OutgoingMessage,
        then: bytes,
    ) -> bytes:
        """Send MAIL, RCPT and DATA (unless they went out ahead: commands None); return the
        data to send once DATA got 354, followed by then, else raise.

        The data is prepared while the server answers the first command.
        """
        failure: tuple[int, Reply] | None = None  # (command index, reply)
        data_open = False
        try:
            if conn.pipelining:
                # RFC 2920: the group goes out at once and every reply is read, in
                # order, so the connection stays in step whatever the server refused.
                if commands is not None:
                    conn.write(b"".join(commands), replies=3)
                body = dot_stuffed(message.data, then)
                for step, ok in enumerate((MAIL_OK, RCPT_OK, DATA_OK)):
                    reply = await conn.reply(self.timeout)
                    if failure is None and reply[0] not in ok:
                        failure = (step, reply)
                data_open = reply[0] == 354
            else:
                assert commands is not None  # nothing goes ahead without PIPELINING
                for step, ok in enumerate((MAIL_OK, RCPT_OK, DATA_OK)):
                    conn.write(commands[step])
                    if step == 0:
                        body = dot_stuffed(message.data, then)
                    reply = await conn.reply(self.timeout)
                    if reply[0] not in ok:
                        failure = (step, reply)
                        break
        except (aiosmtplib.SMTPException, OSError) as e:
            self._drop(conn)
            if failure is None:
                raise TemporaryDeliveryError(f"connection lost: {_describe(e)}") from e
            raise self._refusal(failure, message.sender) from e
        if failure is None:
            return body
        step, (code, text) = failure
        if step == 2 and code < 400:
            # DATA is never answered so: a reply nobody asked for (an extra one after
            # a message's) was taken for one of ours, and the server may be reading
            # data. Only a new connection is in step; with envelopes sent ahead such
            # a reply is always mistaken, so none go ahead from now on.
            self._drop(conn)
            if commands is None:
                self._send_ahead = False
            raise TemporaryDeliveryError(
                f"mail server {self.target.describe()} answered DATA with {code} {text}, "
                "out of step with the commands sent; the message is retried later"
            )
        if data_open or code == CLOSING:
            # A server that opened DATA after refusing MAIL or RCPT: hanging up
            # mid-DATA aborts the transaction (RFC 5321 3.8); a "." would not.
            self._drop(conn)
        else:
            await self._reset(conn)
        raise self._refusal(failure, message.sender)

    def _refusal(self, failure: tuple[int, Reply], sender: str) -> DeliveryError:
        """Return the error for a refused MAIL (index 0), RCPT (1) or DATA (2)."""
        step, (code, text) = failure
        if step == 0:
            if 500 <= code < 600:
                # The sender address is refused for every message: stop the run.
                return ServerUnavailable(
                    f"mail server {self.target.describe()} refused the sender "
                    f"{sender!r}: {code} {text}; check sender_address"
                )
            return TemporaryDeliveryError(f"{code} {text}")
        return _by_code(code, f"{code} {text}")

    def _mail_command(self, sender: str, smtputf8: bool) -> bytes:
        """Return the MAIL FROM line for sender; a run has one sender, so it is built once."""
        key = (sender, smtputf8)
        if self._mail_from[0] != key:
            option = b" SMTPUTF8" if smtputf8 else b""
            self._mail_from = (key, b"MAIL FROM:" + _address(sender, smtputf8) + option + b"\r\n")
        return self._mail_from[1]

    async def _reset(self, conn: _Connection) -> None:
        """End a failed transaction so the connection can carry the next message."""
        try:
            conn.write(b"RSET\r\n")
            code, _ = await conn.reply(self.timeout)
        except (aiosmtplib.SMTPException, OSError):
            self._drop(conn)
            return
        if code != 250:
            self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        """Forget a broken connection; the next send opens a new one."""
        if self._conn is conn:
            self._conn = None
        conn.close()


class _Connection(asyncio.Protocol):
    """Read SMTP replies off a transport in order, however they are split into packets."""

    def __init__(self, transport: asyncio.Transport, extensions: set[str]) -> None:
        self.transport = transport
        self.extensions = extensions  # lower-case EHLO keywords
        self.pipelining = "pipelining" in extensions
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._lines: list[bytes] = []  # the lines read so far of an unfinished reply
        self._replies: collections.deque[Reply] = collections.deque()
        self._expected = 0  # replies owed to commands sent and not yet read
        self._waiter: asyncio.Future[None] | None = None
        self._error: aiosmtplib.SMTPException | None = None

    @property
    def is_open(self) -> bool:
        """Tell whether commands can still be sent."""
        return self._error is None and not self.transport.is_closing()

    def cannot_carry(self, message: OutgoingMessage) -> bool:
        """Tell whether message needs SMTPUTF8 (an internationalised address) the server lacks."""
        return message.needs_smtputf8 and "smtputf8" not in self.extensions

    def write(self, data: bytes, replies: int = 1) -> None:
        """Send commands (the transport writes what it can at once) that owe replies."""
        if not self.is_open:
            raise self._error or aiosmtplib.SMTPServerDisconnected("Connection lost")
        self._expected += replies
        self.transport.write(data)

    async def reply(self, timeout: float) -> Reply:
        """Return the next reply as (code, text), waiting at most timeout seconds for it."""
        if not self._replies:
            if self._error is not None:
                raise self._error
            waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_later(timeout, self._expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        self._expected -= 1
        return self._replies.popleft()

    def close(self) -> None:
        """Close the connection; later reads and writes fail as disconnected."""
        self._fail(aiosmtplib.SMTPServerDisconnected("Connection lost"))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        """Parse every complete reply in what has arrived and wake the reader."""
        buffer = self._buffer
        buffer += data
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            line = bytes(buffer[start : end + 1])
            start = end + 1
            if line[3:4] == b"-":
                self._lines.append(line)
                continue
            lines, self._lines = self._lines, []
            lines.append(line)
            try:
                code = int(line[:3])
            except ValueError:
                self._protocol_error(line)
                return
            if len(self._replies) >= self._expected:
                # Nothing was asked: dropped, as aiosmtplib does, so that it cannot be
                # taken for the reply to the next command.
                continue
            # As aiosmtplib: the text of each line, stripped, joined by newlines.
            text = b"\n".join(x[4:].strip(b" \t\r\n") for x in lines)
            self._replies.append((code, text.decode("utf-8", "surrogateescape")))
        del buffer[:start]
        if len(buffer) + sum(map(len, self._lines)) > MAX_REPLY:
            self._protocol_error(b"reply too long")
            return
        if self._replies and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def eof_received(self) -> bool:
        """Treat the server closing its side as a lost connection."""
        self._fail(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail whoever waits for a reply."""
        error = aiosmtplib.SMTPServerDisconnected("Connection lost")
        error.__cause__ = exc
        self._fail(error)

    def _protocol_error(self, line: bytes) -> None:
        """Stop at a reply that is not SMTP: nothing after it can be trusted."""
        text = line.decode("utf-8", "replace").strip()
        self._fail(aiosmtplib.SMTPServerDisconnected(f"malformed SMTP reply {text!r}"))
        self.transport.close()

    def _fail(self, error: aiosmtplib.SMTPException) -> None:
        """Record why the connection ended and wake a waiting reader with it."""
        if self._error is None:
            self._error = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(self._error)

    def _expire(self, waiter: asyncio.Future[None]) -> None:
        """Fail a read that waited too long; the caller drops the connection, out of step."""
        if not waiter.done():
            waiter.set_exception(
                aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response")
            )


_LINE_STARTING_WITH_DOT = re.compile(rb"\r\n\.")


def dot_stuffed(data: bytes, then: bytes = b"") -> bytes:
    """Return message bytes as sent after DATA: dots doubled, ended by CRLF.CRLF,
    followed by then (the next commands of a pipelined group), in one buffer.

    data must use CRLF line ends only, as rendered messages do (render/mime.py
    normalises every body and refuses line breaks in header values; the DKIM
    header is folded with CRLF): a bare LF would pass unstuffed. Checking that
    here would cost three scans, about 0.08 ms for a 40 KB digest; the tests
    check the renderer instead.
    """
    # A regex, not bytes.replace: replace's search slows down on text full of "\r" and
    # "." (about 40 us for a digest), the regex's literal search does not (about 17).
    stuffed = _LINE_STARTING_WITH_DOT.sub(b"\r\n..", data)
    head = b"." if stuffed[:1] == b"." else b""
    tail = b".\r\n" if stuffed.endswith(b"\r\n") else b"\r\n.\r\n"
    return b"".join((head, stuffed, tail, then))


def _address(address: str, smtputf8: bool) -> bytes:
    """Return <address> for MAIL or RCPT, refusing what could end the command line early."""
    if _PLAIN_ADDRESS.fullmatch(address):
        # What aiosmtplib's quote_address returns for these, without its parser (12 us).
        return b"<" + address.encode("ascii") + b">"
    quoted = quote_address(address)  # raises ValueError for whitespace or brackets
    if _CONTROL.search(quoted):
        raise ValueError("Command arg contains a prohibited control character")
    return quoted.encode("utf-8" if smtputf8 else "ascii")


def _by_code(code: int, text: str) -> RecipientRejected | TemporaryDeliveryError:
    """Return the error for an SMTP reply: 5xx is permanent, anything else temporary."""
    if 500 <= code < 600:
        return RecipientRejected(text)
    return TemporaryDeliveryError(text)


def _describe(error: BaseException) -> str:
    """Return an exception as a short phrase."""
    return str(error) or type(error).__name__

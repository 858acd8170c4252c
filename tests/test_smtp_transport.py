"""SmtpTransport against real servers: aiosmtpd with and without PIPELINING, and a scripted one.

aiosmtpd does not advertise PIPELINING; the shared handler (conftest.py)
adds the keyword to its EHLO reply unless told not to (aiosmtpd reads
pipelined commands correctly either way), and the tests here run with and
without it. The scripted server records what arrived in each read, to show
what went out in one write and what never went out.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from notifier.delivery.smtp import SmtpTransport
from notifier.errors import (
    DeliveryUnknown,
    ServerUnavailable,
    TemporaryDeliveryError,
)
from notifier.models import OutgoingMessage
from notifier.render.email import DkimKey, sign
from notifier.render.mime import build_message
from notifier.settings import SmtpTarget
from tests.conftest import PortZeroController, RecordingHandler, SmtpServer, parse_message

SENDER = "digests@notifier.test.example"
OTHER_SENDER = "other@notifier.test.example"


@dataclass
class Handler(RecordingHandler):
    """RecordingHandler that can refuse senders and tell connections apart."""

    refuse_sender: dict[str, str] = field(default_factory=dict)  # address -> reply at MAIL
    peers: list[Any] = field(default_factory=list)  # the client address of each message

    async def handle_MAIL(
        self,
        server: SMTPProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if address in self.refuse_sender:
            return self.refuse_sender[address]
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTPProtocol, session: Session, envelope: Envelope) -> str:
        if envelope.rcpt_tos[0] not in self.data_reply:
            self.peers.append(session.peer)
        return await super().handle_DATA(server, session, envelope)


@contextlib.contextmanager
def start_server(handler: Handler, **options: Any) -> Iterator[SmtpServer]:
    """Run aiosmtpd with handler on a port the OS picks, for the with block."""
    controller = PortZeroController(handler, hostname="127.0.0.1", port=0, **options)
    controller.start()
    try:
        yield SmtpServer(handler, controller.port)
    finally:
        controller.stop()


@pytest.fixture(params=["pipelining", "one-by-one"])
def server(request: pytest.FixtureRequest) -> Iterator[SmtpServer]:
    """Yield an aiosmtpd server that offers PIPELINING, then one that does not."""
    with start_server(Handler(pipelining=request.param == "pipelining")) as running:
        yield running


@pytest.fixture
def pipelining_server() -> Iterator[SmtpServer]:
    """Yield an aiosmtpd server that offers PIPELINING."""
    with start_server(Handler(pipelining=True)) as running:
        yield running


def local(port: int) -> SmtpTarget:
    return SmtpTarget("127.0.0.1", port, None, None, False)


def message(recipient: str, data: bytes | None = None, sender: str = SENDER) -> OutgoingMessage:
    if data is None:
        data = build_message(
            [("From", sender), ("To", recipient), ("Subject", "papers")],
            "Hello\n",
            "<p>Hello</p>\n",
        )
    return OutgoingMessage(sender, recipient, "<m@x>", data)


async def sends(
    smtp: SmtpTransport, *messages: OutgoingMessage, ahead: bool = True
) -> list[object]:
    """Send messages in order, each with the next as following (as a sending lane does)
    unless ahead is False; return each reply or the error it raised.
    """
    outcomes: list[object] = []
    followers = [*messages[1:], None] if ahead else [None] * len(messages)
    for m, following in zip(messages, followers, strict=True):
        try:
            outcomes.append(await smtp.send(m, following))
        except Exception as e:
            outcomes.append(e)
    return outcomes


async def send_all(port: int, *messages: OutgoingMessage, timeout: float = 5.0) -> list[object]:
    """Send messages over one new transport; return each reply or the error it raised."""
    async with SmtpTransport(local(port), timeout) as smtp:
        return await sends(smtp, *messages)


async def send_one(target: SmtpTarget, m: OutgoingMessage) -> str:
    """Send one message over a new transport; return the reply."""
    async with SmtpTransport(target, 5.0) as smtp:
        return await smtp.send(m)


def outcome(result: object) -> tuple[str, str]:
    """Return (exception type or "sent", its message or the reply)."""
    if isinstance(result, Exception):
        return type(result).__name__, str(result)
    return "sent", str(result)


# Lines that start with dots, one that is a lone dot (it would end the message if sent
# as is), a dot right after the headers, and quoted-printable output.
DOTTED_TEXT = "Intro\n.hidden\n..two dots\n.\nend\n. \n" + "x" * 1200 + "\n.last line"


@pytest.mark.parametrize(
    "data",
    [
        build_message([("From", SENDER), ("Subject", "dots")], DOTTED_TEXT, "<p>.</p>\n.\n"),
        b".starts with a dot\r\n..and two\r\n.\r\nend\r\n",
        b"Subject: no final line break\r\n\r\n.body",
    ],
    ids=["rendered", "leading-dot", "no-final-crlf"],
)
def test_lines_starting_with_dots_arrive_byte_identical(server: SmtpServer, data: bytes) -> None:
    replies = asyncio.run(
        send_all(server.port, message("a@example.org", data), message("b@example.org", data))
    )
    assert replies == ["250 Message accepted for delivery"] * 2
    # What the recipient's server stores is the message, dots and all; a message
    # that does not end with a line break gets one (as aiosmtplib did).
    expected = data if data.endswith(b"\r\n") else data + b"\r\n"
    assert [r.data for r in server.handler.received] == [expected, expected]
    assert [r.rcpt_tos for r in server.handler.received] == [["a@example.org"], ["b@example.org"]]
    assert {r.mail_from for r in server.handler.received} == {SENDER}


def test_a_refused_recipient_sends_no_body_and_the_connection_carries_on(
    pipelining_server: SmtpServer,
) -> None:
    handler = pipelining_server.handler
    assert isinstance(handler, Handler)
    handler.refuse["gone@example.org"] = "550 5.1.1 No such user"
    results = asyncio.run(
        send_all(
            pipelining_server.port,
            message("first@example.org"),
            message("gone@example.org"),
            message("next@example.org"),
        )
    )
    assert [outcome(r) for r in results] == [
        ("sent", "250 Message accepted for delivery"),
        ("RecipientRejected", "550 5.1.1 No such user"),
        ("sent", "250 Message accepted for delivery"),
    ]
    assert [r.rcpt_tos for r in handler.received] == [["first@example.org"], ["next@example.org"]]
    assert handler.received[1].message["Subject"] == "papers"
    # The same connection carried the message after the refusal.
    assert len(handler.peers) == 2 and handler.peers[0] == handler.peers[1]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (
            lambda h: h.refuse.update({"r@example.org": "550 5.1.1 No such user"}),
            ("RecipientRejected", "550 5.1.1 No such user"),
        ),
        (
            lambda h: h.refuse.update({"r@example.org": "451 4.7.1 Try again later"}),
            ("TemporaryDeliveryError", "451 4.7.1 Try again later"),
        ),
        (
            lambda h: h.data_reply.update({"r@example.org": "554 5.7.1 Looks like spam"}),
            ("RecipientRejected", "554 5.7.1 Looks like spam"),
        ),
        (
            lambda h: h.data_reply.update({"r@example.org": "451 4.3.0 Mailbox busy"}),
            ("TemporaryDeliveryError", "451 4.3.0 Mailbox busy"),
        ),
        (
            lambda h: h.refuse_sender.update({OTHER_SENDER: "451 4.3.2 Not now"}),
            ("TemporaryDeliveryError", "451 4.3.2 Not now"),
        ),
    ],
    ids=["rcpt-5xx", "rcpt-4xx", "final-5xx", "final-4xx", "mail-4xx"],
)
def test_refusals_are_classified_and_the_next_message_still_arrives(
    server: SmtpServer, setup: Callable[[Handler], object], expected: tuple[str, str]
) -> None:
    handler = server.handler
    assert isinstance(handler, Handler)
    setup(handler)
    first, second = asyncio.run(
        send_all(
            server.port,
            message("r@example.org", sender=OTHER_SENDER),
            message("ok@example.org"),
        )
    )
    assert outcome(first) == expected
    assert outcome(second) == ("sent", "250 Message accepted for delivery")
    assert [r.rcpt_tos for r in handler.received] == [["ok@example.org"]]


def test_a_refused_sender_stops_the_run_naming_the_setting(server: SmtpServer) -> None:
    handler = server.handler
    assert isinstance(handler, Handler)
    handler.refuse_sender[SENDER] = "553 5.7.1 Sender address rejected"
    [result] = asyncio.run(send_all(server.port, message("r@example.org")))
    assert isinstance(result, ServerUnavailable)
    assert str(result) == (
        f"mail server 127.0.0.1:{server.port} refused the sender "
        f"'{SENDER}': 553 5.7.1 Sender address rejected; check sender_address"
    )
    assert handler.received == []


def test_a_connection_lost_after_the_data_is_unknown_and_the_next_send_reconnects(
    server: SmtpServer,
) -> None:
    handler = server.handler
    assert isinstance(handler, Handler)
    handler.drop_after_data.add("drop@example.org")
    first, second = asyncio.run(
        send_all(server.port, message("drop@example.org"), message("ok@example.org"))
    )
    assert isinstance(first, DeliveryUnknown)
    assert str(first).startswith("connection lost after the message was sent (")
    assert str(first).endswith("); it may have arrived")
    assert outcome(second) == ("sent", "250 Message accepted for delivery")
    assert [r.rcpt_tos for r in handler.received] == [["drop@example.org"], ["ok@example.org"]]
    assert handler.peers[0] != handler.peers[1]  # a new connection


def test_a_server_silent_after_the_data_leaves_the_outcome_unknown(server: SmtpServer) -> None:
    server.handler.stall["slow@example.org"] = 2.0
    first, second = asyncio.run(
        send_all(server.port, message("slow@example.org"), message("ok@example.org"), timeout=0.5)
    )
    assert outcome(first) == (
        "DeliveryUnknown",
        "connection lost after the message was sent (Timed out waiting for server response); "
        "it may have arrived",
    )
    assert outcome(second) == ("sent", "250 Message accepted for delivery")


def test_internationalised_addresses_use_smtputf8_when_offered(server: SmtpServer) -> None:
    [reply] = asyncio.run(send_all(server.port, message("jörg@example.org")))
    assert reply == "250 Message accepted for delivery"
    [received] = server.handler.received
    assert received.rcpt_tos == ["jörg@example.org"]


@pytest.mark.parametrize("pipelining", [True, False])
def test_internationalised_addresses_are_refused_without_smtputf8(pipelining: bool) -> None:
    with start_server(Handler(pipelining=pipelining), enable_SMTPUTF8=False) as server:
        # jörg's message follows another one too, where its envelope cannot go ahead.
        results = asyncio.run(
            send_all(
                server.port,
                message("jörg@example.org"),
                message("a@example.org"),
                message("jörg@example.org"),
                message("b@example.org"),
            )
        )
        refused = (
            "RecipientRejected",
            f"mail server 127.0.0.1:{server.port} does not accept internationalised "
            "addresses (no SMTPUTF8), so 'jörg@example.org' cannot be reached",
        )
        sent = ("sent", "250 Message accepted for delivery")
        assert [outcome(r) for r in results] == [refused, sent, refused, sent]
        assert [r.rcpt_tos for r in server.handler.received] == [
            ["a@example.org"],
            ["b@example.org"],
        ]


@pytest.mark.parametrize(
    ("address", "error"),
    [
        ("a b@example.org", "contains characters not permitted in an SMTP mailbox"),
        ("a\x00b@example.org", "Command arg contains a prohibited control character"),
    ],
)
def test_an_address_that_could_break_the_command_line_is_refused_before_sending(
    server: SmtpServer, address: str, error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        asyncio.run(send_one(local(server.port), message(address)))
    assert server.handler.received == []


@pytest.fixture
def tls_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """Return a server context with a certificate for 127.0.0.1 that clients trust."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1".split()
    request += ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(["openssl", *request], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # what ssl.create_default_context trusts
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def authenticate(
    server: SMTPProtocol, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    # handled=False: aiosmtpd sends the 535 itself.
    return AuthResult(success=data == LoginPassword(b"ada", b"secret"), handled=False)


@pytest.mark.parametrize("pipelining", [True, False])
def test_messages_go_over_starttls_after_login(
    tls_context: ssl.SSLContext, pipelining: bool
) -> None:
    handler = Handler(pipelining=pipelining)
    with start_server(
        handler, tls_context=tls_context, require_starttls=True, authenticator=authenticate
    ) as server:
        target = SmtpTarget("127.0.0.1", server.port, "ada", "secret", False)

        async def scenario() -> list[str]:
            async with SmtpTransport(target, 5.0) as smtp:
                return [
                    await smtp.send(message("a@example.org", b".dot\r\nbody\r\n")),
                    await smtp.send(message("b@example.org")),
                ]

        assert asyncio.run(scenario()) == ["250 Message accepted for delivery"] * 2
        assert handler.received[0].data == b".dot\r\nbody\r\n"
        assert [r.rcpt_tos for r in handler.received] == [["a@example.org"], ["b@example.org"]]

        wrong = SmtpTarget("127.0.0.1", server.port, "ada", "wrong", False)
        with pytest.raises(ServerUnavailable) as refused:
            asyncio.run(send_one(wrong, message("c@example.org")))
        assert str(refused.value) == (
            f"mail server 127.0.0.1:{server.port} refused the login for 'ada': "
            "535 5.7.8 Authentication credentials invalid; "
            "check the user and password in NOTIFIER_SMTP_URL"
        )


def test_messages_go_over_implicit_tls(tls_context: ssl.SSLContext) -> None:
    handler = Handler(pipelining=True)
    with start_server(handler, ssl_context=tls_context) as server:
        target = SmtpTarget("127.0.0.1", server.port, None, None, True)
        reply = asyncio.run(send_one(target, message("a@example.org", b"..two\r\n")))
        assert reply == "250 Message accepted for delivery"
        assert [r.data for r in handler.received] == [b"..two\r\n"]


# -- A scripted server: what went out in each write ---------------------------


@dataclass
class Scripted:
    """A small SMTP server on asyncio streams that records every read it makes."""

    pipelining: bool
    replies: dict[bytes, bytes] = field(default_factory=dict)  # command verb -> reply
    hang_up_at: bytes | None = None  # command verb at which to close without a reply
    after_message: bytes = b""  # sent right after each 250 for a message, unasked
    reads: list[bytes] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted ESMTP\r\n")
        buffer, in_data, recipients = b"", False, 0
        while chunk := await reader.read(65536):
            self.reads.append(chunk)
            buffer += chunk
            while True:
                if in_data:
                    end = buffer.find(b"\r\n.\r\n")
                    if end < 0:
                        break
                    self.messages.append(buffer[: end + 2])
                    buffer, in_data = buffer[end + 5 :], False
                    writer.write(b"250 2.0.0 queued as X\r\n" + self.after_message)
                    continue
                line, sep, rest = buffer.partition(b"\r\n")
                if not sep:
                    break
                buffer = rest
                verb = line.split(b" ", 1)[0].upper()
                if verb == self.hang_up_at:
                    writer.close()
                    return
                reply = self.replies.get(verb) or self._default(verb, recipients)
                if verb == b"RCPT" and reply.startswith(b"2"):
                    recipients += 1
                elif verb in (b"MAIL", b"RSET"):
                    recipients = 0
                in_data = verb == b"DATA" and reply.startswith(b"354")
                writer.write(reply + b"\r\n")
                if verb == b"QUIT":
                    writer.close()
                    return
            await writer.drain()

    def _default(self, verb: bytes, recipients: int) -> bytes:
        if verb == b"EHLO":
            keywords = [b"scripted", b"8BITMIME", *([b"PIPELINING"] if self.pipelining else [])]
            return b"\r\n".join(b"250-" + k for k in keywords[:-1]) + b"\r\n250 " + keywords[-1]
        if verb == b"DATA":
            return b"354 go ahead" if recipients else b"554 5.5.1 no valid recipients"
        return {b"QUIT": b"221 bye"}.get(verb, b"250 ok")

    def after_ehlo(self) -> list[bytes]:
        """Return the reads after the EHLO: one entry per write of the client."""
        [ehlo] = [i for i, r in enumerate(self.reads) if r.startswith(b"EHLO")]
        return self.reads[ehlo + 1 :]


def run_scripted(
    script: Scripted, scenario: Callable[[SmtpTransport], Awaitable[list[object]]]
) -> list[object]:
    """Serve script on a free port and run scenario with a transport connected to it."""

    async def main() -> list[object]:
        server = await asyncio.start_server(script.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, SmtpTransport(local(port), 2.0) as smtp:
            return await scenario(smtp)

    return asyncio.run(main())


def test_with_pipelining_the_envelope_goes_out_in_one_write() -> None:
    script = Scripted(pipelining=True)
    [reply] = run_scripted(script, lambda smtp: sends(smtp, message("a@example.org")))
    assert reply == "250 2.0.0 queued as X"
    assert script.after_ehlo()[:2] == [
        f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<a@example.org>\r\nDATA\r\n".encode(),
        script.messages[0] + b".\r\n",
    ]
    assert parse_message(script.messages[0])["Subject"] == "papers"


def test_without_pipelining_each_command_waits_for_its_reply() -> None:
    script = Scripted(pipelining=False)
    [reply] = run_scripted(script, lambda smtp: sends(smtp, message("a@example.org")))
    assert reply == "250 2.0.0 queued as X"
    assert script.after_ehlo()[:4] == [
        f"MAIL FROM:<{SENDER}>\r\n".encode(),
        b"RCPT TO:<a@example.org>\r\n",
        b"DATA\r\n",
        script.messages[0] + b".\r\n",
    ]


def test_after_a_refused_recipient_the_body_never_goes_out_and_rset_follows() -> None:
    script = Scripted(pipelining=True, replies={b"RCPT": b"550 5.1.1 no such user"})
    results = run_scripted(script, lambda smtp: sends(smtp, message("gone@example.org")))
    assert [outcome(r) for r in results] == [("RecipientRejected", "550 5.1.1 no such user")]
    assert script.messages == []
    assert script.after_ehlo() == [
        f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<gone@example.org>\r\nDATA\r\n".encode(),
        b"RSET\r\n",
        b"QUIT\r\n",
    ]


def test_a_reply_nobody_asked_for_is_not_taken_for_the_next_ones() -> None:
    script = Scripted(pipelining=True, after_message=b"250 2.0.0 one more thing\r\n")
    results = run_scripted(
        script,
        lambda smtp: sends(smtp, message("a@example.org"), message("b@example.org"), ahead=False),
    )
    assert results == ["250 2.0.0 queued as X"] * 2
    assert len(script.messages) == 2


def test_with_pipelining_the_next_envelope_goes_out_with_the_data() -> None:
    script = Scripted(pipelining=True)
    first, second = message("a@example.org"), message("b@example.org")
    results = run_scripted(script, lambda smtp: sends(smtp, first, second))
    assert results == ["250 2.0.0 queued as X"] * 2
    assert script.messages == [first.data, second.data]
    # One round trip per message: b's MAIL, RCPT and DATA follow a's final dot.
    assert script.after_ehlo() == [
        f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<a@example.org>\r\nDATA\r\n".encode(),
        first.data + f".\r\nMAIL FROM:<{SENDER}>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n".encode(),
        second.data + b".\r\n",
        b"QUIT\r\n",
    ]


def test_an_envelope_sent_ahead_for_a_message_never_sent_delivers_nothing() -> None:
    """A lane that stops after a message leaves the next one's transaction open: hang up."""
    script = Scripted(pipelining=True)
    first, never = message("a@example.org"), message("never@example.org")

    async def scenario(smtp: SmtpTransport) -> list[object]:
        return [await smtp.send(first, never)]

    assert run_scripted(script, scenario) == ["250 2.0.0 queued as X"]
    assert script.messages == [first.data]
    # No QUIT, which a server reading data would take for text; no final dot.
    assert script.after_ehlo()[-1].endswith(b"RCPT TO:<never@example.org>\r\nDATA\r\n")


def test_a_message_other_than_the_one_sent_ahead_goes_over_a_new_connection() -> None:
    script = Scripted(pipelining=True)
    first, skipped, other = (message(f"{n}@example.org") for n in ("a", "skipped", "other"))

    async def scenario(smtp: SmtpTransport) -> list[object]:
        return [await smtp.send(first, skipped), await smtp.send(other)]

    assert run_scripted(script, scenario) == ["250 2.0.0 queued as X"] * 2
    assert script.messages == [first.data, other.data]
    assert sum(r.startswith(b"EHLO") for r in script.reads) == 2


def test_a_reply_nobody_asked_for_puts_envelopes_sent_ahead_out_of_step_once() -> None:
    """The extra reply is taken for the next MAIL's: that message waits for a later run,
    the connection is replaced and no envelope goes ahead any more.
    """
    script = Scripted(pipelining=True, after_message=b"250 2.0.0 one more thing\r\n")
    messages = [message(f"{n}@example.org") for n in ("a", "b", "c", "d")]
    results = run_scripted(script, lambda smtp: sends(smtp, *messages))
    assert [outcome(r)[0] for r in results] == ["sent", "TemporaryDeliveryError", "sent", "sent"]
    assert re.fullmatch(
        r"mail server 127\.0\.0\.1:\d+ answered DATA with 250 ok, out of step with the "
        r"commands sent; the message is retried later",
        str(results[1]),
    )
    assert script.messages == [messages[0].data, messages[2].data, messages[3].data]
    assert sum(r.startswith(b"EHLO") for r in script.reads) == 2
    assert not any(r.startswith(messages[2].data) and b"MAIL" in r for r in script.reads)


def test_a_refused_data_command_is_temporary_and_the_connection_is_reset() -> None:
    script = Scripted(pipelining=True, replies={b"DATA": b"451 4.3.0 queue full"})
    results = run_scripted(script, lambda smtp: sends(smtp, message("a@example.org")))
    assert [outcome(r) for r in results] == [("TemporaryDeliveryError", "451 4.3.0 queue full")]
    assert script.messages == [] and script.after_ehlo()[1] == b"RSET\r\n"


def test_a_server_that_opens_data_after_refusing_the_recipient_gets_no_message() -> None:
    # Not RFC 2920 behaviour: hanging up aborts the transaction, where a "." would end it.
    script = Scripted(
        pipelining=True, replies={b"RCPT": b"550 5.1.1 no such user", b"DATA": b"354 go ahead"}
    )
    results = run_scripted(script, lambda smtp: sends(smtp, message("gone@example.org")))
    assert [outcome(r) for r in results] == [("RecipientRejected", "550 5.1.1 no such user")]
    assert script.messages == []
    assert len(script.after_ehlo()) == 1  # the envelope, then nothing


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_connection_lost_before_the_data_is_temporary_and_the_next_send_reconnects(
    pipelining: bool,
) -> None:
    script = Scripted(pipelining=pipelining, hang_up_at=b"RCPT")

    async def scenario(smtp: SmtpTransport) -> list[object]:
        first = await sends(smtp, message("a@example.org"))
        script.hang_up_at = None
        return first + await sends(smtp, message("b@example.org"))

    first, second = run_scripted(script, scenario)
    assert isinstance(first, TemporaryDeliveryError)
    assert str(first).startswith("connection lost: ")
    assert outcome(second) == ("sent", "250 2.0.0 queued as X")
    assert len(script.messages) == 1
    assert sum(r.startswith(b"EHLO") for r in script.reads) == 2  # a second connection


def test_rendered_messages_use_crlf_line_ends_only() -> None:
    """The transport dot-stuffs after each CRLF only, which is right for CRLF-only data."""
    hostile = "one\rtwo\nthree\r\nfour\n.\r.\n\u2028five\x85six"
    data = build_message(
        [("From", SENDER), ("Subject", "a very long subject " * 8)], hostile, hostile
    )
    key = DkimKey("notifier.test.example", "s1", _dkim_key())
    for candidate in (data, sign(data, key)):
        lines = candidate.split(b"\r\n")
        assert not any(b"\r" in line or b"\n" in line for line in lines)
        assert candidate.endswith(b"\r\n")


def _dkim_key() -> bytes:
    """Return a throwaway RSA private key in PEM."""
    done = subprocess.run(["openssl", "genrsa", "2048"], check=True, capture_output=True)
    return done.stdout

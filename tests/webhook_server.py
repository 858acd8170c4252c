"""A real HTTP server on port 0 that records webhook requests and answers as told."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass
class Answer:
    """How the server answers one request: a status, headers and body, or a stall or hang-up."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    stall: float = 0.0  # seconds to wait after reading the request, before answering
    hang_up: bool = False  # close the connection without answering


class _QuietServer(ThreadingHTTPServer):
    """A server that does not print the connections a test hangs up on purpose."""

    def handle_error(self, request: object, client_address: object) -> None:
        """Say nothing: a hang-up is what the test asked for."""


class WebhookServer:
    """Records every request; answers from a queue of Answers, then 200 "ok"."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with server._lock:
                    server.requests.append(
                        Recorded(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    answer = server.answers.pop(0) if server.answers else Answer()
                if answer.stall:
                    time.sleep(answer.stall)
                if answer.hang_up:
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_POST = do_PUT = _handle

            def log_message(self, format: str, *args: object) -> None:
                """Keep the test output quiet."""

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Return the server's base URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, *answers: Answer) -> None:
        """Queue how the next requests are answered."""
        with self._lock:
            self.answers.extend(answers)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


def signature_ok(secret: str, header: str, body: bytes) -> bool:
    """Check a Notifier-Signature header the way a receiver would (Stripe's scheme)."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    signed = f"{fields['t']}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    """Run a recording webhook server for one test."""
    server = WebhookServer()
    yield server
    server.stop()

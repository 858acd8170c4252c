"""What guards every request: security headers, a body limit, a secret-free log, safe redirects.

Plain ASGI middleware, so each works on any response, streaming or not.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from starlette import types
from starlette.responses import RedirectResponse
from starlette.routing import Match, Router

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
ASGIApp = Callable[[Scope, Receive, Send], Any]

log = logging.getLogger("notifier.web")

# Pages load only our own CSS and script: no inline code, no third parties, no frames.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

# Path segments that are secrets: link tokens and private feed tokens.
_SECRET_PATH = re.compile(
    r"^/(confirm|manage|unsubscribe|more|less|mute|citations|digest|feeds/subscribers)/[^/]+"
)


def redact_path(path: str) -> str:
    """Return a request path with any token in it replaced, for logs."""
    return _SECRET_PATH.sub(lambda m: f"/{m.group(1)}/[token]", path)


class SecurityHeaders:
    """Add strict security headers to every response (HSTS too when served over HTTPS)."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        headers = [
            (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            # Tokens live in our URLs: never leak them to another site.
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
        ]
        if https:
            headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
        self._headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, adding the headers to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self._headers]
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyLimit:
    """Refuse request bodies over max_bytes with 413, before any of it is parsed."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, larger: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = dict(larger or {})  # paths that take bigger bodies (a bulk import)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check Content-Length, and count the bytes of a body sent without one."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.larger.get(scope.get("path", ""), self.max_bytes)
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > max_bytes):
            await _too_large(send, max_bytes)
            return
        received = 0
        started = False

        async def counted() -> dict[str, Any]:
            nonlocal received
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise _BodyTooLarge
            return message

        async def watched(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _BodyTooLarge:
            if not started:
                await _too_large(send, max_bytes)


class _BodyTooLarge(Exception):
    """A chunked body went over the limit."""


async def _too_large(send: Send, max_bytes: int) -> None:
    """Answer 413 with a one-line explanation."""
    body = f"Request too large: at most {max_bytes // 1024} KiB, please.\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AccessLog:
    """Log one line per request: method, path with tokens hidden, status and duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and log it when the response starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def noted(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            client = scope.get("client") or ("-", 0)
            log.info(
                "%s %s %s %d %.1fms",
                client[0],
                scope["method"],
                redact_path(scope["path"]),
                status,
                (time.perf_counter() - started) * 1000,
            )


class SlashRedirect:
    """Redirect a path that matches a route once its trailing slash is added or dropped.

    Starlette's own redirect builds its Location from the Host header, which
    anyone can set; this one starts from the configured base_url.
    Paths that match nothing get the router's 404.
    """

    def __init__(self, router: Router, base_url: str) -> None:
        self.router = router
        self.base_url = base_url

    async def __call__(self, scope: types.Scope, receive: types.Receive, send: types.Send) -> None:
        """Answer 307 to the other spelling of the path, or 404 when it has none."""
        path: str = scope["path"]
        if scope["type"] == "http" and path != "/":
            other = path.rstrip("/") if path.endswith("/") else f"{path}/"
            other_scope = {**scope, "path": other}
            if any(route.matches(other_scope)[0] is not Match.NONE for route in self.router.routes):
                query = scope.get("query_string", b"").decode("latin-1")
                location = f"{self.base_url}{other}" + (f"?{query}" if query else "")
                await RedirectResponse(location, status_code=307)(scope, receive, send)
                return
        await self.router.not_found(scope, receive, send)


class ClientLimiter:
    """Allow at most limit events per client address in a sliding window (one process).

    Kept in memory: a restart forgets it, and several web processes each keep
    their own; the per-address confirmation limit is in the database and holds
    across both.
    """

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events: dict[str, deque[float]] = {}

    def allow(self, client: str) -> bool:
        """Record an event for client and tell whether it is within the limit."""
        now = self._clock()
        if len(self._events) > 10_000:
            self._forget_idle(now)
        events = self._events.setdefault(client, deque())
        while events and events[0] <= now - self.window:
            events.popleft()
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True

    def _forget_idle(self, now: float) -> None:
        """Drop clients with no event in the window, so memory stays bounded."""
        for client in [c for c, e in self._events.items() if not e or e[-1] <= now - self.window]:
            del self._events[client]

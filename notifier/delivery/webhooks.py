"""Post channel messages over HTTP: Slack, Discord, Matrix and signed JSON webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Self
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import orjson

from notifier import __version__
from notifier.chat import test_message
from notifier.errors import DeliveryError
from notifier.models import Channel, ChannelKind

# httpx logs every request's URL at INFO, and a channel's URL is its secret.
logging.getLogger("httpx").setLevel(logging.WARNING)

# The longest wait a 429's Retry-After is taken at its word for; longer, the post
# waits for the next run after this (the sender runs every minute or so anyway).
MAX_RETRY_AFTER = 3600.0
# How much of a refusal's body is kept as its reason.
DETAIL_CHARS = 300


class PostError(DeliveryError):
    """A post that got no HTTP answer: refused before sending, or lost on the way.

    may_have_arrived says whether the request could have reached the service (a
    timeout or a broken connection after it went out); refused, that it never
    will (the URL names a private address, say), so trying again is pointless.
    """

    def __init__(self, message: str, *, may_have_arrived: bool, refused: bool = False) -> None:
        super().__init__(message)
        self.may_have_arrived = may_have_arrived
        self.refused = refused


@dataclass(frozen=True, slots=True)
class PostRequest:
    """One HTTP request that posts a message."""

    method: str
    url: str
    body: bytes
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class PinnedRequest:
    """A request bound to the address that was checked, with the name for Host and TLS."""

    method: str
    url: str  # the checked address in place of the host
    body: bytes
    headers: tuple[tuple[str, str], ...]  # Host included
    tls_name: str | None  # the name TLS checks the certificate against (https)


@dataclass(frozen=True, slots=True)
class PostReply:
    """What the service answered: status, how long it asked us to wait, and its words."""

    status: int
    retry_after: float | None
    detail: str


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Return the Notifier-Signature header: HMAC-SHA256 over "timestamp.body".

    As Stripe signs its webhooks (https://docs.stripe.com/webhooks#verify-manually):
    the timestamp is signed with the body, so a receiver can refuse old replays.
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def channel_request(channel: Channel, body: bytes, key: str, now: datetime) -> PostRequest:
    """Return the request that posts body (in the channel's format) to the channel."""
    headers = [("Content-Type", "application/json"), ("User-Agent", f"notifier/{__version__}")]
    url = channel.url
    method = "POST"
    if channel.kind is ChannelKind.DISCORD:
        # wait=true: Discord answers once the message exists, or says why not.
        # https://discord.com/developers/docs/resources/webhook#execute-webhook
        url = _with_query(url, "wait=true")
    elif channel.kind is ChannelKind.MATRIX:
        # The transaction id makes a repeat of the same PUT the same event.
        # https://spec.matrix.org/v1.11/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid
        method = "PUT"
        room = quote(channel.room or "", safe="")
        url = f"{url.rstrip('/')}/_matrix/client/v3/rooms/{room}/send/m.room.message/{key}"
        headers.append(("Authorization", f"Bearer {channel.secret or ''}"))
    elif channel.kind is ChannelKind.WEBHOOK:
        headers.append(("Idempotency-Key", key))
        headers.append(("Notifier-Signature", signature(channel.secret or "", _unix(now), body)))
    return PostRequest(method, url, body, tuple(headers))


def retry_after(headers: httpx.Headers, body: bytes, now: datetime) -> float | None:
    """Return how many seconds a 429 asks us to wait, from its header or its JSON body.

    Retry-After is seconds or an HTTP date (RFC 9110 10.2.3); Discord also gives
    retry_after (seconds) and Matrix retry_after_ms in the body.
    """
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
            except (TypeError, ValueError):
                pass
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict):
        for field, scale in (("retry_after", 1.0), ("retry_after_ms", 0.001)):
            found = data.get(field)
            if isinstance(found, int | float) and not isinstance(found, bool) and found >= 0:
                return float(found) * scale
    return None


async def post_test(
    channel: Channel, now: datetime, *, timeout: float, private_hosts: bool = False
) -> str:
    """Post a one-line test message to a channel; return what the service said.

    Raises PostError when the service cannot be reached or refuses the message.
    """
    key = secrets.token_hex(16)
    text = f"notifier: a test message for “{channel.label}”. Digests will be posted here."
    request = channel_request(channel, test_message(channel.kind, text, key), key, now)
    async with WebhookPoster(timeout=timeout, private_hosts=private_hosts) as poster:
        reply = await poster.post(request, now)
    if not 200 <= reply.status < 300:
        raise PostError(refusal(channel, reply), may_have_arrived=False)
    return f"{channel.kind} answered {reply.status}"


# A service that answers with these says the webhook or room is gone, or that
# the token may not post there: posting again cannot work until someone acts.
GONE = frozenset({401, 403, 404, 410})


def refusal(channel: Channel, reply: PostReply) -> str:
    """Return a refusal as one line naming the service, the status and its words."""
    words = f": {reply.detail}" if reply.detail else ""
    hint = ""
    if reply.status in GONE:
        hint = " (the webhook or room is gone, or the token may not post there; add it again)"
    elif 300 <= reply.status < 400:
        hint = " (redirects are not followed: give the URL it moved to)"
    return f"{channel.kind} answered {reply.status}{words}{hint}"


class WebhookPoster:
    """An HTTP client for channel posts: bounded, no redirects, public hosts only."""

    def __init__(self, *, timeout: float, private_hosts: bool = False) -> None:
        self.timeout = timeout
        self.private_hosts = private_hosts
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        """Open the connection pool."""
        # No proxies from the environment, no redirects: a webhook that moves says so.
        # No kept-alive connections: requests go to checked addresses, and a pool
        # keyed by address would reuse one host's TLS connection for another host
        # at the same address (a CDN's); posts are a few a day per channel anyway.
        self._client = httpx.AsyncClient(
            timeout=self.timeout,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def post(self, request: PostRequest, now: datetime) -> PostReply:
        """Check the address, then send one request; see pin and send."""
        return await self.send(await self.pin(request), now)

    async def pin(self, request: PostRequest) -> PinnedRequest:
        """Return the request bound to an address checked to be public; raise PostError if none.

        The request then goes to the address that was checked, so a name that
        resolves elsewhere a moment later (DNS rebinding) cannot reach inside.
        Nothing has been sent yet when this raises.
        """
        parts = urlsplit(request.url)
        try:
            host, port = parts.hostname, parts.port
        except ValueError as e:  # a port out of range
            raise PostError(f"{e}", may_have_arrived=False, refused=True) from None
        if parts.scheme not in ("http", "https") or not host:
            raise PostError("not an http(s) URL", may_have_arrived=False, refused=True)
        try:
            async with asyncio.timeout(self.timeout):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
                )
        except (OSError, TimeoutError) as e:
            raise PostError(f"cannot resolve {host}: {_why(e)}", may_have_arrived=False) from e
        addresses = [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]
        if not self.private_hosts:
            inside = [a for a in addresses if not _public(a)]
            if inside:
                raise PostError(
                    f"{host} is at {inside[0]}, a private or local address; "
                    "a channel must name a public host (or set channel_private_hosts)",
                    may_have_arrived=False,
                    refused=True,
                )
        address = addresses[0]
        literal = f"[{address}]" if address.version == 6 else str(address)
        named = f"[{host}]" if ":" in host else host
        netloc = f"{literal}:{port}" if port else literal
        headers = (*request.headers, ("Host", f"{named}:{port}" if port else named))
        return PinnedRequest(
            request.method,
            urlunsplit(parts._replace(netloc=netloc)),
            request.body,
            headers,
            host if parts.scheme == "https" else None,
        )

    async def send(self, pinned: PinnedRequest, now: datetime) -> PostReply:
        """Send a pinned request; return the answer, or raise PostError when there is none."""
        assert self._client is not None, "use WebhookPoster as an async context manager"
        extensions = {"sni_hostname": pinned.tls_name} if pinned.tls_name else {}
        try:
            async with asyncio.timeout(self.timeout * 4):  # the whole exchange, not each read
                built = self._client.build_request(
                    pinned.method,
                    pinned.url,
                    content=pinned.body,
                    headers=dict(pinned.headers),
                    extensions=extensions,
                )
                response = await self._client.send(built, stream=True)
                try:
                    body = await _read_some(response)
                except (httpx.HTTPError, OSError):
                    body = b""  # the status says what happened; the words are lost
                finally:
                    await response.aclose()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            raise PostError(f"could not connect: {_why(e)}", may_have_arrived=False) from e
        except (httpx.HTTPError, TimeoutError, OSError) as e:
            # Some or all of the request went out: the service may have taken it.
            raise PostError(
                f"no answer after the message went out: {_why(e)}", may_have_arrived=True
            ) from e
        wait = retry_after(response.headers, body, now) if response.status_code == 429 else None
        return PostReply(response.status_code, wait, _detail(body))


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Tell whether an address is on the public internet (not loopback, private, local...).

    An IPv6 address that carries an IPv4 one (mapped, compatible, 6to4, Teredo,
    NAT64) is judged by the IPv4 address too: a gateway would deliver it there.
    """
    if address.is_multicast or not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_site_local:
            return False
        embedded = [address.ipv4_mapped, address.sixtofour]
        if address.teredo is not None:
            embedded.append(address.teredo[1])
        if address in _NAT64 or address in _COMPATIBLE:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        return all(_public(v4) for v4 in embedded if v4 is not None)
    return True


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated IPv4-compatible addresses


async def _read_some(response: httpx.Response) -> bytes:
    """Return the start of a response's body: enough for a reason, never a flood."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= 65_536:
            break
    return b"".join(chunks)[:65_536]


def _detail(body: bytes) -> str:
    """Return a body as one short line of printable text (it is shown in terminals)."""
    text = body.decode("utf-8", "replace")
    printable = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(printable.split())[:DETAIL_CHARS]


def _why(error: BaseException) -> str:
    """Return an exception as a short phrase."""
    return str(error) or type(error).__name__


def _with_query(url: str, query: str) -> str:
    """Return url with query added to its own."""
    parts = urlsplit(url)
    joined = f"{parts.query}&{query}" if parts.query else query
    return urlunsplit(parts._replace(query=joined))


def _unix(moment: datetime) -> int:
    """Return a moment as whole seconds since the epoch."""
    return int(moment.timestamp())

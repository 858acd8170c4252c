"""Fetch listings over HTTP politely: timeouts, retries, conditional GET, per-host pacing.

The only module that does HTTP (DESIGN.md invariant 1). It returns bytes; the
parsers in this package turn them into papers.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from urllib.parse import urlsplit

import httpx
import tenacity

from notifier import clock
from notifier.errors import ListingError

# arXiv asks for no more than one request every 3 seconds (API terms of use).
ARXIV_INTERVAL = 3.0
HOST_INTERVALS = {
    "export.arxiv.org": ARXIV_INTERVAL,
    "arxiv.org": ARXIV_INTERVAL,
    "rss.arxiv.org": ARXIV_INTERVAL,
}
_RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_REDIRECTS = 5
# httpx's timeout is per network operation; a server dripping bytes could hold a
# fetch forever, so the whole body must also arrive within this many timeouts.
TOTAL_TIMEOUTS = 4


@dataclass(frozen=True, slots=True)
class Fetched:
    """A response worth keeping: 200 with its bytes, or 304 Not Modified."""

    url: str
    status: int
    data: bytes = b""
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        """Tell whether the server said nothing changed since the validators we sent."""
        return self.status == 304


class _Retryable(Exception):
    """A failure worth another attempt, with the wait the server asked for, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class HostPacer:
    """Keep at least an interval between requests to the same host (shared across threads)."""

    default_interval: float
    intervals: Mapping[str, float] = field(default_factory=lambda: dict(HOST_INTERVALS))
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _last: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, host: str) -> None:
        """Sleep until this host may be asked again, and book the slot."""
        interval = self.intervals.get(host, self.default_interval)
        with self._lock:
            now = self.clock()
            ready = self._last.get(host, now - interval) + interval
            self._last[host] = max(now, ready)
        if ready > now:
            self.sleep(ready - now)


class Fetcher:
    """Get listings: one client, shared pacing, retries with backoff, a size cap."""

    def __init__(
        self,
        *,
        user_agent: str,
        timeout: float = 30.0,
        attempts: int = 3,
        backoff: float = 1.0,
        max_retry_after: float = 300.0,
        max_bytes: int = 20_000_000,
        pacer: HostPacer | None = None,
    ) -> None:
        self.attempts = attempts
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self.max_bytes = max_bytes
        self.pacer = pacer or HostPacer(default_interval=1.0)
        self.timeout = timeout
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def fetch(
        self,
        source: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> Fetched:
        """Return the listing at url, retrying what is worth retrying.

        Raises ListingError naming the source, the URL and what went wrong after
        the last attempt; 4xx other than 429 is not retried.
        """
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Retryable),
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self._wait,
            reraise=True,
        )
        try:
            return retrying(self._get, source, url, params or {}, headers)
        except _Retryable as e:
            tries = f"{self.attempts} attempt" + ("s" if self.attempts != 1 else "")
            raise ListingError(source, f"{e} (gave up after {tries})") from None

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Wait what the server asked (Retry-After), else exponential backoff with jitter."""
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, _Retryable) and error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after)
        jitter = tenacity.wait_random_exponential(multiplier=self.backoff, max=60)
        return float(jitter(state))

    def _get(
        self, source: str, url: str, params: Mapping[str, str | int], headers: dict[str, str]
    ) -> Fetched:
        """Make one request and classify its outcome."""
        self.pacer.wait(urlsplit(url).hostname or "")
        try:
            with self._client.stream("GET", url, params=params, headers=headers) as response:
                final = str(response.url)
                if response.status_code == 304:
                    return Fetched(final, 304)
                if response.status_code in _RETRY_STATUSES:
                    raise _Retryable(
                        f"HTTP {response.status_code} {response.reason_phrase} from {final}",
                        _retry_after(response.headers.get("Retry-After")),
                    )
                if response.status_code >= 400:
                    body = _read(response, 2_000, source, final, truncate=True)
                    detail = " ".join(body.decode("utf-8", "replace").split())[:200]
                    raise ListingError(
                        source,
                        f"HTTP {response.status_code} {response.reason_phrase} from {final}"
                        + (f": {detail}" if detail else ""),
                    )
                data = _read(
                    response,
                    self.max_bytes,
                    source,
                    final,
                    deadline=time.monotonic() + TOTAL_TIMEOUTS * self.timeout,
                )
                return Fetched(
                    url=final,
                    status=response.status_code,
                    data=data,
                    content_type=response.headers.get("Content-Type"),
                    etag=response.headers.get("ETag"),
                    last_modified=response.headers.get("Last-Modified"),
                )
        except httpx.TimeoutException as e:
            raise _Retryable(
                f"no answer from {url} within {self.timeout:g} s ({type(e).__name__})"
            ) from e
        except httpx.TransportError as e:
            raise _Retryable(f"cannot connect to {url}: {e or type(e).__name__}") from e
        except httpx.TooManyRedirects:
            raise ListingError(
                source, f"too many redirects from {url} (more than {MAX_REDIRECTS})"
            ) from None
        except httpx.DecodingError as e:
            raise ListingError(source, f"the response from {url} cannot be decoded: {e}") from None
        except httpx.HTTPError as e:
            raise ListingError(
                source, f"request to {url} failed: {e or type(e).__name__}"
            ) from None


def _read(
    response: httpx.Response,
    limit: int,
    source: str,
    url: str,
    *,
    truncate: bool = False,
    deadline: float | None = None,
) -> bytes:
    """Read a body up to limit bytes; beyond it, refuse (or cut, for error bodies)."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        if deadline is not None and time.monotonic() > deadline:
            raise _Retryable(f"{url} is sending its answer too slowly; stopped")
        size += len(chunk)
        if size > limit:
            if truncate:
                break
            raise ListingError(
                source, f"the response from {url} is larger than {limit:,} bytes; refused"
            )
        chunks.append(chunk)
    return b"".join(chunks)[:limit]


def _retry_after(value: str | None) -> float | None:
    """Return the seconds a Retry-After header asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # asctime and "-0000" dates: HTTP-dates are always GMT
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - clock.now()).total_seconds())

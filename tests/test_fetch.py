"""HTTP fetch paths against a real HTTP server on port 0: retries, validators, caps, pacing.

The server runs in a daemon thread; each test scripts what it answers per path
and reads back what it was asked (headers, query, server-side arrival time).
Tests that need storage run on SQLite and PostgreSQL; the others use the
Fetcher alone so the file stays fast.
"""

from __future__ import annotations

import email.utils
import gzip
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from notifier import __version__, pipeline
from notifier.errors import ListingError
from notifier.ingest.fetch import Fetcher, HostPacer
from notifier.settings import Settings, SourceConfig
from notifier.sources import source_report
from notifier.storage import Storage
from tests.conftest import NOW, Cli

UA = "notifier-test/1 (+mailto:t@example.org)"
JSON = "application/json; charset=utf-8"
HF_PATH = "/api/daily_papers"
ABSTRACT = (
    "We teach robots to learn new manipulation skills from a handful of demonstrations, "
    "and show that the learnt policies transfer to unseen objects."
)
LAST_MODIFIED = "Wed, 11 Mar 2026 06:00:00 GMT"
PAPERS = [
    ("2409.00001", "Robots that learn"),
    ("2409.00002", "Diffusion policies for dexterous hands"),
    ("2409.00003", "Offline reinforcement learning at scale"),
    ("2409.00004", "World models for household robots"),
    ("2409.00005", "Language models that plan"),
]


def hf_body(*papers: tuple[str, str]) -> bytes:
    """Return a /api/daily_papers body listing papers (arXiv id, title)."""
    return json.dumps(
        [
            {"paper": {"id": arxiv_id, "title": title, "summary": ABSTRACT}, "title": title}
            for arxiv_id, title in papers
        ]
    ).encode()


def arxiv_rss_body(*papers: tuple[str, str]) -> bytes:
    """Return an rss.arxiv.org listing (RSS 2.0) announcing papers as new."""
    items = "".join(
        f"""
    <item>
      <title>{title}</title>
      <link>https://arxiv.org/abs/{arxiv_id}</link>
      <description>arXiv:{arxiv_id}v1 Announce Type: new
Abstract: {ABSTRACT}</description>
      <guid isPermaLink="false">oai:arXiv.org:{arxiv_id}v1</guid>
      <category>cs.RO</category>
      <arxiv:announce_type>new</arxiv:announce_type>
      <dc:creator>Ada Lovelace, Alan Turing</dc:creator>
    </item>"""
        for arxiv_id, title in papers
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:arxiv="http://arxiv.org/schemas/atom"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel>
    <title>cs.RO updates on arXiv.org</title>
    <link>http://rss.arxiv.org/rss/cs.RO</link>
    <description>cs.RO updates on the arXiv.org e-print archive.</description>
    <pubDate>Wed, 11 Mar 2026 00:00:00 -0400</pubDate>{items}
  </channel>
</rss>
""".encode()


HF_ONE = hf_body(PAPERS[0])
HF_TWO = hf_body(*PAPERS[:2])


# -- the server ---------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What the server answers to one request."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = JSON
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to sit on the request before answering
    gzip: bool = False  # compress the body and say so (Content-Encoding: gzip)
    drip: float = 0.0  # seconds between 16-byte pieces of the body (a slow-drip server)


@dataclass(frozen=True)
class Seen:
    """One request the server received."""

    path: str
    params: dict[str, str]
    headers: Message
    at: float  # time.monotonic() when the request arrived


Responder = Callable[[Seen], Reply]
NOT_FOUND = Reply(404, b"no such listing", "text/plain")


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: ListingServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.app = app


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    timeout = 10

    def do_GET(self) -> None:
        assert isinstance(self.server, _Httpd)
        self.server.app.answer(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class ListingServer:
    """A real HTTP server whose answers each test scripts per path."""

    def __init__(self) -> None:
        self._routes: dict[str, list[Reply] | Responder] = {}
        self._requests: list[Seen] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Httpd(self)
        self.port: int = self._httpd.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sitting on a delayed reply
        self._httpd.shutdown()
        self._httpd.server_close()

    def script(self, path: str, *replies: Reply) -> str:
        """Answer path with replies in turn, the last one repeating; return its URL."""
        with self._lock:
            self._routes[path] = list(replies)
        return self.url + path

    def respond(self, path: str, responder: Responder) -> str:
        """Answer path with whatever responder returns for each request; return its URL."""
        with self._lock:
            self._routes[path] = responder
        return self.url + path

    def seen(self, path: str) -> list[Seen]:
        """Return the requests made to path, in order of arrival."""
        with self._lock:
            return [r for r in self._requests if r.path == path]

    def _reply_for(self, seen: Seen) -> Reply:
        with self._lock:
            self._requests.append(seen)
            route = self._routes.get(seen.path, [NOT_FOUND])
            if isinstance(route, list):
                return route.pop(0) if len(route) > 1 else route[0]
        return route(seen)

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        seen = Seen(split.path, dict(parse_qsl(split.query)), handler.headers, time.monotonic())
        reply = self._reply_for(seen)
        if reply.delay:
            handler.close_connection = True
            if self._stopping.wait(reply.delay):
                return
        body = gzip.compress(reply.body) if reply.gzip else reply.body
        try:
            handler.send_response(reply.status)
            if reply.content_type:
                handler.send_header("Content-Type", reply.content_type)
            if reply.gzip:
                handler.send_header("Content-Encoding", "gzip")
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            if reply.status != 304:
                handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if reply.status != 304 and reply.drip:
                for start in range(0, len(body), 16):
                    handler.wfile.write(body[start : start + 16])
                    handler.wfile.flush()
                    if self._stopping.wait(reply.drip):
                        return
            elif reply.status != 304:
                handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client gave up (a timeout test)


@pytest.fixture
def server() -> Iterator[ListingServer]:
    """Run a listing server on a port the OS picks, for one test."""
    listing_server = ListingServer()
    yield listing_server
    listing_server.stop()


FetcherFactory = Callable[..., Fetcher]


@pytest.fixture
def new_fetcher() -> Iterator[FetcherFactory]:
    """Return a maker of small, fast Fetchers (options overridable); closes them after."""
    made: list[Fetcher] = []

    def make(**overrides: Any) -> Fetcher:
        options: dict[str, Any] = {
            "user_agent": UA,
            "timeout": 0.5,
            "attempts": 3,
            "backoff": 0.01,
            "pacer": HostPacer(default_interval=0.0),
        }
        fetcher = Fetcher(**(options | overrides))
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        fetcher.close()


@pytest.fixture
def fetcher(new_fetcher: FetcherFactory) -> Fetcher:
    return new_fetcher()


def hf_source(url: str, **options: Any) -> SourceConfig:
    return SourceConfig(name="hf", kind="hf-api", url=url, **options)


def free_port() -> int:
    """Return a port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- success, and what is kept -------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "listing"),
    [
        ("hf-api", (HF_PATH, HF_TWO, JSON)),
        ("arxiv-rss", ("/rss/cs.RO", arxiv_rss_body(*PAPERS[:2]), "application/rss+xml")),
    ],
)
def test_a_fetched_listing_is_stored_with_its_raw_bytes(
    storage: Storage,
    server: ListingServer,
    fetcher: Fetcher,
    kind: str,
    listing: tuple[str, bytes, str],
) -> None:
    path, body, content_type = listing
    url = server.script(path, Reply(body=body, content_type=content_type))
    source = SourceConfig(name="listing", kind=kind, url=url)
    summary = pipeline.ingest_source(storage, fetcher, source, NOW)

    assert (summary.source, summary.status, summary.papers, summary.new) == ("listing", "ok", 2, 2)
    assert {p.arxiv_id for p in storage.latest_papers(10)} == {"2409.00001", "2409.00002"}
    [request] = server.seen(path)
    assert request.headers["User-Agent"] == UA
    assert "gzip" in request.headers["Accept-Encoding"]
    run, payload = storage.payload(summary.run_id)
    assert (run.status, run.source, run.kind, run.new) == ("ok", "listing", kind, 2)
    assert payload.data == body
    assert payload.content_type == content_type
    assert payload.url == url
    state = storage.source_state("listing")
    assert state is not None
    assert (state.last_status, state.last_papers, state.consecutive_failures) == ("ok", 2, 0)


def test_a_compressed_response_is_decoded(server: ListingServer, fetcher: Fetcher) -> None:
    url = server.script(HF_PATH, Reply(body=HF_TWO, gzip=True))
    fetched = fetcher.fetch("hf", url)
    assert (fetched.status, fetched.data, fetched.content_type) == (200, HF_TWO, JSON)


def test_a_redirect_is_followed_and_the_final_url_kept(
    server: ListingServer, fetcher: Fetcher
) -> None:
    server.script("/old", Reply(301, b"moved", "text/plain", headers={"Location": "/new"}))
    new = server.script("/new", Reply(body=HF_ONE))
    fetched = fetcher.fetch("hf", server.url + "/old")
    assert (fetched.status, fetched.url, fetched.data) == (200, new, HF_ONE)
    assert len(server.seen("/old")) == len(server.seen("/new")) == 1


# -- conditional GET -------------------------------------------------------------


def test_a_304_is_a_quiet_success_and_keeps_the_validators(
    storage: Storage, server: ListingServer, fetcher: Fetcher
) -> None:
    def conditional(seen: Seen) -> Reply:
        if seen.headers.get("If-None-Match") == '"abc"':
            return Reply(304, content_type=None, headers={"ETag": '"abc"'})
        return Reply(body=HF_ONE, headers={"ETag": '"abc"', "Last-Modified": LAST_MODIFIED})

    source = hf_source(server.respond(HF_PATH, conditional))
    first = pipeline.ingest_source(storage, fetcher, source, NOW)
    second = pipeline.ingest_source(storage, fetcher, source, NOW + timedelta(hours=1))
    third = pipeline.ingest_source(storage, fetcher, source, NOW + timedelta(hours=2))

    assert (first.status, first.new) == ("ok", 1)
    assert (second.status, second.papers, second.new) == ("unchanged", 0, 0)
    assert third.status == "unchanged"  # the validators survive a 304
    validators = [
        (r.headers.get("If-None-Match"), r.headers.get("If-Modified-Since"))
        for r in server.seen(HF_PATH)
    ]
    assert validators == [(None, None), ('"abc"', LAST_MODIFIED), ('"abc"', LAST_MODIFIED)]
    assert storage.count_papers() == 1
    latest = storage.ingest_runs(limit=1)[0]
    assert (latest.id, latest.status, latest.new) == (third.run_id, "unchanged", 0)
    assert [r.status for r in storage.ingest_runs(limit=3)] == ["unchanged", "unchanged", "ok"]
    state = storage.source_state("hf")
    assert state is not None
    assert (state.last_status, state.consecutive_failures, state.last_error) == (
        "unchanged",
        0,
        None,
    )
    assert (state.etag, state.last_modified) == ('"abc"', LAST_MODIFIED)
    assert state.last_papers == 1  # what the last real listing held


def test_the_validators_of_a_listing_that_failed_are_not_kept(
    storage: Storage, server: ListingServer, fetcher: Fetcher
) -> None:
    source = hf_source(
        server.script(
            HF_PATH,
            Reply(body=b'[{"paper": ', headers={"ETag": '"bad"', "Last-Modified": LAST_MODIFIED}),
            Reply(body=HF_ONE, headers={"ETag": '"abc"'}),
            Reply(body=b"[{", headers={"ETag": '"def"'}),
            Reply(body=HF_ONE, headers={"ETag": '"abc"'}),
        )
    )
    with pytest.raises(ListingError, match="invalid JSON"):
        pipeline.ingest_source(storage, fetcher, source, NOW)
    state = storage.source_state("hf")
    assert state is not None
    assert (state.etag, state.last_modified, state.last_status) == (None, None, "failed")

    pipeline.ingest_source(storage, fetcher, source, NOW + timedelta(hours=1))
    with pytest.raises(ListingError, match="invalid JSON"):
        pipeline.ingest_source(storage, fetcher, source, NOW + timedelta(hours=2))
    pipeline.ingest_source(storage, fetcher, source, NOW + timedelta(hours=3))

    sent = [
        (r.headers.get("If-None-Match"), r.headers.get("If-Modified-Since"))
        for r in server.seen(HF_PATH)
    ]
    # Never the validators of a refused listing; after a stored one, that one's.
    assert sent == [(None, None), (None, None), ('"abc"', None), ('"abc"', None)]


# -- retries ---------------------------------------------------------------------


def test_a_429_waits_the_seconds_retry_after_asks(server: ListingServer, fetcher: Fetcher) -> None:
    url = server.script(
        HF_PATH,
        Reply(429, b"slow down", "text/plain", headers={"Retry-After": "1"}),
        Reply(body=HF_ONE),
    )
    fetched = fetcher.fetch("hf", url)
    assert (fetched.status, fetched.data) == (200, HF_ONE)
    first, second = server.seen(HF_PATH)
    assert 0.95 <= second.at - first.at < 2.0


def test_a_429_waits_until_a_retry_after_date(server: ListingServer, fetcher: Fetcher) -> None:
    # HTTP dates have whole seconds: this one is between 1 and 2 s away.
    later = email.utils.formatdate(time.time() + 2, usegmt=True)
    url = server.script(
        HF_PATH, Reply(429, b"", "text/plain", headers={"Retry-After": later}), Reply(body=HF_ONE)
    )
    assert fetcher.fetch("hf", url).data == HF_ONE
    first, second = server.seen(HF_PATH)
    assert 0.9 <= second.at - first.at < 2.5


def test_a_retry_after_in_asctime_format_is_honoured(
    server: ListingServer, fetcher: Fetcher
) -> None:
    # RFC 9110 5.6.7: recipients MUST accept all three HTTP-date formats, asctime included.
    later = time.asctime(time.gmtime(time.time() + 1))
    url = server.script(
        HF_PATH, Reply(429, b"", "text/plain", headers={"Retry-After": later}), Reply(body=HF_ONE)
    )
    assert fetcher.fetch("hf", url).data == HF_ONE
    assert len(server.seen(HF_PATH)) == 2


def test_a_retry_after_longer_than_the_cap_is_cut_short(
    server: ListingServer, new_fetcher: FetcherFactory
) -> None:
    fetcher = new_fetcher(max_retry_after=0.2)
    url = server.script(
        HF_PATH, Reply(429, b"", "text/plain", headers={"Retry-After": "3600"}), Reply(body=HF_ONE)
    )
    assert fetcher.fetch("hf", url).data == HF_ONE
    first, second = server.seen(HF_PATH)
    assert 0.15 <= second.at - first.at < 1.0


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_a_passing_server_error_is_retried(
    server: ListingServer, fetcher: Fetcher, status: int
) -> None:
    url = server.script(HF_PATH, Reply(status, b"oops", "text/plain"), Reply(body=HF_ONE))
    fetched = fetcher.fetch("hf", url)
    assert (fetched.status, fetched.data) == (200, HF_ONE)
    assert len(server.seen(HF_PATH)) == 2


def test_a_server_error_on_every_attempt_gives_up_naming_the_source(
    server: ListingServer, fetcher: Fetcher
) -> None:
    url = server.script(HF_PATH, Reply(503, b"down for maintenance", "text/plain"))
    with pytest.raises(ListingError) as caught:
        fetcher.fetch("hf", url)
    assert str(caught.value) == (
        f"listing 'hf': HTTP 503 Service Unavailable from {url} (gave up after 3 attempts)"
    )
    assert caught.value.source == "hf"
    assert len(server.seen(HF_PATH)) == 3


def test_retries_keep_to_the_host_interval(
    server: ListingServer, new_fetcher: FetcherFactory
) -> None:
    fetcher = new_fetcher(pacer=HostPacer(default_interval=0.3))
    url = server.script(HF_PATH, Reply(500, b"", "text/plain"), Reply(body=HF_ONE))
    fetcher.fetch("hf", url)
    first, second = server.seen(HF_PATH)
    assert second.at - first.at >= 0.27


def test_an_unreachable_server_is_retried_then_reported(new_fetcher: FetcherFactory) -> None:
    fetcher = new_fetcher(attempts=2)
    url = f"http://127.0.0.1:{free_port()}{HF_PATH}"
    with pytest.raises(ListingError) as caught:
        fetcher.fetch("hf", url)
    message = str(caught.value)
    assert message.startswith(f"listing 'hf': cannot connect to {url}: ")
    assert message.endswith("(gave up after 2 attempts)")


def test_a_hanging_server_times_out_after_the_configured_attempts(
    server: ListingServer, new_fetcher: FetcherFactory
) -> None:
    fetcher = new_fetcher(timeout=0.3, attempts=2)
    url = server.script(HF_PATH, Reply(body=HF_ONE, delay=10))
    started = time.monotonic()
    with pytest.raises(ListingError) as caught:
        fetcher.fetch("hf", url)
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert message.startswith(f"listing 'hf': no answer from {url} within 0.3 s (")
    assert message.endswith("(gave up after 2 attempts)")
    assert len(server.seen(HF_PATH)) == 2
    assert 0.55 <= elapsed < 2.0


@pytest.mark.parametrize(
    ("status", "reason"),
    [(400, "Bad Request"), (401, "Unauthorized"), (403, "Forbidden"), (404, "Not Found")],
)
def test_a_client_error_is_not_retried(
    server: ListingServer, fetcher: Fetcher, status: int, reason: str
) -> None:
    url = server.script(HF_PATH, Reply(status, b"no listing\n  for that date", "text/plain"))
    with pytest.raises(ListingError) as caught:
        fetcher.fetch("hf", url)
    assert str(caught.value) == (
        f"listing 'hf': HTTP {status} {reason} from {url}: no listing for that date"
    )
    assert len(server.seen(HF_PATH)) == 1


# -- what the fetcher refuses ------------------------------------------------------


def test_a_body_over_the_size_cap_is_refused(
    server: ListingServer, new_fetcher: FetcherFactory
) -> None:
    fetcher = new_fetcher(max_bytes=1000)
    exact = server.script("/exact", Reply(body=b"x" * 1000, content_type="text/plain"))
    over = server.script("/over", Reply(body=b"x" * 1001, content_type="text/plain"))
    assert fetcher.fetch("hf", exact).data == b"x" * 1000
    with pytest.raises(ListingError) as caught:
        fetcher.fetch("hf", over)
    assert str(caught.value) == (
        f"listing 'hf': the response from {over} is larger than 1,000 bytes; refused"
    )
    assert len(server.seen("/over")) == 1  # not worth another attempt


def test_the_size_cap_counts_decompressed_bytes(
    server: ListingServer, new_fetcher: FetcherFactory
) -> None:
    fetcher = new_fetcher(max_bytes=1000)
    bomb = b"[" + b" " * 200_000 + b"]"
    assert len(gzip.compress(bomb)) < 1000  # small on the wire
    url = server.script(HF_PATH, Reply(body=bomb, gzip=True))
    with pytest.raises(ListingError, match="larger than 1,000 bytes"):
        fetcher.fetch("hf", url)


def test_an_html_error_page_is_refused_and_kept(
    storage: Storage, server: ListingServer, fetcher: Fetcher
) -> None:
    page = b"<!DOCTYPE html><html><head><title>Oops</title></head><body>Bad gateway</body></html>"
    url = server.script(HF_PATH, Reply(body=page, content_type="text/html; charset=utf-8"))
    with pytest.raises(ListingError) as caught:
        pipeline.ingest_source(storage, fetcher, hf_source(url), NOW)
    assert str(caught.value) == "listing 'hf': expected JSON but got an HTML page (an error page?)"
    assert storage.count_papers() == 0
    [failed] = storage.ingest_runs(limit=5)
    assert (failed.status, failed.error) == ("failed", str(caught.value))
    run, payload = storage.payload(failed.id)
    assert run.id == failed.id
    assert (payload.data, payload.content_type, payload.url) == (
        page,
        "text/html; charset=utf-8",
        url,
    )
    state = storage.source_state("hf")
    assert state is not None
    assert (state.last_status, state.consecutive_failures) == ("failed", 1)
    assert len(server.seen(HF_PATH)) == 1


def test_a_redirect_loop_is_a_listing_error(server: ListingServer, fetcher: Fetcher) -> None:
    url = server.script("/loop", Reply(302, b"", "text/plain", headers={"Location": "/loop"}))
    with pytest.raises(ListingError, match="redirect"):
        fetcher.fetch("hf", url)


def test_a_body_that_is_not_the_gzip_it_claims_is_a_listing_error(
    server: ListingServer, fetcher: Fetcher
) -> None:
    url = server.script(HF_PATH, Reply(body=HF_ONE, headers={"Content-Encoding": "gzip"}))
    with pytest.raises(ListingError, match="hf"):
        fetcher.fetch("hf", url)


# -- politeness ----------------------------------------------------------------------


def test_requests_to_one_host_are_spaced_and_other_hosts_are_not_held_up(
    server: ListingServer, new_fetcher: FetcherFactory
) -> None:
    fetcher = new_fetcher(pacer=HostPacer(default_interval=0.4))
    url = server.script(HF_PATH, Reply(body=HF_ONE))
    other_host = url.replace("127.0.0.1", "localhost")
    fetcher.fetch("a", url)
    fetcher.fetch("b", other_host)
    fetcher.fetch("a", url)
    first, other, again = server.seen(HF_PATH)
    assert first.headers["Host"].startswith("127.0.0.1:")
    assert other.headers["Host"].startswith("localhost:")
    assert other.at - first.at < 0.3
    assert again.at - first.at >= 0.38


def test_the_host_interval_holds_across_threads(
    server: ListingServer, new_fetcher: FetcherFactory
) -> None:
    fetcher = new_fetcher(pacer=HostPacer(default_interval=0.2))
    url = server.script(HF_PATH, Reply(body=HF_ONE))
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda i: fetcher.fetch(f"t{i}", url), range(3)))
    assert [r.status for r in results] == [200, 200, 200]
    arrivals = sorted(r.at for r in server.seen(HF_PATH))
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(gaps) == 2
    assert min(gaps) >= 0.18, gaps


# -- hf-api paging and parameters ------------------------------------------------------


def paged(papers: list[tuple[str, str]]) -> Responder:
    """Serve papers `limit` at a time, page `p` (0-based), as the HF API does."""

    def respond(seen: Seen) -> Reply:
        limit, page = int(seen.params.get("limit", "50")), int(seen.params.get("p", "0"))
        return Reply(body=hf_body(*papers[page * limit : (page + 1) * limit]))

    return respond


def test_hf_pages_are_followed_and_merged(
    storage: Storage, server: ListingServer, fetcher: Fetcher
) -> None:
    url = server.respond(HF_PATH, paged(PAPERS))
    source = hf_source(url, pages=3, params={"limit": 1, "date": "today", "sort": "trending"})
    summary = pipeline.ingest_source(storage, fetcher, source, NOW)

    assert [r.params for r in server.seen(HF_PATH)] == [
        {"limit": "1", "date": "2026-03-11", "sort": "trending", "p": str(p)} for p in range(3)
    ]
    assert (summary.status, summary.papers, summary.new) == ("ok", 3, 3)
    assert {p.arxiv_id for p in storage.latest_papers(10)} == {i for i, _ in PAPERS[:3]}
    _, payload = storage.payload(summary.run_id)
    assert [item["paper"]["id"] for item in json.loads(payload.data)] == [i for i, _ in PAPERS[:3]]


def test_hf_paging_stops_at_an_empty_page(
    storage: Storage, server: ListingServer, fetcher: Fetcher
) -> None:
    url = server.respond(HF_PATH, paged(PAPERS[:2]))
    source = hf_source(url, pages=5, params={"limit": 1})
    summary = pipeline.ingest_source(storage, fetcher, source, NOW)
    assert [r.params["p"] for r in server.seen(HF_PATH)] == ["0", "1", "2"]
    assert (summary.papers, summary.new) == (2, 2)
    assert storage.count_papers() == 2


@pytest.mark.parametrize("pages", [1, 3])
def test_an_api_error_object_fails_the_ingest(
    storage: Storage, server: ListingServer, fetcher: Fetcher, pages: int
) -> None:
    url = server.script(HF_PATH, Reply(body=b'{"error": "Invalid date"}'))
    with pytest.raises(ListingError, match="the API answered with an error: Invalid date"):
        pipeline.ingest_source(storage, fetcher, hf_source(url, pages=pages), NOW)
    state = storage.source_state("hf")
    assert state is not None
    assert (state.last_status, state.consecutive_failures) == ("failed", 1)


def test_relative_dates_are_sent_as_utc_dates(server: ListingServer, fetcher: Fetcher) -> None:
    url = server.script(HF_PATH, Reply(body=HF_ONE))
    now = datetime(2026, 3, 11, 0, 30, tzinfo=UTC)
    for params in ({"date": "today"}, {"date": "yesterday"}, {"date": "2026-01-02"}):
        fetcher.fetch("hf", url, params=pipeline.resolve_params(params, now))
    assert [r.params["date"] for r in server.seen(HF_PATH)] == [
        "2026-03-11",
        "2026-03-10",
        "2026-01-02",
    ]


def test_relative_dates_are_utc_even_for_a_local_now(
    server: ListingServer, fetcher: Fetcher
) -> None:
    url = server.script(HF_PATH, Reply(body=HF_ONE))
    local_now = datetime(2026, 3, 12, 0, 30, tzinfo=timezone(timedelta(hours=2)))  # 22:30 UTC
    fetcher.fetch("hf", url, params=pipeline.resolve_params({"date": "today"}, local_now))
    assert server.seen(HF_PATH)[0].params["date"] == "2026-03-11"


# -- source health --------------------------------------------------------------------


def test_a_failing_source_is_counted_flagged_and_reset(
    storage: Storage,
    settings: Settings,
    run: Cli,
    server: ListingServer,
    fetcher: Fetcher,
) -> None:
    settings = settings.model_copy(update={"failure_alert_after": 2})
    run.env["NOTIFIER_FAILURE_ALERT_AFTER"] = "2"
    url = server.script(HF_PATH, Reply(503, b"down for maintenance", "text/plain"))
    source = hf_source(url)
    expected = f"listing 'hf': HTTP 503 Service Unavailable from {url} (gave up after 3 attempts)"

    for failures in (1, 2):
        with pytest.raises(ListingError) as caught:
            pipeline.ingest_source(storage, fetcher, source, NOW + timedelta(hours=failures))
        assert str(caught.value) == expected
        latest = storage.ingest_runs(limit=1)[0]
        assert (latest.source, latest.status, latest.error) == ("hf", "failed", expected)
        state = storage.source_state("hf")
        assert state is not None
        assert (state.last_status, state.last_error) == ("failed", expected)
        assert state.consecutive_failures == failures
        [row] = source_report(settings, storage.sources_health(), NOW)
        assert (row["consecutive_failures"], row["failing"]) == (failures, failures >= 2)
    assert len(server.seen(HF_PATH)) == 6
    assert storage.count_papers() == 0

    status = run("status")
    assert status.exit_code == 0
    assert f"source FAILING: hf: 2 failures in a row: {expected}" in status.stdout.splitlines()
    sources = run("sources")
    assert sources.exit_code == 0
    assert sources.stdout.splitlines()[0] == f"hf [hf-api] FAILING: {url}"

    server.script(HF_PATH, Reply(body=HF_ONE))
    summary = pipeline.ingest_source(storage, fetcher, source, NOW + timedelta(hours=3))
    assert (summary.status, summary.new) == ("ok", 1)
    state = storage.source_state("hf")
    assert state is not None
    assert (state.last_status, state.consecutive_failures, state.last_error) == ("ok", 0, None)
    [row] = source_report(settings, storage.sources_health(), NOW)
    assert row["failing"] is False
    assert "FAILING" not in run("status").stdout
    assert "FAILING" not in run("sources").stdout


# -- the command line ---------------------------------------------------------------


def test_an_ingested_url_can_be_replayed(run: Cli, server: ListingServer) -> None:
    url = server.script(HF_PATH, Reply(body=HF_TWO))
    ingested = run("ingest", url, "--kind", "hf-api", "--json")
    assert ingested.exit_code == 0, ingested.stderr
    result = json.loads(ingested.stdout)
    assert (result["source"], result["status"], result["new"]) == (url, "ok", 2)
    [request] = server.seen(HF_PATH)
    assert request.headers["User-Agent"] == (
        f"notifier/{__version__} (+https://papers.example.org; "
        "mailto:digests@notifier.test.example)"
    )

    replayed = run("replay", str(result["run"]))
    assert replayed.exit_code == 0, replayed.stderr
    assert replayed.stdout.startswith(f"replayed #{result['run']} as #")
    assert replayed.stdout.rstrip().endswith(f"{url}: 2 papers, 0 new, 2 seen before")
    assert len(server.seen(HF_PATH)) == 1  # replaying fetches nothing

    missing = run("replay", str(result["run"] + 1000))
    assert missing.exit_code == 1
    assert missing.stdout == ""
    assert missing.stderr == (
        f"notifier: error: there is no ingest run #{result['run'] + 1000}; see `notifier status`\n"
    )


def test_a_url_of_unknown_kind_needs_kind(run: Cli, server: ListingServer) -> None:
    url = server.script("/listing", Reply(body=HF_ONE))
    result = run("ingest", url)
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"notifier: error: listing '{url}': cannot tell what kind")
    assert "--kind" in line
    assert server.seen("/listing") == []


def write_config(folder: Path, sources: list[tuple[str, str]]) -> None:
    """Write notifier.toml with quick fetch settings and hf-api sources (name, url)."""
    lines = ["fetch_attempts = 1", "fetch_backoff = 0", "polite_delay = 0", ""]
    for name, url in sources:
        lines += ["[[sources]]", f'name = "{name}"', 'kind = "hf-api"', f'url = "{url}"', ""]
    (folder / "notifier.toml").write_text("\n".join(lines))


def test_configured_sources_are_polled_when_due(
    run: Cli, storage: Storage, server: ListingServer, tmp_path: Path
) -> None:
    good = server.script("/good", Reply(body=HF_TWO))
    broken = server.script("/broken", Reply(500, b"", "text/plain"))
    write_config(tmp_path, [("broken", broken), ("good", good)])

    first = run("ingest")
    assert first.exit_code == 1
    assert first.stdout.splitlines() == ["good: 2 papers, 2 new, 0 seen before"]
    assert first.stderr.splitlines() == [
        "notifier: error: listing 'broken': HTTP 500 Internal Server Error from "
        f"{broken} (gave up after 1 attempt)"
    ]
    assert storage.count_papers() == 2
    assert (len(server.seen("/good")), len(server.seen("/broken"))) == (1, 1)

    again = run("ingest")
    assert again.exit_code == 0
    assert again.stdout.startswith("no source is due yet")
    assert (len(server.seen("/good")), len(server.seen("/broken"))) == (1, 1)

    forced = run("ingest", "--all")
    assert forced.exit_code == 1
    assert forced.stdout.splitlines() == ["good: 2 papers, 0 new, 2 seen before"]
    assert (len(server.seen("/good")), len(server.seen("/broken"))) == (2, 2)
    health = {s.name: s.consecutive_failures for s in storage.sources_health()}
    assert health == {"broken": 2, "good": 0}


def test_a_redirect_loop_does_not_stop_the_other_sources(
    run: Cli, storage: Storage, server: ListingServer, tmp_path: Path
) -> None:
    loop = server.script("/loop", Reply(302, b"", "text/plain", headers={"Location": "/loop"}))
    good = server.script("/good", Reply(body=HF_TWO))
    write_config(tmp_path, [("loop", loop), ("good", good)])
    result = run("ingest")
    assert result.exit_code == 1
    assert storage.count_papers() == 2
    state = storage.source_state("loop")
    assert state is not None
    assert state.consecutive_failures == 1


def test_a_server_dripping_bytes_cannot_hold_a_fetch_forever(
    server: ListingServer, new_fetcher: FetcherFactory
) -> None:
    # Each piece arrives within the 0.2 s per-read timeout, but the whole body
    # would take about 1.3 s: more than TOTAL_TIMEOUTS (4) x 0.2 s.
    url = server.script(HF_PATH, Reply(body=b"[" + b" " * 200 + b"]", drip=0.1))
    fetcher = new_fetcher(timeout=0.2, attempts=1)
    # Without the total deadline the whole body would arrive and parse as [].
    with pytest.raises(ListingError, match="sending its answer too slowly"):
        fetcher.fetch("hf", url)


def test_a_snapshot_listing_is_read_from_a_url(
    run: Cli, storage: Storage, server: ListingServer
) -> None:
    from tests.conftest import seed_bytes

    url = server.script("/snapshots/day1.txt", Reply(body=seed_bytes(3), content_type="text/plain"))
    result = run("ingest", url)  # the kind is guessed from the .txt suffix
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{url}: 187 papers, 187 new, 0 seen before\n"
    assert storage.count_papers() == 187

"""Ingest: fetch a listing (conditionally), parse it, diff it against what is stored, store it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from notifier.diff import decide, lookup_keys
from notifier.errors import ListingError, StaleDiff
from notifier.ingest import expand_paths, guess_kind, parse_listing, read_file
from notifier.ingest.fetch import Fetched, Fetcher
from notifier.ingest.hf import api_page_items, join_api_pages
from notifier.models import IngestStatus, IngestSummary, Payload, SourceState
from notifier.settings import Settings, SourceConfig
from notifier.sources import due_sources
from notifier.storage.protocols import PaperStore

RACE_RETRIES = 3


def ingest(
    storage: PaperStore,
    source: str,
    data: bytes,
    now: datetime,
    kind: str = "snapshot",
    *,
    content_type: str | None = None,
    url: str | None = None,
    replay_of: int | None = None,
) -> IngestSummary:
    """Parse, diff and store one listing; a refused listing is logged as a failed run.

    The raw bytes are kept (compressed) with the run, failed or not, so
    `notifier replay` can re-run it; a replay refers to its original instead.
    """
    payload = None if replay_of else Payload(data, url, content_type)
    try:
        try:
            listing = parse_listing(kind, data, source, content_type)
        except ListingError:
            raise
        except Exception as e:
            # A parser's own bug must fail this listing, not the cycle;
            # the bytes are kept, so the listing can be replayed once it is fixed.
            raise ListingError(
                source,
                f"could not be read ({type(e).__name__}: {e}); it is kept for "
                "`notifier replay` once the parser is fixed",
            ) from e
    except ListingError as e:
        storage.record_failed_ingest(source, str(e), now, kind, payload)
        e.recorded = True
        raise
    for attempt in range(1, RACE_RETRIES + 1):
        by_key, by_title = storage.papers_for_diff(*lookup_keys(listing))
        changes = decide(by_key, by_title, listing)
        try:
            return storage.record_ingest(
                listing, changes, now, kind=kind, payload=payload, replay_of=replay_of
            )
        except StaleDiff:
            # Another ingest stored one of these papers meanwhile: diff again.
            if attempt == RACE_RETRIES:
                raise
    raise AssertionError("unreachable")


def replay(storage: PaperStore, run_id: int, now: datetime) -> IngestSummary:
    """Re-run the parse and diff of an earlier ingest from its kept raw bytes."""
    run, payload = storage.payload(run_id)
    return ingest(
        storage,
        run.source,
        payload.data,
        now,
        run.kind or "snapshot",
        content_type=payload.content_type,
        url=payload.url,
        replay_of=run_id,
    )


def resolve_params(params: Mapping[str, str | int], now: datetime) -> dict[str, str | int]:
    """Return query parameters with relative dates ("today", "yesterday") made absolute (UTC)."""
    days = {"today": 0, "yesterday": 1}
    utc = now.astimezone(UTC)
    return {
        k: (utc - timedelta(days=days[v])).date().isoformat() if v in days else v
        for k, v in params.items()
    }


def ingest_source(
    storage: PaperStore, fetcher: Fetcher, source: SourceConfig, now: datetime
) -> IngestSummary:
    """Fetch one configured source (conditionally) and ingest it, keeping its health.

    A 304 is a quiet success. Validators (ETag, Last-Modified) are kept only
    after a listing was stored, so a listing that failed is fetched whole again.
    """
    previous = storage.source_state(source.name)
    state = SourceState(source.name, source.kind, source.url)
    if previous is not None:
        state = replace(previous, kind=source.kind, url=source.url)
    state = replace(state, last_checked_at=now)
    try:
        if source.url.startswith(("http://", "https://")):
            fetched = _fetch_pages(fetcher, source, state, now)
        else:
            fetched = Fetched(source.url, 200, read_file(source.url, fetcher.max_bytes))
        if fetched.not_modified:
            run = storage.record_unchanged(source.name, source.kind, now)
            summary = IngestSummary(
                source.name,
                run,
                0,
                0,
                0,
                0,
                status=IngestStatus.UNCHANGED,
                reason="not modified since the last fetch",
            )
        else:
            summary = ingest(
                storage,
                source.name,
                fetched.data,
                now,
                source.kind,
                content_type=fetched.content_type,
                url=fetched.url,
            )
            state = replace(
                state,
                etag=fetched.etag,
                last_modified=fetched.last_modified,
                last_papers=summary.papers,
            )
    except Exception as e:
        # Whatever one source raises is that source's failed run, counted toward
        # failure_alert_after; the other sources and the cycle go on.
        failure = (
            e
            if isinstance(e, ListingError)
            else ListingError(source.name, f"{type(e).__name__}: {e}".removesuffix(": "))
        )
        if not getattr(e, "recorded", False):
            storage.record_failed_ingest(source.name, str(failure), now, source.kind)
        storage.save_source_state(
            replace(
                state,
                last_status=IngestStatus.FAILED,
                last_error=str(failure),
                consecutive_failures=state.consecutive_failures + 1,
            )
        )
        if failure is e:
            raise
        raise failure from e
    storage.save_source_state(
        replace(
            state,
            last_status=summary.status,
            last_error=None,
            last_success_at=now,
            consecutive_failures=0,
        )
    )
    return summary


def _fetch_pages(
    fetcher: Fetcher, source: SourceConfig, state: SourceState, now: datetime
) -> Fetched:
    """Fetch a source; hf-api sources with pages > 1 follow `p` and merge the JSON arrays."""
    params = resolve_params(source.params, now)
    if source.kind != "hf-api" or source.pages == 1:
        return fetcher.fetch(
            source.name,
            source.url,
            params=params,
            etag=state.etag,
            last_modified=state.last_modified,
        )
    pages: list[list[Any]] = []
    first: Fetched | None = None
    for page in range(source.pages):
        fetched = fetcher.fetch(source.name, source.url, params={**params, "p": page})
        first = first or fetched
        items = api_page_items(fetched.data)
        if items is None:
            return fetched  # not an array: the parser reports what is wrong with it
        if not items:
            break  # past the last page
        pages.append(items)
    assert first is not None
    return replace(first, data=join_api_pages(pages), etag=None, last_modified=None)


def ingest_due(
    storage: PaperStore,
    fetcher: Fetcher,
    settings: Settings,
    now: datetime,
) -> tuple[list[IngestSummary], list[str]]:
    """Poll the configured sources that are due; return their summaries and errors.

    A failing source is recorded and reported; the others are still polled.
    """
    due = due_sources(settings.sources, storage.sources_health(), now)
    summaries, errors = [], []
    for source in due:
        try:
            summaries.append(ingest_source(storage, fetcher, source, now))
        except ListingError as e:
            errors.append(str(e))
    return summaries, errors


@dataclass(frozen=True)
class IngestJob:
    """One listing `notifier ingest` takes in turn: a configured source, a URL, a file or stdin."""

    name: str
    run: Callable[[datetime], IngestSummary]


@dataclass(frozen=True)
class IngestResult:
    """How one ingest job ended: the summary of what it stored, or why its listing was refused."""

    name: str
    summary: IngestSummary | None = None
    error: str | None = None


def ingest_jobs(
    storage: PaperStore,
    settings: Settings,
    fetcher: Callable[[], Fetcher],
    locations: Sequence[str],
    now: datetime,
    *,
    kind: str | None = None,
    every_source: bool = False,
) -> list[IngestJob]:
    """Return the jobs for locations, or with none, for the due (or every) configured source.

    Locations are files, directories of .txt files, - for stdin, or URLs; kind
    overrides the kind guessed from each. A location whose kind cannot be
    guessed becomes a job that fails when run, so it is reported in turn with
    the others. fetcher is called only when a job needs HTTP. Raises
    ListingError when there is neither a location nor a configured source.
    """
    jobs: list[IngestJob] = []
    if not locations:
        configured = (
            settings.sources
            if every_source
            else due_sources(settings.sources, storage.sources_health(), now)
        )
        if not settings.sources:
            raise ListingError(
                "notifier.toml", "no [[sources]] configured and no PATH or URL given"
            )
        client = fetcher()
        for source in configured:
            jobs.append(IngestJob(source.name, partial(ingest_source, storage, client, source)))
    for location in expand_paths(list(locations)):
        try:
            job_kind = kind or guess_kind(location)
        except ListingError as e:
            jobs.append(IngestJob(location, partial(_raise, e)))
            continue
        if location.startswith(("http://", "https://")):
            adhoc = SourceConfig(name=location, kind=job_kind, url=location)
            jobs.append(IngestJob(location, partial(ingest_source, storage, fetcher(), adhoc)))
        else:
            run = partial(ingest_file, storage, location, job_kind, settings.max_listing_bytes)
            jobs.append(IngestJob(location, run))
    return jobs


def _raise(error: Exception, _now: datetime) -> IngestSummary:
    """Raise error when its job runs, so it is reported in turn with the others."""
    raise error


def run_ingest_jobs(
    jobs: Sequence[IngestJob], clock: Callable[[], datetime]
) -> Iterator[IngestResult]:
    """Run the jobs in order, yielding each result as it lands; a refused listing stops none."""
    for job in jobs:
        try:
            yield IngestResult(job.name, summary=job.run(clock()))
        except ListingError as e:
            yield IngestResult(job.name, error=str(e))


def ingest_file(
    storage: PaperStore, location: str, kind: str, max_bytes: int, now: datetime
) -> IngestSummary:
    """Ingest one file (or stdin), recording a failed run if it cannot be read."""
    source = "stdin" if location == "-" else location
    try:
        data = read_file(location, max_bytes)
    except ListingError as e:
        storage.record_failed_ingest(source, str(e), now, kind)
        raise
    return ingest(storage, source, data, now, kind)


def summary_json(summary: IngestSummary) -> dict[str, Any]:
    """Return an ingest summary as JSON-ready data (`notifier ingest --json`)."""
    data: dict[str, Any] = {
        "source": summary.source,
        "status": summary.status,
        "papers": summary.papers,
        "new": summary.new,
        "seen": summary.seen,
        "updated": summary.updated,
        "skipped": summary.skipped,
        "run": summary.run_id,
    }
    if summary.reason:
        data["reason"] = summary.reason
    return data

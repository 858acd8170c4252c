"""The admin API's operations routes: the latest runs and the sources' health, without secrets.

Fetch errors and ad hoc sources name the URL they fetched, which may carry a
key in its credentials or query; every URL shown goes through public_url.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Query

from notifier.models import IngestRun, JobRun
from notifier.sources import source_report
from notifier.web.api.schemas import IngestRunOut, JobRunOut, RunsOut, SourceOut
from notifier.web.context import WebContext

# A URL inside an error message (fetch errors name the URL they fetched).
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)


def ingest_run_out(run: IngestRun) -> IngestRunOut:
    """Return one ingest run, URLs in its source (ad hoc ones) and error without secrets."""
    shown = IngestRunOut.model_validate(run, from_attributes=True)
    return shown.model_copy(
        update={
            "source": without_secrets(run.source),
            "error": run.error and without_secrets(run.error),
        }
    )


def job_run_out(run: JobRun) -> JobRunOut:
    """Return one job run, URLs in its detail shown without secrets."""
    shown = JobRunOut.model_validate(run, from_attributes=True)
    return shown.model_copy(update={"detail": without_secrets(run.detail)})


def public_url(url: str) -> str:
    """Return a URL without credentials or query, either of which may hold a key."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(a URL that cannot be parsed)"
    if not parts.scheme or not parts.netloc:
        return url  # a file path (snapshots)
    host = parts.hostname or ""
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def without_secrets(text: str) -> str:
    """Return a message or name with every URL in it shown as public_url shows it."""
    return _URL.sub(lambda m: public_url(m.group()), text)


def add_operations_routes(router: APIRouter, context: WebContext) -> None:
    """Add the latest runs and the sources' health."""
    storage = context.storage

    @router.get(
        "/runs", response_model=RunsOut, response_description="The latest runs.", tags=["runs"]
    )
    def list_runs(limit: Annotated[int, Query(ge=1, le=200)] = 20) -> RunsOut:
        """Return the latest ingest runs and the latest run of each scheduled job."""
        return RunsOut(
            ingest=[ingest_run_out(r) for r in storage.ingest_runs(limit)],
            jobs=[job_run_out(r) for r in storage.last_job_runs()],
        )

    @router.get(
        "/sources",
        response_model=list[SourceOut],
        response_description="Every source, configured ones first.",
        tags=["sources"],
    )
    def list_sources() -> list[SourceOut]:
        """Return every listing source, configured or ingested ad hoc, with its health."""
        configured_names = {s.name for s in context.settings.sources}
        rows = source_report(context.settings, storage.sources_health(), context.clock())
        return [
            SourceOut(
                # A source ingested ad hoc is named by its URL.
                name=without_secrets(row["name"]),
                kind=row["kind"],
                url=public_url(row["url"]),
                configured=row["name"] in configured_names,
                every=row["every"],
                due=row["due"],
                last_checked_at=row["last_checked_at"],
                last_status=row["last_status"],
                last_papers=row["last_papers"],
                last_error=row["last_error"] and without_secrets(row["last_error"]),
                consecutive_failures=row["consecutive_failures"],
                failing=row["failing"],
            )
            for row in rows
        ]

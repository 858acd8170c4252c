"""Listings in: ingest, the health of each source, and replaying a kept listing."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from notifier import clock
from notifier.cli.base import Context, pass_context, progress
from notifier.cli.describe import describe_summary
from notifier.ingest import KINDS

if TYPE_CHECKING:
    from notifier.pipeline.ingest import IngestResult


@click.command()
@click.argument("locations", nargs=-1)
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    help="Format of the given URLs or files (default: guessed from the URL; files are snapshots).",
)
@click.option(
    "--all",
    "every_source",
    is_flag=True,
    help="With no LOCATIONS: poll every configured source now, due or not.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per listing.")
@pass_context
def ingest(
    context: Context,
    locations: tuple[str, ...],
    kind: str | None,
    every_source: bool,
    as_json: bool,
) -> None:
    """Ingest listings: files, directories of .txt files, - for stdin, or URLs.

    With no LOCATIONS, poll the [[sources]] of notifier.toml that are due.
    Each listing is stored whole or not at all; a malformed one is refused with
    the source and line at fault, and the others still go in.
    """
    from notifier.pipeline.ingest import ingest_jobs, run_ingest_jobs

    jobs = ingest_jobs(
        context.storage,
        context.settings,
        lambda: context.fetcher,
        locations,
        clock.now(),
        kind=kind,
        every_source=every_source,
    )
    if not locations and not jobs:
        click.echo("no source is due yet (see `notifier sources`; --all polls them now)")
    results: list[IngestResult] = []
    with progress(len(jobs), "ingesting", enabled=not as_json) as advance:
        for result in run_ingest_jobs(jobs, clock.now):
            results.append(result)
            advance()
            if as_json:  # streamed: a consumer may read each listing as it lands
                click.echo(json.dumps(_result_json(result)))
    # Human lines come after the progress bar, so the two do not collide.
    for result in [] if as_json else results:
        if result.summary is None:
            click.echo(f"notifier: error: {result.error}", err=True)
        else:
            click.echo(describe_summary(result.summary))
    if any(r.summary is None for r in results):
        sys.exit(1)


def _result_json(result: IngestResult) -> dict[str, Any]:
    """Return what `ingest --json` prints for one listing: its summary, or its error."""
    from notifier.pipeline.ingest import summary_json

    if result.summary is None:
        return {"source": result.name, "error": result.error}
    return summary_json(result.summary)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per source.")
@pass_context
def sources(context: Context, as_json: bool) -> None:
    """List listing sources with their health: last check, status, failures in a row.

    Configured [[sources]] and URLs ingested ad hoc are both shown; a source
    failing failure_alert_after times in a row is flagged FAILING.
    """
    from notifier.sources import source_report

    settings, storage = context.settings, context.storage
    for row in source_report(settings, storage.sources_health(), clock.now()):
        if as_json:
            click.echo(json.dumps(row, default=str))
            continue
        flag = " FAILING" if row["failing"] else ""
        checked = row["last_checked_at"]
        when = checked.strftime("%Y-%m-%d %H:%M") if checked else "never"
        click.echo(f"{row['name']} [{row['kind']}]{flag}: {row['url']}")
        detail = f"  last checked {when}: {row['last_status'] or 'not fetched yet'}"
        if row["last_papers"] is not None:
            detail += f", {row['last_papers']} papers"
        if row["consecutive_failures"]:
            detail += f", {row['consecutive_failures']} failure(s) in a row: {row['last_error']}"
        if row["every"]:
            detail += f"; polled every {row['every']}"
        click.echo(detail)


@click.command()
@click.argument("run", type=int)
@pass_context
def replay(context: Context, run: int) -> None:
    """Re-run the parse and diff of ingest run RUN from its kept raw bytes.

    Useful after a parser fix: a listing that failed can be replayed without
    fetching it again. The replay is a new run that refers to RUN.
    """
    from notifier import pipeline

    summary = pipeline.replay(context.storage, run, clock.now())
    click.echo(f"replayed #{run} as #{summary.run_id}: " + describe_summary(summary))

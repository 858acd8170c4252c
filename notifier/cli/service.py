"""Running the service: run (the daemon), run-once (one cycle, for cron) and serve (the web)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from notifier import clock
from notifier.cli.base import Context, pass_context
from notifier.cli.describe import describe_summary

if TYPE_CHECKING:
    from notifier.models import IngestSummary
    from notifier.pipeline import SendReport
    from notifier.pipeline.channels import PostReport
    from notifier.settings import Settings


@click.command("run")
@pass_context
def run_service(context: Context) -> None:
    """Run as a service until SIGTERM: poll sources, compose due digests, send, rebuild feeds.

    Only one `notifier run` acts at a time (a leader lock: PostgreSQL advisory
    lock, or a lock file next to the SQLite database); start a second one
    as a hot standby and it takes over when the first dies. SIGTERM or Ctrl-C
    stops taking work, lets running jobs finish (messages in flight are
    accepted or given back), and exits 0. A leader that loses its lock (its
    database connection died) drains the same way and exits 1, so a service
    manager restarts it as a standby. Every job logs one line per run;
    `notifier status` shows the last run of each.
    """
    # Imported here: APScheduler is for the daemon alone, not every command.
    from notifier.scheduler import run_daemon

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s notifier[%(process)d] %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        stream=sys.stderr,
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    run_daemon(context.settings, context.storage, context.fetcher, clock.now)


@click.command("run-once")
@pass_context
def run_once(context: Context) -> None:
    """Run one full cycle and exit: ingest due sources, compose due digests, send, write feeds.

    Meant for cron and systemd timers. Safe to run twice at the same time or
    back to back: digests are unique per subscriber and period, and sending
    workers lease them. Exits 1 with one line per problem when a source failed,
    the mail server was unreachable, or a digest failed for good.
    """
    from notifier.app import make_transports
    from notifier.pipeline.cycle import Cycle

    settings, storage = context.settings, context.storage
    if settings.smtp_url is None:
        make_transports(settings)  # the one-line error about the missing configuration
    errors = Cycle(settings, storage, context.fetcher, clock.now).run_once(_CycleOutput(settings))
    for error in errors:
        click.echo(f"notifier: error: {error}", err=True)
    if errors:
        sys.exit(1)


@dataclass
class _CycleOutput:
    """Print what each step of run-once did, as it is done."""

    settings: Settings

    def ingested(self, summary: IngestSummary) -> None:
        """Print one line for a source polled."""
        click.echo(describe_summary(summary))

    def composed(self, outcomes: Mapping[str, int]) -> None:
        """Print how many digests of each outcome composing had."""
        from notifier.pipeline.compose import describe_outcomes

        click.echo(f"composed: {describe_outcomes(outcomes)}")

    def sent(self, report: SendReport) -> None:
        """Print the send totals, and a warning per digest that will be retried."""
        from notifier.pipeline.send import describe_report

        click.echo(describe_report(report))
        for email, error in report.deferred + report.unknown:
            click.echo(f"notifier: warning: {email}: will retry: {error}", err=True)

    def posted(self, report: PostReport) -> None:
        """Print what posting to channels did, when there was anything to post."""
        if report.sent or report.retried or report.failed or report.unconfirmed:
            click.echo(f"channels: {report.describe()}")

    def wrote_feeds(self, written: Sequence[Path]) -> None:
        """Print how many feed files were written."""
        click.echo(f"wrote {len(written)} feed files to {self.settings.feeds_dir}/")


@click.command()
@click.option("--host", help="Address to listen on (default: the web_host setting, 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default: the web_port setting, 8000).")
@pass_context
def serve(context: Context, host: str | None, port: int | None) -> None:
    """Serve the web side: sign-up, preferences, one-click unsubscribe, feeds, admin API.

    Pages: / (subscribe), /confirm, /manage, /unsubscribe, /more, /less and /mute
    links from emails, /feeds/*.rss|.atom|.json, /healthz, /metrics, and the admin JSON API under
    /api/v1 (bearer admin_token; spec at /api/v1/openapi.json). Put it behind
    a TLS-terminating proxy at base_url; it runs beside notifier run, not
    instead of it.
    """
    from notifier.server import make_web_server, web_server_notes

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s notifier-web[%(process)d] %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # /healthz reads the revision
    server = make_web_server(context.settings, context.storage, host, port)
    for note in web_server_notes(context.settings):
        click.echo(note, err=True)
    server.run()

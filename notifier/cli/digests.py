"""Digests and feeds out: digest (compose, then send), send, and feeds."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

import click

from notifier import clock
from notifier.cli.base import Context, pass_context, progress

if TYPE_CHECKING:
    from notifier.models import ComposeResult
    from notifier.pipeline import SendReport
    from notifier.pipeline.senders import Sender


@click.command()
@click.option(
    "--dry-run", is_flag=True, help="Write .eml previews to state/outbox/; record nothing."
)
@click.option("--json", "as_json", is_flag=True, help="Print each composed digest as JSON.")
@pass_context
def digest(context: Context, dry_run: bool, as_json: bool) -> None:
    """Compose the due digest of every subscriber (on their own clock) and send what is pending.

    A digest holds papers new to the subscriber that match an interest, one
    section per interest. It is recorded with its papers before sending and
    marked sent only when the mail server accepts it, so nothing is sent twice
    and nothing is lost.
    """
    from notifier import pipeline
    from notifier.app import make_transports
    from notifier.pipeline.senders import preview_from_settings, send_from_settings

    settings, storage = context.settings, context.storage
    now = clock.now()
    if dry_run:
        composed, written = preview_from_settings(settings, storage, now)
        _print_composed(composed, as_json)
        click.echo(
            f"dry run: wrote {written} preview(s) to {settings.outbox_dir}/; nothing recorded",
            err=as_json,
        )
        return
    # Built first: a template or link-key problem fails before anything is recorded.
    sender = send_from_settings(settings, storage, clock.now)
    make_transports(settings)  # fail on missing config before recording anything
    # Streamed: one line per subscriber as each batch is stored, memory stays flat.
    up_to_date: list[int] = []
    _print_composed(pipeline.iter_composed(storage, settings, now, up_to_date=up_to_date), as_json)
    if sum(up_to_date):
        click.echo(
            f"{sum(up_to_date)} subscriber(s) have nothing due: they have the digest of "
            "their current period, or signed up after its send time",
            err=as_json,
        )
    from notifier.matching import matching_for
    from notifier.pipeline.channels import compose_topic_digests

    topics = compose_topic_digests(storage, settings, now, matching_for(settings))
    if topics:
        click.echo(f"composed {topics} topic digest(s) for channels", err=as_json)
    report = _send_here(sender, show_progress=True)
    posts_given_up = _post_here(context, as_json)
    _print_report(report, as_json)
    if posts_given_up:
        sys.exit(1)


@click.command()
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Sending processes; several machines may also run `send` against one PostgreSQL.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the totals as JSON.")
@pass_context
def send(context: Context, workers: int, as_json: bool) -> None:
    """Send every digest that is due, without composing new ones.

    Each process claims digests with a lease (FOR UPDATE SKIP LOCKED on
    PostgreSQL), keeps smtp_connections connections open and shares send_rate;
    a digest whose worker died is taken over when its lease expires. SIGTERM or
    Ctrl-C finishes the messages in flight and gives the rest back.
    """
    from notifier.app import make_transports
    from notifier.pipeline.senders import send_from_settings, send_in_processes

    make_transports(context.settings)
    if workers == 1:
        sender = send_from_settings(context.settings, context.storage, clock.now)
        report = _send_here(sender, show_progress=not as_json)
    else:
        report = send_in_processes(context.config_file, workers)
    posts_given_up = _post_here(context, as_json)
    _print_report(report, as_json)
    if posts_given_up:
        sys.exit(1)


@click.command()
@pass_context
def feeds(context: Context) -> None:
    """Write the RSS and Atom feeds: all papers, each topic, each subscriber."""
    from notifier import pipeline

    settings = context.settings
    written = pipeline.build_feeds(context.storage, settings, clock.now())
    click.echo(f"wrote {len(written)} feed files to {settings.feeds_dir}/")


def _send_here(sender: Sender, show_progress: bool) -> SendReport:
    """Deliver due digests from this process, stopping cleanly on SIGTERM / SIGINT."""
    with progress(sender.backlog(), "sending", enabled=show_progress) as advance:
        return sender.send_until_signalled(on_progress=lambda _n: advance())


def _post_here(context: Context, as_json: bool) -> bool:
    """Post the due digests to their channels; print a line per post given up, and totals.

    Returns whether a post was given up: the command then exits non-zero, as it
    does for an undelivered email.
    """
    import asyncio

    from notifier.pipeline.channels import post_channels

    report = asyncio.run(post_channels(context.storage, context.settings, clock.now))
    for label, error in report.failed + report.unconfirmed:
        click.echo(f"notifier: error: channel {label}: not posted: {error}", err=True)
    if report.sent or report.retried or report.failed or report.unconfirmed:
        click.echo(f"channels: {report.describe()}", err=as_json)
    return bool(report.failed or report.unconfirmed)


def _print_report(report: SendReport, as_json: bool) -> None:
    """Print what a send run did, and exit non-zero when a digest was not delivered."""
    from notifier.pipeline.send import describe_report, report_json

    for email, error in report.failed:
        click.echo(f"notifier: error: {email}: not delivered: {error}", err=True)
    for email, error in report.deferred:
        click.echo(f"notifier: warning: {email}: will retry later: {error}", err=True)
    for email, error in report.unknown:
        click.echo(f"notifier: warning: {email}: outcome unknown, will retry: {error}", err=True)
    for email, error in report.unconfirmed:
        click.echo(f"notifier: error: {email}: {error}", err=True)
    for email in report.suspended:
        click.echo(f"notifier: warning: {email}: suspended after repeated hard bounces", err=True)
    if as_json:
        click.echo(json.dumps(report_json(report)), err=True)
    else:
        click.echo(describe_report(report))
    if report.failed or report.deferred or report.unknown or report.unconfirmed:
        sys.exit(1)


def _print_composed(composed: Iterable[ComposeResult], as_json: bool) -> None:
    """Print what composing did, per subscriber."""
    from notifier.pipeline.compose import digest_json

    for item in composed:
        if as_json:
            click.echo(json.dumps(digest_json(item)))
            continue
        email, content = item.subscriber.email, item.content
        if content is None:
            click.echo(f"{email}: {item.outcome}: {item.detail}")
        elif content.is_empty:
            click.echo(f"{email}: nothing new: {content.reason}")
        else:
            more = f" (+{content.more} over the cap)" if content.more else ""
            click.echo(
                f"{email}: {len(content.papers)} papers in {len(content.sections)} section(s){more}"
            )

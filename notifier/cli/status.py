"""What the service is doing: status (recent work, or one subscriber's) and health."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from notifier import clock
from notifier.cli.base import Context, fail, pass_context
from notifier.cli.describe import describe_schedule
from notifier.errors import ConfigError

if TYPE_CHECKING:
    from notifier.settings import Settings
    from notifier.status import SubscriberReport


@click.command()
@click.argument("email", required=False)
@pass_context
def status(context: Context, email: str | None) -> None:
    """Show recent ingests and digests; with EMAIL, why that subscriber got what they got."""
    from notifier.status import service_status, subscriber_status

    if email is not None:
        _print_subscriber_status(
            context.settings,
            subscriber_status(context.storage, context.settings, email, clock.now()),
        )
        return
    status = service_status(context.storage, context.settings, clock.now())
    click.echo(f"database: {status.database}")
    click.echo(f"papers: {status.papers}, subscribers: {status.subscribers}")
    click.echo("recent ingests:")
    for run in status.ingests:
        when = run.started_at.strftime("%Y-%m-%d %H:%M")
        if run.status == "ok":
            detail = f"{run.papers} papers, {run.new} new, {run.seen} seen before"
        else:
            detail = run.error or run.reason or ""
        click.echo(f"  #{run.id} {when}  {run.status:<6} {run.source}: {detail}")
    for row in status.failing_sources:
        click.echo(
            f"source FAILING: {row['name']}: {row['consecutive_failures']} failures in a row: "
            f"{row['last_error']}"
        )
    if status.job_runs:
        click.echo("last job runs:")
    for job in status.job_runs:
        ended = f"{job.finished_at:%Y-%m-%d %H:%M}" if job.finished_at else "still running"
        click.echo(
            f"  {job.job}: {job.status} at {job.started_at:%Y-%m-%d %H:%M} UTC "
            f"(ended {ended}) on {job.host}: {job.detail}"
        )
    if status.interests_to_embed:
        click.echo(
            f"interests waiting for their embeddings: {status.interests_to_embed} "
            "(matched by their words until then; `notifier embed` computes them now)"
        )
    counts = status.digest_counts
    click.echo(
        "digests: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none yet")
    )
    for outcome in status.latest_digests:
        error = f" (last error: {outcome.last_error})" if outcome.last_error else ""
        click.echo(
            f"  {outcome.email}: {outcome.period} {outcome.status}, {outcome.papers} papers"
            f" - {outcome.reason}{error}"
        )
    if status.post_counts:
        posts = ", ".join(f"{n} {s}" for s, n in sorted(status.post_counts.items()))
        click.echo(f"channel posts: {posts}")
    for channel in status.suspended_channels:
        owner = f"topic {channel.topic}" if channel.topic else f"subscriber {channel.subscriber_id}"
        click.echo(
            f"channel SUSPENDED: {channel.id} {channel.label} ({owner}): "
            f"{channel.last_error}; `notifier channel resume {channel.id}` once fixed"
        )


def _print_subscriber_status(settings: Settings, status: SubscriberReport) -> None:
    """Print one subscriber's schedule, what each interest finds now, and their digests."""
    from notifier.matching import describe_volume

    subscriber = status.subscriber
    click.echo(f"{subscriber.email} [{subscriber.status}]")
    click.echo(f"  {describe_schedule(settings, subscriber, clock.now())}")
    if subscriber.status == "paused":
        click.echo(
            f"  paused: no digests until `notifier subscriber edit {subscriber.email} --resume`"
        )
    elif subscriber.status == "suspended":
        click.echo("  suspended after repeated hard bounces: check the address, then --resume")
    if status.volumes_error is not None:
        click.echo(f"  (cannot say what each interest finds now: {status.volumes_error})")
    for found in status.volumes:
        click.echo(f"  interest {found.interest!r}: {describe_volume(found)}")
    if status.failing_sources:
        click.echo(
            f"  sources failing, so fewer papers than usual: {', '.join(status.failing_sources)}"
        )
    for channel in status.channels:
        posted = (
            f"last posted {channel.last_sent_at:%Y-%m-%d %H:%M} UTC"
            if channel.last_sent_at
            else "nothing posted yet"
        )
        error = f"; last error: {channel.last_error}" if channel.last_error else ""
        click.echo(
            f"  channel {channel.id} {channel.kind} {channel.label!r} [{channel.status}]: "
            f"{posted}{error}"
        )
    if not status.history:
        click.echo("  no digest composed yet: run `notifier digest`")
    for d in status.history:
        error = f" (last error: {d.last_error})" if d.last_error else ""
        click.echo(f"  {d.period}  {d.status:<7} {d.papers:>3} papers  {d.reason}{error}")


@click.command()
@click.option(
    "--max-age",
    default="15m",
    show_default=True,
    help="How recent the last compose (or run-once) must be, e.g. 15m, 2h, 1d.",
)
@pass_context
def health(context: Context, max_age: str) -> None:
    """Exit 0 if the service is alive: the database answers and composing ran recently.

    For container health checks and monitoring: prints one line, and exits 1
    when the last compose (notifier run) or run-once is older than --max-age
    or failed.
    """
    from notifier.health import check_health
    from notifier.settings import parse_duration

    try:
        limit = parse_duration(max_age)
    except ValueError as e:
        raise ConfigError(f"--max-age: {e}") from None
    verdict = check_health(context.storage.last_job_runs(), limit, clock.now())
    job, minutes = verdict.job, int(verdict.age.total_seconds() // 60)
    if job is None:
        fail("unhealthy: no compose has run yet (is `notifier run` or cron running?)")
    if verdict.problem == "failed":
        fail(f"unhealthy: the last {job.job} failed {minutes} min ago: {job.detail}")
    if verdict.problem == "stuck":
        fail(
            f"unhealthy: {job.job} started {minutes} min ago on {job.host} and has not "
            f"finished (more than {max_age}): stuck or killed"
        )
    if verdict.problem == "too old":
        fail(f"unhealthy: the last {job.job} ran {minutes} min ago (more than {max_age})")
    click.echo(f"healthy: the last {job.job} was {job.status} {minutes} min ago")

"""The notifier command line; each command is one call into pipeline or storage."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from notifier import __version__, pipeline, validation
from notifier.app import (
    make_fetcher,
    make_transports,
    make_web_server,
    open_storage,
    schema_revisions,
    upgrade_schema,
    web_server_notes,
)
from notifier.demo import DemoDay, play_demo
from notifier.errors import (
    ConfigError,
    NotifierError,
    QueryError,
)
from notifier.eval_run import run_eval
from notifier.evaluate import Metrics
from notifier.health import check_health
from notifier.ingest import KINDS
from notifier.ingest.fetch import Fetcher
from notifier.matching import describe_volume
from notifier.models import IngestSummary, Interest, Subscriber
from notifier.pipeline.compose import digest_json
from notifier.pipeline.cycle import Cycle
from notifier.pipeline.ingest import IngestResult, ingest_jobs, run_ingest_jobs, summary_json
from notifier.pipeline.send import report_json
from notifier.pipeline.senders import (
    Sender,
    preview_from_settings,
    send_from_settings,
    send_in_processes,
)
from notifier.schedule import CADENCES, next_due
from notifier.settings import Settings, load_settings, parse_duration
from notifier.sources import source_report
from notifier.status import SubscriberStatus, service_status, subscriber_status
from notifier.storage import Storage
from notifier.subscribers import SubscriberChanges, save_subscriber, subscriber_json, with_feeds


def utc_now() -> datetime:
    """Return the current time, aware and in UTC."""
    return datetime.now(UTC)


@dataclass
class Context:
    """Settings and storage, built on first use and shared by a command."""

    config_file: Path | None
    _settings: Settings | None = None
    _storage: Storage | None = field(default=None, repr=False)
    _fetcher: Fetcher | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """Return the validated settings."""
        if self._settings is None:
            self._settings = load_settings(self.config_file)
        return self._settings

    @property
    def storage(self) -> Storage:
        """Return the opened, migrated storage."""
        if self._storage is None:
            self._storage = open_storage(self.settings)
        return self._storage

    @property
    def fetcher(self) -> Fetcher:
        """Return the HTTP fetcher (one per command, so host pacing is shared)."""
        if self._fetcher is None:
            self._fetcher = make_fetcher(self.settings)
        return self._fetcher

    def close(self) -> None:
        """Release the database and HTTP connections."""
        if self._storage is not None:
            self._storage.close()
        if self._fetcher is not None:
            self._fetcher.close()


class NotifierGroup(click.Group):
    """A group that turns every error into one line and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, reporting errors as a single line on stderr."""
        try:
            return super().invoke(ctx)
        except NotifierError as e:
            fail(str(e))
        except KeyboardInterrupt:
            fail("interrupted", code=130)
        except BrokenPipeError:
            # The reader (e.g. `| head`) has gone: stop quietly, as Unix tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:
            if os.environ.get("NOTIFIER_DEBUG"):
                raise
            fail(f"unexpected {type(e).__name__}: {e} (set NOTIFIER_DEBUG=1 to see the traceback)")
        finally:
            if isinstance(ctx.obj, Context):
                ctx.obj.close()


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line and exit."""
    click.echo(f"notifier: error: {message}", err=True)
    sys.exit(code)


@click.group(cls=NotifierGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Config file (default: $NOTIFIER_CONFIG, else ./notifier.toml if present).",
)
@click.version_option(__version__, prog_name="notifier")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None) -> None:
    """Tell researchers about new papers they care about.

    Ingest listings of trending papers, find what is new, and deliver it to each
    subscriber as an email digest grouped by interest, and as RSS/Atom feeds.
    """
    ctx.obj = Context(config_file)


pass_context = click.make_pass_decorator(Context)


@cli.command()
@pass_context
def init(context: Context) -> None:
    """Create the state directory and the database, or upgrade its schema."""
    storage = context.storage  # opening applies any pending migration
    click.echo(
        f"database ready: {storage.safe_url()} (schema revision {storage.schema_revision()})"
    )
    click.echo(f"state directory: {context.settings.state_dir.resolve()}")


@cli.command()
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
    jobs = ingest_jobs(
        context.storage,
        context.settings,
        lambda: context.fetcher,
        locations,
        utc_now(),
        kind=kind,
        every_source=every_source,
    )
    if not locations and not jobs:
        click.echo("no source is due yet (see `notifier sources`; --all polls them now)")
    results: list[IngestResult] = []
    with _progress(len(jobs), "ingesting", enabled=not as_json) as advance:
        for result in run_ingest_jobs(jobs, utc_now):
            results.append(result)
            advance()
            if as_json:  # streamed: a consumer may read each listing as it lands
                click.echo(json.dumps(_result_json(result)))
    # Human lines come after the progress bar, so the two do not collide.
    for result in [] if as_json else results:
        if result.summary is None:
            click.echo(f"notifier: error: {result.error}", err=True)
        else:
            click.echo(_summary_line(result.summary))
    if any(r.summary is None for r in results):
        sys.exit(1)


def _result_json(result: IngestResult) -> dict[str, Any]:
    """Return what `ingest --json` prints for one listing: its summary, or its error."""
    if result.summary is None:
        return {"source": result.name, "error": result.error}
    return summary_json(result.summary)


def _summary_line(summary: IngestSummary) -> str:
    """Return one human line for an ingest summary."""
    if summary.status == "unchanged":
        return f"{summary.source}: not modified since the last fetch"
    if summary.status == "empty":
        return f"{summary.source}: empty: {summary.reason or ''}"
    extras = [
        f"{n} {k}" for k, n in (("updated", summary.updated), ("skipped", summary.skipped)) if n
    ]
    return (
        f"{summary.source}: {summary.papers} papers, {summary.new} new, "
        f"{summary.seen} seen before" + "".join(f", {e}" for e in extras)
    )


def _named(raw: str, what: str) -> tuple[str, str]:
    """Split a NAME=VALUE option into its name and value."""
    name, sep, value = raw.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise QueryError(
            raw, f"{what} is written NAME={what.upper()}, e.g. robots='robot OR robotic'"
        )
    return name, value.strip()


def subscriber_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options subscribe and subscriber edit share: name, cap, interests and clock."""
    options = [
        click.argument("email"),
        click.option("--name", help="How to greet the subscriber."),
        click.option(
            "--interest",
            "queries",
            multiple=True,
            metavar="NAME=QUERY",
            help="A named interest's query, e.g. --interest "
            "'rl=\"reinforcement learning\" OR RL -survey'. Every paper it matches "
            "is delivered; words fold (model finds models), =word asks for that form. "
            "Repeat for several; an existing name is updated.",
        ),
        click.option(
            "--about",
            "abouts",
            multiple=True,
            metavar="NAME=TEXT",
            help="What the interest is about, in plain words; papers can match it by meaning.",
        ),
        click.option(
            "--sensitivity",
            "sensitivities",
            multiple=True,
            metavar="NAME=LEVEL",
            help="How much a description delivers: strict (about half of normal), "
            "normal, or broad (about twice normal). A query always delivers all it matches.",
        ),
        click.option(
            "--max-papers",
            type=click.IntRange(1, validation.MAX_PAPERS),
            help="Cap on papers per digest.",
        ),
        # The subscriber's own clock; "default" puts one back to the config's.
        click.option(
            "--cadence",
            type=click.Choice([*CADENCES, "default"]),
            help="daily, weekdays (Monday to Friday) or weekly.",
        ),
        click.option("--send-time", metavar="HH:MM", help="Local time the digest goes out."),
        click.option("--timezone", metavar="ZONE", help="IANA time zone, e.g. Europe/Berlin."),
        click.option("--weekday", metavar="DAY", help="Weekly digests: the day, e.g. monday."),
        click.option(
            "--empty-note/--no-empty-note",
            default=None,
            help="Send a short note when nothing new matched (default: send nothing).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _changes(options: Mapping[str, Any], status: str | None) -> SubscriberChanges:
    """Return the subscriber changes the subscriber_options ask for."""
    given = {k: options[k] for k in ("cadence", "send_time", "timezone", "weekday")}
    return SubscriberChanges(
        name=options["name"],
        queries=[_named(raw, "query") for raw in options["queries"]],
        abouts=[_named(raw, "about") for raw in options["abouts"]],
        sensitivities=[_named(raw, "sensitivity") for raw in options["sensitivities"]],
        max_papers=options["max_papers"],
        # "default" puts a column back to the configuration's.
        schedule={k: None if v == "default" else v for k, v in given.items() if v is not None},
        empty_note=options["empty_note"],
        status=status,
    )


def _describe_schedule(settings: Settings, subscriber: Subscriber, now: datetime) -> str:
    """Return when the subscriber's digests go out, and when the next one is due."""
    if subscriber.status != "active":
        return f"schedule: none while {subscriber.status}"
    try:
        cadence, due = next_due(settings.default_cadence, subscriber, now)
    except ValueError as e:
        return f"schedule: invalid: {e}"
    note = ", a short note when nothing is new" if subscriber.empty_note else ""
    return f"schedule: {cadence.describe()}{note}; next digest {due:%Y-%m-%d %H:%M %Z}"


@cli.command()
@subscriber_options
@pass_context
def subscribe(context: Context, /, email: str, **options: Any) -> None:
    """Add a subscriber, or update the name, cap and interests of an existing one.

    An interest has a query, a description (--about), or both. A query holds
    words and "quoted phrases" that must all appear, AND, OR, parentheses,
    -word or NOT word to exclude, title:/abstract:/author: to restrict a term,
    and prefix* wildcards; it is a hard filter. A description lets papers match
    by meaning. Each match in a digest says why it was picked.

    Digests follow the subscriber's own clock: --cadence, --send-time,
    --timezone and --weekday (each defaults to the configuration's).
    """
    _save_subscriber(context, email, options, status=None)


def _save_subscriber(
    context: Context,
    email: str,
    options: dict[str, Any],
    status: str | None,
    must_exist: bool = False,
) -> None:
    """Create or update a subscriber from the subscriber_options and print the result."""
    now = utc_now()
    subscriber, created = save_subscriber(
        context.storage, email, _changes(options, status), now, must_exist=must_exist
    )
    verb = "subscribed" if created else "updated"
    click.echo(f"{verb} {subscriber.email} with {len(subscriber.interests)} interest(s):")
    for interest in subscriber.interests:
        click.echo(f"  {_describe_interest(interest)}")
    click.echo(f"  {_describe_schedule(context.settings, subscriber, now)}")


@cli.group()
def subscriber() -> None:
    """Change one subscriber: interests, cadence, send time, time zone, pause and resume."""


@subscriber.command("edit")
@subscriber_options
@click.option("--pause", "status", flag_value="paused", help="Stop digests until --resume.")
@click.option("--resume", "status", flag_value="active", help="Start digests again.")
@pass_context
def subscriber_edit(context: Context, /, email: str, status: str | None, **options: Any) -> None:
    """Edit an existing subscriber; only the options given change.

    --pause stops their digests (nothing is composed for them, so nothing piles
    up); --resume starts again with the next due digest. A suspended subscriber
    (repeated hard bounces) is resumed the same way once the address works.
    """
    _save_subscriber(context, email, options, status, must_exist=True)


def _describe_interest(interest: Interest) -> str:
    """Return one line describing an interest."""
    parts = [f"{interest.name}:"]
    if interest.query:
        parts.append(f"query {interest.query}")
    if interest.about:
        parts.append(f"about “{interest.about}”")
    if interest.sensitivity != "normal":
        parts.append(f"({interest.sensitivity})")
    return " ".join(parts)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per subscriber.")
@pass_context
def subscribers(context: Context, as_json: bool) -> None:
    """List subscribers with their interests."""
    for s, feed in with_feeds(context.settings, context.storage):
        if as_json:
            click.echo(json.dumps(subscriber_json(s, feed)))
            continue
        click.echo(f"{s.email}" + (f" ({s.name})" if s.name else "") + f" [{s.status}]")
        for i in s.interests:
            click.echo(f"  {_describe_interest(i)}")


@cli.command()
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
    settings, storage = context.settings, context.storage
    now = utc_now()
    if dry_run:
        composed, written = preview_from_settings(settings, storage, now)
        _print_composed(composed, as_json)
        click.echo(
            f"dry run: wrote {written} preview(s) to {settings.outbox_dir}/; nothing recorded",
            err=as_json,
        )
        return
    sender = send_from_settings(settings, storage, utc_now)
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
    _print_report(_send_here(sender, progress=True), as_json)


@cli.command()
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
    make_transports(context.settings)
    if workers == 1:
        sender = send_from_settings(context.settings, context.storage, utc_now)
        report = _send_here(sender, progress=not as_json)
    else:
        report = send_in_processes(context.config_file, workers)
    _print_report(report, as_json)


def _send_here(sender: Sender, progress: bool) -> pipeline.SendReport:
    """Deliver due digests from this process, stopping cleanly on SIGTERM / SIGINT."""
    with _progress(sender.backlog(), "sending", enabled=progress) as advance:
        return sender.send_until_signalled(on_progress=lambda _n: advance())


def _print_report(report: pipeline.SendReport, as_json: bool) -> None:
    """Print what a send run did, and exit non-zero when a digest was not delivered."""
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
        click.echo(pipeline.describe_report(report))
    if report.failed or report.deferred or report.unknown or report.unconfirmed:
        sys.exit(1)


def _print_composed(composed: Iterable[pipeline.ComposedDigest], as_json: bool) -> None:
    """Print what composing did, per subscriber."""
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


@cli.command()
@pass_context
def feeds(context: Context) -> None:
    """Write the RSS and Atom feeds: all papers, each topic, each subscriber."""
    settings = context.settings
    written = pipeline.build_feeds(context.storage, settings, utc_now())
    click.echo(f"wrote {len(written)} feed files to {settings.feeds_dir}/")


@cli.command()
@click.argument("email", required=False)
@pass_context
def status(context: Context, email: str | None) -> None:
    """Show recent ingests and digests; with EMAIL, why that subscriber got what they got."""
    if email is not None:
        _print_subscriber_status(
            context.settings, subscriber_status(context.storage, context.settings, email, utc_now())
        )
        return
    status = service_status(context.storage, context.settings, utc_now())
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


def _print_subscriber_status(settings: Settings, status: SubscriberStatus) -> None:
    """Print one subscriber's schedule, what each interest finds now, and their digests."""
    subscriber = status.subscriber
    click.echo(f"{subscriber.email} [{subscriber.status}]")
    click.echo(f"  {_describe_schedule(settings, subscriber, utc_now())}")
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
    if not status.history:
        click.echo("  no digest composed yet: run `notifier digest`")
    for d in status.history:
        error = f" (last error: {d.last_error})" if d.last_error else ""
        click.echo(f"  {d.period}  {d.status:<7} {d.papers:>3} papers  {d.reason}{error}")


@cli.command("run")
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
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s notifier[%(process)d] %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        stream=sys.stderr,
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Imported here: APScheduler is for the daemon alone, not every command.
    from notifier.scheduler import run_daemon

    run_daemon(context.settings, context.storage, context.fetcher, utc_now)


@cli.command("run-once")
@pass_context
def run_once(context: Context) -> None:
    """Run one full cycle and exit: ingest due sources, compose due digests, send, write feeds.

    Meant for cron and systemd timers. Safe to run twice at the same time or
    back to back: digests are unique per subscriber and period, and sending
    workers lease them. Exits 1 with one line per problem when a source failed,
    the mail server was unreachable, or a digest failed for good.
    """
    settings, storage = context.settings, context.storage
    if settings.smtp_url is None:
        make_transports(settings)  # the one-line error about the missing configuration
    errors = Cycle(settings, storage, context.fetcher, utc_now).run_once(_CycleOutput(settings))
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
        click.echo(_summary_line(summary))

    def composed(self, outcomes: Mapping[str, int]) -> None:
        """Print how many digests of each outcome composing had."""
        click.echo(f"composed: {pipeline.describe_outcomes(outcomes)}")

    def sent(self, report: pipeline.SendReport) -> None:
        """Print the send totals, and a warning per digest that will be retried."""
        click.echo(pipeline.describe_report(report))
        for email, error in report.deferred + report.unknown:
            click.echo(f"notifier: warning: {email}: will retry: {error}", err=True)

    def wrote_feeds(self, written: Sequence[Path]) -> None:
        """Print how many feed files were written."""
        click.echo(f"wrote {len(written)} feed files to {self.settings.feeds_dir}/")


@cli.command()
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
    try:
        limit = parse_duration(max_age)
    except ValueError as e:
        raise ConfigError(f"--max-age: {e}") from None
    verdict = check_health(context.storage.last_job_runs(), limit, utc_now())
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


@cli.command()
@click.option("--host", help="Address to listen on (default: the web_host setting, 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default: the web_port setting, 8000).")
@pass_context
def serve(context: Context, host: str | None, port: int | None) -> None:
    """Serve the web side: sign-up, preferences, one-click unsubscribe, feeds, admin API.

    Pages: / (subscribe), /confirm, /manage and /unsubscribe links from emails,
    /feeds/*.rss|.atom, /healthz, /metrics, and the admin JSON API under
    /api/v1 (bearer admin_token; spec at /api/v1/openapi.json). Put it behind
    a TLS-terminating proxy at base_url; it runs beside notifier run, not
    instead of it.
    """
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


@cli.group()
def db() -> None:
    """The database schema (Alembic migrations)."""


@db.command("upgrade")
@pass_context
def db_upgrade(context: Context) -> None:
    """Apply pending migrations (other commands do this too; run it first when deploying)."""
    before, after = upgrade_schema(context.settings)
    if before == after:
        click.echo(f"database schema is current (revision {after})")
    else:
        click.echo(f"database schema upgraded from revision {before or 'none'} to {after}")


@db.command("current")
@pass_context
def db_current(context: Context) -> None:
    """Print the schema revision and the newest this version knows; exit 1 if behind."""
    current, head = schema_revisions(context.settings)
    state = "current" if current == head else "behind: run `notifier db upgrade`"
    click.echo(f"revision {current or 'none'} (newest {head}): {state}")
    if current != head:
        sys.exit(1)  # scripts (deploy checks) can test it


@cli.command("eval")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=Path("tests/data/eval"),
    show_default=True,
    help="Directory with interests.toml and judgments/*.tsv.",
)
@click.option("--tune", is_flag=True, help="Search weights and thresholds and print the best.")
@pass_context
def evaluate_matching(context: Context, data_dir: Path, tune: bool) -> None:
    """Measure matching on judged papers: precision, recall, F1, nDCG@10 per interest.

    Two tracks: each interest's description alone (as --about), and its query
    alone. The lexical, semantic and hybrid scorers are shown side by side at
    their default settings (or, with --tune, at the settings found best), then
    the macro figures with each interest's cut chosen on the other interests.
    """
    report = run_eval(data_dir, tune=tune, cache_dir=context.settings.cache_dir)
    for track, by_mode in report.results.items():
        modes = list(by_mode)
        click.echo(f"\n{track} alone ({len(by_mode[modes[0]])} interests)")
        click.echo(f"{'interest':<20}" + "".join(f" | {m:^33}" for m in modes))
        columns = " | {:>6} {:>6} {:>6} {:>7} {:>3}".format("P", "R", "F1", "nDCG10", "n")
        click.echo(f"{'':<20}" + columns * len(modes))
        for name, cells in report.table(track).items():
            click.echo(f"{name:<20}" + "".join(_metric_cells(m) for m in cells))
    if report.held_out:
        click.echo(
            "\nheld out: each interest's cut chosen on the other interests (macro mean); "
            "n: papers delivered"
        )
    for mode, tuning in report.tunings.items():
        p = tuning.params
        tuned, held = report.tuned_means(mode)
        click.echo(
            f"tuned {mode}: macro F1 {tuned.f1:.3f} nDCG@10 {tuned.ndcg10:.3f}; "
            f"held out F1 {held.f1:.3f} nDCG@10 {held.ndcg10:.3f}; "
            f"semantic_weight={p.semantic_weight} description_scale={p.description_scale} "
            f"semantic_margin={p.semantic_margin} facet_weight={p.facet_weight} "
            f"thresholds={dict(p.thresholds[mode])}"
        )


def _metric_cells(m: Metrics) -> str:
    """Return one scorer's figures as table cells."""
    return f" | {m.precision:6.3f} {m.recall:6.3f} {m.f1:6.3f} {m.ndcg10:7.3f} {m.retrieved:>3}"


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per source.")
@pass_context
def sources(context: Context, as_json: bool) -> None:
    """List listing sources with their health: last check, status, failures in a row.

    Configured [[sources]] and URLs ingested ad hoc are both shown; a source
    failing failure_alert_after times in a row is flagged FAILING.
    """
    settings, storage = context.settings, context.storage
    for row in source_report(settings, storage.sources_health(), utc_now()):
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


@cli.command()
@click.argument("run", type=int)
@pass_context
def replay(context: Context, run: int) -> None:
    """Re-run the parse and diff of ingest run RUN from its kept raw bytes.

    Useful after a parser fix: a listing that failed can be replayed without
    fetching it again. The replay is a new run that refers to RUN.
    """
    summary = pipeline.replay(context.storage, run, utc_now())
    click.echo(f"replayed #{run} as #{summary.run_id}: " + _summary_line(summary))


@cli.command()
@click.option(
    "--reset", is_flag=True, help="Delete existing state first (database, outbox, feeds)."
)
@pass_context
def demo(context: Context, reset: bool) -> None:
    """Replay the bundled snapshots as five days with three example subscribers.

    Digests go to state/outbox/ as .eml files (no mail server needed) and feeds
    to state/feeds/.
    """
    settings = context.settings
    report = play_demo(context.storage, settings, utc_now(), _DemoOutput(), reset=reset)
    click.echo(
        f"\n{report.sent} digests written to {settings.outbox_dir}/ and {len(report.feeds)} "
        f"feed files to {settings.feeds_dir}/"
    )
    click.echo(
        f"look at: {settings.outbox_dir}/*.eml, {settings.feeds_dir}/all.atom, `notifier status`"
    )


class _DemoOutput:
    """Print how the demo goes, as it goes."""

    def preparing(self) -> None:
        """Print that the wait for the matching model begins."""
        click.echo("preparing the matching model (the first time on a machine takes longest)...")

    def day_done(self, day: DemoDay) -> None:
        """Print one day: its listing and how many papers each subscriber's digest got."""
        period, summary, composed = day
        got = ", ".join(
            f"{c.subscriber.email.split('@')[0]} {len(c.content.papers) if c.content else 0}"
            for c in composed
        )
        click.echo(
            f"{period}: {summary.source}: {summary.papers} papers, {summary.new} new, "
            f"{summary.seen} seen before; digest papers: {got}"
        )


@contextmanager
def _progress(total: int, label: str, enabled: bool) -> Iterator[Callable[[], None]]:
    """Yield a step function for a stderr progress bar, shown only on a terminal."""
    if not enabled or total < 2 or not sys.stderr.isatty():
        yield lambda: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield lambda: bar.update(1)


def main() -> None:
    """Run the command line."""
    cli(prog_name="notifier")

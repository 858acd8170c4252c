"""Subscribers: subscribe, subscriber edit (and pause, resume), imports, and the list of them."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from notifier import clock, validation
from notifier.cli.base import Context, fail, pass_context
from notifier.cli.describe import describe_interest, describe_schedule
from notifier.errors import InvalidInput, LibraryError, QueryError, SubscriberError
from notifier.schedule import CADENCES

if TYPE_CHECKING:
    from notifier.subscribers import SubscriberChanges


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


def _named(raw: str, what: str) -> tuple[str, str]:
    """Split a NAME=VALUE option into its name and value."""
    name, sep, value = raw.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise QueryError(
            raw, f"{what} is written NAME={what.upper()}, e.g. robots='robot OR robotic'"
        )
    return name, value.strip()


def _changes(options: Mapping[str, Any], status: str | None) -> SubscriberChanges:
    """Return the subscriber changes the subscriber_options ask for."""
    from notifier.subscribers import SubscriberChanges

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


def _save_subscriber(
    context: Context,
    email: str,
    options: dict[str, Any],
    status: str | None,
    must_exist: bool = False,
) -> None:
    """Create or update a subscriber from the subscriber_options and print the result."""
    from notifier.matching import matching_for
    from notifier.subscribers import save_subscriber

    now = clock.now()
    subscriber, created = save_subscriber(
        context.storage,
        email,
        _changes(options, status),
        now,
        must_exist=must_exist,
        matching=matching_for(context.settings),
    )
    verb = "subscribed" if created else "updated"
    click.echo(f"{verb} {subscriber.email} with {len(subscriber.interests)} interest(s):")
    for interest in subscriber.interests:
        click.echo(f"  {describe_interest(interest)}")
    click.echo(f"  {describe_schedule(context.settings, subscriber, now)}")


@click.command()
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


@click.group()
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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per subscriber.")
@pass_context
def subscribers(context: Context, as_json: bool) -> None:
    """List subscribers with their interests."""
    from notifier.subscribers import subscriber_json, with_feeds

    for s, feed in with_feeds(context.settings, context.storage):
        if as_json:
            click.echo(json.dumps(subscriber_json(s, feed)))
            continue
        click.echo(f"{s.email}" + (f" ({s.name})" if s.name else "") + f" [{s.status}]")
        for i in s.interests:
            click.echo(f"  {describe_interest(i)}")


@subscriber.command("import")
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@pass_context
def subscriber_import(context: Context, /, path: str) -> None:
    """Add the subscribers listed in a JSON Lines file (- for standard input), all or none.

    One object per line: {"email": ..., "name": ..., "interests": [{"name": ...,
    "query": ..., "about": ..., "sensitivity": ...}]}, checked by the same rules
    as `notifier subscribe`. Addresses already subscribed are left as they are.
    Their interests' embeddings are computed afterwards, by `notifier embed` or
    in the background by `notifier run`; until then they match by their words.
    """
    from notifier.matching import matching_for
    from notifier.subscribers import import_subscribers

    try:
        with click.open_file(path, encoding="utf-8") as handle:
            created, present = import_subscribers(context.storage, handle, clock.now())
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror or e}")
    except UnicodeDecodeError:
        fail(f"{path} is not UTF-8 text; nothing was imported")
    except InvalidInput as e:
        fail(f"{path}: {e}; nothing was imported")
    click.echo(
        f"imported {created} subscriber(s)"
        + (f"; {present} already subscribed, left as they were" if present else "")
    )
    embedder = matching_for(context.settings).embedder
    if embedder is not None:
        waiting = context.storage.count_interests_to_embed(embedder.model_id)
        if waiting:
            click.echo(
                f"{waiting} interest(s) wait for their embeddings: `notifier embed` computes "
                "them now, `notifier run` in the background"
            )


@subscriber.command("import-library")
@click.argument("email")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=str))
@click.option(
    "--interest",
    "interest",
    required=True,
    metavar="NAME",
    help="The interest the papers teach (one of the subscriber's).",
)
@pass_context
def subscriber_import_library(context: Context, /, email: str, path: str, interest: str) -> None:
    """Teach a subscriber's interest by the papers of a reference library, all or none.

    PATH is an export of Zotero, Mendeley, EndNote and the like: BibTeX (.bib),
    RIS (.ris) or CSL-JSON (.json). Each paper's title and abstract become a
    "more like this" example of the interest, as rating a paper in a digest
    does; papers the interest already holds are skipped, so importing again is
    safe. Its next digest decides with what they teach.
    """
    from notifier.subscribers import import_library

    file_name = Path(path).name
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror or e}")
    try:
        added, present = import_library(
            context.storage, email, data, file_name, interest, clock.now()
        )
    except (LibraryError, SubscriberError) as e:
        fail(str(e))
    papers = "paper" if added == 1 else "papers"
    click.echo(
        f"imported {added} {papers} from {file_name} into {email}'s interest {interest!r}"
        + (f" ({present} already there)" if present else "")
        + ("; they teach its next digest" if added else "")
    )


@click.command()
@pass_context
def embed(context: Context) -> None:
    """Compute the embeddings of every interest that has none (after an import), with progress.

    Each batch is stored as it is done: stopping loses nothing, and composing
    meanwhile uses what is ready.
    """
    from notifier.matching import embed_pending, matching_for

    matching = matching_for(context.settings)
    if matching.embedder is None:
        click.echo("lexical matching uses no embeddings: nothing to do")
        return

    def progress(done: int, total: int) -> None:
        click.echo(f"embedded {done} of {total} interests", err=True)

    done = embed_pending(context.storage, matching, progress=progress)
    click.echo(f"{done} interest(s) embedded" if done else "every interest has its embeddings")

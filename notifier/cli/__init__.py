"""The notifier command line: the group, and one module per command group.

Each command parses its options, makes one call into the library (pipeline,
storage, matching, ...), and prints; base.py holds what they share. Commands
import the library inside their bodies, so `notifier --help` and a usage
error load only what the options name, not the database, pipeline or web
stacks.
"""

from __future__ import annotations

from pathlib import Path

import click

from notifier import __version__
from notifier.cli import (
    channels,
    db,
    demo,
    digests,
    evaluation,
    service,
    sources,
    status,
    subscribers,
)
from notifier.cli.base import Context, NotifierGroup


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


for command in (
    channels.channel,
    db.init,
    db.db,
    demo.demo,
    digests.digest,
    digests.send,
    digests.feeds,
    evaluation.evaluate_matching,
    service.run_service,
    service.run_once,
    service.serve,
    sources.ingest,
    sources.sources,
    sources.replay,
    status.status,
    status.health,
    subscribers.subscribe,
    subscribers.subscriber,
    subscribers.subscribers,
    subscribers.embed,
):
    cli.add_command(command)


def main() -> None:
    """Run the command line."""
    cli(prog_name="notifier")

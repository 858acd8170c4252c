"""The demo: five days of bundled listings, three example subscribers, digests to the outbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from notifier import clock
from notifier.cli.base import Context, pass_context

if TYPE_CHECKING:
    from notifier.demo import DemoDay


@click.command()
@click.option(
    "--reset", is_flag=True, help="Delete existing state first (database, outbox, feeds)."
)
@pass_context
def demo(context: Context, reset: bool) -> None:
    """Replay the bundled snapshots as five days with three example subscribers.

    Digests go to state/outbox/ as .eml files (no mail server needed) and feeds
    to state/feeds/.
    """
    from notifier.demo import play_demo

    settings = context.settings
    report = play_demo(context.storage, settings, clock.now(), _DemoOutput(), reset=reset)
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

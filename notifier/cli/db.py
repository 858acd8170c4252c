"""The database: init, and the schema's migrations (db upgrade, db current)."""

from __future__ import annotations

import sys

import click

from notifier.cli.base import Context, pass_context


@click.command()
@pass_context
def init(context: Context) -> None:
    """Create the state directory and the database, or upgrade its schema."""
    storage = context.storage  # opening applies any pending migration
    click.echo(
        f"database ready: {storage.safe_url()} (schema revision {storage.schema_revision()})"
    )
    click.echo(f"state directory: {context.settings.state_dir.resolve()}")


@click.group()
def db() -> None:
    """The database schema (Alembic migrations)."""


@db.command("upgrade")
@pass_context
def db_upgrade(context: Context) -> None:
    """Apply pending migrations (other commands do this too; run it first when deploying)."""
    from notifier.app import upgrade_schema

    before, after = upgrade_schema(context.settings)
    if before == after:
        click.echo(f"database schema is current (revision {after})")
    else:
        click.echo(f"database schema upgraded from revision {before or 'none'} to {after}")


@db.command("current")
@pass_context
def db_current(context: Context) -> None:
    """Print the schema revision and the newest this version knows; exit 1 if behind."""
    from notifier.app import schema_revisions

    current, head = schema_revisions(context.settings)
    state = "current" if current == head else "behind: run `notifier db upgrade`"
    click.echo(f"revision {current or 'none'} (newest {head}): {state}")
    if current != head:
        sys.exit(1)  # scripts (deploy checks) can test it

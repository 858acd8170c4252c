"""Channels: post digests to Slack, Discord, Matrix or a signed webhook besides email."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from notifier import clock
from notifier.cli.base import Context, fail, pass_context
from notifier.errors import SubscriberError

if TYPE_CHECKING:
    from notifier.models import Channel

# models.ChannelKind's values, written out: importing models (and what it imports)
# for `notifier --help` would slow every command's start.
KINDS = ("slack", "discord", "matrix", "webhook")


@click.group()
def channel() -> None:
    """Add, list, test and remove the channels digests are posted to besides email.

    A subscriber's channel gets each of their digests; a topic's channel gets
    the topic's digest of new papers on the default schedule. URLs and tokens
    are secrets: they are shown masked.
    """


@channel.command("add")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("url")
@click.option("--email", help="The subscriber whose digests are posted.")
@click.option("--topic", help="The configured topic (its slug) whose digests are posted.")
@click.option("--label", help="A name for the channel (default: the kind and the host).")
@click.option("--room", help="Matrix: the room's id, like !abcdef:example.org.")
@click.option(
    "--token",
    help="Matrix: an access token of a user in the room. Webhook: the signing key "
    "(default: a new random one, printed once). Also read from $NOTIFIER_CHANNEL_TOKEN.",
    envvar="NOTIFIER_CHANNEL_TOKEN",
)
@pass_context
def add(  # noqa: PLR0917
    context: Context,
    kind: str,
    url: str,
    email: str | None,
    topic: str | None,
    label: str | None,
    room: str | None,
    token: str | None,
) -> None:
    """Add a channel: KIND is slack, discord, matrix or webhook; URL its webhook URL
    (Matrix: the homeserver's address)."""
    from notifier.channel_setup import add_channel

    subscriber_id = _owner(context, email, topic)
    try:
        added = add_channel(
            context.storage,
            context.settings,
            kind,
            url,
            now=clock.now(),
            label=label,
            room=room,
            token=token,
            subscriber_id=subscriber_id,
            topic=topic,
        )
    except ValueError as e:  # InvalidInput is one too
        fail(f"channel not added: {e}")
    click.echo(f"added channel {added.channel.id}: {_describe(added.channel)}")
    if added.signing_key is not None:
        click.echo(
            f"signing key (shown once; keep it for checking signatures): {added.signing_key}"
        )


@channel.command("list")
@click.option("--email", help="Only this subscriber's channels.")
@click.option("--topic", help="Only this topic's channels.")
@click.option("--json", "as_json", is_flag=True, help="Print the channels as JSON.")
@pass_context
def list_channels(context: Context, email: str | None, topic: str | None, as_json: bool) -> None:
    """List channels (every topic's, or one subscriber's or topic's), URLs masked."""
    storage = context.storage
    if email is not None:
        found = storage.channels_of(subscriber_id=_owner(context, email, None))
    else:
        found = storage.channels_of(topic=topic)
    if as_json:
        click.echo(json.dumps([_json(c) for c in found], indent=2))
        return
    if not found:
        click.echo("no channels")
    for item in found:
        click.echo(f"{item.id}: {_describe(item)}")


@channel.command("test")
@click.argument("channel_id", type=int)
@pass_context
def test(context: Context, channel_id: int) -> None:
    """Post a one-line test message to a channel and say what the service answered."""
    import asyncio

    from notifier.channel_setup import test_channel

    found = _channel(context, channel_id)
    posted, answer = asyncio.run(test_channel(found, context.settings, clock.now()))
    if not posted:
        fail(f"channel {channel_id}: test message not posted: {answer}")
    click.echo(f"channel {channel_id}: test message posted: {answer}")


@channel.command("remove")
@click.argument("channel_id", type=int)
@pass_context
def remove(context: Context, channel_id: int) -> None:
    """Remove a channel: nothing more is posted to it."""
    if not context.storage.remove_channel(channel_id):
        fail(f"no channel {channel_id}: `notifier channel list` shows them")
    click.echo(f"removed channel {channel_id}")


@channel.command("resume")
@click.argument("channel_id", type=int)
@pass_context
def resume(context: Context, channel_id: int) -> None:
    """Post to a suspended channel again (after its webhook or token was fixed)."""
    if not context.storage.resume_channel(channel_id):
        fail(f"no channel {channel_id}: `notifier channel list` shows them")
    click.echo(f"channel {channel_id} is active again")


def _owner(context: Context, email: str | None, topic: str | None) -> int | None:
    """Return the subscriber id that --email names, after checking --email or --topic."""
    if (email is None) == (topic is None):
        fail("name the channel's owner: --email ADDRESS or --topic SLUG", code=2)
    if topic is not None:
        if topic not in {t.slug for t in context.settings.topics}:
            slugs = ", ".join(t.slug for t in context.settings.topics) or "none configured"
            fail(f"no topic {topic!r} in the config (topics: {slugs})")
        return None
    assert email is not None
    try:
        return context.storage.subscriber_by_email(email).id
    except SubscriberError as e:
        fail(str(e))


def _channel(context: Context, channel_id: int) -> Channel:
    """Return a channel by id, or exit saying how to find one."""
    found = context.storage.channel(channel_id)
    if found is None:
        fail(f"no channel {channel_id}: `notifier channel list` shows them")
    return found


def _describe(item: Channel) -> str:
    """Return a channel in one line: owner, kind, label, masked URL, state."""
    owner = f"topic {item.topic}" if item.topic else f"subscriber {item.subscriber_id}"
    state = str(item.status)
    if item.last_error:
        state += f" (last error: {item.last_error})"
    room = f" room {item.room}" if item.room else ""
    return f"{owner}: {item.kind} {item.label!r} {item.shown_url}{room}: {state}"


def _json(item: Channel) -> dict[str, object]:
    """Return a channel as JSON-ready data, its secrets masked."""
    return {
        "id": item.id,
        "kind": str(item.kind),
        "label": item.label,
        "url": item.shown_url,
        "room": item.room,
        "subscriber_id": item.subscriber_id,
        "topic": item.topic,
        "status": str(item.status),
        "failures": item.failures,
        "last_error": item.last_error,
        "last_sent_at": item.last_sent_at.isoformat() if item.last_sent_at else None,
    }

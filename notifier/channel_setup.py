"""Adding and testing a channel, for every surface: the CLI, the admin API, the page.

Each surface words its own answer; what a valid channel is, and what a test
message is, is decided here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from notifier import validation
from notifier.delivery.webhooks import post_test
from notifier.errors import DeliveryError
from notifier.models import Channel, ChannelKind
from notifier.settings import Settings
from notifier.storage.protocols import ChannelSetupStore


@dataclass(frozen=True)
class AddedChannel:
    """A channel just stored, and the signing key notifier made for it (shown once)."""

    channel: Channel
    signing_key: str | None = field(default=None, repr=False)


def add_channel(
    storage: ChannelSetupStore,
    settings: Settings,
    kind: str,
    url: str,
    *,
    now: datetime,
    label: str | None = None,
    room: str | None = None,
    token: str | None = None,
    subscriber_id: int | None = None,
    topic: str | None = None,
) -> AddedChannel:
    """Check and store a subscriber's or a topic's channel.

    Raises InvalidInput naming what to fix, or ValueError when the owner has
    as many channels as it may (or the subscriber is gone).
    """
    spec = validation.channel(
        kind, url, label=label, room=room, token=token, allow_http=settings.channel_private_hosts
    )
    made = storage.add_channel(
        spec.kind,
        spec.label,
        spec.url,
        now,
        subscriber_id=subscriber_id,
        topic=topic,
        room=spec.room,
        secret=spec.secret,
    )
    # A blank token counts as none: the key was made here, and only now can it be shown.
    made_key = made.kind is ChannelKind.WEBHOOK and not (token or "").strip()
    return AddedChannel(made, made.secret if made_key else None)


async def test_channel(channel: Channel, settings: Settings, now: datetime) -> tuple[bool, str]:
    """Post a one-line test message; return whether the service took it and what it said."""
    try:
        answer = await post_test(
            channel,
            now,
            timeout=settings.channel_timeout,
            private_hosts=settings.channel_private_hosts,
        )
    except DeliveryError as e:
        return False, str(e)
    return True, answer

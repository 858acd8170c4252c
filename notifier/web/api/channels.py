"""The admin API's channel routes: list, add, test, resume and remove, per subscriber or topic."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError

from notifier import models, validation
from notifier.delivery.webhooks import post_test
from notifier.errors import DeliveryError, InvalidInput
from notifier.web.api.common import MAX_ID, SubscriberId, error_responses, found
from notifier.web.api.schemas import ChannelCreated, ChannelOut, ChannelTestOut, NewChannel, Problem
from notifier.web.context import WebContext

log = logging.getLogger("notifier.web")

ChannelId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="The channel's id.")]
TopicSlug = Annotated[
    str, PathParam(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="A configured topic's slug.")
]
_NO_CHANNEL: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "There is no channel with this id."}
}


def channel_out(channel: models.Channel) -> ChannelOut:
    """Return what the API shows of a channel: its URL masked, its token left out."""
    return ChannelOut(
        id=channel.id,
        kind=channel.kind.value,
        label=channel.label,
        url=channel.shown_url,
        room=channel.room,
        subscriber_id=channel.subscriber_id,
        topic=channel.topic,
        status=channel.status.value,
        failures=channel.failures,
        last_error=channel.last_error,
        created_at=channel.created_at,
        last_sent_at=channel.last_sent_at,
    )


def add_channel_routes(router: APIRouter, context: WebContext) -> None:
    """Add the channel routes."""
    storage, settings = context.storage, context.settings

    @router.get(
        "/subscribers/{subscriber_id}/channels",
        response_model=list[ChannelOut],
        responses=error_responses(404),
        tags=["channels"],
    )
    def list_subscriber_channels(subscriber_id: SubscriberId) -> list[ChannelOut]:
        """Return a subscriber's channels, URLs masked."""
        found(storage, subscriber_id)
        return [channel_out(c) for c in storage.channels_of(subscriber_id=subscriber_id)]

    @router.post(
        "/subscribers/{subscriber_id}/channels",
        response_model=ChannelCreated,
        status_code=201,
        responses=error_responses(404, 409),
        tags=["channels"],
    )
    def add_subscriber_channel(subscriber_id: SubscriberId, new: NewChannel) -> ChannelCreated:
        """Add a channel each of the subscriber's digests is posted to, from the next one."""
        found(storage, subscriber_id)
        return _add(context, new, subscriber_id, None)

    @router.get(
        "/topics/{slug}/channels",
        response_model=list[ChannelOut],
        responses={404: {"model": Problem, "description": "No topic with this slug."}},
        tags=["channels"],
    )
    def list_topic_channels(slug: TopicSlug) -> list[ChannelOut]:
        """Return a configured topic's channels, URLs masked."""
        return [channel_out(c) for c in storage.channels_of(topic=_topic_of(context, slug))]

    @router.post(
        "/topics/{slug}/channels",
        response_model=ChannelCreated,
        status_code=201,
        responses={
            404: {"model": Problem, "description": "No topic with this slug."},
            **error_responses(409),
        },
        tags=["channels"],
    )
    def add_topic_channel(slug: TopicSlug, new: NewChannel) -> ChannelCreated:
        """Add a channel the topic's digest (new matching papers, default schedule) goes to."""
        return _add(context, new, None, _topic_of(context, slug))

    @router.get(
        "/channels/{channel_id}",
        response_model=ChannelOut,
        responses=_NO_CHANNEL,
        tags=["channels"],
    )
    def get_channel(channel_id: ChannelId) -> ChannelOut:
        """Return one channel, URL masked."""
        return channel_out(_channel_of(context, channel_id))

    @router.delete(
        "/channels/{channel_id}",
        status_code=204,
        response_class=Response,
        responses=_NO_CHANNEL,
        tags=["channels"],
    )
    def delete_channel(channel_id: ChannelId) -> None:
        """Remove a channel: nothing more is posted to it."""
        if not storage.remove_channel(channel_id):
            raise HTTPException(404, f"no channel with id {channel_id}")
        log.info("admin API: removed channel %d", channel_id)

    @router.post(
        "/channels/{channel_id}/resume",
        response_model=ChannelOut,
        responses=_NO_CHANNEL,
        tags=["channels"],
    )
    def resume_channel(channel_id: ChannelId) -> ChannelOut:
        """Post to a suspended channel again; its refusals are forgotten."""
        _channel_of(context, channel_id)
        storage.resume_channel(channel_id)
        return channel_out(_channel_of(context, channel_id))

    @router.post(
        "/channels/{channel_id}/test",
        response_model=ChannelTestOut,
        responses={
            **_NO_CHANNEL,
            502: {"model": Problem, "description": "The service refused it or did not answer."},
        },
        tags=["channels"],
    )
    async def test_channel(channel_id: ChannelId) -> ChannelTestOut:
        """Post a one-line test message to a channel; say what the service answered."""
        channel = await asyncio.to_thread(_channel_of, context, channel_id)
        try:
            answer = await post_test(
                channel,
                context.clock(),
                timeout=settings.channel_timeout,
                private_hosts=settings.channel_private_hosts,
            )
        except DeliveryError as e:
            raise HTTPException(502, f"test message not posted: {e}") from None
        return ChannelTestOut(answer=answer)


def _add(
    context: WebContext, new: NewChannel, subscriber_id: int | None, topic: str | None
) -> ChannelCreated:
    """Check and store a channel; a 422 names the field at fault."""
    storage, settings = context.storage, context.settings
    try:
        spec = validation.channel(
            new.kind,
            new.url,
            label=new.label,
            room=new.room,
            token=new.token,
            allow_http=settings.channel_private_hosts,
        )
    except InvalidInput as e:
        field = "room" if "room" in str(e) else "token" if "token" in str(e) else "url"
        raise RequestValidationError(
            [{"type": "invalid", "loc": ("body", field), "msg": str(e)}]
        ) from None
    try:
        made = storage.add_channel(
            spec.kind,
            spec.label,
            spec.url,
            context.clock(),
            subscriber_id=subscriber_id,
            topic=topic,
            room=spec.room,
            secret=spec.secret,
        )
    except ValueError as e:
        raise HTTPException(409, str(e)) from None
    log.info("admin API: added channel %d", made.id)
    made_key = made.kind is models.ChannelKind.WEBHOOK and not (new.token or "").strip()
    return ChannelCreated(
        **channel_out(made).model_dump(), signing_key=made.secret if made_key else None
    )


def _topic_of(context: WebContext, slug: str) -> str:
    """Return a configured topic's slug, or answer 404."""
    if slug not in {t.slug for t in context.settings.topics}:
        raise HTTPException(404, f"no topic {slug!r} is configured")
    return slug


def _channel_of(context: WebContext, channel_id: int) -> models.Channel:
    """Return a channel, or answer 404."""
    channel = context.storage.channel(channel_id)
    if channel is None:
        raise HTTPException(404, f"no channel with id {channel_id}")
    return channel

"""The admin API's channel routes: list, add, test, resume and remove, per subscriber or topic."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from notifier import models
from notifier.channel_setup import add_channel, test_channel
from notifier.errors import InvalidInput
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


class _SecretInputRoute(APIRoute):
    """A route whose 422s leave out the values sent: a channel's URL and token are secrets.

    Pydantic's errors carry each refused value as "input"; a webhook URL too
    long, a token too long or sent under a wrong name would come back in full.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def without_input(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as e:
                errors = [{k: v for k, v in error.items() if k != "input"} for error in e.errors()]
                raise RequestValidationError(errors) from None

        return without_input


def add_channel_routes(parent: APIRouter, context: WebContext) -> None:
    """Add the channel routes."""
    storage = context.storage
    router = APIRouter(route_class=_SecretInputRoute)

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
        responses=error_responses(400, 404, 409),
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
            **error_responses(400, 409),
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
        response_description="Whether the service took the message, and what it said.",
        responses=_NO_CHANNEL,
        tags=["channels"],
    )
    async def post_test_message(channel_id: ChannelId) -> ChannelTestOut:
        """Post a one-line test message to a channel; say what the service answered.

        A refusal is an answer too (posted false, with the service's words), not
        an error of this API.
        """
        channel = await asyncio.to_thread(_channel_of, context, channel_id)
        posted, answer = await test_channel(channel, context.settings, context.clock())
        return ChannelTestOut(
            posted=posted, answer=answer if posted else f"test message not posted: {answer}"
        )

    # Included, its routes keep their class and get the parent's bearer-token check.
    parent.include_router(router)


def _add(
    context: WebContext, new: NewChannel, subscriber_id: int | None, topic: str | None
) -> ChannelCreated:
    """Check and store a channel; a 422 names the field at fault."""
    try:
        added = add_channel(
            context.storage,
            context.settings,
            new.kind,
            new.url,
            now=context.clock(),
            label=new.label,
            room=new.room,
            token=new.token,
            subscriber_id=subscriber_id,
            topic=topic,
        )
    except InvalidInput as e:
        raise RequestValidationError(
            [{"type": "invalid", "loc": ("body", _field_of(str(e))), "msg": str(e)}]
        ) from None
    except ValueError as e:
        raise HTTPException(409, str(e)) from None
    log.info("admin API: added channel %d", added.channel.id)
    return ChannelCreated(**channel_out(added.channel).model_dump(), signing_key=added.signing_key)


def _field_of(message: str) -> str:
    """Return the field a refusal of validation.channel is about.

    Matched on what each refusal says; "room" alone would not do: a Matrix
    channel without a token is told it needs "an access token of a user in the room".
    """
    if "access token" in message or message.startswith("a token "):
        return "token"
    if "room's id" in message:
        return "room"
    if "label" in message:
        return "label"
    if message.startswith("unknown channel kind"):
        return "kind"
    return "url"


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

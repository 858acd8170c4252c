"""The preferences page's chat and webhook channels: add, test, resume, remove."""

from __future__ import annotations

import asyncio
import functools

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from notifier.channel_setup import add_channel, test_channel
from notifier.models import SubscriberStatus
from notifier.web.pages.examples import ID, poster
from notifier.web.pages.kit import PageKit


def add_channel_routes(router: APIRouter, kit: PageKit) -> None:
    """Add the form that adds, tests, resumes and removes a subscriber's channels."""
    context, settings, storage = kit.context, kit.settings, kit.storage

    @router.post("/manage/{token}/channels", response_model=None)
    async def channels(request: Request, token: str) -> Response:
        form = await request.form()
        found = await poster(kit, request, form, token)
        if isinstance(found, Response):
            return found
        fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        back = f"/manage/{token}#channels"
        action = fields.get("action", "")
        if action == "add":
            if found.status == SubscriberStatus.UNSUBSCRIBED:
                return _said(kit, request, back, "Channel not added", "subscribe again first", 400)
            try:
                added = await asyncio.to_thread(
                    functools.partial(
                        add_channel,
                        storage,
                        settings,
                        fields.get("kind", ""),
                        fields.get("url", ""),
                        now=context.clock(),
                        label=fields.get("label"),
                        room=fields.get("room"),
                        token=fields.get("token"),
                        subscriber_id=found.id,
                    )
                )
            except ValueError as e:  # InvalidInput is one too
                return _said(kit, request, back, "Channel not added", str(e), 400)
            if added.signing_key is not None:
                # Shown this once: the receiver needs it to check signatures.
                return _said(
                    kit,
                    request,
                    back,
                    "Channel added",
                    f"Each post to {added.channel.label} is signed with this key (HMAC-SHA256, "
                    f"header Notifier-Signature); keep it now, it is not shown again: "
                    f"{added.signing_key}",
                )
            return RedirectResponse(f"/manage/{token}?saved=1#channels", status_code=303)
        chosen = fields.get("channel", "")
        channel = (
            await asyncio.to_thread(storage.channel, int(chosen)) if ID.fullmatch(chosen) else None
        )
        if channel is None or channel.subscriber_id != found.id:
            return _said(kit, request, back, "No such channel", "It was removed already.", 404)
        if action == "remove":
            await asyncio.to_thread(storage.remove_channel, channel.id, subscriber_id=found.id)
        elif action == "resume":
            await asyncio.to_thread(storage.resume_channel, channel.id)
        elif action == "test":
            posted, answer = await test_channel(channel, settings, context.clock())
            if not posted:
                return _said(kit, request, back, "Test message not posted", f"{answer}.")
            return _said(kit, request, back, "Test message posted", f"{channel.label}: {answer}.")
        return RedirectResponse(f"/manage/{token}?saved=1#channels", status_code=303)


def _said(  # noqa: PLR0917
    kit: PageKit, request: Request, back: str, title: str, text: str, status: int = 200
) -> HTMLResponse:
    """Answer a channel form with one message and a link back to the preferences."""
    text = f"{text[0].upper()}{text[1:]}" if text else text
    return kit.message(
        request, title, text, status=status, link=back, link_text="Back to your preferences"
    )

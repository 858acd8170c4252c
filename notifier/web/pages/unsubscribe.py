"""The unsubscribe link: a GET shows a button; a POST, the button's or one-click, stops mail."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from notifier.models import SubscriberStatus
from notifier.tokens import Purpose
from notifier.web.feeds import remove_private_feed
from notifier.web.pages.kit import PRIVATE, PageKit

log = logging.getLogger("notifier.web")


def add_unsubscribe_routes(router: APIRouter, kit: PageKit) -> None:
    """Add the unsubscribe page (GET: a button only) and the one-click POST."""
    context, settings, storage = kit.context, kit.settings, kit.storage
    page, refused, subscriber_for = kit.page, kit.refused, kit.subscriber_for

    @router.get("/unsubscribe/{token}", response_class=HTMLResponse)
    def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
        # A GET only shows the button: mail scanners open every link.
        found = subscriber_for(Purpose.UNSUBSCRIBE, token, kit.link_age)
        if isinstance(found, str):
            return refused(request, found)
        return page(
            request,
            "unsubscribe.html.j2",
            headers=PRIVATE,
            token=token,
            subscriber=found,
            done=found.status == SubscriberStatus.UNSUBSCRIBED,
            manage=kit.manage_url(found),
        )

    @router.post("/unsubscribe/{token}", response_class=HTMLResponse)
    def unsubscribe(request: Request, token: str) -> HTMLResponse:
        # RFC 8058: the mail provider POSTs "List-Unsubscribe=One-Click" with no
        # cookie and no page; the signed token alone authorises it, and the only
        # thing it can do is stop mail.
        found = subscriber_for(Purpose.UNSUBSCRIBE, token, kit.link_age)
        if isinstance(found, str):
            return refused(request, found)
        if storage.unsubscribe(found.id, context.clock()):
            log.info("subscriber %d unsubscribed", found.id)
        remove_private_feed(settings.feeds_dir, found.feed_token)
        return page(
            request,
            "unsubscribe.html.j2",
            headers=PRIVATE,
            token=token,
            subscriber=found,
            done=True,
            manage=kit.manage_url(found),
        )

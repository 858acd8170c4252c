"""A digest as a web page: where a chat message's "and N more" leads."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from notifier.tokens import Purpose, TokenError
from notifier.web.pages.kit import PRIVATE, PageKit

# A topic digest's period as composing names it: a date, or an ISO week.
PERIOD = re.compile(r"[0-9]{4}-(?:[0-9]{2}-[0-9]{2}|W[0-9]{2})")


def add_digest_routes(router: APIRouter, kit: PageKit) -> None:
    """Add /digest/<token> (a subscriber's digest) and /topics/<slug>/<period> (a topic's)."""
    storage, settings = kit.storage, kit.settings

    # The page carries no preferences or rating links: a chat message's link is
    # read by everyone in the room, and must open no more than the digest.
    @router.get("/digest/{token}", response_class=HTMLResponse)
    def subscriber_digest(request: Request, token: str) -> HTMLResponse:
        try:
            message_id = kit.tokens.read_message(Purpose.VIEW, token, kit.link_age)
        except TokenError as e:
            return kit.refused(request, str(e))
        found = storage.digest_content(message_id=message_id)
        if found is None:
            return kit.refused(request, "this link is not valid")
        content = found[1]
        count = content.paper_count + content.more
        return kit.page(
            request,
            "digest.html.j2",
            headers=PRIVATE,
            heading=f"{count} new paper{'s' if count != 1 else ''} for your interests",
            period=content.period,
            content=content,
        )

    @router.get("/topics/{slug}/{period}", response_class=HTMLResponse)
    def topic_digest(request: Request, slug: str, period: str) -> HTMLResponse:
        topic = next((t for t in settings.topics if t.slug == slug), None)
        content = (
            storage.topic_digest(slug, period)
            if topic is not None and PERIOD.fullmatch(period)
            else None
        )
        if topic is None or content is None:
            return kit.message(
                request, "No such digest", "There is no digest of this topic for that day.", 404
            )
        return kit.page(
            request, "digest.html.j2", heading=topic.name, period=period, content=content
        )

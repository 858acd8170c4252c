"""A paper's links in a digest: "more like this", "not for me", "mute an author".

Mail scanners open every link in a message, so a GET only shows the paper and
what the click would record, with one button; the POST (from that page, with
its CSRF token) records it. The page shows the rating already given, so a
second visit changes the rating or undoes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from notifier.models import Interest, Paper, Subscriber, Verdict
from notifier.papers import author_key
from notifier.tokens import Purpose, TokenError
from notifier.web.pages.kit import PRIVATE, PageKit

log = logging.getLogger("notifier.web")

_VERDICTS = {Purpose.MORE: Verdict.MORE, Purpose.LESS: Verdict.LESS}


def add_feedback_routes(router: APIRouter, kit: PageKit) -> None:
    """Add the rating pages (/more, /less) and the mute-an-author page (/mute)."""
    context, storage = kit.context, kit.storage

    def rating_page(request: Request, purpose: Purpose, token: str) -> HTMLResponse:
        """Render the rating page of a paper's link (its button, or what was recorded)."""
        found = _linked(kit, request, purpose, token)
        if isinstance(found, HTMLResponse):
            return found
        _, interest, paper = found
        assert interest.interest_id is not None
        current = storage.rating(interest.interest_id, paper.id)
        return kit.page(
            request,
            "rate.html.j2",
            headers=PRIVATE,
            action=f"/{purpose}/{token}",
            verdict=_VERDICTS[purpose],
            current=current.verdict if current else None,
            interest=interest.name,
            paper=paper,
        )

    def rate(request: Request, purpose: Purpose, token: str, undo: bool) -> HTMLResponse:
        """Record (or undo) the rating a paper's link names."""
        found = _linked(kit, request, purpose, token)
        if isinstance(found, HTMLResponse):
            return found
        subscriber, interest, paper = found
        assert interest.interest_id is not None
        now = context.clock()
        if undo:
            current = storage.rating(interest.interest_id, paper.id)
            if current is not None:
                storage.remove_example(subscriber.id, current.id, now)
        else:
            storage.rate(subscriber.id, interest.interest_id, paper.id, _VERDICTS[purpose], now)
        log.info("subscriber %d rated paper %d for an interest", subscriber.id, paper.id)
        return rating_page(request, purpose, token)

    for purpose in (Purpose.MORE, Purpose.LESS):
        add_rating_route(router, kit, purpose, rating_page, rate)

    add_mute_routes(router, kit)


def add_mute_routes(router: APIRouter, kit: PageKit) -> None:
    """Add the mute-an-author page (/mute): a GET lists the authors, a POST mutes one."""
    context, storage = kit.context, kit.storage

    @router.get("/mute/{token}", response_class=HTMLResponse)
    def mute_page(request: Request, token: str) -> HTMLResponse:
        # A GET only lists the authors, each with a button: scanners open every link.
        found = _linked(kit, request, Purpose.MUTE, token)
        if isinstance(found, HTMLResponse):
            return found
        subscriber, _, paper = found
        return _mute_page(request, kit, token, subscriber, paper)

    def mute(request: Request, token: str, name: str, undo: bool) -> HTMLResponse:
        """Mute (or unmute) one of the authors of the paper a link names."""
        found = _linked(kit, request, Purpose.MUTE, token)
        if isinstance(found, HTMLResponse):
            return found
        subscriber, _, paper = found
        if name not in paper.authors:
            return _mute_page(request, kit, token, subscriber, paper, status=400)
        if undo:
            storage.unmute_author(subscriber.id, name)
        else:
            storage.mute_author(subscriber.id, name, context.clock())
        return _mute_page(request, kit, token, subscriber, paper, saved=name)

    @router.post("/mute/{token}", response_class=HTMLResponse)
    async def mute_author(request: Request, token: str) -> HTMLResponse:
        form = await request.form()
        if not kit.csrf_ok(request, form):
            return kit.expired_form(request)
        name, undo = str(form.get("author", "")), bool(form.get("undo"))
        return await asyncio.to_thread(mute, request, token, name, undo)


def add_rating_route(
    router: APIRouter,
    kit: PageKit,
    purpose: Purpose,
    page: Callable[[Request, Purpose, str], HTMLResponse],
    rate: Callable[[Request, Purpose, str, bool], HTMLResponse],
) -> None:
    """Add the GET (a button) and POST (the rating) of one rating purpose."""

    @router.get(f"/{purpose}/{{token}}", response_class=HTMLResponse)
    def rating_page(request: Request, token: str) -> HTMLResponse:
        return page(request, purpose, token)

    @router.post(f"/{purpose}/{{token}}", response_class=HTMLResponse)
    async def rating(request: Request, token: str) -> HTMLResponse:
        form = await request.form()
        if not kit.csrf_ok(request, form):
            return kit.expired_form(request)
        undo = bool(form.get("undo"))
        return await asyncio.to_thread(rate, request, purpose, token, undo)


def _mute_page(
    request: Request,
    kit: PageKit,
    token: str,
    subscriber: Subscriber,
    paper: Paper,
    *,
    saved: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """Render the page listing a paper's authors, each with a mute (or unmute) button."""
    muted = {author_key(m.name) for m in kit.storage.muted_authors_of(subscriber.id)}
    return kit.page(
        request,
        "mute.html.j2",
        status=status,
        headers=PRIVATE,
        action=f"/mute/{token}",
        paper=paper,
        authors=[(name, author_key(name) in muted) for name in paper.authors],
        saved=saved,
    )


def _linked(
    kit: PageKit, request: Request, purpose: Purpose, token: str
) -> tuple[Subscriber, Interest, Paper] | HTMLResponse:
    """Return what a paper's link names, or the page saying why it does not work."""
    try:
        link = kit.tokens.read_paper(purpose, token, kit.link_age)
    except TokenError as e:
        return kit.refused(request, str(e))
    subscriber = kit.storage.subscriber_by_manage_key(link.key)
    paper = kit.storage.paper(link.paper_id)
    if subscriber is None or paper is None:
        return kit.refused(request, "this link is not valid")
    interest = next((i for i in subscriber.interests if i.name == link.interest), None)
    if purpose == Purpose.MUTE:
        # Muting is the subscriber's, whichever interest showed the paper.
        return subscriber, interest or Interest(link.interest), paper
    if interest is None or interest.interest_id is None:
        # No preferences link here or on the other pages a paper's link opens: a
        # private feed's links travel with the feed URL, and must not open more.
        return kit.message(
            request,
            "This interest is gone",
            f"Your interest “{link.interest}” no longer exists, so there is nothing to "
            "teach it. The preferences link in your digests lets you add interests.",
            status=404,
        )
    return subscriber, interest, paper

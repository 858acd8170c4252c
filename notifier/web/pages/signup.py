"""The front page, the sign-up form and the confirmation link it sends."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse

from notifier.errors import DeliveryError, NotifierError
from notifier.models import Subscriber, SubscriberStatus
from notifier.schedule import CADENCES, WEEKDAYS, resolve
from notifier.settings import Settings
from notifier.tokens import Purpose
from notifier.web.forms import InterestRow, check_signup, interest_rows
from notifier.web.pages.kit import HONEYPOT, PRIVATE, PageKit, padded

log = logging.getLogger("notifier.web")


def add_subscribe_routes(router: APIRouter, kit: PageKit) -> None:
    """Add the front page and the sign-up form."""
    context, settings, storage = kit.context, kit.settings, kit.storage
    page, message = kit.page, kit.message

    def subscribe_form(
        request: Request,
        values: dict[str, Any] | None = None,
        rows: list[InterestRow] | None = None,
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        return page(
            request,
            "subscribe.html.j2",
            status,
            values=values or {"cadence": "daily", "send_time": "07:00", "timezone": ""},
            rows=padded(rows or [], 3),
            errors=errors or {},
            cadences=CADENCES,
            weekdays=WEEKDAYS,
        )

    @router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def front(request: Request) -> HTMLResponse:
        return subscribe_form(request)

    @router.post("/subscribe", response_class=HTMLResponse)
    async def subscribe(request: Request, background: BackgroundTasks) -> HTMLResponse:
        form = await request.form()
        if not kit.csrf_ok(request, form):
            return kit.expired_form(request)
        fields = {k: str(v) for k, v in form.items()}
        rows = interest_rows({k: [str(v) for v in form.getlist(k)] for k in form})
        if fields.get(HONEYPOT):
            log.info("sign-up ignored: the hidden field was filled (a bot)")
            return inbox(request)
        checked = check_signup(fields, rows)
        if not checked.ok:
            return subscribe_form(request, fields, rows, checked.errors, status=400)
        # Counted once valid: fixing a typo is not a sign-up.
        client = request.client.host if request.client else "-"
        if not context.signups.allow(client):
            return message(
                request,
                "Too many sign-ups",
                "Too many sign-ups came from your network in the last hour. "
                "Please try again later.",
                status=429,
            )
        now = context.clock()
        subscriber, action = await asyncio.to_thread(
            lambda: storage.request_subscription(
                checked.values["email"],
                name=checked.values["name"],
                chosen=checked.values["interests"],
                schedule=checked.values["schedule"],
                now=now,
                resend_after=timedelta(hours=settings.confirm_resend_hours),
            )
        )
        if action != "quiet":
            # After the response: the page must not say, by content or by delay,
            # whether the address was known.
            background.add_task(send_notice, action, subscriber)
        context.embed_interests_soon(subscriber)
        return inbox(request)

    def inbox(request: Request) -> HTMLResponse:
        return message(
            request,
            "Check your inbox",
            "We have sent a link to the address you gave. Follow it to confirm; nothing "
            f"else will be sent until you do. The link works for {settings.confirm_hours} hours.",
        )

    async def send_notice(action: str, subscriber: Subscriber) -> None:
        try:
            outgoing = context.notices.render(action, subscriber, context.clock())
            await context.send_notice(outgoing)
        except (DeliveryError, NotifierError, OSError) as e:
            # Let the next sign-up try again at once rather than in 48 hours.
            await asyncio.to_thread(storage.release_confirmation, subscriber.id)
            log.warning(
                "could not send the %s email to subscriber %d: %s",
                "confirmation" if action == "confirm" else "reminder",
                subscriber.id,
                e,
            )
        else:
            log.info(
                "sent the %s email to subscriber %d",
                "confirmation" if action == "confirm" else "reminder",
                subscriber.id,
            )


def add_confirm_routes(router: APIRouter, kit: PageKit) -> None:
    """Add the confirmation link: a GET shows what it activates, its button POSTs."""
    context, settings, storage = kit.context, kit.settings, kit.storage
    page, message, refused = kit.page, kit.message, kit.refused

    def settled(request: Request, subscriber: Subscriber) -> HTMLResponse | None:
        """Answer a link whose subscriber is no longer pending, or None when it is."""
        if subscriber.status == SubscriberStatus.PENDING:
            return None
        if subscriber.status == SubscriberStatus.UNSUBSCRIBED:
            return message(
                request,
                "You have unsubscribed",
                "You unsubscribed after this link was sent. Subscribe again from the front page.",
            )
        return subscribed(request, subscriber)

    def subscribed(request: Request, subscriber: Subscriber) -> HTMLResponse:
        return message(
            request,
            "You are subscribed",
            "Your first digest comes at your next send time. "
            "You can change your interests and schedule at any time.",
            link=kit.manage_url(subscriber),
            link_text="Open my preferences",
        )

    @router.get("/confirm/{token}", response_class=HTMLResponse)
    def confirm_page(request: Request, token: str) -> HTMLResponse:
        # Mail scanners follow every link in an email: a GET only shows
        # the button, so an address is subscribed only by someone who presses it.
        found = kit.subscriber_for(Purpose.CONFIRM, token, kit.confirm_age)
        if isinstance(found, str):
            return refused(request, found)
        answer = settled(request, found)
        if answer is not None:
            return answer
        return page(
            request,
            "confirm.html.j2",
            headers=PRIVATE,
            token=token,
            subscriber=found,
            schedule=_describe_schedule(found, settings),
        )

    @router.post("/confirm/{token}", response_class=HTMLResponse)
    async def confirm(request: Request, token: str) -> HTMLResponse:
        form = await request.form()
        if not kit.csrf_ok(request, form):
            return kit.expired_form(request)
        found = await asyncio.to_thread(kit.subscriber_for, Purpose.CONFIRM, token, kit.confirm_age)
        if isinstance(found, str):
            return refused(request, found)
        answer = settled(request, found)
        if answer is not None:
            return answer
        if await asyncio.to_thread(storage.confirm_subscriber, found.id, context.clock()):
            log.info("subscriber %d confirmed", found.id)
        return subscribed(request, found)


def _describe_schedule(subscriber: Subscriber, settings: Settings) -> str:
    """Return a subscriber's schedule in words: "daily at 07:00 (Europe/Berlin)"."""
    try:
        return resolve(
            settings.default_cadence,
            subscriber.cadence,
            subscriber.send_time,
            subscriber.timezone,
            subscriber.weekday,
        ).describe()
    except ValueError:
        return "on the default schedule"

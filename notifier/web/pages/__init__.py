"""The pages people see: subscribe, confirm, preferences, unsubscribe; feeds and OPML.

Nothing here changes state on a GET: link scanners fetch every link in an
email, so the links in emails (/confirm, /unsubscribe) show a page whose
button POSTs.

kit.py holds what every page shares: rendering, CSRF checks, signed links.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from notifier.errors import DeliveryError, NotifierError, QueryError
from notifier.match import match_interest
from notifier.matching import compile_interests, describe_volume, interest_volumes, paper_index
from notifier.models import Subscriber
from notifier.papers import http_url
from notifier.render import default_templates_dir
from notifier.render.feed import feed_url, private_feed_name
from notifier.schedule import CADENCES, WEEKDAYS, next_due, resolve
from notifier.settings import Settings
from notifier.tokens import Purpose
from notifier.web.context import WebContext
from notifier.web.feeds import (
    CONTENT_TYPES,
    OpmlFeed,
    PrivateFeeds,
    build_opml,
    not_modified,
    read_feed,
    remove_private_feed,
)
from notifier.web.forms import (
    InterestRow,
    check_interests,
    check_preferences,
    check_signup,
    interest_rows,
    rows_of,
    weekday_name,
)
from notifier.web.pages.kit import HONEYPOT, PRIVATE, PageKit, padded

log = logging.getLogger("notifier.web")

PREVIEW_PAPERS = 300  # the most recent papers a preview looks at
PREVIEW_SHOWN = 3  # per interest
# A preview waits this long for the matching model, then says it is being prepared
# and is asked again after PREVIEW_RETRY seconds (app.js).
PREVIEW_WAIT = 1.5
PREVIEW_RETRY = 2
_FEED_NAME = re.compile(r"^(all|topics/[a-z0-9][a-z0-9-]{0,63}|subscribers/[A-Za-z0-9_-]{16,64})$")
_STATIC = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}


def pages_router(context: WebContext) -> APIRouter:
    """Return the routes of the public pages and feeds."""
    router = APIRouter(include_in_schema=False)
    kit = PageKit(context)
    _subscribe_routes(router, kit)
    _preview_routes(router, kit)
    _confirm_routes(router, kit)
    _preference_routes(router, kit)
    _unsubscribe_routes(router, kit)
    _feed_routes(router, kit)
    return router


def _subscribe_routes(router: APIRouter, kit: PageKit) -> None:
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


def _preview_routes(router: APIRouter, kit: PageKit) -> None:
    """Add the live preview: which recent papers the interests typed so far would match."""
    context, storage = kit.context, kit.storage
    preview_cache: dict[str, Any] = {}

    @router.get("/preview")
    def preview(request: Request) -> JSONResponse:
        """Return which recent papers the interests typed so far would have matched."""
        client = request.client.host if request.client else "-"
        if not context.previews.allow(client):
            return JSONResponse({"error": "too many previews; wait a minute"}, status_code=429)
        params = request.query_params
        rows = interest_rows({k: params.getlist(k) for k in params})
        chosen, errors = check_interests(rows)
        if errors and not chosen:
            return JSONResponse({"interests": [], "errors": errors, "looked_at": 0})
        if not context.matching_ready:
            # The server prepares the model at start (create_app); until it is
            # ready, say so rather than hold the request for half a minute.
            context.start_preparing()
            if not context.wait_for_matching(PREVIEW_WAIT):
                return _preparing(context.preparation_error)
        now = context.clock()
        cached = preview_cache.get("index")
        if cached is None or cached[0] < now - timedelta(minutes=5):
            pool = storage.latest_papers(PREVIEW_PAPERS)
            cached = (now, pool, paper_index(storage, context.matching, pool))
            preview_cache["index"] = cached
        _, pool, index = cached
        try:
            compiled = compile_interests(storage, context.matching, chosen)
        except QueryError as e:
            return JSONResponse({"interests": [], "errors": {"interests": str(e)}, "looked_at": 0})
        # Per interest, as a digest is laid out: each one shows whether it finds anything.
        found = []
        for interest in compiled:
            matches = match_interest(index, interest, context.matching.params)
            papers = [
                {
                    "title": pool[m.paper].title,
                    "url": http_url(pool[m.paper].url),  # null: shown without a link
                    "reason": m.reason,
                }
                for m in matches[:PREVIEW_SHOWN]
            ]
            found.append({"name": interest.name, "matched": len(matches), "papers": papers})
        return JSONResponse({"interests": found, "looked_at": len(pool), "errors": errors})


def _preparing(error: str | None) -> JSONResponse:
    """Answer a preview asked for while the matching model is being prepared (or failed)."""
    if error is not None:
        problem = f"The preview is not available right now: {error}"
        return JSONResponse(
            {"interests": [], "errors": {"interests": problem}, "looked_at": 0}, status_code=503
        )
    return JSONResponse(
        {
            "preparing": True,
            "message": "Preparing the matching model (the first time on this server takes "
            "up to half a minute)…",
            "interests": [],
            "errors": {},
            "looked_at": 0,
        },
        status_code=503,
        headers={"Retry-After": str(PREVIEW_RETRY)},
    )


def _confirm_routes(router: APIRouter, kit: PageKit) -> None:
    """Add the confirmation link: a GET shows what it activates, its button POSTs."""
    context, settings, storage = kit.context, kit.settings, kit.storage
    page, message, refused = kit.page, kit.message, kit.refused

    def settled(request: Request, subscriber: Subscriber) -> HTMLResponse | None:
        """Answer a link whose subscriber is no longer pending, or None when it is."""
        if subscriber.status == "pending":
            return None
        if subscriber.status == "unsubscribed":
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
        # Mail scanners follow every link in an email (issue 21): a GET only shows
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


def _preference_routes(router: APIRouter, kit: PageKit) -> None:
    """Add the preferences page, its form and the OPML list of feeds."""
    context, settings, storage, tokens = kit.context, kit.settings, kit.storage, kit.tokens
    page, refused, subscriber_for = kit.page, kit.refused, kit.subscriber_for

    def manage_page(
        request: Request,
        token: str,
        subscriber: Subscriber,
        *,
        values: dict[str, Any] | None = None,
        rows: list[InterestRow] | None = None,
        errors: dict[str, str] | None = None,
        status: int = 200,
        saved: bool = False,
    ) -> HTMLResponse:
        """Render the preferences page, with the values typed and their errors if any."""
        if values is None:
            values = _current_values(subscriber, settings)
        next_due = _next_due(subscriber, settings, context.clock())
        volumes: list[tuple[str, str]] = []
        failing: list[str] = []
        # Only once the model is ready (preparing it takes half a minute at start).
        if subscriber.status in ("active", "paused", "suspended") and context.matching_ready:
            try:
                found, failing = interest_volumes(
                    storage, settings, subscriber, context.clock(), context.matching
                )
                volumes = [(v.interest, describe_volume(v)) for v in found]
            except Exception:
                # The page still serves its form; "why so few" is an extra.
                log.exception("could not explain the volumes of subscriber %s", subscriber.id)
        feed = feed_url(settings.base_url, private_feed_name(subscriber.feed_token))
        return page(
            request,
            "manage.html.j2",
            status,
            headers=PRIVATE,
            token=token,
            subscriber=subscriber,
            values=values,
            rows=padded(rows if rows is not None else rows_of(subscriber.interests), 3),
            errors=errors or {},
            saved=saved,
            next_due=next_due,
            history=storage.digest_history(subscriber.id, 10),
            volumes=volumes,
            failing=failing,
            unsubscribe_token=tokens.make(Purpose.UNSUBSCRIBE, subscriber.manage_token),
            feed_atom=f"{feed}.atom",
            feed_rss=f"{feed}.rss",
            cadences=CADENCES,
            weekdays=WEEKDAYS,
        )

    @router.get("/manage/{token}", response_class=HTMLResponse)
    def manage(request: Request, token: str) -> HTMLResponse:
        found = subscriber_for(Purpose.MANAGE, token, kit.link_age)
        if isinstance(found, str):
            return refused(request, found)
        return manage_page(request, token, found, saved=request.query_params.get("saved") == "1")

    @router.post("/manage/{token}", response_class=HTMLResponse, response_model=None)
    async def save_preferences(request: Request, token: str) -> Response:
        form = await request.form()
        if not kit.csrf_ok(request, form):
            return kit.expired_form(request)
        found = await asyncio.to_thread(subscriber_for, Purpose.MANAGE, token, kit.link_age)
        if isinstance(found, str):
            return refused(request, found)
        fields = {k: str(v) for k, v in form.items()}
        if fields.get("action") == "resubscribe":
            # The signed link came by email to this address: that is the opt-in.
            await asyncio.to_thread(storage.update_preferences, found.id, status="active")
            return RedirectResponse(f"/manage/{token}?saved=1", status_code=303)
        rows = interest_rows({k: [str(v) for v in form.getlist(k)] for k in form})
        checked = check_preferences(fields, rows)
        if not checked.ok:
            values = {**fields, "paused": "paused" in fields}
            return await asyncio.to_thread(
                lambda: manage_page(
                    request,
                    token,
                    found,
                    values=values,
                    rows=rows,
                    errors=checked.errors,
                    status=400,
                )
            )
        status = None
        if found.status in ("active", "paused"):
            status = "paused" if "paused" in fields else "active"
        elif found.status == "suspended" and "paused" not in fields:
            status = "active"  # they followed a link from an email, so mail reaches them
        await asyncio.to_thread(
            lambda: storage.update_preferences(
                found.id,
                name=checked.values["name"] or "",
                chosen=checked.values["interests"],
                schedule=checked.values["schedule"],
                status=status,
            )
        )
        # Rebuilt with the new interests when next asked for (PrivateFeeds).
        remove_private_feed(settings.feeds_dir, found.feed_token)
        return RedirectResponse(f"/manage/{token}?saved=1", status_code=303)

    @router.get("/manage/{token}/feeds.opml")
    def opml(token: str) -> Response:
        found = subscriber_for(Purpose.MANAGE, token, kit.link_age)
        if isinstance(found, str):
            return Response(f"{found}\n", status_code=404, media_type="text/plain")
        base = settings.base_url
        private = feed_url(base, private_feed_name(found.feed_token))
        feeds = [
            OpmlFeed(f"notifier: papers for {found.name or found.email}", f"{private}.atom"),
            OpmlFeed("notifier: all new papers", f"{feed_url(base, 'all')}.atom"),
            *(
                OpmlFeed(f"notifier: {t.name}", f"{feed_url(base, f'topics/{t.slug}')}.atom")
                for t in settings.topics
            ),
        ]
        data = build_opml("notifier feeds", feeds, context.clock())
        return Response(
            data,
            media_type="text/x-opml; charset=utf-8",
            headers={**PRIVATE, "Content-Disposition": 'attachment; filename="notifier.opml"'},
        )


def _unsubscribe_routes(router: APIRouter, kit: PageKit) -> None:
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
            done=found.status == "unsubscribed",
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


def _feed_routes(router: APIRouter, kit: PageKit) -> None:
    """Add the feeds and the static files."""
    settings = kit.settings
    private_feeds = PrivateFeeds(kit.context)

    # HEAD as well: feed readers and link checkers ask it (the server sends no body).
    @router.api_route("/feeds/{name:path}", methods=["GET", "HEAD"], response_model=None)
    def feed(request: Request, name: str) -> Response:
        stem, dot, suffix = name.rpartition(".")
        if not dot or not _FEED_NAME.fullmatch(stem):
            return Response("No such feed.\n", status_code=404, media_type="text/plain")
        if stem.startswith("subscribers/") and f".{suffix}" in CONTENT_TYPES:
            private_feeds.refresh(stem.removeprefix("subscribers/"))
        document = read_feed(settings.feeds_dir / f"{stem}.{suffix}")
        if document is None:
            return Response("No such feed.\n", status_code=404, media_type="text/plain")
        headers = document.headers()
        if stem.startswith("subscribers/"):
            headers.update({"X-Robots-Tag": "noindex", "Cache-Control": "private, max-age=300"})
        if not_modified(
            document,
            request.headers.get("if-none-match"),
            request.headers.get("if-modified-since"),
        ):
            # A 304 has no body for the gzip middleware to mark; say it varies all the same.
            return Response(status_code=304, headers={**headers, "Vary": "Accept-Encoding"})
        # The bytes the ETag was made from, not a reopened file: a rebuild may
        # replace the file at any moment.
        return Response(document.data, media_type=document.content_type, headers=headers)

    static_dir = (settings.templates_dir or default_templates_dir()) / "web" / "static"
    fallback_dir = default_templates_dir() / "web" / "static"

    @router.api_route("/static/{name}", methods=["GET", "HEAD"])
    def static(name: str) -> Response:
        if name not in _STATIC:
            return Response("Not found.\n", status_code=404, media_type="text/plain")
        path = static_dir / name if (static_dir / name).is_file() else fallback_dir / name
        return Response(
            path.read_bytes(),
            media_type=_STATIC[name],
            headers={"Cache-Control": "public, max-age=3600"},
        )


def _current_values(subscriber: Subscriber, settings: Settings) -> dict[str, Any]:
    """Return the preferences form's values for a subscriber (defaults where none chosen)."""
    return {
        "name": subscriber.name or "",
        "cadence": subscriber.cadence or settings.cadence,
        "send_time": subscriber.send_time or settings.send_time,
        "timezone": subscriber.timezone or settings.timezone,
        "weekday": (
            weekday_name(subscriber.weekday) if subscriber.weekday is not None else settings.weekday
        ),
        "paused": subscriber.status == "paused",
    }


def _next_due(subscriber: Subscriber, settings: Settings, now: datetime) -> str | None:
    """Return when an active subscriber's next digest is due, in their own zone."""
    if subscriber.status != "active":
        return None
    try:
        cadence, due = next_due(settings.default_cadence, subscriber, now)
    except ValueError:
        return None
    return f"{due:%A %d %B, %H:%M} ({cadence.zone.key})"


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

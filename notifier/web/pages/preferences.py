"""The preferences page a signed link opens, its form and the OPML list of feeds."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from notifier.matching import describe_volume, interest_volumes
from notifier.models import Subscriber, SubscriberStatus
from notifier.render.feed import feed_url, private_feed_name
from notifier.schedule import CADENCES, WEEKDAYS, next_due
from notifier.settings import Settings
from notifier.tokens import Purpose
from notifier.web.feeds import OpmlFeed, build_opml, remove_private_feed
from notifier.web.forms import InterestRow, check_preferences, interest_rows, rows_of, weekday_name
from notifier.web.pages.examples import ID
from notifier.web.pages.kit import PRIVATE, PageKit, padded

log = logging.getLogger("notifier.web")


def add_preference_routes(router: APIRouter, kit: PageKit) -> None:
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
        imported: int | None = None,
    ) -> HTMLResponse:
        """Render the preferences page, with the values typed and their errors if any."""
        if values is None:
            values = _current_values(subscriber, settings)
        next_due = _next_due(subscriber, settings, context.clock())
        volumes: list[tuple[str, str]] = []
        failing: list[str] = []
        # Only once the model is ready (preparing it takes half a minute at start).
        if (
            subscriber.status
            in (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED, SubscriberStatus.SUSPENDED)
            and context.matching_ready
        ):
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
            examples=storage.examples_of(subscriber.id),
            muted=storage.muted_authors_of(subscriber.id),
            channels=storage.channels_of(subscriber_id=subscriber.id),
            imported=imported,
            volumes=volumes,
            failing=failing,
            unsubscribe_token=tokens.make(Purpose.UNSUBSCRIBE, subscriber.manage_token),
            feed_atom=f"{feed}.atom",
            feed_rss=f"{feed}.rss",
            feed_json=f"{feed}.json",
            feed_bib=f"{feed}.bib",
            feed_ris=f"{feed}.ris",
            cadences=CADENCES,
            weekdays=WEEKDAYS,
        )

    @router.get("/manage/{token}", response_class=HTMLResponse)
    def manage(request: Request, token: str) -> HTMLResponse:
        found = subscriber_for(Purpose.MANAGE, token, kit.link_age)
        if isinstance(found, str):
            return refused(request, found)
        imported = request.query_params.get("imported", "")
        return manage_page(
            request,
            token,
            found,
            saved=request.query_params.get("saved") == "1",
            imported=int(imported) if ID.fullmatch(imported) else None,
        )

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
            await asyncio.to_thread(
                lambda: storage.update_preferences(
                    found.id, status=SubscriberStatus.ACTIVE, now=context.clock()
                )
            )
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
        if found.status in (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED):
            status = SubscriberStatus.PAUSED if "paused" in fields else SubscriberStatus.ACTIVE
        elif found.status == SubscriberStatus.SUSPENDED and "paused" not in fields:
            # They followed a link from an email, so mail reaches them.
            status = SubscriberStatus.ACTIVE
        updated = await asyncio.to_thread(
            lambda: storage.update_preferences(
                found.id,
                name=checked.values["name"] or "",
                chosen=checked.values["interests"],
                schedule=checked.values["schedule"],
                status=status,
                now=context.clock(),
            )
        )
        # Rebuilt with the new interests when next asked for (PrivateFeeds).
        remove_private_feed(settings.feeds_dir, found.feed_token)
        context.embed_interests_soon(updated)
        return RedirectResponse(f"/manage/{token}?saved=1", status_code=303)

    @router.get("/manage/{token}/feeds.opml")
    def opml(token: str, format: str = "atom") -> Response:
        found = subscriber_for(Purpose.MANAGE, token, kit.link_age)
        if isinstance(found, str):
            return Response(f"{found}\n", status_code=404, media_type="text/plain")
        # ?format=json lists the JSON Feed versions, for readers that take JSON Feed.
        suffix = ".json" if format == "json" else ".atom"
        base = settings.base_url
        private = feed_url(base, private_feed_name(found.feed_token))
        feeds = [
            OpmlFeed(f"notifier: papers for {found.name or found.email}", f"{private}{suffix}"),
            OpmlFeed("notifier: all new papers", f"{feed_url(base, 'all')}{suffix}"),
            *(
                OpmlFeed(f"notifier: {t.name}", f"{feed_url(base, f'topics/{t.slug}')}{suffix}")
                for t in settings.topics
            ),
        ]
        data = build_opml("notifier feeds", feeds, context.clock())
        return Response(
            data,
            media_type="text/x-opml; charset=utf-8",
            headers={**PRIVATE, "Content-Disposition": 'attachment; filename="notifier.opml"'},
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
        "paused": subscriber.status == SubscriberStatus.PAUSED,
    }


def _next_due(subscriber: Subscriber, settings: Settings, now: datetime) -> str | None:
    """Return when an active subscriber's next digest is due, in their own zone."""
    if subscriber.status != SubscriberStatus.ACTIVE:
        return None
    try:
        cadence, due = next_due(settings.default_cadence, subscriber, now)
    except ValueError:
        return None
    return f"{due:%A %d %B, %H:%M} ({cadence.zone.key})"

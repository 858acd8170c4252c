"""The preferences page's forms for what interests learned: remove, unmute, import a library."""

from __future__ import annotations

import asyncio
import re

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from notifier.errors import LibraryError, SubscriberError
from notifier.models import Subscriber
from notifier.teaching import import_library_into
from notifier.tokens import Purpose
from notifier.web.pages.kit import PageKit

# The largest library export the page takes (BodyLimit lets this path's bodies through).
MAX_LIBRARY_BYTES = 5 * 1024 * 1024
# A row id as a form or query string gives it: ASCII digits, within a 32-bit integer.
ID = re.compile(r"[0-9]{1,9}")


def add_example_routes(router: APIRouter, kit: PageKit) -> None:
    """Add the forms that remove an example, unmute an author and import a library."""
    context, storage = kit.context, kit.storage

    @router.post("/manage/{token}/examples", response_model=None)
    async def remove_example(request: Request, token: str) -> Response:
        form = await request.form()
        found = await poster(kit, request, form, token)
        if isinstance(found, Response):
            return found
        example = str(form.get("example", ""))
        if ID.fullmatch(example):
            await asyncio.to_thread(storage.remove_example, found.id, int(example), context.clock())
        return RedirectResponse(f"/manage/{token}?saved=1#taught", status_code=303)

    @router.post("/manage/{token}/authors", response_model=None)
    async def unmute_author(request: Request, token: str) -> Response:
        form = await request.form()
        found = await poster(kit, request, form, token)
        if isinstance(found, Response):
            return found
        await asyncio.to_thread(storage.unmute_author, found.id, str(form.get("author", "")))
        return RedirectResponse(f"/manage/{token}?saved=1#taught", status_code=303)

    @router.post("/manage/{token}/library", response_model=None)
    async def import_library(request: Request, token: str) -> Response:
        form = await request.form(max_part_size=MAX_LIBRARY_BYTES)
        found = await poster(kit, request, form, token)
        if isinstance(found, Response):
            return found
        upload, name = form.get("library"), str(form.get("interest", ""))
        if not isinstance(upload, UploadFile):
            return _not_imported(kit, request, token, "choose a file to import")
        data = await upload.read()
        try:
            # Parsing a large export takes seconds: off the event loop.
            added, _ = await asyncio.to_thread(
                import_library_into,
                storage,
                found,
                data,
                upload.filename or "upload",
                name,
                context.clock(),
            )
        except (LibraryError, SubscriberError) as e:
            return _not_imported(kit, request, token, str(e))
        return RedirectResponse(f"/manage/{token}?imported={added}#taught", status_code=303)


async def poster(
    kit: PageKit, request: Request, form: FormData, token: str
) -> Subscriber | Response:
    """Return whose preferences a form was posted from, or the page refusing the post."""
    if not kit.csrf_ok(request, form):
        return kit.expired_form(request)
    found = await asyncio.to_thread(kit.subscriber_for, Purpose.MANAGE, token, kit.link_age)
    return kit.refused(request, found) if isinstance(found, str) else found


def _not_imported(kit: PageKit, request: Request, token: str, why: str) -> HTMLResponse:
    """Answer an import that stored nothing, saying why."""
    return kit.message(
        request,
        "Nothing was imported",
        f"{why[0].upper()}{why[1:]}.".replace("..", "."),
        status=400,
        link=f"/manage/{token}#taught",
        link_text="Back to your preferences",
    )

"""The live preview: which recent papers the interests typed so far would have matched."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from notifier.errors import QueryError
from notifier.match import match_interest
from notifier.matching import compile_interests, paper_index
from notifier.papers import http_url
from notifier.web.forms import check_interests, interest_rows
from notifier.web.pages.kit import PageKit

PREVIEW_PAPERS = 300  # the most recent papers a preview looks at
PREVIEW_SHOWN = 3  # per interest
# A preview waits this long for the matching model, then says it is being prepared
# and is asked again after PREVIEW_RETRY seconds (app.js).
PREVIEW_WAIT = 1.5
PREVIEW_RETRY = 2


def add_preview_routes(router: APIRouter, kit: PageKit) -> None:
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

"""The admin JSON API under /api/v1, behind a bearer token, described by OpenAPI."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Depends, HTTPException, Request

from notifier.web.context import WebContext


def api_router(context: WebContext) -> APIRouter:
    """Return the admin API routes; every one needs Authorization: Bearer <admin_token>."""
    configured = context.settings.admin_token

    def authorised(request: Request) -> None:
        if configured is None:
            raise HTTPException(403, "the admin API is off: set NOTIFIER_ADMIN_TOKEN to use it")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = configured.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    router = APIRouter(dependencies=[Depends(authorised)], tags=["admin"])
    return router

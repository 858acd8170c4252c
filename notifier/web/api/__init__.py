"""The admin JSON API under /api/v1, behind a bearer token, described by OpenAPI.

Requests and responses are pydantic models, so /api/v1/openapi.json says exactly
what each route takes and gives. Input goes through the validators the CLI and
the web forms use (addresses, queries, clocks), and any problem is a 422 naming
the field. Nothing secret is ever returned: no feed or manage token, no
credentials in a source's URL, no digest content, no channel URL in full
or channel token (a webhook's signing key made by notifier is returned once).

schemas.py holds the request and response models; subscribers.py, channels.py,
digests.py and operations.py the routes by noun; common.py what those routes share. This
module checks the bearer token and puts the routes together.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from notifier.web.api.channels import add_channel_routes
from notifier.web.api.common import error_responses
from notifier.web.api.digests import add_digest_routes
from notifier.web.api.operations import add_operations_routes
from notifier.web.api.subscribers import add_interest_routes, add_subscriber_routes
from notifier.web.context import WebContext

BEARER = HTTPBearer(auto_error=False, description="The admin_token setting (NOTIFIER_ADMIN_TOKEN).")


def operation_name(route: APIRoute) -> str:
    """Return a route's operationId: its handler's name, which says what it does."""
    return route.name


def api_router(context: WebContext) -> APIRouter:
    """Return the admin API routes; every one needs Authorization: Bearer <admin_token>."""
    configured = context.settings.admin_token

    def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> None:
        if configured is None:
            raise HTTPException(403, "the admin API is off: set NOTIFIER_ADMIN_TOKEN to use it")
        expected = configured.get_secret_value().encode()
        given = credentials.credentials.strip().encode() if credentials else b""
        if credentials is None or not hmac.compare_digest(given, expected):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    router = APIRouter(
        dependencies=[Depends(authorised)],
        responses=error_responses(401, 403),
        generate_unique_id_function=operation_name,
    )

    add_subscriber_routes(router, context)
    add_interest_routes(router, context)
    add_digest_routes(router, context.storage)
    add_channel_routes(router, context)
    add_operations_routes(router, context)
    return router

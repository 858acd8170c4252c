"""What the admin API's routes share: error responses, id and paging parameters, the 404."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import HTTPException, Query
from fastapi import Path as PathParam

from notifier import models
from notifier.storage import Storage
from notifier.web.api.schemas import Problem

# Ids are PostgreSQL integers: no row has a larger one, and the driver refuses to
# look one up (a 500), so the spec bounds every id a client can send.
MAX_ID = 2**31 - 1

_ERRORS: dict[int, dict[str, Any]] = {
    # FastAPI's own answer to a body that is not text (say, not UTF-8).
    400: {"model": Problem, "description": "The body cannot be read as JSON text."},
    401: {
        "model": Problem,
        "description": "No bearer token, or not the admin token.",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    },
    403: {"model": Problem, "description": "The admin API is off: no admin_token is set."},
    404: {"model": Problem, "description": "There is no subscriber with this id."},
    409: {"model": Problem, "description": "A subscriber with this address already exists."},
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI description of the given error responses."""
    return {code: _ERRORS[code] for code in codes}


SubscriberId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="The subscriber's id.")]
After = Annotated[
    int, Query(ge=0, le=MAX_ID, description="Only ids above this: the last page's next_after.")
]


def found(storage: Storage, subscriber_id: int) -> models.Subscriber:
    """Return the subscriber with this id, or raise the 404."""
    subscriber = storage.subscriber_by_id(subscriber_id)
    if subscriber is None:
        raise missing(subscriber_id)
    return subscriber


def missing(subscriber_id: int) -> HTTPException:
    """Return the 404 for a subscriber id nobody has."""
    return HTTPException(404, f"there is no subscriber with id {subscriber_id}")

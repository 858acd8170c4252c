"""The admin JSON API under /api/v1, behind a bearer token, described by OpenAPI.

Requests and responses are pydantic models, so /api/v1/openapi.json says exactly
what each route takes and gives. Input goes through the validators the CLI and
the web forms use (addresses, queries, clocks), and any problem is a 422 naming
the field. Nothing secret is ever returned: no feed or manage token, no
credentials in a source's URL, no digest content.

schemas.py holds the request and response models; this module the routes.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from notifier import models
from notifier.models import DigestOutcome, DigestRecord, IngestRun, JobRun
from notifier.sources import source_report
from notifier.storage import Storage
from notifier.web.api.schemas import (
    DigestOut,
    DigestOutcomeOut,
    DigestPage,
    DigestStatus,
    IngestRunOut,
    InterestList,
    InterestOut,
    JobRunOut,
    NewSubscriber,
    Problem,
    RunsOut,
    SourceOut,
    SubscriberChanges,
    SubscriberOut,
    SubscriberPage,
    SubscriberStatus,
)
from notifier.web.context import WebContext
from notifier.web.feeds import remove_private_feed

log = logging.getLogger("notifier.web")

# Ids are PostgreSQL integers: no row has a larger one, and the driver refuses to
# look one up (a 500), so the spec bounds every id a client can send.
MAX_ID = 2**31 - 1
# A URL inside an error message (fetch errors name the URL they fetched).
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)

# -- responses shown ------------------------------------------------------------


def subscriber_out(subscriber: models.Subscriber) -> SubscriberOut:
    """Return what the API shows of a subscriber (never feed_token or manage_token)."""
    return SubscriberOut(
        id=subscriber.id,
        email=subscriber.email,
        name=subscriber.name,
        status=subscriber.status,
        interests=interests_out(subscriber.interests),
        max_papers=subscriber.max_papers,
        cadence=subscriber.cadence,
        send_time=subscriber.send_time,
        timezone=subscriber.timezone,
        weekday=subscriber.weekday,
        empty_note=subscriber.empty_note,
        created_at=subscriber.created_at,
        confirmed_at=subscriber.confirmed_at,
        unsubscribed_at=subscriber.unsubscribed_at,
    )


def interests_out(interests: tuple[models.Interest, ...]) -> list[InterestOut]:
    """Return stored interests as the API shows them."""
    return [
        InterestOut(name=i.name, query=i.query, about=i.about, sensitivity=i.sensitivity)
        for i in interests
    ]


def digest_outcome_out(outcome: DigestOutcome) -> DigestOutcomeOut:
    """Return one line of a subscriber's digest history."""
    return DigestOutcomeOut.model_validate(outcome, from_attributes=True)


def digest_out(record: DigestRecord) -> DigestOut:
    """Return a digest's delivery state."""
    return DigestOut.model_validate(record, from_attributes=True)


def ingest_run_out(run: IngestRun) -> IngestRunOut:
    """Return one ingest run, URLs in its source (ad hoc ones) and error without secrets."""
    shown = IngestRunOut.model_validate(run, from_attributes=True)
    return shown.model_copy(
        update={
            "source": without_secrets(run.source),
            "error": run.error and without_secrets(run.error),
        }
    )


def job_run_out(run: JobRun) -> JobRunOut:
    """Return one job run, URLs in its detail shown without secrets."""
    shown = JobRunOut.model_validate(run, from_attributes=True)
    return shown.model_copy(update={"detail": without_secrets(run.detail)})


def public_url(url: str) -> str:
    """Return a URL without credentials or query, either of which may hold a key."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(a URL that cannot be parsed)"
    if not parts.scheme or not parts.netloc:
        return url  # a file path (snapshots)
    host = parts.hostname or ""
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def without_secrets(text: str) -> str:
    """Return a message or name with every URL in it shown as public_url shows it."""
    return _URL.sub(lambda m: public_url(m.group()), text)


# -- routes ---------------------------------------------------------------------

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


_WHERE = "The new subscriber's URL."


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI description of the given error responses."""
    return {code: _ERRORS[code] for code in codes}


SubscriberId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="The subscriber's id.")]
After = Annotated[
    int, Query(ge=0, le=MAX_ID, description="Only ids above this: the last page's next_after.")
]
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
    add_operations_routes(router, context)
    return router


def add_subscriber_routes(router: APIRouter, context: WebContext) -> None:
    """Add listing, creating, reading, changing, suspending and deleting subscribers."""
    storage = context.storage
    feeds_dir = context.settings.feeds_dir

    @router.get(
        "/subscribers",
        response_model=SubscriberPage,
        response_description="A page of subscribers.",
        tags=["subscribers"],
    )
    def list_subscribers(
        status: Annotated[SubscriberStatus | None, Query(description="Only this status.")] = None,
        after: After = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> SubscriberPage:
        """List subscribers in id order, a page at a time."""
        # One more than asked says whether another page follows.
        page = storage.subscriber_page(after, limit + 1, status)
        more = len(page) > limit
        return SubscriberPage(
            items=[subscriber_out(s) for s in page[:limit]],
            next_after=page[limit - 1].id if more else None,
        )

    @router.post(
        "/subscribers",
        response_model=SubscriberOut,
        status_code=201,
        response_description="The subscriber created.",
        responses={
            201: {"headers": {"Location": {"schema": {"type": "string"}, "description": _WHERE}}},
            **error_responses(400, 409),
        },
        tags=["subscribers"],
    )
    def create_subscriber(
        new: NewSubscriber, request: Request, response: Response
    ) -> SubscriberOut:
        """Create an active (or paused) subscriber; no confirmation email is sent."""
        created = storage.create_subscriber(
            new.email,
            new.name or None,
            new.interests.interests(),
            context.clock(),
            max_papers=new.max_papers,
            schedule=new.schedule(),
            status=new.status,
        )
        if created is None:
            raise HTTPException(409, f"a subscriber with the address {new.email} already exists")
        log.info("admin API: created subscriber %d", created.id)
        response.headers["Location"] = str(
            request.url_for("get_subscriber", subscriber_id=created.id)
        )
        return subscriber_out(created)

    @router.get(
        "/subscribers/{subscriber_id}",
        response_model=SubscriberOut,
        response_description="The subscriber.",
        responses=error_responses(404),
        tags=["subscribers"],
    )
    def get_subscriber(subscriber_id: SubscriberId) -> SubscriberOut:
        """Return one subscriber."""
        return subscriber_out(found(storage, subscriber_id))

    @router.patch(
        "/subscribers/{subscriber_id}",
        response_model=SubscriberOut,
        response_description="The subscriber as changed.",
        responses=error_responses(400, 404),
        tags=["subscribers"],
    )
    def update_subscriber(subscriber_id: SubscriberId, changes: SubscriberChanges) -> SubscriberOut:
        """Change what is given: name, interests (the whole list), clock, cap, status."""
        unsubscribing = changes.status == "unsubscribed"
        updated = storage.update_preferences(
            subscriber_id,
            name=(changes.name or "") if "name" in changes.model_fields_set else None,
            chosen=changes.interests.interests() if changes.interests else None,
            schedule=changes.schedule(),
            # Unsubscribing also records when, as the unsubscribe link does.
            status=None if unsubscribing else changes.status,
            max_papers=changes.max_papers,
        )
        if updated is None:
            raise missing(subscriber_id)
        if unsubscribing or changes.interests:
            # Gone, or rebuilt with the new interests when next asked for.
            remove_private_feed(feeds_dir, updated.feed_token)
        if unsubscribing:
            storage.unsubscribe(subscriber_id, context.clock())
            updated = found(storage, subscriber_id)
        return subscriber_out(updated)

    @router.delete(
        "/subscribers/{subscriber_id}",
        status_code=204,
        response_class=Response,
        response_description="Deleted.",
        responses=error_responses(404),
        tags=["subscribers"],
    )
    def delete_subscriber(subscriber_id: SubscriberId) -> None:
        """Delete a subscriber with their interests, digests and private feed."""
        subscriber = found(storage, subscriber_id)
        if not storage.delete_subscriber(subscriber_id):
            raise missing(subscriber_id)
        remove_private_feed(feeds_dir, subscriber.feed_token)
        log.info("admin API: deleted subscriber %d", subscriber_id)

    @router.post(
        "/subscribers/{subscriber_id}/suspend",
        response_model=SubscriberOut,
        response_description="The subscriber, suspended.",
        responses=error_responses(404),
        tags=["subscribers"],
    )
    def suspend_subscriber(subscriber_id: SubscriberId) -> SubscriberOut:
        """Stop a subscriber's digests, as repeated hard bounces do; PATCH status to resume."""
        updated = storage.update_preferences(subscriber_id, status="suspended")
        if updated is None:
            raise missing(subscriber_id)
        log.info("admin API: suspended subscriber %d", subscriber_id)
        return subscriber_out(updated)


def add_interest_routes(router: APIRouter, context: WebContext) -> None:
    """Add reading and replacing a subscriber's interests."""
    storage = context.storage

    @router.get(
        "/subscribers/{subscriber_id}/interests",
        response_model=list[InterestOut],
        response_description="The interests, in order.",
        responses=error_responses(404),
        tags=["interests"],
    )
    def list_interests(subscriber_id: SubscriberId) -> list[InterestOut]:
        """Return a subscriber's interests in order."""
        return interests_out(found(storage, subscriber_id).interests)

    @router.put(
        "/subscribers/{subscriber_id}/interests",
        response_model=list[InterestOut],
        response_description="The interests as stored, in order.",
        responses=error_responses(400, 404),
        tags=["interests"],
    )
    def replace_interests(
        subscriber_id: SubscriberId, interests: InterestList
    ) -> list[InterestOut]:
        """Replace a subscriber's interests with the list given."""
        updated = storage.update_preferences(subscriber_id, chosen=interests.interests())
        if updated is None:
            raise missing(subscriber_id)
        # Rebuilt with the new interests when next asked for.
        remove_private_feed(context.settings.feeds_dir, updated.feed_token)
        return interests_out(updated.interests)


def add_digest_routes(router: APIRouter, storage: Storage) -> None:
    """Add a subscriber's digest history and the list of all digests."""

    @router.get(
        "/subscribers/{subscriber_id}/digests",
        response_model=list[DigestOutcomeOut],
        response_description="The latest digests, newest first.",
        responses=error_responses(404),
        tags=["digests"],
    )
    def subscriber_digests(
        subscriber_id: SubscriberId, limit: Annotated[int, Query(ge=1, le=100)] = 20
    ) -> list[DigestOutcomeOut]:
        """Return a subscriber's latest digests, newest first."""
        found(storage, subscriber_id)
        return [digest_outcome_out(d) for d in storage.digest_history(subscriber_id, limit)]

    @router.get(
        "/digests",
        response_model=DigestPage,
        response_description="A page of digests.",
        tags=["digests"],
    )
    def list_digests(
        status: Annotated[DigestStatus | None, Query(description="Only this status.")] = None,
        after: After = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> DigestPage:
        """List digests in id order, a page at a time, with their delivery state."""
        page = storage.digest_page(after, limit + 1, status)
        more = len(page) > limit
        return DigestPage(
            items=[digest_out(d) for d in page[:limit]],
            next_after=page[limit - 1].id if more else None,
        )


def add_operations_routes(router: APIRouter, context: WebContext) -> None:
    """Add the latest runs and the sources' health."""
    storage = context.storage

    @router.get(
        "/runs", response_model=RunsOut, response_description="The latest runs.", tags=["runs"]
    )
    def list_runs(limit: Annotated[int, Query(ge=1, le=200)] = 20) -> RunsOut:
        """Return the latest ingest runs and the latest run of each scheduled job."""
        return RunsOut(
            ingest=[ingest_run_out(r) for r in storage.ingest_runs(limit)],
            jobs=[job_run_out(r) for r in storage.last_job_runs()],
        )

    @router.get(
        "/sources",
        response_model=list[SourceOut],
        response_description="Every source, configured ones first.",
        tags=["sources"],
    )
    def list_sources() -> list[SourceOut]:
        """Return every listing source, configured or ingested ad hoc, with its health."""
        configured_names = {s.name for s in context.settings.sources}
        rows = source_report(context.settings, storage.sources_health(), context.clock())
        return [
            SourceOut(
                # A source ingested ad hoc is named by its URL.
                name=without_secrets(row["name"]),
                kind=row["kind"],
                url=public_url(row["url"]),
                configured=row["name"] in configured_names,
                every=row["every"],
                due=row["due"],
                last_checked_at=row["last_checked_at"],
                last_status=row["last_status"],
                last_papers=row["last_papers"],
                last_error=row["last_error"] and without_secrets(row["last_error"]),
                consecutive_failures=row["consecutive_failures"],
                failing=row["failing"],
            )
            for row in rows
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

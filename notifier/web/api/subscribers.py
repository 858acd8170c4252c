"""The admin API's subscriber routes: list, create, read, change, suspend, delete, interests,
and what they taught their interests (ratings, imported libraries, muted authors)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError

from notifier import models
from notifier.errors import LibraryError, SubscriberError
from notifier.teaching import import_library_into
from notifier.web.api.common import MAX_ID, After, SubscriberId, error_responses, found, missing
from notifier.web.api.schemas import (
    ExampleOut,
    ImportOut,
    InterestList,
    InterestOut,
    LibraryImportOut,
    LibraryUpload,
    MutedAuthorOut,
    NewSubscriber,
    RatingsOut,
    SubscriberChanges,
    SubscriberImport,
    SubscriberOut,
    SubscriberPage,
    SubscriberStatus,
)
from notifier.web.context import WebContext
from notifier.web.feeds import remove_private_feed

log = logging.getLogger("notifier.web")

_WHERE = "The new subscriber's URL."

ExampleId = Annotated[
    int, PathParam(ge=1, le=MAX_ID, description="The example's id (from the ratings list).")
]
InterestName = Annotated[
    str, PathParam(min_length=1, max_length=200, description="The interest's name.")
]


def _not_found(description: str) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI description of a 404 that has more than one cause."""
    return {404: {**error_responses(404)[404], "description": description}}


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
        context.embed_interests_soon(created)
        response.headers["Location"] = str(
            request.url_for("get_subscriber", subscriber_id=created.id)
        )
        return subscriber_out(created)

    @router.post(
        "/subscribers/import",
        response_model=ImportOut,
        status_code=202,
        response_description="What was imported; the interests are embedded in the background.",
        responses={
            **error_responses(400),
            413: {
                "description": "The body is over 8 MiB: send the subscribers in several requests.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
        },
        tags=["subscribers"],
    )
    def import_subscribers(batch: SubscriberImport) -> ImportOut:
        """Add many active subscribers at once, all or none; present addresses stay as they are.

        No confirmation email is sent. Their interests are embedded in the
        background (a few hundred a second) and match by their words until
        then; interests_to_embed says how many are left.
        """
        listed = [(s.email, s.name or None, s.interests.interests()) for s in batch.subscribers]
        if len({email.lower() for email, _, _ in listed}) < len(listed):
            raise HTTPException(400, "an address is listed twice")
        created = storage.add_subscribers(listed, context.clock())
        log.info("admin API: imported %d subscriber(s)", created)
        return ImportOut(
            created=created,
            already_subscribed=len(listed) - created,
            interests_to_embed=context.embed_pending_soon(),
        )

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
            now=context.clock(),
            max_papers=changes.max_papers,
        )
        if updated is None:
            raise missing(subscriber_id)
        if unsubscribing or changes.interests:
            # Gone, or rebuilt with the new interests when next asked for.
            remove_private_feed(feeds_dir, updated.feed_token)
        if changes.interests and not unsubscribing:
            context.embed_interests_soon(updated)
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
        updated = storage.update_preferences(
            subscriber_id, status=models.SubscriberStatus.SUSPENDED, now=context.clock()
        )
        if updated is None:
            raise missing(subscriber_id)
        log.info("admin API: suspended subscriber %d", subscriber_id)
        return subscriber_out(updated)


def add_interest_routes(router: APIRouter, context: WebContext) -> None:
    """Add reading and replacing a subscriber's interests, and the papers that teach them."""
    storage = context.storage
    _add_example_routes(router, context)

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
        updated = storage.update_preferences(
            subscriber_id, chosen=interests.interests(), now=context.clock()
        )
        if updated is None:
            raise missing(subscriber_id)
        # Rebuilt with the new interests when next asked for.
        remove_private_feed(context.settings.feeds_dir, updated.feed_token)
        context.embed_interests_soon(updated)
        return interests_out(updated.interests)


def _add_example_routes(router: APIRouter, context: WebContext) -> None:
    """Add listing and removing a subscriber's example papers, and importing a library."""
    storage = context.storage

    @router.get(
        "/subscribers/{subscriber_id}/ratings",
        response_model=RatingsOut,
        response_description="Their interests' example papers and their muted authors.",
        responses=error_responses(404),
        tags=["ratings"],
    )
    def list_ratings(subscriber_id: SubscriberId) -> RatingsOut:
        """Return the papers a subscriber rated or imported, and the authors they muted."""
        found(storage, subscriber_id)
        return RatingsOut(
            examples=[
                ExampleOut(
                    id=e.id,
                    interest=e.interest,
                    interest_id=e.interest_id,
                    verdict=e.verdict.value,
                    origin=e.origin.value,
                    title=e.title,
                    paper_id=e.paper_id,
                    created_at=e.created_at,
                )
                for e in storage.examples_of(subscriber_id)
            ],
            muted_authors=[
                MutedAuthorOut(name=m.name, created_at=m.created_at)
                for m in storage.muted_authors_of(subscriber_id)
            ],
        )

    @router.delete(
        "/subscribers/{subscriber_id}/ratings/{example_id}",
        status_code=204,
        response_class=Response,
        response_description="Removed; the interest's next digest decides without it.",
        responses=_not_found("There is no subscriber with this id, or no such example of theirs."),
        tags=["ratings"],
    )
    def delete_rating(subscriber_id: SubscriberId, example_id: ExampleId) -> None:
        """Remove one of a subscriber's example papers: undo a rating, drop an imported paper."""
        found(storage, subscriber_id)
        if not storage.remove_example(subscriber_id, example_id, context.clock()):
            raise HTTPException(
                404, f"subscriber {subscriber_id} has no example paper with id {example_id}"
            )
        log.info("admin API: removed example %d of subscriber %d", example_id, subscriber_id)

    @router.post(
        "/subscribers/{subscriber_id}/interests/{name:path}/library",
        response_model=LibraryImportOut,
        response_description="How many papers were added.",
        responses={
            **error_responses(400),
            **_not_found("There is no subscriber with this id, or no interest of theirs so named."),
            413: {
                "description": "The body is over 6 MiB: send a smaller export.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
        },
        tags=["ratings"],
    )
    def import_library(
        subscriber_id: SubscriberId, name: InterestName, library: LibraryUpload
    ) -> LibraryImportOut:
        """Teach an interest by the papers of a BibTeX, RIS or CSL-JSON export, all or none.

        Each paper's title and abstract become a "more like this" example, as a
        rating does; papers the interest already holds are skipped. A file that
        cannot be read is a 422 saying why, and imports nothing.
        """
        subscriber = found(storage, subscriber_id)
        # A JSON string may hold lone surrogates, which UTF-8 cannot encode.
        data = library.content.encode("utf-8", "replace")
        try:
            added, _ = import_library_into(
                storage, subscriber, data, library.file_name, name, context.clock()
            )
        except SubscriberError as e:
            raise HTTPException(404, str(e)) from None
        except LibraryError as e:
            # The shape of every other 422: the field at fault and one line saying why.
            raise RequestValidationError(
                [{"type": "invalid", "loc": ("body", "content"), "msg": str(e)}]
            ) from None
        log.info(
            "admin API: imported %d paper(s) into an interest of subscriber %d",
            added,
            subscriber_id,
        )
        return LibraryImportOut(imported=added)

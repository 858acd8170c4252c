"""The admin API's digest routes: a subscriber's history and every digest's delivery state."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import Response

from notifier.citations import bibtex, digest_citation, ris
from notifier.models import DigestOutcome, DigestRecord
from notifier.storage import Storage
from notifier.web.api.common import MAX_ID, After, SubscriberId, error_responses, found
from notifier.web.api.schemas import DigestOut, DigestOutcomeOut, DigestPage, DigestStatus


def digest_outcome_out(outcome: DigestOutcome) -> DigestOutcomeOut:
    """Return one line of a subscriber's digest history."""
    return DigestOutcomeOut.model_validate(outcome, from_attributes=True)


def digest_out(record: DigestRecord) -> DigestOut:
    """Return a digest's delivery state."""
    return DigestOut.model_validate(record, from_attributes=True)


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

    @router.get(
        "/digests/{digest_id}/citations",
        # The text is returned as a Response, past the JSON encoder; errors stay JSON.
        response_model=None,
        responses={
            200: {
                "description": "The digest's papers as BibTeX or RIS.",
                "content": {
                    "application/x-bibtex": {"schema": {"type": "string"}},
                    "application/x-research-info-systems": {"schema": {"type": "string"}},
                },
            },
            **error_responses(404),
        },
        tags=["digests"],
    )
    def digest_citations(
        digest_id: Annotated[int, PathParam(ge=1, le=MAX_ID, description="The digest's id.")],
        format: Annotated[Literal["bibtex", "ris"], Query(description="bibtex or ris.")] = "bibtex",
    ) -> Response:
        """Return a digest's papers as BibTeX or RIS, for a reference manager."""
        found_digest = storage.digest_content(digest_id=digest_id)
        if found_digest is None:
            raise HTTPException(404, f"there is no digest with id {digest_id}")
        _, content, composed = found_digest
        papers = [paper for section in content.sections for paper in section.papers]
        citations = [digest_citation(paper, composed) for paper in papers]
        if format == "ris":
            return Response(
                ris(citations), media_type="application/x-research-info-systems; charset=utf-8"
            )
        return Response(bibtex(citations), media_type="application/x-bibtex; charset=utf-8")

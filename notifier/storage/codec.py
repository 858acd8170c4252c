"""Convert rows to models and frozen digest content to and from JSON. No business logic."""

from __future__ import annotations

from typing import Any

from notifier.models import (
    DigestContent,
    DigestPaper,
    DigestSection,
    Interest,
    Paper,
    StoredDigest,
    StoredPaper,
    Subscriber,
)
from notifier.papers import paper_url

CONTENT_VERSION = 1


def paper(row: Any) -> Paper:
    """Return the Paper of a papers row."""
    return Paper(
        id=row.id,
        key=row.key,
        guid=row.guid,
        title=row.title,
        abstract=row.abstract,
        # An arXiv page beats a feed's link; a feed's link beats a title search.
        url=paper_url(row.title, row.arxiv_id) if row.arxiv_id or not row.url else row.url,
        first_seen_at=row.first_seen_at,
        updated_at=row.updated_at,
        arxiv_id=row.arxiv_id,
        version=row.version,
        authors=tuple(row.authors or ()),
        meta=row.meta or {},
    )


def stored_paper(row: Any) -> StoredPaper:
    """Return the StoredPaper (what diff needs) of a papers row."""
    return StoredPaper(
        id=row.id,
        key=row.key,
        title=row.title,
        abstract=row.abstract,
        arxiv_id=row.arxiv_id,
        version=row.version,
        title_key=row.title_key or "",
        url=row.url,
        authors=tuple(row.authors or ()),
        meta=row.meta or {},
        published_at=row.published_at,
    )


def subscriber(row: Any, interests: tuple[Interest, ...]) -> Subscriber:
    """Return the Subscriber of a subscribers row and its interests."""
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        interests=interests,
        feed_token=row.feed_token,
        manage_token=row.manage_token,
        created_at=row.created_at,
        max_papers=row.max_papers,
        status=row.status,
    )


def stored_digest(row: Any, owner: Subscriber) -> StoredDigest:
    """Return the StoredDigest of a digests row."""
    return StoredDigest(
        id=row.id,
        subscriber=owner,
        content=content_from_json(row.content),
        status=row.status,
        message_id=row.message_id,
        created_at=row.created_at,
        attempts=row.attempts,
        last_error=row.last_error,
    )


def content_to_json(content: DigestContent) -> dict[str, Any]:
    """Return frozen digest content as JSON-ready data."""
    return {
        "version": CONTENT_VERSION,
        "subscriber_id": content.subscriber_id,
        "period": content.period,
        "more": content.more,
        "candidates": content.candidates,
        "reason": content.reason,
        "sections": [
            {
                "interest": s.interest,
                "papers": [
                    {
                        "paper_id": p.paper_id,
                        "guid": p.guid,
                        "title": p.title,
                        "abstract": p.abstract,
                        "url": p.url,
                        "score": p.score,
                        "reason": p.reason,
                        "terms": list(p.terms),
                        "also_matches": list(p.also_matches),
                        "authors": list(p.authors),
                        "upvotes": p.upvotes,
                        "code_url": p.code_url,
                        "summary": p.summary,
                    }
                    for p in s.papers
                ],
            }
            for s in content.sections
        ],
    }


def content_from_json(data: dict[str, Any]) -> DigestContent:
    """Return the DigestContent stored by content_to_json."""
    return DigestContent(
        subscriber_id=data["subscriber_id"],
        period=data["period"],
        more=data["more"],
        candidates=data["candidates"],
        reason=data["reason"],
        sections=tuple(
            DigestSection(
                interest=s["interest"],
                papers=tuple(
                    DigestPaper(
                        paper_id=p["paper_id"],
                        guid=p["guid"],
                        title=p["title"],
                        abstract=p["abstract"],
                        url=p["url"],
                        score=p["score"],
                        reason=p["reason"],
                        terms=tuple(p["terms"]),
                        also_matches=tuple(p["also_matches"]),
                        # Absent from digests frozen before sources carried them.
                        authors=tuple(p.get("authors", ())),
                        upvotes=p.get("upvotes"),
                        code_url=p.get("code_url"),
                        summary=p.get("summary"),
                    )
                    for p in s["papers"]
                ),
            )
            for s in data["sections"]
        ),
    )

"""Convert rows to models and frozen digest content to and from JSON. No business logic."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import orjson

from notifier.memo import IdentityMemo
from notifier.models import (
    Channel,
    ChannelKind,
    ChannelStatus,
    DigestContent,
    DigestPaper,
    DigestSection,
    DigestStatus,
    Interest,
    Paper,
    StoredDigest,
    StoredPaper,
    Subscriber,
    SubscriberStatus,
)
from notifier.papers import http_url, paper_url

CONTENT_VERSION = 2  # 2: papers refer to paper_cards rows; 1: inline


def json_text(value: Any) -> str:
    """Return value as JSON text for a JSON column: orjson, which parses and writes it 3-10x
    faster than the json module (a day's digests are 100,000 documents), else json.
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a non-string key
        return json.dumps(value)


def paper(row: Any) -> Paper:
    """Return the Paper of a papers row."""
    return Paper(
        id=row.id,
        key=row.key,
        guid=row.guid,
        title=row.title,
        abstract=row.abstract,
        # An arXiv page beats a feed's link; a feed's link beats a title search. A
        # link stored before links were checked at ingest counts only if http(s).
        url=(
            paper_url(row.title, row.arxiv_id) if row.arxiv_id or not http_url(row.url) else row.url
        ),
        first_seen_at=row.first_seen_at,
        updated_at=row.updated_at,
        arxiv_id=row.arxiv_id,
        version=row.version,
        authors=tuple(row.authors or ()),
        meta=row.meta or {},
        arrival=row.arrival,
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


def interest(row: Any) -> Interest:
    """Return an interest from its row."""
    return Interest(
        row.name,
        row.query,
        row.about,
        row.sensitivity,
        interest_id=row.id,
        changed_at=row.changed_at,
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
        status=SubscriberStatus(row.status),
        cadence=row.cadence,
        send_time=row.send_time,
        timezone=row.timezone,
        weekday=row.weekday,
        empty_note=bool(row.empty_note),
        confirmed_at=row.confirmed_at,
        unsubscribed_at=row.unsubscribed_at,
    )


def channel(row: Any) -> Channel:
    """Return a Channel from its row's mapping."""
    return Channel(
        id=row["id"],
        kind=ChannelKind(row["kind"]),
        label=row["label"],
        url=row["url"],
        subscriber_id=row["subscriber_id"],
        topic=row["topic"],
        room=row["room"],
        secret=row["secret"],
        status=ChannelStatus(row["status"]),
        failures=row["failures"],
        last_error=row["last_error"],
        created_at=row.get("created_at"),
        last_sent_at=row["last_sent_at"],
    )


def stored_digest(row: Any, owner: Subscriber, cards: Mapping[int, dict[str, Any]]) -> StoredDigest:
    """Return the StoredDigest of a digests row; cards holds the paper cards it refers to."""
    return StoredDigest(
        id=row.id,
        subscriber=owner,
        content=content_from_json(row.content, cards),
        status=DigestStatus(row.status),
        message_id=row.message_id,
        created_at=row.created_at,
        attempts=row.attempts,
        last_error=row.last_error,
        unknown_since=row.unknown_since,
    )


def card(paper: DigestPaper) -> dict[str, Any]:
    """Return what a digest shows of a paper that is the same for every subscriber."""
    return {
        "paper_id": paper.paper_id,
        "guid": paper.guid,
        "title": paper.title,
        "abstract": paper.abstract,
        "url": paper.url,
        "authors": list(paper.authors),
        "upvotes": paper.upvotes,
        "code_url": paper.code_url,
        "summary": paper.summary,
        # Only when known, so a paper without them keeps the card (and fingerprint)
        # it had before cards carried them.
        **({"arxiv_id": paper.arxiv_id} if paper.arxiv_id else {}),
        **({"project_url": paper.project_url} if paper.project_url else {}),
    }


def card_fingerprint(paper: DigestPaper) -> str:
    """Return the content address of a paper's card: sha256 of its canonical JSON."""
    return _fingerprint(
        paper.paper_id,
        paper.guid,
        paper.title,
        paper.abstract,
        paper.url,
        paper.authors,
        paper.upvotes,
        paper.code_url,
        paper.summary,
        paper.arxiv_id,
        paper.project_url,
    )


# Every digest of a day shows the same few hundred papers: hash each card once.
@functools.lru_cache(maxsize=65_536)
def _fingerprint(*fields: Any) -> str:
    """Return the sha256 of the card with these fields (in card order)."""
    data = dict(zip(_CARD_FIELDS, fields, strict=True))
    data["authors"] = list(data["authors"])
    for optional in _OPTIONAL_FIELDS:  # as card() writes them: only when known
        if data[optional] is None:
            del data[optional]
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


_CARD_FIELDS = (
    "paper_id",
    "guid",
    "title",
    "abstract",
    "url",
    "authors",
    "upvotes",
    "code_url",
    "summary",
    "arxiv_id",
    "project_url",
)
_OPTIONAL_FIELDS = ("arxiv_id", "project_url")


def content_to_json(content: DigestContent, card_ids: Mapping[str, int]) -> dict[str, Any]:
    """Return frozen digest content as JSON-ready data; papers refer to their cards by id.

    card_ids maps each paper's card fingerprint to its stored id.
    """
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
                **({"tuned_by": s.tuned_by} if s.tuned_by else {}),
                "papers": [
                    {
                        "card": card_ids[card_fingerprint(p)],
                        "score": p.score,
                        "reason": p.reason,
                        "terms": list(p.terms),
                        "also_matches": list(p.also_matches),
                    }
                    for p in s.papers
                ],
            }
            for s in content.sections
        ],
    }


def content_inline(content: DigestContent) -> dict[str, Any]:
    """Return frozen digest content as JSON-ready data with its papers inline (no cards).

    For a topic's digests, a handful a day; content_from_json reads it back as it
    reads digests frozen before cards.
    """
    papers = content.papers
    data = content_to_json(content, {card_fingerprint(p): k for k, p in enumerate(papers)})
    del data["version"]
    for section in data["sections"]:
        for entry in section["papers"]:
            entry.update(card(papers[entry.pop("card")]))
    return data


def card_ids(data: dict[str, Any]) -> set[int]:
    """Return the ids of the cards stored digest content refers to."""
    return {p["card"] for s in data["sections"] for p in s["papers"] if "card" in p}


def content_from_json(data: dict[str, Any], cards: Mapping[int, dict[str, Any]]) -> DigestContent:
    """Return the DigestContent stored by content_to_json (or inline, before cards: version 1)."""
    return DigestContent(
        subscriber_id=data["subscriber_id"],
        period=data["period"],
        more=data["more"],
        candidates=data["candidates"],
        reason=data["reason"],
        sections=tuple(
            DigestSection(
                interest=s["interest"],
                papers=tuple(_digest_paper(p, cards) for p in s["papers"]),
                tuned_by=s.get("tuned_by", 0),
            )
            for s in data["sections"]
        ),
    )


def _digest_paper(entry: dict[str, Any], cards: Mapping[int, dict[str, Any]]) -> DigestPaper:
    """Return one frozen paper from its card and the subscriber's own fields.

    A day's digests show a few hundred papers, each for a handful of reasons, so an
    equal entry on the same card object (storage caches cards by fingerprint) gets
    the paper built the first time: claiming 100 digests builds about 2,000 otherwise.
    """
    if "card" not in entry:
        return _new_digest_paper(entry, entry)
    shown = cards[entry["card"]]
    key = (
        id(shown),
        entry["score"],
        entry["reason"],
        tuple(entry["terms"]),
        tuple(entry["also_matches"]),
    )
    known = _PAPERS.get(key)
    if known is not None:
        return known
    return _PAPERS.put(key, shown, _new_digest_paper(entry, shown))


def _new_digest_paper(entry: dict[str, Any], shown: Mapping[str, Any]) -> DigestPaper:
    """Return a frozen paper from the card's fields (shown) and the subscriber's (entry)."""
    return DigestPaper(
        paper_id=shown["paper_id"],
        guid=shown["guid"],
        title=shown["title"],
        abstract=shown["abstract"],
        url=shown["url"],
        score=entry["score"],
        reason=entry["reason"],
        terms=tuple(entry["terms"]),
        also_matches=tuple(entry["also_matches"]),
        # Absent from digests frozen before sources carried them.
        authors=tuple(shown.get("authors", ())),
        upvotes=shown.get("upvotes"),
        code_url=shown.get("code_url"),
        summary=shown.get("summary"),
        arxiv_id=shown.get("arxiv_id"),
        project_url=shown.get("project_url"),
    )


_PAPERS: IdentityMemo[DigestPaper] = IdentityMemo(65_536)  # about 20 MB at most

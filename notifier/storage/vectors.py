"""Embeddings of papers and interests: stored once per model, found missing in bulk."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from notifier.models import Interest, SubscriberStatus
from notifier.storage import codec
from notifier.storage.base import StorageBase, _chunks
from notifier.storage.schema import interest_vectors, interests, paper_vectors, subscribers


class VectorsMixin(StorageBase):
    """Keep paper and interest embeddings; find the interests still without them."""

    def paper_vectors(self, paper_ids: Iterable[int], model: str) -> dict[int, bytes]:
        """Return stored paper embeddings (float32 bytes) by paper id."""
        found: dict[int, bytes] = {}
        with self._read() as conn:
            for chunk in _chunks(sorted(set(paper_ids)), 500):
                query = select(paper_vectors.c.paper_id, paper_vectors.c.vector).where(
                    paper_vectors.c.model == model, paper_vectors.c.paper_id.in_(chunk)
                )
                found.update({row.paper_id: row.vector for row in conn.execute(query)})
        return found

    def save_paper_vectors(self, vectors: Mapping[int, bytes], model: str) -> None:
        """Store paper embeddings computed by the caller (idempotent per paper and model)."""
        if not vectors:
            return
        rows = [{"paper_id": i, "model": model, "vector": v} for i, v in vectors.items()]
        try:
            with self._tx() as conn:
                conn.execute(insert(paper_vectors), rows)
        except IntegrityError:
            # Another process embedded some of them meanwhile; store the rest one by one.
            for row in rows:
                try:
                    with self._tx() as conn:
                        conn.execute(insert(paper_vectors), [row])
                except IntegrityError:
                    continue

    def interest_vectors(
        self, interest_ids: Iterable[int], model: str
    ) -> dict[int, tuple[str, bytes]]:
        """Return stored interest embeddings as (text hash, float32 bytes) by interest id."""
        found: dict[int, tuple[str, bytes]] = {}
        with self._read() as conn:
            for chunk in _chunks(sorted(set(interest_ids)), 500):
                query = select(interest_vectors).where(
                    interest_vectors.c.model == model, interest_vectors.c.interest_id.in_(chunk)
                )
                found.update({r.interest_id: (r.text_hash, r.vectors) for r in conn.execute(query)})
        return found

    def interests_to_embed(self, model: str, after: int, limit: int) -> list[Interest]:
        """Return up to limit interests with no embeddings for model, by id, after id after.

        (An interest whose text changed keeps its old vectors until it is
        embedded again; composing notices the change.)
        """
        query = (
            select(interests)
            .join(subscribers, subscribers.c.id == interests.c.subscriber_id)
            .where(interests.c.id > after, *_not_embedded(model))
            .order_by(interests.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [codec.interest(r) for r in conn.execute(query)]

    def count_interests_to_embed(self, model: str) -> int:
        """Return how many interests interests_to_embed would give in all."""
        query = (
            select(func.count())
            .select_from(interests.join(subscribers, subscribers.c.id == interests.c.subscriber_id))
            .where(*_not_embedded(model))
        )
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def save_interest_vectors(self, rows: Sequence[tuple[int, str, bytes]], model: str) -> None:
        """Store (or replace) interests' embeddings: (interest id, text hash, float32 bytes)."""
        if not rows:
            return
        try:
            with self._tx() as conn:
                for chunk in _chunks([interest_id for interest_id, _, _ in rows], 500):
                    conn.execute(
                        delete(interest_vectors).where(
                            interest_vectors.c.interest_id.in_(chunk),
                            interest_vectors.c.model == model,
                        )
                    )
                conn.execute(
                    insert(interest_vectors),
                    [
                        {"interest_id": i, "model": model, "text_hash": h, "vectors": data}
                        for i, h, data in rows
                    ],
                )
        except IntegrityError:
            # A concurrent run stored some of these first; embeddings are
            # deterministic, so theirs are as good as ours.
            return


def _not_embedded(model: str) -> list[Any]:
    """Return the conditions on interests (joined to subscribers) still to embed for model.

    Those of active and paused subscribers and pending sign-ups, the ones who
    may get a digest, with no embeddings for model.
    """
    embedded = (
        select(interest_vectors.c.interest_id)
        .where(interest_vectors.c.interest_id == interests.c.id, interest_vectors.c.model == model)
        .exists()
    )
    may_get_digests = subscribers.c.status.in_(
        (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED, SubscriberStatus.PENDING)
    )
    return [~embedded, may_get_digests]

"""Lease due digests to senders and record how each attempt ended."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import SQLAlchemyError

from notifier import collector
from notifier.errors import StorageError
from notifier.models import DigestContent, DigestStatus, StoredDigest, SubscriberStatus
from notifier.storage import codec
from notifier.storage.base import StorageBase, _chunks, _one_line
from notifier.storage.schema import DUE_STATUSES, UtcDateTime, digests, paper_cards, subscribers

# Digests waiting for their first or next attempt (ix_digests_due also holds the
# sending ones, whose lease may expire).
_RETRYABLE = (DigestStatus.PENDING, DigestStatus.UNKNOWN)

# What a digest put back for a later attempt becomes: unknown once an attempt may
# have arrived (unknown_since is set), else pending. The values, not the members:
# a bare member gets no SQL type, so PostgreSQL would lose its ::VARCHAR casts.
_PUT_BACK = case(
    (digests.c.unknown_since.is_not(None), DigestStatus.UNKNOWN.value),
    else_=DigestStatus.PENDING.value,
)


class SendingMixin(StorageBase):
    """Claim digests under a lease, renew or release it, and mark outcomes."""

    def claim_digests(
        self,
        worker: str,
        limit: int,
        now: datetime,
        lease: timedelta,
        due_by: datetime | None = None,
    ) -> list[StoredDigest]:
        """Lease up to limit digests that are due: pending or unknown whose next attempt
        comes by due_by (default now), or sending whose lease expired (a worker died).
        Called by the sender, which passes its start time so a digest it deferred
        waits for a later run instead of being retried again at once.

        PostgreSQL skips rows other workers hold (FOR UPDATE SKIP LOCKED); SQLite
        has one writer, and every transaction here starts with BEGIN IMMEDIATE.
        Each digest's subscriber comes without interests: rendering does not use them.
        """
        # A claim builds a hundred digests' objects that live until they are sent.
        with collector.paused():
            return self._lease_and_load(worker, limit, now, lease, due_by)

    def _lease_and_load(
        self, worker: str, limit: int, now: datetime, lease: timedelta, due_by: datetime | None
    ) -> list[StoredDigest]:
        """Lease due digests and load them with their subscribers and cards (claim_digests)."""
        expired = and_(digests.c.status == DigestStatus.SENDING, digests.c.lease_until < now)
        due = and_(
            digests.c.status.in_(_RETRYABLE),
            or_(digests.c.next_attempt_at.is_(None), digests.c.next_attempt_at <= (due_by or now)),
        )
        active = (
            select(subscribers.c.id)
            .where(
                subscribers.c.id == digests.c.subscriber_id,
                subscribers.c.status == SubscriberStatus.ACTIVE,
            )
            .exists()
        )
        with self._tx() as conn:
            ids: list[int] = []
            # Two plain scans in id order (the partial index ix_digests_due), so the
            # plan never depends on statistics, which are stale right after composing.
            for condition in (expired, due):
                query: Any = (
                    select(digests.c.id)
                    .where(condition, active)
                    .order_by(digests.c.id)
                    .limit(limit - len(ids))
                )
                if self.engine.dialect.name == "postgresql":
                    query = query.with_for_update(skip_locked=True, of=digests)
                elif condition is due:
                    query = _SQLITE_DUE.bindparams(due_by=due_by or now, limit=limit - len(ids))
                ids += conn.execute(query).scalars()
                if len(ids) >= limit:
                    break
            if not ids:
                return []
            # One round trip leases and reads them (RETURNING: PostgreSQL, SQLite 3.35+).
            leased = conn.execute(
                update(digests)
                .where(self._among(digests.c.id, ids))
                .values(
                    status=DigestStatus.SENDING,
                    lease_owner=worker,
                    lease_until=now + lease,
                    attempts=digests.c.attempts + 1,
                )
                .returning(*_CLAIMED)
            )
            rows = sorted(leased.all(), key=lambda r: int(r.id))
            # Without interests: rendering needs only the address, name and tokens,
            # and the interests were a second query and most of the objects built.
            owners = {
                r.id: codec.subscriber(r, ())
                for r in conn.execute(
                    select(subscribers).where(
                        self._among(subscribers.c.id, sorted({r.subscriber_id for r in rows}))
                    )
                ).all()
            }
            cards = self._cards(conn, {i for r in rows for i in codec.card_ids(r.content)})
        return [codec.stored_digest(r, owners[r.subscriber_id], cards) for r in rows]

    def digest_content(
        self, *, digest_id: int | None = None, message_id: str | None = None
    ) -> tuple[int, DigestContent, datetime] | None:
        """Return a digest's subscriber id, frozen content and composing time, or None.

        The digest is named by its id or by its Message-ID (what a citations link carries).
        """
        condition = (
            digests.c.id == digest_id
            if digest_id is not None
            else digests.c.message_id == message_id
        )
        query = select(digests.c.subscriber_id, digests.c.content, digests.c.created_at).where(
            condition
        )
        with self._read() as conn:
            row = conn.execute(query).first()
            if row is None:
                return None
            cards = self._cards(conn, codec.card_ids(row.content))
        return row.subscriber_id, codec.content_from_json(row.content, cards), row.created_at

    def _cards(self, conn: Connection, card_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Return stored paper cards by id, reading each card's JSON once per process.

        Every batch of a day's digests refers to the same few hundred cards; only
        their fingerprints are read again, so a card id reused after a reset can
        never bring back another card.
        """
        found: dict[int, dict[str, Any]] = {}
        missing: dict[str, int] = {}
        for chunk in self._id_chunks(card_ids):
            query = select(paper_cards.c.id, paper_cards.c.fingerprint).where(
                self._among(paper_cards.c.id, chunk)
            )
            for card_id, fingerprint in conn.execute(query):
                card = _CARD_CACHE.get(fingerprint)
                if card is None:
                    missing[fingerprint] = card_id
                else:
                    found[card_id] = card
        for chunk in _chunks(sorted(missing), 500):
            query = select(paper_cards.c.fingerprint, paper_cards.c.card).where(
                paper_cards.c.fingerprint.in_(chunk)
            )
            for fingerprint, card in conn.execute(query):
                found[missing[fingerprint]] = _CARD_CACHE.put(fingerprint, card)
        return found

    def finish_sent(self, worker: str, sent: Sequence[tuple[int, str]], now: datetime) -> int:
        """Mark digests the server accepted as sent, in one transaction, if this worker holds them.

        Returns how many were marked; a digest whose lease another worker took over
        is left to that worker. Raises StorageError when the marks cannot be committed.
        """
        if not sent:
            return 0
        try:
            with self._tx() as conn:
                if self.engine.dialect.name == "postgresql":
                    # A killed sender loses nothing committed; only a crash of the
                    # database server itself could drop the last marks, and that means
                    # resending those messages (same Message-ID), never skipping them.
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                    # One statement with the marks as arrays, not one per mark
                    # (executemany), which psycopg builds and sends in Python.
                    ids, replies = zip(*sent, strict=True)
                    marked = conn.execute(
                        _PG_MARK_SENT,
                        {
                            "mark_ids": list(ids),
                            "mark_replies": list(replies),
                            "mark_owner": worker,
                            "mark_now": now,
                        },
                    )
                    return int(marked.rowcount)
                marks = [
                    {"mark_id": digest_id, "mark_owner": worker, "mark_now": now, "mark_reply": r}
                    for digest_id, r in sent
                ]
                return int(conn.execute(_MARK_SENT, marks).rowcount)
        except SQLAlchemyError as e:
            # The sender stops on this: say what the database said, on one line.
            raise StorageError(f"database error: {_one_line(getattr(e, 'orig', e))}") from e

    def recover_sent(self, marks: Sequence[tuple[int, str, datetime]]) -> int:
        """Record as sent digests a stopped sender's journal says were accepted; return how many.

        Whoever holds them now (a lease expired and another worker took one over)
        or whatever state they were put in, the server accepted them: they are
        sent. Digests already sent are left alone.
        """
        rows = [
            {"mark_id": digest_id, "mark_now": accepted_at, "mark_reply": reply}
            for digest_id, reply, accepted_at in marks
        ]
        if not rows:
            return 0
        try:
            with self._tx() as conn:
                return int(conn.execute(_RECOVER_SENT, rows).rowcount)
        except SQLAlchemyError as e:
            raise StorageError(f"database error: {_one_line(getattr(e, 'orig', e))}") from e

    def finish_retry(
        self,
        worker: str,
        digest_id: int,
        error: str,
        next_attempt: datetime,
        *,
        unknown: bool,
        now: datetime | None = None,
    ) -> None:
        """Put a digest back for a later attempt: status unknown when this attempt or an
        earlier one may have arrived (unknown_since is set from now on), else pending.
        """
        changes: dict[str, Any] = {
            "status": _PUT_BACK if not unknown else DigestStatus.UNKNOWN,
            "last_error": error,
            "next_attempt_at": next_attempt,
            "lease_owner": None,
            "lease_until": None,
        }
        if unknown:
            since = literal(now or next_attempt, UtcDateTime())
            changes["unknown_since"] = func.coalesce(digests.c.unknown_since, since)
        with self._tx() as conn:
            conn.execute(update(digests).where(*_held(digest_id, worker)).values(**changes))

    def finish_unconfirmed(self, worker: str, digest_id: int, error: str, now: datetime) -> None:
        """Give up on a digest that may have arrived: no more tries, never called failed."""
        with self._tx() as conn:
            conn.execute(
                update(digests)
                .where(*_held(digest_id, worker))
                .values(
                    status=DigestStatus.UNCONFIRMED,
                    last_error=error,
                    next_attempt_at=None,
                    unknown_since=func.coalesce(
                        digests.c.unknown_since, literal(now, UtcDateTime())
                    ),
                    lease_owner=None,
                    lease_until=None,
                )
            )

    def renew_leases(
        self, worker: str, digest_ids: Iterable[int], now: datetime, lease: timedelta
    ) -> set[int]:
        """Extend this worker's leases on digests it still holds; return the ids it holds.

        A digest whose lease expired and was taken over by another worker is not
        returned: its old holder must not send it.
        """
        ids = sorted(set(digest_ids))
        if not ids:
            return set()
        with self._tx() as conn:
            held = conn.execute(
                update(digests)
                .where(
                    self._among(digests.c.id, ids),
                    digests.c.lease_owner == worker,
                    digests.c.status == DigestStatus.SENDING,
                    digests.c.lease_until >= now,
                )
                .values(lease_until=now + lease)
                .returning(digests.c.id)
            )
            return {int(i) for i in held.scalars()}

    def finish_failed(
        self, worker: str, digest_id: int, error: str, hard_bounce: bool, bounce_limit: int
    ) -> bool:
        """Fail a digest for good; a hard bounce counts against the subscriber.

        Returns whether the subscriber was suspended (bounce_limit reached).
        """
        with self._tx() as conn:
            owner = conn.execute(
                update(digests)
                .where(*_held(digest_id, worker))
                .values(
                    status=DigestStatus.FAILED, last_error=error, lease_owner=None, lease_until=None
                )
                .returning(digests.c.subscriber_id)
            ).scalar_one_or_none()
            if owner is None or not hard_bounce:
                return False
            bounces = conn.execute(
                update(subscribers)
                .where(subscribers.c.id == owner)
                .values(hard_bounces=subscribers.c.hard_bounces + 1)
                .returning(subscribers.c.hard_bounces)
            ).scalar_one()
            if bounces < bounce_limit:
                return False
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == owner)
                .values(status=SubscriberStatus.SUSPENDED)
            )
            return True

    def release_leases(self, worker: str, digest_ids: Iterable[int]) -> int:
        """Give back claimed digests that were never attempted (a stopping worker)."""
        ids = list(digest_ids)
        if not ids:
            return 0
        with self._tx() as conn:
            return int(
                conn.execute(
                    update(digests)
                    .where(
                        digests.c.id.in_(ids),
                        digests.c.lease_owner == worker,
                        digests.c.status == DigestStatus.SENDING,
                    )
                    .values(
                        # Given back untried: unknown stays unknown (it may have arrived).
                        status=_PUT_BACK,
                        attempts=digests.c.attempts - 1,
                        lease_owner=None,
                        lease_until=None,
                    )
                ).rowcount
            )

    def waiting_digests(self) -> int:
        """Return how many digests are pending, unknown or being sent (read off ix_digests_due).

        The daemon asks every minute; counting every status would scan a table
        that grows by a day's subscribers every day.
        """
        query = select(func.count()).select_from(digests).where(digests.c.status.in_(DUE_STATUSES))
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())


def _sent_values() -> dict[str, Any]:
    """Return what marking a digest sent sets: the moment and reply given as mark_now and
    mark_reply, no error, no lease.
    """
    return {
        "status": DigestStatus.SENT,
        "sent_at": bindparam("mark_now"),
        "last_reply": bindparam("mark_reply"),
        "last_error": None,
        "lease_owner": None,
        "lease_until": None,
    }


# Built once: a mark is one short UPDATE per accepted message, and building the
# statement cost more than running it.
_MARK_SENT = (
    update(digests)
    .where(
        digests.c.id == bindparam("mark_id"),
        digests.c.lease_owner == bindparam("mark_owner"),
        digests.c.status == DigestStatus.SENDING,
    )
    .values(**_sent_values())
)


# _MARK_SENT on PostgreSQL: every mark of a group commit in one statement, the ids and
# replies as two arrays (UPDATE ... FROM unnest(...) AS m(id, reply)).
_PG_MARKS = (
    func.unnest(
        cast(bindparam("mark_ids"), postgresql.ARRAY(Integer)),
        cast(bindparam("mark_replies"), postgresql.ARRAY(Text)),
    )
    .table_valued("id", "reply")
    .render_derived(name="m")
)


_PG_MARK_SENT = (
    update(digests)
    .where(
        digests.c.id == _PG_MARKS.c.id,
        digests.c.lease_owner == bindparam("mark_owner"),
        digests.c.status == DigestStatus.SENDING,
    )
    .values(**(_sent_values() | {"last_reply": _PG_MARKS.c.reply}))
)


_RECOVER_SENT = (
    update(digests)
    .where(
        digests.c.id == bindparam("mark_id"),
        # Not IN (...): executemany cannot expand a list.
        digests.c.status != DigestStatus.SENT,
        digests.c.status != DigestStatus.EMPTY,
    )
    .values(**_sent_values(), next_attempt_at=None)
)


def _sql_strings(values: Iterable[str]) -> str:
    """Return values as a parenthesised list of SQL string literals: ('a', 'b')."""
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


# claim_digests' scan of due digests on SQLite. Without statistics SQLite reads every
# due row through ix_digests_status and sorts them all for the first hundred (13 ms a
# claim at 5,000 due, growing with the queue); INDEXED BY walks ix_digests_due in id
# order and stops at the limit (0.3 ms). The index's own predicate is repeated
# word for word: SQLite uses a partial index only for a query that states it.
_SQLITE_DUE = text(
    "SELECT digests.id FROM digests INDEXED BY ix_digests_due"
    f" WHERE digests.status IN {_sql_strings(DUE_STATUSES)}"
    f" AND digests.status IN {_sql_strings(_RETRYABLE)}"
    " AND (digests.next_attempt_at IS NULL OR digests.next_attempt_at <= :due_by)"
    " AND EXISTS (SELECT 1 FROM subscribers WHERE subscribers.id = digests.subscriber_id"
    f" AND subscribers.status = '{SubscriberStatus.ACTIVE}')"
    " ORDER BY digests.id LIMIT :limit"
).bindparams(bindparam("due_by", type_=UtcDateTime()))


# What a claim reads of a digest (codec.stored_digest) and its subscriber's id.
_CLAIMED = (
    digests.c.id,
    digests.c.subscriber_id,
    digests.c.content,
    digests.c.status,
    digests.c.message_id,
    digests.c.created_at,
    digests.c.attempts,
    digests.c.last_error,
    digests.c.unknown_since,
)


class _CardCache:
    """Paper cards by fingerprint, most recently used kept, shared by the process.

    A card is content-addressed (its fingerprint is the sha256 of its JSON), so a
    card read once is the card of that fingerprint in any database.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._cards: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, fingerprint: str) -> dict[str, Any] | None:
        """Return the card of fingerprint, or None when it was not read yet."""
        with self._lock:
            card = self._cards.get(fingerprint)
            if card is not None:
                self._cards.move_to_end(fingerprint)
            return card

    def put(self, fingerprint: str, card: dict[str, Any]) -> dict[str, Any]:
        """Remember a card, forgetting the least recently used past the size; return it."""
        with self._lock:
            self._cards[fingerprint] = card
            while len(self._cards) > self._size:
                self._cards.popitem(last=False)
        return card


# A day's digests share a few hundred cards; bounded for a long-lived sender.
_CARD_CACHE = _CardCache(4096)


def _held(digest_id: int, worker: str) -> tuple[Any, ...]:
    """Return the conditions under which a worker may record a digest's outcome."""
    return (
        digests.c.id == digest_id,
        digests.c.lease_owner == worker,
        digests.c.status == DigestStatus.SENDING,
    )

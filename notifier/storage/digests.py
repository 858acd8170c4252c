"""Store composed digests with their paper cards and ledger rows; report their outcomes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from notifier.models import (
    ChannelStatus,
    DigestContent,
    DigestOutcome,
    DigestPaper,
    DigestRecord,
    DigestStatus,
    NewDigest,
)
from notifier.storage import codec
from notifier.storage.base import StorageBase, _chunks, _dialect_insert, _insert_rows
from notifier.storage.channels import new_post
from notifier.storage.schema import (
    channel_posts,
    channels,
    deliveries,
    digests,
    paper_cards,
    subscribers,
)


class DigestsMixin(StorageBase):
    """Record each digest whole with its ledger, and read digests' statuses."""

    def offered_papers(
        self, subscriber_ids: Iterable[int], paper_ids: Iterable[int]
    ) -> dict[int, set[int]]:
        """Return, per subscriber, which of paper_ids are already in their ledger."""
        wanted = set(paper_ids)
        found: dict[int, set[int]] = {}
        if not wanted:
            return found
        # Candidates are recent papers, so their ids are the newest: one range per
        # subscriber on the (subscriber_id, paper_id) key instead of a long IN list.
        lowest = min(wanted)
        with self._read() as conn:
            for chunk in self._id_chunks(subscriber_ids):
                rows = conn.execute(
                    select(deliveries.c.subscriber_id, deliveries.c.paper_id).where(
                        self._within(deliveries.c.subscriber_id, chunk),
                        deliveries.c.paper_id >= lowest,
                    )
                )
                for subscriber_id, paper_id in rows.all():
                    if paper_id in wanted:
                        found.setdefault(subscriber_id, set()).add(paper_id)
        return found

    def digest_statuses(
        self, subscriber_ids: Iterable[int], period: str
    ) -> dict[int, DigestStatus]:
        """Return the status of each subscriber's digest for period (absent: none yet)."""
        found: dict[int, DigestStatus] = {}
        with self._read() as conn:
            for chunk in self._id_chunks(subscriber_ids):
                rows = conn.execute(
                    select(digests.c.subscriber_id, digests.c.status).where(
                        self._within(digests.c.subscriber_id, chunk), digests.c.period == period
                    )
                )
                found.update({i: DigestStatus(status) for i, status in rows.all()})
        return found

    @property
    def claims_parts(self) -> bool:
        """Tell whether composers can claim parts of the subscribers (PostgreSQL only)."""
        return self.engine.dialect.name == "postgresql"

    @contextlib.contextmanager
    def part_claim(self, part: int, *, wait: bool = False) -> Iterator[bool]:
        """Hold the claim on one part of the subscribers while composing it; say if held.

        A session advisory lock on a connection of its own: composers on any
        machine take disjoint parts, and a composer that dies releases its part
        with its connection. wait=True waits for the holder to finish instead.
        The key names the schema, so deployments sharing a server do not collide.
        """
        if not self.claims_parts:
            raise NotImplementedError("claiming parts of the subscribers needs PostgreSQL")
        key = f"hashtext('notifier-compose:' || current_schema()), {int(part)}"
        conn = self.engine.connect()
        held, released = False, False
        try:
            if wait:
                conn.exec_driver_sql(f"SELECT pg_advisory_lock({key})")
                held = True
            else:
                held = bool(conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({key})").scalar())
            conn.commit()
            yield held
        finally:
            with contextlib.suppress(Exception):  # a dead connection has released it already
                released = not held or bool(
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({key})").scalar()
                )
                conn.commit()
            if not released:
                # Never hand the pool a session that may still hold the part.
                conn.invalidate()
            conn.close()

    def decided_through(self, subscriber_ids: Iterable[int]) -> dict[int, tuple[int, datetime]]:
        """Return, per subscriber, the arrivals their digests decided and when the last was.

        Absent: no digest has recorded its arrivals yet (a first digest, or
        digests composed before arrivals were kept).
        """
        found: dict[int, tuple[int, datetime]] = {}
        with self._read() as conn:
            for chunk in self._id_chunks(subscriber_ids):
                rows = conn.execute(
                    select(
                        digests.c.subscriber_id,
                        func.max(digests.c.arrivals_through),
                        func.max(digests.c.created_at),
                    )
                    .where(
                        self._within(digests.c.subscriber_id, chunk),
                        digests.c.arrivals_through.is_not(None),
                    )
                    .group_by(digests.c.subscriber_id)
                )
                found.update({i: (int(through), at) for i, through, at in rows.all()})
        return found

    def record_digest(
        self,
        content: DigestContent,
        overflow: Sequence[tuple[int, str, float, str]],
        message_id: str,
        now: datetime,
    ) -> int | None:
        """Store one composed digest and its ledger rows (see record_digests)."""
        return self.record_digests([NewDigest(content, tuple(overflow), message_id)], now)[0]

    def record_digests(self, composed: Sequence[NewDigest], now: datetime) -> list[int | None]:
        """Store composed digests with their ledger rows, each digest whole or not at all.

        Returns each digest's id, or None when its period already has a non-empty
        digest (another composer won) or one of its papers was offered meanwhile.
        An "empty" digest of the same period is replaced, so a later ingest on the
        same day still reaches the subscriber. A batch is one transaction; when a
        concurrent composer gets in the way, its digests are stored one by one.
        """
        try:
            with self._tx() as conn:
                return self._record_digests(conn, composed, now)
        except IntegrityError:
            pass
        results: list[int | None] = []
        for item in composed:
            try:
                with self._tx() as conn:
                    results += self._record_digests(conn, [item], now)
            except IntegrityError:
                # A concurrent composer created this period's digest or offered one
                # of these papers first; its digest stands, ours is dropped whole.
                results.append(None)
        return results

    def _record_digests(
        self, conn: Connection, composed: Sequence[NewDigest], now: datetime
    ) -> list[int | None]:
        """Insert (or replace empty) digests, their cards and their ledger rows."""
        existing: dict[tuple[int, str], tuple[int, str]] = {}
        periods = {item.content.period for item in composed}
        for chunk in self._id_chunks(item.content.subscriber_id for item in composed):
            for row in conn.execute(
                select(
                    digests.c.id, digests.c.subscriber_id, digests.c.period, digests.c.status
                ).where(self._within(digests.c.subscriber_id, chunk), digests.c.period.in_(periods))
            ).all():
                existing[(row.subscriber_id, row.period)] = (row.id, row.status)
        cards = self._save_cards(conn, [p for item in composed for p in item.content.papers], now)
        results: list[int | None] = [None] * len(composed)
        to_insert: list[int] = []
        rows: list[dict[str, Any]] = []
        for k, item in enumerate(composed):
            content = item.content
            values = {
                "status": (
                    DigestStatus.EMPTY
                    if content.is_empty and not item.send_empty
                    else DigestStatus.PENDING
                ),
                "message_id": item.message_id,
                "content": codec.content_to_json(content, cards),
                "papers": len(content.papers),
                "reason": content.reason,
                "created_at": now,
                "attempts": 0,
                "arrivals_through": item.arrivals_through,
            }
            found = existing.get((content.subscriber_id, content.period))
            if found is None:
                to_insert.append(k)
                rows.append(
                    {"subscriber_id": content.subscriber_id, "period": content.period, **values}
                )
            elif found[1] == DigestStatus.EMPTY:
                conn.execute(update(digests).where(digests.c.id == found[0]).values(**values))
                results[k] = found[0]
        if rows:
            for k, digest_id in zip(to_insert, self._insert_digests(conn, rows), strict=True):
                results[k] = digest_id
        ledger = [
            row
            for item, digest_id in zip(composed, results, strict=True)
            if digest_id is not None
            for row in _ledger_rows(item, digest_id, now)
        ]
        _insert_rows(conn, deliveries, _LEDGER_COLUMNS, ledger, repeated={"created_at"})
        self._queue_posts(conn, composed, results, now)
        return results

    def _queue_posts(
        self,
        conn: Connection,
        composed: Sequence[NewDigest],
        results: Sequence[int | None],
        now: datetime,
    ) -> None:
        """Queue a post of each digest to be sent to each active channel of its subscriber.

        In the digest's transaction, so a digest and its posts stand or fall
        together; one indexed query per batch (most subscribers have no channel).
        """
        sent = {
            item.content.subscriber_id: digest_id
            for item, digest_id in zip(composed, results, strict=True)
            if digest_id is not None and (not item.content.is_empty or item.send_empty)
        }
        posts = []
        for chunk in self._id_chunks(sent):
            for channel_id, subscriber_id in conn.execute(
                select(channels.c.id, channels.c.subscriber_id).where(
                    self._within(channels.c.subscriber_id, chunk),
                    channels.c.status == ChannelStatus.ACTIVE,
                )
            ).all():
                posts.append(new_post(channel_id, now, digest_id=sent[subscriber_id]))
        if posts:
            conn.execute(insert(channel_posts), posts)

    def _insert_digests(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert new digest rows (all with the same keys); return their ids in order."""
        if self.engine.dialect.name != "postgresql":
            inserted = conn.execute(
                insert(digests).returning(digests.c.id, sort_by_parameter_order=True), rows
            )
            return list(inserted.scalars())
        # Ids from the sequence in one round trip, then one COPY: a multi-row INSERT
        # ... RETURNING of a thousand digests had psycopg parse an SQL text of eight
        # thousand placeholders per batch, a tenth of composing's CPU.
        ids = list(
            conn.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence('digests', 'id'))"
                    " FROM generate_series(1, :n)"
                ),
                {"n": len(rows)},
            ).scalars()
        )
        names = ("id", *rows[0])
        values = [(digest_id, *row.values()) for digest_id, row in zip(ids, rows, strict=True)]
        _insert_rows(conn, digests, names, values, repeated={"created_at"})
        return ids

    def _save_cards(
        self, conn: Connection, shown: Sequence[DigestPaper], now: datetime
    ) -> dict[str, int]:
        """Store the cards of the shown papers that are not stored yet; return all their ids."""
        wanted: dict[str, DigestPaper] = {}
        for paper in shown:
            wanted.setdefault(codec.card_fingerprint(paper), paper)
        ids: dict[str, int] = {}

        def look_up(fingerprints: list[str]) -> None:
            for chunk in _chunks(fingerprints, 500):
                query = select(paper_cards.c.fingerprint, paper_cards.c.id).where(
                    paper_cards.c.fingerprint.in_(chunk)
                )
                ids.update(dict(conn.execute(query).all()))

        look_up(list(wanted))
        # Sorted: two composers inserting the same new cards in different orders would
        # each wait for the other's row on PostgreSQL's unique index (a deadlock).
        missing = sorted(fp for fp in wanted if fp not in ids)
        if missing:
            # A concurrent composer may store the same card first: keep its row.
            upsert = _dialect_insert(self.engine.dialect.name, paper_cards)
            conn.execute(
                upsert.on_conflict_do_nothing(index_elements=["fingerprint"]),
                [
                    {
                        "fingerprint": fp,
                        "paper_id": wanted[fp].paper_id,
                        "card": codec.card(wanted[fp]),
                        "created_at": now,
                    }
                    for fp in missing
                ],
            )
            look_up(missing)
        return ids

    def latest_digests(self) -> list[DigestOutcome]:
        """Return each subscriber's most recent digest outcome (called by status)."""
        latest = select(func.max(digests.c.id)).group_by(digests.c.subscriber_id).scalar_subquery()
        query = _outcomes().where(digests.c.id.in_(latest)).order_by(subscribers.c.email)
        with self._read() as conn:
            return [_outcome(row) for row in conn.execute(query)]

    def digest_message_id(self, digest_id: int) -> str | None:
        """Return a digest's Message-ID (what its page link signs), or None."""
        with self._read() as conn:
            return conn.execute(
                select(digests.c.message_id).where(digests.c.id == digest_id)
            ).scalar_one_or_none()

    def digest_history(self, subscriber_id: int, limit: int) -> list[DigestOutcome]:
        """Return a subscriber's latest digests, newest first (called by status EMAIL)."""
        query = (
            _outcomes()
            .where(digests.c.subscriber_id == subscriber_id)
            .order_by(digests.c.id.desc())
            .limit(limit)
        )
        with self._read() as conn:
            return [_outcome(row) for row in conn.execute(query)]

    def digest_page(self, after: int, limit: int, status: str | None = None) -> list[DigestRecord]:
        """Return up to limit digests with ids above after, in id order, without their content."""
        query = (
            select(
                digests.c.id,
                digests.c.subscriber_id,
                subscribers.c.email,
                digests.c.period,
                digests.c.status,
                digests.c.papers,
                digests.c.attempts,
                digests.c.last_error,
                digests.c.created_at,
                digests.c.sent_at,
            )
            .join(subscribers, subscribers.c.id == digests.c.subscriber_id)
            .where(digests.c.id > after)
            .order_by(digests.c.id)
            .limit(limit)
        )
        if status is not None:
            query = query.where(digests.c.status == status)
        with self._read() as conn:
            return [
                DigestRecord(**{**row._mapping, "status": DigestStatus(row.status)})
                for row in conn.execute(query)
            ]

    def digest_counts(self) -> dict[DigestStatus, int]:
        """Return how many digests are in each status."""
        query = select(digests.c.status, func.count()).group_by(digests.c.status)
        with self._read() as conn:
            return {DigestStatus(status): int(n) for status, n in conn.execute(query)}


# The ledger's columns, in the order _ledger_rows gives them.
_LEDGER_COLUMNS = (
    "subscriber_id",
    "paper_id",
    "digest_id",
    "interest",
    "score",
    "reason",
    "shown",
    "created_at",
)


def _ledger_rows(item: NewDigest, digest_id: int, now: datetime) -> list[tuple[Any, ...]]:
    """Return the ledger rows of a stored digest (_LEDGER_COLUMNS): shown papers, then overflow."""
    subscriber_id = item.content.subscriber_id
    shown = [
        (subscriber_id, p.paper_id, digest_id, section.interest, p.score, p.reason, True, now)
        for section in item.content.sections
        for p in section.papers
    ]
    return shown + [
        (subscriber_id, paper_id, digest_id, interest, score, reason, False, now)
        for paper_id, interest, score, reason in item.overflow
    ]


def _outcome(row: Any) -> DigestOutcome:
    """Return the DigestOutcome of a row of _outcomes."""
    return DigestOutcome(
        row.email, row.period, DigestStatus(row.status), row.papers, row.reason, row.last_error
    )


def _outcomes() -> Select[Any]:
    """Select the columns of DigestOutcome: digests joined to their subscriber."""
    return select(
        subscribers.c.email,
        digests.c.period,
        digests.c.status,
        digests.c.papers,
        digests.c.reason,
        digests.c.last_error,
    ).join(subscribers, subscribers.c.id == digests.c.subscriber_id)

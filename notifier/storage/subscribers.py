"""Store subscribers with their interests, and read them in batches by schedule and shard."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from notifier.errors import SubscriberError
from notifier.models import (
    DigestStatus,
    Interest,
    ScheduleKey,
    Shard,
    Subscriber,
    SubscriberStatus,
)
from notifier.storage import codec
from notifier.storage.base import StorageBase, _chunks, _dialect_insert
from notifier.storage.schema import (
    UtcDateTime,
    deliveries,
    digests,
    interest_vectors,
    interests,
    subscribers,
)

# The subscriber columns a schedule is made of, in ScheduleKey's order.
SCHEDULE_COLUMNS = ScheduleKey._fields


class SubscribersMixin(StorageBase):
    """Create, find, change and delete subscribers and their interests."""

    def save_subscriber(
        self,
        email: str,
        name: str | None,
        new_interests: Sequence[Interest],
        now: datetime,
        max_papers: int | None = None,
        *,
        schedule: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> tuple[Subscriber, bool]:
        """Create a subscriber or update one (name, max_papers, interests by name); say if new.

        schedule sets any of cadence, send_time, timezone, weekday (None: back to
        the default) and empty_note; status pauses ("paused") or resumes ("active").
        """
        chosen = dict(schedule or {})
        if unknown := set(chosen) - {*SCHEDULE_COLUMNS, "empty_note"}:
            raise ValueError(f"not schedule settings: {', '.join(sorted(unknown))}")
        with self._tx() as conn:
            row = conn.execute(select(subscribers).where(subscribers.c.email == email)).first()
            created = row is None
            if row is None:
                subscriber_id = conn.execute(
                    insert(subscribers)
                    .values(
                        email=email,
                        name=name,
                        status=status or SubscriberStatus.ACTIVE,
                        max_papers=max_papers,
                        feed_token=secrets.token_urlsafe(24),
                        manage_token=secrets.token_urlsafe(24),
                        created_at=now,
                        **chosen,
                    )
                    .returning(subscribers.c.id)
                ).scalar_one()
            else:
                subscriber_id = row.id
                changes: dict[str, Any] = {}
                if name is not None:
                    changes["name"] = name
                if max_papers is not None:
                    changes["max_papers"] = max_papers
                if status is not None:
                    changes["status"] = status
                changes.update(chosen)
                if changes:
                    conn.execute(
                        update(subscribers).where(subscribers.c.id == row.id).values(**changes)
                    )
            existing = {
                r.name: r.position
                for r in conn.execute(
                    select(interests.c.name, interests.c.position).where(
                        interests.c.subscriber_id == subscriber_id
                    )
                )
            }
            for interest in new_interests:
                fields = {
                    "query": interest.query,
                    "about": interest.about,
                    "sensitivity": interest.sensitivity,
                }
                if interest.name in existing:
                    conn.execute(
                        update(interests)
                        .where(
                            interests.c.subscriber_id == subscriber_id,
                            interests.c.name == interest.name,
                        )
                        .values(**fields, changed_at=_changed_at(interest, now))
                    )
                else:
                    existing[interest.name] = len(existing)
                    conn.execute(
                        insert(interests).values(
                            subscriber_id=subscriber_id,
                            position=existing[interest.name],
                            name=interest.name,
                            changed_at=now,
                            **fields,
                        )
                    )
            subscriber = self._subscribers(conn, subscribers.c.id == subscriber_id)[0]
        return subscriber, created

    def create_subscriber(
        self,
        email: str,
        name: str | None,
        chosen: Sequence[Interest],
        now: datetime,
        *,
        max_papers: int | None = None,
        schedule: Mapping[str, Any] | None = None,
        status: str = SubscriberStatus.ACTIVE,
    ) -> Subscriber | None:
        """Create one subscriber with their interests; return None when the address is taken.

        Unlike save_subscriber it never touches an existing subscriber, even one
        created by a concurrent call: the insert itself decides (ON CONFLICT).
        """
        chosen_schedule = dict(schedule or {})
        if unknown := set(chosen_schedule) - {*SCHEDULE_COLUMNS, "empty_note"}:
            raise ValueError(f"not schedule settings: {', '.join(sorted(unknown))}")
        with self._tx() as conn:
            subscriber_id = conn.execute(
                _new_subscriber(
                    conn.dialect.name,
                    email,
                    now,
                    {"name": name, "status": status, "max_papers": max_papers, **chosen_schedule},
                )
            ).scalar_one_or_none()
            if subscriber_id is None:
                return None
            _replace_interests(conn, subscriber_id, chosen, now)
            return self._subscribers(conn, subscribers.c.id == subscriber_id)[0]

    def add_subscribers(
        self, new: Sequence[tuple[str, str | None, Sequence[Interest]]], now: datetime
    ) -> int:
        """Create many subscribers at once (an import); skip addresses already present.

        A thousand per transaction: a long import must not hold SQLite's write
        lock past other writers' patience, and run again it adds what is left.
        Returns how many were created.
        """
        created = 0
        for chunk in _chunks(list({e: (e, n, i) for e, n, i in new}.values()), 1000):
            for attempt in range(3):
                try:
                    with self._tx() as conn:
                        created += _add_chunk(conn, chunk, now)
                    break
                except IntegrityError:
                    # An address subscribed meanwhile (a sign-up): read again, skip it.
                    if attempt == 2:
                        raise
        return created

    def count_subscribers(self) -> int:
        """Return how many subscribers are stored, whatever their status."""
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(subscribers)).scalar_one())

    def subscribers(self, active_only: bool = False) -> list[Subscriber]:
        """Return subscribers with their interests, in id order."""
        condition = subscribers.c.status == SubscriberStatus.ACTIVE if active_only else None
        with self._read() as conn:
            return self._subscribers(conn, condition)

    def subscriber_by_email(self, email: str) -> Subscriber:
        """Return one subscriber, or raise SubscriberError when there is none."""
        with self._read() as conn:
            found = self._subscribers(conn, subscribers.c.email == email)
        if not found:
            raise SubscriberError(f"no subscriber with the address {email!r}")
        return found[0]

    def subscriber_by_id(self, subscriber_id: int) -> Subscriber | None:
        """Return one subscriber by id, or None."""
        with self._read() as conn:
            found = self._subscribers(conn, subscribers.c.id == subscriber_id)
        return found[0] if found else None

    def subscriber_by_feed_token(self, feed_token: str) -> Subscriber | None:
        """Return the subscriber whose private feed has this token, or None."""
        with self._read() as conn:
            found = self._subscribers(conn, subscribers.c.feed_token == feed_token)
        return found[0] if found else None

    def subscriber_by_manage_key(self, key: str) -> Subscriber | None:
        """Return the subscriber whose manage key a signed link carried, or None."""
        with self._read() as conn:
            found = self._subscribers(conn, subscribers.c.manage_token == key)
        return found[0] if found else None

    def subscriber_page(
        self, after: int, limit: int, status: str | None = None
    ) -> list[Subscriber]:
        """Return up to limit subscribers with ids above after, in id order (the admin API)."""
        condition = subscribers.c.id > after
        if status is not None:
            condition = and_(condition, subscribers.c.status == status)
        with self._read() as conn:
            return self._subscribers(conn, condition, limit)

    def update_preferences(
        self,
        subscriber_id: int,
        *,
        name: str | None = None,
        chosen: Sequence[Interest] | None = None,
        schedule: Mapping[str, Any] | None = None,
        status: str | None = None,
        max_papers: int | None = None,
        now: datetime,
    ) -> Subscriber | None:
        """Change what is given; chosen replaces the whole interest list. None if no such id."""
        changes: dict[str, Any] = dict(schedule or {})
        if name is not None:
            changes["name"] = name or None
        if status is not None:
            changes["status"] = status
        if max_papers is not None:
            changes["max_papers"] = max_papers
        with self._tx() as conn:
            if changes:
                found = conn.execute(
                    update(subscribers).where(subscribers.c.id == subscriber_id).values(**changes)
                ).rowcount
            else:
                found = conn.execute(
                    select(func.count()).where(subscribers.c.id == subscriber_id)
                ).scalar_one()
            if not found:
                return None
            if chosen is not None:
                _replace_interests(conn, subscriber_id, chosen, now)
            return self._subscribers(conn, subscribers.c.id == subscriber_id)[0]

    def delete_subscriber(self, subscriber_id: int) -> bool:
        """Delete a subscriber with their interests, digests and ledger; say if one existed."""
        with self._tx() as conn:
            # Interests, their vectors and digests go by ON DELETE CASCADE.
            found = conn.execute(delete(subscribers).where(subscribers.c.id == subscriber_id))
            _delete_ledgers(conn, [subscriber_id])
            return bool(found.rowcount)

    def _subscribers(
        self, conn: Connection, condition: Any, limit: int | None = None
    ) -> list[Subscriber]:
        """Load subscribers matching condition (the first limit of them by id) with their
        interests.

        One query for the subscribers and one for their interests (_within). Asking
        for the ids first, then for their rows and interests by IN lists, was a fifth
        of a compose worker's time: statements of a thousand placeholders to build
        and parse, rows fetched one at a time, and on PostgreSQL a scan of every
        interest per batch.
        """
        query = select(subscribers).order_by(subscribers.c.id).limit(limit)
        if condition is not None:
            query = query.where(condition)
        # .all(): fetched in one call; row by row was a fifth of loading them.
        rows = conn.execute(query).all()
        by_subscriber: dict[int, list[Interest]] = {r.id: [] for r in rows}
        for chunk in self._id_chunks(by_subscriber):
            theirs = (
                select(
                    interests.c.subscriber_id,
                    interests.c.name,
                    interests.c.query,
                    interests.c.about,
                    interests.c.sensitivity,
                    interests.c.id,
                    interests.c.changed_at,
                )
                .where(self._within(interests.c.subscriber_id, chunk))
                .order_by(interests.c.subscriber_id, interests.c.position)
            )
            for row in conn.execute(theirs).all():
                by_subscriber[row.subscriber_id].append(codec.interest(row))
        return [codec.subscriber(r, tuple(by_subscriber[r.id])) for r in rows]

    def schedule_groups(self, shard: Shard | None = None) -> list[tuple[ScheduleKey, int]]:
        """Return each distinct schedule of the active subscribers, with how many have it.

        Subscribers who share a schedule share their due slot, so the composer
        decides per group (a few dozen) instead of per subscriber (100,000).
        """
        columns = [subscribers.c[name] for name in SCHEDULE_COLUMNS]
        query = (
            select(*columns, func.count())
            .where(subscribers.c.status == SubscriberStatus.ACTIVE, *_in_shard(shard))
            .group_by(*columns)
        )
        with self._read() as conn:
            return [(ScheduleKey(*row[:-1]), int(row[-1])) for row in conn.execute(query)]

    def subscriber_batches(
        self,
        size: int,
        schedule: ScheduleKey | None = None,
        period: str | None = None,
        fresh_since: datetime | None = None,
        shard: Shard | None = None,
        *,
        joined_by: datetime | None = None,
    ) -> Iterator[list[Subscriber]]:
        """Yield the active subscribers with their interests in id order, size at a time.

        With schedule, only those on that schedule; with period, only those still
        without that period's digest, or with an empty one older than fresh_since
        (the newest paper), which a later ingest may fill; with shard (k, n), only
        ids equal to k modulo n (one of n composing processes); with joined_by, only
        those who subscribed (confirmed) by then: a slot before someone subscribed
        is not theirs, so their first digest comes at their first slot after.
        """
        condition = and_(subscribers.c.status == SubscriberStatus.ACTIVE, *_in_shard(shard))
        if joined_by is not None:
            joined = func.coalesce(subscribers.c.confirmed_at, subscribers.c.created_at)
            condition = and_(condition, joined <= joined_by)
        if schedule is not None:
            condition = and_(
                condition,
                *(
                    subscribers.c[name].is_not_distinct_from(value)
                    for name, value in zip(SCHEDULE_COLUMNS, schedule, strict=True)
                ),
            )
        if period is not None:
            settled = select(digests.c.id).where(
                digests.c.subscriber_id == subscribers.c.id, digests.c.period == period
            )
            if fresh_since is not None:
                # An empty digest composed before the newest paper arrived may fill up now.
                stale_empty = and_(
                    digests.c.status == DigestStatus.EMPTY, digests.c.created_at < fresh_since
                )
                settled = settled.where(~stale_empty)
            condition = and_(condition, ~settled.exists())
        last = 0
        while True:
            with self._read() as conn:
                batch = self._subscribers(conn, and_(subscribers.c.id > last, condition), size)
            if not batch:
                return
            yield batch
            last = batch[-1].id

    def mark_interests_changed(self, interest_ids: Iterable[int], now: datetime) -> None:
        """Set interests' changed_at to now: their next digest decides them on the whole window."""
        with self._tx() as conn:
            for chunk in _chunks(sorted(set(interest_ids)), 500):
                conn.execute(
                    update(interests).where(interests.c.id.in_(chunk)).values(changed_at=now)
                )


def _in_shard(shard: Shard | None) -> list[Any]:
    """Return the condition that keeps one shard's subscribers (none for all of them)."""
    if shard is None:
        return []
    k, n = shard
    return [subscribers.c.id % n == k]


def _new_subscriber(dialect: str, email: str, now: datetime, values: Mapping[str, Any]) -> Any:
    """Return an INSERT of a subscriber with fresh tokens that does nothing if the address exists.

    It returns the new id, or no row when the address was taken, even by a
    concurrent transaction.
    """
    return (
        _dialect_insert(dialect, subscribers)
        .values(
            email=email,
            feed_token=secrets.token_urlsafe(24),
            manage_token=secrets.token_urlsafe(24),
            created_at=now,
            **values,
        )
        .on_conflict_do_nothing(index_elements=[subscribers.c.email])
        .returning(subscribers.c.id)
    )


def _add_chunk(
    conn: Connection, chunk: Sequence[tuple[str, str | None, Sequence[Interest]]], now: datetime
) -> int:
    """Insert the subscribers of chunk whose addresses are free, with their interests."""
    emails = [email for email, _, _ in chunk]
    taken = set(
        conn.execute(select(subscribers.c.email).where(subscribers.c.email.in_(emails))).scalars()
    )
    fresh = [item for item in chunk if item[0] not in taken]
    if not fresh:
        return 0
    ids = conn.execute(
        insert(subscribers).returning(subscribers.c.id, sort_by_parameter_order=True),
        [
            {
                "email": email,
                "name": name,
                "status": SubscriberStatus.ACTIVE,
                "feed_token": secrets.token_urlsafe(24),
                "manage_token": secrets.token_urlsafe(24),
                "created_at": now,
            }
            for email, name, _ in fresh
        ],
    ).scalars()
    rows = [
        {
            "subscriber_id": subscriber_id,
            "position": position,
            "name": interest.name,
            "query": interest.query,
            "about": interest.about,
            "sensitivity": interest.sensitivity,
            "changed_at": now,
        }
        for subscriber_id, (_, _, chosen) in zip(ids, fresh, strict=True)
        for position, interest in enumerate(chosen)
    ]
    if rows:
        conn.execute(insert(interests), rows)
    return len(fresh)


def _changed_at(interest: Interest, now: datetime) -> Any:
    """Return an UPDATE's changed_at: now if the interest's texts differ from the row's."""
    same = and_(
        interests.c.query.is_not_distinct_from(interest.query),
        interests.c.about.is_not_distinct_from(interest.about),
        interests.c.sensitivity == interest.sensitivity,
    )
    return case((same, interests.c.changed_at), else_=literal(now, UtcDateTime()))


def _replace_interests(
    conn: Connection, subscriber_id: int, chosen: Sequence[Interest], now: datetime
) -> None:
    """Make a subscriber's interests exactly chosen, in order; kept names keep their vectors."""
    current = {
        r.name: r.id
        for r in conn.execute(
            select(interests.c.name, interests.c.id).where(
                interests.c.subscriber_id == subscriber_id
            )
        )
    }
    gone = [current[name] for name in set(current) - {i.name for i in chosen}]
    if gone:
        conn.execute(delete(interest_vectors).where(interest_vectors.c.interest_id.in_(gone)))
        conn.execute(delete(interests).where(interests.c.id.in_(gone)))
    for position, interest in enumerate(chosen):
        fields = {
            "position": position,
            "query": interest.query,
            "about": interest.about,
            "sensitivity": interest.sensitivity,
        }
        if interest.name in current:
            conn.execute(
                update(interests)
                .where(interests.c.id == current[interest.name])
                .values(**fields, changed_at=_changed_at(interest, now))
            )
        else:
            conn.execute(
                insert(interests).values(
                    subscriber_id=subscriber_id, name=interest.name, changed_at=now, **fields
                )
            )


def _delete_ledgers(conn: Connection, subscriber_ids: Sequence[int]) -> None:
    """Delete the ledger rows of subscribers just deleted in this transaction.

    Called after deleting the subscribers: on PostgreSQL that DELETE waits for a
    composer still writing one of their digests, so this statement, with a newer
    snapshot, sees and deletes the ledger rows that composer committed.
    """
    for chunk in _chunks(sorted(subscriber_ids), 500):
        conn.execute(delete(deliveries).where(deliveries.c.subscriber_id.in_(chunk)))

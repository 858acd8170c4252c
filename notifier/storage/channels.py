"""Channels besides email, topic digests for them, and each digest's posts to them."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from notifier.models import (
    Channel,
    ChannelKind,
    ChannelPost,
    ChannelStatus,
    DigestContent,
    PostStatus,
    SubscriberStatus,
)
from notifier.storage import codec
from notifier.storage.base import _chunks
from notifier.storage.schema import (
    UtcDateTime,
    channel_posts,
    channels,
    digests,
    subscribers,
    topic_digests,
    topic_ledger,
)
from notifier.storage.sending import SendingMixin

# Channels one subscriber or topic may have: a handful is what anyone uses.
MAX_CHANNELS = 10


class ChannelsMixin(SendingMixin):
    """Keep channels, compose-time topic digests, and the posts of digests to channels."""

    def add_channel(
        self,
        kind: ChannelKind,
        label: str,
        url: str,
        now: datetime,
        *,
        subscriber_id: int | None = None,
        topic: str | None = None,
        room: str | None = None,
        secret: str | None = None,
    ) -> Channel:
        """Store a channel of a subscriber or of a topic (exactly one of the two).

        Raises ValueError when its owner has MAX_CHANNELS already, or the
        subscriber is gone.
        """
        if (subscriber_id is None) == (topic is None):
            raise ValueError("a channel belongs to a subscriber or to a topic")
        owner = (
            channels.c.subscriber_id == subscriber_id
            if subscriber_id is not None
            else channels.c.topic == topic
        )
        row = {
            "subscriber_id": subscriber_id,
            "topic": topic,
            "kind": str(kind),
            "label": label,
            "url": url,
            "room": room,
            "secret": secret,
            "status": ChannelStatus.ACTIVE,
            "failures": 0,
            "created_at": now,
        }
        try:
            with self._tx() as conn:
                count = conn.execute(select(func.count()).where(owner)).scalar_one()
                if count >= MAX_CHANNELS:
                    raise ValueError(f"at most {MAX_CHANNELS} channels each; remove one first")
                channel_id = conn.execute(
                    insert(channels).values(**row).returning(channels.c.id)
                ).scalar_one()
        except IntegrityError as e:
            raise ValueError("that subscriber no longer exists") from e
        return codec.channel({**row, "id": channel_id, "last_error": None, "last_sent_at": None})

    def channel(self, channel_id: int) -> Channel | None:
        """Return one channel, or None."""
        with self._read() as conn:
            row = conn.execute(select(channels).where(channels.c.id == channel_id)).first()
        return None if row is None else codec.channel(row._mapping)

    def channels_of(
        self, *, subscriber_id: int | None = None, topic: str | None = None
    ) -> list[Channel]:
        """Return a subscriber's channels, a topic's, or (with neither) every topic's."""
        if subscriber_id is not None:
            condition = channels.c.subscriber_id == subscriber_id
        elif topic is not None:
            condition = channels.c.topic == topic
        else:
            condition = channels.c.topic.is_not(None)
        with self._read() as conn:
            rows = conn.execute(select(channels).where(condition).order_by(channels.c.id)).all()
        return [codec.channel(r._mapping) for r in rows]

    def suspended_channels(self) -> list[Channel]:
        """Return every suspended channel, a subscriber's or a topic's."""
        with self._read() as conn:
            rows = conn.execute(
                select(channels)
                .where(channels.c.status == ChannelStatus.SUSPENDED)
                .order_by(channels.c.id)
            ).all()
        return [codec.channel(r._mapping) for r in rows]

    def remove_channel(self, channel_id: int, *, subscriber_id: int | None = None) -> bool:
        """Delete a channel (only the subscriber's own, when subscriber_id is given); say if found.

        Its posts go with it: nothing more is posted there.
        """
        condition = [channels.c.id == channel_id]
        if subscriber_id is not None:
            condition.append(channels.c.subscriber_id == subscriber_id)
        with self._tx() as conn:
            # Its posts go with it (ON DELETE CASCADE).
            return bool(conn.execute(delete(channels).where(*condition)).rowcount)

    def resume_channel(self, channel_id: int) -> bool:
        """Make a suspended channel active again, its refusals forgotten; say if found."""
        with self._tx() as conn:
            changed = conn.execute(
                update(channels)
                .where(channels.c.id == channel_id)
                .values(status=ChannelStatus.ACTIVE, failures=0, last_error=None)
            ).rowcount
        return bool(changed)

    def topic_digest(self, topic: str, period: str) -> DigestContent | None:
        """Return a topic's digest of a period, or None."""
        with self._read() as conn:
            stored = conn.execute(
                select(topic_digests.c.content).where(
                    topic_digests.c.topic == topic, topic_digests.c.period == period
                )
            ).scalar_one_or_none()
        return None if stored is None else codec.content_from_json(stored, {})

    def has_topic_digest(self, topic: str, period: str) -> bool:
        """Tell whether the topic has its digest of this period."""
        with self._read() as conn:
            found = conn.execute(
                select(topic_digests.c.id).where(
                    topic_digests.c.topic == topic, topic_digests.c.period == period
                )
            ).first()
        return found is not None

    def topic_offered(self, topic: str, paper_ids: Iterable[int]) -> set[int]:
        """Return which of these papers were offered to the topic's channels already."""
        found: set[int] = set()
        with self._read() as conn:
            for chunk in _chunks(sorted(set(paper_ids)), 500):
                found.update(
                    conn.execute(
                        select(topic_ledger.c.paper_id).where(
                            topic_ledger.c.topic == topic, topic_ledger.c.paper_id.in_(chunk)
                        )
                    ).scalars()
                )
        return found

    def record_topic_digest(
        self, topic: str, content: DigestContent, offered: Iterable[int], now: datetime
    ) -> int | None:
        """Store a topic's digest of a period with its ledger rows; None if it exists already.

        offered is every paper it offers: shown, and counted in "and N more". A
        digest with papers is queued for each of the topic's active channels in
        the same transaction.
        """
        try:
            with self._tx() as conn:
                digest_id = conn.execute(
                    insert(topic_digests)
                    .values(
                        topic=topic,
                        period=content.period,
                        content=codec.content_inline(content),
                        papers=content.paper_count,
                        created_at=now,
                    )
                    .returning(topic_digests.c.id)
                ).scalar_one()
                rows = [
                    {"topic": topic, "paper_id": p, "topic_digest_id": digest_id}
                    for p in sorted(set(offered))
                ]
                if rows:
                    conn.execute(insert(topic_ledger), rows)
                if content.paper_count:
                    posts = [
                        new_post(channel_id, now, topic_digest_id=digest_id)
                        for channel_id in conn.execute(
                            select(channels.c.id).where(
                                channels.c.topic == topic,
                                channels.c.status == ChannelStatus.ACTIVE,
                            )
                        ).scalars()
                    ]
                    if posts:
                        conn.execute(insert(channel_posts), posts)
        except IntegrityError:
            return None  # another composer stored this period's digest first
        return int(digest_id)

    def claim_posts(
        self, worker: str, limit: int, now: datetime, lease: timedelta, due_by: datetime
    ) -> list[ChannelPost]:
        """Lease up to limit posts: pending ones due by due_by, or posting ones whose lease expired.

        Only posts to active channels of active subscribers (or of topics) are
        taken, so removing or suspending a channel, or pausing, stops them.
        """
        expired = and_(
            channel_posts.c.status == PostStatus.POSTING, channel_posts.c.lease_until < now
        )
        due = and_(
            channel_posts.c.status == PostStatus.PENDING,
            channel_posts.c.next_attempt_at <= due_by,
        )
        active_owner = or_(
            channels.c.topic.is_not(None),
            select(subscribers.c.id)
            .where(
                subscribers.c.id == channels.c.subscriber_id,
                subscribers.c.status == SubscriberStatus.ACTIVE,
            )
            .exists(),
        )
        with self._tx() as conn:
            query: Any = (
                select(channel_posts.c.id)
                .join(channels, channels.c.id == channel_posts.c.channel_id)
                .where(or_(expired, due), channels.c.status == ChannelStatus.ACTIVE, active_owner)
                .order_by(channel_posts.c.id)
                .limit(limit)
            )
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True, of=channel_posts)
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            rows = conn.execute(
                update(channel_posts)
                .where(channel_posts.c.id.in_(ids))
                .values(status=PostStatus.POSTING, lease_owner=worker, lease_until=now + lease)
                .returning(*channel_posts.c)
            ).all()
            return [self._claimed(conn, r) for r in sorted(rows, key=lambda r: int(r.id))]

    def _claimed(self, conn: Connection, row: Any) -> ChannelPost:
        """Return a leased post with its channel and the frozen content it posts."""
        channel = codec.channel(
            conn.execute(select(channels).where(channels.c.id == row.channel_id)).one()._mapping
        )
        fields: dict[str, Any] = {}
        if row.digest_id is not None:
            digest = conn.execute(
                select(digests.c.content, digests.c.message_id).where(digests.c.id == row.digest_id)
            ).one()
            content = codec.content_from_json(
                digest.content, self._cards(conn, codec.card_ids(digest.content))
            )
            fields = {"message_id": digest.message_id}
        else:
            stored = conn.execute(
                select(topic_digests.c.content).where(topic_digests.c.id == row.topic_digest_id)
            ).scalar_one()
            content = codec.content_from_json(stored, {})
        return ChannelPost(
            id=row.id,
            key=row.key,
            channel=channel,
            content=content,
            created_at=row.created_at,
            attempts=row.attempts,
            in_doubt=row.posting_since is not None,
            unknown_since=row.unknown_since,
            **fields,
        )

    def start_post(self, post_id: int, worker: str, now: datetime, lease: timedelta) -> bool:
        """Record that an attempt is about to go out, with a fresh lease; False if it was lost.

        Committed before the request, so a worker that dies during it leaves a
        post that says it may have arrived; the lease starts again here, so an
        attempt late in a batch has as long as the first.
        """
        with self._tx() as conn:
            changed = conn.execute(
                update(channel_posts)
                .where(*_held(post_id, worker, now))
                .values(
                    posting_since=now,
                    attempts=channel_posts.c.attempts + 1,
                    lease_until=now + lease,
                )
            ).rowcount
        return bool(changed)

    def finish_post_sent(self, post_id: int, worker: str, now: datetime) -> None:
        """Record a post the service took; the channel's refusals start over."""
        with self._tx() as conn:
            channel_id = conn.execute(
                update(channel_posts)
                .where(*_held(post_id, worker))
                .values(status=PostStatus.SENT, sent_at=now, last_error=None, **_RELEASED)
                .returning(channel_posts.c.channel_id)
            ).scalar_one_or_none()
            if channel_id is not None:
                conn.execute(
                    update(channels)
                    .where(channels.c.id == channel_id)
                    .values(failures=0, last_error=None, last_sent_at=now)
                )

    def finish_post_retry(
        self,
        post_id: int,
        worker: str,
        error: str,
        next_attempt: datetime,
        *,
        unknown: bool,
        now: datetime,
    ) -> None:
        """Put a post back for a later attempt; unknown: this attempt may have arrived."""
        changes: dict[str, Any] = {
            "status": PostStatus.PENDING,
            "last_error": error,
            "next_attempt_at": next_attempt,
            **_RELEASED,
        }
        if unknown:
            changes["unknown_since"] = _coalesce_now(now)
        with self._tx() as conn:
            conn.execute(update(channel_posts).where(*_held(post_id, worker)).values(**changes))

    def finish_post_failed(
        self,
        post_id: int,
        worker: str,
        error: str,
        *,
        suspend: bool,
        failure_limit: int,
        now: datetime,
        counts: bool = True,
        unconfirmed: bool = False,
    ) -> bool:
        """Give a post up for good; say if its channel was suspended.

        A refusal counts against the channel (counts), which is suspended at once
        when suspend is set (the service says the webhook or room is gone), else
        after failure_limit refusals in a row. unconfirmed: an earlier attempt may
        have arrived, so the post ends unconfirmed, never failed.
        """
        status = PostStatus.UNCONFIRMED if unconfirmed else PostStatus.FAILED
        changes: dict[str, Any] = {"status": status, "last_error": error, **_RELEASED}
        if unconfirmed:
            changes["unknown_since"] = _coalesce_now(now)
        with self._tx() as conn:
            channel_id = conn.execute(
                update(channel_posts)
                .where(*_held(post_id, worker))
                .values(**changes)
                .returning(channel_posts.c.channel_id)
            ).scalar_one_or_none()
            if channel_id is None or not counts:
                return False
            failures = conn.execute(
                update(channels)
                .where(channels.c.id == channel_id)
                .values(failures=channels.c.failures + 1, last_error=error)
                .returning(channels.c.failures)
            ).scalar_one()
            if not suspend and failures < failure_limit:
                return False
            conn.execute(
                update(channels)
                .where(channels.c.id == channel_id)
                .values(status=ChannelStatus.SUSPENDED)
            )
            return True

    def release_posts(self, worker: str, post_ids: Iterable[int]) -> int:
        """Give back leased posts that were never attempted (a stopping worker)."""
        ids = list(post_ids)
        if not ids:
            return 0
        with self._tx() as conn:
            return int(
                conn.execute(
                    update(channel_posts)
                    .where(
                        channel_posts.c.id.in_(ids),
                        channel_posts.c.lease_owner == worker,
                        channel_posts.c.status == PostStatus.POSTING,
                        channel_posts.c.posting_since.is_(None),
                    )
                    .values(status=PostStatus.PENDING, **_RELEASED)
                ).rowcount
            )

    def post_counts(self) -> dict[PostStatus, int]:
        """Return how many channel posts are in each status."""
        with self._read() as conn:
            rows = conn.execute(
                select(channel_posts.c.status, func.count()).group_by(channel_posts.c.status)
            ).all()
        return {PostStatus(status): int(n) for status, n in rows}


_RELEASED: dict[str, Any] = {"lease_owner": None, "lease_until": None, "posting_since": None}


def _coalesce_now(now: datetime) -> Any:
    """Return unknown_since kept as first set, else now."""
    return func.coalesce(channel_posts.c.unknown_since, literal(now, UtcDateTime()))


def _held(post_id: int, worker: str, now: datetime | None = None) -> tuple[Any, ...]:
    """Return the conditions under which worker still holds post_id's lease."""
    held: tuple[Any, ...] = (
        channel_posts.c.id == post_id,
        channel_posts.c.lease_owner == worker,
        channel_posts.c.status == PostStatus.POSTING,
    )
    if now is not None:
        held += (channel_posts.c.lease_until >= now,)
    return held


def new_post(
    channel_id: int,
    now: datetime,
    *,
    digest_id: int | None = None,
    topic_digest_id: int | None = None,
) -> dict[str, Any]:
    """Return a new post's row, with a fresh idempotency key."""
    return {
        "channel_id": channel_id,
        "digest_id": digest_id,
        "topic_digest_id": topic_digest_id,
        # Letters and digits only: Matrix puts it in a URL path as the transaction id.
        "key": secrets.token_hex(16),
        "status": PostStatus.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }

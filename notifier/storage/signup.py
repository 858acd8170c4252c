"""Record sign-ups from the web: requests, confirmations, unsubscriptions, the unconfirmed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update

from notifier.models import Interest, Subscriber, SubscriberStatus
from notifier.storage.schema import subscribers
from notifier.storage.subscribers import (
    SubscribersMixin,
    _delete_ledgers,
    _new_subscriber,
    _replace_interests,
)


class SignupMixin(SubscribersMixin):
    """Turn addresses typed on the web into subscribers once their owners confirm."""

    def request_subscription(
        self,
        email: str,
        *,
        name: str | None,
        chosen: Sequence[Interest],
        schedule: Mapping[str, Any],
        now: datetime,
        resend_after: timedelta,
    ) -> tuple[Subscriber, str]:
        """Record a sign-up from the web and say which email, if any, to send now.

        A new or unsubscribed address becomes pending with the interests and
        clock asked for, and gets a confirmation ("confirm"). An address already
        pending keeps the request it has and gets that request's confirmation
        again: anyone can type anyone's address, and the owner's link must
        activate what the owner chose. An address already subscribed
        is left exactly as it is and gets a reminder with its preferences link
        ("remind"). Either email goes at most once per resend_after per address;
        otherwise "quiet".
        """
        with self._tx() as conn:
            # The insert decides whether the address is new, even against a
            # sign-up of the same address at the same moment (ON CONFLICT).
            subscriber_id = conn.execute(
                _new_subscriber(
                    conn.dialect.name,
                    email,
                    now,
                    {"name": name, "status": SubscriberStatus.PENDING, **schedule},
                )
            ).scalar_one_or_none()
            action = "confirm"
            store_request = True
            if subscriber_id is None:
                row = conn.execute(
                    select(subscribers.c.id, subscribers.c.status).where(
                        subscribers.c.email == email
                    )
                ).one()
                subscriber_id = row.id
                if row.status == SubscriberStatus.UNSUBSCRIBED:
                    conn.execute(
                        update(subscribers)
                        .where(subscribers.c.id == row.id)
                        .values(name=name, status=SubscriberStatus.PENDING, **schedule)
                    )
                elif row.status == SubscriberStatus.PENDING:
                    store_request = False
                else:
                    action = "remind"
            if action == "confirm" and store_request:
                _replace_interests(conn, subscriber_id, chosen, now)
            # One email per address per resend_after, decided by one conditional
            # update so two requests at once cannot both send.
            allowed = conn.execute(
                update(subscribers)
                .where(
                    subscribers.c.id == subscriber_id,
                    or_(
                        subscribers.c.confirm_sent_at.is_(None),
                        subscribers.c.confirm_sent_at <= now - resend_after,
                    ),
                )
                .values(confirm_sent_at=now)
            ).rowcount
            subscriber = self._subscribers(conn, subscribers.c.id == subscriber_id)[0]
        return subscriber, action if allowed else "quiet"

    def release_confirmation(self, subscriber_id: int) -> None:
        """Forget that a confirmation was sent (it could not be), so the next try may send."""
        with self._tx() as conn:
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber_id)
                .values(confirm_sent_at=None)
            )

    def forget_unconfirmed(self, before: datetime) -> int:
        """Delete sign-ups never confirmed whose last email went before before; return how many.

        An address someone typed but its owner never confirmed is not kept. A
        former subscriber signing up again (confirmed once) keeps their row.
        """
        last_email = func.coalesce(subscribers.c.confirm_sent_at, subscribers.c.created_at)
        with self._tx() as conn:
            gone = list(
                conn.execute(
                    delete(subscribers)
                    .where(
                        subscribers.c.status == SubscriberStatus.PENDING,
                        subscribers.c.confirmed_at.is_(None),
                        last_email < before,
                    )
                    .returning(subscribers.c.id)
                ).scalars()
            )
            # One added from the command line, unsubscribed, then signing up again
            # on the web has a ledger and was never confirmed on the web.
            _delete_ledgers(conn, gone)
            return len(gone)

    def confirm_subscriber(self, subscriber_id: int, now: datetime) -> bool:
        """Turn a pending subscriber active; return whether this call did it."""
        with self._tx() as conn:
            return bool(
                conn.execute(
                    update(subscribers)
                    .where(
                        subscribers.c.id == subscriber_id,
                        subscribers.c.status == SubscriberStatus.PENDING,
                    )
                    .values(status=SubscriberStatus.ACTIVE, confirmed_at=now, unsubscribed_at=None)
                ).rowcount
            )

    def unsubscribe(self, subscriber_id: int, now: datetime) -> bool:
        """Stop every digest to a subscriber; return whether this call did it.

        Digests already composed stay as they are but are never claimed, since
        only active subscribers' digests are sent.
        """
        with self._tx() as conn:
            return bool(
                conn.execute(
                    update(subscribers)
                    .where(
                        subscribers.c.id == subscriber_id,
                        subscribers.c.status != SubscriberStatus.UNSUBSCRIBED,
                    )
                    .values(status=SubscriberStatus.UNSUBSCRIBED, unsubscribed_at=now)
                ).rowcount
            )

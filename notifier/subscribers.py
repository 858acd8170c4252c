"""Write and list subscribers for `notifier subscribe`, `subscriber edit` and `subscribers`.

validation.py decides what each field may hold; save_subscriber applies one
set of changes to the stored subscriber (creating them unless told they must
exist), checking the fields in the order their errors are reported.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from notifier import validation
from notifier.app import mail_identity
from notifier.errors import InvalidInput, NotifierError, SubscriberError
from notifier.matching import Matching, embed_interests
from notifier.models import Subscriber
from notifier.render.email import subscriber_links
from notifier.settings import Settings
from notifier.storage import Storage

log = logging.getLogger("notifier")


@dataclass(frozen=True)
class SubscriberChanges:
    """What to change of a subscriber; a field left None or empty stays as it is."""

    name: str | None = None
    # (interest name, value) pairs: a new name adds an interest, a known one changes.
    queries: Sequence[tuple[str, str]] = ()
    abouts: Sequence[tuple[str, str]] = ()
    sensitivities: Sequence[tuple[str, str]] = ()
    max_papers: int | None = None
    # Schedule columns to set; None puts one back to the configuration's.
    schedule: Mapping[str, str | None] = field(default_factory=dict)
    empty_note: bool | None = None
    status: str | None = None  # "paused" or "active"


def save_subscriber(
    storage: Storage,
    email: str,
    changes: SubscriberChanges,
    now: datetime,
    *,
    must_exist: bool = False,
    matching: Matching | None = None,
) -> tuple[Subscriber, bool]:
    """Create or update the subscriber at email; return them and whether they are new.

    Changed interests are embedded with matching, so the cycle finds them ready.
    Raises SubscriberError for an address that is not valid, one not stored
    when must_exist, or a new subscriber without an interest; InvalidInput
    for any other field that is not valid.
    """
    try:
        address = validation.email(email)
    except InvalidInput as e:
        raise SubscriberError(f"{email!r} is not a valid email address: {e.reason}") from None
    schedule: dict[str, Any] = validation.schedule(changes.schedule)
    if changes.empty_note is not None:
        schedule["empty_note"] = changes.empty_note
    try:
        current: Subscriber | None = storage.subscriber_by_email(address)
    except SubscriberError:
        if must_exist:
            raise SubscriberError(
                f"no subscriber with the address {address!r}: see `notifier subscribers`"
            ) from None
        current = None
    changed = validation.merged_interests(
        current.interests if current else (),
        changes.queries,
        changes.abouts,
        changes.sensitivities,
    )
    name = changes.name
    display = validation.display_name(name) if name is not None else None
    if not changed and current is None:
        raise SubscriberError(
            "a new subscriber needs at least one --interest NAME=QUERY or --about NAME=TEXT"
        )
    subscriber, created = storage.save_subscriber(
        address,
        display or None,
        changed,
        now,
        changes.max_papers,
        schedule=schedule,
        status=changes.status,
    )
    if matching is not None and changed:
        try:
            embed_interests(storage, matching, subscriber)
        except NotifierError as e:  # saved all the same: the next compose embeds them
            log.warning(
                "%s's interests are saved; embedding them waits for the cycle: %s",
                subscriber.email,
                e,
            )
    return subscriber, created


def with_feeds(settings: Settings, storage: Storage) -> list[tuple[Subscriber, str]]:
    """Return every subscriber with the address of their private feed."""
    identity = mail_identity(settings)
    return [(s, subscriber_links(identity, s).feed) for s in storage.subscribers()]


def subscriber_json(subscriber: Subscriber, feed: str) -> dict[str, Any]:
    """Return a subscriber and their interests as JSON-ready data (`subscribers --json`)."""
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "status": subscriber.status,
        "max_papers": subscriber.max_papers,
        "interests": [
            {"name": i.name, "query": i.query, "about": i.about, "sensitivity": i.sensitivity}
            for i in subscriber.interests
        ],
        "feed": feed,
    }

"""Write and list subscribers for `notifier subscribe`, `subscriber edit` and `subscribers`.

validation.py decides what each field may hold; save_subscriber applies one
set of changes to the stored subscriber (creating them unless told they must
exist), checking the fields in the order their errors are reported.
import_library teaches one of their interests by the papers of a library export.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from notifier import validation
from notifier.app import mail_identity
from notifier.errors import InvalidInput, NotifierError, SubscriberError
from notifier.matching import Matching, embed_interests
from notifier.models import Interest, Subscriber
from notifier.render.email import subscriber_links
from notifier.settings import Settings
from notifier.storage import Storage
from notifier.teaching import import_library_into

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


# One file's import is validated whole, then stored in one go.
MAX_IMPORT = 100_000


def read_import(lines: Iterable[str]) -> list[tuple[str, str | None, list[Interest]]]:
    """Return the subscribers a JSON Lines import lists: (address, name, interests).

    Each line is an object such as
    {"email": "ada@example.org", "name": "Ada", "interests": [{"name": "Robots",
    "query": "robot*", "about": "grasping and manipulation", "sensitivity": "normal"}]},
    checked by the same rules as every other way in (validation.py). Raises
    InvalidInput naming the first line at fault; blank lines are skipped.
    """
    found: list[tuple[str, str | None, list[Interest]]] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            found.append(_import_line(line, seen))
        except InvalidInput as e:
            raise InvalidInput(f"line {number}: {e}", e.reason) from None
        if len(found) > MAX_IMPORT:
            raise InvalidInput(f"more than {MAX_IMPORT:,} subscribers: split the file")
    if not found:
        raise InvalidInput("the file lists no subscribers (one JSON object per line)")
    return found


def _import_line(line: str, seen: set[str]) -> tuple[str, str | None, list[Interest]]:
    """Return one import line's subscriber, or raise InvalidInput saying what is wrong."""
    try:
        data = json.loads(line)
    except ValueError as e:
        raise InvalidInput(f"not JSON ({e})") from None
    if not isinstance(data, dict):
        raise InvalidInput('not a JSON object such as {"email": ..., "interests": [...]}')
    if unknown := set(data) - {"email", "name", "interests"}:
        raise InvalidInput(f"unknown field(s) {', '.join(sorted(unknown))}")
    raw_email, raw_name, raw_interests = data.get("email"), data.get("name"), data.get("interests")
    if not isinstance(raw_email, str):
        raise InvalidInput('"email" must be a text')
    try:
        address = validation.email(raw_email)
    except InvalidInput as e:
        raise InvalidInput(f"{raw_email!r} is not a valid email address: {e.reason}") from None
    if address.lower() in seen:
        raise InvalidInput(f"{address} is listed twice")
    seen.add(address.lower())
    if raw_name is not None and not isinstance(raw_name, str):
        raise InvalidInput('"name" must be a text')
    name = validation.display_name(raw_name) if raw_name else None
    if not isinstance(raw_interests, list):
        raise InvalidInput('"interests" must be a list of {"name", "query", "about"} objects')
    chosen = []
    for item in raw_interests:
        if not isinstance(item, dict) or set(item) - {"name", "query", "about", "sensitivity"}:
            raise InvalidInput(
                'each interest must be an object of "name", "query", "about", "sensitivity"'
            )
        name_of, query, about, level = (
            item.get(key) for key in ("name", "query", "about", "sensitivity")
        )
        if any(v is not None and not isinstance(v, str) for v in (name_of, query, about, level)):
            raise InvalidInput("an interest's fields must be texts")
        chosen.append(validation.interest(name_of, query, about, level or "normal"))
    return address, name, validation.interests(chosen)


def import_subscribers(storage: Storage, lines: Iterable[str], now: datetime) -> tuple[int, int]:
    """Store the subscribers an import lists; return (created, already present).

    The whole list is checked before anything is stored, so a bad line imports
    nobody; addresses already subscribed are left as they are, so an import
    cut short is finished by running it again. Their interests are not
    embedded here: `notifier embed` (or the daemon) does that in the background.
    """
    found = read_import(lines)
    created = storage.add_subscribers(found, now)
    return created, len(found) - created


def import_library(  # noqa: PLR0917
    storage: Storage, email: str, data: bytes, file_name: str, interest: str, now: datetime
) -> tuple[int, int]:
    """Add a library export's papers as examples of one of a subscriber's interests.

    Returns (added, already there): papers the interest already holds, by
    title, are not added twice, so importing a file again adds nothing.
    Raises SubscriberError for an unknown address or interest, LibraryError
    for a file that cannot be read or would give the interest too many papers;
    either way nothing is stored.
    """
    try:
        address = validation.email(email)
        subscriber = storage.subscriber_by_email(address)
    except (InvalidInput, SubscriberError):
        raise SubscriberError(f"no subscriber with email {email}") from None
    return import_library_into(storage, subscriber, data, file_name, interest, now)


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

"""What teaches an interest besides ratings: a library export's papers, for every surface.

The CLI (`subscriber import-library`), the admin API and the preferences page
import through here: the file is parsed whole before anything is stored, and
stored in one transaction, so nothing is half-imported.
"""

from __future__ import annotations

from datetime import datetime

from notifier.errors import LibraryError, SubscriberError
from notifier.library import read_library
from notifier.models import Interest, Subscriber
from notifier.storage.protocols import ExampleStore


def import_library_into(  # noqa: PLR0917
    storage: ExampleStore,
    subscriber: Subscriber,
    data: bytes,
    file_name: str,
    interest: str,
    now: datetime,
) -> tuple[int, int]:
    """Add a library export's papers to a subscriber's interest; see import_library."""
    chosen = interest_named(subscriber, interest)
    # Parsed whole before anything is stored: a bad entry imports nothing.
    entries = read_library(data, file_name)
    assert chosen.interest_id is not None  # interests loaded from storage have their id
    try:
        added = storage.import_examples(
            subscriber.id, chosen.interest_id, [(e.title, e.abstract) for e in entries], now
        )
    except ValueError as e:  # over MAX_EXAMPLES: the transaction stored nothing
        raise LibraryError(f"library '{file_name}': {e}; nothing was imported") from None
    if added is None:  # deleted since it was read
        raise SubscriberError(f"subscriber {subscriber.email} has no interest named {interest!r}")
    return added, len(entries) - added


def interest_named(subscriber: Subscriber, name: str) -> Interest:
    """Return the subscriber's interest of this name, or raise SubscriberError listing theirs."""
    # Names are distinct regardless of case (validation.interests), as they are matched here.
    wanted = name.strip().lower()
    for interest in subscriber.interests:
        if interest.name.lower() == wanted:
            return interest
    names = ", ".join(i.name for i in subscriber.interests) or "none"
    raise SubscriberError(
        f"subscriber {subscriber.email} has no interest named {name!r} (their interests: {names})"
    )

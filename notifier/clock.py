"""Read the wall clock: the one place outside the tests that asks what time it is.

The pure core takes `now` as an argument and may not import this module (an
import contract in `make lint`), so every decision it makes can be replayed.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)

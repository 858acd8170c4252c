"""A bounded memo keyed by the identity of the objects a value was made from."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class IdentityMemo(Generic[V]):
    """Remember values under keys that hold id()s of shared, immutable objects.

    Frozen papers and cards are shared between the digests of a run, so their
    identity finds a value without hashing every field (an abstract included).
    Each entry keeps the objects its key names alive, so no id in a key can be
    reused by another object while the entry exists. Cleared when full: a day's
    working set is a few thousand entries, and a long-running process must not grow.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._entries: dict[Hashable, tuple[object, V]] = {}

    def get(self, key: Hashable) -> V | None:
        """Return the value remembered under key, or None."""
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    def put(self, key: Hashable, holds: object, value: V) -> V:
        """Remember value under key, keeping holds (the objects key's ids name) alive."""
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[key] = (holds, value)
        return value

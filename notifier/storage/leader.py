"""The leader lock of `notifier run`: one daemon acts, the others wait as hot standbys."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import Connection, Engine

from notifier.storage import LEADER_LOCK, Storage


class LeaderLock(Protocol):
    """Held by the one daemon that acts; released when it stops or dies."""

    def try_acquire(self) -> bool:
        """Take the lock if it is free; return whether this process holds it."""

    def held(self) -> bool:
        """Tell whether this process still holds the lock."""

    def release(self) -> None:
        """Give the lock up."""


class FileLeaderLock:
    """A lock file (flock): the kernel releases it when the holding process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        """Take the lock if no other process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        # Who holds it, for a person looking at the file.
        handle.seek(0)
        handle.truncate()
        handle.write(f"{socket.gethostname()} pid {os.getpid()}\n")
        handle.flush()
        self._file = handle
        return True

    def held(self) -> bool:
        """Tell whether the lock is held (a flock cannot be lost while the file is open)."""
        return self._file is not None

    def release(self) -> None:
        """Unlock and close the file."""
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class AdvisoryLeaderLock:
    """A PostgreSQL session advisory lock, held on a connection of its own.

    The server releases it when that connection ends, so a daemon killed on
    another machine hands over as soon as its TCP connection is gone. The
    second key is the schema, so deployments sharing a database do not collide.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None

    def try_acquire(self) -> bool:
        """Take the lock if no other session holds it."""
        conn = self.engine.connect()
        got = conn.exec_driver_sql(
            f"SELECT pg_try_advisory_lock({LEADER_LOCK >> 32}, hashtext(current_schema()))"
        ).scalar_one()
        conn.commit()
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def held(self) -> bool:
        """Tell whether the lock's connection is still alive (the lock lives with it)."""
        if self._conn is None:
            return False
        try:
            self._conn.exec_driver_sql("SELECT 1")
            self._conn.commit()
        except Exception:  # any failure means the session, and so the lock, is gone
            return False
        return True

    def release(self) -> None:
        """Unlock and close the connection."""
        if self._conn is None:
            return
        with contextlib.suppress(Exception):  # a dead connection has released it already
            self._conn.exec_driver_sql(
                f"SELECT pg_advisory_unlock({LEADER_LOCK >> 32}, hashtext(current_schema()))"
            )
            self._conn.commit()
        with contextlib.suppress(Exception):
            self._conn.close()
        self._conn = None


def leader_lock(storage: Storage, state_dir: Path) -> LeaderLock:
    """Return the leader lock that suits the database.

    For SQLite, a lock file next to the database file (two daemons with
    different state directories but one database still exclude each other);
    state_dir for an in-memory database.
    """
    if storage.engine.dialect.name == "postgresql":
        return AdvisoryLeaderLock(storage.engine)
    database = storage.engine.url.database
    if database and database != ":memory:":
        return FileLeaderLock(Path(f"{database}-run.lock"))
    return FileLeaderLock(state_dir / "notifier-run.lock")

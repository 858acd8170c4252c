"""A write-ahead record of accepted messages, so marking them sent can wait for a group commit.

A sending run appends one line per message the server accepted to its own file
under state_dir/journal/ before it goes on to the next message; the database
learns of them in group commits (pipeline/send.py, _Marks), dozens of messages each
instead of one transaction per message (0.19 ms on SQLite, 0.6 ms on
PostgreSQL). A sender killed between the two leaves its file behind, and the
next run on this machine applies it (recover), so a message that was accepted
and journaled is never sent again.

A line is one write(2) and no fsync: it survives the process, not the machine.
After a power cut the last lines may be gone, and those messages go out again
with their own Message-ID once their lease expires, as with PostgreSQL's
synchronous_commit = off for the marks themselves.

A live run holds an exclusive flock on its file, so recover skips the files of
runs still going (another `send --workers` process, the daemon) and takes only
those whose process is gone. A file is created under a temporary name, locked,
then renamed, so recover never sees a journal before its owner holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import orjson

from notifier.errors import StorageError

SUFFIX = ".jsonl"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

Mark = tuple[int, str, datetime]  # digest id, the server's reply, when it was accepted


class SentJournal:
    """One sending run's journal: open and locked from creation until close."""

    def __init__(self, directory: Path, worker: str) -> None:
        name = _UNSAFE.sub("_", worker)
        self.path = directory / f"{name}{SUFFIX}"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            pending = directory / f".{name}.new"
            self._fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            pending.rename(self.path)
        except OSError as e:
            raise StorageError(
                f"cannot write the send journal in {directory}: {e.strerror or e}; "
                "check that state_dir is writable"
            ) from e

    def record(self, digest_id: int, reply: str, accepted_at: datetime) -> None:
        """Append that the server accepted a digest; raise StorageError if it cannot be."""
        line = orjson.dumps([digest_id, reply, accepted_at.isoformat()]) + b"\n"
        try:
            written = os.write(self._fd, line)
        except OSError as e:
            raise StorageError(
                f"cannot write the send journal {self.path}: {e.strerror or e}; "
                "check the free space and permissions of state_dir"
            ) from e
        if written != len(line):  # a full disk can cut a write short
            raise StorageError(
                f"cannot write the send journal {self.path}: the disk is full; "
                "free some space in state_dir"
            )

    def close(self, *, delete: bool) -> None:
        """Release the journal; delete it once every line in it is in the database."""
        if delete:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self._fd)


def recover(directory: Path, apply: Callable[[Sequence[Mark]], int]) -> int:
    """Apply the journals that runs no longer alive left in directory; return the marks applied.

    apply records marks as sent in the database (Storage.recover_sent). A file is
    deleted only after apply returned, so a failure leaves it for the next run.
    """
    if not directory.is_dir():
        return 0
    applied = 0
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # another process recovered it meanwhile
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its run is alive
            if not path.exists():  # recovered and deleted while we waited for the lock
                continue
            with os.fdopen(os.dup(fd), "rb") as lines:
                marks = [mark for line in lines if (mark := _parse(line)) is not None]
            if marks:
                applied += apply(marks)
            path.unlink()
        finally:
            os.close(fd)
    return applied


def _parse(line: bytes) -> Mark | None:
    """Return the mark on one line, or None for a line cut short by a crash."""
    try:
        digest_id, reply, accepted_at = orjson.loads(line)
        return int(digest_id), str(reply), datetime.fromisoformat(accepted_at)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None

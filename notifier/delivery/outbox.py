"""A transport that writes each message as an .eml file (dry runs and the demo)."""

from __future__ import annotations

import re
from pathlib import Path
from types import TracebackType
from typing import Self

from notifier.files import write_atomic
from notifier.models import OutgoingMessage

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class OutboxTransport:
    """Write messages to a directory; the file name is derived from the Message-ID."""

    def __init__(self, directory: Path, prefix: str = "") -> None:
        self.directory = directory
        self.prefix = prefix

    async def __aenter__(self) -> Self:
        """Create the directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Nothing to close."""

    async def send(self, message: OutgoingMessage, following: OutgoingMessage | None = None) -> str:
        """Write the message; a retry of the same Message-ID overwrites, never duplicates."""
        path = self.directory / self.file_name(message)
        write_atomic(path, message.data)
        return str(path)

    def file_name(self, message: OutgoingMessage) -> str:
        """Return a readable, filesystem-safe file name for a message."""
        message_id = message.message_id.strip("<>").split("@")[0]
        return _UNSAFE.sub("_", f"{self.prefix}{message.recipient}_{message_id}") + ".eml"

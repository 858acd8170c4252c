"""The one exception tree; every message is a line a user can act on."""

from __future__ import annotations


class NotifierError(Exception):
    """Base of every error notifier reports to a user."""


class ConfigError(NotifierError):
    """Raise when settings or the config file are invalid."""


class ListingError(NotifierError):
    """Raise when a listing cannot be parsed; names the source and the line."""

    def __init__(self, source: str, message: str, line: int | None = None) -> None:
        self.source = source
        self.line = line
        self.reason = message
        self.recorded = False  # set once a failed ingest run has logged this error
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"listing '{source}': {where}{message}")


class LibraryError(NotifierError):
    """Raise when a library export cannot be read; names the file and what to do."""


class QueryError(NotifierError):
    """Raise when an interest query is not valid."""

    def __init__(self, query: str, message: str, position: int | None = None) -> None:
        self.query = query
        self.position = position
        at = f" at position {position + 1}" if position is not None else ""
        super().__init__(f"query {query!r}: {message}{at}")


class SubscriberError(NotifierError):
    """Raise when a subscriber cannot be created or found."""


class InvalidInput(NotifierError, ValueError):
    """Raise when a subscriber, interest or schedule field is not valid (notifier.validation).

    A ValueError too, so pydantic models that call the checks report it as a
    validation error of the field.
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        self.reason = reason or message  # the bare cause, for a surface that words its own line
        super().__init__(message)


class StorageError(NotifierError):
    """Raise when the database cannot be opened or written."""


class StaleDiff(StorageError):
    """Raise when a concurrent ingest changed the papers a diff was based on."""


class RenderError(NotifierError):
    """Raise when a template cannot be loaded or rendered."""


class DeliveryError(NotifierError):
    """Base of delivery failures."""


class RecipientRejected(DeliveryError):
    """Raise when the server permanently refuses one recipient (5xx)."""


class TemporaryDeliveryError(DeliveryError):
    """Raise when the server asks to try one message again later (4xx)."""


class DeliveryUnknown(DeliveryError):
    """Raise when the connection failed after the message data was sent: it may have
    arrived. Retried with the same Message-ID so a duplicate can be recognised."""


class ServerUnavailable(DeliveryError):
    """Raise when the mail server cannot be reached at all; the run stops."""

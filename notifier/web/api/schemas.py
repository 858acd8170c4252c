"""The admin API's request and response bodies, as pydantic models.

They make /api/v1/openapi.json say exactly what each route takes and gives.
Input fields run the checks of notifier.validation, which the CLI and the web
forms use too, so any problem is a 422 naming the field with the same words.
Responses hold nothing secret: no feed or manage token, no digest content.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from notifier import models, validation
from notifier.errors import InvalidInput
from notifier.models import SENSITIVITIES
from notifier.schedule import CADENCES

# Subscribers one import request may carry (a file of more goes in several).
MAX_IMPORT_REQUEST = 1_000
# The text of one library export sent to teach an interest (its body may be 6 MiB).
MAX_LIBRARY_CONTENT = 5 * 1024 * 1024

_In = TypeVar("_In")
_Out = TypeVar("_Out")

# -- input values ---------------------------------------------------------------


def _refused(message: str) -> PydanticCustomError:
    """Return a validation error showing message as it is (a ValueError would prefix it)."""
    # Without a context the message is not formatted, so braces in it are safe.
    return PydanticCustomError("invalid", message)


def _checked(check: Callable[[_In], _Out]) -> Callable[[_In], _Out]:
    """Return notifier.validation's check as a field validator showing its message as it is."""

    def field_check(value: _In) -> _Out:
        try:
            return check(value)
        except InvalidInput as e:
            raise _refused(str(e)) from None

    return field_check


def _query_text(text: str) -> str:
    """Return a query cleaned as everywhere else."""
    return validation.interest_text(text, "query")


def _display_name(text: str) -> str:
    """Return a display name cleaned as everywhere else ("" for none)."""
    return validation.display_name(text) or ""


Email = Annotated[
    str,
    Field(
        min_length=1,
        max_length=320,
        examples=["ada@example.org"],
        json_schema_extra={"format": "email"},
        description="Stored lowercased, as the CLI and the sign-up page store it.",
    ),
    AfterValidator(_checked(validation.email)),
]
DisplayName = Annotated[
    str,
    Field(max_length=200, description="How digests greet them; empty for none."),
    AfterValidator(_checked(_display_name)),
]
Cadence = Annotated[
    str,
    AfterValidator(_checked(validation.cadence)),
    WithJsonSchema({"type": "string", "enum": list(CADENCES)}),
]
SendTime = Annotated[
    str,
    Field(max_length=16, description="Local time, HH:MM (24-hour).", examples=["07:00"]),
    AfterValidator(_checked(validation.send_time)),
]
TimeZone = Annotated[
    str,
    Field(max_length=64, description="IANA time zone name.", examples=["Europe/Berlin"]),
    AfterValidator(_checked(validation.time_zone)),
]
Weekday = Annotated[
    int | str,
    AfterValidator(_checked(validation.weekday)),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": 6},
                {"type": "string", "maxLength": 9, "examples": ["monday", "fri"]},
            ],
            "description": "Weekly digests: 0 (Monday) to 6, or a day name or its first "
            "three letters.",
        }
    ),
]
MaxPapers = Annotated[
    int, Field(ge=1, le=validation.MAX_PAPERS, description="Cap on papers per digest.")
]
Sensitivity = Annotated[
    str,
    WithJsonSchema({"type": "string", "enum": list(SENSITIVITIES)}),
]
SubscriberStatus = Literal["active", "paused", "suspended", "pending", "unsubscribed"]
DigestStatus = Literal["empty", "pending", "sending", "sent", "failed", "unknown", "unconfirmed"]


class InterestInput(BaseModel):
    """A named interest: a query, a description in plain words, or both."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        # Matching needs something to look for: a query, a description or both.
        json_schema_extra={
            "anyOf": [
                {"required": [field], "properties": {field: {"type": "string", "minLength": 1}}}
                for field in ("query", "about")
            ]
        },
    )

    name: Annotated[
        str,
        Field(min_length=1, max_length=validation.MAX_INTEREST_NAME),
        AfterValidator(_checked(validation.interest_name)),
    ]
    query: (
        Annotated[
            str,
            Field(
                max_length=validation.MAX_INTEREST_TEXT,
                description='Words that must appear: "phrases", AND, OR, -word, '
                "title:/abstract:/author:, prefix*.",
                examples=['"reinforcement learning" OR RL -survey'],
            ),
            AfterValidator(_checked(_query_text)),
        ]
        | None
    ) = None
    about: (
        Annotated[
            str,
            Field(
                max_length=validation.MAX_INTEREST_TEXT,
                description="What the interest is about; papers can match it by meaning.",
            ),
            AfterValidator(_checked(validation.interest_text)),
        ]
        | None
    ) = None
    sensitivity: Sensitivity = "normal"

    @model_validator(mode="after")
    def _compiles(self) -> InterestInput:
        """Check the interest as matching will read it (the query's syntax, the sensitivity)."""
        try:
            checked = validation.interest(self.name, self.query, self.about, self.sensitivity)
        except InvalidInput as e:
            raise _refused(str(e)) from None
        self.query, self.about = checked.query, checked.about
        self.sensitivity = checked.sensitivity
        return self

    def interest(self) -> models.Interest:
        """Return the interest to store."""
        return models.Interest(self.name, self.query, self.about, self.sensitivity)


def _distinct_names(interests: list[InterestInput]) -> list[InterestInput]:
    """Refuse two interests of one name, as every surface does."""
    validation.interests([i.interest() for i in interests])
    return interests


class InterestList(RootModel[list[InterestInput]]):
    """A subscriber's whole list of interests, in order."""

    model_config = ConfigDict(strict=True)

    root: Annotated[
        list[InterestInput],
        Field(min_length=1, max_length=validation.MAX_INTERESTS),
        AfterValidator(_checked(_distinct_names)),
    ]

    def interests(self) -> list[models.Interest]:
        """Return the interests to store."""
        return [i.interest() for i in self.root]


class NewSubscriber(BaseModel):
    """A subscriber to create; admin-created subscribers need no double opt-in."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "email": "ada@example.org",
                    "name": "Ada",
                    "interests": [
                        {"name": "rl", "query": '"reinforcement learning" -survey'},
                        {"name": "robots", "about": "robot learning from demonstrations"},
                    ],
                    "cadence": "weekly",
                    "send_time": "07:30",
                    "timezone": "Europe/Berlin",
                    "weekday": "friday",
                }
            ]
        },
    )

    email: Email
    name: DisplayName | None = None
    interests: InterestList
    cadence: Cadence | None = None
    send_time: SendTime | None = None
    timezone: TimeZone | None = None
    weekday: Weekday | None = None
    max_papers: MaxPapers | None = None
    empty_note: bool = Field(False, description="Send a short note when nothing new matched.")
    status: Literal["active", "paused"] = "active"

    def schedule(self) -> dict[str, Any]:
        """Return the schedule columns to store (None: the configured default)."""
        return {
            "cadence": self.cadence,
            "send_time": self.send_time,
            "timezone": self.timezone,
            "weekday": self.weekday,
            "empty_note": self.empty_note,
        }


def _not_nullable(schema: JsonDict) -> None:
    """Drop null from an optional field's schema: leaving it out is how it is not given."""
    schema.pop("default", None)
    branches = schema.pop("anyOf", None)
    if isinstance(branches, list):
        kept = [b for b in branches if b != {"type": "null"}]
        if len(kept) == 1 and isinstance(kept[0], dict):
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept


# PATCH fields that null resets to the configured default.
_SCHEDULE_FIELDS = ("cadence", "send_time", "timezone", "weekday")


class ImportedSubscriber(BaseModel):
    """One subscriber of a bulk import: an address, a name, interests."""

    model_config = ConfigDict(extra="forbid", strict=True)

    email: Email
    name: DisplayName | None = None
    interests: InterestList


class SubscriberImport(BaseModel):
    """Subscribers to add at once, all or none; addresses already present are left alone."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "subscribers": [
                        {
                            "email": "ada@example.org",
                            "interests": [{"name": "robots", "about": "robot grasping"}],
                        },
                        {"email": "alan@example.org", "interests": [{"query": "transformer*"}]},
                    ]
                }
            ]
        },
    )

    subscribers: list[ImportedSubscriber] = Field(min_length=1, max_length=MAX_IMPORT_REQUEST)


class ImportOut(BaseModel):
    """What an import did, and how many interests still wait for their embeddings."""

    created: int
    already_subscribed: int
    interests_to_embed: int = Field(
        description="Interests with no embeddings yet (matched by their words until then); "
        "they are embedded in the background."
    )


class LibraryUpload(BaseModel):
    """A reference library export whose papers teach an interest, all or none."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "file_name": "refs.bib",
                    "content": "@article{doe2024,\n  title = {Robot grasping at scale},\n"
                    "  abstract = {We grasp.}\n}\n",
                }
            ]
        },
    )

    file_name: str = Field(
        min_length=1,
        max_length=255,
        description="The file's name, e.g. refs.bib: its extension says the format "
        "(BibTeX .bib, RIS .ris, CSL-JSON .json) and errors name it.",
    )
    content: str = Field(
        max_length=MAX_LIBRARY_CONTENT, description="The file's text, at most 5 MiB."
    )


class SubscriberChanges(BaseModel):
    """What to change; fields left out stay. Null puts the name or a clock field back to none."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"timezone": "America/New_York", "send_time": None}]},
    )

    name: DisplayName | None = None
    interests: InterestList | None = Field(
        None, description="Replaces the whole list.", json_schema_extra=_not_nullable
    )
    cadence: Cadence | None = None
    send_time: SendTime | None = None
    timezone: TimeZone | None = None
    weekday: Weekday | None = None
    max_papers: MaxPapers | None = Field(None, json_schema_extra=_not_nullable)
    empty_note: bool | None = Field(None, json_schema_extra=_not_nullable)
    status: Literal["active", "paused", "suspended", "unsubscribed"] | None = Field(
        None, json_schema_extra=_not_nullable
    )

    @field_validator("interests", "max_papers", "empty_note", "status")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        """Refuse an explicit null where it would mean nothing (leaving a field out keeps it)."""
        if value is None:
            raise _refused("cannot be null: leave the field out to keep it as it is")
        return value

    def schedule(self) -> dict[str, Any]:
        """Return the schedule columns given (None: back to the configured default)."""
        given = self.model_fields_set
        changes = {k: getattr(self, k) for k in _SCHEDULE_FIELDS if k in given}
        if self.empty_note is not None:
            changes["empty_note"] = self.empty_note
        return changes


# -- responses ------------------------------------------------------------------


class Problem(BaseModel):
    """Why a request was refused, in one line."""

    detail: str


class InterestOut(BaseModel):
    """A stored interest."""

    name: str
    query: str | None
    about: str | None
    sensitivity: Sensitivity


class LibraryImportOut(BaseModel):
    """How many papers an import added (those the interest already held are not)."""

    imported: int


class ExampleOut(BaseModel):
    """A paper that teaches one of a subscriber's interests: rated, or imported."""

    id: int
    interest: str = Field(description="The interest's name.")
    interest_id: int
    verdict: Literal["more", "less"] = Field(description="more: more like this; less: not for me.")
    origin: Literal["rating", "library"] = Field(
        description="rating: rated from a digest or feed; library: imported."
    )
    title: str
    paper_id: int | None = Field(description="The rated paper; null for an imported one.")
    created_at: datetime


class MutedAuthorOut(BaseModel):
    """An author whose papers a subscriber no longer wants."""

    name: str
    created_at: datetime


class RatingsOut(BaseModel):
    """What a subscriber taught their interests: example papers and muted authors."""

    examples: list[ExampleOut] = Field(description="Interest by interest, newest first.")
    muted_authors: list[MutedAuthorOut]


class SubscriberOut(BaseModel):
    """A subscriber, without the secret tokens of their feed and preferences links."""

    id: int
    email: str
    name: str | None
    status: SubscriberStatus
    interests: list[InterestOut]
    max_papers: int | None = Field(description="null: the configured default")
    cadence: Cadence | None = Field(description="null: the configured default")
    send_time: str | None = Field(description="HH:MM local time; null: the configured default")
    timezone: str | None = Field(description="null: the configured default")
    weekday: int | None = Field(description="0 is Monday; null: the configured default")
    empty_note: bool
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None


class SubscriberPage(BaseModel):
    """One page of subscribers in id order."""

    items: list[SubscriberOut]
    next_after: int | None = Field(description="Pass as after for the next page; null: no more.")


class DigestOutcomeOut(BaseModel):
    """One of a subscriber's digests."""

    email: str
    period: str
    status: DigestStatus
    papers: int
    reason: str | None
    last_error: str | None


class DigestOut(BaseModel):
    """A digest's delivery state (never its content)."""

    id: int
    subscriber_id: int
    email: str
    period: str
    status: DigestStatus
    papers: int
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class DigestPage(BaseModel):
    """One page of digests in id order."""

    items: list[DigestOut]
    next_after: int | None = Field(description="Pass as after for the next page; null: no more.")


class IngestRunOut(BaseModel):
    """One ingest of one listing."""

    id: int
    source: str
    kind: str | None
    status: Literal["ok", "empty", "unchanged", "failed"]
    started_at: datetime
    papers: int
    new: int
    seen: int
    updated: int
    skipped: int
    error: str | None
    reason: str | None


class JobRunOut(BaseModel):
    """The latest run of one scheduled job."""

    job: str
    host: str
    started_at: datetime
    finished_at: datetime | None
    status: Literal["running", "ok", "failed"]
    detail: str


class RunsOut(BaseModel):
    """The latest ingest runs, newest first, and the latest run of each job."""

    ingest: list[IngestRunOut]
    jobs: list[JobRunOut]


class SourceOut(BaseModel):
    """A listing source and its health; the URL has no credentials or query."""

    name: str
    kind: str
    url: str
    configured: bool = Field(description="Listed in the configuration (else ingested ad hoc).")
    every: str | None = Field(description="How often it is polled, if configured.")
    due: bool
    last_checked_at: datetime | None
    last_status: Literal["ok", "empty", "unchanged", "failed"] | None
    last_papers: int | None
    last_error: str | None
    consecutive_failures: int
    failing: bool = Field(description="Failed failure_alert_after times in a row or more.")


class NewChannel(BaseModel):
    """A channel to post digests to besides email: Slack, Discord, Matrix or a webhook."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["slack", "discord", "matrix", "webhook"]
    url: str = Field(
        max_length=validation.MAX_CHANNEL_URL,
        description="The webhook's URL (https), or the Matrix homeserver's address.",
    )
    label: str | None = Field(default=None, max_length=validation.MAX_NAME)
    room: str | None = Field(
        default=None, max_length=255, description="Matrix: the room's id (!abc:example.org)."
    )
    token: str | None = Field(
        default=None,
        max_length=validation.MAX_CHANNEL_SECRET,
        description="Matrix: an access token of a user in the room. Webhook: the key posts "
        "are signed with (HMAC-SHA256); none given, one is made and returned once.",
    )


class ChannelOut(BaseModel):
    """A channel, its URL masked and its token never shown."""

    id: int
    kind: Literal["slack", "discord", "matrix", "webhook"]
    label: str
    url: str = Field(description="Masked: the host and the last 4 characters.")
    room: str | None
    subscriber_id: int | None
    topic: str | None
    status: Literal["active", "suspended"]
    failures: int = Field(description="Refusals in a row; channel_failure_limit suspends.")
    last_error: str | None
    created_at: datetime | None
    last_sent_at: datetime | None


class ChannelCreated(ChannelOut):
    """A channel just added; a webhook's signing key made for it is returned this once."""

    signing_key: str | None = Field(
        default=None,
        description="The webhook's signing key when notifier made it; not shown again.",
    )


class ChannelTestOut(BaseModel):
    """What the service answered a test message."""

    posted: bool = Field(description="Whether the service took it (answered 2xx).")
    answer: str = Field(description="What it answered, or why nothing was posted.")

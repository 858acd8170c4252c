"""Frozen data types, named by the pipeline stage that produces them.

PaperData (what a listing says) -> StoredPaper (what we remember) ->
PaperChange (what diff decided) -> Match (why a paper suits an interest) ->
DigestContent (what a subscriber will receive, frozen when composed).
All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from notifier.papers import arxiv_links


class Announce(StrEnum):
    """How a listing announces a paper (arXiv listing feeds say; others are NEW)."""

    NEW = "new"
    CROSS = "cross"  # new to this category, first listed elsewhere: still a new paper
    REPLACE = "replace"  # a new version of a known paper: never a new paper
    REPLACE_CROSS = "replace-cross"

    @property
    def is_update(self) -> bool:
        """Tell whether this announces a new version rather than a new paper."""
        return self in (Announce.REPLACE, Announce.REPLACE_CROSS)


# The values of the status enums below are the strings stored in the database
# (and shown by the CLI and the admin API): they must not change without a migration.


class IngestStatus(StrEnum):
    """Tell how one ingest of a listing ended (ingest_runs.status, sources.last_status)."""

    OK = "ok"  # papers listed and stored
    EMPTY = "empty"  # a listing with no papers (a weekend): not a failure
    UNCHANGED = "unchanged"  # the server answered 304 Not Modified
    FAILED = "failed"  # refused or unreachable; no paper of it stored


class SubscriberStatus(StrEnum):
    """Say whether a subscriber gets digests (subscribers.status): only active ones do."""

    ACTIVE = "active"
    PAUSED = "paused"  # no email until resumed; their private feed is kept
    SUSPENDED = "suspended"  # hard bounces (or the admin API); their private feed is kept
    PENDING = "pending"  # signed up on the web, not confirmed yet
    UNSUBSCRIBED = "unsubscribed"


class DigestStatus(StrEnum):
    """Track a digest from composed to delivered or given up (digests.status)."""

    # Nothing matched (reason kept): never sent, replaced if a later ingest fills the
    # period. A "nothing new" note the subscriber asked for is stored pending instead.
    EMPTY = "empty"
    PENDING = "pending"  # waiting for its first or next attempt
    SENDING = "sending"  # leased by a sending worker
    SENT = "sent"  # accepted by the mail server
    FAILED = "failed"  # refused for good
    # Timed out after the final ".": it may have arrived; retried with the same Message-ID.
    UNKNOWN = "unknown"
    UNCONFIRMED = "unconfirmed"  # unknown until retry_deadline, then given up: never "failed"


class ChannelKind(StrEnum):
    """Say in which service's format a channel takes messages (channels.kind)."""

    SLACK = "slack"  # an incoming webhook (Slack, or a Slack-compatible one)
    DISCORD = "discord"  # a Discord webhook
    MATRIX = "matrix"  # a Matrix room, posted to with an access token
    WEBHOOK = "webhook"  # our own JSON, signed with HMAC-SHA256

    @property
    def deduplicates(self) -> bool:
        """Tell whether the receiver can tell a repeated post by its idempotency key.

        Matrix keeps a transaction id per access token, and the generic webhook's
        receiver gets an Idempotency-Key; Slack and Discord webhooks take no key,
        so a post that may have arrived is never made again there.
        """
        return self in (ChannelKind.MATRIX, ChannelKind.WEBHOOK)

    @property
    def keeps_keys(self) -> timedelta | None:
        """Return how long the receiver is known to remember a key (None: up to it).

        Synapse keeps a transaction id for 24 hours (in its database, per device);
        a repeat after that would be a second message.
        """
        return timedelta(hours=23) if self is ChannelKind.MATRIX else None


class ChannelStatus(StrEnum):
    """Say whether a channel gets messages (channels.status)."""

    ACTIVE = "active"
    SUSPENDED = "suspended"  # the service said the webhook or room is gone or refused


class PostStatus(StrEnum):
    """Track one digest's message to one channel (channel_posts.status)."""

    PENDING = "pending"  # waiting for its first or next attempt
    POSTING = "posting"  # leased by a worker
    SENT = "sent"  # the service answered 2xx
    FAILED = "failed"  # refused for good (4xx, or retries ran out before any could arrive)
    UNCONFIRMED = "unconfirmed"  # may have arrived; not posted again


class JobStatus(StrEnum):
    """Tell how a scheduled job run stands (job_runs.status)."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"


# Not stored, but printed and given by `notifier digest --json`: scripts read them.
class ComposeOutcome(StrEnum):
    """Say what composing did for one subscriber."""

    CREATED = "created"  # a digest with papers, stored to be sent
    EMPTY = "empty"  # nothing new matched (stored; sent only as a note asked for)
    EXISTS = "exists"  # this period's digest was composed already (or meanwhile)
    INVALID = "invalid"  # a stored choice (query, time zone) stopped being valid


@dataclass(frozen=True, slots=True)
class PaperData:
    """One paper as a listing gives it, already normalised."""

    key: str
    title: str
    abstract: str
    rank: int
    arxiv_id: str | None = None
    version: int | None = None
    url: str | None = None
    authors: tuple[str, ...] = ()
    published_at: datetime | None = None  # when the paper itself appeared (e.g. on arXiv)
    announce: Announce = Announce.NEW
    # Source extras shown with the paper: upvotes, comments, github, ai_summary, categories.
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Listing:
    """A parsed listing: where it came from, its date label and its papers.

    A listing with no papers carries empty_reason (a weekend, a day not yet
    published); it is recorded as empty, not as a failure.
    """

    source: str
    papers: tuple[PaperData, ...]
    label: str | None = None
    empty_reason: str | None = None
    skipped: int = 0  # items the parser left out (a feed entry without a title)


@dataclass(frozen=True, slots=True)
class Payload:
    """The raw bytes of a listing and where they came from."""

    data: bytes
    url: str | None = None
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class StoredPaper:
    """What storage remembers of a paper, enough to diff against."""

    id: int
    key: str
    title: str
    abstract: str
    arxiv_id: str | None = None
    version: int | None = None
    title_key: str = ""
    url: str | None = None
    authors: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)
    published_at: datetime | None = None


class ChangeKind(StrEnum):
    """What an ingest decided about one listed paper."""

    NEW = "new"
    UPDATED = "updated"
    SEEN = "seen"
    SKIPPED = "skipped"  # an update announced for a paper we never saw: not a new paper


@dataclass(frozen=True, slots=True)
class PaperChange:
    """A diff decision: the listed paper, what it is, the stored row and what to set on it."""

    kind: ChangeKind
    paper: PaperData
    stored_id: int | None = None
    # Stored fields (StoredPaper names) to overwrite, with their new values.
    updates: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IngestSummary:
    """What one ingest of one listing did."""

    source: str
    run_id: int
    papers: int
    new: int
    seen: int
    updated: int
    skipped: int = 0
    status: IngestStatus = IngestStatus.OK  # ok, empty or unchanged (a failure raises)
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class IngestRun:
    """One row of the ingest log, for status and replay."""

    id: int
    source: str
    status: IngestStatus
    started_at: datetime
    papers: int
    new: int
    seen: int
    updated: int
    error: str | None
    kind: str | None = None
    reason: str | None = None
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class SourceState:
    """A source's conditional-GET validators and health."""

    name: str
    kind: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    last_checked_at: datetime | None = None
    last_success_at: datetime | None = None
    # An IngestStatus when read from storage; typed str while callers outside the
    # pipeline (a test, for one) still build states with a literal.
    last_status: str | None = None
    last_error: str | None = None
    last_papers: int | None = None
    consecutive_failures: int = 0


@dataclass(frozen=True, slots=True)
class Paper:
    """A stored paper as matching, digests and feeds see it."""

    id: int
    key: str
    guid: str
    title: str
    abstract: str
    url: str
    first_seen_at: datetime
    updated_at: datetime
    arxiv_id: str | None = None
    version: int | None = None
    authors: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)
    # The ingest that stored it or last changed its text (schema.arrival_counter).
    arrival: int = 0


# How readily a described interest lets papers in (match.MatchParams.cut).
SENSITIVITIES = ("strict", "normal", "broad")


@dataclass(frozen=True, slots=True)
class Interest:
    """A subscriber's named interest: a query, a description in plain words, or both."""

    name: str
    query: str | None = None
    about: str | None = None
    sensitivity: str = "normal"  # strict | normal | broad
    interest_id: int | None = field(default=None, compare=False)  # set once stored
    # When its query, description or sensitivity last changed (None: not known).
    changed_at: datetime | None = field(default=None, compare=False)


class Verdict(StrEnum):
    """What a reader said of a paper for one interest."""

    MORE = "more"  # more like this: a positive example
    LESS = "less"  # not for me: a negative example


class ExampleOrigin(StrEnum):
    """Where an interest's example paper came from."""

    RATING = "rating"  # a link in a digest or a feed
    LIBRARY = "library"  # an imported BibTeX, RIS or CSL-JSON export


@dataclass(frozen=True, slots=True)
class InterestExample:
    """A paper that teaches an interest: rated from a digest, or imported from a library."""

    id: int
    interest_id: int
    interest: str
    title: str
    abstract: str
    verdict: Verdict
    origin: ExampleOrigin
    created_at: datetime
    paper_id: int | None = None  # the rated paper; None for an imported one


@dataclass(frozen=True, slots=True)
class MutedAuthor:
    """An author whose papers a subscriber no longer wants."""

    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A person who receives digests."""

    id: int
    email: str
    name: str | None
    interests: tuple[Interest, ...]
    feed_token: str
    manage_token: str
    created_at: datetime
    max_papers: int | None = None
    status: SubscriberStatus = SubscriberStatus.ACTIVE
    # Their own clock; None means the configured default (see schedule.resolve).
    cadence: str | None = None
    send_time: str | None = None
    timezone: str | None = None
    weekday: int | None = None
    empty_note: bool = False
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None


class ScheduleKey(NamedTuple):
    """A subscriber's own schedule columns as stored (None: the configured default)."""

    cadence: str | None
    send_time: str | None
    timezone: str | None
    weekday: int | None


# (k, n): the subscribers whose id is k modulo n, the share of one of n processes.
Shard = tuple[int, int]


class Match(NamedTuple):
    """Why a paper suits one interest: its score and the terms that matched.

    A named tuple, not a frozen dataclass: a run builds one per (interest, paper)
    a query lets through, millions at scale, and a tuple is built four times faster.
    """

    interest: str
    score: float
    terms: tuple[str, ...]
    reason: str
    paper: int = -1  # position of the paper in the index it was matched in
    lexical: float = 0.0
    semantic: float | None = None


@dataclass(frozen=True, slots=True)
class InterestVolume:
    """Why an interest finds as many papers as it does: what passed its query, what was cut."""

    interest: str
    looked_at: int  # recent papers the subscriber has not been offered yet
    passed_query: int | None  # None: the interest has no query to pass
    delivered: int
    below_cut: int  # passed the query (or had none) but scored below the cut
    cut: float | None  # None: a query delivers all it matches, no cut
    sensitivity: str
    closest: tuple[tuple[str, float], ...] = ()  # best titles below the cut, with scores


@dataclass(frozen=True, slots=True)
class DigestPaper:
    """A paper as frozen into a digest."""

    paper_id: int
    guid: str
    title: str
    abstract: str
    url: str
    score: float
    reason: str
    terms: tuple[str, ...]
    also_matches: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    upvotes: int | None = None
    code_url: str | None = None
    summary: str | None = None  # a one-line summary from the source (HF's AI summary)
    arxiv_id: str | None = None  # bare (papers.normalise_arxiv_id)
    project_url: str | None = None  # the project page a source names (HF's projectPage)

    @property
    def abs_url(self) -> str | None:
        """Return the paper's arXiv abstract page, when it has an arXiv id."""
        links = arxiv_links(self.arxiv_id)
        return links[0] if links else None

    @property
    def pdf_url(self) -> str | None:
        """Return the paper's PDF on arXiv, when it has an arXiv id."""
        links = arxiv_links(self.arxiv_id)
        return links[1] if links else None


@dataclass(frozen=True, slots=True)
class DigestSection:
    """The papers of one interest, best first."""

    interest: str
    papers: tuple[DigestPaper, ...]
    tuned_by: int = 0  # the interest's ratings and imported papers when composed


@dataclass(frozen=True, slots=True)
class DigestContent:
    """Everything a digest email says, frozen when composed so a retry is identical."""

    subscriber_id: int
    period: str
    sections: tuple[DigestSection, ...]
    more: int = 0
    candidates: int = 0
    reason: str = ""

    @property
    def papers(self) -> tuple[DigestPaper, ...]:
        """Return every paper of the digest in section order."""
        return tuple(p for s in self.sections for p in s.papers)

    @property
    def paper_count(self) -> int:
        """Return how many papers the digest shows."""
        return sum(len(s.papers) for s in self.sections)

    @property
    def is_empty(self) -> bool:
        """Tell whether nothing new matched."""
        return not self.sections


@dataclass(frozen=True, slots=True)
class ComposedDigest:
    """A digest as composing left it: its content and the matched papers the cap left out."""

    content: DigestContent
    # (paper id, interest, score, reason) of each paper counted in "and N more".
    overflow: tuple[tuple[int, str, float, str], ...]


@dataclass(frozen=True, slots=True)
class ComposeResult:
    """What composing did for one subscriber: the outcome, and the content if any."""

    subscriber: Subscriber
    content: DigestContent | None
    outcome: ComposeOutcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class NewDigest:
    """A composed digest to store: its content, its overflow and its Message-ID.

    overflow holds (paper id, interest, score, reason) of matching papers past
    the cap: offered (in the ledger) but not shown.
    """

    content: DigestContent
    overflow: tuple[tuple[int, str, float, str], ...]
    message_id: str
    send_empty: bool = False  # the subscriber asked for a "nothing new" note
    # Every arrival up to this had committed when the candidates were read.
    arrivals_through: int | None = None


@dataclass(frozen=True, slots=True)
class StoredDigest:
    """A digest row: its frozen content and delivery state."""

    id: int
    subscriber: Subscriber
    content: DigestContent
    status: DigestStatus
    message_id: str
    created_at: datetime
    attempts: int = 0
    last_error: str | None = None
    unknown_since: datetime | None = None  # an attempt may have arrived (no reply after data)


@dataclass(frozen=True, slots=True)
class DigestOutcome:
    """The latest digest of a subscriber, for status."""

    email: str
    period: str
    status: DigestStatus
    papers: int
    reason: str | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class DigestRecord:
    """A digest's delivery state without its content, for the admin API."""

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


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A rendered email: its envelope and the exact bytes to put on the wire."""

    sender: str
    recipient: str
    message_id: str
    data: bytes

    @property
    def needs_smtputf8(self) -> bool:
        """Tell whether an address is internationalised (RFC 6531 SMTPUTF8)."""
        return not (self.sender.isascii() and self.recipient.isascii())


@dataclass(frozen=True, slots=True)
class MetricsFigures:
    """What /metrics reports, read in one transaction."""

    papers: int
    composed: int
    # Keyed by DigestStatus and SubscriberStatus members, typed str while /metrics
    # (web/ops.py) still looks them up by literal: a dict's key type is invariant.
    digests: dict[str, int]
    subscribers: dict[str, int]
    latencies: list[float]  # seconds from composed to accepted, digests sent recently


@dataclass(frozen=True, slots=True)
class JobRun:
    """One run of a scheduled job (notifier run / run-once), for status."""

    job: str
    host: str
    started_at: datetime
    finished_at: datetime | None
    status: JobStatus
    detail: str


@dataclass(frozen=True, slots=True)
class Channel:
    """A place besides email where a subscriber's or a topic's digests are posted."""

    id: int
    kind: ChannelKind
    label: str
    # The webhook URL, or the Matrix homeserver: a secret, shown only masked (shown_url).
    url: str = field(repr=False)
    subscriber_id: int | None = None
    topic: str | None = None  # a configured topic's slug
    room: str | None = None  # a Matrix room id
    secret: str | None = field(default=None, repr=False)  # Matrix token, webhook signing key
    status: ChannelStatus = ChannelStatus.ACTIVE
    failures: int = 0
    last_error: str | None = None
    created_at: datetime | None = None
    last_sent_at: datetime | None = None

    @property
    def shown_url(self) -> str:
        """Return the URL as pages and commands show it: host and the last 4 characters.

        A webhook URL lets anyone who has it post (its path or query is the
        secret), so it is never shown in full.
        """
        parts = urlsplit(self.url)
        rest = parts.path.strip("/") + (f"?{parts.query}" if parts.query else "")
        try:
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            host, port = "", ""
        named = f"[{host}]" if ":" in host else host
        tail = f"…{rest[-4:]}" if len(rest) > 12 else "…" if rest else ""
        return f"{parts.scheme}://{named}{port}/{tail}"


@dataclass(frozen=True, slots=True)
class ChannelPost:
    """One claimed message of a digest to a channel, with what posting it needs."""

    id: int
    key: str  # the idempotency key: the same on every attempt
    channel: Channel
    content: DigestContent
    created_at: datetime  # when the post was queued
    attempts: int
    in_doubt: bool  # an earlier attempt was under way when its worker stopped
    unknown_since: datetime | None = None  # an attempt may have arrived
    message_id: str | None = None  # a subscriber's digest: what its page link signs

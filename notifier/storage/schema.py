"""Table declarations; the Alembic migrations in migrations/versions create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)

from notifier.models import DigestStatus, SubscriberStatus

metadata = MetaData()


class UtcDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as UTC and give them back aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC, refusing naive datetimes (DESIGN.md: aware UTC inside)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to storage")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


papers = Table(
    "papers",
    metadata,
    Column("id", Integer, primary_key=True),
    # arxiv:<id> or title:<hash>; changes once when a title-keyed paper gains an arXiv id.
    Column("key", String(64), nullable=False, unique=True),
    # Fixed at first sight so feed GUIDs survive that merge.
    Column("guid", String(80), nullable=False, unique=True),
    Column("arxiv_id", String(40), unique=True),
    Column("title", Text, nullable=False),
    Column("abstract", Text, nullable=False),
    Column("first_seen_at", UtcDateTime(), nullable=False, index=True),
    Column("updated_at", UtcDateTime(), nullable=False),
    # Hash of the normalised title, for every paper: a listing that knows a
    # paper only by title finds it even after it gained its arXiv id.
    Column("title_key", String(20), index=True),
    Column("version", Integer),
    Column("url", Text),
    Column("authors", JSON),
    Column("meta", JSON),
    Column("published_at", UtcDateTime()),
    # The arrival (arrival_counter) of the ingest that stored or last changed it.
    Column("arrival", BigInteger, nullable=False, server_default="0"),
)

# One row: the last arrival number taken. An ingest that stores new or changed
# papers increments it in its transaction and stamps them with the result;
# the row stays locked until that ingest commits, so arrivals commit in order
# and "every arrival up to N is committed" can be read back, where times and
# ids (taken before commit) cannot say what a late-committing ingest holds.
arrival_counter = Table(
    "arrival_counter",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("value", BigInteger, nullable=False),
)

ingest_runs = Table(
    "ingest_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", Text, nullable=False),
    Column("label", String(40)),
    Column("status", String(16), nullable=False),  # IngestStatus: ok | empty | unchanged | failed
    Column("started_at", UtcDateTime(), nullable=False),
    Column("papers", Integer, nullable=False, default=0),
    Column("new", Integer, nullable=False, default=0),
    Column("seen", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("kind", String(16)),
    Column("reason", Text),  # why a listing was empty
    Column("skipped", Integer, nullable=False, default=0, server_default="0"),
    Column("replay_of", Integer),
)

# The raw bytes of each listing, gzip-compressed, so `notifier replay RUN`
# can re-run the diff after a parser fix (kept for failed runs too).
payloads = Table(
    "payloads",
    metadata,
    Column("run_id", ForeignKey("ingest_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("url", Text),
    Column("content_type", Text),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

# Per-source fetch state and health, updated by every fetch.
sources = Table(
    "sources",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("url", Text, nullable=False),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_checked_at", UtcDateTime()),
    Column("last_success_at", UtcDateTime()),
    Column("last_status", String(16)),
    Column("last_error", Text),
    Column("last_papers", Integer),
    Column("consecutive_failures", Integer, nullable=False, default=0, server_default="0"),
)

sightings = Table(
    "sightings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("paper_id", ForeignKey("papers.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("run_id", ForeignKey("ingest_runs.id", ondelete="CASCADE"), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("seen_at", UtcDateTime(), nullable=False),
    UniqueConstraint("run_id", "paper_id"),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200)),
    # SubscriberStatus: active | paused | suspended (hard bounces) | pending (not yet
    # confirmed, web sign-ups) | unsubscribed; only active ones get digests.
    Column("status", String(16), nullable=False, default=SubscriberStatus.ACTIVE),
    Column("max_papers", Integer),
    Column("hard_bounces", Integer, nullable=False, default=0, server_default="0"),
    # Two secrets: the feed URL is often shared, the manage link must not be.
    Column("feed_token", String(64), nullable=False, unique=True),
    Column("manage_token", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    # Their own clock; NULL means the configured default (Settings.cadence, ...),
    # so changing the default moves everyone who never chose.
    Column("cadence", String(16)),
    Column("send_time", String(5)),
    Column("timezone", String(64)),
    Column("weekday", Integer),
    # Send a short "nothing new, and why" note for an empty period.
    Column("empty_note", Boolean, nullable=False, default=False, server_default=false()),
    # Double opt-in: the last confirmation (or "already subscribed") email, which
    # throttles them per address; when the link was followed; when they left.
    Column("confirm_sent_at", UtcDateTime()),
    Column("confirmed_at", UtcDateTime()),
    Column("unsubscribed_at", UtcDateTime()),
)

interests = Table(
    "interests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("name", String(100), nullable=False),
    Column("query", Text),
    Column("about", Text),
    Column("sensitivity", String(8), nullable=False, default="normal", server_default="normal"),
    # When its query, description or sensitivity last changed (NULL: before
    # this was kept); a digest composed since has decided it against the papers.
    Column("changed_at", UtcDateTime()),
    UniqueConstraint("subscriber_id", "name"),
)

# What readers taught an interest (issue: feedback from the email): each rated
# paper once per interest (a second rating replaces the first), and papers
# imported from a library export (paper_id NULL). Title and abstract are kept
# so an example still teaches after its paper's card changes.
interest_examples = Table(
    "interest_examples",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("interest_id", ForeignKey("interests.id", ondelete="CASCADE"), nullable=False),
    Column("paper_id", ForeignKey("papers.id", ondelete="CASCADE")),
    Column("verdict", String(8), nullable=False),  # Verdict: more | less
    Column("origin", String(8), nullable=False),  # ExampleOrigin: rating | library
    Column("title", Text, nullable=False),
    Column("abstract", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("interest_id", "paper_id"),
)
Index("ix_interest_examples_subscriber", interest_examples.c.subscriber_id)

# Authors a subscriber muted: their papers are left out of every interest.
# name_key is the name casefolded with its spaces collapsed (papers.author_key).
muted_authors = Table(
    "muted_authors",
    metadata,
    Column(
        "subscriber_id",
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("name_key", String(200), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

# Sentence embeddings: computed once per paper, and once per interest change
# (text_hash says which text the stored vectors belong to). float32 bytes.
paper_vectors = Table(
    "paper_vectors",
    metadata,
    Column("paper_id", ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True),
    Column("model", String(64), primary_key=True),
    Column("vector", LargeBinary, nullable=False),
)

interest_vectors = Table(
    "interest_vectors",
    metadata,
    Column("interest_id", ForeignKey("interests.id", ondelete="CASCADE"), primary_key=True),
    Column("model", String(64), primary_key=True),
    Column("text_hash", String(64), nullable=False),
    Column("vectors", LargeBinary, nullable=False),  # description, then each phrase
)

digests = Table(
    "digests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("period", String(32), nullable=False),
    # DigestStatus: empty (nothing matched, reason kept) | pending | sending (leased by a worker)
    # | sent | failed | unknown (timed out after the final ".": retried, same Message-ID)
    # | unconfirmed (unknown until retry_deadline, then given up: it may have arrived)
    Column("status", String(16), nullable=False),
    Column("message_id", String(200), nullable=False, unique=True),
    Column("content", JSON, nullable=False),
    Column("papers", Integer, nullable=False, default=0),
    Column("reason", Text),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime()),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("last_reply", Text),
    # A worker's claim: it alone may record the outcome until lease_until passes.
    Column("lease_owner", String(64)),
    Column("lease_until", UtcDateTime()),
    Column("next_attempt_at", UtcDateTime()),
    # When an attempt first ended with no reply after the data: from then on the
    # digest may be in the mailbox, so it is never called "failed".
    Column("unknown_since", UtcDateTime()),
    # Every arrival up to this one was committed before the digest read its
    # candidates: the subscriber's next digest decides only later arrivals.
    Column("arrivals_through", BigInteger),
    UniqueConstraint("subscriber_id", "period"),
)
Index("ix_digests_status", digests.c.status, digests.c.next_attempt_at)
# What senders scan: the digests still to send, in id order.
DUE_STATUSES = (DigestStatus.PENDING, DigestStatus.UNKNOWN, DigestStatus.SENDING)
_DUE = digests.c.status.in_(DUE_STATUSES)
Index("ix_digests_due", digests.c.id, postgresql_where=_DUE, sqlite_where=_DUE)

# Places besides email where digests are posted: a subscriber's or a configured
# topic's (exactly one of subscriber_id and topic). url and secret are secrets.
channels = Table(
    "channels",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="CASCADE")),
    Column("topic", String(64)),
    Column("kind", String(16), nullable=False),  # ChannelKind
    Column("label", String(100), nullable=False),
    Column("url", Text, nullable=False),  # the webhook URL, or the Matrix homeserver
    Column("room", Text),  # a Matrix room id
    Column("secret", Text),  # a Matrix access token, or the webhook's signing key
    Column("status", String(16), nullable=False),  # ChannelStatus
    # Refusals in a row: at CHANNEL_FAILURE_LIMIT the channel is suspended.
    Column("failures", Integer, nullable=False, default=0, server_default="0"),
    Column("last_error", Text),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_sent_at", UtcDateTime()),
)
Index("ix_channels_subscriber", channels.c.subscriber_id)
Index("ix_channels_topic", channels.c.topic)

# A configured topic's digest for channels: one per topic and period, frozen when
# composed (content inline: a topic has a handful of channels, not thousands).
topic_digests = Table(
    "topic_digests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("topic", String(64), nullable=False),
    Column("period", String(32), nullable=False),
    Column("content", JSON, nullable=False),
    Column("papers", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("topic", "period"),
)

# A topic's ledger: each paper is offered to a topic's channels at most once.
topic_ledger = Table(
    "topic_ledger",
    metadata,
    Column("topic", String(64), primary_key=True),
    Column("paper_id", Integer, primary_key=True, autoincrement=False),
    Column("topic_digest_id", ForeignKey("topic_digests.id", ondelete="CASCADE"), nullable=False),
)

# One message of one digest to one channel, with its delivery state. key is the
# idempotency key every attempt carries (Matrix's transaction id, the webhook's
# Idempotency-Key), so a receiver that keeps keys sees a repeat as one message.
channel_posts = Table(
    "channel_posts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("channel_id", ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("digest_id", ForeignKey("digests.id", ondelete="CASCADE")),
    Column("topic_digest_id", ForeignKey("topic_digests.id", ondelete="CASCADE")),
    Column("key", String(64), nullable=False, unique=True),
    Column("status", String(16), nullable=False),  # PostStatus
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", UtcDateTime()),
    # Set in its own commit just before a request goes out, cleared with its outcome:
    # a post leased again with it set was under way when its worker stopped.
    Column("posting_since", UtcDateTime()),
    # When an attempt first may have arrived (no answer after the request went out).
    Column("unknown_since", UtcDateTime()),
    Column("last_error", Text),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime()),
    UniqueConstraint("channel_id", "digest_id"),
    UniqueConstraint("channel_id", "topic_digest_id"),
)
Index("ix_channel_posts_due", channel_posts.c.status, channel_posts.c.next_attempt_at)
Index("ix_channel_posts_digest", channel_posts.c.digest_id)

# What a digest shows of a paper (title, abstract, links, authors), frozen when a
# digest is composed. Content-addressed (fingerprint = sha256 of the card), so
# the hundred thousand digests of a day share 500 rows instead of carrying their
# own copies, and an updated paper gets a new card while old digests keep theirs.
paper_cards = Table(
    "paper_cards",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("paper_id", ForeignKey("papers.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("card", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

# The delivery ledger (DESIGN.md invariant 3): one row per paper a subscriber was
# offered, written in the same transaction as its digest. shown=false rows are
# the "and N more" overflow: offered once, never carried into later digests.
# No foreign keys (migration 0008): on PostgreSQL they cost four fifths of writing
# a day's millions of rows. The digest inserted in the same transaction checks
# its subscriber; Storage deletes a subscriber's rows with the subscriber.
deliveries = Table(
    "deliveries",
    metadata,
    Column("subscriber_id", Integer, primary_key=True, autoincrement=False),
    Column("paper_id", Integer, primary_key=True, autoincrement=False),
    Column("digest_id", Integer, nullable=False),
    Column("interest", String(100), nullable=False),
    Column("score", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("shown", Boolean, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

# One row per scheduled job run (notifier run / run-once), for `notifier status`.
job_runs = Table(
    "job_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job", String(32), nullable=False),
    Column("host", String(200), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime()),
    Column("status", String(16), nullable=False),  # JobStatus: running | ok | failed
    Column("detail", Text, nullable=False, default="", server_default=""),
)
Index("ix_job_runs_job", job_runs.c.job, job_runs.c.id)

"""Storage: the only package that talks to the database (SQLAlchemy 2 Core, Alembic).

One method per use case; each returns models, never rows. Writes that belong
together (an ingest run and its papers; a digest and its ledger) happen in one
transaction.
"""

from __future__ import annotations

import functools
import gzip
import secrets
import sqlite3
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Select,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from notifier import collector
from notifier.errors import StaleDiff, StorageError, SubscriberError
from notifier.models import (
    ChangeKind,
    DigestContent,
    DigestOutcome,
    DigestPaper,
    DigestRecord,
    IngestRun,
    IngestSummary,
    Interest,
    JobRun,
    Listing,
    MetricsFigures,
    NewDigest,
    Paper,
    PaperChange,
    Payload,
    ScheduleKey,
    Shard,
    SourceState,
    StoredDigest,
    StoredPaper,
    Subscriber,
)
from notifier.papers import title_hash
from notifier.storage import codec
from notifier.storage.schema import (
    UtcDateTime,
    deliveries,
    digests,
    ingest_runs,
    interest_vectors,
    interests,
    job_runs,
    paper_cards,
    paper_vectors,
    papers,
    payloads,
    sightings,
    sources,
    subscribers,
)

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration in MIGRATIONS (a test checks it against Alembic's head), so a
# process whose database is up to date never imports Alembic: a third of a second
# paid by every command and every worker process otherwise.
SCHEMA_HEAD = "0009"
# PostgreSQL advisory lock keys ("noti" + a number), one per purpose.
MIGRATION_LOCK = 0x6E6F7469_0001
LEADER_LOCK = 0x6E6F7469_0002


# The record types moved to notifier.models and StaleDiff to notifier.errors; they are
# still importable from here.
__all__ = [
    "LATENCY_SCAN",
    "LEADER_LOCK",
    "MIGRATIONS",
    "MIGRATION_LOCK",
    "SCHEDULE_COLUMNS",
    "SCHEMA_HEAD",
    "DigestOutcome",
    "DigestRecord",
    "IngestRun",
    "JobRun",
    "MetricsFigures",
    "NewDigest",
    "Payload",
    "ScheduleKey",
    "Shard",
    "SourceState",
    "StaleDiff",
    "Storage",
]

# How many of the newest digests the send-latency figures look through.
LATENCY_SCAN = 500_000


class Storage:
    """Notifier's tables behind one method per use case."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine: Engine = create_engine(
                url, json_serializer=codec.json_text, json_deserializer=orjson.loads
            )
        except (SQLAlchemyError, ImportError) as e:
            raise StorageError(f"database URL {_redact(url)!r} is not usable: {e}") from e
        if self.engine.dialect.name == "sqlite":
            self._create_sqlite_directory()
            event.listen(self.engine, "connect", _sqlite_pragmas)
            # pysqlite's own BEGIN handling defers the write lock; we issue
            # BEGIN IMMEDIATE ourselves so two writers never deadlock on upgrade.
            event.listen(self.engine, "begin", _sqlite_begin_immediate)

    # -- lifecycle ---------------------------------------------------------

    def _create_sqlite_directory(self) -> None:
        """Create the folder of an SQLite file, so any path given just works."""
        database = self.engine.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(
                f"cannot create the folder of the database {database!r}: {e.strerror}; "
                "set NOTIFIER_STATE_DIR or NOTIFIER_DATABASE_URL to a writable place"
            ) from e

    def migrate(self) -> bool:
        """Bring the schema to the newest migration; return whether anything was applied."""
        try:
            with self.engine.begin() as conn:
                if self.engine.dialect.name == "postgresql":
                    # Two processes starting on a fresh database (two run-once from
                    # cron) must not both create the tables: the second waits here.
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
                if _current_revision(conn) == SCHEMA_HEAD:
                    return False
                # Imported only when there is something to apply.
                from alembic import command
                from alembic.config import Config

                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS))
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except OperationalError as e:
            hint = (
                "check that the file is writable"
                if self.engine.dialect.name == "sqlite"
                else "check NOTIFIER_DATABASE_URL and that the server is running"
            )
            raise StorageError(
                f"cannot open the database {_redact(self.url)!r}: {_one_line(e.orig)}; {hint}"
            ) from e
        return True

    def safe_url(self) -> str:
        """Return the database URL with any password hidden (for output and logs)."""
        return _redact(self.url)

    @staticmethod
    def head_revision() -> str:
        """Return the newest migration this version of notifier knows."""
        return SCHEMA_HEAD

    def schema_revision(self) -> str | None:
        """Return the Alembic revision the database is at (called by init)."""
        with self._read() as conn:
            return _current_revision(conn)

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """Run a block in one transaction, translating driver errors into StorageError."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as e:
            raise StorageError(f"database error: {_one_line(e.orig)}") from e

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """Run a block that only reads in one transaction (one snapshot).

        On SQLite it begins with a plain BEGIN, not BEGIN IMMEDIATE: in WAL mode a
        reader neither waits for the writer nor blocks it, so a composing or
        sending process reads on while another one writes.
        """
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{_READ_ONLY: True})
                with conn.begin():
                    yield conn
        except OperationalError as e:
            raise StorageError(f"database error: {_one_line(e.orig)}") from e

    # -- papers and ingest -------------------------------------------------

    def papers_for_diff(
        self, keys: Iterable[str], title_keys: Iterable[str]
    ) -> tuple[dict[str, StoredPaper], dict[str, list[StoredPaper]]]:
        """Return stored papers by key and by title hash (called by pipeline before decide)."""
        by_key: dict[str, StoredPaper] = {}
        by_title: dict[str, list[StoredPaper]] = {}
        with self._read() as conn:
            for column, wanted in ((papers.c.key, keys), (papers.c.title_key, title_keys)):
                for chunk in _chunks(sorted(set(wanted)), 500):
                    for row in conn.execute(
                        select(papers).where(column.in_(chunk)).order_by(papers.c.id)
                    ):
                        stored = codec.stored_paper(row)
                        by_key[stored.key] = stored
                        if column is papers.c.title_key:
                            by_title.setdefault(stored.title_key, []).append(stored)
        return by_key, by_title

    def record_ingest(
        self,
        listing: Listing,
        changes: Sequence[PaperChange],
        now: datetime,
        *,
        kind: str,
        payload: Payload | None = None,
        replay_of: int | None = None,
    ) -> IngestSummary:
        """Store a diffed listing, its run and its raw bytes in one transaction.

        Raises StaleDiff when a concurrent ingest stored one of its new papers
        first; the caller diffs again.
        """
        counts = Counter(change.kind for change in changes)
        # Items the parser left out count as listed and skipped, like a replace*
        # item for a paper never seen.
        counts[ChangeKind.SKIPPED] += listing.skipped
        listed = len(changes) + listing.skipped
        status = "ok" if listing.papers else "empty"
        try:
            with self._tx() as conn:
                run_id = conn.execute(
                    insert(ingest_runs)
                    .values(
                        source=listing.source,
                        kind=kind,
                        label=listing.label,
                        status=status,
                        reason=listing.empty_reason,
                        started_at=now,
                        papers=listed,
                        new=counts[ChangeKind.NEW],
                        seen=counts[ChangeKind.SEEN],
                        updated=counts[ChangeKind.UPDATED],
                        skipped=counts[ChangeKind.SKIPPED],
                        replay_of=replay_of,
                    )
                    .returning(ingest_runs.c.id)
                ).scalar_one()
                if payload is not None:
                    _insert_payload(conn, run_id, payload)
                for change in changes:
                    paper_id = self._apply_change(conn, change, now)
                    if paper_id is not None:
                        conn.execute(
                            insert(sightings).values(
                                paper_id=paper_id,
                                run_id=run_id,
                                rank=change.paper.rank,
                                seen_at=now,
                            )
                        )
        except IntegrityError as e:
            raise StaleDiff(f"listing '{listing.source}' raced another ingest") from e
        return IngestSummary(
            source=listing.source,
            run_id=run_id,
            papers=listed,
            new=counts[ChangeKind.NEW],
            seen=counts[ChangeKind.SEEN],
            updated=counts[ChangeKind.UPDATED],
            skipped=counts[ChangeKind.SKIPPED],
            status=status,
            reason=listing.empty_reason,
        )

    @staticmethod
    def _apply_change(conn: Connection, change: PaperChange, now: datetime) -> int | None:
        """Insert or update the paper of one change; return its id (None when skipped)."""
        paper = change.paper
        if change.kind is ChangeKind.SKIPPED:
            return None
        if change.kind is ChangeKind.NEW:
            return int(
                conn.execute(
                    insert(papers)
                    .values(
                        key=paper.key,
                        guid=f"urn:notifier:{paper.key}",
                        arxiv_id=paper.arxiv_id,
                        title=paper.title,
                        title_key=title_hash(paper.title),
                        abstract=paper.abstract,
                        version=paper.version,
                        url=paper.url,
                        authors=list(paper.authors),
                        meta=dict(paper.meta),
                        published_at=paper.published_at,
                        first_seen_at=now,
                        updated_at=now,
                    )
                    .returning(papers.c.id)
                ).scalar_one()
            )
        assert change.stored_id is not None
        if change.updates:
            values = {k: list(v) if k == "authors" else v for k, v in change.updates.items()}
            if change.kind is ChangeKind.UPDATED:
                values["updated_at"] = now
            conn.execute(update(papers).where(papers.c.id == change.stored_id).values(**values))
        return change.stored_id

    def record_failed_ingest(
        self,
        source: str,
        error: str,
        now: datetime,
        kind: str | None = None,
        payload: Payload | None = None,
    ) -> int:
        """Log an ingest that was refused; no paper of it is stored, its raw bytes are."""
        with self._tx() as conn:
            run_id = conn.execute(
                insert(ingest_runs)
                .values(
                    source=source,
                    kind=kind,
                    status="failed",
                    started_at=now,
                    papers=0,
                    new=0,
                    seen=0,
                    updated=0,
                    error=error,
                )
                .returning(ingest_runs.c.id)
            ).scalar_one()
            if payload is not None:
                _insert_payload(conn, run_id, payload)
        return int(run_id)

    def record_unchanged(self, source: str, kind: str, now: datetime) -> int:
        """Log a fetch the server answered 304 Not Modified: a quiet success."""
        with self._tx() as conn:
            return int(
                conn.execute(
                    insert(ingest_runs)
                    .values(
                        source=source,
                        kind=kind,
                        status="unchanged",
                        started_at=now,
                        papers=0,
                        new=0,
                        seen=0,
                        updated=0,
                        reason="not modified since the last fetch",
                    )
                    .returning(ingest_runs.c.id)
                ).scalar_one()
            )

    def payload(self, run_id: int) -> tuple[IngestRun, Payload]:
        """Return an ingest run and its raw bytes, or raise StorageError naming the run."""
        with self._read() as conn:
            run = conn.execute(select(ingest_runs).where(ingest_runs.c.id == run_id)).first()
            row = conn.execute(select(payloads).where(payloads.c.run_id == run_id)).first()
        if run is None:
            raise StorageError(f"there is no ingest run #{run_id}; see `notifier status`")
        if row is None:
            raise StorageError(f"ingest run #{run_id} kept no raw listing to replay")
        return _ingest_run(run), Payload(
            data=gzip.decompress(row.data), url=row.url, content_type=row.content_type
        )

    # -- sources -----------------------------------------------------------

    def source_state(self, name: str) -> SourceState | None:
        """Return what the last fetches of a source left (validators, health)."""
        with self._read() as conn:
            row = conn.execute(select(sources).where(sources.c.name == name)).first()
        return None if row is None else _source_state(row)

    def sources_health(self) -> list[SourceState]:
        """Return the state of every source ever fetched, by name."""
        with self._read() as conn:
            return [
                _source_state(r) for r in conn.execute(select(sources).order_by(sources.c.name))
            ]

    def save_source_state(self, state: SourceState) -> None:
        """Insert or replace a source's state."""
        values = {k: v for k, v in asdict(state).items() if k != "name"}
        with self._tx() as conn:
            updated = conn.execute(
                update(sources).where(sources.c.name == state.name).values(**values)
            )
            if updated.rowcount == 0:
                conn.execute(insert(sources).values(name=state.name, **values))

    def recent_papers(self, since: datetime, until: datetime) -> list[Paper]:
        """Return papers first seen in [since, until], newest first (called by compose_digests)."""
        query = (
            select(papers)
            .where(papers.c.first_seen_at >= since, papers.c.first_seen_at <= until)
            .order_by(papers.c.first_seen_at.desc(), papers.c.id.desc())
        )
        with self._read() as conn:
            return [codec.paper(row) for row in conn.execute(query)]

    def latest_papers(self, limit: int) -> list[Paper]:
        """Return the newest papers by first sight, newest first (for feeds)."""
        query = select(papers).order_by(papers.c.first_seen_at.desc(), papers.c.id.desc())
        with self._read() as conn:
            return [codec.paper(row) for row in conn.execute(query.limit(limit))]

    def newest_paper_seen_at(self) -> datetime | None:
        """Return when the newest paper was first seen, or None when there are none."""
        with self._read() as conn:
            newest: datetime | None = conn.execute(
                select(func.max(papers.c.first_seen_at))
            ).scalar_one()
        return newest

    def ingest_runs(self, limit: int = 10) -> list[IngestRun]:
        """Return the latest ingest runs, newest first."""
        query = select(ingest_runs).order_by(ingest_runs.c.id.desc()).limit(limit)
        with self._read() as conn:
            return [_ingest_run(r) for r in conn.execute(query)]

    def count_papers(self) -> int:
        """Return how many distinct papers are stored."""
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(papers)).scalar_one())

    # -- subscribers -------------------------------------------------------

    def save_subscriber(
        self,
        email: str,
        name: str | None,
        new_interests: Sequence[Interest],
        now: datetime,
        max_papers: int | None = None,
        *,
        schedule: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> tuple[Subscriber, bool]:
        """Create a subscriber or update one (name, max_papers, interests by name); say if new.

        schedule sets any of cadence, send_time, timezone, weekday (None: back to
        the default) and empty_note; status pauses ("paused") or resumes ("active").
        """
        chosen = dict(schedule or {})
        if unknown := set(chosen) - {*SCHEDULE_COLUMNS, "empty_note"}:
            raise ValueError(f"not schedule settings: {', '.join(sorted(unknown))}")
        with self._tx() as conn:
            row = conn.execute(select(subscribers).where(subscribers.c.email == email)).first()
            created = row is None
            if row is None:
                subscriber_id = conn.execute(
                    insert(subscribers)
                    .values(
                        email=email,
                        name=name,
                        status=status or "active",
                        max_papers=max_papers,
                        feed_token=secrets.token_urlsafe(24),
                        manage_token=secrets.token_urlsafe(24),
                        created_at=now,
                        **chosen,
                    )
                    .returning(subscribers.c.id)
                ).scalar_one()
            else:
                subscriber_id = row.id
                changes: dict[str, Any] = {}
                if name is not None:
                    changes["name"] = name
                if max_papers is not None:
                    changes["max_papers"] = max_papers
                if status is not None:
                    changes["status"] = status
                changes.update(chosen)
                if changes:
                    conn.execute(
                        update(subscribers).where(subscribers.c.id == row.id).values(**changes)
                    )
            existing = {
                r.name: r.position
                for r in conn.execute(
                    select(interests.c.name, interests.c.position).where(
                        interests.c.subscriber_id == subscriber_id
                    )
                )
            }
            for interest in new_interests:
                fields = {
                    "query": interest.query,
                    "about": interest.about,
                    "sensitivity": interest.sensitivity,
                }
                if interest.name in existing:
                    conn.execute(
                        update(interests)
                        .where(
                            interests.c.subscriber_id == subscriber_id,
                            interests.c.name == interest.name,
                        )
                        .values(**fields)
                    )
                else:
                    existing[interest.name] = len(existing)
                    conn.execute(
                        insert(interests).values(
                            subscriber_id=subscriber_id,
                            position=existing[interest.name],
                            name=interest.name,
                            **fields,
                        )
                    )
            subscriber = self._subscribers(conn, subscribers.c.id == subscriber_id)[0]
        return subscriber, created

    def create_subscriber(
        self,
        email: str,
        name: str | None,
        chosen: Sequence[Interest],
        now: datetime,
        *,
        max_papers: int | None = None,
        schedule: Mapping[str, Any] | None = None,
        status: str = "active",
    ) -> Subscriber | None:
        """Create one subscriber with their interests; return None when the address is taken.

        Unlike save_subscriber it never touches an existing subscriber, even one
        created by a concurrent call: the insert itself decides (ON CONFLICT).
        """
        chosen_schedule = dict(schedule or {})
        if unknown := set(chosen_schedule) - {*SCHEDULE_COLUMNS, "empty_note"}:
            raise ValueError(f"not schedule settings: {', '.join(sorted(unknown))}")
        with self._tx() as conn:
            subscriber_id = conn.execute(
                _new_subscriber(
                    conn.dialect.name,
                    email,
                    now,
                    {"name": name, "status": status, "max_papers": max_papers, **chosen_schedule},
                )
            ).scalar_one_or_none()
            if subscriber_id is None:
                return None
            _replace_interests(conn, subscriber_id, chosen)
            return self._subscribers(conn, subscribers.c.id == subscriber_id)[0]

    def add_subscribers(
        self, new: Sequence[tuple[str, str | None, Sequence[Interest]]], now: datetime
    ) -> int:
        """Create many subscribers at once (an import); skip addresses already present.

        Returns how many were created.
        """
        created = 0
        for chunk in _chunks(list({email: (email, n, i) for email, n, i in new}.values()), 1000):
            with self._tx() as conn:
                emails = [email for email, _, _ in chunk]
                taken = set(
                    conn.execute(
                        select(subscribers.c.email).where(subscribers.c.email.in_(emails))
                    ).scalars()
                )
                fresh = [item for item in chunk if item[0] not in taken]
                if not fresh:
                    continue
                ids = conn.execute(
                    insert(subscribers).returning(subscribers.c.id, sort_by_parameter_order=True),
                    [
                        {
                            "email": email,
                            "name": name,
                            "status": "active",
                            "feed_token": secrets.token_urlsafe(24),
                            "manage_token": secrets.token_urlsafe(24),
                            "created_at": now,
                        }
                        for email, name, _ in fresh
                    ],
                ).scalars()
                rows = [
                    {
                        "subscriber_id": subscriber_id,
                        "position": position,
                        "name": interest.name,
                        "query": interest.query,
                        "about": interest.about,
                        "sensitivity": interest.sensitivity,
                    }
                    for subscriber_id, (_, _, chosen) in zip(ids, fresh, strict=True)
                    for position, interest in enumerate(chosen)
                ]
                if rows:
                    conn.execute(insert(interests), rows)
                created += len(fresh)
        return created

    def subscribers(self, active_only: bool = False) -> list[Subscriber]:
        """Return subscribers with their interests, in id order."""
        condition = subscribers.c.status == "active" if active_only else None
        with self._read() as conn:
            return self._subscribers(conn, condition)

    def subscriber_by_email(self, email: str) -> Subscriber:
        """Return one subscriber, or raise SubscriberError when there is none."""
        with self._read() as conn:
            found = self._subscribers(conn, subscribers.c.email == email)
        if not found:
            raise SubscriberError(f"no subscriber with the address {email!r}")
        return found[0]

    def subscriber_by_id(self, subscriber_id: int) -> Subscriber | None:
        """Return one subscriber by id, or None."""
        with self._read() as conn:
            found = self._subscribers(conn, subscribers.c.id == subscriber_id)
        return found[0] if found else None

    def subscriber_by_feed_token(self, feed_token: str) -> Subscriber | None:
        """Return the subscriber whose private feed has this token, or None."""
        with self._read() as conn:
            found = self._subscribers(conn, subscribers.c.feed_token == feed_token)
        return found[0] if found else None

    def subscriber_by_manage_key(self, key: str) -> Subscriber | None:
        """Return the subscriber whose manage key a signed link carried, or None."""
        with self._read() as conn:
            found = self._subscribers(conn, subscribers.c.manage_token == key)
        return found[0] if found else None

    def subscriber_page(
        self, after: int, limit: int, status: str | None = None
    ) -> list[Subscriber]:
        """Return up to limit subscribers with ids above after, in id order (the admin API)."""
        condition = subscribers.c.id > after
        if status is not None:
            condition = and_(condition, subscribers.c.status == status)
        with self._read() as conn:
            return self._subscribers(conn, condition, limit)

    def request_subscription(
        self,
        email: str,
        *,
        name: str | None,
        chosen: Sequence[Interest],
        schedule: Mapping[str, Any],
        now: datetime,
        resend_after: timedelta,
    ) -> tuple[Subscriber, str]:
        """Record a sign-up from the web and say which email, if any, to send now.

        A new or unsubscribed address becomes pending with the interests and
        clock asked for, and gets a confirmation ("confirm"). An address already
        pending keeps the request it has and gets that request's confirmation
        again: anyone can type anyone's address, and the owner's link must
        activate what the owner chose (issue 21). An address already subscribed
        is left exactly as it is and gets a reminder with its preferences link
        ("remind"). Either email goes at most once per resend_after per address;
        otherwise "quiet".
        """
        with self._tx() as conn:
            # The insert decides whether the address is new, even against a
            # sign-up of the same address at the same moment (ON CONFLICT).
            subscriber_id = conn.execute(
                _new_subscriber(
                    conn.dialect.name,
                    email,
                    now,
                    {"name": name, "status": "pending", **schedule},
                )
            ).scalar_one_or_none()
            action = "confirm"
            store_request = True
            if subscriber_id is None:
                row = conn.execute(
                    select(subscribers.c.id, subscribers.c.status).where(
                        subscribers.c.email == email
                    )
                ).one()
                subscriber_id = row.id
                if row.status == "unsubscribed":
                    conn.execute(
                        update(subscribers)
                        .where(subscribers.c.id == row.id)
                        .values(name=name, status="pending", **schedule)
                    )
                elif row.status == "pending":
                    store_request = False
                else:
                    action = "remind"
            if action == "confirm" and store_request:
                _replace_interests(conn, subscriber_id, chosen)
            # One email per address per resend_after, decided by one conditional
            # update so two requests at once cannot both send.
            allowed = conn.execute(
                update(subscribers)
                .where(
                    subscribers.c.id == subscriber_id,
                    or_(
                        subscribers.c.confirm_sent_at.is_(None),
                        subscribers.c.confirm_sent_at <= now - resend_after,
                    ),
                )
                .values(confirm_sent_at=now)
            ).rowcount
            subscriber = self._subscribers(conn, subscribers.c.id == subscriber_id)[0]
        return subscriber, action if allowed else "quiet"

    def release_confirmation(self, subscriber_id: int) -> None:
        """Forget that a confirmation was sent (it could not be), so the next try may send."""
        with self._tx() as conn:
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber_id)
                .values(confirm_sent_at=None)
            )

    def forget_unconfirmed(self, before: datetime) -> int:
        """Delete sign-ups never confirmed whose last email went before before; return how many.

        An address someone typed but its owner never confirmed is not kept. A
        former subscriber signing up again (confirmed once) keeps their row.
        """
        last_email = func.coalesce(subscribers.c.confirm_sent_at, subscribers.c.created_at)
        with self._tx() as conn:
            gone = list(
                conn.execute(
                    delete(subscribers)
                    .where(
                        subscribers.c.status == "pending",
                        subscribers.c.confirmed_at.is_(None),
                        last_email < before,
                    )
                    .returning(subscribers.c.id)
                ).scalars()
            )
            # One added from the command line, unsubscribed, then signing up again
            # on the web has a ledger and was never confirmed on the web.
            _delete_ledgers(conn, gone)
            return len(gone)

    def confirm_subscriber(self, subscriber_id: int, now: datetime) -> bool:
        """Turn a pending subscriber active; return whether this call did it."""
        with self._tx() as conn:
            return bool(
                conn.execute(
                    update(subscribers)
                    .where(subscribers.c.id == subscriber_id, subscribers.c.status == "pending")
                    .values(status="active", confirmed_at=now, unsubscribed_at=None)
                ).rowcount
            )

    def unsubscribe(self, subscriber_id: int, now: datetime) -> bool:
        """Stop every digest to a subscriber; return whether this call did it.

        Digests already composed stay as they are but are never claimed, since
        only active subscribers' digests are sent.
        """
        with self._tx() as conn:
            return bool(
                conn.execute(
                    update(subscribers)
                    .where(
                        subscribers.c.id == subscriber_id, subscribers.c.status != "unsubscribed"
                    )
                    .values(status="unsubscribed", unsubscribed_at=now)
                ).rowcount
            )

    def update_preferences(
        self,
        subscriber_id: int,
        *,
        name: str | None = None,
        chosen: Sequence[Interest] | None = None,
        schedule: Mapping[str, Any] | None = None,
        status: str | None = None,
        max_papers: int | None = None,
    ) -> Subscriber | None:
        """Change what is given; chosen replaces the whole interest list. None if no such id."""
        changes: dict[str, Any] = dict(schedule or {})
        if name is not None:
            changes["name"] = name or None
        if status is not None:
            changes["status"] = status
        if max_papers is not None:
            changes["max_papers"] = max_papers
        with self._tx() as conn:
            if changes:
                found = conn.execute(
                    update(subscribers).where(subscribers.c.id == subscriber_id).values(**changes)
                ).rowcount
            else:
                found = conn.execute(
                    select(func.count()).where(subscribers.c.id == subscriber_id)
                ).scalar_one()
            if not found:
                return None
            if chosen is not None:
                _replace_interests(conn, subscriber_id, chosen)
            return self._subscribers(conn, subscribers.c.id == subscriber_id)[0]

    def delete_subscriber(self, subscriber_id: int) -> bool:
        """Delete a subscriber with their interests, digests and ledger; say if one existed."""
        with self._tx() as conn:
            # Interests, their vectors and digests go by ON DELETE CASCADE.
            found = conn.execute(delete(subscribers).where(subscribers.c.id == subscriber_id))
            _delete_ledgers(conn, [subscriber_id])
            return bool(found.rowcount)

    def _subscribers(
        self, conn: Connection, condition: Any, limit: int | None = None
    ) -> list[Subscriber]:
        """Load subscribers matching condition (the first limit of them by id) with their
        interests.

        One query for the subscribers and one for their interests (_within). Asking
        for the ids first, then for their rows and interests by IN lists, was a fifth
        of a compose worker's time: statements of a thousand placeholders to build
        and parse, rows fetched one at a time, and on PostgreSQL a scan of every
        interest per batch.
        """
        query = select(subscribers).order_by(subscribers.c.id).limit(limit)
        if condition is not None:
            query = query.where(condition)
        # .all(): fetched in one call; row by row was a fifth of loading them.
        rows = conn.execute(query).all()
        by_subscriber: dict[int, list[Interest]] = {r.id: [] for r in rows}
        for chunk in self._id_chunks(by_subscriber):
            theirs = (
                select(
                    interests.c.subscriber_id,
                    interests.c.name,
                    interests.c.query,
                    interests.c.about,
                    interests.c.sensitivity,
                    interests.c.id,
                )
                .where(self._within(interests.c.subscriber_id, chunk))
                .order_by(interests.c.subscriber_id, interests.c.position)
            )
            for subscriber_id, name, text_query, about, sensitivity, interest_id in conn.execute(
                theirs
            ).all():
                by_subscriber[subscriber_id].append(
                    Interest(name, text_query, about, sensitivity, interest_id=interest_id)
                )
        return [codec.subscriber(r, tuple(by_subscriber[r.id])) for r in rows]

    # -- digests and the ledger --------------------------------------------

    def schedule_groups(self, shard: Shard | None = None) -> list[tuple[ScheduleKey, int]]:
        """Return each distinct schedule of the active subscribers, with how many have it.

        Subscribers who share a schedule share their due slot, so the composer
        decides per group (a few dozen) instead of per subscriber (100,000).
        """
        columns = [subscribers.c[name] for name in SCHEDULE_COLUMNS]
        query = (
            select(*columns, func.count())
            .where(subscribers.c.status == "active", *_in_shard(shard))
            .group_by(*columns)
        )
        with self._read() as conn:
            return [(ScheduleKey(*row[:-1]), int(row[-1])) for row in conn.execute(query)]

    def subscriber_batches(
        self,
        size: int,
        schedule: ScheduleKey | None = None,
        period: str | None = None,
        fresh_since: datetime | None = None,
        shard: Shard | None = None,
        *,
        joined_by: datetime | None = None,
    ) -> Iterator[list[Subscriber]]:
        """Yield the active subscribers with their interests in id order, size at a time.

        With schedule, only those on that schedule; with period, only those still
        without that period's digest, or with an empty one older than fresh_since
        (the newest paper), which a later ingest may fill; with shard (k, n), only
        ids equal to k modulo n (one of n composing processes); with joined_by, only
        those who subscribed (confirmed) by then: a slot before someone subscribed
        is not theirs, so their first digest comes at their first slot after.
        """
        condition = and_(subscribers.c.status == "active", *_in_shard(shard))
        if joined_by is not None:
            joined = func.coalesce(subscribers.c.confirmed_at, subscribers.c.created_at)
            condition = and_(condition, joined <= joined_by)
        if schedule is not None:
            condition = and_(
                condition,
                *(
                    subscribers.c[name].is_not_distinct_from(value)
                    for name, value in zip(SCHEDULE_COLUMNS, schedule, strict=True)
                ),
            )
        if period is not None:
            settled = select(digests.c.id).where(
                digests.c.subscriber_id == subscribers.c.id, digests.c.period == period
            )
            if fresh_since is not None:
                # An empty digest composed before the newest paper arrived may fill up now.
                stale_empty = and_(digests.c.status == "empty", digests.c.created_at < fresh_since)
                settled = settled.where(~stale_empty)
            condition = and_(condition, ~settled.exists())
        last = 0
        while True:
            with self._read() as conn:
                batch = self._subscribers(conn, and_(subscribers.c.id > last, condition), size)
            if not batch:
                return
            yield batch
            last = batch[-1].id

    def offered_papers(
        self, subscriber_ids: Iterable[int], paper_ids: Iterable[int]
    ) -> dict[int, set[int]]:
        """Return, per subscriber, which of paper_ids are already in their ledger."""
        wanted = set(paper_ids)
        found: dict[int, set[int]] = {}
        if not wanted:
            return found
        # Candidates are recent papers, so their ids are the newest: one range per
        # subscriber on the (subscriber_id, paper_id) key instead of a long IN list.
        lowest = min(wanted)
        with self._read() as conn:
            for chunk in self._id_chunks(subscriber_ids):
                rows = conn.execute(
                    select(deliveries.c.subscriber_id, deliveries.c.paper_id).where(
                        self._within(deliveries.c.subscriber_id, chunk),
                        deliveries.c.paper_id >= lowest,
                    )
                )
                for subscriber_id, paper_id in rows.all():
                    if paper_id in wanted:
                        found.setdefault(subscriber_id, set()).add(paper_id)
        return found

    def digest_statuses(self, subscriber_ids: Iterable[int], period: str) -> dict[int, str]:
        """Return the status of each subscriber's digest for period (absent: none yet)."""
        found: dict[int, str] = {}
        with self._read() as conn:
            for chunk in self._id_chunks(subscriber_ids):
                rows = conn.execute(
                    select(digests.c.subscriber_id, digests.c.status).where(
                        self._within(digests.c.subscriber_id, chunk), digests.c.period == period
                    )
                )
                found.update(dict(rows.all()))
        return found

    def record_digest(
        self,
        content: DigestContent,
        overflow: Sequence[tuple[int, str, float, str]],
        message_id: str,
        now: datetime,
    ) -> int | None:
        """Store one composed digest and its ledger rows (see record_digests)."""
        return self.record_digests([NewDigest(content, tuple(overflow), message_id)], now)[0]

    def record_digests(self, composed: Sequence[NewDigest], now: datetime) -> list[int | None]:
        """Store composed digests with their ledger rows, each digest whole or not at all.

        Returns each digest's id, or None when its period already has a non-empty
        digest (another composer won) or one of its papers was offered meanwhile.
        An "empty" digest of the same period is replaced, so a later ingest on the
        same day still reaches the subscriber. A batch is one transaction; when a
        concurrent composer gets in the way, its digests are stored one by one.
        """
        try:
            with self._tx() as conn:
                return self._record_digests(conn, composed, now)
        except IntegrityError:
            pass
        results: list[int | None] = []
        for item in composed:
            try:
                with self._tx() as conn:
                    results += self._record_digests(conn, [item], now)
            except IntegrityError:
                # A concurrent composer created this period's digest or offered one
                # of these papers first; its digest stands, ours is dropped whole.
                results.append(None)
        return results

    def _record_digests(
        self, conn: Connection, composed: Sequence[NewDigest], now: datetime
    ) -> list[int | None]:
        """Insert (or replace empty) digests, their cards and their ledger rows."""
        existing: dict[tuple[int, str], tuple[int, str]] = {}
        periods = {item.content.period for item in composed}
        for chunk in self._id_chunks(item.content.subscriber_id for item in composed):
            for row in conn.execute(
                select(
                    digests.c.id, digests.c.subscriber_id, digests.c.period, digests.c.status
                ).where(self._within(digests.c.subscriber_id, chunk), digests.c.period.in_(periods))
            ).all():
                existing[(row.subscriber_id, row.period)] = (row.id, row.status)
        cards = self._save_cards(conn, [p for item in composed for p in item.content.papers], now)
        results: list[int | None] = [None] * len(composed)
        to_insert: list[int] = []
        rows: list[dict[str, Any]] = []
        for k, item in enumerate(composed):
            content = item.content
            values = {
                "status": "empty" if content.is_empty and not item.send_empty else "pending",
                "message_id": item.message_id,
                "content": codec.content_to_json(content, cards),
                "papers": len(content.papers),
                "reason": content.reason,
                "created_at": now,
                "attempts": 0,
            }
            found = existing.get((content.subscriber_id, content.period))
            if found is None:
                to_insert.append(k)
                rows.append(
                    {"subscriber_id": content.subscriber_id, "period": content.period, **values}
                )
            elif found[1] == "empty":
                conn.execute(update(digests).where(digests.c.id == found[0]).values(**values))
                results[k] = found[0]
        if rows:
            for k, digest_id in zip(to_insert, self._insert_digests(conn, rows), strict=True):
                results[k] = digest_id
        ledger = [
            row
            for item, digest_id in zip(composed, results, strict=True)
            if digest_id is not None
            for row in _ledger_rows(item, digest_id, now)
        ]
        _insert_rows(conn, deliveries, _LEDGER_COLUMNS, ledger, repeated={"created_at"})
        return results

    def _insert_digests(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert new digest rows (all with the same keys); return their ids in order."""
        if self.engine.dialect.name != "postgresql":
            inserted = conn.execute(
                insert(digests).returning(digests.c.id, sort_by_parameter_order=True), rows
            )
            return list(inserted.scalars())
        # Ids from the sequence in one round trip, then one COPY: a multi-row INSERT
        # ... RETURNING of a thousand digests had psycopg parse an SQL text of eight
        # thousand placeholders per batch, a tenth of composing's CPU.
        ids = list(
            conn.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence('digests', 'id'))"
                    " FROM generate_series(1, :n)"
                ),
                {"n": len(rows)},
            ).scalars()
        )
        names = ("id", *rows[0])
        values = [(digest_id, *row.values()) for digest_id, row in zip(ids, rows, strict=True)]
        _insert_rows(conn, digests, names, values, repeated={"created_at"})
        return ids

    def _save_cards(
        self, conn: Connection, shown: Sequence[DigestPaper], now: datetime
    ) -> dict[str, int]:
        """Store the cards of the shown papers that are not stored yet; return all their ids."""
        wanted: dict[str, DigestPaper] = {}
        for paper in shown:
            wanted.setdefault(codec.card_fingerprint(paper), paper)
        ids: dict[str, int] = {}

        def look_up(fingerprints: list[str]) -> None:
            for chunk in _chunks(fingerprints, 500):
                query = select(paper_cards.c.fingerprint, paper_cards.c.id).where(
                    paper_cards.c.fingerprint.in_(chunk)
                )
                ids.update(dict(conn.execute(query).all()))

        look_up(list(wanted))
        # Sorted: two composers inserting the same new cards in different orders would
        # each wait for the other's row on PostgreSQL's unique index (a deadlock).
        missing = sorted(fp for fp in wanted if fp not in ids)
        if missing:
            # A concurrent composer may store the same card first: keep its row.
            upsert = _dialect_insert(self.engine.dialect.name, paper_cards)
            conn.execute(
                upsert.on_conflict_do_nothing(index_elements=["fingerprint"]),
                [
                    {
                        "fingerprint": fp,
                        "paper_id": wanted[fp].paper_id,
                        "card": codec.card(wanted[fp]),
                        "created_at": now,
                    }
                    for fp in missing
                ],
            )
            look_up(missing)
        return ids

    def refresh_statistics(self) -> None:
        """Update the planner's statistics after a bulk write (composing a day's digests).

        PostgreSQL's autovacuum analyzes a table only after a while; until then the
        claim query is planned for the handful of rows the table had before, a
        nested loop that costs 20 ms per claim at 2,000 pending digests.
        """
        if self.engine.dialect.name != "postgresql":
            return
        with self._tx() as conn:
            conn.exec_driver_sql("ANALYZE digests, deliveries, subscribers")

    def claim_digests(
        self,
        worker: str,
        limit: int,
        now: datetime,
        lease: timedelta,
        due_by: datetime | None = None,
    ) -> list[StoredDigest]:
        """Lease up to limit digests that are due: pending or unknown whose next attempt
        comes by due_by (default now), or sending whose lease expired (a worker died).
        Called by the sender, which passes its start time so a digest it deferred
        waits for a later run instead of being retried again at once.

        PostgreSQL skips rows other workers hold (FOR UPDATE SKIP LOCKED); SQLite
        has one writer, and every transaction here starts with BEGIN IMMEDIATE.
        Each digest's subscriber comes without interests: rendering does not use them.
        """
        # A claim builds a hundred digests' objects that live until they are sent.
        with collector.paused():
            return self._lease_and_load(worker, limit, now, lease, due_by)

    def _lease_and_load(
        self, worker: str, limit: int, now: datetime, lease: timedelta, due_by: datetime | None
    ) -> list[StoredDigest]:
        """Lease due digests and load them with their subscribers and cards (claim_digests)."""
        expired = and_(digests.c.status == "sending", digests.c.lease_until < now)
        due = and_(
            digests.c.status.in_(("pending", "unknown")),
            or_(digests.c.next_attempt_at.is_(None), digests.c.next_attempt_at <= (due_by or now)),
        )
        active = (
            select(subscribers.c.id)
            .where(subscribers.c.id == digests.c.subscriber_id, subscribers.c.status == "active")
            .exists()
        )
        with self._tx() as conn:
            ids: list[int] = []
            # Two plain scans in id order (the partial index ix_digests_due), so the
            # plan never depends on statistics, which are stale right after composing.
            for condition in (expired, due):
                query: Any = (
                    select(digests.c.id)
                    .where(condition, active)
                    .order_by(digests.c.id)
                    .limit(limit - len(ids))
                )
                if self.engine.dialect.name == "postgresql":
                    query = query.with_for_update(skip_locked=True, of=digests)
                elif condition is due:
                    query = _SQLITE_DUE.bindparams(due_by=due_by or now, limit=limit - len(ids))
                ids += conn.execute(query).scalars()
                if len(ids) >= limit:
                    break
            if not ids:
                return []
            # One round trip leases and reads them (RETURNING: PostgreSQL, SQLite 3.35+).
            leased = conn.execute(
                update(digests)
                .where(self._among(digests.c.id, ids))
                .values(
                    status="sending",
                    lease_owner=worker,
                    lease_until=now + lease,
                    attempts=digests.c.attempts + 1,
                )
                .returning(*_CLAIMED)
            )
            rows = sorted(leased.all(), key=lambda r: int(r.id))
            # Without interests: rendering needs only the address, name and tokens,
            # and the interests were a second query and most of the objects built.
            owners = {
                r.id: codec.subscriber(r, ())
                for r in conn.execute(
                    select(subscribers).where(
                        self._among(subscribers.c.id, sorted({r.subscriber_id for r in rows}))
                    )
                ).all()
            }
            cards = self._cards(conn, {i for r in rows for i in codec.card_ids(r.content)})
        return [codec.stored_digest(r, owners[r.subscriber_id], cards) for r in rows]

    def _among(self, column: Any, ids: list[int]) -> Any:
        """Return the condition column IN ids; on PostgreSQL with the ids as one array.

        An IN list is a placeholder per id, so every batch size is another statement
        for SQLAlchemy to compile and psycopg to parse (a fifth of a claim's time);
        `= ANY(array)` is one statement whatever the count, prepared once.
        """
        if self.engine.dialect.name == "postgresql":
            return column == any_(bindparam(None, ids, type_=postgresql.ARRAY(Integer)))
        return column.in_(ids)

    def _id_chunks(self, ids: Iterable[int]) -> list[list[int]]:
        """Return the distinct ids sorted, in chunks to look up with _among or _within:
        one on PostgreSQL (an array takes any number), 500 on SQLite (its old limit of
        999 variables per statement).
        """
        ordered = sorted(set(ids))
        if self.engine.dialect.name == "postgresql":
            return [ordered] if ordered else []
        return list(_chunks(ordered, 500))

    def _within(self, column: Any, chunk: list[int]) -> Any:
        """Return the condition column among the sorted ids of chunk, their range stated too.

        The range is for PostgreSQL's planner on a column that is not unique (a
        subscriber's interests, ledger rows, digests): without statistics it took a
        thousand ids to match a fifth of the table and scanned all of it (36 ms per
        thousand subscribers' interests, against 2.6 ms by the index).
        """
        return and_(column.between(chunk[0], chunk[-1]), self._among(column, chunk))

    def _cards(self, conn: Connection, card_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Return stored paper cards by id, reading each card's JSON once per process.

        Every batch of a day's digests refers to the same few hundred cards; only
        their fingerprints are read again, so a card id reused after a reset can
        never bring back another card.
        """
        found: dict[int, dict[str, Any]] = {}
        missing: dict[str, int] = {}
        for chunk in self._id_chunks(card_ids):
            query = select(paper_cards.c.id, paper_cards.c.fingerprint).where(
                self._among(paper_cards.c.id, chunk)
            )
            for card_id, fingerprint in conn.execute(query):
                card = _CARD_CACHE.get(fingerprint)
                if card is None:
                    missing[fingerprint] = card_id
                else:
                    found[card_id] = card
        for chunk in _chunks(sorted(missing), 500):
            query = select(paper_cards.c.fingerprint, paper_cards.c.card).where(
                paper_cards.c.fingerprint.in_(chunk)
            )
            for fingerprint, card in conn.execute(query):
                found[missing[fingerprint]] = _CARD_CACHE.put(fingerprint, card)
        return found

    def finish_sent(self, worker: str, sent: Sequence[tuple[int, str]], now: datetime) -> int:
        """Mark digests the server accepted as sent, in one transaction, if this worker holds them.

        Returns how many were marked; a digest whose lease another worker took over
        is left to that worker. Raises StorageError when the marks cannot be committed.
        """
        if not sent:
            return 0
        try:
            with self._tx() as conn:
                if self.engine.dialect.name == "postgresql":
                    # A killed sender loses nothing committed; only a crash of the
                    # database server itself could drop the last marks, and that means
                    # resending those messages (same Message-ID), never skipping them.
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                    # One statement with the marks as arrays, not one per mark
                    # (executemany), which psycopg builds and sends in Python.
                    ids, replies = zip(*sent, strict=True)
                    marked = conn.execute(
                        _PG_MARK_SENT,
                        {
                            "mark_ids": list(ids),
                            "mark_replies": list(replies),
                            "mark_owner": worker,
                            "mark_now": now,
                        },
                    )
                    return int(marked.rowcount)
                marks = [
                    {"mark_id": digest_id, "mark_owner": worker, "mark_now": now, "mark_reply": r}
                    for digest_id, r in sent
                ]
                return int(conn.execute(_MARK_SENT, marks).rowcount)
        except SQLAlchemyError as e:
            # The sender stops on this: say what the database said, on one line.
            raise StorageError(f"database error: {_one_line(getattr(e, 'orig', e))}") from e

    def recover_sent(self, marks: Sequence[tuple[int, str, datetime]]) -> int:
        """Record as sent digests a stopped sender's journal says were accepted; return how many.

        Whoever holds them now (a lease expired and another worker took one over)
        or whatever state they were put in, the server accepted them: they are
        sent. Digests already sent are left alone.
        """
        rows = [
            {"mark_id": digest_id, "mark_now": accepted_at, "mark_reply": reply}
            for digest_id, reply, accepted_at in marks
        ]
        if not rows:
            return 0
        try:
            with self._tx() as conn:
                return int(conn.execute(_RECOVER_SENT, rows).rowcount)
        except SQLAlchemyError as e:
            raise StorageError(f"database error: {_one_line(getattr(e, 'orig', e))}") from e

    def finish_retry(
        self,
        worker: str,
        digest_id: int,
        error: str,
        next_attempt: datetime,
        *,
        unknown: bool,
        now: datetime | None = None,
    ) -> None:
        """Put a digest back for a later attempt: status unknown when this attempt or an
        earlier one may have arrived (unknown_since is set from now on), else pending.
        """
        changes: dict[str, Any] = {
            "status": case((digests.c.unknown_since.is_not(None), "unknown"), else_="pending")
            if not unknown
            else "unknown",
            "last_error": error,
            "next_attempt_at": next_attempt,
            "lease_owner": None,
            "lease_until": None,
        }
        if unknown:
            since = literal(now or next_attempt, UtcDateTime())
            changes["unknown_since"] = func.coalesce(digests.c.unknown_since, since)
        with self._tx() as conn:
            conn.execute(update(digests).where(*_held(digest_id, worker)).values(**changes))

    def finish_unconfirmed(self, worker: str, digest_id: int, error: str, now: datetime) -> None:
        """Give up on a digest that may have arrived: no more tries, never called failed."""
        with self._tx() as conn:
            conn.execute(
                update(digests)
                .where(*_held(digest_id, worker))
                .values(
                    status="unconfirmed",
                    last_error=error,
                    next_attempt_at=None,
                    unknown_since=func.coalesce(
                        digests.c.unknown_since, literal(now, UtcDateTime())
                    ),
                    lease_owner=None,
                    lease_until=None,
                )
            )

    def renew_leases(
        self, worker: str, digest_ids: Iterable[int], now: datetime, lease: timedelta
    ) -> set[int]:
        """Extend this worker's leases on digests it still holds; return the ids it holds.

        A digest whose lease expired and was taken over by another worker is not
        returned: its old holder must not send it (issue 21).
        """
        ids = sorted(set(digest_ids))
        if not ids:
            return set()
        with self._tx() as conn:
            held = conn.execute(
                update(digests)
                .where(
                    self._among(digests.c.id, ids),
                    digests.c.lease_owner == worker,
                    digests.c.status == "sending",
                    digests.c.lease_until >= now,
                )
                .values(lease_until=now + lease)
                .returning(digests.c.id)
            )
            return {int(i) for i in held.scalars()}

    def finish_failed(
        self, worker: str, digest_id: int, error: str, hard_bounce: bool, bounce_limit: int
    ) -> bool:
        """Fail a digest for good; a hard bounce counts against the subscriber.

        Returns whether the subscriber was suspended (bounce_limit reached).
        """
        with self._tx() as conn:
            owner = conn.execute(
                update(digests)
                .where(*_held(digest_id, worker))
                .values(status="failed", last_error=error, lease_owner=None, lease_until=None)
                .returning(digests.c.subscriber_id)
            ).scalar_one_or_none()
            if owner is None or not hard_bounce:
                return False
            bounces = conn.execute(
                update(subscribers)
                .where(subscribers.c.id == owner)
                .values(hard_bounces=subscribers.c.hard_bounces + 1)
                .returning(subscribers.c.hard_bounces)
            ).scalar_one()
            if bounces < bounce_limit:
                return False
            conn.execute(
                update(subscribers).where(subscribers.c.id == owner).values(status="suspended")
            )
            return True

    def release_leases(self, worker: str, digest_ids: Iterable[int]) -> int:
        """Give back claimed digests that were never attempted (a stopping worker)."""
        ids = list(digest_ids)
        if not ids:
            return 0
        with self._tx() as conn:
            return int(
                conn.execute(
                    update(digests)
                    .where(
                        digests.c.id.in_(ids),
                        digests.c.lease_owner == worker,
                        digests.c.status == "sending",
                    )
                    .values(
                        # Given back untried: unknown stays unknown (it may have arrived).
                        status=case(
                            (digests.c.unknown_since.is_not(None), "unknown"), else_="pending"
                        ),
                        attempts=digests.c.attempts - 1,
                        lease_owner=None,
                        lease_until=None,
                    )
                ).rowcount
            )

    def latest_digests(self) -> list[DigestOutcome]:
        """Return each subscriber's most recent digest outcome (called by status)."""
        latest = select(func.max(digests.c.id)).group_by(digests.c.subscriber_id).scalar_subquery()
        query = _outcomes().where(digests.c.id.in_(latest)).order_by(subscribers.c.email)
        with self._read() as conn:
            return [DigestOutcome(*row) for row in conn.execute(query)]

    def digest_history(self, subscriber_id: int, limit: int) -> list[DigestOutcome]:
        """Return a subscriber's latest digests, newest first (called by status EMAIL)."""
        query = (
            _outcomes()
            .where(digests.c.subscriber_id == subscriber_id)
            .order_by(digests.c.id.desc())
            .limit(limit)
        )
        with self._read() as conn:
            return [DigestOutcome(*row) for row in conn.execute(query)]

    def digest_page(self, after: int, limit: int, status: str | None = None) -> list[DigestRecord]:
        """Return up to limit digests with ids above after, in id order, without their content."""
        query = (
            select(
                digests.c.id,
                digests.c.subscriber_id,
                subscribers.c.email,
                digests.c.period,
                digests.c.status,
                digests.c.papers,
                digests.c.attempts,
                digests.c.last_error,
                digests.c.created_at,
                digests.c.sent_at,
            )
            .join(subscribers, subscribers.c.id == digests.c.subscriber_id)
            .where(digests.c.id > after)
            .order_by(digests.c.id)
            .limit(limit)
        )
        if status is not None:
            query = query.where(digests.c.status == status)
        with self._read() as conn:
            return [DigestRecord(**row._mapping) for row in conn.execute(query)]

    def waiting_digests(self) -> int:
        """Return how many digests are pending, unknown or being sent (read off ix_digests_due).

        The daemon asks every minute; counting every status would scan a table
        that grows by a day's subscribers every day.
        """
        query = (
            select(func.count())
            .select_from(digests)
            .where(digests.c.status.in_(("pending", "unknown", "sending")))
        )
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def digest_counts(self) -> dict[str, int]:
        """Return how many digests are in each status."""
        query = select(digests.c.status, func.count()).group_by(digests.c.status)
        with self._read() as conn:
            return {status: int(n) for status, n in conn.execute(query)}

    def metrics_figures(self, window: timedelta = timedelta(hours=1)) -> MetricsFigures:
        """Return the counts /metrics shows, and the send latencies of the last window."""
        with self._read() as conn:
            papers_count = conn.execute(select(func.count()).select_from(papers)).scalar_one()
            by_status = {
                status: int(n)
                for status, n in conn.execute(
                    select(digests.c.status, func.count()).group_by(digests.c.status)
                )
            }
            people = {
                status: int(n)
                for status, n in conn.execute(
                    select(subscribers.c.status, func.count()).group_by(subscribers.c.status)
                )
            }
            newest = conn.execute(select(func.max(digests.c.id))).scalar_one() or 0
            cutoff = conn.execute(select(func.max(digests.c.sent_at))).scalar_one()
            latencies: list[float] = []
            if cutoff is not None:
                # Recent sends are among the newest ids: bound the scan by id, not by
                # an index on sent_at that every mark would have to maintain.
                rows = conn.execute(
                    select(digests.c.created_at, digests.c.sent_at).where(
                        digests.c.id > newest - LATENCY_SCAN,
                        digests.c.status == "sent",
                        digests.c.sent_at >= cutoff - window,
                    )
                )
                latencies = [(sent - created).total_seconds() for created, sent in rows]
        return MetricsFigures(
            papers=int(papers_count),
            composed=sum(n for status, n in by_status.items() if status != "empty"),
            digests=by_status,
            subscribers=people,
            latencies=latencies,
        )

    # -- job runs ----------------------------------------------------------

    def start_job(self, job: str, host: str, now: datetime) -> int:
        """Record that a scheduled job started; return its run id."""
        with self._tx() as conn:
            return int(
                conn.execute(
                    insert(job_runs)
                    .values(job=job, host=host, started_at=now, status="running", detail="")
                    .returning(job_runs.c.id)
                ).scalar_one()
            )

    def finish_job(self, run_id: int, status: str, detail: str, now: datetime) -> None:
        """Record how a job run ended (ok or failed) and what it did."""
        with self._tx() as conn:
            conn.execute(
                update(job_runs)
                .where(job_runs.c.id == run_id)
                .values(status=status, detail=detail[:2000], finished_at=now)
            )

    def last_job_runs(self) -> list[JobRun]:
        """Return the latest run of every job, by job name."""
        latest = select(func.max(job_runs.c.id)).group_by(job_runs.c.job).scalar_subquery()
        query = select(job_runs).where(job_runs.c.id.in_(latest)).order_by(job_runs.c.job)
        with self._read() as conn:
            return [
                JobRun(r.job, r.host, r.started_at, r.finished_at, r.status, r.detail)
                for r in conn.execute(query)
            ]

    # -- embeddings --------------------------------------------------------

    def paper_vectors(self, paper_ids: Iterable[int], model: str) -> dict[int, bytes]:
        """Return stored paper embeddings (float32 bytes) by paper id."""
        found: dict[int, bytes] = {}
        with self._read() as conn:
            for chunk in _chunks(sorted(set(paper_ids)), 500):
                query = select(paper_vectors.c.paper_id, paper_vectors.c.vector).where(
                    paper_vectors.c.model == model, paper_vectors.c.paper_id.in_(chunk)
                )
                found.update({row.paper_id: row.vector for row in conn.execute(query)})
        return found

    def save_paper_vectors(self, vectors: Mapping[int, bytes], model: str) -> None:
        """Store paper embeddings computed by the caller (idempotent per paper and model)."""
        if not vectors:
            return
        rows = [{"paper_id": i, "model": model, "vector": v} for i, v in vectors.items()]
        try:
            with self._tx() as conn:
                conn.execute(insert(paper_vectors), rows)
        except IntegrityError:
            # Another process embedded some of them meanwhile; store the rest one by one.
            for row in rows:
                try:
                    with self._tx() as conn:
                        conn.execute(insert(paper_vectors), [row])
                except IntegrityError:
                    continue

    def interest_vectors(
        self, interest_ids: Iterable[int], model: str
    ) -> dict[int, tuple[str, bytes]]:
        """Return stored interest embeddings as (text hash, float32 bytes) by interest id."""
        found: dict[int, tuple[str, bytes]] = {}
        with self._read() as conn:
            for chunk in _chunks(sorted(set(interest_ids)), 500):
                query = select(interest_vectors).where(
                    interest_vectors.c.model == model, interest_vectors.c.interest_id.in_(chunk)
                )
                found.update({r.interest_id: (r.text_hash, r.vectors) for r in conn.execute(query)})
        return found

    def save_interest_vectors(self, rows: Sequence[tuple[int, str, bytes]], model: str) -> None:
        """Store (or replace) interests' embeddings: (interest id, text hash, float32 bytes)."""
        if not rows:
            return
        try:
            with self._tx() as conn:
                for chunk in _chunks([interest_id for interest_id, _, _ in rows], 500):
                    conn.execute(
                        delete(interest_vectors).where(
                            interest_vectors.c.interest_id.in_(chunk),
                            interest_vectors.c.model == model,
                        )
                    )
                conn.execute(
                    insert(interest_vectors),
                    [
                        {"interest_id": i, "model": model, "text_hash": h, "vectors": data}
                        for i, h, data in rows
                    ],
                )
        except IntegrityError:
            # A concurrent run stored some of these first; embeddings are
            # deterministic, so theirs are as good as ours.
            return

    def reset(self) -> None:
        """Delete every row (used by `notifier demo --reset` and the benchmarks)."""
        if self.engine.dialect.name == "postgresql":
            # One TRUNCATE: DELETE would leave millions of dead ledger rows behind
            # that slow every later run until autovacuum gets to them.
            tables = (
                deliveries,
                digests,
                paper_cards,
                interest_vectors,
                interests,
                subscribers,
                sightings,
                payloads,
                paper_vectors,
                sources,
                ingest_runs,
                papers,
            )
            with self._tx() as conn:
                conn.exec_driver_sql(f"TRUNCATE {', '.join(t.name for t in tables)}")
            return
        with self._tx() as conn:
            for table in (
                deliveries,
                digests,
                paper_cards,
                interests,
                subscribers,
                sightings,
                payloads,
            ):
                conn.execute(delete(table))
            conn.execute(delete(sources))
            conn.execute(delete(ingest_runs))
            conn.execute(delete(papers))


def _insert_payload(conn: Connection, run_id: int, payload: Payload) -> None:
    """Store a listing's raw bytes, compressed, with its run."""
    conn.execute(
        insert(payloads).values(
            run_id=run_id,
            url=payload.url,
            content_type=payload.content_type,
            size=len(payload.data),
            data=gzip.compress(payload.data, compresslevel=6),
        )
    )


def _ingest_run(r: Any) -> IngestRun:
    """Return the IngestRun of an ingest_runs row."""
    return IngestRun(
        r.id,
        r.source,
        r.status,
        r.started_at,
        r.papers,
        r.new,
        r.seen,
        r.updated,
        r.error,
        r.kind,
        r.reason,
        r.skipped,
    )


def _source_state(r: Any) -> SourceState:
    """Return the SourceState of a sources row."""
    return SourceState(
        r.name,
        r.kind,
        r.url,
        r.etag,
        r.last_modified,
        r.last_checked_at,
        r.last_success_at,
        r.last_status,
        r.last_error,
        r.last_papers,
        r.consecutive_failures,
    )


def _sent_values() -> dict[str, Any]:
    """Return what marking a digest sent sets: the moment and reply given as mark_now and
    mark_reply, no error, no lease.
    """
    return {
        "status": "sent",
        "sent_at": bindparam("mark_now"),
        "last_reply": bindparam("mark_reply"),
        "last_error": None,
        "lease_owner": None,
        "lease_until": None,
    }


# Built once: a mark is one short UPDATE per accepted message, and building the
# statement cost more than running it.
_MARK_SENT = (
    update(digests)
    .where(
        digests.c.id == bindparam("mark_id"),
        digests.c.lease_owner == bindparam("mark_owner"),
        digests.c.status == "sending",
    )
    .values(**_sent_values())
)

# _MARK_SENT on PostgreSQL: every mark of a group commit in one statement, the ids and
# replies as two arrays (UPDATE ... FROM unnest(...) AS m(id, reply)).
_PG_MARKS = (
    func.unnest(
        cast(bindparam("mark_ids"), postgresql.ARRAY(Integer)),
        cast(bindparam("mark_replies"), postgresql.ARRAY(Text)),
    )
    .table_valued("id", "reply")
    .render_derived(name="m")
)
_PG_MARK_SENT = (
    update(digests)
    .where(
        digests.c.id == _PG_MARKS.c.id,
        digests.c.lease_owner == bindparam("mark_owner"),
        digests.c.status == "sending",
    )
    .values(**(_sent_values() | {"last_reply": _PG_MARKS.c.reply}))
)

_RECOVER_SENT = (
    update(digests)
    .where(
        digests.c.id == bindparam("mark_id"),
        # Not IN (...): executemany cannot expand a list.
        digests.c.status != "sent",
        digests.c.status != "empty",
    )
    .values(**_sent_values(), next_attempt_at=None)
)

# claim_digests' scan of due digests on SQLite. Without statistics SQLite reads every
# due row through ix_digests_status and sorts them all for the first hundred (13 ms a
# claim at 5,000 due, growing with the queue); INDEXED BY walks ix_digests_due in id
# order and stops at the limit (0.3 ms). The index's own predicate is repeated
# word for word: SQLite uses a partial index only for a query that states it.
_SQLITE_DUE = text(
    "SELECT digests.id FROM digests INDEXED BY ix_digests_due"
    " WHERE digests.status IN ('pending', 'unknown', 'sending')"
    " AND digests.status IN ('pending', 'unknown')"
    " AND (digests.next_attempt_at IS NULL OR digests.next_attempt_at <= :due_by)"
    " AND EXISTS (SELECT 1 FROM subscribers WHERE subscribers.id = digests.subscriber_id"
    " AND subscribers.status = 'active')"
    " ORDER BY digests.id LIMIT :limit"
).bindparams(bindparam("due_by", type_=UtcDateTime()))

# What a claim reads of a digest (codec.stored_digest) and its subscriber's id.
_CLAIMED = (
    digests.c.id,
    digests.c.subscriber_id,
    digests.c.content,
    digests.c.status,
    digests.c.message_id,
    digests.c.created_at,
    digests.c.attempts,
    digests.c.last_error,
    digests.c.unknown_since,
)


class _CardCache:
    """Paper cards by fingerprint, most recently used kept, shared by the process.

    A card is content-addressed (its fingerprint is the sha256 of its JSON), so a
    card read once is the card of that fingerprint in any database.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._cards: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, fingerprint: str) -> dict[str, Any] | None:
        """Return the card of fingerprint, or None when it was not read yet."""
        with self._lock:
            card = self._cards.get(fingerprint)
            if card is not None:
                self._cards.move_to_end(fingerprint)
            return card

    def put(self, fingerprint: str, card: dict[str, Any]) -> dict[str, Any]:
        """Remember a card, forgetting the least recently used past the size; return it."""
        with self._lock:
            self._cards[fingerprint] = card
            while len(self._cards) > self._size:
                self._cards.popitem(last=False)
        return card


# A day's digests share a few hundred cards; bounded for a long-lived sender.
_CARD_CACHE = _CardCache(4096)


def _held(digest_id: int, worker: str) -> tuple[Any, ...]:
    """Return the conditions under which a worker may record a digest's outcome."""
    return (
        digests.c.id == digest_id,
        digests.c.lease_owner == worker,
        digests.c.status == "sending",
    )


def _outcomes() -> Select[Any]:
    """Select the columns of DigestOutcome: digests joined to their subscriber."""
    return select(
        subscribers.c.email,
        digests.c.period,
        digests.c.status,
        digests.c.papers,
        digests.c.reason,
        digests.c.last_error,
    ).join(subscribers, subscribers.c.id == digests.c.subscriber_id)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Turn on WAL, foreign keys and a busy timeout for every SQLite connection."""
    # Let SQLAlchemy, not pysqlite, decide when transactions begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL cannot corrupt the database; a power cut may lose the last
    # commits, which here means a digest recomposed or a message resent (same ID).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


# The execution option that marks a connection of Storage._read.
_READ_ONLY = "notifier_read_only"


def _sqlite_begin_immediate(conn: Connection) -> None:
    """Take SQLite's write lock at BEGIN so read-then-write never fails with SQLITE_BUSY;
    a transaction that only reads (Storage._read) begins without it.
    """
    # https://simonwillison.net/2025/Feb/17/sqlite-busy/
    if conn.get_execution_options().get(_READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _insert_rows(
    conn: Connection,
    table: Table,
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    repeated: Collection[str] = (),
) -> None:
    """Insert many rows, each a tuple in the order of names, in one statement.

    Core's executemany builds and type-processes each row's parameters in Python
    (about 8 µs a row); a day's ledger at 100,000 subscribers is 3 million rows.
    Here each column's bind processor is looked up once and applied directly,
    memoised for the columns in repeated, whose few values recur in every row
    (a batch's moment). On PostgreSQL the rows go by COPY; a unique key violated
    raises IntegrityError as an INSERT would.
    """
    if not rows:
        return
    dialect = conn.dialect
    columns: list[Sequence[Any]] | None = None
    for k, name in enumerate(names):
        process: Callable[[Any], Any] | None = table.c[name].type.bind_processor(dialect)
        if process is None:
            continue
        if name in repeated:
            if dialect.name == "sqlite":
                process = _then_sqlite_adapted(process)
            process = functools.lru_cache(maxsize=256)(process)
        if columns is None:
            columns = list(zip(*rows, strict=True))
        columns[k] = [process(value) for value in columns[k]]
    values = rows if columns is None else list(zip(*columns, strict=True))
    if dialect.name == "postgresql":
        _copy_rows(conn, table, names, values)
        return
    compiled = insert(table).values({n: bindparam(n) for n in names}).compile(dialect=dialect)
    order = compiled.positiontup
    params: list[Any]
    if order is None:
        params = [dict(zip(names, row, strict=True)) for row in values]
    elif list(order) == list(names):
        params = list(values)
    else:
        pick = itemgetter(*(names.index(n) for n in order))
        params = [pick(row) for row in values]
    conn.exec_driver_sql(compiled.string, params)


def _then_sqlite_adapted(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Return process followed by the sqlite3 module's own adapter for the value's type.

    sqlite3 adapts each datetime parameter in Python (isoformat) for every row;
    for a value memoised across rows (a batch's moment), adapting it once here
    stores the same text at a thirtieth of the cost.
    """

    def adapted(value: Any) -> Any:
        bound = process(value)
        adapter = sqlite3.adapters.get((type(bound), sqlite3.PrepareProtocol))
        return bound if adapter is None else adapter(bound)

    return adapted


# The type of each column of a table, as the database has it (binary COPY needs it).
_COLUMN_TYPES = """
SELECT attname, atttypid::int FROM pg_attribute
WHERE attrelid = %(table)s::regclass AND attnum > 0 AND NOT attisdropped
"""
_TEXT_OID, _JSON_OID = 25, 114


def _copy_rows(
    conn: Connection, table: Table, names: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Write rows into a PostgreSQL table with binary COPY, in the connection's transaction."""
    import psycopg  # the driver of PostgreSQL URLs only: not needed for SQLite

    # COPY, not an executemany (even pipelined): a batch's 30,000 ledger rows took
    # 0.6 s that way and take a tenth of that by COPY. Binary, not text: psycopg
    # formats a ledger row in a seventh of the time and the server reads it in two
    # thirds (bench/ledger_write.py).
    statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)"
    cursor = conn.connection.cursor()
    try:
        cursor.execute(_COLUMN_TYPES, {"table": table.name})
        oids = dict(cursor.fetchall())
        with cursor.copy(statement) as copy:
            # json's binary form is its text, and the column's bind processor has
            # made that text already: dumped as json it would be encoded twice.
            copy.set_types([_TEXT_OID if oids[n] == _JSON_OID else oids[n] for n in names])
            for row in rows:
                copy.write_row(row)
    except psycopg.errors.IntegrityError as e:
        # The driver's own error, raw: say it as SQLAlchemy would for an INSERT.
        raise IntegrityError(statement, None, e) from e
    finally:
        cursor.close()


def _in_shard(shard: Shard | None) -> list[Any]:
    """Return the condition that keeps one shard's subscribers (none for all of them)."""
    if shard is None:
        return []
    k, n = shard
    return [subscribers.c.id % n == k]


def _new_subscriber(dialect: str, email: str, now: datetime, values: Mapping[str, Any]) -> Any:
    """Return an INSERT of a subscriber with fresh tokens that does nothing if the address exists.

    It returns the new id, or no row when the address was taken, even by a
    concurrent transaction.
    """
    return (
        _dialect_insert(dialect, subscribers)
        .values(
            email=email,
            feed_token=secrets.token_urlsafe(24),
            manage_token=secrets.token_urlsafe(24),
            created_at=now,
            **values,
        )
        .on_conflict_do_nothing(index_elements=[subscribers.c.email])
        .returning(subscribers.c.id)
    )


def _replace_interests(conn: Connection, subscriber_id: int, chosen: Sequence[Interest]) -> None:
    """Make a subscriber's interests exactly chosen, in order; kept names keep their vectors."""
    current = {
        r.name: r.id
        for r in conn.execute(
            select(interests.c.name, interests.c.id).where(
                interests.c.subscriber_id == subscriber_id
            )
        )
    }
    gone = [current[name] for name in set(current) - {i.name for i in chosen}]
    if gone:
        conn.execute(delete(interest_vectors).where(interest_vectors.c.interest_id.in_(gone)))
        conn.execute(delete(interests).where(interests.c.id.in_(gone)))
    for position, interest in enumerate(chosen):
        fields = {
            "position": position,
            "query": interest.query,
            "about": interest.about,
            "sensitivity": interest.sensitivity,
        }
        if interest.name in current:
            conn.execute(
                update(interests).where(interests.c.id == current[interest.name]).values(**fields)
            )
        else:
            conn.execute(
                insert(interests).values(subscriber_id=subscriber_id, name=interest.name, **fields)
            )


def _delete_ledgers(conn: Connection, subscriber_ids: Sequence[int]) -> None:
    """Delete the ledger rows of subscribers just deleted in this transaction.

    Called after deleting the subscribers: on PostgreSQL that DELETE waits for a
    composer still writing one of their digests, so this statement, with a newer
    snapshot, sees and deletes the ledger rows that composer committed.
    """
    for chunk in _chunks(sorted(subscriber_ids), 500):
        conn.execute(delete(deliveries).where(deliveries.c.subscriber_id.in_(chunk)))


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    """Yield items in lists of at most size (SQLite caps bound parameters)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _one_line(error: BaseException | None) -> str:
    """Return a driver's (often multi-line) message as one line."""
    return " ".join(str(error).split())


def _current_revision(conn: Connection) -> str | None:
    """Return the revision Alembic recorded in the database, None before the first migration."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _redact(url: str) -> str:
    """Return url with any password hidden."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest and ":" in rest.split("@", 1)[0]:
        user = rest.split("@", 1)[0].split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{rest.split('@', 1)[1]}"
    return url


SCHEDULE_COLUMNS = ScheduleKey._fields


# The ledger's columns, in the order _ledger_rows gives them.
_LEDGER_COLUMNS = (
    "subscriber_id",
    "paper_id",
    "digest_id",
    "interest",
    "score",
    "reason",
    "shown",
    "created_at",
)


def _ledger_rows(item: NewDigest, digest_id: int, now: datetime) -> list[tuple[Any, ...]]:
    """Return the ledger rows of a stored digest (_LEDGER_COLUMNS): shown papers, then overflow."""
    subscriber_id = item.content.subscriber_id
    shown = [
        (subscriber_id, p.paper_id, digest_id, section.interest, p.score, p.reason, True, now)
        for section in item.content.sections
        for p in section.papers
    ]
    return shown + [
        (subscriber_id, paper_id, digest_id, interest, score, reason, False, now)
        for paper_id, interest, score, reason in item.overflow
    ]


def _dialect_insert(dialect: str, table: Table) -> Any:
    """Return the dialect's INSERT for table, which offers ON CONFLICT DO NOTHING."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)

"""Store what ingests find: papers, ingest runs, raw listings, sources' state, paper vectors."""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from notifier.errors import StaleDiff, StorageError
from notifier.models import (
    ChangeKind,
    IngestRun,
    IngestStatus,
    IngestSummary,
    Listing,
    Paper,
    PaperChange,
    PaperData,
    Payload,
    SourceState,
    StoredPaper,
)
from notifier.papers import title_hash
from notifier.storage import codec
from notifier.storage.base import StorageBase, _chunks, _insert_rows, _new_ids
from notifier.storage.schema import (
    arrival_counter,
    ingest_runs,
    papers,
    payloads,
    sightings,
    sources,
)


class PapersMixin(StorageBase):
    """Store listings' papers with their runs and raw bytes; read papers back."""

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
        status = IngestStatus.OK if listing.papers else IngestStatus.EMPTY
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
                _store_changes(conn, run_id, changes, now)
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
                    status=IngestStatus.FAILED,
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
                        status=IngestStatus.UNCHANGED,
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
        """Return papers first seen in [since, until], latest arrival first, then newest first.

        Composing relies on the order: the papers of arrivals after a given one
        come first, so a subscriber's new papers are a prefix of the list.
        """
        query = (
            select(papers)
            .where(papers.c.first_seen_at >= since, papers.c.first_seen_at <= until)
            .order_by(papers.c.arrival.desc(), papers.c.first_seen_at.desc(), papers.c.id.desc())
        )
        with self._read() as conn:
            return [codec.paper(row) for row in conn.execute(query)]

    def arrivals_through(self, until: datetime) -> int:
        """Return the last arrival all of whose papers recent_papers(..., until) will list.

        Every arrival up to the counter's value has committed (an ingest holds
        the counter's row until it commits), so read before the candidates it
        is among them, unless one of its papers was first seen after until (an
        ingest that stamped its papers after a compose's moment and committed
        before this read): the last arrival before the first such one.
        """
        with self._read() as conn:
            committed = int(
                conn.execute(
                    select(arrival_counter.c.value).where(arrival_counter.c.id == 1)
                ).scalar_one()
            )
            later = conn.execute(
                select(func.min(papers.c.arrival)).where(
                    papers.c.first_seen_at > until, papers.c.arrival > 0
                )
            ).scalar_one()
        return committed if later is None else min(committed, int(later) - 1)

    def paper(self, paper_id: int) -> Paper | None:
        """Return one stored paper, or None."""
        with self._read() as conn:
            row = conn.execute(select(papers).where(papers.c.id == paper_id)).first()
        return None if row is None else codec.paper(row)

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


_PAPER_COLUMNS = (
    "id",
    "key",
    "guid",
    "arxiv_id",
    "title",
    "title_key",
    "abstract",
    "version",
    "url",
    "authors",
    "meta",
    "published_at",
    "first_seen_at",
    "updated_at",
    "arrival",
)
_SIGHTING_COLUMNS = ("paper_id", "run_id", "rank", "seen_at")


def _store_changes(
    conn: Connection, run_id: int, changes: Sequence[PaperChange], now: datetime
) -> None:
    """Insert the new papers, apply the updates and add a sighting per listed paper.

    One statement per table (the updates one per set of columns changed), where a
    statement per paper cost 0.3-0.4 ms a paper (bench/ingest_rate.py). A key or
    arXiv id another ingest stored since the diff fails its statement with
    IntegrityError, as the single row's INSERT or UPDATE did.
    """
    new = [change.paper for change in changes if change.kind is ChangeKind.NEW]
    arrival = 0
    if new or any(change.kind is ChangeKind.UPDATED for change in changes):
        arrival = _next_arrival(conn)
    new_ids = iter(_insert_papers(conn, new, now, arrival))
    _update_papers(conn, changes, now, arrival)
    seen = []
    for change in changes:
        if change.kind is ChangeKind.SKIPPED:
            continue
        paper_id = next(new_ids) if change.kind is ChangeKind.NEW else change.stored_id
        seen.append((paper_id, run_id, change.paper.rank, now))
    _insert_rows(
        conn, sightings, _SIGHTING_COLUMNS, seen, repeated={"run_id", "seen_at"}, as_insert=True
    )


def _next_arrival(conn: Connection) -> int:
    """Take the next arrival number; the counter's row stays locked until this transaction ends.

    So ingests commit in arrival order, and composing can tell which papers an
    earlier digest had already seen (schema.arrival_counter).
    """
    return int(
        conn.execute(
            update(arrival_counter)
            .where(arrival_counter.c.id == 1)
            .values(value=arrival_counter.c.value + 1)
            .returning(arrival_counter.c.value)
        ).scalar_one()
    )


def _insert_papers(
    conn: Connection, new: Sequence[PaperData], now: datetime, arrival: int
) -> list[int]:
    """Insert new papers; return their ids, ascending in the order given.

    Ids ascend in listing order because papers first seen at one moment are
    listed newest id first (recent_papers, the feeds). The ids are taken first
    and the rows written in one go (by COPY on PostgreSQL): SQLAlchemy's
    executemany with RETURNING in parameter order runs an INSERT per row on
    SQLite, whose RETURNING promises no order.
    """
    if not new:
        return []
    ids = _new_ids(conn, papers, len(new))
    rows = [
        (
            paper_id,
            paper.key,
            f"urn:notifier:{paper.key}",
            paper.arxiv_id,
            paper.title,
            title_hash(paper.title),
            paper.abstract,
            paper.version,
            paper.url,
            list(paper.authors),
            dict(paper.meta),
            paper.published_at,
            now,
            now,
            arrival,
        )
        for paper_id, paper in zip(ids, new, strict=True)
    ]
    _insert_rows(
        conn,
        papers,
        _PAPER_COLUMNS,
        rows,
        repeated={"first_seen_at", "updated_at", "arrival"},
        as_insert=True,
    )
    return ids


def _update_papers(
    conn: Connection, changes: Sequence[PaperChange], now: datetime, arrival: int
) -> None:
    """Apply the changes' updates to stored papers, one executemany per set of columns.

    Two changes of one stored paper are merged, the later one's values winning,
    as applying them in turn would leave the row. An updated paper takes this
    ingest's arrival: its new text is decided again for every subscriber.
    """
    merged: dict[int, dict[str, Any]] = {}
    for change in changes:
        if change.kind in (ChangeKind.NEW, ChangeKind.SKIPPED) or not change.updates:
            continue
        assert change.stored_id is not None
        values = merged.setdefault(change.stored_id, {})
        values.update((k, list(v) if k == "authors" else v) for k, v in change.updates.items())
        if change.kind is ChangeKind.UPDATED:
            values["updated_at"] = now
            values["arrival"] = arrival
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for paper_id, values in merged.items():
        groups.setdefault(tuple(sorted(values)), []).append({"paper_id": paper_id, **values})
    statement = update(papers).where(papers.c.id == bindparam("paper_id"))
    for rows in groups.values():
        conn.execute(statement, rows)


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
        IngestStatus(r.status),
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
        None if r.last_status is None else IngestStatus(r.last_status),
        r.last_error,
        r.last_papers,
        r.consecutive_failures,
    )

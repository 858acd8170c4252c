"""What readers teach their interests: rated and imported example papers, muted authors."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from notifier.models import ExampleOrigin, InterestExample, MutedAuthor, Verdict
from notifier.papers import author_key, normalise_title
from notifier.storage.base import StorageBase, _chunks
from notifier.storage.schema import interest_examples, interests, muted_authors, papers

# Examples one interest keeps: enough to learn from, few enough to score quickly.
MAX_EXAMPLES = 2_000


class FeedbackMixin(StorageBase):
    """Keep each interest's example papers and each subscriber's muted authors."""

    def rate(
        self, subscriber_id: int, interest_id: int, paper_id: int, verdict: Verdict, now: datetime
    ) -> InterestExample | None:
        """Record a rating of a paper for one of the subscriber's interests (replacing any).

        The interest is marked changed, so its next digest decides the whole
        window again with what it learned. Returns None when the interest or the
        paper is gone.
        """
        for attempt in (1, 2):
            try:
                with self._tx() as conn:
                    return _rate(conn, subscriber_id, interest_id, paper_id, verdict, now)
            except IntegrityError:
                # The same click twice at once: the other one inserted the row; update it.
                if attempt == 2:
                    raise
        return None

    def rating(self, interest_id: int, paper_id: int) -> InterestExample | None:
        """Return the rating of a paper for an interest, if any."""
        query = _examples_query().where(
            interest_examples.c.interest_id == interest_id,
            interest_examples.c.paper_id == paper_id,
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _example(row)

    def remove_example(self, subscriber_id: int, example_id: int, now: datetime) -> bool:
        """Remove one of the subscriber's examples (undo a rating, drop an import); say if found."""
        with self._tx() as conn:
            row = conn.execute(
                select(interest_examples.c.interest_id).where(
                    interest_examples.c.id == example_id,
                    interest_examples.c.subscriber_id == subscriber_id,
                )
            ).first()
            if row is None:
                return False
            conn.execute(delete(interest_examples).where(interest_examples.c.id == example_id))
            _changed(conn, row.interest_id, now)
            return True

    def import_examples(
        self,
        subscriber_id: int,
        interest_id: int,
        entries: Sequence[tuple[str, str]],
        now: datetime,
    ) -> int | None:
        """Add (title, abstract) pairs as positive examples of an interest, all or none.

        Titles the interest already holds are skipped. Returns how many were
        added, or None when the interest is not the subscriber's. Raises
        ValueError when the interest would hold more than MAX_EXAMPLES.
        """
        with self._tx() as conn:
            if not _owns(conn, subscriber_id, interest_id):
                return None
            held = {
                normalise_title(r.title)
                for r in conn.execute(
                    select(interest_examples.c.title).where(
                        interest_examples.c.interest_id == interest_id
                    )
                )
            }
            rows = []
            for title, abstract in entries:
                key = normalise_title(title)
                if key in held:
                    continue
                held.add(key)
                rows.append(
                    {
                        "subscriber_id": subscriber_id,
                        "interest_id": interest_id,
                        "paper_id": None,
                        "verdict": Verdict.MORE,
                        "origin": ExampleOrigin.LIBRARY,
                        "title": title,
                        "abstract": abstract,
                        "created_at": now,
                    }
                )
            if len(held) > MAX_EXAMPLES:
                raise ValueError(
                    f"the interest would hold {len(held)} example papers; at most "
                    f"{MAX_EXAMPLES:,} can teach one interest: remove some first"
                )
            if rows:
                conn.execute(insert(interest_examples), rows)
                _changed(conn, interest_id, now)
            return len(rows)

    def examples_of(self, subscriber_id: int) -> list[InterestExample]:
        """Return a subscriber's examples, interest by interest, newest first."""
        query = (
            _examples_query()
            .where(interest_examples.c.subscriber_id == subscriber_id)
            .order_by(
                interests.c.position, interest_examples.c.created_at.desc(), interest_examples.c.id
            )
        )
        with self._read() as conn:
            return [_example(row) for row in conn.execute(query)]

    def examples_for(self, subscriber_ids: Iterable[int]) -> dict[int, list[InterestExample]]:
        """Return the examples of these subscribers' interests, by interest id (composing)."""
        found: dict[int, list[InterestExample]] = {}
        with self._read() as conn:
            for chunk in _chunks(sorted(set(subscriber_ids)), 500):
                query = _examples_query().where(
                    self._within(interest_examples.c.subscriber_id, chunk)
                )
                for row in conn.execute(query.order_by(interest_examples.c.id)):
                    found.setdefault(row.interest_id, []).append(_example(row))
        return found

    def mute_author(self, subscriber_id: int, name: str, now: datetime) -> MutedAuthor:
        """Leave a subscriber's digests without this author's papers from now on."""
        key = author_key(name)
        row = {
            "subscriber_id": subscriber_id,
            "name_key": key,
            "name": name[:200],
            "created_at": now,
        }
        try:
            with self._tx() as conn:
                exists = conn.execute(
                    select(muted_authors.c.name_key).where(
                        muted_authors.c.subscriber_id == subscriber_id,
                        muted_authors.c.name_key == key,
                    )
                ).first()
                if exists is None:
                    conn.execute(insert(muted_authors).values(**row))
        except IntegrityError:
            pass  # muted by a second click at the same moment
        return MutedAuthor(name[:200], now)

    def unmute_author(self, subscriber_id: int, name: str) -> bool:
        """Let an author's papers through again; say if they were muted."""
        with self._tx() as conn:
            gone = conn.execute(
                delete(muted_authors).where(
                    muted_authors.c.subscriber_id == subscriber_id,
                    muted_authors.c.name_key == author_key(name),
                )
            )
            return bool(gone.rowcount)

    def muted_authors_of(self, subscriber_id: int) -> list[MutedAuthor]:
        """Return the authors a subscriber muted, by name."""
        query = (
            select(muted_authors.c.name, muted_authors.c.created_at)
            .where(muted_authors.c.subscriber_id == subscriber_id)
            .order_by(muted_authors.c.name_key)
        )
        with self._read() as conn:
            return [MutedAuthor(r.name, r.created_at) for r in conn.execute(query)]

    def muted_keys(self, subscriber_ids: Iterable[int]) -> dict[int, frozenset[str]]:
        """Return the muted authors' comparison keys by subscriber (composing)."""
        found: dict[int, set[str]] = {}
        with self._read() as conn:
            for chunk in _chunks(sorted(set(subscriber_ids)), 500):
                query = select(muted_authors.c.subscriber_id, muted_authors.c.name_key).where(
                    muted_authors.c.subscriber_id.in_(chunk)
                )
                for row in conn.execute(query):
                    found.setdefault(row.subscriber_id, set()).add(row.name_key)
        return {k: frozenset(v) for k, v in found.items()}


def _rate(  # noqa: PLR0917
    conn: Connection,
    subscriber_id: int,
    interest_id: int,
    paper_id: int,
    verdict: Verdict,
    now: datetime,
) -> InterestExample | None:
    """Record one rating in conn's transaction (see FeedbackMixin.rate)."""
    if not _owns(conn, subscriber_id, interest_id):
        return None
    found = conn.execute(
        select(papers.c.title, papers.c.abstract).where(papers.c.id == paper_id)
    ).first()
    if found is None:
        return None
    where = (
        interest_examples.c.interest_id == interest_id,
        interest_examples.c.paper_id == paper_id,
    )
    changed = conn.execute(
        update(interest_examples).where(*where).values(verdict=verdict, created_at=now)
    ).rowcount
    if not changed:
        conn.execute(
            insert(interest_examples).values(
                subscriber_id=subscriber_id,
                interest_id=interest_id,
                paper_id=paper_id,
                verdict=verdict,
                origin=ExampleOrigin.RATING,
                title=found.title,
                abstract=found.abstract,
                created_at=now,
            )
        )
    _changed(conn, interest_id, now)
    return _example(conn.execute(_examples_query().where(*where)).one())


def _owns(conn: Connection, subscriber_id: int, interest_id: int) -> bool:
    """Tell whether an interest exists and belongs to the subscriber."""
    return (
        conn.execute(
            select(interests.c.id).where(
                interests.c.id == interest_id, interests.c.subscriber_id == subscriber_id
            )
        ).first()
        is not None
    )


def _changed(conn: Connection, interest_id: int, now: datetime) -> None:
    """Mark an interest changed: its next digest decides the whole window with what it learned."""
    conn.execute(update(interests).where(interests.c.id == interest_id).values(changed_at=now))


def _examples_query() -> Any:
    """Return the select of examples with their interest's name."""
    return select(interest_examples, interests.c.name.label("interest_name")).join(
        interests, interests.c.id == interest_examples.c.interest_id
    )


def _example(row: Any) -> InterestExample:
    """Return the InterestExample of a row of _examples_query."""
    return InterestExample(
        id=row.id,
        interest_id=row.interest_id,
        interest=row.interest_name,
        title=row.title,
        abstract=row.abstract,
        verdict=Verdict(row.verdict),
        origin=ExampleOrigin(row.origin),
        created_at=row.created_at,
        paper_id=row.paper_id,
    )

"""Open the database: the engine, transactions, migrations and the SQL helpers of every mixin."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Table,
    and_,
    any_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from notifier.errors import StorageError
from notifier.storage import codec
from notifier.storage.schema import (
    channel_posts,
    channels,
    deliveries,
    digests,
    ingest_runs,
    interest_examples,
    interest_vectors,
    interests,
    muted_authors,
    paper_cards,
    paper_vectors,
    papers,
    payloads,
    sightings,
    sources,
    subscribers,
    topic_digests,
    topic_ledger,
)

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration in MIGRATIONS (a test checks it against Alembic's head), so a
# process whose database is up to date never imports Alembic: a third of a second
# paid by every command and every worker process otherwise.
SCHEMA_HEAD = "0012"
# PostgreSQL advisory lock keys ("noti" + a number), one per purpose.
MIGRATION_LOCK = 0x6E6F7469_0001
LEADER_LOCK = 0x6E6F7469_0002


class StorageBase:
    """Hold the engine and run transactions and migrations; the mixins add the use cases."""

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

    def reset(self) -> None:
        """Delete every row (used by `notifier demo --reset` and the benchmarks)."""
        if self.engine.dialect.name == "postgresql":
            # One TRUNCATE: DELETE would leave millions of dead ledger rows behind
            # that slow every later run until autovacuum gets to them.
            tables = (
                channel_posts,
                channels,
                topic_ledger,
                topic_digests,
                deliveries,
                interest_examples,
                muted_authors,
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
                channel_posts,
                channels,
                topic_ledger,
                topic_digests,
                deliveries,
                interest_examples,
                muted_authors,
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
    *,
    as_insert: bool = False,
) -> None:
    """Insert many rows, each a tuple in the order of names, in one statement.

    Core's executemany builds and type-processes each row's parameters in Python
    (about 8 µs a row); a day's ledger at 100,000 subscribers is 3 million rows.
    Here each column's bind processor is looked up once and applied directly,
    memoised for the columns in repeated, whose few values recur in every row
    (a batch's moment). On PostgreSQL the rows go by COPY; a unique key violated
    raises IntegrityError as an INSERT would.

    SQLite keeps times as text, and which text depends on who made it: sqlite3
    ("2026-11-22 07:00:00", what the ledger always had) or, with as_insert, the
    dialect's own processor as a Core INSERT applies it ("2026-11-22
    07:00:00.000000"), the text that conditions on the column compare with
    (the first sorts before the same moment). On PostgreSQL as_insert changes
    nothing: COPY sends typed values.
    """
    if not rows:
        return
    dialect = conn.dialect
    sqlite_text = dialect.name == "sqlite" and as_insert
    columns: list[Sequence[Any]] | None = None
    for k, name in enumerate(names):
        column_type = table.c[name].type
        if sqlite_text:
            column_type = column_type.dialect_impl(dialect)
        process: Callable[[Any], Any] | None = column_type.bind_processor(dialect)
        if process is None:
            continue
        if name in repeated:
            if dialect.name == "sqlite" and not sqlite_text:
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


def _new_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """Return count fresh ids, ascending, for rows of table to be inserted with them.

    On PostgreSQL they come from the id column's sequence in one round trip. On
    SQLite they follow the largest id, as SQLite itself numbers rows of a table
    without AUTOINCREMENT; the transaction holds the write lock from its BEGIN
    IMMEDIATE, and a row whose id was taken all the same is refused by the
    primary key (IntegrityError), as a row with a taken unique key is.
    """
    if conn.dialect.name == "postgresql":
        taken = conn.execute(
            text(
                f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id'))"
                " FROM generate_series(1, :n)"
            ),
            {"n": count},
        ).scalars()
        return sorted(taken)
    last = conn.execute(select(func.max(table.c.id))).scalar_one()
    start = (last or 0) + 1
    return list(range(start, start + count))


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


def _dialect_insert(dialect: str, table: Table) -> Any:
    """Return the dialect's INSERT for table, which offers ON CONFLICT DO NOTHING."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


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

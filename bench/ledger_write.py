"""Writing the delivery ledger on PostgreSQL: the cost of its keys, per subscriber of 30 rows.

COPYs ledger-shaped rows (30 per subscriber, in batches of 1,000 subscribers as
composing writes them, one transaction) into variants of the `deliveries`
table in a scratch schema, and prints the time per subscriber for each (the
client's part is the same in all, so the differences are the server's): the
schema before migration 0008 (a surrogate id, three foreign keys, a unique
key and an index on digest_id), steps in between, and the schema of 0008
(the unique key as the primary key, nothing else). Best of --runs.

Then, into the 0008 table, text COPY against binary COPY (what storage writes
now), with the CPU time of this client and of the server's backend apart.

Run: .venv/bin/python bench/ledger_write.py [--subscribers N] [--url URL]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

SCHEMA = "bench_ledger"
PARENTS = f"""
DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;
CREATE SCHEMA {SCHEMA};
CREATE TABLE {SCHEMA}.subscribers (id serial PRIMARY KEY, email text);
CREATE TABLE {SCHEMA}.papers (id serial PRIMARY KEY, title text);
CREATE TABLE {SCHEMA}.digests (
    id serial PRIMARY KEY,
    subscriber_id int REFERENCES {SCHEMA}.subscribers(id) ON DELETE CASCADE
);
INSERT INTO {SCHEMA}.subscribers (email) SELECT 's' || g FROM generate_series(1, %(n)s) g;
INSERT INTO {SCHEMA}.papers (title) SELECT 'p' || g FROM generate_series(1, 500) g;
INSERT INTO {SCHEMA}.digests (subscriber_id) SELECT g FROM generate_series(1, %(n)s) g;
ANALYZE;
"""
PAYLOAD = """interest varchar(100) NOT NULL, score float NOT NULL, reason text NOT NULL,
    shown boolean NOT NULL, created_at timestamptz NOT NULL"""
FK = f"REFERENCES {SCHEMA}.%s(id) ON DELETE CASCADE"
VARIANTS = {
    "0007: id, 3 foreign keys, unique key, digest index": f"""
        CREATE TABLE {SCHEMA}.deliveries (id serial PRIMARY KEY,
            subscriber_id int NOT NULL {FK % "subscribers"}, paper_id int NOT NULL {FK % "papers"},
            digest_id int NOT NULL {FK % "digests"}, {PAYLOAD}, UNIQUE (subscriber_id, paper_id));
        CREATE INDEX ON {SCHEMA}.deliveries (digest_id)""",
    "foreign key to digests only": f"""
        CREATE TABLE {SCHEMA}.deliveries (id serial PRIMARY KEY,
            subscriber_id int NOT NULL, paper_id int NOT NULL,
            digest_id int NOT NULL {FK % "digests"}, {PAYLOAD}, UNIQUE (subscriber_id, paper_id));
        CREATE INDEX ON {SCHEMA}.deliveries (digest_id)""",
    "no foreign key, id, unique key, digest index": f"""
        CREATE TABLE {SCHEMA}.deliveries (id serial PRIMARY KEY,
            subscriber_id int NOT NULL, paper_id int NOT NULL, digest_id int NOT NULL,
            {PAYLOAD}, UNIQUE (subscriber_id, paper_id));
        CREATE INDEX ON {SCHEMA}.deliveries (digest_id)""",
    "0008: (subscriber, paper) primary key only": f"""
        CREATE TABLE {SCHEMA}.deliveries (
            subscriber_id int NOT NULL, paper_id int NOT NULL, digest_id int NOT NULL,
            {PAYLOAD}, PRIMARY KEY (subscriber_id, paper_id))""",
}
COLUMNS = "subscriber_id, paper_id, digest_id, interest, score, reason, shown, created_at"
TYPES = ["int4", "int4", "int4", "varchar", "float8", "text", "bool", "timestamptz"]
PER_SUBSCRIBER = 30
BATCH = 1_000 * PER_SUBSCRIBER


def ledger(subscribers: int) -> list[tuple[object, ...]]:
    """Return 30 rows per subscriber: 20 shown, 10 over the cap, distinct papers."""
    rng = random.Random(1)
    now = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
    reasons = [f"“topic {k}” in title and abstract; close to your description" for k in range(100)]
    return [
        (s, paper, s, f"topic {s % 100}", 0.5, reasons[(s + j) % 100], j < 20, now)
        for s in range(1, subscribers + 1)
        for j, paper in enumerate(rng.sample(range(1, 501), PER_SUBSCRIBER))
    ]


def backend_cpu(conn: psycopg.Connection) -> float:
    """Return the CPU seconds the connection's server process has used (same machine)."""
    fields = Path(f"/proc/{conn.info.backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def copy_ledger(
    conn: psycopg.Connection, rows: list[tuple[object, ...]], binary: bool
) -> tuple[float, float, float]:
    """COPY rows into the scratch ledger in batches; return wall, client CPU, server CPU."""
    statement = f"COPY {SCHEMA}.deliveries ({COLUMNS}) FROM STDIN"
    if binary:
        statement += " (FORMAT BINARY)"
    wall, client, server = time.perf_counter(), time.process_time(), backend_cpu(conn)
    with conn.transaction(), conn.cursor() as cursor:
        for start in range(0, len(rows), BATCH):
            with cursor.copy(statement) as copy:
                if binary:
                    copy.set_types(TYPES)
                for row in rows[start : start + BATCH]:
                    copy.write_row(row)
    return (
        time.perf_counter() - wall,
        time.process_time() - client,
        backend_cpu(conn) - server,
    )


def main() -> None:
    """Time each variant and print microseconds per subscriber."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    rows = ledger(args.subscribers)
    with psycopg.connect(args.url, autocommit=True) as conn:
        try:
            for name, table in VARIANTS.items():
                seconds = []
                for _ in range(args.runs):
                    conn.execute(PARENTS % {"n": args.subscribers})
                    conn.execute(table)
                    seconds.append(copy_ledger(conn, rows, binary=False)[0])
                best = min(seconds)
                print(f"{name:<52} {best * 1e6 / args.subscribers:6.0f} µs per subscriber")
            print(
                "\n0008 table, COPY format: wall, client CPU, server CPU per subscriber (medians)"
            )
            for binary in (False, True):
                figures = []
                for _ in range(args.runs):
                    conn.execute(PARENTS % {"n": args.subscribers})
                    conn.execute(VARIANTS["0008: (subscriber, paper) primary key only"])
                    figures.append(copy_ledger(conn, rows, binary))
                wall, client, server = (
                    statistics.median(f) * 1e6 / args.subscribers
                    for f in zip(*figures, strict=True)
                )
                print(
                    f"{'binary' if binary else 'text':<8} {wall:6.0f} µs   client {client:6.0f} µs"
                    f"   server {server:6.0f} µs"
                )
        finally:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


if __name__ == "__main__":
    main()

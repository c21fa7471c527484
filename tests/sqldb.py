"""Reading and editing stored rows straight from the database, on either backend.

``connect(db)`` is ``sqlite3.connect`` for a file; for a PostgreSQL URL (see
``conftest.db_path``) it is a psycopg connection to that schema taking the same SQL
(SQLite's dialect, translated as litewf translates its own). ``query(db, sql)`` runs one
statement in a transaction of its own; ``executor_alive(db, id)`` asks the backend's
liveness check, as a peer runtime would.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import Any, Self

from litewf._pgdialect import is_postgres_url, split_url, translate


class PgCursor:
    """The part of ``sqlite3.Cursor`` the tests use: a statement without rows fetches
    none (psycopg would raise)."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.rowcount = cursor.rowcount

    def fetchone(self) -> Any:
        return self.cursor.fetchone() if self.cursor.description else None

    def fetchall(self) -> list[Any]:
        return self.cursor.fetchall() if self.cursor.description else []

    def __iter__(self) -> Any:
        return iter(self.fetchall())


class PgConnection:
    """The part of ``sqlite3.Connection`` the tests use, over PostgreSQL. As
    ``sqlite3.connect`` creates the file, connecting creates the (empty) schema."""

    def __init__(self, url: str) -> None:
        import psycopg

        dsn, schema = split_url(url)
        self.conn = psycopg.connect(dsn)
        self.conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        self.conn.execute(f'SET search_path TO "{schema}"')
        self.conn.commit()

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> PgCursor:
        return PgCursor(self.conn.execute(translate(sql), tuple(params)))

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(translate(sql), rows)

    def executescript(self, script: str) -> None:
        self.conn.execute(script.encode())

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()

    def __del__(self) -> None:
        self.conn.close()  # as sqlite3 does when a connection is dropped unclosed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.conn.commit()
        else:
            self.conn.rollback()


def connect(db: str | os.PathLike[str], **kwargs: Any) -> Any:
    """A connection to the test database ``db`` (a file or a PostgreSQL URL)."""
    if is_postgres_url(db):
        return PgConnection(str(db))
    return sqlite3.connect(db, **kwargs)


def query(db: str | os.PathLike[str], sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Run ``sql`` in a transaction of its own (committed): its rows, as tuples."""
    with contextlib.closing(connect(db)) as conn, conn:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]


#: litewf's tables, on either backend.
TABLES = (
    "workflows",
    "operations",
    "events",
    "messages",
    "message_keys",
    "changes",
    "streams",
    "schedules",
)


def dump(db: str | os.PathLike[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of litewf's tables, in a stable order: to compare a database's contents
    before and after (on SQLite a file's bytes say more; on PostgreSQL this is it)."""
    with contextlib.closing(connect(db)) as conn, conn:
        return {
            table: sorted((tuple(r) for r in conn.execute(f"SELECT * FROM {table}")), key=repr)
            for table in TABLES
        }


def exists(db: str | os.PathLike[str]) -> bool:
    """Whether the database exists at all: the file, or the PostgreSQL schema."""
    if not is_postgres_url(db):
        return os.path.exists(db)
    import psycopg

    dsn, schema = split_url(str(db))
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,))
        return bool(row.fetchone()[0])  # type: ignore[index]


def executor_alive(db: str | os.PathLike[str], executor_id: str) -> bool:
    """Whether a live runtime holds ``executor_id``'s lock, as a peer would see it."""
    if is_postgres_url(db):
        from litewf._pgliveness import PgProbe

        dsn, schema = split_url(str(db))
        probe = PgProbe(dsn, schema)
        try:
            return probe.alive(executor_id)
        finally:
            probe.close()
    from litewf._liveness import executor_alive as alive

    return alive(str(db), executor_id)

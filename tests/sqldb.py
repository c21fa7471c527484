"""Reading and editing stored rows straight from the database, on either backend.

``connect(db)`` is ``sqlite3.connect`` for a file; for a PostgreSQL URL (see
``conftest.db_path``) it is a psycopg connection to that schema taking the same SQL
(SQLite's dialect, translated as litewf translates its own).
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, Self

from litewf._pgdialect import is_postgres_url, split_url, translate


class PgConnection:
    """The part of ``sqlite3.Connection`` the tests use, over PostgreSQL."""

    def __init__(self, url: str) -> None:
        import psycopg

        dsn, schema = split_url(url)
        self.conn = psycopg.connect(dsn)
        self.conn.execute(f'SET search_path TO "{schema}"')
        self.conn.commit()

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        return self.conn.execute(translate(sql), tuple(params))

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

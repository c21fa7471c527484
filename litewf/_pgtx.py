"""The ``Tx`` the SQL modules see on PostgreSQL, and the rows it returns.

Statements are translated from SQLite's dialect once each (``_pgdialect``); rows answer
to a column's name and to its position, as ``sqlite3.Row`` does. Booleans are sent as
integers, as SQLite stores them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, cast

from ._change import Change
from ._pgdialect import translate
from ._tx import Params, Tx

__all__ = ["PgRow", "PgTx", "row_factory"]


class PgRow(tuple[Any, ...]):
    """A row by position or by column name (``row["status"]``)."""

    _index: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def row_factory(cursor: Any) -> Callable[[Sequence[Any]], PgRow]:
    """psycopg's row factory for ``PgRow``."""
    description = cursor.description or ()
    index = {column.name: i for i, column in enumerate(description)}

    def make(values: Sequence[Any]) -> PgRow:
        row = PgRow(values)
        row._index = index
        return row

    return make


class PgTx(Tx):
    """A ``Tx`` over one psycopg (sync) connection, run in the database's thread."""

    __slots__ = ("database", "logged", "pg")

    def __init__(
        self, pg: Any, where: str, on_change: Callable[[Change], None] | None = None
    ) -> None:
        super().__init__(cast(sqlite3.Connection, None), on_change)
        self.pg = pg
        self.database = where
        #: Whether a change was logged (the commit then sends a NOTIFY).
        self.logged = False

    def execute(self, sql: str, params: Params = ()) -> int:
        cursor = self.pg.execute(translate(sql), tuple(params))
        return int(cursor.rowcount)

    def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        row = self.pg.execute(translate(sql), tuple(params)).fetchone()
        return cast(sqlite3.Row | None, row)

    def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        rows = self.pg.execute(translate(sql), tuple(params)).fetchall()
        return cast(list[sqlite3.Row], rows)

    def changed(self, change: Change) -> None:
        self.logged = True
        super().changed(change)

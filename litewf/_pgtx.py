"""The ``Tx`` the SQL modules see on PostgreSQL, and the rows it returns.

Statements are translated from SQLite's dialect once each (``_pgdialect``); rows answer
to a column's name and to its position, as ``sqlite3.Row`` does. Booleans are sent as
integers, as SQLite stores them.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, cast

from ._change import Change
from ._pgdialect import translate
from ._tx import Params, Tx

__all__ = ["Later", "NeedsSnapshot", "PgRow", "PgTx", "Unexpected", "row_factory"]


class PgRow(tuple[Any, ...]):
    """A row by position or by column name (``row["status"]``)."""

    __slots__ = ()
    _index: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def row_factory(cursor: Any) -> Callable[[Sequence[Any]], PgRow]:
    """psycopg's row factory for ``PgRow`` (one row class per set of column names)."""
    result = cursor.pgresult
    fields = result.nfields if result is not None else 0
    return _row_class(tuple(result.fname(i) for i in range(fields)) if fields else ())


@functools.lru_cache(maxsize=256)
def _row_class(names: tuple[bytes, ...]) -> type[PgRow]:
    """A ``PgRow`` subclass that knows these column names; calling it makes a row."""
    index = {name.decode(): i for i, name in enumerate(names)}
    return type("PgRow", (PgRow,), {"__slots__": (), "_index": index})


class NeedsSnapshot(BaseException):
    """A read run as one statement outside a transaction asked for a second: run it
    again in a snapshot (a BaseException: the read's own ``except Exception`` lets it
    through)."""


class Unexpected(Exception):
    """A statement that ``apply`` took for granted changed no row (the batch runs again,
    each answer awaited)."""


class Later:
    """The ``execute_later`` statements of one batch, and the tables they write; the run
    of ``apply`` statements held back; and the ``apply(..., then=...)`` statements whose
    rows the batch has yet to read.

    A run of assumed ``apply`` statements of one text is held, then sent as one
    ``executemany`` (far less Python per statement than one ``execute`` each) before
    any other statement of the batch reaches the server: the order of statements there
    stays that of the calls."""

    __slots__ = ("awaiting", "held", "held_params", "held_thens", "statements", "tables")

    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple[Any, ...]]] = []
        self.tables: set[str] = set()
        #: Per cursor, the ``then`` of each of its statements, in order.
        self.awaiting: list[tuple[Any, list[Callable[[list[sqlite3.Row]], None]]]] = []
        #: The text of the run held back (None: no run), its parameter sets, and their
        #: ``then``s (None: a run without).
        self.held: str | None = None
        self.held_params: list[tuple[Any, ...]] = []
        self.held_thens: list[Callable[[list[sqlite3.Row]], None]] | None = None

    def hold(
        self,
        cursor: Any,
        sql: str,
        params: tuple[Any, ...],
        then: Callable[[list[sqlite3.Row]], None] | None,
    ) -> None:
        """Add a statement to the run held back, sending the run first if it differs."""
        if self.held is not None and (
            sql != self.held or (then is None) != (self.held_thens is None)
        ):
            self.flush(cursor)
        if self.held is None:
            self.held = sql
            self.held_thens = None if then is None else []
        self.held_params.append(params)
        if then is not None:
            self.held_thens.append(then)  # type: ignore[union-attr]

    def flush(self, cursor: Any) -> None:
        """Send the run held back, if any: a run with ``then``s on a cursor of its own,
        its rows read at the batch's end (``resume``)."""
        sql = self.held
        if sql is None:
            return
        params, thens = self.held_params, self.held_thens
        self.held, self.held_params, self.held_thens = None, [], None
        if thens is not None:
            cursor = cursor.connection.cursor()
            self.awaiting.append((cursor, thens))
        if len(params) == 1:
            cursor.execute(translate(sql), params[0])
        else:
            cursor.executemany(translate(sql), params, returning=thens is not None)

    def resume(self, pipe: Any, cursor: Any) -> None:
        """Send the run held back, read the awaited statements' rows (one round trip)
        and run their ``then``: ``Unexpected`` if one changed no row."""
        self.flush(cursor)
        while self.awaiting:
            pipe.sync()
            awaiting, self.awaiting = self.awaiting, []
            for results, thens in awaiting:
                for i, then in enumerate(thens):
                    if i:
                        results.nextset()
                    rows = results.fetchall()
                    if not rows:
                        raise Unexpected
                    then(rows)
            self.flush(cursor)

    def add(self, sql: str, params: tuple[Any, ...]) -> None:
        self.statements.append((sql, params))
        self.tables.add(_table(sql))

    def send_before(self, cursor: Any, sql: str) -> None:
        """Send the waiting statements now if ``sql`` names a table one of them writes."""
        if self.statements:
            for table in self.tables:  # (a loop: no generator per statement)
                if _names(sql, table):
                    self.send(cursor)
                    return

    def send(self, cursor: Any) -> None:
        """Run the waiting statements in order: one pipelined ``executemany`` per run of
        equal statements (after the run held back)."""
        self.flush(cursor)
        statements = self.statements
        start = 0
        while start < len(statements):
            sql = statements[start][0]
            end = start + 1
            while end < len(statements) and statements[end][0] == sql:
                end += 1
            cursor.executemany(translate(sql), [params for _, params in statements[start:end]])
            start = end
        self.discard()

    def discard(self) -> None:
        self.statements.clear()
        self.tables.clear()


class PgTx(Tx):
    """A ``Tx`` over one psycopg (sync) connection, run in the database's thread.

    ``execute_later`` statements wait in ``later`` (the units of a batch share one)
    until the batch sends them before its commit, or until a statement names a table
    they write."""

    __slots__ = ("_pg", "assumed", "cursor", "database", "later", "logged", "lone", "pipe")

    def __init__(
        self,
        pg: Any,
        where: str,
        on_change: Callable[[Change], None] | None = None,
        later: Later | None = None,
        cursor: Any = None,
        pipe: Any = None,
    ) -> None:
        super().__init__(cast(sqlite3.Connection, None), on_change)
        self._pg = pg
        self.cursor = pg.cursor() if cursor is None else cursor
        self.database = where
        self.later = Later() if later is None else later
        #: The connection's pipeline, if one is open: a row count needs a sync.
        self.pipe = pipe
        #: For a read outside a transaction: None (in one), else whether its one
        #: statement ran (a second raises ``NeedsSnapshot``).
        self.lone: bool | None = None
        #: The changes logged (the commit then sends a NOTIFY that lists them).
        self.logged: list[Change] = []
        #: Whether ``apply`` took an answer for granted (see ``PgDatabase``); None: it
        #: may not (it waits for each answer).
        self.assumed: bool | None = None

    @property
    def pg(self) -> Any:
        """The psycopg connection, for what the ``Tx`` surface lacks (a read using it
        runs in a snapshot)."""
        if self.lone is not None:
            raise NeedsSnapshot
        self.later.flush(self.cursor)
        return self._pg

    def _run(self, sql: str, params: Params) -> Any:
        if self.lone is not None:
            if self.lone:
                raise NeedsSnapshot
            self.lone = True
        later, cursor = self.later, self.cursor
        if later.held is not None:
            later.flush(cursor)
        later.send_before(cursor, sql)
        cursor.execute(translate(sql), tuple(params))
        return cursor

    def execute(self, sql: str, params: Params = ()) -> int:
        cursor = self._run(sql, params)
        if self.pipe is not None:
            self.pipe.sync()
        return int(cursor.rowcount)

    def apply(
        self,
        sql: str,
        params: Params = (),
        then: Callable[[list[sqlite3.Row]], None] | None = None,
    ) -> bool:
        if self.assumed is None or self.pipe is None:
            return self._apply_now(sql, params, then)
        # Sent without waiting for the answer, taken as True. A statement that changed no
        # row divides by zero, or (with ``then``) returns no row to the batch's end:
        # either fails the batch, which runs again, each answer awaited. Held back in a
        # run of equal statements, sent before any other statement of the batch.
        later = self.later
        later.send_before(self.cursor, sql)
        later.hold(self.cursor, _expecting_a_row(sql) if then is None else sql, tuple(params), then)
        self.assumed = True
        return True

    def execute_later(self, sql: str, params: Params = ()) -> None:
        self.later.add(sql, tuple(params))

    def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        return cast(sqlite3.Row | None, self._run(sql, params).fetchone())

    def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return cast(list[sqlite3.Row], self._run(sql, params).fetchall())

    def changed(self, change: Change) -> None:
        self.logged.append(change)
        super().changed(change)


@functools.lru_cache(maxsize=64)
def _expecting_a_row(sql: str) -> str:
    """``sql`` (no RETURNING of its own) made to fail if it changes no row."""
    return f"WITH changed AS ({sql} RETURNING 1) SELECT 1 / count(*) FROM changed"


@functools.lru_cache(maxsize=1024)
def _names(sql: str, table: str) -> bool:
    """Whether ``sql`` contains ``table`` (asked for each statement of a batch, of the
    same few texts: remembered)."""
    return table in sql


@functools.lru_cache(maxsize=64)
def _table(sql: str) -> str:
    """The table an ``INSERT INTO t ...`` statement writes (else the whole text, which
    no other statement contains)."""
    words = sql.replace("(", " (").split()
    return words[2] if len(words) > 2 and words[0].upper() == "INSERT" else sql

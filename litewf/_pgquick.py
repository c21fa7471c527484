"""A lone read of one statement, run on the event loop: no hop to a worker thread.

Most reads are one statement (an event's value, a workflow's status). Through the read
batches (``_pgdb``), each crosses to the reader's thread and back: two wake-ups of a
sleeping thread, often more than the round trip itself. Here the read's function runs
on the event loop, twice: first until it asks its first statement (``_Asked`` unwinds
it: a read changes nothing), which goes to the server on an async connection of its
own; then again, that statement answered. A function that asks a second statement (or
anything but rows) raises ``NeedsSnapshot``: it then runs in the read batches, in a
snapshot. One quick read runs at a time; while it does, the others go to the batches,
where many share one snapshot.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from typing import Any, cast

import anyio

from ._exceptions import DatabaseError
from ._pgconn import adapt, connect_async, import_psycopg
from ._pgdialect import translate
from ._pgtx import NeedsSnapshot
from ._tx import Params, Tx

__all__ = ["BUSY", "SNAPSHOT", "QuickReads"]

#: What ``QuickReads.run`` returns when the read must go to the batches instead: the
#: connection was busy, or the read needs more than one statement (a snapshot).
BUSY: Any = object()
SNAPSHOT: Any = object()


class _Asked(BaseException):
    """The read's first statement, asked of ``QuickTx`` before it has an answer (a
    BaseException: the read's own ``except Exception`` lets it through)."""

    def __init__(self, sql: str, params: tuple[Any, ...], one: bool) -> None:
        super().__init__(sql)
        self.question = (sql, params, one)


class QuickTx(Tx):
    """A ``Tx`` that answers one statement: ``answer`` (the question and its rows), else
    it asks (``_Asked``). Anything more raises ``NeedsSnapshot``."""

    __slots__ = ("answer", "asked", "database")

    def __init__(self, where: str, answer: tuple[tuple[str, Params, bool], Any] | None) -> None:
        super().__init__(cast(sqlite3.Connection, None))
        self.database = where
        self.answer = answer
        self.asked = False

    def _rows(self, sql: str, params: Params, one: bool) -> Any:
        if self.asked:
            raise NeedsSnapshot
        self.asked = True
        question = (sql, tuple(params), one)
        if self.answer is None:
            raise _Asked(*question)
        asked, rows = self.answer
        if asked != question:  # (a read that asks otherwise the second time)
            raise NeedsSnapshot
        return rows

    def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        return cast(sqlite3.Row | None, self._rows(sql, params, True))

    def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return cast(list[sqlite3.Row], self._rows(sql, params, False))

    def execute(self, sql: str, params: Params = ()) -> int:
        raise NeedsSnapshot

    def apply(self, sql: str, params: Params = (), then: Any = None) -> bool:
        raise NeedsSnapshot

    def execute_later(self, sql: str, params: Params = ()) -> None:
        raise NeedsSnapshot

    @property
    def pg(self) -> Any:
        raise NeedsSnapshot


class QuickReads:
    """One async connection for lone reads (``run``), (re)connected on demand; a call
    that finds it broken drops it and fails with ``DatabaseError``, as ``Link`` does."""

    def __init__(self, url: str, schema: str, where: str) -> None:
        self._url, self._schema, self._where = url, schema, where
        self._conn: Any = None
        self.busy = False

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """``fn(tx, *args)``'s result, or ``BUSY`` or ``SNAPSHOT``: run it in the batches
        (this connection is busy; ``fn`` needs more than one statement)."""
        if self.busy:
            return BUSY
        try:
            return fn(QuickTx(self._where, None), *args)  # (a read that asks nothing)
        except _Asked as asked:
            question = asked.question
        except NeedsSnapshot:
            return SNAPSHOT
        self.busy = True
        try:
            with anyio.CancelScope(shield=True):  # (never leave the connection mid-query)
                rows = await self._query(*question)
        finally:
            self.busy = False
        try:
            return fn(QuickTx(self._where, (question, rows)), *args)
        except NeedsSnapshot:
            return SNAPSHOT

    async def _query(self, sql: str, params: tuple[Any, ...], one: bool) -> Any:
        psycopg = import_psycopg()
        conn = self._conn
        try:
            if conn is None or conn.closed:
                conn = self._conn = await connect_async(self._url, self._schema, "cannot connect")
                await conn.execute(adapt(conn, self._schema))
            cursor = await conn.execute(translate(sql), params)
            return await (cursor.fetchone() if one else cursor.fetchall())
        except psycopg.Error as exc:
            if conn is not None and (conn.closed or conn.broken):
                self.abandon()
            raise DatabaseError(self._where, str(exc).strip() or type(exc).__name__) from exc

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await conn.close()

    def abandon(self) -> None:
        """Close the connection without awaiting (libpq's own close)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.pgconn.finish()

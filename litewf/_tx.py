"""A unit of work's view of its transaction: what the SQL functions of litewf are written
against.

``_store``, ``_journal`` and ``_upkeep`` are plain functions over a ``Tx``; the backend runs
them in its database thread, in a read transaction or a (group-committed) write. A
second backend gives its SQL functions a ``Tx`` with this same surface.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio

from ._change import Change

__all__ = ["GroupCommit", "Params", "Tx", "Unit", "run_callbacks"]

logger = logging.getLogger("litewf")

Params = Iterable[Any]


class Tx:
    """Runs statements in the database thread; in ``write`` it is an open transaction."""

    __slots__ = ("_after_commit", "_on_change", "conn")

    #: What to call the database in messages when a row is bad (None: ask SQLite).
    database: str | None = None

    def __init__(
        self, conn: sqlite3.Connection, on_change: Callable[[Change], None] | None = None
    ) -> None:
        self.conn = conn
        self._after_commit: list[Callable[[], None]] = []
        self._on_change = on_change

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement; return the number of rows it changed."""
        return self.conn.execute(sql, tuple(params)).rowcount

    def apply(
        self,
        sql: str,
        params: Params = (),
        then: Callable[[list[sqlite3.Row]], None] | None = None,
    ) -> bool:
        """Run an INSERT, UPDATE or DELETE that should change a row; return whether it did.

        On PostgreSQL a batch may go on without waiting for the answer, taking it as
        True: if no row changed, the batch fails and runs again, answered exactly (so use
        it where "no row" is the rare case). With ``then``, ``sql`` ends in RETURNING and
        ``then(rows)`` runs with its rows if there are any, in this transaction: at once
        here, at the batch's end there (so ``then`` may only write, and log changes)."""
        return self._apply_now(sql, params, then)

    def _apply_now(
        self, sql: str, params: Params, then: Callable[[list[sqlite3.Row]], None] | None
    ) -> bool:
        """``apply``, its answer awaited."""
        if then is None:
            return self.execute(sql, params) > 0
        rows = self.fetchall(sql, params)
        if rows:
            then(rows)
        return bool(rows)

    def execute_later(self, sql: str, params: Params = ()) -> None:
        """Run a statement whose result nobody reads, at the latest before the transaction
        commits (PostgreSQL sends such statements of a whole batch together; SQLite runs
        it now). A later statement of the transaction on the same table sees it."""
        self.conn.execute(sql, tuple(params))

    def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(sql, tuple(params)).fetchone()
        return row

    def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, tuple(params)).fetchall()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` in the event loop once the write has committed (never if not)."""
        self._after_commit.append(callback)

    def changed(self, change: Change) -> None:
        """Hand ``change`` to the database's ``on_change`` once the write has committed."""
        on_change = self._on_change
        if on_change is not None:
            self._after_commit.append(lambda: on_change(change))


class Unit:
    """One caller's queued write in a backend's group commit (``_db``, ``_pgdb``): its
    function, and in time its result or error.

    ``state`` is "queued" (may be withdrawn), "running" (in a batch in the database
    thread: wait for ``run_over``) or "done" (``result`` or ``error`` is final).
    """

    __slots__ = ("args", "callbacks", "error", "fn", "result", "run_over", "state")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.state = "queued"
        #: Set by the batch that runs the unit (shared by the batch's units).
        self.run_over: anyio.Event | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.callbacks: list[Callable[[], None]] = []


class GroupCommit:
    """The queue of a backend's group commit (``_db``, ``_pgdb``): a unit waits in
    ``_queue`` until a caller leads a flush that runs it with the others queued meanwhile.

    One caller at a time leads (``_leading`` is set once its flush is over); the others
    wait for that event, all woken at once, rather than taking a lock in turn: with a
    thousand writers, a lock would hand itself on a thousand times, one event-loop turn
    each, after every batch."""

    def __init__(self) -> None:
        self._leading: anyio.Event | None = None
        self._queue: list[Unit] = []

    @property
    def running(self) -> bool:
        """Whether a batch is under way."""
        return self._leading is not None

    @property
    def queued(self) -> int:
        """How many units wait for the next batch."""
        return len(self._queue)

    def _take(self) -> tuple[list[Unit], anyio.Event]:
        """The queued units, now the running batch, and the event set once it is over."""
        batch, self._queue = self._queue, []
        run_over = anyio.Event()
        for unit in batch:
            unit.state, unit.run_over = "running", run_over
        return batch, run_over

    async def _submit(self, unit: Unit, flush: Callable[[], Awaitable[None]]) -> Any:
        """Queue ``unit``, see it run (running ``flush()`` if no batch took it first),
        and return its result or raise its error.

        A caller cancelled meanwhile either withdraws its unit before a batch took it
        (nothing written) or waits for the batch holding it to end: the unit ran fully
        or not at all, never half."""
        self._queue.append(unit)
        try:
            while unit.state != "done":
                leading = self._leading
                if leading is not None:
                    await leading.wait()  # then ours is done, or next (whoever leads)
                    continue
                leading = self._leading = anyio.Event()
                try:
                    await flush()
                finally:
                    self._leading = None
                    leading.set()
        except BaseException:
            while unit.state == "running":  # its batch is in the thread: learn how it ended
                assert unit.run_over is not None  # set with "running"
                with anyio.CancelScope(shield=True):
                    await unit.run_over.wait()
            if unit.state == "queued":  # never ran: withdraw it, nothing was written
                with contextlib.suppress(ValueError):
                    self._queue.remove(unit)
            raise
        assert unit.state == "done"
        if unit.error is not None:
            raise unit.error
        return unit.result


def run_callbacks(unit: Unit) -> None:
    """Run a committed unit's after-commit callbacks, in the batch's flush rather than in
    its caller: a caller cancelled meanwhile must not skip the wake-ups its committed
    write owes to others. One that fails is logged; the others still run."""
    for callback in unit.callbacks:
        try:
            callback()
        except Exception:
            logger.exception("litewf: an after-commit callback failed")

"""A PostgreSQL database opened for litewf: group-committed writes and batched reads.

The SQL modules are plain synchronous functions over a ``Tx``, so, as on SQLite, each
connection (``_pgconn.Link``) is a psycopg (sync) connection driven from one worker
thread at a time: a batch costs one hop from the event loop. Writes are group-committed:
the units queued meanwhile run in one pipelined transaction (each in a savepoint only if
one of them fails), and one COMMIT makes them durable. Every write transaction first
takes a transaction-level advisory lock of its schema: litewf's writes are serialized as
they are on SQLite (its read-then-write decisions stay race-free across hosts, and
change numbers commit in order, so a follower never skips one). A transaction that
logged changes sends a NOTIFY that lists them, delivered to listeners when it commits.
Reads have connections of their own: a lone read of one statement runs on the event
loop (``_pgquick``); the others go to the reader's thread, where the reads queued
meanwhile share one snapshot.

A connection the server dropped (restart, ``pg_terminate_backend``, a network cut) is
replaced on the next call; the call that found it broken fails with ``DatabaseError``.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio
import anyio.lowlevel

from . import _pgnotify as pgnotify
from ._change import Change
from ._exceptions import DatabaseError, LitewfError
from ._pgconn import Link, advisory_key, import_psycopg
from ._pgdialect import redact, split_url
from ._pgquick import BUSY, SNAPSHOT, QuickReads
from ._pgschema import check_identity, identity, migrate
from ._pgtx import Later, NeedsSnapshot, PgTx, Unexpected
from ._tx import GroupCommit, Unit, run_callbacks
from ._types import Durability

__all__ = ["PgDatabase"]

P = ParamSpec("P")
T = TypeVar("T")


class _Batches(GroupCommit):
    """Calls queued while a batch runs go together in the next one: one thread hop and
    one transaction on ``link`` (``run(connection, batch)``), with ``GroupCommit``'s
    cancellation rules: a queued call may be withdrawn, a running one is waited out."""

    def __init__(self, link: Link, run: Callable[[Any, list[Unit]], None]) -> None:
        super().__init__()
        self._link = link
        self._run = run

    async def submit(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        return await self._submit(Unit(fn, args), self._flush)

    async def _flush(self) -> None:
        await anyio.lowlevel.checkpoint()  # let woken tasks join this batch
        batch, run_over = self._take()
        try:
            with anyio.CancelScope(shield=True):
                try:
                    await self._link.call(self._run, batch)
                except BaseException as exc:
                    for unit in batch:
                        unit.error, unit.callbacks = exc, []
                    if not isinstance(exc, Exception):
                        raise
        finally:
            for unit in batch:
                unit.state = "done"
            run_over.set()
        for unit in batch:
            run_callbacks(unit)


class PgDatabase:
    """One litewf schema in one PostgreSQL database; ``create=False`` never creates or
    migrates it (a Client's).

    Three connections: one for writes, one for reads in a thread, one for lone reads on
    the event loop, so that reads never wait behind a batch of writes (a batch is one
    thread hop; a lone read of one statement none)."""

    def __init__(self, url: str, *, durability: Durability, create: bool) -> None:
        self.url, self.schema = split_url(url)
        self.path = redact(url)
        self.durability = durability
        self._create = create
        self._pid = os.getpid()
        self.write_key = advisory_key(self.schema, "write")
        self.channel = f"litewf_{self.schema}"[:63]
        #: The NOTIFY payload of this connection's commits: its own listener skips them
        #: (their changes reached ``on_change`` at commit already).
        self.token = os.urandom(8).hex()
        self.on_change: Callable[[Change], None] | None = None
        self._writer = Link(self.url, self.schema, durability, self.path)
        self._reader = Link(self.url, self.schema, durability, self.path)
        self._writes = _Batches(self._writer, self._run_writes)
        self._reads = _Batches(self._reader, self._run_reads)
        self._quick = QuickReads(self.url, self.schema, self.path)

    async def open(self) -> None:
        self._pid = os.getpid()
        try:
            await self._writer.call(self._setup)
        except BaseException:
            self.abandon()
            raise

    def _setup(self, conn: Any) -> None:
        if check_identity(self.path, self.schema, identity(conn, self.schema), self._create):
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.write_key,))
                migrate(conn, self.schema)
            check_identity(self.path, self.schema, identity(conn, self.schema), False)

    def check_process(self) -> None:
        if self._pid != os.getpid():
            raise LitewfError(
                f"{self.path}: this Runtime or Client was opened in process {self._pid} and "
                f"cannot be used in another process (a fork() child); create a new one here"
            )

    @property
    def writing(self) -> bool:
        """Whether a group commit is under way (for tests of the batching)."""
        return self._writes.running

    @property
    def queued(self) -> int:
        """How many writes wait for the next group commit (for tests of the batching)."""
        return self._writes.queued

    @property
    def reads_queued(self) -> int:
        """How many reads wait for the next shared snapshot (for tests of the batching)."""
        return self._reads.queued

    # -- writes ------------------------------------------------------------------------

    async def write(
        self, fn: Callable[Concatenate[PgTx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(tx, *args)`` in a write transaction; return once it has committed
        (group commit, with ``_db.Database.write``'s cancellation rules).

        ``fn`` may run twice: a batch first runs its units without savepoints and runs
        them again, each in its own, if one fails; so ``fn`` changes nothing but the
        database."""
        self.check_process()
        call = functools.partial(fn, **kwargs) if kwargs else fn
        return await self._writes.submit(call, args)  # type: ignore[no-any-return]

    def _run_writes(self, conn: Any, batch: list[Unit]) -> None:
        """The batch in one transaction, under the schema's write lock, with one NOTIFY
        if a unit logged a change: together first, taking ``apply``'s answers for
        granted; together again, awaiting them, if the server refused that; unit by
        unit if a unit fails."""
        outcome = self._try_together(conn, batch, assume=True)
        if outcome == "assumed":
            outcome = self._try_together(conn, batch, assume=False)
        if outcome != "committed":
            self._run_apart(conn, batch)

    def _try_together(self, conn: Any, batch: list[Unit], *, assume: bool) -> str:
        """Run every unit in one pipelined transaction, no savepoints: "committed", or
        (all rolled back) "assumed" if the server erred after an answer was taken for
        granted, else "failed".

        Pipelined: a round trip only where a unit needs a result, and one for BEGIN, the
        write lock and the first of them; one for the deferred statements, the NOTIFY
        and the COMMIT."""
        psycopg = import_psycopg()
        cursor = self._writer.cursor
        done: list[tuple[Unit, Any, PgTx]] = []
        txs: list[PgTx] = []
        try:
            with conn.pipeline() as pipe:
                self._begin(cursor)
                logged: list[Change] = []
                later = Later()
                for unit in batch:
                    tx = PgTx(conn, self.path, self.on_change, later, cursor, pipe)
                    if assume:
                        tx.assumed = False
                    txs.append(tx)
                    done.append((unit, unit.fn(tx, *unit.args), tx))
                    logged += tx.logged
                later.resume(pipe, cursor)
                later.send(cursor)
                self._commit(cursor, logged)
            _check_committed(cursor)
        except BaseException as exc:
            # A unit's error (even an unwinding one: it is that unit's alone) or the
            # server's: roll back, and run the units again.
            if conn.closed or conn.broken:
                raise
            _rollback_if_open(conn, psycopg)
            # (The server's refusal may surface in the unit that sent the statement.)
            refused = isinstance(exc, (psycopg.Error, Unexpected))
            return "assumed" if refused and any(tx.assumed for tx in txs) else "failed"
        for unit, result, tx in done:
            unit.result, unit.callbacks = result, tx._after_commit
        return "committed"

    def _run_apart(self, conn: Any, batch: list[Unit]) -> None:
        """Each unit in a savepoint (none for a lone unit): one failing unit fails alone."""
        psycopg = import_psycopg()
        cursor = self._writer.cursor
        single = len(batch) == 1
        try:
            self._begin(cursor)
            logged: list[Change] = []
            for unit in batch:
                if not single:
                    conn.execute("SAVEPOINT unit")
                tx = PgTx(conn, self.path, self.on_change, cursor=cursor)
                try:
                    unit.result = unit.fn(tx, *unit.args)
                    tx.later.send(cursor)
                except BaseException as exc:
                    if isinstance(exc, psycopg.Error):
                        if conn.closed or conn.broken:
                            raise
                        exc = DatabaseError(self.path, str(exc).strip())
                    unit.error = exc
                    if single:
                        conn.execute("ROLLBACK")
                        return
                    conn.execute("ROLLBACK TO SAVEPOINT unit; RELEASE SAVEPOINT unit")
                else:
                    if not single:
                        conn.execute("RELEASE SAVEPOINT unit")
                    unit.callbacks = tx._after_commit
                    logged += tx.logged
            self._commit(cursor, logged)
            _check_committed(cursor)
        except BaseException:
            _rollback_if_open(conn, psycopg)
            raise

    def _begin(self, cursor: Any) -> None:
        """Open a write transaction under the schema's write lock."""
        cursor.execute("BEGIN")
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self.write_key,))

    def _commit(self, cursor: Any, logged: list[Change]) -> None:
        """Commit, with a NOTIFY that lists the changes to the other listeners if any was
        logged (``_pgnotify``)."""
        if logged:
            payload = pgnotify.encode(self.token, logged)
            cursor.execute("SELECT pg_notify(%s, %s)", (self.channel, payload))
        cursor.execute("COMMIT")

    # -- reads -------------------------------------------------------------------------

    async def read(
        self, fn: Callable[Concatenate[PgTx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(tx, *args)`` in a read-only snapshot. Reads asked for meanwhile share
        one: it is taken after each of them was asked for, so each sees every write that
        committed before it was asked."""
        self.check_process()
        call: Callable[..., Any] = functools.partial(fn, **kwargs) if kwargs else fn
        if not (self._reads.queued or self._reads.running):  # a lone read
            result = await self._quick.run(call, args)
            if result is SNAPSHOT:
                call = _InSnapshot(call)
            elif result is not BUSY:
                return result  # type: ignore[no-any-return]
        return await self._reads.submit(call, args)  # type: ignore[no-any-return]

    def _run_reads(self, conn: Any, batch: list[Unit]) -> None:
        """One pipelined REPEATABLE READ snapshot for the batch (BEGIN travels with the
        first query); a database error ends it, the units after the failed one get a
        fresh snapshot."""
        psycopg = import_psycopg()
        cursor = self._reader.cursor
        alone = len(batch) == 1 and not isinstance(batch[0].fn, _InSnapshot)
        if alone and self._read_alone(conn, cursor, batch[0]):
            return
        pending = batch
        while pending:
            failed = 0
            try:
                with conn.pipeline() as pipe:
                    cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    for failed, unit in enumerate(pending):  # noqa: B007 - kept on error
                        tx = PgTx(conn, self.path, cursor=cursor, pipe=pipe)
                        try:
                            unit.result = unit.fn(tx, *unit.args)
                        except psycopg.Error:
                            raise
                        except BaseException as exc:  # noqa: BLE001 - the caller's to raise
                            unit.error = exc
                    failed = len(pending)  # past the units: their reads stand
                    cursor.execute("COMMIT")
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    raise
                _rollback_if_open(conn, psycopg)
                if failed < len(pending):
                    pending[failed].error = DatabaseError(self.path, str(exc).strip())
                pending = pending[failed + 1 :]
            else:
                pending = []

    def _read_alone(self, conn: Any, cursor: Any, unit: Unit) -> bool:
        """Run a lone read as one statement outside a transaction (a statement is its
        own snapshot: one round trip instead of BEGIN, query, COMMIT); False, with
        nothing kept, if it needs more than one statement."""
        psycopg = import_psycopg()
        tx = PgTx(conn, self.path, cursor=cursor)
        tx.lone = False
        try:
            unit.result = unit.fn(tx, *unit.args)
        except NeedsSnapshot:
            unit.result = None
            return False
        except psycopg.Error as exc:
            if conn.closed or conn.broken:
                raise
            unit.error = DatabaseError(self.path, str(exc).strip())
        except BaseException as exc:  # noqa: BLE001 - the caller's to raise
            unit.error = exc
        return True

    async def close(self) -> None:
        self.check_process()
        await self._writer.close()
        await self._reader.close()
        await self._quick.close()

    def abandon(self) -> None:
        self._writer.abandon()
        self._reader.abandon()
        self._quick.abandon()


class _InSnapshot:
    """A read known to need more than one statement: run in a snapshot, even alone."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, tx: PgTx, *args: Any) -> Any:
        return self.fn(tx, *args)


def _check_committed(cursor: Any) -> None:
    """Raise unless the COMMIT committed: after an error that a unit caught, PostgreSQL
    answers it by rolling back, without an error of its own."""
    if cursor.statusmessage != "COMMIT":
        psycopg = import_psycopg()
        raise psycopg.OperationalError(
            f"the write transaction did not commit ({cursor.statusmessage})"
        )


def _rollback_if_open(conn: Any, psycopg: Any) -> None:
    """Roll back what a failed attempt left open, and make psycopg forget the statements
    it prepared meanwhile (as its ``rollback()`` does): in a pipeline that an error
    aborted, a statement's preparation never reached the server, and using it later
    would fail. (A transaction already over is opened to be rolled back.)"""
    if not conn.closed and not conn.broken:
        with contextlib.suppress(psycopg.Error):
            if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                conn.execute("BEGIN")
            conn.rollback()

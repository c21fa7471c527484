"""The database connection: opening, pragmas, and group-committed writes.

One aiosqlite connection per runtime (or client) serves reads and writes. Work runs as
plain functions in aiosqlite's thread, so a whole transaction costs one hop from the
event loop. Writes are group-committed: each caller queues a unit of work; whoever holds
the write lock runs every queued unit in one ``BEGIN IMMEDIATE`` transaction, each unit in
its own savepoint (one failing unit rolls back alone), and one COMMIT (one fsync) makes
them all durable. Callers return only after the commit that holds their write.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar, cast
from urllib.parse import quote

import aiosqlite
import anyio
import anyio.lowlevel

from ._change import Change
from ._dbfile import (
    BUSY_GIVE_UP_S,
    SideFiles,
    absolute_path,
    busy_error,
    check_identity,
    error_code,
    precheck,
    translate,
)
from ._exceptions import DatabaseError, LitewfError
from ._schema import SCHEMA_VERSION, migrate
from ._tx import GroupCommit, Params, Tx, Unit, run_callbacks
from ._types import Durability

__all__ = ["Database"]

#: How long SQLite itself waits on a busy file (ms), for reads and set-up only. Taking the
#: write lock and checkpointing never wait inside SQLite (busy timeout 0): a wait there
#: would hold the connection's only thread, and every read behind it. ``Database._flush``
#: retries a busy BEGIN from the event loop instead, up to ``BUSY_GIVE_UP_S``.
_BUSY_TIMEOUT_MS = 1_000
#: The runtime truncates the WAL (a checkpoint) once it is larger than this.
_WAL_TRUNCATE_AT = 4 * 1024 * 1024
#: After a checkpoint, the WAL file is truncated to this size so it never stays large.
_JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024

P = ParamSpec("P")
T = TypeVar("T")


class Database(GroupCommit):
    """One SQLite file, opened for litewf; ``create=False`` never creates or migrates."""

    def __init__(self, path: str | os.PathLike[str], *, durability: Durability, create: bool):
        self.path = os.fspath(path)
        self._durability = durability
        self._create = create
        self._conn: aiosqlite.Connection | None = None
        super().__init__()
        self._pid = os.getpid()
        self.side_files = SideFiles(self.path)
        #: Called in the event loop with each change a write of this connection committed.
        self.on_change: Callable[[Change], None] | None = None

    # -- opening -----------------------------------------------------------------------

    async def open(self) -> None:
        """Open, check that the file is ours (without changing it), then set up and migrate."""
        precheck(self.path, self.side_files, self._create)
        mode = "rwc" if self._create else "rw"
        uri = f"file:{quote(absolute_path(self.path))}?mode={mode}"
        connection = aiosqlite.connect(uri, uri=True, isolation_level=None)
        # aiosqlite's worker thread is not a daemon: a runtime that is never closed would
        # hang interpreter exit. A daemon thread lets the process end; SQLite's journal
        # makes an interrupted transaction roll back on next open.
        thread = getattr(connection, "_thread", None)
        if thread is not None:
            thread.daemon = True
        try:
            conn = await connection
        except sqlite3.Error as exc:
            raise translate(self.path, exc) from exc
        conn.row_factory = sqlite3.Row
        self._conn = conn
        self._pid = os.getpid()
        try:
            await self._setup(conn)
            self.side_files.remember()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.close()
            self._conn = None
            raise

    async def _setup(self, conn: aiosqlite.Connection) -> None:
        """Check the file and set the connection up; retried while another process holds
        the file (several processes opening a new file at once take turns setting it up;
        SQLite's own busy wait may be too short on a loaded machine)."""
        give_up = time.monotonic() + BUSY_GIVE_UP_S
        delay = 0.01
        while True:
            try:
                await self._setup_once(conn)
                return
            except sqlite3.Error as exc:
                if error_code(exc) != sqlite3.SQLITE_BUSY or time.monotonic() > give_up:
                    raise translate(self.path, exc) from exc
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def _setup_once(self, conn: aiosqlite.Connection) -> None:
        # Wait out other processes' write locks inside SQLite rather than failing.
        await conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        app_id, version, tables = await self._identity(conn)
        check_identity(self.path, app_id, version, tables, self._create)
        if self._create:
            # WAL lets readers in other processes work while one process writes.
            await conn.execute("PRAGMA journal_mode = WAL")
        else:
            await self._require_wal(conn)
        # FULL syncs the WAL on every commit: a returned call survives power loss.
        # NORMAL syncs only at checkpoints: survives a process crash, not power loss.
        sync = "FULL" if self._durability == "full" else "NORMAL"
        await conn.execute(f"PRAGMA synchronous = {sync}")
        await conn.execute(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT}")
        if self._create and version < SCHEMA_VERSION:
            await self.write(lambda tx: migrate(tx.conn))

    @staticmethod
    async def _identity(conn: aiosqlite.Connection) -> tuple[int, int, int]:
        # One statement reads one snapshot: a peer's migration that commits meanwhile is
        # seen whole or not at all (three reads could see its tables but not its app ID).
        async with conn.execute(
            "SELECT (SELECT application_id FROM pragma_application_id), "
            "(SELECT user_version FROM pragma_user_version), "
            "(SELECT count(*) FROM sqlite_master)"
        ) as cur:
            row = await cur.fetchone()
        app_id, version, tables = row if row is not None else (0, 0, 0)
        return int(app_id), int(version), int(tables)

    # -- writes and reads --------------------------------------------------------------

    async def _require_wal(self, conn: aiosqlite.Connection) -> None:
        async with conn.execute("PRAGMA journal_mode") as cur:
            row = await cur.fetchone()
        mode = str(row[0]).lower() if row is not None else "unknown"
        if mode != "wal":
            raise DatabaseError(
                self.path,
                f"is not in WAL mode (journal_mode is {mode!r}); litewf needs WAL to share "
                f"the file between processes. Launch a Runtime on it once to switch it back",
            )

    @property
    def conn(self) -> aiosqlite.Connection:
        """The connection; every read and write goes through here, so it checks first."""
        self.check_process()
        if self.side_files.lost is not None:
            raise DatabaseError(self.path, self.side_files.lost)
        if self._conn is None:
            raise DatabaseError(self.path, "is not open")
        return self._conn

    def check_process(self) -> None:
        """Raise ``LitewfError`` in any process but the one that opened the database: a
        fork() child has neither the connection's thread nor the parent's locks."""
        if self._pid != os.getpid():
            raise LitewfError(
                f"{self.path}: this Runtime or Client was opened in process {self._pid} and "
                f"cannot be used in another process (a fork() child); create a new one here"
            )

    @property
    def writing(self) -> bool:
        """Whether a group commit is under way (for tests of the batching)."""
        return self.running

    async def trace(self, callback: Callable[[str], object] | None) -> None:
        """Call ``callback(sql)`` with every statement run from now on (None: stop)."""
        await self.conn.set_trace_callback(callback)  # type: ignore[arg-type]  # None: off

    def check_files(self) -> None:
        """Raise ``DatabaseError`` (and stay lost) if the -wal or -shm file seen at open
        was deleted or replaced: commits would go where no other connection looks."""
        self.side_files.check()

    @property
    def lost(self) -> str | None:
        """Why the database can no longer be used (its -wal or -shm file was deleted)."""
        return self.side_files.lost

    async def write(
        self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(tx, *args)`` in a write transaction; return once it has committed.

        Concurrent writes share a transaction and its fsync (group commit). A cancelled
        caller either leaves before its unit was taken (nothing written) or waits for the
        batch holding it to finish: the write happened fully or not at all.
        """
        conn = self.conn
        unit = Unit(functools.partial(fn, **kwargs) if kwargs else fn, args)
        return await self._submit(unit, lambda: self._flush(conn))  # type: ignore[no-any-return]

    async def _flush(self, conn: aiosqlite.Connection) -> None:
        """Run every queued unit in one transaction, waiting out other processes' locks.

        One hop does BEGIN IMMEDIATE, the units and COMMIT. If another process holds the
        write lock (SQLite answers at once), nothing ran: the units go back to the queue
        and we retry after a (cancellable) pause, up to ``BUSY_GIVE_UP_S`` in all.
        """
        give_up = time.monotonic() + BUSY_GIVE_UP_S
        delay = 0.001
        while True:
            # Linger one turn of the event loop: tasks already woken (say, by the commit
            # that released us) queue their writes and share this transaction's fsync.
            await anyio.lowlevel.checkpoint()
            batch, run_over = self._take()
            try:
                with anyio.CancelScope(shield=True):
                    ran = await self._run_batch(conn, batch)
            finally:
                run_over.set()
            if ran:
                return
            for unit in batch:
                unit.state = "queued"
            self._queue[:0] = batch
            if time.monotonic() > give_up:
                raise busy_error(self.path)
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _run_batch(self, conn: aiosqlite.Connection, batch: list[Unit]) -> bool:
        """One hop: BEGIN, every unit in a savepoint, COMMIT; False if the file was busy."""
        try:
            began = await _in_thread(conn, _run_units, batch, self.on_change)
        except sqlite3.Error as exc:
            error = translate(self.path, exc)
            for unit in batch:
                unit.error, unit.callbacks = error, []
        except BaseException as exc:
            for unit in batch:
                unit.error, unit.callbacks, unit.state = exc, [], "done"
            raise
        else:
            if not began:
                return False
        for unit in batch:
            if isinstance(unit.error, sqlite3.Error):
                unit.error = translate(self.path, unit.error)
            unit.state = "done"
            run_callbacks(unit)
        return True

    async def read(
        self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(tx, *args)`` in one short read transaction (one consistent snapshot)."""
        conn = self.conn
        call = functools.partial(fn, **kwargs) if kwargs else fn
        try:
            result: T = await _in_thread(conn, _run_read, call, args)
        except sqlite3.Error as exc:
            raise translate(self.path, exc) from exc
        return result

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await self.read(Tx.fetchall, sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        return await self.read(Tx.fetchone, sql, params)

    async def data_version(self) -> int:
        """``PRAGMA data_version``: changes when another connection commits to the file."""
        row = await self.fetchone("PRAGMA data_version")
        assert row is not None
        return int(row[0])

    async def checkpoint_if_large(self) -> None:
        """Copy the WAL into the database and truncate it once it has grown past
        ``_WAL_TRUNCATE_AT``: SQLite's own checkpoints reuse the file but never shrink it,
        so a long reader elsewhere would leave it large for good."""
        if self.side_files.wal_bytes() > _WAL_TRUNCATE_AT:
            try:
                await _in_thread(self.conn, _truncate_wal)
            except sqlite3.Error as exc:
                raise translate(self.path, exc) from exc

    async def close(self) -> None:
        self.check_process()  # else it would wait forever for a thread the fork did not copy
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await conn.close()

    def abandon(self) -> None:
        """Close without the event loop that opened it (that loop has ended): stop the
        connection's thread, which closes the SQLite connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.stop()

    # -- internals -----------------------------------------------------------------------


# The functions below run in aiosqlite's worker thread. aiosqlite has no public call for
# "run this function on the connection's thread", so ``Connection._execute`` is used: it is
# how aiosqlite runs every one of its own calls (present and unchanged from 0.17 to 0.22).
# One hop per transaction instead of one per statement is what makes group commit pay.


async def _in_thread(conn: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(sqlite3_connection, *args)`` in the connection's own thread."""
    execute = cast(Callable[..., Awaitable[T]], conn._execute)
    return await execute(fn, conn._conn, *args)


@contextlib.contextmanager
def _no_busy_wait(conn: sqlite3.Connection) -> Iterator[None]:
    """Make SQLite answer "busy" at once instead of waiting in this (the only) thread."""
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")


def _try_begin(conn: sqlite3.Connection) -> bool:
    """BEGIN IMMEDIATE; False at once if another process holds the write lock."""
    try:
        with _no_busy_wait(conn):
            conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if error_code(exc) == sqlite3.SQLITE_BUSY:
            return False
        raise
    return True


def _rollback_if_open(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _run_units(
    conn: sqlite3.Connection, batch: list[Unit], on_change: Callable[[Change], None] | None
) -> bool:
    """BEGIN IMMEDIATE, the units, COMMIT; errors kept per unit: the units run together
    first, then each in a savepoint of its own if one of them failed (so a unit may run
    twice, and changes nothing but the database).

    False (and nothing done) if another process holds the write lock.
    """
    if not _try_begin(conn):
        return False
    try:
        if not _run_together(conn, batch, on_change):
            _run_apart(conn, batch, on_change)
        conn.execute("COMMIT")
    except BaseException:
        _rollback_if_open(conn)
        raise
    return True


def _run_together(
    conn: sqlite3.Connection, batch: list[Unit], on_change: Callable[[Change], None] | None
) -> bool:
    """Every unit under one savepoint, none of their own (two statements a batch, not
    two a unit); False, all rolled back, if one raised."""
    conn.execute("SAVEPOINT batch")
    done: list[tuple[Unit, Any, Tx]] = []
    try:
        for unit in batch:
            tx = Tx(conn, on_change)
            done.append((unit, unit.fn(tx, *unit.args), tx))
    except BaseException:
        if not conn.in_transaction:
            raise  # SQLite rolled back everything (disk full, I/O error): all fail
        conn.execute("ROLLBACK TO batch")
        conn.execute("RELEASE batch")
        return False
    conn.execute("RELEASE batch")
    for unit, result, tx in done:
        unit.result, unit.callbacks = result, tx._after_commit
    return True


def _run_apart(
    conn: sqlite3.Connection, batch: list[Unit], on_change: Callable[[Change], None] | None
) -> None:
    """Each unit in a savepoint of its own: one that fails rolls back alone."""
    for unit in batch:
        conn.execute("SAVEPOINT unit")
        tx = Tx(conn, on_change)
        try:
            unit.result = unit.fn(tx, *unit.args)
        except BaseException as exc:
            unit.error = exc
            if not conn.in_transaction:
                raise  # SQLite rolled back everything (disk full, I/O error): all fail
            conn.execute("ROLLBACK TO unit")
            conn.execute("RELEASE unit")
        else:
            conn.execute("RELEASE unit")
            unit.callbacks = tx._after_commit


def _truncate_wal(conn: sqlite3.Connection) -> None:
    # TRUNCATE takes the write lock, then waits for readers through the busy handler:
    # with none it copies what it can and gives up at once (the next tick tries again).
    with _no_busy_wait(conn):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def _run_read(conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    conn.execute("BEGIN")
    try:
        return fn(Tx(conn), *args)
    finally:
        conn.execute("COMMIT")  # a read-only transaction: ends the snapshot

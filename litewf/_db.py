"""The database connection: opening safely, pragmas, and locked write transactions.

One aiosqlite connection per runtime (or client) serves reads and writes. aiosqlite
serializes statements but not transactions, so an ``anyio.Lock`` is held around each
whole transaction, and around reads so they never see another task's uncommitted rows.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import aiosqlite
import anyio

from ._exceptions import (
    CorruptDatabaseError,
    DatabaseBusyError,
    DatabaseError,
    DatabaseWriteError,
    ForeignDatabaseError,
    NotADatabaseError,
    SchemaTooNewError,
)
from ._schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

__all__ = ["Database", "Durability", "Tx"]

Durability = Literal["full", "normal"]

_HEADER = b"SQLite format 3\x00"
#: How long SQLite itself waits for another process's write lock per attempt (ms). Short,
#: because a cancelled caller must wait out the attempt in progress; litewf's own loop in
#: ``_begin`` keeps retrying, cancellably, up to ``_BUSY_GIVE_UP_S``.
_BUSY_TIMEOUT_MS = 1_000
#: How long litewf keeps retrying a busy database before giving up with DatabaseBusyError.
_BUSY_GIVE_UP_S = 120.0
#: After a checkpoint, the WAL file is truncated to this size so it never stays large.
_JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024

Params = Iterable[Any]


class Tx:
    """An open write transaction; ``notify`` queues work to run once it has committed."""

    __slots__ = ("_after_commit", "conn")

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self._after_commit: list[Callable[[], None]] = []

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement; return the number of rows it changed."""
        cursor = await self.conn.execute(sql, tuple(params))
        count = cursor.rowcount
        await cursor.close()
        return count

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        async with self.conn.execute(sql, tuple(params)) as cursor:
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return list(await self.conn.execute_fetchall(sql, tuple(params)))

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this transaction has committed (never if it rolls back)."""
        self._after_commit.append(callback)


class Database:
    """One SQLite file, opened for litewf; ``create=False`` never creates or migrates."""

    def __init__(self, path: str | os.PathLike[str], *, durability: Durability, create: bool):
        self.path = os.fspath(path)
        self._durability = durability
        self._create = create
        self._conn: aiosqlite.Connection | None = None
        self._lock = anyio.Lock()

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    # -- opening -----------------------------------------------------------------------

    async def open(self) -> None:
        """Open, check that the file is ours (without changing it), then set up and migrate."""
        existed = self._precheck()
        mode = "rwc" if self._create else "rw"
        uri = f"file:{quote(_absolute(self.path))}?mode={mode}"
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
            raise self._translate(exc) from exc
        conn.row_factory = sqlite3.Row
        self._conn = conn
        try:
            await self._setup(conn, existed)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.close()
            self._conn = None
            raise

    def _precheck(self) -> bool:
        """Refuse what is plainly not ours by reading the header; return whether a db exists."""
        path = Path(self.path)
        if path.is_dir():
            raise DatabaseError(self.path, "is a directory; give the path of a database file")
        if not path.exists():
            if not self._create:
                raise DatabaseError(
                    self.path,
                    "no such database; check the path (a Client never creates one, "
                    "launch a Runtime to create it)",
                )
            return False
        try:
            with path.open("rb") as f:
                header = f.read(100)
        except OSError as exc:
            raise DatabaseError(self.path, f"cannot read the file: {exc}") from exc
        if not header:
            return False  # an empty file is a new database
        if not header.startswith(_HEADER) or len(header) < 100:
            raise NotADatabaseError(
                self.path, "is not an SQLite database; litewf left it untouched, give another path"
            )
        return True

    async def _setup(self, conn: aiosqlite.Connection, existed: bool) -> None:
        try:
            # Wait out other processes' write locks inside SQLite rather than failing.
            await conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            app_id, version, tables = await self._identity(conn)
            self._check_identity(app_id, version, tables, existed)
            if self._create:
                # WAL lets readers in other processes work while one process writes.
                await conn.execute("PRAGMA journal_mode = WAL")
            # FULL syncs the WAL on every commit: a returned call survives power loss.
            # NORMAL syncs only at checkpoints: survives a process crash, not power loss.
            sync = "FULL" if self._durability == "full" else "NORMAL"
            await conn.execute(f"PRAGMA synchronous = {sync}")
            await conn.execute(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT}")
            if self._create and version < SCHEMA_VERSION:
                await self._migrate(conn)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

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

    def _check_identity(self, app_id: int, version: int, tables: int, existed: bool) -> None:
        if app_id == 0 and tables == 0:
            if self._create:
                return  # a new (or empty) SQLite file: ours to initialize
            raise DatabaseError(
                self.path, "is not initialized; launch a Runtime on it once to create the schema"
            )
        if app_id != APPLICATION_ID:
            raise ForeignDatabaseError(
                self.path,
                "is an SQLite database that litewf did not create; litewf left it untouched, "
                "give litewf a file of its own",
            )
        if version > SCHEMA_VERSION:
            raise SchemaTooNewError(
                self.path,
                f"has schema version {version}, newer than this litewf's {SCHEMA_VERSION}; "
                f"upgrade litewf (the file was left untouched)",
            )
        if version < SCHEMA_VERSION and not self._create:
            raise DatabaseError(
                self.path,
                f"has schema version {version}, older than {SCHEMA_VERSION}; launch a Runtime "
                f"on it once to upgrade it",
            )
        del existed

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        async with self._lock:
            await self._begin(conn)
            try:
                async with conn.execute("PRAGMA user_version") as cur:
                    version = int((await cur.fetchone() or (0,))[0])
                for script in MIGRATIONS[version:]:
                    for statement in _statements(script):
                        await conn.execute(statement)
                await conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                await conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except BaseException:
                await self._rollback(conn)
                raise
            await self._commit(conn)

    # -- transactions and reads ----------------------------------------------------------

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise DatabaseError(self.path, "is not open")
        return self._conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A ``BEGIN IMMEDIATE`` transaction under the write lock; committed on success.

        COMMIT and ROLLBACK are shielded: a cancelled caller never leaves the lock held or
        the transaction half-known.
        """
        conn = self.conn
        async with self._lock:
            try:
                await self._begin(conn)
                tx = Tx(conn)
                try:
                    yield tx
                except BaseException:
                    await self._rollback(conn)
                    raise
                try:
                    await self._commit(conn)
                except BaseException:
                    await self._rollback(conn)
                    raise
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc
        for callback in tx._after_commit:
            callback()

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Run a read query (autocommit: its read transaction ends with the statement)."""
        conn = self.conn
        async with self._lock:
            try:
                return list(await conn.execute_fetchall(sql, tuple(params)))
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def data_version(self) -> int:
        """``PRAGMA data_version``: changes when another connection commits to the file."""
        row = await self.fetchone("PRAGMA data_version")
        assert row is not None
        return int(row[0])

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await conn.close()

    # -- internals -----------------------------------------------------------------------

    async def _begin(self, conn: aiosqlite.Connection) -> None:
        """BEGIN IMMEDIATE, retrying while other processes hold the write lock."""
        give_up = time.monotonic() + _BUSY_GIVE_UP_S
        delay = 0.001
        while True:
            try:
                await conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if _code(exc) != sqlite3.SQLITE_BUSY or time.monotonic() > give_up:
                    raise
            except BaseException:
                # Cancelled while aiosqlite's thread still runs BEGIN IMMEDIATE (perhaps
                # waiting out another process's lock): it runs to the end regardless. Wait
                # for it behind a no-op, then undo it, or the connection would stay inside
                # a transaction that holds the write lock for good.
                with anyio.CancelScope(shield=True):
                    with contextlib.suppress(sqlite3.Error):
                        await conn.execute("SELECT 1")
                    await self._rollback(conn)
                raise
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.1)

    @staticmethod
    async def _commit(conn: aiosqlite.Connection) -> None:
        with anyio.CancelScope(shield=True):
            await conn.execute("COMMIT")

    @staticmethod
    async def _rollback(conn: aiosqlite.Connection) -> None:
        with anyio.CancelScope(shield=True):
            if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                try:
                    await conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # nothing left to undo; the original error is what matters

    def _translate(self, exc: sqlite3.Error) -> Exception:
        """A clear litewf error for what the file or disk did; other errors pass unchanged."""
        code = _code(exc)
        detail = str(exc)
        if code == sqlite3.SQLITE_NOTADB:
            return NotADatabaseError(
                self.path, "is not an SQLite database; litewf left it untouched, give another path"
            )
        if code == sqlite3.SQLITE_CORRUPT:
            return CorruptDatabaseError(
                self.path, f"is corrupt ({detail}); restore it from a backup"
            )
        if code == sqlite3.SQLITE_BUSY:
            return DatabaseBusyError(
                self.path,
                f"another process held the write lock for over {_BUSY_GIVE_UP_S:.0f} s; "
                f"find the process that keeps a write transaction open",
            )
        if code in (
            sqlite3.SQLITE_FULL,
            sqlite3.SQLITE_IOERR,
            sqlite3.SQLITE_READONLY,
            sqlite3.SQLITE_CANTOPEN,
            sqlite3.SQLITE_PERM,
            sqlite3.SQLITE_AUTH,
        ):
            return DatabaseWriteError(
                self.path,
                f"the write was refused ({detail}); nothing was stored, free disk space or "
                f"fix permissions and try again",
            )
        return exc


def _absolute(path: str) -> str:
    return os.path.abspath(path)


def _code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def _statements(script: str) -> list[str]:
    """Split a migration script into complete SQL statements."""
    out: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending.strip())
            pending = ""
    if pending.strip():
        out.append(pending.strip())
    return out

"""litewf's storage on one SQLite file, as one object: the seam a second backend mirrors.

Everything above the storage layer reaches the database through a ``SqliteBackend``
and the SQL functions of ``_store``, ``_journal`` and ``_upkeep``. Its surface:

- ``open()``, ``close()``, ``abandon()`` (close without the event loop that opened it),
  ``check_process()`` (refuse use from a fork() child), ``path`` and ``lost``;
- ``write(fn, *args)`` and ``read(fn, *args)``: run ``fn(tx, *args)``, a function of the
  SQL modules, in a transaction (writes group-committed; a ``Tx`` offers ``execute``,
  ``fetchone``, ``fetchall``, ``after_commit`` and ``changed``);
- the change feed: ``on_change(change)`` is called with every ``Change`` a commit made
  (this connection's right after its commit; other processes' once ``follow()`` finds
  them), so waiters are woken from one place;
- executor liveness: ``lock(executor_id)`` (held while a runtime serves) and
  ``alive(executor_id)``;
- maintenance: ``maintain()`` (keep the WAL small) and ``keep_files()`` (keep the WAL in
  place while a step body outlives shutdown);
- ``info()``: facts for ``litewf doctor``.

A PostgreSQL backend would be another module with these names (LISTEN/NOTIFY as its
change feed, advisory locks as liveness) and SQL modules in its dialect.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio

from . import _store as store
from . import _upkeep as upkeep
from ._change import Change
from ._db import Database
from ._dbfile import hold_side_files
from ._liveness import ExecutorLock, executor_alive
from ._tx import Tx
from ._types import Durability
from ._walwatch import WalWatch

__all__ = ["SqliteBackend"]

P = ParamSpec("P")
T = TypeVar("T")

#: The change feed asks SQLite for data_version at least this often, whatever the WAL
#: watch says.
FULL_CHECK_S = 0.25
#: Problems ``info()`` lists at most (``integrity_check`` lines, bad rows).
INTEGRITY_LIMIT = 20
CORRUPT_ROWS_SHOWN = 5


class SqliteBackend:
    """One SQLite file in WAL mode, shared by processes; ``create=False`` never creates
    or migrates it (a Client's)."""

    def __init__(
        self, path: str | os.PathLike[str], *, durability: Durability, create: bool
    ) -> None:
        self.db = Database(path, durability=durability, create=create)
        self.path = self.db.path

    # -- connection --------------------------------------------------------------------

    @property
    def on_change(self) -> Callable[[Change], None] | None:
        return self.db.on_change

    @on_change.setter
    def on_change(self, callback: Callable[[Change], None] | None) -> None:
        self.db.on_change = callback

    @property
    def lost(self) -> str | None:
        """Why the database can no longer be used (its -wal or -shm file was deleted)."""
        return self.db.lost

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    def abandon(self) -> None:
        self.db.abandon()

    def check_process(self) -> None:
        self.db.check_process()

    async def write(
        self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await self.db.write(fn, *args, **kwargs)

    async def read(
        self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await self.db.read(fn, *args, **kwargs)

    # -- the change feed -----------------------------------------------------------------

    async def follow(self, interval: float) -> None:
        """Forever: hand other processes' changes to ``on_change``.

        A ``WalWatch`` says when the file may have changed (inotify, or a stat every
        ``interval``); ``PRAGMA data_version`` (which moves only when another connection
        commits) confirms it, at least every ``FULL_CHECK_S`` in any case. Only then are
        the change rows past the last one seen read.
        """
        db = self.db
        watch = WalWatch(db.side_files.path_of("-wal"), interval)
        try:
            version = await db.data_version()
            seq = await db.read(store.last_change)
            while True:
                await watch.changed(FULL_CHECK_S)
                db.check_files()  # a deleted -wal or -shm file: stop rather than lose writes
                if watch.uses_inotify:
                    # Let a burst of writes land, then read once: bounded by interval.
                    await anyio.sleep(min(interval, 0.002))
                current = await db.data_version()
                if current == version:
                    continue
                version = current
                seq, changes = await db.read(store.changes_since, seq)
                on_change = self.on_change
                if on_change is not None:
                    for change in changes:
                        on_change(change)
        finally:
            watch.close()

    # -- executor liveness ---------------------------------------------------------------

    def lock(self, executor_id: str) -> ExecutorLock:
        """Take the lock that says ``executor_id`` is alive (``ExecutorConflictError`` if
        a live process holds it); release it with the returned object."""
        lock = ExecutorLock(self.path, executor_id)
        lock.acquire()
        return lock

    def alive(self, executor_id: str) -> bool:
        """Whether a live process holds ``executor_id``'s lock on this database."""
        return executor_alive(self.path, executor_id)

    # -- maintenance ---------------------------------------------------------------------

    async def maintain(self) -> None:
        """Truncate the WAL once it has grown large (see ``Database.checkpoint_if_large``)."""
        await self.db.checkpoint_if_large()

    def keep_files(self) -> sqlite3.Connection | None:
        """A plain connection that keeps the -wal and -shm files in place until closed."""
        return hold_side_files(self.path)

    def wal_bytes(self) -> int:
        return self.db.side_files.wal_bytes()

    async def info(self) -> dict[str, Any]:
        """Facts about the open database for ``litewf doctor``; reads only."""
        info = await self.db.read(upkeep.database_info, integrity_limit=INTEGRITY_LIMIT)
        corrupt, problems = await self.db.read(upkeep.find_corrupt_rows, CORRUPT_ROWS_SHOWN)
        checks: Any = info.pop("integrity_check")
        page_size, page_count = info.pop("page_size"), info.pop("page_count")
        assert isinstance(page_size, int) and isinstance(page_count, int)
        return {
            "path": self.path,
            "schema_version": info.pop("user_version"),
            "application_id": info.pop("application_id"),
            "journal_mode": info.pop("journal_mode"),
            "file_bytes": page_size * page_count,
            "wal_bytes": self.wal_bytes(),
            "free_pages": info.pop("freelist_count"),
            "integrity": "ok" if checks == ["ok"] else "; ".join(checks),
            "corrupt_rows": corrupt,
            "corrupt_row_problems": problems,
            **info,
        }

"""litewf's storage on PostgreSQL: the same surface as ``_backend.SqliteBackend``.

- ``write``/``read``: ``_pgdb.PgDatabase`` (group commit, one write lock per schema);
- the change feed: ``LISTEN`` on the schema's channel, one listening connection per
  runtime or client; a NOTIFY (sent by the committing transaction) hands the changes it
  lists to ``follow`` (``_pgnotify``), which also reads the change rows past the last one
  seen at least every second (a lost or too large notification);
- executor liveness: session-level advisory locks (``_pgliveness``), each watched by a
  thread that reports a lost session (the runtime then stops its workflows, see
  ``_serving``);
- ``maintain()``: nothing to do.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio

from . import _pgnotify as pgnotify
from . import _store as store
from . import _upkeep as upkeep
from ._change import Change
from ._exceptions import DatabaseError
from ._pgconn import connect_async, import_psycopg
from ._pgdb import PgDatabase
from ._pgdialect import translate
from ._pgliveness import PgExecutorLock, PgProbe
from ._pgschema import identity, integrity_problems
from ._pgtx import PgTx
from ._tx import Tx
from ._types import Durability

__all__ = ["PostgresBackend"]

P = ParamSpec("P")
T = TypeVar("T")

#: The change feed reads the change log at least this often, notified or not.
FULL_CHECK_S = 1.0
#: How long ``LISTEN`` may take (it is not cancelled meanwhile) before the feed gives up.
LISTEN_TIMEOUT_S = 10.0


class PostgresBackend:
    """One litewf schema in a PostgreSQL database, shared by runtimes on many hosts."""

    def __init__(self, url: str, *, durability: Durability, create: bool) -> None:
        self.db = PgDatabase(url, durability=durability, create=create)
        self.path = self.db.path
        self._probe = PgProbe(self.db.url, self.db.schema)
        self.lost: str | None = None
        #: Changes handed over already (our own commits', the payloads'): the next read
        #: of the change log skips them.
        self._handed = pgnotify.Handed()
        self._on_change: Callable[[Change], None] | None = None

    @property
    def on_change(self) -> Callable[[Change], None] | None:
        return self._on_change

    @on_change.setter
    def on_change(self, callback: Callable[[Change], None] | None) -> None:
        self._on_change = callback
        self.db.on_change = None if callback is None else self._committed

    def _committed(self, change: Change) -> None:
        """A change our own commit made: handed over now, skipped in the log later."""
        self._handed.add((change,))
        if self._on_change is not None:
            self._on_change(change)

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        try:
            await self.db.close()
        finally:
            await anyio.to_thread.run_sync(self._probe.close)

    def abandon(self) -> None:
        self.db.abandon()
        self._probe.close()

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
        """Forever: hand other processes' changes to ``on_change``, woken by NOTIFY."""
        psycopg = import_psycopg()
        conn = await connect_async(self.db.url, self.db.schema, "cannot listen")
        try:
            await self._listen(conn, psycopg)
            seq = await self.db.read(store.last_change)
            wait = max(FULL_CHECK_S, interval)
            handed = self._handed
            handed.forget()
            read_at = time.monotonic()
            while True:
                left = read_at + wait - time.monotonic()
                try:
                    changes = await self._notified(conn, left) if left > 0 else None
                except psycopg.Error as exc:
                    raise DatabaseError(self.path, f"lost its listening connection: {exc}") from exc
                if changes is None:  # time for the log (or a NOTIFY that lists nothing)
                    read_at = time.monotonic()
                    seq, logged = await self.db.read(store.changes_since, seq)
                    changes = handed.unseen(logged)
                else:
                    handed.add(changes)
                on_change = self.on_change
                if on_change is not None:
                    for change in changes:
                        on_change(change)
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await conn.close()

    async def _listen(self, conn: Any, psycopg: Any) -> None:
        """``LISTEN``, shielded: cancelled while it runs (a short-lived ``litewf send``
        closing its session), psycopg would cancel it on the server, fail at that too
        and log a warning on the user's terminal."""
        try:
            with anyio.CancelScope(shield=True), anyio.fail_after(LISTEN_TIMEOUT_S):
                await conn.execute(f'LISTEN "{self.db.channel}"')
        except (psycopg.Error, TimeoutError) as exc:
            raise DatabaseError(self.path, f"cannot listen: {exc or 'timed out'}") from exc

    async def _notified(self, conn: Any, wait: float) -> list[Change] | None:
        """Wait up to ``wait`` for a NOTIFY: the changes it lists ([] for our own commits:
        their changes were handed over at commit), or None (the timeout, a NOTIFY that
        lists nothing): read the change log."""
        async for notify in conn.notifies(timeout=wait, stop_after=1):
            token, changes = pgnotify.decode(notify.payload)
            if token == self.db.token:
                return []
            return changes
        return None

    # -- executor liveness ---------------------------------------------------------------

    def lock(self, executor_id: str) -> PgExecutorLock:
        """Take the lock that says ``executor_id`` is alive (``ExecutorConflictError`` if
        a live runtime holds it); release it with the returned object, which reports
        a lost session to the callback given to its ``watch``. Blocks: call it in a
        worker thread."""
        lock = PgExecutorLock(self.db.url, self.db.schema, executor_id)
        lock.acquire()
        return lock

    def alive(self, executor_id: str) -> bool:
        """Whether a live session holds ``executor_id``'s lock on this database. Blocks
        (a round trip): call it in a worker thread."""
        return self._probe.alive(executor_id)

    # -- maintenance ---------------------------------------------------------------------

    async def maintain(self) -> None:
        """Nothing to keep small; a lost executor lock is its watcher's business."""
        return

    def keep_files(self) -> None:
        """Nothing to keep in place (SQLite's side files have no counterpart here)."""
        return

    def wal_bytes(self) -> int:
        return 0

    async def info(self) -> dict[str, Any]:
        """Facts about the open database for ``litewf doctor``; reads only.

        ``integrity`` is litewf's schema as the server's catalog shows it (tables,
        columns, indexes, keys: ``_pgschema.integrity_problems``); ``corrupt_rows`` checks
        every stored row as the read paths do, as on SQLite."""

        def facts(tx: PgTx) -> dict[str, Any]:
            schema = self.db.schema
            _, tables, version = identity(tx.pg, schema)
            problems = integrity_problems(tx.pg, schema)
            size = tx.pg.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind = 'r'",
                (schema,),
            ).fetchone()
            info: dict[str, Any] = {
                "path": self.path,
                "schema": schema,
                "schema_version": version,
                "tables": tables,
                "schema_bytes": int(size[0]),
                "integrity": "ok" if not problems else "; ".join(problems[:INTEGRITY_LIMIT]),
            }
            if problems:  # the rows cannot be read as litewf reads them
                return {**info, "corrupt_rows": 0, "corrupt_row_problems": []}
            tx.conn = _Rows(tx)  # type: ignore[assignment]  # what find_corrupt_rows reads
            corrupt, row_problems = upkeep.find_corrupt_rows(tx, CORRUPT_ROWS_SHOWN)
            counts = tx.fetchall("SELECT status, count(*) FROM workflows GROUP BY status")
            info["corrupt_rows"], info["corrupt_row_problems"] = corrupt, row_problems
            info["workflows"] = {str(k): int(v) for k, v in counts}
            for key, sql in _COUNTS:
                row = tx.fetchone(sql)
                info[key] = 0 if row is None else int(row[0])
            return info

        return await self.db.read(facts)


#: Problems ``info()`` lists at most (schema problems, bad rows), as on SQLite.
INTEGRITY_LIMIT = 20
CORRUPT_ROWS_SHOWN = 5

_COUNTS = (
    ("queued_messages", "SELECT count(*) FROM messages"),
    ("waiting_operations", "SELECT count(*) FROM operations WHERE done = 0"),
    ("idempotency_keys", "SELECT count(*) FROM message_keys"),
    ("change_rows", "SELECT count(*) FROM changes"),
)


class _Rows:
    """``tx.conn.execute(sql)`` for ``_upkeep.find_corrupt_rows`` (which reads row by row
    through the SQLite connection): the rows of one query, translated, from the server."""

    def __init__(self, tx: PgTx) -> None:
        self._tx = tx

    def execute(self, sql: str) -> Any:
        return self._tx.pg.execute(translate(sql))

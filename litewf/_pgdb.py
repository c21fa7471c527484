"""A PostgreSQL database opened for litewf: its connection and group-committed writes.

The SQL modules are plain synchronous functions over a ``Tx``, so, as on SQLite, each
connection is a psycopg (sync) connection driven from one worker thread at a time: a
whole transaction costs one hop from the event loop. Writes are group-committed: the
units queued meanwhile run in one transaction (each in a savepoint when there are
several), and one COMMIT makes them durable. Every write transaction first takes a
transaction-level advisory lock of its schema: litewf's writes are serialized as they
are on SQLite (its read-then-write decisions stay race-free across hosts, and change
numbers commit in order, so a follower never skips one). A transaction that logged a
change sends a NOTIFY, delivered to listeners when it commits.

A connection the server dropped (restart, ``pg_terminate_backend``, a network cut) is
replaced on the next call; the call that found it broken fails with ``DatabaseError``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio
import anyio.lowlevel

from ._change import Change
from ._exceptions import DatabaseError, LitewfError
from ._pgdialect import redact, split_url
from ._pgschema import check_identity, identity, migrate
from ._pgtx import PgTx, row_factory
from ._tx import Unit
from ._types import Durability

__all__ = ["PgDatabase", "advisory_key", "connect", "import_psycopg"]

logger = logging.getLogger("litewf")

P = ParamSpec("P")
T = TypeVar("T")

#: TCP keepalives, both ways (the server's settings per session): a peer host that
#: vanishes is noticed after about IDLE + INTERVAL * COUNT seconds, which also frees
#: its executors' advisory locks on the server.
KEEPALIVE_IDLE_S = 2
KEEPALIVE_INTERVAL_S = 1
KEEPALIVE_COUNT = 3


def import_psycopg() -> Any:
    """The psycopg module, or an error naming the extra to install."""
    try:
        import psycopg
    except ImportError:
        raise LitewfError(
            "PostgreSQL needs the psycopg driver: pip install 'litewf[postgres]'"
        ) from None
    return psycopg


def advisory_key(schema: str, name: str) -> int:
    """A 64-bit advisory lock key for ``name`` in ``schema``."""
    digest = hashlib.sha256(f"litewf\0{schema}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def connect(url: str, schema: str, *, durability: Durability = "full") -> Any:
    """A new autocommit psycopg connection set up for litewf: keepalives, the schema on
    the search path, ``PgRow`` rows, booleans sent as integers."""
    psycopg = import_psycopg()
    keepalive = (
        f"-c tcp_keepalives_idle={KEEPALIVE_IDLE_S} "
        f"-c tcp_keepalives_interval={KEEPALIVE_INTERVAL_S} "
        f"-c tcp_keepalives_count={KEEPALIVE_COUNT}"
    )
    sync = "on" if durability == "full" else "off"
    try:
        conn = psycopg.connect(
            url,
            autocommit=True,
            keepalives=1,
            keepalives_idle=KEEPALIVE_IDLE_S,
            keepalives_interval=KEEPALIVE_INTERVAL_S,
            keepalives_count=KEEPALIVE_COUNT,
            connect_timeout=10,
            options=f"{keepalive} -c synchronous_commit={sync}",
            application_name=f"litewf:{schema}",
        )
    except psycopg.Error as exc:
        raise DatabaseError(redact(url), f"cannot connect: {exc}".strip()) from exc
    conn.adapters.register_dumper(bool, _bool_dumper(psycopg))
    conn.row_factory = row_factory
    conn.execute(f'SET search_path TO "{schema}"')
    return conn


@functools.cache
def _bool_dumper(psycopg: Any) -> type:
    from psycopg.adapt import Dumper

    class BoolAsInt(Dumper):
        oid = psycopg.postgres.types["int8"].oid

        def dump(self, obj: Any) -> bytes:
            return b"1" if obj else b"0"

    return BoolAsInt


class PgDatabase:
    """One litewf schema in one PostgreSQL database; ``create=False`` never creates or
    migrates it (a Client's)."""

    def __init__(self, url: str, *, durability: Durability, create: bool) -> None:
        self.url, self.schema = split_url(url)
        self.path = redact(url)
        self._durability = durability
        self._create = create
        self._conn: Any = None
        self._thread_lock = anyio.CapacityLimiter(1)
        self._lock = anyio.Lock()
        self._queue: list[Unit] = []
        self._pid = os.getpid()
        self.write_key = advisory_key(self.schema, "write")
        self.channel = f"litewf_{self.schema}"[:63]
        #: The NOTIFY payload of this connection's commits: its own listener skips them
        #: (their changes reached ``on_change`` at commit already).
        self.token = os.urandom(8).hex()
        self.on_change: Callable[[Change], None] | None = None

    async def open(self) -> None:
        self._pid = os.getpid()
        try:
            await self._in_thread(self._setup)
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

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` in a worker thread, one at a time; (re)connect
        first if needed. A lost connection is dropped and reported as ``DatabaseError``."""
        self.check_process()
        psycopg = import_psycopg()

        def run() -> T:
            if self._conn is None or self._conn.closed:
                self._conn = connect(self.url, self.schema, durability=self._durability)
            conn = self._conn
            try:
                return fn(conn, *args)
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    with contextlib.suppress(Exception):
                        conn.close()
                raise DatabaseError(self.path, str(exc).strip() or type(exc).__name__) from exc

        return await anyio.to_thread.run_sync(run, limiter=self._thread_lock)

    # -- writes and reads --------------------------------------------------------------

    async def write(
        self, fn: Callable[Concatenate[PgTx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(tx, *args)`` in a write transaction; return once it has committed
        (group commit, with ``_db.Database.write``'s cancellation rules)."""
        self.check_process()
        unit = Unit(functools.partial(fn, **kwargs) if kwargs else fn, args)
        self._queue.append(unit)
        try:
            async with self._lock:
                if unit.state == "queued":
                    await self._flush()
        except BaseException:
            while unit.state == "running":
                with anyio.CancelScope(shield=True):
                    await unit.run_over.wait()
            if unit.state == "queued":
                with contextlib.suppress(ValueError):
                    self._queue.remove(unit)
            raise
        assert unit.state == "done"
        if unit.error is not None:
            raise unit.error
        return unit.result  # type: ignore[no-any-return]

    async def _flush(self) -> None:
        await anyio.lowlevel.checkpoint()  # let woken tasks join this batch
        batch, self._queue = self._queue, []
        run_over = anyio.Event()
        for unit in batch:
            unit.state, unit.run_over = "running", run_over
        try:
            with anyio.CancelScope(shield=True):
                try:
                    await self._in_thread(self._run_units, batch)
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
            for callback in unit.callbacks:
                try:
                    callback()
                except Exception:
                    logger.exception("litewf: an after-commit callback failed")

    def _run_units(self, conn: Any, batch: list[Unit]) -> None:
        """BEGIN, the write lock, each unit (in a savepoint if several), NOTIFY, COMMIT."""
        psycopg = import_psycopg()
        single = len(batch) == 1
        conn.execute("BEGIN")
        try:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.write_key,))
            notify = False
            for unit in batch:
                if not single:
                    conn.execute("SAVEPOINT unit")
                tx = PgTx(conn, self.path, self.on_change)
                try:
                    unit.result = unit.fn(tx, *unit.args)
                except BaseException as exc:
                    if isinstance(exc, psycopg.Error):
                        if conn.closed or conn.broken:
                            raise
                        exc = DatabaseError(self.path, str(exc).strip())
                    unit.error = exc
                    if single:
                        conn.execute("ROLLBACK")
                        return
                    conn.execute("ROLLBACK TO SAVEPOINT unit")
                    conn.execute("RELEASE SAVEPOINT unit")
                else:
                    if not single:
                        conn.execute("RELEASE SAVEPOINT unit")
                    unit.callbacks = tx._after_commit
                    notify = notify or tx.logged
            if notify:
                conn.execute("SELECT pg_notify(%s, %s)", (self.channel, self.token))
            conn.execute("COMMIT")
        except BaseException:
            if not conn.closed and not conn.broken:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
            raise

    async def read(
        self, fn: Callable[Concatenate[PgTx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(tx, *args)`` in one read-only snapshot."""
        call = functools.partial(fn, **kwargs) if kwargs else fn

        def run(conn: Any) -> T:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                return call(PgTx(conn, self.path), *args)  # type: ignore[call-arg]
            finally:
                if not conn.closed and not conn.broken:
                    conn.execute("COMMIT")

        return await self._in_thread(run)

    async def close(self) -> None:
        self.check_process()
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(conn.close, limiter=self._thread_lock)

    def abandon(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

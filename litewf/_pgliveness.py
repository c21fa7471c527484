"""Is an executor alive? On PostgreSQL, a session-level advisory lock answers.

Each launched runtime holds ``pg_try_advisory_lock(key of its executor ID)`` on a
connection of its own. The server drops the lock when that session ends, however it
ends: the process dies (its socket closes), or its host vanishes (TCP keepalives, see
``_pgdb.connect``, end the session within seconds). A peer on any host that can take the
lock knows the executor is dead, with no lease to wait out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from typing import Any

from ._exceptions import DatabaseError, ExecutorConflictError
from ._pgdb import advisory_key, connect, import_psycopg
from ._pgdialect import redact

__all__ = ["PgExecutorLock", "PgProbe"]

logger = logging.getLogger("litewf")

#: Takes the lock and gives it back at once: true when nobody held it (one round trip).
_DEAD = "SELECT CASE WHEN pg_try_advisory_lock(%s) THEN pg_advisory_unlock(%s) ELSE false END"


#: The locks held in this process, let go of in a fork() child.
_held: weakref.WeakSet[PgExecutorLock] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for lock in list(_held):
        lock.drop_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class PgExecutorLock:
    """The lock a live runtime holds to say "executor ``executor_id`` is alive"."""

    def __init__(self, url: str, schema: str, executor_id: str) -> None:
        self._url, self._schema = url, schema
        self._executor_id = executor_id
        self._key = advisory_key(schema, f"executor\0{executor_id}")
        self._conn: Any = None

    def acquire(self) -> None:
        """Take the lock or raise ``ExecutorConflictError`` if a live runtime has it."""
        conn = connect(self._url, self._schema)
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
        if not row[0]:
            conn.close()
            raise ExecutorConflictError(self._executor_id)
        self._conn = conn
        _held.add(self)

    def drop_in_child(self) -> None:
        """In a fork() child: stop holding the parent's session open, without a word to
        the server (closing the connection would end the parent's session)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            devnull = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(devnull, conn.fileno())
            finally:
                os.close(devnull)

    def ensure(self) -> None:
        """Take the lock again if the server ended its session (a restart, an admin's
        ``pg_terminate_backend``): logged, and taken back unless a peer took over."""
        psycopg = import_psycopg()
        conn = self._conn
        if conn is None:
            return
        try:
            conn.execute("SELECT 1")
            return
        except psycopg.Error:
            with contextlib.suppress(Exception):
                conn.close()
        logger.warning("litewf: executor %s lost its lock; taking it again", self._executor_id)
        self._conn = None
        self.acquire()

    def abandon(self) -> None:
        """Drop the lock as a dead process would."""
        self.release()

    def release(self) -> None:
        _held.discard(self)
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


class PgProbe:
    """Asks whether executors are alive, on a connection of its own (a session holding a
    lock could take it again itself); usable from any thread."""

    def __init__(self, url: str, schema: str) -> None:
        self._url, self._schema = url, schema
        self._conn: Any = None
        self._mutex = threading.Lock()

    def alive(self, executor_id: str) -> bool:
        key = advisory_key(self._schema, f"executor\0{executor_id}")
        psycopg = import_psycopg()
        with self._mutex:
            for attempt in range(2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = connect(self._url, self._schema)
                    row = self._conn.execute(_DEAD, (key, key)).fetchone()
                    return not row[0]
                except psycopg.Error as exc:
                    with contextlib.suppress(Exception):
                        self._conn.close()
                    self._conn = None
                    if attempt:
                        raise DatabaseError(
                            redact(self._url), f"cannot check liveness: {exc}"
                        ) from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._mutex:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

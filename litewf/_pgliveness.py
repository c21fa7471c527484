"""Is an executor alive? On PostgreSQL, a session-level advisory lock answers.

Each launched runtime holds ``pg_try_advisory_lock(key of its executor ID)`` on a
connection of its own. The server drops the lock when that session ends, however it
ends: the process dies (its socket closes), or its host vanishes (TCP keepalives, see
``_pgdb.connect``, end the session within seconds). A peer on any host that can take the
lock knows the executor is dead, with no lease to wait out.

The session can also end while the runtime lives on (a server restart, an admin's
``pg_terminate_backend``, a network cut): a peer then takes its workflows over, so the
runtime must stop running them first. A thread per lock watches its connection: it
wakes as soon as the server sends anything (a terminated session says so and closes the
socket) and otherwise asks ``SELECT 1`` every ``HEARTBEAT_S``, which must answer within
``ANSWER_S``. Either failure is reported once, to the callback given to ``watch``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from ._exceptions import DatabaseError, ExecutorConflictError
from ._pgconn import (
    KEEPALIVE_COUNT,
    KEEPALIVE_IDLE_S,
    KEEPALIVE_INTERVAL_S,
    advisory_key,
    connect,
    forget_after_fork,
    forget_in_child,
    import_psycopg,
)
from ._pgdialect import redact

__all__ = ["ANSWER_S", "HEARTBEAT_S", "PgExecutorLock", "PgProbe"]

logger = logging.getLogger("litewf")

#: Takes the lock and gives it back at once: true when nobody held it (one round trip).
_DEAD = "SELECT CASE WHEN pg_try_advisory_lock(%s) THEN pg_advisory_unlock(%s) ELSE false END"

#: How often an idle lock connection is asked whether it still works.
HEARTBEAT_S = 0.5
#: How long the answer may take before the lock counts as lost. A host cut off from the
#: server has its session ended by the server's keepalives after no less than
#: KEEPALIVE_IDLE_S + KEEPALIVE_INTERVAL_S * KEEPALIVE_COUNT seconds of silence (5 s):
#: the runtime, which gives up after HEARTBEAT_S + ANSWER_S, stops first.
ANSWER_S = 2.0
assert HEARTBEAT_S + ANSWER_S < KEEPALIVE_IDLE_S + KEEPALIVE_INTERVAL_S * KEEPALIVE_COUNT


class _Lost(Exception):
    """The lock's session is gone (or does not answer in time)."""


#: The locks held in this process, let go of in a fork() child (as ``_pgconn`` lets go
#: of the other connections; a lock also forgets its session, so that nothing in the
#: child can try to release it).
_held: weakref.WeakSet[PgExecutorLock] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for lock in list(_held):
        lock.drop_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class PgExecutorLock:
    """The lock a live runtime holds to say "executor ``executor_id`` is alive", and the
    thread that notices when the server ends its session."""

    def __init__(self, url: str, schema: str, executor_id: str) -> None:
        self._url, self._schema = url, schema
        self._executor_id = executor_id
        self._key = advisory_key(schema, f"executor\0{executor_id}")
        self._conn: Any = None
        self._mutex = threading.Lock()
        self._watcher: threading.Thread | None = None
        #: A socket pair: a byte sent on it stops the watcher.
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._on_lost: Callable[[str], None] | None = None
        #: Why the lock was lost (None while held, or before ``acquire``).
        self.lost: str | None = None

    @property
    def backend_pid(self) -> int | None:
        """The server process of the lock's session (for tests and the log)."""
        conn = self._conn
        return None if conn is None else int(conn.info.backend_pid)

    def acquire(self) -> None:
        """Take the lock or raise ``ExecutorConflictError`` if a live runtime has it
        (``DatabaseError`` if the server cannot be reached); then watch its session.
        After a loss, takes it again on a new session."""
        psycopg = import_psycopg()
        self._stop_watching()
        conn = connect(self._url, self._schema)
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
        except psycopg.Error as exc:
            conn.close()
            raise DatabaseError(redact(self._url), f"cannot lock the executor: {exc}") from exc
        if not row[0]:
            conn.close()
            raise ExecutorConflictError(self._executor_id)
        wake = socket.socketpair()  # (selectable everywhere, unlike a pipe on Windows)
        with self._mutex:
            self._conn, self._wake, self.lost = conn, wake, None
        self._watcher = threading.Thread(
            target=self._watch,
            args=(conn, wake[0]),
            name=f"litewf lock {self._executor_id}",
            daemon=True,
        )
        self._watcher.start()
        _held.add(self)

    def drop_in_child(self) -> None:
        """In a fork() child: stop holding the parent's session open, without a word to
        the server (closing the connection would end the parent's session). No lock is
        taken: the parent's watcher thread may have held it at the fork."""
        conn, self._conn = self._conn, None
        if conn is not None:
            forget_in_child(conn)

    def watch(self, on_lost: Callable[[str], None]) -> None:
        """Call ``on_lost(reason)`` (from the watcher's thread) once the lock is lost; at
        once if it already is."""
        with self._mutex:
            self._on_lost = on_lost
            lost = self.lost
        if lost is not None:
            on_lost(lost)

    def abandon(self) -> None:
        """Drop the lock as a dead process would."""
        self.release()

    def release(self) -> None:
        self._stop_watching()
        with self._mutex:
            self._on_lost = None

    # -- the watcher -----------------------------------------------------------------------

    def _stop_watching(self) -> None:
        """Stop the watcher thread, then close the lock's connection (ending the session)."""
        with self._mutex:
            conn, wake, watcher = self._conn, self._wake, self._watcher
            self._conn = self._wake = self._watcher = None
        if wake is not None:
            wake[1].send(b"x")
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join()
        if wake is not None:
            for end in wake:
                end.close()
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _watch(self, conn: Any, stop: socket.socket) -> None:
        """Until stopped: wait for the server or the next heartbeat, then ask."""
        psycopg = import_psycopg()
        pgconn = conn.pgconn
        try:
            with selectors.DefaultSelector() as waiter:
                waiter.register(stop, selectors.EVENT_READ, "stop")
                waiter.register(pgconn.socket, selectors.EVENT_READ, "server")
                while True:
                    if _stopped(waiter, HEARTBEAT_S) or not _answers(psycopg, pgconn, waiter):
                        return
        except (_Lost, psycopg.Error, OSError, ValueError) as exc:
            self._lose(conn, str(exc).strip() or type(exc).__name__)

    def _lose(self, conn: Any, reason: str) -> None:
        with self._mutex:
            if self._conn is not conn:
                return  # released meanwhile: nothing to report
            self.lost = reason
            on_lost = self._on_lost
        logger.warning("litewf: executor %s lost its lock: %s", self._executor_id, reason)
        if on_lost is not None:
            on_lost(reason)


def _stopped(waiter: selectors.BaseSelector, timeout: float, writing: bool = False) -> bool:
    """Wait until the server sends (or can be sent to), the watcher is stopped, or
    ``timeout``; whether it was stopped."""
    server = next(key for key in waiter.get_map().values() if key.data == "server")
    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
    if server.events != events:
        waiter.modify(server.fileobj, events, "server")
    return any(key.data == "stop" for key, _ in waiter.select(timeout))


def _answers(psycopg: Any, pgconn: Any, waiter: selectors.BaseSelector) -> bool:
    """Ask ``SELECT 1`` and wait for the answer (raises ``_Lost`` without one within
    ``ANSWER_S``); False if told to stop meanwhile. Runs libpq's asynchronous calls
    itself, so that no wait can outlast ``ANSWER_S``."""
    pq = psycopg.pq
    if pgconn.status != pq.ConnStatus.OK:
        raise _Lost("the connection is closed")
    pgconn.send_query(b"SELECT 1")
    give_up = time.monotonic() + ANSWER_S
    while True:
        writing = pgconn.flush() != 0
        pgconn.consume_input()
        if not writing and not pgconn.is_busy():
            break
        left = give_up - time.monotonic()
        if left <= 0:
            raise _Lost(f"the server did not answer within {ANSWER_S:g} s")
        if _stopped(waiter, left, writing):
            return False
    while (result := pgconn.get_result()) is not None:
        if result.status != pq.ExecStatus.TUPLES_OK:
            message = result.error_message
            raise _Lost(message.decode(errors="replace") if message else "the query failed")
    if pgconn.status != pq.ConnStatus.OK:
        raise _Lost("the connection is closed")
    return True


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
                        forget_after_fork(self._conn)
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

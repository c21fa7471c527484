"""A PostgreSQL connection set up for litewf: the driver (an optional extra), keepalives,
advisory lock keys, and ``Link``: one connection driven from one worker thread at a time,
(re)connected on demand, let go of in a fork() child.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from ._exceptions import DatabaseError, LitewfError
from ._pgdialect import redact
from ._pgtx import row_factory
from ._types import Durability

__all__ = [
    "KEEPALIVE_COUNT",
    "KEEPALIVE_IDLE_S",
    "KEEPALIVE_INTERVAL_S",
    "Link",
    "adapt",
    "advisory_key",
    "connect",
    "connect_async",
    "forget_after_fork",
    "forget_in_child",
    "import_psycopg",
    "settings",
]

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


def settings(schema: str, durability: Durability = "full") -> dict[str, Any]:
    """psycopg's connection arguments for litewf: autocommit, TCP keepalives both ways,
    the commit durability, litewf's application name."""
    keepalive = (
        f"-c tcp_keepalives_idle={KEEPALIVE_IDLE_S} "
        f"-c tcp_keepalives_interval={KEEPALIVE_INTERVAL_S} "
        f"-c tcp_keepalives_count={KEEPALIVE_COUNT}"
    )
    sync = "on" if durability == "full" else "off"
    return {
        "autocommit": True,
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE_S,
        "keepalives_interval": KEEPALIVE_INTERVAL_S,
        "keepalives_count": KEEPALIVE_COUNT,
        "connect_timeout": 10,
        "options": f"{keepalive} -c synchronous_commit={sync}",
        "application_name": f"litewf:{schema}",
    }


def adapt(conn: Any, schema: str) -> str:
    """Set up a new connection's adaptation (``PgRow`` rows, booleans sent as integers);
    the statement that puts ``schema`` on its search path, for the caller to run."""
    conn.adapters.register_dumper(bool, _bool_dumper(import_psycopg()))
    conn.row_factory = row_factory
    return f'SET search_path TO "{schema}"'


async def connect_async(url: str, schema: str, failed: str) -> Any:
    """A new autocommit psycopg async connection with litewf's ``settings``, let go of
    in a fork() child; ``DatabaseError`` saying ``failed: <why>`` if it cannot connect."""
    psycopg = import_psycopg()
    try:
        conn = await psycopg.AsyncConnection.connect(url, **settings(schema))
    except psycopg.Error as exc:
        raise DatabaseError(redact(url), f"{failed}: {exc}".strip()) from exc
    forget_after_fork(conn)
    return conn


def connect(url: str, schema: str, *, durability: Durability = "full") -> Any:
    """A new autocommit psycopg connection set up for litewf (``settings``, ``adapt``)."""
    psycopg = import_psycopg()
    try:
        conn = psycopg.connect(url, **settings(schema, durability))
    except psycopg.Error as exc:
        raise DatabaseError(redact(url), f"cannot connect: {exc}".strip()) from exc
    conn.execute(adapt(conn, schema))
    return conn


@functools.cache
def _bool_dumper(psycopg: Any) -> type:
    from psycopg.adapt import Dumper

    class BoolAsInt(Dumper):
        oid = psycopg.postgres.types["int8"].oid

        def dump(self, obj: Any) -> bytes:
            return b"1" if obj else b"0"

    return BoolAsInt


def forget_in_child(conn: Any) -> None:
    """In a fork() child: let go of an inherited connection without a word to the server
    (its socket now points at /dev/null). Closing it would end the parent's session; and
    kept open, it would keep that session, and its locks, alive after the parent died."""
    with contextlib.suppress(Exception):
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(devnull, conn.fileno())
        finally:
            os.close(devnull)


#: The connections opened in this process, let go of in a fork() child.
_opened: weakref.WeakSet[Any] = weakref.WeakSet()


def forget_after_fork(conn: Any) -> None:
    """Let go of ``conn`` (sync or async) in any fork() child of this process."""
    _opened.add(conn)


def _after_fork_in_child() -> None:
    for conn in list(_opened):
        forget_in_child(conn)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Link:
    """One connection, used from one worker thread at a time, (re)connected on demand.

    A call that finds the connection broken drops it (the next call connects anew) and
    fails with ``DatabaseError``."""

    def __init__(self, url: str, schema: str, durability: Durability, where: str) -> None:
        self._url, self._schema, self._durability, self._where = url, schema, durability, where
        self.conn: Any = None
        #: The connection's one cursor (reused: a cursor costs setting up).
        self.cursor: Any = None
        self.limiter = anyio.CapacityLimiter(1)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` in a worker thread."""
        psycopg = import_psycopg()

        def run() -> T:
            if self.conn is None or self.conn.closed:
                self.conn = connect(self._url, self._schema, durability=self._durability)
                self.cursor = self.conn.cursor()
                forget_after_fork(self.conn)
            conn = self.conn
            try:
                return fn(conn, *args)
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    with contextlib.suppress(Exception):
                        conn.close()
                raise DatabaseError(self._where, str(exc).strip() or type(exc).__name__) from exc

        return await anyio.to_thread.run_sync(run, limiter=self.limiter)

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(conn.close, limiter=self.limiter)

    def abandon(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

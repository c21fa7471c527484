"""Waking waiters: in-memory after our own commits, by polling for other processes'.

The waiting rule that makes wake-ups impossible to lose: register the waiter, *then*
read the database, then wait; after every wake, re-arm before reading again. A commit
that lands between the read and the wait has already set the armed event.

Other processes' commits are found by one poller per runtime or client: it reads
``PRAGMA data_version`` (changes only when another connection commits; no table is
scanned), and only when it changed reads the ``changes`` rows past the last one seen,
waking just the waiters those rows concern. A slow safety timer re-checks regardless,
so even a lost notification delays a waiter but never hangs it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import anyio

from . import _store as store
from ._clock import REAL_CLOCK, Clock
from ._db import Database
from ._exceptions import LitewfError
from ._walwatch import WalWatch

__all__ = ["Key", "Notifier", "event_key", "message_key", "status_key"]

T = TypeVar("T")
Key = tuple[str, str, str | None]

#: A waiter re-reads the database at least this often, notification or not. Slow on
#: purpose: it only covers a lost notification, and 1,000 idle waiters must stay cheap.
SAFETY_RECHECK_S = 30.0
#: The poller asks SQLite for data_version at least this often, whatever the WAL watch says.
FULL_CHECK_S = 0.25


def status_key(workflow_id: str) -> Key:
    return ("status", workflow_id, None)


def event_key(workflow_id: str, key: str) -> Key:
    return ("event", workflow_id, key)


def message_key(workflow_id: str, topic: str | None) -> Key:
    return ("message", workflow_id, topic)


class _Waiter:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = anyio.Event()

    def arm(self) -> None:
        if self.event.is_set():
            self.event = anyio.Event()


class Notifier:
    """Keyed wake-ups: ``notify(key)`` wakes every waiter currently watching ``key``."""

    def __init__(self, clock: Clock = REAL_CLOCK) -> None:
        self.clock = clock
        self._waiters: dict[Key, set[_Waiter]] = {}
        self._listeners: list[Callable[[Key], None]] = []
        self._closed: str | None = None

    @contextmanager
    def _watch(self, key: Key) -> Iterator[_Waiter]:
        waiter = _Waiter()
        self._waiters.setdefault(key, set()).add(waiter)
        try:
            yield waiter
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[key]

    def notify(self, key: Key) -> None:
        for waiter in self._waiters.get(key, ()):
            waiter.event.set()
        for listener in self._listeners:
            listener(key)

    def add_listener(self, listener: Callable[[Key], None]) -> None:
        """Call ``listener(key)`` on every notification (used to stop cancelled workflows)."""
        self._listeners.append(listener)

    def close(self, reason: str) -> None:
        """Wake every waiter and make it (and any later one) raise ``LitewfError(reason)``."""
        self._closed = reason
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.event.set()

    @property
    def waiting(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    async def wait_for(
        self,
        key: Key,
        check: Callable[[], Awaitable[T | None]],
        deadline: float | None,
        on_notify: Callable[[], Awaitable[T | None]] | None = None,
    ) -> T | None:
        """Return ``check()``'s first non-None result, or None once ``deadline`` (epoch s) passes.

        After a notification ``on_notify`` (if given) is used instead of ``check``: a
        cheaper path for when the thing waited for has most likely arrived. Deadlines are
        wall-clock times (read from ``self.clock``) because they are recorded and must mean
        the same instant after a restart.
        """
        clock = self.clock
        notified = False
        with self._watch(key) as waiter:
            while True:
                waiter.arm()
                if self._closed is not None:
                    raise LitewfError(self._closed)
                result = await (on_notify if notified and on_notify else check)()
                if result is not None:
                    return result
                if deadline is not None and deadline <= clock.time():
                    return None
                await clock.wait(waiter.event, deadline, SAFETY_RECHECK_S)
                notified = waiter.event.is_set()


async def poll_changes(db: Database, notifier: Notifier, interval: float) -> None:
    """Forever: wake this process's waiters for commits made by other connections.

    A ``WalWatch`` says when the file may have changed (inotify, or a stat every
    ``interval``); ``data_version`` confirms it, at least every ``FULL_CHECK_S`` in any
    case. Only then are the change rows past the last one seen read.
    """
    watch = WalWatch(db.wal_path, interval)
    try:
        version = await db.data_version()
        seq = await db.read(store.last_change)
        while True:
            await watch.changed(FULL_CHECK_S)
            db.check_files()  # a deleted -wal or -shm file: stop rather than lose writes
            if watch.uses_inotify:
                # Let a burst of writes land, then read once: bounded by poll_interval.
                await anyio.sleep(min(interval, 0.002))
            current = await db.data_version()
            if current == version:
                continue
            version = current
            for change_seq, kind, workflow_id, key in await db.read(store.changes_since, seq):
                seq = change_seq
                notifier.notify((kind, workflow_id, key))
    finally:
        watch.close()

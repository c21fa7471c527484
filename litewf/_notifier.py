"""Waking waiters: keyed by ``Change``, fed by the backend's change feed.

The waiting rule that makes wake-ups impossible to lose: register the waiter, *then*
read the database, then wait; after every wake, re-arm before reading again. A commit
that lands between the read and the wait has already rung the armed alarm.

The backend hands every change to ``notify``: this process's own right after commit,
other processes' once its feed finds them. A slow safety timer re-checks regardless, so
even a lost notification delays a waiter but never hangs it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol, TypeVar

from ._change import Change
from ._clock import REAL_CLOCK, Alarm, Clock
from ._exceptions import LitewfError

__all__ = ["Notifier", "Residency"]

T = TypeVar("T")

#: A waiter re-reads the database at least this often, notification or not. Slow on
#: purpose: it only covers a lost notification, and 1,000 idle waiters must stay cheap.
SAFETY_RECHECK_S = 30.0


class Residency(Protocol):
    """Which waits may stay in memory (``_hibernation``): a wait made with ``hibernate=True``
    is ``admit``-ted, and unwinds by ``park``'s exception once it is ``evicted``."""

    def admit(self, waiter: Alarm) -> None:
        """A hibernatable wait begins (may evict an older one: ``evicted``, then nudged)."""

    def evicted(self, waiter: Alarm) -> bool:
        """Whether the wait must leave memory now."""
        ...

    def leave(self, waiter: Alarm) -> None:
        """The wait ends (returned, raised, or parked)."""

    def park(self, watched: tuple[Change, ...], deadline: float | None) -> BaseException:
        """Keep, in place of the wait, what wakes it; the exception that unwinds it."""
        ...


class Notifier:
    """Wake-ups by change: ``notify(change)`` wakes every waiter watching that change.

    A change watched by one waiter (the usual case: a workflow's own messages) maps to that
    waiter itself, by several to a set of them: each of many waiting workflows then holds
    no set of its own.
    """

    def __init__(self, clock: Clock = REAL_CLOCK) -> None:
        self.clock = clock
        self._waiters: dict[Change, Alarm | set[Alarm]] = {}
        self._listeners: list[Callable[[Change], None]] = []
        self._closed: str | None = None
        #: Which hibernatable waits stay in memory; None: all of them.
        self.residency: Residency | None = None
        #: Waits registered but still in their ``first`` look: not ``waiting`` yet.
        self._first_looks: set[Alarm] = set()

    def watch(self, changes: tuple[Change, ...], waiter: Alarm) -> None:
        """Ring ``waiter`` on each of ``changes`` until ``unwatch``-ed."""
        for one in changes:
            self._add(one, waiter)

    def unwatch(self, changes: tuple[Change, ...], waiter: Alarm) -> None:
        for one in changes:
            self._remove(one, waiter)

    def _add(self, change: Change, waiter: Alarm) -> None:
        present = self._waiters.get(change)
        if present is None:
            self._waiters[change] = waiter
        elif isinstance(present, set):
            present.add(waiter)
        elif present is not waiter:  # (a change listed twice in one wait: once is enough)
            self._waiters[change] = {present, waiter}

    def _remove(self, change: Change, waiter: Alarm) -> None:
        present = self._waiters.get(change)
        if present is waiter:
            del self._waiters[change]
        elif isinstance(present, set):
            present.discard(waiter)
            if len(present) == 1:
                self._waiters[change] = next(iter(present))

    def _each(self, change: Change) -> Iterator[Alarm]:
        present = self._waiters.get(change)
        if isinstance(present, set):
            yield from list(present)
        elif present is not None:
            yield present

    def notify(self, change: Change) -> None:
        self.wake(change)
        for listener in self._listeners:
            listener(change)

    def wake(self, change: Change) -> None:
        """Wake the waiters watching ``change`` (not the listeners: nothing changed, a
        waiter should look again)."""
        present = self._waiters.get(change)
        if isinstance(present, set):
            for waiter in present:
                waiter.ring()
        elif present is not None:
            present.ring()

    def add_listener(self, listener: Callable[[Change], None]) -> None:
        """Call ``listener(change)`` on every notification (used to stop cancelled workflows)."""
        self._listeners.append(listener)

    def close(self, reason: str) -> None:
        """Wake every waiter and make it (and any later one) raise ``LitewfError(reason)``."""
        self._closed = reason
        for change in list(self._waiters):
            for waiter in self._each(change):
                waiter.ring()

    @property
    def waiting(self) -> int:
        """How many waits are registered and past their first look (one waiting on
        several changes counts once)."""
        found: set[Alarm] = set()
        for present in self._waiters.values():
            if isinstance(present, set):
                found |= present
            else:
                found.add(present)
        return len(found - self._first_looks)

    async def wait_for(
        self,
        change: Change | tuple[Change, ...],
        check: Callable[[], Awaitable[T | None]],
        deadline: float | None,
        on_notify: Callable[[], Awaitable[T | None]] | None = None,
        *,
        first: Callable[[], Awaitable[T | None]] | None = None,
        hibernate: bool = False,
    ) -> T | None:
        """Return ``check()``'s first non-None result, or None once ``deadline`` (epoch s) passes.

        ``change`` is what wakes the wait: one change, or a tuple of several (any wakes it).

        After a notification ``on_notify`` (if given) is used instead of ``check``: a
        cheaper path for when the thing waited for has most likely arrived. ``first`` (if
        given) is the first look instead of ``check``: a write that takes the thing or
        records that the wait began, made once the waiter is registered, so that no read
        is needed after it (a commit it did not see rings the waiter). Deadlines are
        wall-clock times (read from ``self.clock``) because they are recorded and must mean
        the same instant after a restart.

        ``hibernate``: a workflow's recorded wait, which ``residency`` may unwind (the
        exception of its ``park``) once nothing new was found and no notification is
        pending: a replay of the workflow reaches this wait again.
        """
        clock = self.clock
        notified = False
        watched = (change,) if isinstance(change, Change) else change
        waiter = Alarm()  # registered, then read: no notification can slip between
        residency = self.residency if hibernate else None
        for one in watched:
            self._add(one, waiter)
        if residency is not None:
            residency.admit(waiter)
        look = check
        if first is not None:
            look = first
            self._first_looks.add(waiter)
        try:
            while True:
                waiter.reset()
                if self._closed is not None:
                    raise LitewfError(self._closed)
                result = await (on_notify if notified and on_notify else look)()
                if look is first:
                    look = check
                    self._first_looks.discard(waiter)
                if result is not None:
                    return result
                if deadline is not None and deadline <= clock.time():
                    return None
                if residency is not None and not waiter.rung and residency.evicted(waiter):
                    raise residency.park(watched, deadline)  # (before the waiter is removed)
                await clock.pause(waiter, deadline, SAFETY_RECHECK_S)
                notified = waiter.rung
        finally:
            self._first_looks.discard(waiter)
            for one in watched:
                self._remove(one, waiter)
            if residency is not None:
                residency.leave(waiter)

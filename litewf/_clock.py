"""Where litewf reads the time and waits for deadlines: real time unless a test says.

Every deadline litewf records (a sleep's wake-up time, a ``recv`` or ``get_event``
timeout) is an epoch time read from the runtime's clock, and every timed wait goes
through it. ``Clock`` is real time, the default; ``litewf.testing.VirtualClock``
(``_virtualclock``) is the one tests move by hand.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Collection

import anyio
import anyio.lowlevel

__all__ = ["REAL_CLOCK", "Alarm", "Clock"]


class Alarm:
    """What wakes one waiting task (a notifier's waiter): ``ring()``; ``rung`` says it
    rang since the last ``reset()``. Lighter than an ``anyio.Event`` (an asyncio.Event and
    its deque) and the cancel scope of a timed wait on it: a waiting workflow holds one
    future and one timer handle while ``Clock.pause`` waits on its alarm."""

    __slots__ = ("rung", "wake")

    def __init__(self) -> None:
        self.rung = False
        #: Set by the clock while a ``pause`` waits on this alarm: what ``ring`` wakes.
        self.wake: asyncio.Future[None] | anyio.Event | None = None

    def reset(self) -> None:
        self.rung = False

    def ring(self) -> None:
        self.rung = True
        self.nudge()

    def nudge(self) -> None:
        """End a ``pause`` on this alarm without ringing it (``rung`` stays as it is)."""
        wake = self.wake
        if isinstance(wake, anyio.Event):
            wake.set()
        elif wake is not None and not wake.done():
            wake.set_result(None)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Clock:
    """Real time: ``time.time()`` and anyio's timers. Stateless; one instance is shared."""

    def time(self) -> float:
        """Now, in seconds since the epoch."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    async def sleep_until(self, deadline: float) -> None:
        remaining = deadline - time.time()
        if remaining > 0:
            await anyio.sleep(remaining)

    async def wait(
        self, event: anyio.Event, deadline: float | None, max_wait: float, *, drive: bool = True
    ) -> None:
        """Return when ``event`` is set, ``deadline`` passes, or ``max_wait`` real seconds do.

        ``drive=False``: a background wait (a runtime's dequeuer) that must not make a
        virtual clock with ``auto_advance`` move by itself; its deadline still counts."""
        limit = max_wait if deadline is None else min(max_wait, deadline - time.time())
        with anyio.move_on_after(limit):
            await event.wait()

    async def pause(self, alarm: Alarm, deadline: float | None, max_wait: float) -> None:
        """Return when ``alarm`` rings (at once if it has rung), ``deadline`` passes, or
        ``max_wait`` real seconds do: ``wait`` on an ``Alarm``, for the many waiting
        workflows (on asyncio, as litewf runs: a future and a timer, no cancel scope)."""
        limit = max_wait if deadline is None else min(max_wait, deadline - time.time())
        if alarm.rung or limit <= 0:
            await anyio.lowlevel.checkpoint()
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        alarm.wake = future
        timer = None if math.isinf(limit) else loop.call_later(limit, _settle, future)
        try:
            await future  # a cancelled task (anyio cancels by Task.cancel) raises here
        finally:
            if timer is not None:
                timer.cancel()
            alarm.wake = None

    def attach(self, running: Callable[[], Collection[str]]) -> None:
        """Note a runtime that uses this clock, by the IDs of the workflows it runs (only
        a virtual clock cares: it advances when each of them waits)."""


REAL_CLOCK = Clock()

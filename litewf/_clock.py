"""Where litewf reads the time and waits for deadlines: real time unless a test says.

Every deadline litewf records (a sleep's wake-up time, a ``recv`` or ``get_event``
timeout) is an epoch time read from the runtime's clock, and every timed wait goes
through it. ``Clock`` is real time, the default; ``litewf.testing.VirtualClock``
(``_virtualclock``) is the one tests move by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

import anyio

__all__ = ["REAL_CLOCK", "Clock"]


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

    def attach(self, running: Callable[[], Collection[str]]) -> None:
        """Note a runtime that uses this clock, by the IDs of the workflows it runs (only
        a virtual clock cares: it advances when each of them waits)."""


REAL_CLOCK = Clock()

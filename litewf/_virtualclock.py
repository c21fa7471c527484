"""A clock that tests move: ``litewf.testing.VirtualClock``.

It starts at the real time and moves only when a test advances it (or, in auto-advance
mode, when every workflow waits), so its deadlines are ordinary epoch times that a
real-time runtime replays as the same instants.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Collection

import anyio
import anyio.lowlevel

from ._clock import Alarm, Clock
from ._exceptions import InvalidValueError
from ._replay import current_workflow_id
from ._validate import check_timeout

__all__ = ["VirtualClock"]

#: How often (real seconds) an auto-advancing wait re-checks whether every workflow
#: waits, besides the wake-ups it gets when a wait starts or ends.
_POLL_S = 0.005


class _Timer:
    """One wait on a virtual clock: set ``event`` once ``deadline`` is reached."""

    __slots__ = ("deadline", "event", "workflow_id")

    def __init__(self, event: anyio.Event, deadline: float | None, workflow_id: str | None):
        self.event = event
        self.deadline = deadline
        self.workflow_id = workflow_id


class VirtualClock(Clock):
    """A clock that tests move: sleeps and timeouts end when it is advanced past them.

    Pass it to a runtime (``Runtime(path, clock=VirtualClock())``); it starts at the real
    time (or ``start``, epoch seconds) and stands still until ``advance()``. With
    ``auto_advance=True`` it also jumps to the next deadline by itself whenever code
    outside workflows (a test awaiting ``get_result``, ``get_event`` or ``rt.sleep``) is
    waiting and every workflow of its runtimes waits too (on a sleep, a timeout, a
    message, an event or a child). Only waits inside workflows are taken into account:
    a test that must act at a given instant should advance by hand.
    """

    def __init__(self, start: float | None = None, *, auto_advance: bool = False) -> None:
        if start is not None and (
            isinstance(start, bool)
            or not isinstance(start, int | float)
            or not math.isfinite(start)
        ):
            raise InvalidValueError(
                f"start must be a finite number of epoch seconds, got {start!r}"
            )
        self._now = time.time() if start is None else float(start)
        self.auto_advance = bool(auto_advance)
        self._timers: set[_Timer] = set()
        self._running: list[weakref.WeakMethod[Callable[[], Collection[str]]]] = []
        self._changed: anyio.Event | None = None

    def __repr__(self) -> str:
        mode = ", auto_advance=True" if self.auto_advance else ""
        return f"<litewf.testing.VirtualClock at {self._now!r}{mode}>"

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward; waits whose deadline is now reached end."""
        seconds = check_timeout(seconds, "seconds")
        if math.isinf(seconds):
            raise InvalidValueError("advance() needs a finite number of seconds")
        self._now += seconds
        self._fire()

    @property
    def next_deadline(self) -> float | None:
        """The earliest deadline anything waits for on this clock, or None."""
        pending = [
            t.deadline for t in self._timers if t.deadline is not None and not t.event.is_set()
        ]
        return min(pending, default=None)

    async def wait_idle(self) -> None:
        """Return once every running workflow of this clock's runtimes waits.

        Use it before ``advance()``: a workflow that has not reached its sleep yet would
        compute its wake-up time from the advanced clock.
        """
        while not self._idle():
            await self._next_change()

    # -- the Clock interface -------------------------------------------------------------

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + seconds)

    async def sleep_until(self, deadline: float) -> None:
        while deadline > self._now:
            await self.wait(anyio.Event(), deadline, math.inf)

    async def wait(
        self, event: anyio.Event, deadline: float | None, max_wait: float, *, drive: bool = True
    ) -> None:
        if deadline is not None and deadline <= self._now:
            return
        timer = _Timer(event, deadline, current_workflow_id())
        self._timers.add(timer)
        self._touch()
        try:
            with anyio.move_on_after(max_wait):
                if self.auto_advance and drive and timer.workflow_id is None:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._drive)
                        await event.wait()
                        tg.cancel_scope.cancel()
                else:
                    await event.wait()
        finally:
            self._timers.discard(timer)
            self._touch()

    async def pause(self, alarm: Alarm, deadline: float | None, max_wait: float) -> None:
        if alarm.rung:
            await anyio.lowlevel.checkpoint()
            return
        event = alarm.wake = anyio.Event()
        try:
            await self.wait(event, deadline, max_wait)
        finally:
            alarm.wake = None

    def attach(self, running: Callable[[], Collection[str]]) -> None:
        self._running = [ref for ref in self._running if ref() is not None]
        self._running.append(weakref.WeakMethod(running))

    # -- internals -----------------------------------------------------------------------

    def _fire(self) -> None:
        for timer in self._timers:
            if timer.deadline is not None and timer.deadline <= self._now:
                timer.event.set()
        self._touch()

    def _touch(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _next_change(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        with anyio.move_on_after(_POLL_S):  # a workflow ending is not announced: poll too
            await self._changed.wait()

    def _idle(self) -> bool:
        """Whether every running workflow waits on this clock for something not yet set."""
        waiting = {
            t.workflow_id
            for t in self._timers
            if t.workflow_id is not None and not t.event.is_set()
        }
        for ref in self._running:
            running = ref()
            if running is not None and not all(wid in waiting for wid in running()):
                return False
        return True

    async def _drive(self) -> None:
        """Forever: whenever every workflow waits, jump to the next deadline."""
        while True:
            if self._idle():
                # Let callbacks already scheduled (a commit's wake-ups) run first.
                await anyio.lowlevel.checkpoint()
                target = self.next_deadline
                if self._idle() and target is not None:
                    self._now = max(self._now, target)
                    self._fire()
            await self._next_change()

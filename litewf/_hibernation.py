"""Hibernation: workflows waiting in a recorded wait leave memory beyond a resident cap.

A workflow blocked in a durable wait (``recv``, ``get_event``, ``get_result``,
``wait_first``) has recorded that wait as a started operation, with its deadline. Past
``max_resident_waits`` such waits, the one that has waited longest is evicted: its
coroutine unwinds (``_Hibernated``, as ``_Superseded`` does; its row stays PENDING and
ours), and a small ``_Sleeper`` takes its place in the notifier, watching the same
changes plus the workflow's status. A change, or its deadline (the wait's or the
workflow's, the earlier), runs it again with replay, as recovery would: it reaches the
same wait, finds it recorded, and goes on. Nothing durable is kept here: after a crash
the journal alone is the truth, as for a workflow that was resident.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import math
from collections.abc import Callable

import anyio
from anyio.abc import TaskGroup

from . import _replay as replay
from ._change import Change
from ._clock import Alarm, Clock
from ._exceptions import InvalidValueError, _Hibernated
from ._notifier import Notifier

__all__ = ["DEFAULT_MAX_RESIDENT_WAITS", "Hibernation", "check_max_resident"]

#: The default resident cap: ordinary use never hibernates (each resident wait ~8 KB).
DEFAULT_MAX_RESIDENT_WAITS = 10_000


def check_max_resident(value: object) -> int | None:
    """``max_resident_waits``: a whole number, 0 or more, or None (no cap)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidValueError(
            "max_resident_waits must be a whole number of waits, 0 or more (0: every "
            f"recorded wait hibernates), or None (none does); got {value!r}"
        )
    return value


class _Sleeper(Alarm):
    """What stays of a hibernated workflow: rung by a change it watches, it wakes it."""

    __slots__ = ("changes", "deadline", "owner", "workflow_id")

    def __init__(
        self,
        owner: Hibernation,
        workflow_id: str,
        changes: tuple[Change, ...],
        deadline: float | None,
    ) -> None:
        super().__init__()
        self.owner, self.workflow_id = owner, workflow_id
        self.changes, self.deadline = changes, deadline

    def ring(self) -> None:
        self.owner.wake(self.workflow_id)


class Hibernation:
    """The resident waits (oldest first), the hibernated workflows, and their timer.

    ``wake(workflow_id)`` is handed to ``run_again`` (the executor's replaying spawn);
    ``attach`` plugs it into a launch's notifier, ``detach`` forgets everything (the rows
    stay PENDING and ours, as for resident waits at shutdown).
    """

    def __init__(self, cap: int | None = DEFAULT_MAX_RESIDENT_WAITS) -> None:
        self.cap = check_max_resident(cap)
        self._resident: collections.OrderedDict[Alarm, None] = collections.OrderedDict()
        self._evicted: set[Alarm] = set()
        #: Hibernated workflows by ID.
        self.parked: dict[str, _Sleeper] = {}
        self._deadlines: list[tuple[float, str]] = []  # a heap; stale entries skipped
        self._changed: anyio.Event | None = None
        self._notifier: Notifier | None = None
        self._run_again: Callable[[str], None] | None = None

    # -- plugging in -------------------------------------------------------------------------

    def attach(
        self, notifier: Notifier, clock: Clock, tg: TaskGroup, run_again: Callable[[str], None]
    ) -> None:
        self._notifier, self._run_again = notifier, run_again
        if self.cap is not None:
            notifier.residency = self
            tg.start_soon(self._timer, clock)

    def detach(self) -> None:
        notifier = self._notifier
        if notifier is not None:
            notifier.residency = None
            for sleeper in self.parked.values():
                notifier.unwatch(sleeper.changes, sleeper)
        self.parked.clear()
        self._resident.clear()
        self._evicted.clear()
        self._deadlines.clear()
        self._notifier = self._run_again = None

    # -- which waits stay (the notifier's Residency) -----------------------------------------

    def admit(self, waiter: Alarm) -> None:
        ctx = replay.current()
        if ctx is None or ctx.task is not asyncio.current_task():
            return  # not the workflow's own task (a task it started): stays resident
        if ctx.steps_running:
            return  # a step of its own runs meanwhile (in a task it started): stays
        self._resident[waiter] = None
        while self.cap is not None and len(self._resident) > self.cap:
            oldest, _ = self._resident.popitem(last=False)
            self._evicted.add(oldest)
            oldest.nudge()

    def evicted(self, waiter: Alarm) -> bool:
        if waiter not in self._evicted:
            return False
        ctx = replay.current()  # (not while a step of its own runs: it would run again)
        return ctx is not None and not ctx.steps_running

    def leave(self, waiter: Alarm) -> None:
        self._resident.pop(waiter, None)
        self._evicted.discard(waiter)

    def park(self, watched: tuple[Change, ...], deadline: float | None) -> BaseException:
        ctx = replay.current()
        notifier = self._notifier
        assert ctx is not None and notifier is not None  # (admitted: in a workflow)
        workflow_id = ctx.workflow_id
        changes = tuple(dict.fromkeys((*watched, Change.status(workflow_id))))
        sleeper = _Sleeper(self, workflow_id, changes, deadline)
        self.parked[workflow_id] = sleeper
        notifier.watch(changes, sleeper)
        if deadline is not None:
            self._push(deadline, workflow_id)
        return _Hibernated(workflow_id)

    # -- waking ------------------------------------------------------------------------------

    def until(self, workflow_id: str, deadline: float | None) -> None:
        """The workflow's own deadline, once its run has unwound: the earlier one wakes it."""
        sleeper = self.parked.get(workflow_id)
        if sleeper is None or deadline is None:
            return
        if sleeper.deadline is None or deadline < sleeper.deadline:
            sleeper.deadline = deadline
            self._push(deadline, workflow_id)

    def wake(self, workflow_id: str) -> None:
        """Run a hibernated workflow again (a change it watches, or its deadline)."""
        sleeper = self.parked.pop(workflow_id, None)
        if sleeper is None:
            return
        if self._notifier is not None:
            self._notifier.unwatch(sleeper.changes, sleeper)
        if self._run_again is not None:
            self._run_again(workflow_id)

    def _push(self, deadline: float, workflow_id: str) -> None:
        heap = self._deadlines
        if heap and deadline >= heap[0][0]:
            heapq.heappush(heap, (deadline, workflow_id))
            return
        heapq.heappush(heap, (deadline, workflow_id))
        if self._changed is not None:
            self._changed.set()  # an earlier first deadline: the timer waits again

    async def _timer(self, clock: Clock) -> None:
        """Forever: wake the hibernated workflows whose deadline has come (on ``clock``,
        outside any workflow: a virtual clock moves past it, never because of it)."""
        token = replay.enter(None)
        try:
            while True:
                self._wake_due(clock.time())
                self._changed = anyio.Event()
                first = self._deadlines[0][0] if self._deadlines else None
                await clock.wait(self._changed, first, math.inf, drive=False)
        finally:
            replay.leave(token)

    def _wake_due(self, now: float) -> None:
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            deadline, workflow_id = heapq.heappop(heap)
            sleeper = self.parked.get(workflow_id)
            if sleeper is not None and sleeper.deadline == deadline:
                self.wake(workflow_id)
        if len(heap) > 64 and len(heap) > 2 * len(self.parked):  # woken ones' entries
            self._deadlines = [
                (d, w) for d, w in heap if (s := self.parked.get(w)) is not None and s.deadline == d
            ]
            heapq.heapify(self._deadlines)

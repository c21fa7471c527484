"""Deadlines and timeouts: the checks of ``timeout=``/``deadline=``/``delay=``/``start_at=``,
the timer that ends a running workflow at its deadline, the sweep that ends overdue
workflows no task runs (at launch and on every recovery pass), and step timeouts.

Everything is on the runtime's clock (``session.clock``), so a ``VirtualClock`` drives it.
The outcome is written first (``_deadlinesql.time_out``: the workflow and its unfinished
descendants end CANCELLED with ``WorkflowTimeoutError``), then the run is cancelled where
it waits; other runs of the tree stop on the status change, in any process.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskGroup

from . import _deadlinesql as deadlinesql
from . import _replay as replay
from ._clock import Clock
from ._exceptions import DatabaseError, InvalidValueError, LitewfError, StepTimeoutError
from ._session import Session
from ._validate import check_when

__all__ = [
    "armed",
    "check_enqueue",
    "check_start",
    "check_step_timeout",
    "expire_now",
    "expire_overdue",
    "within",
]

logger = logging.getLogger("litewf")

T = TypeVar("T")


def seconds(value: Any, what: str, *, zero: bool = False) -> float:
    """A number of seconds or a ``timedelta``: more than 0 (``zero``: or 0) and finite."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValueError(f"{what} must be a number of seconds or a timedelta, got {value!r}")
    least = "0 or more" if zero else "more than 0"
    if math.isnan(value) or math.isinf(value) or value < 0 or (value == 0 and not zero):
        raise InvalidValueError(f"{what} must be {least} seconds and finite, got {value!r}")
    return float(value)


def _one_of(a: Any, b: Any, names: str) -> None:
    if a is not None and b is not None:
        raise InvalidValueError(f"pass either {names}, not both")


def check_enqueue(timeout: Any, deadline: Any) -> deadlinesql.Timing | None:
    """``enqueue``'s ``timeout=`` (counted from the start) or ``deadline=``."""
    _one_of(timeout, deadline, "timeout= (seconds from its start) or deadline= (an aware datetime)")
    if timeout is None and deadline is None:
        return None
    if deadline is not None:
        return deadlinesql.Timing(deadline=check_when(deadline))
    return deadlinesql.Timing(timeout=seconds(timeout, "timeout"))


def check_start(
    timeout: Any, deadline: Any, delay: Any, start_at: Any, now: float
) -> deadlinesql.Timing | None:
    """``start_workflow``'s timing arguments at ``now``; None when none is given.

    A deadline already past is kept: the workflow then times out at once (refusing it
    would make a replay of a child's start depend on when it replays). A ``start_at``
    already past, or a ``delay`` of 0, starts it now.
    """
    limit = check_enqueue(timeout, deadline)
    _one_of(delay, start_at, "delay= (seconds) or start_at= (an aware datetime)")
    not_before: float | None = None
    if delay is not None:
        not_before = now + seconds(delay, "delay", zero=True)
    elif start_at is not None:
        not_before = check_when(start_at, "start_at")
    if not_before is not None and not_before <= now:
        not_before = None
    if limit is None:
        return None if not_before is None else deadlinesql.Timing(not_before=not_before)
    if not_before is not None:
        return deadlinesql.Timing(limit.deadline, limit.timeout, not_before)
    if limit.timeout is not None:
        return deadlinesql.Timing(deadline=now + limit.timeout)
    return limit


def check_step_timeout(value: Any) -> float | None:
    return None if value is None else seconds(value, "timeout")


# -- ending workflows at their deadline --------------------------------------------------------


async def expire_now(session: Session, workflow_id: str) -> list[str]:
    """End the workflow (and its unfinished descendants) if its deadline has passed.

    A busy or failing database is retried: the deadline must not be forgotten while
    the process lives (after it dies, the next launch's sweep ends the workflow).
    """
    delay = 0.1
    while True:
        try:
            return await session.backend.write(
                deadlinesql.time_out, workflow_id, session.clock.time()
            )
        except DatabaseError:
            logger.exception("cannot end workflow %s at its deadline; retrying", workflow_id)
            await anyio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def expire_overdue(session: Session) -> None:
    """End every unfinished workflow whose deadline has passed (in any process's tree),
    whether or not a task runs it: a deadline passed while nothing ran is enforced here."""
    while True:
        found = await session.backend.read(deadlinesql.overdue, session.clock.time())
        for workflow_id in found:
            await session.backend.write(deadlinesql.time_out, workflow_id, session.clock.time())
        if len(found) < 500:
            return


#: ``armed`` of a workflow without a deadline: nothing to arm (shared, so that each of
#: many waiting workflows holds no context manager of its own).
_NO_DEADLINE = contextlib.nullcontext()


def armed(
    tg: TaskGroup,
    session: Session,
    workflow_id: str,
    deadline: float | None,
    run: anyio.CancelScope,
) -> contextlib.AbstractContextManager[None]:
    """While the block runs the workflow: at ``deadline``, cancel ``run`` and end it."""
    if deadline is None:
        return _NO_DEADLINE
    return _armed(tg, session, workflow_id, deadline, run)


@contextlib.contextmanager
def _armed(
    tg: TaskGroup,
    session: Session,
    workflow_id: str,
    deadline: float,
    run: anyio.CancelScope,
) -> Iterator[None]:
    timer = anyio.CancelScope()
    fired: list[bool] = []
    tg.start_soon(_fire_at, session, workflow_id, deadline, run, timer, fired)
    try:
        yield
    finally:
        if not fired:  # (a fired timer outlives the run it cancelled: it writes the end)
            timer.cancel()


async def _fire_at(
    session: Session,
    workflow_id: str,
    deadline: float,
    run: anyio.CancelScope,
    timer: anyio.CancelScope,
    fired: list[bool],
) -> None:
    """Cancel the run first, so that its code does nothing past its deadline (not even
    while the outcome is written), then end it and its descendants. A crash between the
    two leaves it PENDING and overdue: the next launch ends it without running it."""
    with timer:
        await _wait_until(session.clock, deadline)
        fired.append(True)
        run.cancel()
        try:
            await expire_now(session, workflow_id)
        except LitewfError:  # (a damaged row; the recovery sweep tries again)
            logger.exception("cannot end workflow %s at its deadline", workflow_id)


async def _wait_until(clock: Clock, deadline: float) -> None:
    """Wait on ``clock`` outside any workflow: a timer is not its workflow waiting (a
    virtual clock advances by itself only when every workflow waits)."""
    token = replay.enter(None)
    try:
        while clock.time() < deadline:
            await clock.wait(anyio.Event(), deadline, math.inf, drive=False)
    finally:
        replay.leave(token)


# -- step timeouts ----------------------------------------------------------------------------


async def within(
    clock: Clock, timeout: float | None, step: str, body: Callable[[], Awaitable[T]]
) -> T:
    """Run one attempt of a step body; ``StepTimeoutError`` if it outlives ``timeout``.

    The body is cancelled where it waits; a sync body's thread cannot be stopped, so it
    runs on unwatched and what it returns is dropped.
    """
    if timeout is None:
        return await body()
    deadline = clock.time() + timeout
    fired = finished = False
    result: Any = None
    error: BaseException | None = None

    async def timer() -> None:
        nonlocal fired
        await _wait_until(clock, deadline)
        fired = True
        tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(timer)
        try:
            result = await body()
            finished = True
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:  # noqa: BLE001 - re-raised as itself, not in a group
            error = exc
        tg.cancel_scope.cancel()
    if error is not None:
        raise error
    if fired and not finished:
        raise StepTimeoutError(step, timeout)
    out: T = result
    return out

"""The scheduler loop of a launched runtime: it fires the due ticks of its schedules.

It looks at the schedules whose workflow this runtime registered, fires what is due
(``_schedulesql.fire``: each tick's workflow inserted and the schedule's
``handled_until`` moved in one write transaction, so a tick runs once however many
runtimes share the file), runs the fired workflows here, then waits on the runtime's
clock until the next tick, a ``SCHEDULE`` change from any process (a schedule created,
edited, paused, resumed or deleted), or ``interval`` seconds.
"""

from __future__ import annotations

import logging

import anyio

from . import _schedulesql as sql
from ._change import Change, ChangeKind
from ._exceptions import LitewfError
from ._executor import Executor
from ._schedules import encoder
from ._session import Session

__all__ = ["fire_now", "keep_scheduling"]

logger = logging.getLogger("litewf")


async def keep_scheduling(executor: Executor, session: Session, interval: float) -> None:
    """Forever: fire due ticks, then wait for the next one (or a schedule change)."""
    wake = [anyio.Event()]
    warned: dict[str, str] = {}

    def on_change(change: Change) -> None:
        if change.kind is ChangeKind.SCHEDULE:
            wake[0].set()

    session.notifier.add_listener(on_change)
    while True:
        event = wake[0] = anyio.Event()  # armed before looking: nothing is missed
        next_at: float | None = None
        try:
            next_at = await fire_now(executor, session, warned)
        except LitewfError:
            logger.exception("litewf scheduler pass failed; retrying")
        await session.clock.wait(event, next_at, interval, drive=False)


async def fire_now(
    executor: Executor, session: Session, warned: dict[str, str] | None = None
) -> float | None:
    """One pass: fire and run what is due; when the next tick is (None: no tick left).

    A schedule this runtime cannot read (a damaged row, a cron schedule without the
    ``litewf[cron]`` extra here) is left out, and logged once per problem in ``warned``.
    """
    if not executor.may_start or not executor.workflows:
        return None
    names = list(executor.workflows)
    due, wake, unusable = await session.backend.read(sql.pending, names, session.clock.time())
    warned = {} if warned is None else warned
    for name, problem in unusable.items():
        if warned.get(name) != problem:
            warned[name] = problem
            logger.error("litewf cannot run schedule %r here: %s", name, problem)
    if not due:
        return wake
    fired, wake = await session.backend.write(
        sql.fire, names, executor.executor_id, session.clock.time(), encoder(session)
    )
    for wf in fired:
        logger.info("schedule tick: running workflow %s (%s)", wf.workflow_id, wf.name)
        executor.spawn(wf.workflow_id, executor.workflows[wf.name], wf.inputs, fresh=True)
    return wake

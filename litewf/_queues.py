"""Queues: bounded, prioritized, rate-limited starts of workflows, across processes.

``rt.queue(name, ...)`` registers a ``Queue``; ``queue.enqueue(fn, ...)`` stores the
workflow ENQUEUED (``_queuesql.enqueue``), inside a workflow as a recorded operation.
Each launched runtime runs ``keep_dequeuing``: whenever a queue Change arrives (an
enqueue, or a queued workflow that finished or was cancelled, in any process), when a
delay or rate window ends, and at least every ``recovery_interval``, it makes the
startable workflows of its queues PENDING in one write transaction
(``_queuesql.dequeue``: the bounds are counted there) and runs them.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import anyio

from . import _queuesql as queuesql
from . import _replay as replay
from . import _tracing as tracing
from ._change import Change, ChangeKind
from ._deadlines import check_enqueue as check_enqueue_timing
from ._deadlinesql import DELAYED, Timing, inherit, next_delayed, start_due
from ._exceptions import InvalidValueError, LitewfError, QueueDuplicateError
from ._executor import Executor
from ._history import identity
from ._operations import check_same, child_id
from ._serialization import dumps_arguments
from ._session import Session
from ._tx import Tx
from ._validate import check_id, check_key, check_timeout
from ._workflow import Workflow, WorkflowHandle

__all__ = [
    "ENQUEUE",
    "Queue",
    "check_limits",
    "enqueue_by_name",
    "keep_dequeuing",
    "register_queue",
    "start_delayed",
]

logger = logging.getLogger("litewf")

#: The operation name of an enqueue made inside a workflow.
ENQUEUE = "enqueue"


def check_limits(
    concurrency: Any, worker_concurrency: Any, rate_limit: Any
) -> queuesql.QueueLimits:
    """A queue's bounds, checked: positive ints, and (n >= 1, seconds > 0 and finite)."""
    for value, what in ((concurrency, "concurrency"), (worker_concurrency, "worker_concurrency")):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InvalidValueError(f"{what} must be an int >= 1 or None, got {value!r}")
    rate: tuple[int, float] | None = None
    if rate_limit is not None:
        if not isinstance(rate_limit, tuple) or len(rate_limit) != 2:
            raise InvalidValueError(
                f"rate_limit must be a tuple (n, seconds) or None, got {rate_limit!r}"
            )
        n, seconds = rate_limit
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidValueError(f"rate_limit's n must be an int >= 1, got {n!r}")
        period = check_timeout(seconds, "rate_limit's seconds")
        if period <= 0 or math.isinf(period):
            raise InvalidValueError(
                f"rate_limit's seconds must be more than 0 and finite, got {seconds!r}"
            )
        rate = (n, period)
    return queuesql.QueueLimits(concurrency, worker_concurrency, rate)


def check_enqueue(
    priority: Any, dedup_id: Any, delay: Any, partition_key: Any
) -> tuple[int, str | None, float | None, str | None]:
    """``enqueue``'s own arguments, checked (priority None is 0)."""
    if priority is None:
        priority = 0
    if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
        raise InvalidValueError(
            f"priority must be an int >= 0 (lower runs first), got {priority!r}"
        )
    if priority >= 2**63:
        raise InvalidValueError(f"priority must be below 2**63, got {priority!r}")
    dedup_id = check_key(dedup_id, "dedup_id", optional=True)
    partition_key = check_key(partition_key, "partition_key", optional=True)
    seconds = check_timeout(delay, "delay", optional=True)
    if seconds is not None and math.isinf(seconds):
        raise InvalidValueError("delay must be a finite number of seconds")
    return priority, dedup_id, seconds, partition_key


def register_queue(
    queues: dict[str, Queue],
    name: Any,
    limits: tuple[Any, Any, Any],
    executor: Executor,
    session_for: Callable[[str], Session],
) -> Queue:
    """``rt.queue(...)``: check and register a queue of the runtime (one per name)."""
    name = check_id(name, "queue name")
    checked = check_limits(*limits)
    if name in queues:
        raise InvalidValueError(f"a queue named {name!r} is already registered on this runtime")
    queue = queues[name] = Queue(name, checked, executor, session_for)
    return queue


class Queue:
    """A named queue of a runtime: ``await queue.enqueue(fn, *args, ...)``."""

    def __init__(
        self,
        name: str,
        limits: queuesql.QueueLimits,
        executor: Executor,
        session_for: Callable[[str], Session],
    ) -> None:
        self.name = name
        self.limits = limits
        self._executor = executor
        self._session_for = session_for

    @property
    def concurrency(self) -> int | None:
        return self.limits.concurrency

    @property
    def worker_concurrency(self) -> int | None:
        return self.limits.worker_concurrency

    @property
    def rate_limit(self) -> tuple[int, float] | None:
        return self.limits.rate_limit

    def __repr__(self) -> str:
        return f"<litewf.Queue {self.name!r}>"

    async def enqueue(
        self,
        fn: Workflow[Any, Any],
        *args: Any,
        workflow_id: str | None = None,
        priority: int | None = None,
        dedup_id: str | None = None,
        delay: float | None = None,
        partition_key: str | None = None,
        timeout: float | timedelta | None = None,
        deadline: datetime | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[Any]:
        """Store the workflow ENQUEUED on this queue; a runtime that has this queue and
        the workflow starts it when the queue's bounds allow. Returns its handle.

        ``priority``: an int >= 0, lower first (FIFO within a priority); ``dedup_id``:
        refused with ``QueueDuplicateError`` while another workflow of this queue with
        it is enqueued or running; ``delay``: seconds before it may start (durable);
        ``partition_key``: ``concurrency`` applies per partition; ``timeout`` (seconds
        from its start, not from now) or ``deadline`` (an aware datetime): it ends
        CANCELLED with ``WorkflowTimeoutError`` once that passes. An existing
        ``workflow_id`` returns its handle and stores nothing. Inside a workflow this
        is an operation (exactly once; a refusal is recorded and replayed).
        """
        session = self._session_for("enqueue")
        wf = self._executor.registered(fn)
        return await enqueue_by_name(
            session,
            self.name,
            wf.name,
            args,
            kwargs,
            workflow_id=workflow_id,
            priority=priority,
            dedup_id=dedup_id,
            delay=delay,
            partition_key=partition_key,
            ctx=replay.current(),
            timing=check_enqueue_timing(timeout, deadline),
        )


async def enqueue_by_name(
    session: Session,
    queue_name: str,
    workflow_name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    workflow_id: str | None,
    priority: int | None,
    dedup_id: str | None,
    delay: float | None,
    partition_key: str | None,
    ctx: replay.WorkflowContext | None = None,
    timing: Timing | None = None,
) -> WorkflowHandle[Any]:
    """Enqueue ``workflow_name`` (a Runtime's queue, or ``Client.enqueue``); inside a
    workflow (``ctx``) as one recorded operation."""
    queue_name = check_id(queue_name, "queue_name")
    workflow_name = check_key(workflow_name, "workflow_name")
    if workflow_id is not None:
        check_id(workflow_id)
    prio, dedup, seconds, partition = check_enqueue(priority, dedup_id, delay, partition_key)
    trace = tracing.start_context(workflow_name)
    inputs = dumps_arguments(session.serializer, workflow_name, args, kwargs, trace)
    not_before = None if seconds is None else session.clock.time() + seconds

    limit = Timing() if timing is None else timing

    def item(wid: str, parent: str | None) -> queuesql.Enqueued:
        return queuesql.Enqueued(
            queue_name,
            wid,
            workflow_name,
            inputs,
            prio,
            dedup,
            partition,
            not_before,
            parent,
            limit.deadline,
            limit.timeout,
        )

    if ctx is None:
        wid = workflow_id if workflow_id is not None else str(uuid.uuid4())

        def store(tx: Tx) -> None:
            check_same(wid, queuesql.enqueue(tx, item(wid, None)), workflow_name)

        await session.backend.write(store)
        return WorkflowHandle(session, wid)
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, ENQUEUE, identity(queue=queue_name, workflow=workflow_name))
    if recorded is not None:
        return WorkflowHandle(session, ctx.outcome(recorded, "enqueued workflow ID"))
    wid = child_id(ctx, op_id, workflow_id)
    output = session.serializer.dumps(wid)

    def store_recorded(tx: Tx) -> QueueDuplicateError | None:
        try:
            existing = queuesql.enqueue(tx, item(wid, ctx.workflow_id))
            check_same(wid, existing, workflow_name)
            if existing is None:
                inherit(tx, wid, ctx.workflow_id)  # no later than its parent's deadline
        except QueueDuplicateError as exc:  # a fact about the database: the outcome
            ctx.record(tx, op_id, ENQUEUE, None, error=exc)
            return exc
        ctx.record(tx, op_id, ENQUEUE, output)
        return None

    refused = await ctx.write(store_recorded)
    if refused is not None:
        raise refused
    return WorkflowHandle(session, wid)


# -- dequeuing ---------------------------------------------------------------------------


async def keep_dequeuing(
    executor: Executor, session: Session, queues: dict[str, Queue], interval: float
) -> None:
    """Forever: start what this runtime's queues allow, woken by queue changes (in any
    process), by the end of a delay or rate window, and at least every ``interval``.

    Delayed starts (``start_workflow(delay=...)``, no queue's) are looked at when one is
    recorded, when the next one is due, and on every ``interval`` tick; not on each of
    the queues' changes (that would add a read to every dequeue)."""
    wake = [anyio.Event()]
    delayed = [True]  # look at delayed starts on the next pass

    def on_change(change: Change) -> None:
        if change.kind is ChangeKind.QUEUE:
            if change.workflow_id == DELAYED:
                delayed[0] = True
                wake[0].set()
            elif change.workflow_id in queues:
                wake[0].set()

    session.notifier.add_listener(on_change)
    delayed_at: float | None = None
    while True:
        event = wake[0] = anyio.Event()  # armed before looking: nothing is missed
        next_at: float | None = None
        try:
            next_at = await dequeue_now(executor, session, queues)
            if delayed[0] or (delayed_at is not None and delayed_at <= session.clock.time()):
                delayed[0] = False
                delayed_at = await start_delayed(executor, session)
        except LitewfError:
            logger.exception("litewf dequeue failed; retrying")
        if delayed_at is not None:
            next_at = delayed_at if next_at is None else min(next_at, delayed_at)
        if next_at is None:
            with anyio.move_on_after(interval):
                await event.wait()
        else:
            await session.clock.wait(event, next_at, interval, drive=False)
        if not event.is_set():
            delayed[0] = True  # an interval tick (or a time reached): look again


async def dequeue_now(
    executor: Executor, session: Session, queues: dict[str, Queue]
) -> float | None:
    """One pass over this runtime's queues; the earliest time a held-back workflow may
    become startable (None: none is held back by time)."""
    soonest: float | None = None
    for queue in list(queues.values()):
        if not executor.may_start:
            return None
        names = list(executor.workflows)
        at = session.clock.time()
        claimed, wake = await session.backend.write(
            queuesql.dequeue, queue.name, queue.limits, executor.executor_id, names, at
        )
        for item in claimed:
            wf = item.workflow
            workflow = executor.workflows[wf.name]
            executor.spawn(
                wf.workflow_id, workflow, wf.inputs, fresh=item.fresh, deadline=item.deadline
            )
        if wake is not None:
            soonest = wake if soonest is None else min(soonest, wake)
    return soonest


async def start_delayed(executor: Executor, session: Session) -> float | None:
    """Start the delayed starts due now whose function is here (a read when none is);
    when the next one is due (None: none waits)."""
    names, at = list(executor.workflows), session.clock.time()
    wake = await session.backend.read(next_delayed, names)
    if wake is not None and wake <= at and executor.may_start:
        due, wake = await session.backend.write(start_due, executor.executor_id, names, at)
        for wf, deadline in due:
            workflow = executor.workflows[wf.name]
            executor.spawn(wf.workflow_id, workflow, wf.inputs, fresh=True, deadline=deadline)
    return wake

"""The durable calls a workflow makes, each a recorded operation: sleep, events, messages,
and the record of a child's start.

Each takes the next operation number. A replay returns what the first run recorded; the
first run does the work and records its outcome in the same transaction as its effect
(the event row, the queued or taken message), so a crash leaves both or neither. Waits
(``get_event``, ``recv``) record their deadline first and their outcome last, so a
restart waits only until the original deadline.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import _deadlinesql as deadlinesql
from . import _journal as journal
from . import _store as store
from ._change import Change
from ._exceptions import EventAlreadySetError, WorkflowConflictError, WorkflowNotFoundError
from ._history import CHILD_PREFIX, PATCH_PREFIX, identity
from ._serialization import dumps_checked, loads_checked
from ._session import check_event_args, encode_message
from ._validate import check_key, check_limit, check_value

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._replay import WorkflowContext
    from ._tx import Tx

__all__ = [
    "check_same",
    "child_id",
    "deprecate_patch",
    "patched",
    "get_event",
    "record_child",
    "recv",
    "reserve_child",
    "send",
    "set_event",
    "sleep",
]


async def sleep(ctx: WorkflowContext, seconds: float, until: float | None = None) -> None:
    """Sleep durably: the wake-up time is recorded, so a restart keeps the original one.

    ``until`` (epoch seconds) instead of ``seconds``: ``sleep_until``, the same operation.
    """
    session = ctx.session
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, "sleep")
    if recorded is not None:
        wake_at = float(ctx.outcome(recorded, "wake-up time"))
    else:
        wake_at = session.clock.time() + seconds if until is None else until
        await ctx.write(ctx.record, op_id, "sleep", session.serializer.dumps(wake_at))
    await session.clock.sleep_until(wake_at)


async def set_event(ctx: WorkflowContext, key: str, value: Any) -> None:
    """Publish ``key``; the event row and the operation record commit together."""
    check_key(key, "key")
    check_value(value, "an event value")
    data = dumps_checked(ctx.session.serializer, value, f"the value of event {key!r}")
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, "set_event", identity(key=key))
    if recorded is not None:
        ctx.outcome(recorded, "set_event")
        return

    def publish(tx: Tx) -> EventAlreadySetError | None:
        error = None
        if not journal.insert_event(tx, ctx.workflow_id, key, data):
            error = EventAlreadySetError(ctx.workflow_id, key)
        ctx.record(tx, op_id, "set_event", error=error)
        return error

    error = await ctx.write(publish)
    if error is not None:
        raise error


async def get_event(
    ctx: WorkflowContext,
    workflow_id: str,
    key: str,
    timeout: float,
    deadline_at: datetime | None = None,
) -> Any:
    """Wait for an event as an operation: the deadline is recorded first, the outcome last."""
    limit = check_event_args(workflow_id, key, timeout, deadline_at)
    session = ctx.session
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, "get_event", identity(workflow_id=workflow_id, key=key))
    what = f"event {key!r}"
    if recorded is not None and recorded.done:
        return ctx.outcome(recorded, what)
    if recorded is None:
        deadline = limit.deadline(session.clock.time())

        def look_or_start_waiting(tx: Tx) -> str | WorkflowNotFoundError | None:
            if not store.workflow_exists(tx, workflow_id):
                error = WorkflowNotFoundError(workflow_id)
                ctx.record(tx, op_id, "get_event", error=error)
                return error
            data = journal.get_event(tx, workflow_id, key)
            ctx.record(tx, op_id, "get_event", data, deadline=deadline, done=data is not None)
            return data

        found = await ctx.write(look_or_start_waiting)
        if isinstance(found, WorkflowNotFoundError):
            raise found
        if found is not None:
            return loads_checked(session.serializer, found, what)
    else:
        assert recorded.deadline is not None
        deadline = recorded.deadline

    async def lookup() -> tuple[str | None, WorkflowNotFoundError | None] | None:
        try:
            data = await ctx.read(journal.get_live_event, workflow_id, key)
        except WorkflowNotFoundError as exc:  # deleted while waited for: the outcome
            return None, exc
        return None if data is None else (data, None)

    watched = Change.event(workflow_id, key), Change.status(workflow_id)
    got = await session.notifier.wait_for(watched, lookup, deadline, hibernate=True)
    data, error = (None, None) if got is None else got
    await ctx.write(ctx.finish_wait, op_id, "get_event", data, error)
    if error is not None:
        raise error
    return None if data is None else loads_checked(session.serializer, data, what)


async def send(
    ctx: WorkflowContext,
    destination_id: str,
    message: Any,
    topic: str | None,
    idempotency_key: str | None,
) -> bool:
    """Send once: the message and the operation record commit together, so replay skips it.

    Returns whether it was enqueued (False: the idempotency key was used before). The
    record's output is ``False`` then, and empty otherwise, so that a replay (and records
    written before sends told) return the same.
    """
    serializer = ctx.session.serializer
    topic, idempotency_key, data = encode_message(
        serializer, destination_id, message, topic, idempotency_key
    )
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, "send", identity(destination_id=destination_id, topic=topic))
    if recorded is not None:
        return ctx.outcome(recorded, "send") is not False
    duplicate = serializer.dumps(False)

    def enqueue(tx: Tx) -> WorkflowNotFoundError | bool:
        error = None
        sent = journal.enqueue_message(tx, destination_id, topic, data, idempotency_key)
        if sent is None:
            error, sent = WorkflowNotFoundError(destination_id), False
        output = None if sent or error is not None else duplicate
        ctx.record(tx, op_id, "send", output, error=error)
        return sent if error is None else error

    result = await ctx.write(enqueue)
    if isinstance(result, WorkflowNotFoundError):
        raise result
    return result


class _Receive:
    """The database side of one ``recv``: methods instead of closures, so that each of
    many waiting workflows holds one small object."""

    __slots__ = ("ctx", "op_id", "topic")

    def __init__(self, ctx: WorkflowContext, op_id: int, topic: str | None) -> None:
        self.ctx, self.op_id, self.topic = ctx, op_id, topic

    def take_or_start_waiting(self, tx: Tx, deadline: float | None) -> str | None:
        data = journal.take_message(tx, self.ctx.workflow_id, self.topic)
        self.ctx.record(tx, self.op_id, "recv", data, deadline=deadline, done=data is not None)
        return data

    async def take_or_start_waiting_now(self, deadline: float | None) -> tuple[str] | None:
        return await self._written(self.take_or_start_waiting, deadline)

    async def _written(self, fn: Callable[..., str | None], *args: Any) -> tuple[str] | None:
        """``fn``'s message, written (a 1-tuple: ``wait_for``'s found value), or None."""
        data = await self.ctx.write(fn, *args)
        return None if data is None else (data,)

    def take(self, tx: Tx) -> str | None:
        data = journal.take_message(tx, self.ctx.workflow_id, self.topic)
        if data is not None:
            self.ctx.finish_wait(tx, self.op_id, "recv", data)
        return data

    async def take_now(self) -> tuple[str] | None:
        return await self._written(self.take)

    async def take_if_any(self) -> tuple[str] | None:
        if not await self.ctx.read(journal.peek_message, self.ctx.workflow_id, self.topic):
            return None  # a read, so idle re-checks never take the write lock
        return await self.take_now()


async def recv(
    ctx: WorkflowContext, topic: str | None, timeout: float, deadline_at: datetime | None = None
) -> Any:
    """Consume the oldest message of the workflow's ``topic`` queue, or None at the deadline.

    Taking the message and recording the operation are one transaction: a crash either
    leaves the message queued and nothing recorded, or consumed and recorded.
    """
    check_key(topic, "topic", optional=True)
    limit = check_limit(timeout, deadline_at)
    session = ctx.session
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, "recv", identity(topic=topic))
    if recorded is not None and recorded.done:
        return ctx.outcome(recorded, "message")
    receive = _Receive(ctx, op_id, topic)
    first = None
    if recorded is None:
        deadline = limit.deadline(session.clock.time())
        first = functools.partial(receive.take_or_start_waiting_now, deadline)
    else:
        assert recorded.deadline is not None
        deadline = recorded.deadline
    # Registered before the first look (a write when the wait is new): a message that
    # write did not see rings the waiter, so no read follows it.
    got = await session.notifier.wait_for(
        Change.message(ctx.workflow_id, topic),
        receive.take_if_any,
        deadline,
        on_notify=receive.take_now,
        first=first,
        hibernate=True,
    )
    if got is None:
        await ctx.write(ctx.finish_wait, op_id, "recv", None)
        return None
    return loads_checked(session.serializer, got[0], "message")


def reserve_child(
    ctx: WorkflowContext, name: str, workflow_id: str | None
) -> tuple[int, str, bool]:
    """Take the operation number of a child's start: its number, its ID, and whether the
    start was replayed (then nothing more is to be done)."""
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, CHILD_PREFIX + name)  # the name is the child's identity
    if recorded is not None:
        recorded_id: str = ctx.outcome(recorded, "child workflow ID")
        return op_id, recorded_id, True
    return op_id, child_id(ctx, op_id, workflow_id), False


def child_id(ctx: WorkflowContext, op_id: int, workflow_id: str | None) -> str:
    """The ID of a workflow started by operation ``op_id``: the one given, else derived
    from the parent's ID and the operation number (the same on every replay)."""
    return workflow_id if workflow_id is not None else f"{ctx.workflow_id}-{op_id}"


async def record_child(
    ctx: WorkflowContext,
    op_id: int,
    workflow_id: str,
    name: str,
    inputs: str,
    owner: str,
    timing: deadlinesql.Timing | None = None,
) -> deadlinesql.Placed | None:
    """Insert the child's row (owned by ``owner``; its deadline no later than its
    parent's) and record its start, in one transaction; None if it existed already,
    else where it stands (the caller runs it unless its start is delayed)."""
    output = ctx.session.serializer.dumps(workflow_id)

    def start_child(tx: Tx) -> deadlinesql.Placed | None:
        existing = store.insert_workflow(tx, workflow_id, name, inputs, owner, ctx.workflow_id)
        check_same(workflow_id, existing, name)
        ctx.record(tx, op_id, CHILD_PREFIX + name, output)
        if existing is not None:
            return None
        return deadlinesql.place(tx, workflow_id, ctx.workflow_id, timing)

    return await ctx.write(start_child)


async def patched(ctx: WorkflowContext, name: str) -> bool:
    """Whether the workflow takes the patched branch ``name``: True when running new code
    (a marker operation is recorded), and when replaying a history that recorded the
    marker here; False when replaying a history recorded before the patch, whose next
    operation is another call (that number is not taken: the old branch makes that call).
    """
    marker = PATCH_PREFIX + check_key(name, "name")
    upcoming = ctx.recorded.get(ctx.next_op)
    if (
        upcoming is not None
        and upcoming.name != marker
        and not upcoming.name.startswith(PATCH_PREFIX)
        and ctx.nondeterminism is None
    ):
        return False  # recorded before the patch existed: the old branch
    op_id = ctx.reserve()
    if ctx.replayed(op_id, marker) is None:  # another patch's marker: NonDeterminismError
        await ctx.write(ctx.record, op_id, marker)
    return True


def deprecate_patch(ctx: WorkflowContext, name: str) -> None:
    """For code that dropped the old branch of patch ``name``: pass over its marker where
    a history has one; record nothing."""
    marker = PATCH_PREFIX + check_key(name, "name")
    upcoming = ctx.recorded.get(ctx.next_op)
    if upcoming is not None and upcoming.name == marker:
        ctx.reserve()


def check_same(workflow_id: str, existing: str | None, name: str) -> None:
    """Refuse to start ``name`` under the ID of a stored workflow of another name."""
    if existing is not None and existing != name:
        raise WorkflowConflictError(workflow_id, existing, name)

"""Messages as workflow operations: ``send`` and ``recv`` called inside a workflow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _store as store
from ._context import identity
from ._exceptions import WorkflowNotFoundError
from ._notifier import message_key
from ._serialization import loads_checked

if TYPE_CHECKING:
    from ._context import WorkflowContext
    from ._db import Tx
    from ._runtime import Runtime

__all__ = ["recv_in_workflow", "send_in_workflow"]


async def send_in_workflow(
    rt: Runtime,
    ctx: WorkflowContext,
    destination_id: str,
    data: str,
    topic: str | None,
    idempotency_key: str | None,
) -> bool:
    """Send once: the message and the operation record commit together, so replay skips it.

    Returns whether it was enqueued (False: the idempotency key was used before). The
    record's output is ``False`` then, and empty otherwise, so that a replay (and records
    written before sends told) return the same.
    """
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, "send", identity(destination_id=destination_id, topic=topic))
    if recorded is not None:
        return ctx.outcome(recorded, "send") is not False
    notifier = rt.notifier
    duplicate = rt.serializer.dumps(False)

    def enqueue(tx: Tx) -> WorkflowNotFoundError | bool:
        error = None
        sent = False
        if not store.workflow_exists(tx, destination_id):
            error = WorkflowNotFoundError(destination_id)
        elif store.enqueue_message(tx, destination_id, topic, data, idempotency_key):
            sent = True
            key = message_key(destination_id, topic)
            tx.after_commit(lambda: notifier.notify(key))
        output = None if sent or error is not None else duplicate
        ctx.record(tx, op_id, "send", output, error=error)
        return sent if error is None else error

    result = await ctx.write(enqueue)
    if isinstance(result, WorkflowNotFoundError):
        raise result
    return result


async def recv_in_workflow(
    rt: Runtime, ctx: WorkflowContext, topic: str | None, timeout: float
) -> Any:
    """Consume the oldest message of the workflow's ``topic`` queue, or None at the deadline.

    Taking the message and recording the operation are one transaction: a crash either
    leaves the message queued and nothing recorded, or consumed and recorded.
    """
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, "recv", identity(topic=topic))
    what = "message"
    if recorded is not None and recorded.done:
        return ctx.outcome(recorded, what)
    workflow_id = ctx.workflow_id
    if recorded is None:
        deadline = rt.clock.time() + timeout

        def take_or_start_waiting(tx: Tx) -> str | None:
            data = store.take_message(tx, workflow_id, topic)
            ctx.record(tx, op_id, "recv", data, deadline=deadline, done=data is not None)
            return data

        data = await ctx.write(take_or_start_waiting)
        if data is not None:
            return loads_checked(rt.serializer, data, what)
    else:
        assert recorded.deadline is not None
        deadline = recorded.deadline

    def take(tx: Tx) -> str | None:
        data = store.take_message(tx, workflow_id, topic)
        if data is not None:
            ctx.finish_wait(tx, op_id, "recv", data)
        return data

    async def take_now() -> tuple[str] | None:
        data = await ctx.write(take)
        return None if data is None else (data,)

    async def take_if_any() -> tuple[str] | None:
        if not await ctx.read(store.peek_message, workflow_id, topic):
            return None  # a read, so idle re-checks never take the write lock
        return await take_now()

    got = await rt.notifier.wait_for(
        message_key(workflow_id, topic), take_if_any, deadline, on_notify=take_now
    )
    if got is None:
        await ctx.write(ctx.finish_wait, op_id, "recv", None)
        return None
    return loads_checked(rt.serializer, got[0], what)

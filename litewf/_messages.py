"""Messages as workflow operations: ``send`` and ``recv`` called inside a workflow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _store as store
from ._exceptions import WorkflowNotFoundError
from ._notifier import message_key
from ._serialization import loads_checked

if TYPE_CHECKING:
    from ._context import WorkflowContext
    from ._runtime import Runtime

__all__ = ["recv_in_workflow", "send_in_workflow"]


async def send_in_workflow(
    rt: Runtime,
    ctx: WorkflowContext,
    destination_id: str,
    data: str,
    topic: str | None,
    idempotency_key: str | None,
) -> None:
    """Send once: the message and the operation record commit together, so replay skips it."""
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, "send")
    if recorded is not None:
        ctx.outcome(recorded, "send")
        return
    error: WorkflowNotFoundError | None = None
    async with rt.db.transaction() as tx:
        if not await store.workflow_exists(tx, destination_id):
            error = WorkflowNotFoundError(destination_id)
        elif await store.enqueue_message(tx, destination_id, topic, data, idempotency_key):
            key = message_key(destination_id, topic)
            tx.after_commit(lambda: rt.notifier.notify(key))
        await ctx.record(tx, op_id, "send", error=error)
    if error is not None:
        raise error


async def recv_in_workflow(
    rt: Runtime, ctx: WorkflowContext, topic: str | None, timeout: float
) -> Any:
    """Consume the oldest message of the workflow's ``topic`` queue, or None at the deadline.

    Taking the message and recording the operation are one transaction: a crash either
    leaves the message queued and nothing recorded, or consumed and recorded.
    """
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, "recv")
    what = "message"
    if recorded is not None and recorded.done:
        return ctx.outcome(recorded, what)
    workflow_id = ctx.workflow_id
    if recorded is None:
        deadline = rt.clock.time() + timeout
        async with rt.db.transaction() as tx:
            data = await store.take_message(tx, workflow_id, topic)
            await ctx.record(tx, op_id, "recv", data, deadline=deadline, done=data is not None)
        if data is not None:
            return loads_checked(rt.serializer, data, what)
    else:
        assert recorded.deadline is not None
        deadline = recorded.deadline

    async def take() -> tuple[str] | None:
        if not await store.peek_message(rt.db, workflow_id, topic):
            return None
        async with rt.db.transaction() as tx:
            data = await store.take_message(tx, workflow_id, topic)
            if data is None:
                return None
            await ctx.finish_wait(tx, op_id, "recv", data)
        return (data,)

    got = await rt.notifier.wait_for(message_key(workflow_id, topic), take, deadline)
    if got is None:
        async with rt.db.transaction() as tx:
            await ctx.finish_wait(tx, op_id, "recv", None)
        return None
    return loads_checked(rt.serializer, got[0], what)

"""Events as workflow operations: ``set_event`` and ``get_event`` called inside a workflow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _store as store
from ._context import identity
from ._exceptions import EventAlreadySetError, WorkflowNotFoundError
from ._notifier import event_key
from ._serialization import loads_checked

if TYPE_CHECKING:
    from ._context import WorkflowContext
    from ._db import Tx
    from ._runtime import Runtime

__all__ = ["get_event_in_workflow", "set_event_in_workflow"]


async def set_event_in_workflow(rt: Runtime, ctx: WorkflowContext, key: str, data: str) -> None:
    """Publish ``key``; the event row and the operation record commit together."""
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, "set_event", identity(key=key))
    if recorded is not None:
        ctx.outcome(recorded, "set_event")
        return
    notifier = rt.notifier

    def publish(tx: Tx) -> EventAlreadySetError | None:
        error = None
        if store.insert_event(tx, ctx.workflow_id, key, data):
            tx.after_commit(lambda: notifier.notify(event_key(ctx.workflow_id, key)))
        else:
            error = EventAlreadySetError(ctx.workflow_id, key)
        ctx.record(tx, op_id, "set_event", error=error)
        return error

    error = await ctx.write(publish)
    if error is not None:
        raise error


async def get_event_in_workflow(
    rt: Runtime, ctx: WorkflowContext, workflow_id: str, key: str, timeout: float
) -> Any:
    """Wait for an event as an operation: the deadline is recorded first, the outcome last."""
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, "get_event", identity(workflow_id=workflow_id, key=key))
    what = f"event {key!r}"
    if recorded is not None and recorded.done:
        return ctx.outcome(recorded, what)
    if recorded is None:
        deadline = rt.clock.time() + timeout

        def look_or_start_waiting(tx: Tx) -> str | WorkflowNotFoundError | None:
            if not store.workflow_exists(tx, workflow_id):
                error = WorkflowNotFoundError(workflow_id)
                ctx.record(tx, op_id, "get_event", error=error)
                return error
            data = store.get_event(tx, workflow_id, key)
            ctx.record(tx, op_id, "get_event", data, deadline=deadline, done=data is not None)
            return data

        found = await ctx.write(look_or_start_waiting)
        if isinstance(found, WorkflowNotFoundError):
            raise found
        if found is not None:
            return loads_checked(rt.serializer, found, what)
    else:
        assert recorded.deadline is not None
        deadline = recorded.deadline

    async def lookup() -> tuple[str] | None:
        data = await ctx.read(store.get_event, workflow_id, key)
        return None if data is None else (data,)

    got = await rt.notifier.wait_for(event_key(workflow_id, key), lookup, deadline)
    await ctx.write(ctx.finish_wait, op_id, "get_event", None if got is None else got[0])
    return None if got is None else loads_checked(rt.serializer, got[0], what)

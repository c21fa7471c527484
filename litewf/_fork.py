"""Fork and delete: repairing what resume cannot, and removing a workflow for good.

``fork_workflow`` makes a new workflow with the source's function and inputs whose history
starts as a copy of the source's operations numbered below ``from_step`` (with the events
and stream values they wrote, see ``_forksql``): run with today's code, it replays those
and runs the rest anew. A runtime that has the function runs the fork at once; otherwise
(a Client, the CLI, a runtime without it) the fork is PENDING and unowned, for a runtime
that has the function to claim at its next recovery pass, as after ``resume_workflow``.

``delete_workflow`` deletes a workflow and all its data with garbage collection's own
deletion (``_upkeep.delete_workflows``); a run of it anywhere stops, since its row is gone.

Inside a workflow both are recorded operations (``fork_workflow``, ``delete_workflow``):
a replay returns the recorded outcome and does not fork or delete again. A fork's default
ID there is derived like a child's, from the caller's ID and the operation number.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from . import _forksql as forksql
from . import _operations as operations
from . import _upkeep as upkeep
from ._exceptions import (
    InvalidValueError,
    LitewfError,
    WorkflowConflictError,
    WorkflowNotFoundError,
)
from ._history import identity
from ._validate import check_count, check_id
from ._workflow import Workflow

if TYPE_CHECKING:
    from ._replay import WorkflowContext
    from ._session import Session
    from ._tx import Tx

__all__ = ["Runner", "check_from_step", "delete", "fork"]

FORK = "fork_workflow"
DELETE = "delete_workflow"


class Runner(Protocol):
    """What runs a fork at once: a runtime's executor (``_executor.Executor``)."""

    executor_id: str

    @property
    def workflows(self) -> Mapping[str, Workflow[Any, Any]]: ...

    def spawn(
        self, workflow_id: str, wf: Workflow[Any, Any], inputs: str, *, fresh: bool
    ) -> None: ...

    def starting_up(self, workflow_id: str) -> AbstractContextManager[None]: ...


def check_from_step(value: Any) -> int:
    """``from_step``: an int >= 0; a number past every operation SQLite can number copies
    them all, as any number past the recorded ones does."""
    return min(check_count(value, "from_step"), forksql.MAX_STEP)


async def fork(
    session: Session,
    runner: Runner | None,
    ctx: WorkflowContext | None,
    source_id: str,
    from_step: int,
    workflow_id: str | None,
) -> str:
    """Fork ``source_id`` before operation ``from_step`` as ``workflow_id`` (None: a new
    UUID, or in a workflow an ID derived from the call); the fork's ID."""
    check_id(source_id)
    step = check_from_step(from_step)
    if workflow_id is not None:
        check_id(workflow_id)

    def owner(name: str) -> str | None:
        """The runner that has the function owns (and runs) the fork; else no one yet."""
        return runner.executor_id if runner is not None and name in runner.workflows else None

    if ctx is None:
        new_id = workflow_id if workflow_id is not None else str(uuid.uuid4())
        with _starting(runner, new_id):
            forked = await session.backend.write(
                forksql.fork_workflow, source_id, new_id, step, owner
            )
            _run(runner, new_id, forked)
        return new_id
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, FORK, identity(workflow_id=source_id, from_step=from_step))
    if recorded is not None:
        recorded_id: str = ctx.outcome(recorded, "the fork's workflow ID")
        return recorded_id
    new_id = operations.child_id(ctx, op_id, workflow_id)
    output = session.serializer.dumps(new_id)

    def fork_and_record(tx: Tx) -> forksql.Forked | LitewfError:
        try:
            forked = forksql.fork_workflow(tx, source_id, new_id, step, owner)
        except (WorkflowNotFoundError, WorkflowConflictError) as exc:  # nothing written
            ctx.record(tx, op_id, FORK, error=exc)
            return exc
        ctx.record(tx, op_id, FORK, output)
        return forked

    with _starting(runner, new_id):
        result = await ctx.write(fork_and_record)
        if isinstance(result, LitewfError):
            raise result
        _run(runner, new_id, result)
    return new_id


def _starting(runner: Runner | None, workflow_id: str) -> AbstractContextManager[None]:
    """Mark the fork as being started (its row is the runner's before its task runs)."""
    return contextlib.nullcontext() if runner is None else runner.starting_up(workflow_id)


def _run(runner: Runner | None, workflow_id: str, forked: forksql.Forked) -> None:
    if runner is not None and forked.owned:
        # Not fresh: the run loads the copied history and replays it.
        runner.spawn(workflow_id, runner.workflows[forked.name], forked.inputs, fresh=False)


async def delete(
    session: Session, ctx: WorkflowContext | None, workflow_id: str, children: bool
) -> dict[str, int]:
    """Delete the workflow (with ``children``: its descendants too) and all their data;
    the rows deleted, by table (empty when replayed in a workflow)."""
    check_id(workflow_id)
    if not isinstance(children, bool):
        raise InvalidValueError(f"children must be True or False, got {children!r}")
    if ctx is None:
        return await session.backend.write(upkeep.delete_tree, workflow_id, children)
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, DELETE, identity(workflow_id=workflow_id, children=children))
    if recorded is not None:
        ctx.outcome(recorded, DELETE)  # raises a recorded refusal
        return {}

    def delete_and_record(tx: Tx) -> dict[str, int] | LitewfError:
        try:
            counts = upkeep.delete_tree(tx, workflow_id, children, caller=ctx.workflow_id)
        except (WorkflowNotFoundError, InvalidValueError) as exc:  # nothing deleted
            ctx.record(tx, op_id, DELETE, error=exc)
            return exc
        ctx.record(tx, op_id, DELETE)
        return counts

    result = await ctx.write(delete_and_record)
    if isinstance(result, LitewfError):
        raise result
    return result

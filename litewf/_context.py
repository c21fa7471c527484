"""The running workflow's replay state, and the record-or-replay rule for operations.

Every durable call a workflow makes (step, sleep, send, recv, set_event, get_event,
child start) takes the next operation number. If that number was recorded by an earlier
run, the recorded outcome is returned instead of doing the work again; if the recorded
name differs, the code changed under a running workflow and replay cannot be trusted,
so ``NonDeterminismError`` ends it.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _store as store
from ._exceptions import InvalidValueError, NonDeterminismError, NotInWorkflowError, _Superseded
from ._rows import Columns
from ._serialization import encode_exception, loads_checked

if TYPE_CHECKING:
    from ._db import Tx
    from ._runtime import Runtime

__all__ = ["WorkflowContext", "current", "current_workflow_id", "require"]


@dataclass(slots=True)
class WorkflowContext:
    """What a running workflow knows about itself."""

    runtime: Runtime
    workflow_id: str
    executor_id: str
    recorded: dict[int, store.Operation]
    next_op: int = 0
    nondeterminism: NonDeterminismError | None = None

    def reserve(self) -> int:
        """Take the next operation number."""
        op_id, self.next_op = self.next_op, self.next_op + 1
        return op_id

    def replayed(self, op_id: int, name: str) -> store.Operation | None:
        """The recorded outcome of operation ``op_id``, checked against ``name``."""
        if self.runtime._crash_hook is not None:  # litewf.testing: crash before this call
            self.runtime._crash_hook(self.workflow_id, op_id, name)
        op = self.recorded.get(op_id)
        if op is not None and op.name != name:
            self.nondeterminism = NonDeterminismError(self.workflow_id, op_id, op.name, name)
            raise self.nondeterminism
        return op

    def outcome(self, op: store.Operation, what: str) -> Any:
        """Return the recorded value, or raise the recorded exception."""
        if op.error is not None:
            # A malformed record (a tampered file) is a CorruptDatabaseError, not a ValueError.
            check = Columns(self.runtime.db.path, "operations", self.workflow_id)
            raise check.exception("error", op.error)
        if op.output is None:
            return None
        return loads_checked(self.runtime.serializer, op.output, what)

    def record(
        self,
        tx: Tx,
        op_id: int,
        name: str,
        output: str | None = None,
        error: BaseException | None = None,
        *,
        deadline: float | None = None,
        done: bool = True,
    ) -> None:
        """Record an outcome (or a started wait) in ``tx``; unwind if no longer ours to run.

        Runs in the database thread; the in-memory record follows once the write commits.
        """
        encoded = None if error is None else encode_exception(error)
        op = store.Operation(name, output, encoded, done, deadline)
        if not store.record_operation(tx, self.workflow_id, self.executor_id, op_id, op):
            raise _Superseded()
        tx.after_commit(lambda: self.recorded.__setitem__(op_id, op))

    def finish_wait(
        self,
        tx: Tx,
        op_id: int,
        name: str,
        output: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Record the outcome of a wait started by ``record(..., done=False)``."""
        encoded = None if error is None else encode_exception(error)
        if not store.finish_wait(tx, self.workflow_id, self.executor_id, op_id, output, encoded):
            raise _Superseded()
        op = store.Operation(name, output, encoded)
        tx.after_commit(lambda: self.recorded.__setitem__(op_id, op))


#: Operation names litewf records for its own calls; user steps may not take them.
BUILTIN_OPERATIONS = frozenset({"sleep", "send", "recv", "set_event", "get_event"})
CHILD_PREFIX = "start_workflow "


def operation_kind(name: str) -> str:
    """What kind of call recorded operation ``name`` was: step, child, or a builtin's name."""
    if name in BUILTIN_OPERATIONS:
        return name
    if name.startswith(CHILD_PREFIX):
        return "child"
    return "step"


def check_step_name(name: str) -> str:
    if name in BUILTIN_OPERATIONS or name.startswith(CHILD_PREFIX):
        raise InvalidValueError(
            f"step name {name!r} is reserved for litewf's own operations; choose another"
        )
    return name


_current: ContextVar[WorkflowContext | None] = ContextVar("litewf_workflow", default=None)
_in_step: ContextVar[bool] = ContextVar("litewf_in_step", default=False)


def current() -> WorkflowContext | None:
    """The running workflow's context, outside steps (a step's inner calls are plain)."""
    if _in_step.get():
        return None
    return _current.get()


def current_workflow_id() -> str | None:
    """The running workflow's ID, inside its steps too."""
    ctx = _current.get()
    return None if ctx is None else ctx.workflow_id


def require(call: str) -> WorkflowContext:
    ctx = current()
    if ctx is None:
        raise NotInWorkflowError(call)
    return ctx


def enter(ctx: WorkflowContext) -> Token[WorkflowContext | None]:
    return _current.set(ctx)


def leave(token: Token[WorkflowContext | None]) -> None:
    _current.reset(token)


def enter_step() -> Token[bool]:
    """Inside a step body durable calls are plain calls: the step is the unit of replay."""
    return _in_step.set(True)


def leave_step(token: Token[bool]) -> None:
    _in_step.reset(token)

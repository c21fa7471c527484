"""The running workflow's replay state, and the record-or-replay rule for operations.

Every durable call a workflow makes (step, sleep, send, recv, set_event, get_event,
child start, and the reads of durable state) takes the next operation number. If that
number was recorded by an earlier run, the recorded outcome is returned instead of doing
the work again; if the recorded call differs in kind or in its identifying arguments
(the set_event key, the send destination and topic, ...), the code changed under a
running workflow and replay cannot be trusted, so ``NonDeterminismError`` ends it.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import anyio

from . import _store as store
from ._exceptions import (
    CorruptDatabaseError,
    DatabaseError,
    EventAlreadySetError,
    InvalidValueError,
    NonDeterminismError,
    NotInWorkflowError,
    WorkflowNotFoundError,
    _Superseded,
)
from ._rows import Columns
from ._serialization import (
    encode_exception,
    exception_type_and_message,
    loads_checked,
    qualified_type_name,
)

if TYPE_CHECKING:
    from ._db import Tx
    from ._runtime import Runtime

__all__ = ["WorkflowContext", "current", "current_workflow_id", "require", "retry_storage"]

logger = logging.getLogger("litewf")

P = ParamSpec("P")
T = TypeVar("T")

#: First and longest pause between tries of a workflow's write the database refused.
STORAGE_RETRY_FIRST_S = 0.05
STORAGE_RETRY_MAX_S = 5.0


async def retry_storage(workflow_id: str, call: Callable[[], Awaitable[T]]) -> T:
    """``await call()`` until the database accepts it: a busy, full or failing database is
    not the workflow's outcome. The workflow waits, PENDING and still owned here, as after
    a crash but without running anything again; shutdown or a cancel ends the wait.

    Retrying the same write is safe: a refused write left nothing behind (its
    transaction rolled back, or never began). A damaged row (``CorruptDatabaseError``)
    is raised at once: waiting does not repair it, so it ends the workflow ``ERROR``
    naming the column, and ``resume_workflow`` runs it again once the row is repaired.
    """
    delay = STORAGE_RETRY_FIRST_S
    while True:
        try:
            return await call()
        except CorruptDatabaseError:
            raise  # damage does not heal by waiting: the workflow's outcome, for a human
        except DatabaseError as exc:
            logger.warning(
                "workflow %s cannot record its progress (%s); it stays PENDING and "
                "tries again in %.2g s",
                workflow_id,
                exc,
                delay,
            )
        await anyio.sleep(delay)
        delay = min(delay * 2, STORAGE_RETRY_MAX_S)


#: The replay rules of workflows recorded now. 1: recorded before operation identity
#: (reads were not operations; rows carry no target). 2: reads are recorded operations.
HISTORY_VERSION = 2


def identity(**arguments: object) -> str:
    """The canonical JSON of a call's identifying arguments, as stored and compared."""
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"))


def describe(name: str, target: str | None) -> str:
    """A call as a NonDeterminismError names it: ``set_event(key='a')``, ``step 'charge'``."""
    if target is None:
        builtin = name in BUILTIN_OPERATIONS or name.startswith(CHILD_PREFIX)
        return name if builtin else f"step {name!r}"
    try:
        arguments = json.loads(target)
        shown = ", ".join(f"{key}={value!r}" for key, value in arguments.items())
    except (ValueError, AttributeError):
        shown = target
    return f"{name}({shown})"


@dataclass(slots=True)
class WorkflowContext:
    """What a running workflow knows about itself."""

    runtime: Runtime
    workflow_id: str
    executor_id: str
    recorded: dict[int, store.Operation]
    next_op: int = 0
    nondeterminism: NonDeterminismError | None = None
    #: The replay rules this workflow's history was recorded under (see HISTORY_VERSION).
    history: int = HISTORY_VERSION
    #: Identities of the calls of this run, by operation number, for ``record``.
    targets: dict[int, str | None] = field(default_factory=dict)

    @property
    def records_reads(self) -> bool:
        """Whether reads of durable state are operations in this workflow's history
        (not in one recorded before they were: replaying it must number the same calls)."""
        return self.history >= 2

    async def write(
        self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``db.write`` for the workflow's own progress: retried while the database fails."""
        db = self.runtime.db
        return await retry_storage(
            self.workflow_id, functools.partial(db.write, fn, *args, **kwargs)
        )

    async def read(
        self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``db.read`` for the workflow's own waits: retried while the database fails."""
        db = self.runtime.db
        return await retry_storage(
            self.workflow_id, functools.partial(db.read, fn, *args, **kwargs)
        )

    def reserve(self) -> int:
        """Take the next operation number."""
        op_id, self.next_op = self.next_op, self.next_op + 1
        return op_id

    def replayed(self, op_id: int, name: str, target: str | None = None) -> store.Operation | None:
        """The recorded outcome of operation ``op_id``, checked against the call: its
        ``name`` (the kind, a step's or child's name) and ``target`` (see ``identity``).

        A row recorded before operation identity has no target and is compared by name.
        After a divergence every later call raises too, so code that swallows the error
        cannot record anything more.
        """
        if self.nondeterminism is not None:
            raise self.nondeterminism
        if self.runtime._crash_hook is not None:  # litewf.testing: crash before this call
            self.runtime._crash_hook(self.workflow_id, op_id, name)
        self.targets[op_id] = target
        op = self.recorded.get(op_id)
        if op is not None and (op.name != name or (op.target is not None and op.target != target)):
            self.nondeterminism = NonDeterminismError(
                self.workflow_id, op_id, describe(op.name, op.target), describe(name, target)
            )
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
        op = store.Operation(name, output, encoded, done, deadline, self.targets.get(op_id))
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
        op = store.Operation(name, output, encoded, target=self.targets.get(op_id))
        tx.after_commit(lambda: self.recorded.__setitem__(op_id, op))


#: Reads of durable state that a workflow records (history version 2 on).
READ_OPERATIONS = frozenset(
    {
        "get_all_events",
        "retrieve_workflow",
        "get_status",
        "get_result",
        "list_workflows",
        "list_steps",
    }
)
#: Operation names litewf records for its own calls; user steps may not take them.
BUILTIN_OPERATIONS = (
    frozenset({"sleep", "send", "recv", "set_event", "get_event"}) | READ_OPERATIONS
)
CHILD_PREFIX = "start_workflow "

#: Operations whose failure is a fact about the database when they ran (a key already
#: set, a workflow not there yet), not about the workflow's own history.
_STATE_DEPENDENT = frozenset({"set_event", "send", "get_event"}) | READ_OPERATIONS


def retry_ending_failure(tx: Tx, workflow_id: str) -> bool:
    """Before ``resume_workflow`` restarts an ERROR workflow: forget its last operation if
    that operation's database-dependent failure (``EventAlreadySetError``,
    ``WorkflowNotFoundError``) is what ended the workflow, so the resumed run makes the
    call again (a fixed workflow calls another key; a missing workflow may exist now).

    Nothing later was recorded, so no other outcome depended on it. True if one was dropped.
    """
    ended = store.ended_by(tx, workflow_id)
    last = store.last_operation(tx, workflow_id)
    if ended is None or last is None:
        return False
    op_id, name, error = last
    if error is None or name not in _STATE_DEPENDENT:
        return False
    retryable = {
        qualified_type_name(EventAlreadySetError),
        qualified_type_name(WorkflowNotFoundError),
    }
    error_type, error_message = exception_type_and_message(error)
    if error_type not in retryable or (error_type, error_message) != ended:
        return False
    store.delete_operation(tx, workflow_id, op_id)
    return True


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


def reading(core: object) -> WorkflowContext | None:
    """The running workflow, if a read made through ``core`` is one of its operations:
    ``core`` is its runtime's database and its history records reads."""
    ctx = current()
    if ctx is None or not ctx.records_reads or ctx.runtime._core is not core:
        return None
    return ctx


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

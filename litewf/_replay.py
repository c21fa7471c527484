"""The running workflow's replay state, and the record-or-replay rule for operations.

(What the recorded names and identities mean is ``_history``'s; the operations are in
``_operations``, ``_reads``, ``_step`` and the executor's child start.)

Every durable call a workflow makes (step, sleep, send, recv, set_event, get_event,
child start, and the reads of durable state) takes the next operation number. If that
number was recorded by an earlier run, the recorded outcome is returned instead of doing
the work again; if the recorded call differs in kind or in its identifying arguments
(the set_event key, the send destination and topic, ...), the code changed under a
running workflow and replay cannot be trusted, so ``NonDeterminismError`` ends it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

import anyio

from . import _journal as journal
from ._exceptions import (
    CorruptDatabaseError,
    DatabaseError,
    NonDeterminismError,
    NotInWorkflowError,
    _Superseded,
)
from ._history import HISTORY_VERSION, describe
from ._rows import Columns
from ._serialization import encode_exception, loads_checked

if TYPE_CHECKING:
    from ._session import Session
    from ._tx import Tx

__all__ = [
    "Crashed",
    "EndOfHistory",
    "HookSlot",
    "StepRun",
    "Hooks",
    "WorkflowContext",
    "checking_session",
    "current",
    "current_workflow_id",
    "require",
    "retry_storage",
]

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


class Hooks(Protocol):
    """What ``litewf.testing`` plugs into a runtime (``Runtime.use_hooks``) to make it die
    at a chosen point, as a SIGKILL there would."""

    def attached(self, die: Callable[[str], None]) -> None:
        """Plugged in; ``die(where)`` makes the runtime die at once."""

    def before_operation(self, workflow_id: str, op_id: int, name: str | None) -> None:
        """Before operation ``op_id`` named ``name`` runs (``name`` None: before the
        workflow's outcome is stored). May ``die`` and raise ``Crashed`` to unwind."""


class Crashed(BaseException):
    """Unwinds a workflow at a simulated crash point without letting it write anything."""


class EndOfHistory(BaseException):
    """Check mode (``litewf.testing.check_replay``): the workflow reached the end of its
    recorded history at operation ``op_id``; unwinds it before it does any new work.
    (A BaseException, as ``Crashed``: workflow code catching ``Exception`` lets it pass.)"""

    def __init__(self, op_id: int) -> None:
        super().__init__(op_id)
        self.op_id = op_id


class HookSlot:
    """Where a runtime's hooks are plugged in; each of its workflows looks here."""

    __slots__ = ("hooks",)

    def __init__(self) -> None:
        self.hooks: Hooks | None = None

    def before_operation(self, workflow_id: str, op_id: int, name: str | None) -> None:
        if self.hooks is not None:
            self.hooks.before_operation(workflow_id, op_id, name)


@dataclass(slots=True)
class WorkflowContext:
    """What a running workflow knows about itself."""

    session: Session
    workflow_id: str
    executor_id: str
    recorded: dict[int, journal.Operation]
    hooks: HookSlot
    next_op: int = 0
    nondeterminism: NonDeterminismError | None = None
    #: The replay rules this workflow's history was recorded under (see HISTORY_VERSION).
    history: int = HISTORY_VERSION
    #: Identities of the calls of this run, by operation number, for ``record``.
    targets: dict[int, str | None] = field(default_factory=dict)
    #: Check mode (``_check``): replay only; where new work would begin, ``EndOfHistory``.
    checking: bool = False
    #: In check mode, the operation number at which the history ended, once reached.
    end_of_history: int | None = None
    #: The task running the workflow's function (its recorded waits may hibernate).
    task: object = None
    #: Step bodies of this workflow running now, outcome not yet recorded (its recorded
    #: waits stay in memory meanwhile: unwinding would run those bodies again).
    steps_running: int = 0

    @property
    def records_reads(self) -> bool:
        """Whether reads of durable state are operations in this workflow's history
        (not in one recorded before they were: replaying it must number the same calls)."""
        return self.history >= 2

    async def write(
        self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``backend.write`` for the workflow's own progress: retried while the database fails."""
        backend = self.session.backend
        return await retry_storage(
            self.workflow_id, functools.partial(backend.write, fn, *args, **kwargs)
        )

    async def read(
        self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``backend.read`` for the workflow's own waits: retried while the database fails."""
        backend = self.session.backend
        return await retry_storage(
            self.workflow_id, functools.partial(backend.read, fn, *args, **kwargs)
        )

    def reserve(self) -> int:
        """Take the next operation number."""
        op_id, self.next_op = self.next_op, self.next_op + 1
        return op_id

    def replayed(
        self, op_id: int, name: str, target: str | None = None
    ) -> journal.Operation | None:
        """The recorded outcome of operation ``op_id``, checked against the call: its
        ``name`` (the kind, a step's or child's name) and ``target`` (see ``identity``).

        A row recorded before operation identity has no target and is compared by name.
        After a divergence every later call raises too, so code that swallows the error
        cannot record anything more. In check mode (``checking``) a call with no recorded
        outcome, or a wait under way, raises ``EndOfHistory`` (and so does every later one).
        """
        if self.nondeterminism is not None:
            raise self.nondeterminism
        if self.end_of_history is not None:
            raise EndOfHistory(self.end_of_history)
        self.hooks.before_operation(self.workflow_id, op_id, name)  # litewf.testing
        self.targets[op_id] = target
        op = self.recorded.get(op_id)
        if op is not None and (op.name != name or (op.target is not None and op.target != target)):
            self.nondeterminism = NonDeterminismError(
                self.workflow_id, op_id, describe(op.name, op.target), describe(name, target)
            )
            raise self.nondeterminism
        if self.checking and (op is None or not op.done):  # a new call, or a wait under way
            self.end_of_history = op_id
            raise EndOfHistory(op_id)
        return op

    def outcome(self, op: journal.Operation, what: str) -> Any:
        """Return the recorded value, or raise the recorded exception."""
        if op.error is not None:
            # A malformed record (a tampered file) is a CorruptDatabaseError, not a ValueError.
            check = Columns(self.session.path, "operations", self.workflow_id)
            raise check.exception("error", op.error)
        if op.output is None:
            return None
        return loads_checked(self.session.serializer, op.output, what)

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
        started_at: float | None = None,
    ) -> None:
        """Record an outcome (or a started wait) in ``tx``; unwind if no longer ours to run.

        ``started_at``: when the call began (epoch seconds; default: now, an instant call).
        Runs in the database thread; the in-memory record follows once the write commits.
        """
        encoded = None if error is None else encode_exception(error)
        target = self.targets.get(op_id)
        op = journal.Operation(name, output, encoded, done, deadline, target, started_at)
        if not journal.record_operation(tx, self.workflow_id, self.executor_id, op_id, op):
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
        if not journal.finish_wait(tx, self.workflow_id, self.executor_id, op_id, output, encoded):
            raise _Superseded()
        op = journal.Operation(name, output, encoded, target=self.targets.get(op_id))
        tx.after_commit(lambda: self.recorded.__setitem__(op_id, op))


@dataclass(slots=True)
class StepRun:
    """One run of a step body inside a workflow: which operation it is, and how many
    stream writes it has made (a step's writes are numbered, see ``_streams``)."""

    ctx: WorkflowContext
    op_id: int
    writes: int = 0
    #: Awaited when the body has ended (with what it raised, or None), to finish what
    #: it left under way (its batched stream writes).
    finish: Callable[[BaseException | None], Awaitable[None]] | None = None
    #: The run's stream writer (``_streams.StepWriter``), made at its first write.
    stream_writer: Any = None


_current: ContextVar[WorkflowContext | None] = ContextVar("litewf_workflow", default=None)
#: Inside a step body: its ``StepRun`` (True for a step called outside a workflow).
_in_step: ContextVar[StepRun | bool] = ContextVar("litewf_in_step", default=False)


def current() -> WorkflowContext | None:
    """The running workflow's context, outside steps (a step's inner calls are plain)."""
    if _in_step.get():
        return None
    return _current.get()


def current_workflow_id() -> str | None:
    """The running workflow's ID, inside its steps too."""
    ctx = _current.get()
    return None if ctx is None else ctx.workflow_id


def checking_session() -> Session | None:
    """Inside a workflow that ``check_replay`` replays: the session on its copy, which a
    Runtime's calls use in place of their own (launched or not)."""
    ctx = _current.get()
    return ctx.session if ctx is not None and ctx.checking else None


def reading(session: Session) -> WorkflowContext | None:
    """The running workflow, if a read made through ``session`` is one of its operations:
    ``session`` is its runtime's and its history records reads."""
    ctx = current()
    if ctx is None or not ctx.records_reads or ctx.session is not session:
        return None
    return ctx


def require(call: str) -> WorkflowContext:
    ctx = current()
    if ctx is None:
        raise NotInWorkflowError(call)
    return ctx


def enter(ctx: WorkflowContext | None) -> Token[WorkflowContext | None]:
    """Run as ``ctx`` (None: outside any workflow, say a timer of one) until ``leave``."""
    return _current.set(ctx)


def leave(token: Token[WorkflowContext | None]) -> None:
    _current.reset(token)


def current_step() -> StepRun | None:
    """The step body running in this task, if it runs inside a workflow."""
    run = _in_step.get()
    return run if isinstance(run, StepRun) else None


def enter_step(run: StepRun | None) -> Token[StepRun | bool]:
    """Inside a step body durable calls are plain calls: the step is the unit of replay."""
    return _in_step.set(True if run is None else run)


def leave_step(token: Token[StepRun | bool]) -> None:
    _in_step.reset(token)

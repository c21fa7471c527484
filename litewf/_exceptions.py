"""Errors raised by litewf; every message says what happened and what to do.

Exception hierarchy:

* LitewfError
  + NotInWorkflowError         (a workflow-only call made outside a workflow)
  + EventAlreadySetError       (set_event twice for one key)
  + WorkflowNotFoundError      (no workflow with that ID)
  + ScheduleNotFoundError      (no schedule with that name)
  + WorkflowConflictError      (an ID reused for another workflow function)
  + NonDeterminismError        (replay met another operation than was recorded)
  + SerializationError         (a value the serializer cannot store or read back)
  + InvalidValueError          (also a ValueError: an argument litewf cannot accept)
  + WorkflowCancelledError     (the workflow was cancelled)
    + WorkflowTimeoutError     (its deadline passed: it was cancelled by it)
  + StepTimeoutError           (a step attempt outlived its timeout)
  + MaxRecoveryAttemptsExceededError
  + WorkflowFailedError        (a failure whose exception class is not importable here)
  + ExecutorConflictError      (two live runtimes with one executor_id)
  + RuntimeNotLaunchedError    (a call that needs `async with rt:` first)
  + DatabaseError
    + NotADatabaseError        (the file is not SQLite at all)
    + ForeignDatabaseError     (an SQLite file that litewf did not create)
    + SchemaTooNewError        (written by a newer litewf)
    + CorruptDatabaseError     (SQLite reports the file malformed, or a stored row is)
    + DatabaseBusyError        (another process held the write lock for too long)
    + DatabaseWriteError       (the disk refused a write: full, read-only, I/O error)

Internal control-flow signals derive from BaseException so that a user's
``except Exception`` cannot swallow them; they never leave litewf.
"""

from __future__ import annotations

from typing import final

__all__ = [
    "CorruptDatabaseError",
    "DatabaseBusyError",
    "DatabaseError",
    "DatabaseWriteError",
    "EventAlreadySetError",
    "ExecutorConflictError",
    "ForeignDatabaseError",
    "InvalidValueError",
    "LitewfError",
    "MaxRecoveryAttemptsExceededError",
    "NonDeterminismError",
    "NotADatabaseError",
    "NotInWorkflowError",
    "RuntimeNotLaunchedError",
    "SchemaTooNewError",
    "SerializationError",
    "StepTimeoutError",
    "StreamClosedError",
    "WorkflowCancelledError",
    "WorkflowConflictError",
    "WorkflowFailedError",
    "WorkflowNotFoundError",
    "WorkflowTimeoutError",
]


class LitewfError(Exception):
    """Root of every error litewf raises on purpose."""


class NotInWorkflowError(LitewfError):
    """Raised when a call that only works inside a workflow is made outside one."""

    def __init__(self, call: str) -> None:
        super().__init__(
            f"{call} can only be called inside a workflow function "
            f"(one decorated with @rt.workflow() and started by the runtime)"
        )
        self.call = call


class EventAlreadySetError(LitewfError):
    """Raised when a workflow sets an event key it has already set; events are immutable."""

    def __init__(self, workflow_id: str, key: str) -> None:
        super().__init__(
            f"workflow {workflow_id!r} already set event {key!r}; events never change, "
            f"publish the new value under another key"
        )
        self.workflow_id = workflow_id
        self.key = key


class StreamClosedError(LitewfError):
    """Raised when a workflow writes to a stream it has closed; a closed stream never grows."""

    def __init__(self, workflow_id: str, key: str) -> None:
        super().__init__(
            f"workflow {workflow_id!r} already closed stream {key!r}; write before "
            f"close_stream(), or use another key"
        )
        self.workflow_id = workflow_id
        self.key = key


class WorkflowNotFoundError(LitewfError, LookupError):
    """Raised when no workflow with the given ID is stored."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(
            f"no workflow with ID {workflow_id!r} in this database; "
            f"check the ID, or start the workflow first"
        )
        self.workflow_id = workflow_id


class ScheduleNotFoundError(LitewfError, LookupError):
    """Raised when no schedule with the given name is stored."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"no schedule named {name!r} in this database; list_schedules() (or "
            f"'litewf schedule list') shows the stored ones"
        )
        self.name = name


class QueueDuplicateError(LitewfError):
    """Raised when a workflow with the same ``dedup_id`` is already queued or running in
    that queue; nothing was enqueued."""

    def __init__(self, queue_name: str, dedup_id: str, workflow_id: str) -> None:
        super().__init__(
            f"queue {queue_name!r} already holds workflow {workflow_id!r} with dedup_id "
            f"{dedup_id!r} (enqueued or running); wait for it to finish, or use another dedup_id"
        )
        self.queue_name = queue_name
        self.dedup_id = dedup_id
        self.workflow_id = workflow_id


class WorkflowConflictError(LitewfError):
    """Raised when a workflow ID is already used by another workflow function (or by
    any workflow, for a fork: a fork is always a new workflow)."""

    def __init__(self, workflow_id: str, stored: str, requested: str) -> None:
        if stored == requested:  # only a fork is refused a taken ID of its own function
            message = (
                f"workflow ID {workflow_id!r} is taken (by a stored {stored!r} workflow); "
                f"a fork is a new workflow: choose another ID"
            )
        else:
            message = (
                f"workflow ID {workflow_id!r} belongs to workflow {stored!r}, "
                f"not {requested!r}; choose another ID"
            )
        super().__init__(message)
        self.workflow_id = workflow_id
        self.stored_name = stored
        self.requested_name = requested


class NonDeterminismError(LitewfError):
    """Raised when a replay meets another operation than the one recorded at that number.

    ``recorded`` and ``called`` describe both calls with their identifying arguments,
    such as ``set_event(key='a')`` or ``step 'charge'``.
    """

    def __init__(self, workflow_id: str, op_id: int, recorded: str, called: str) -> None:
        super().__init__(
            f"workflow {workflow_id!r} is not deterministic: operation #{op_id} was recorded "
            f"as {recorded} but the code now calls {called}; make the workflow call the "
            f"same operations in the same order (decisions belong in steps), "
            f"then resume_workflow() it"
        )
        self.workflow_id = workflow_id
        self.op_id = op_id
        self.recorded = recorded
        self.called = called


class SerializationError(LitewfError):
    """Raised when a value cannot be serialized for storage, or stored data cannot be read."""


class InvalidValueError(LitewfError, ValueError):
    """Raised when an argument is of a kind litewf cannot accept (such as ``None`` as a message)."""


class WorkflowCancelledError(LitewfError):
    """Raised by ``get_result()`` of a workflow that was cancelled."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"workflow {workflow_id!r} was cancelled; resume_workflow() runs it again")
        self.workflow_id = workflow_id


class WorkflowTimeoutError(WorkflowCancelledError):
    """The outcome of a workflow whose deadline passed: it and its children ended
    CANCELLED with this error; ``get_result()`` raises it."""

    def __init__(self, workflow_id: str, deadline: float) -> None:
        LitewfError.__init__(
            self,
            f"workflow {workflow_id!r} passed its deadline (epoch {deadline:.6f}) and was "
            f"cancelled; start it with a longer timeout=, or resume_workflow() it (the "
            f"deadline stays as recorded)",
        )
        self.workflow_id = workflow_id
        self.deadline = deadline


class StepTimeoutError(LitewfError):
    """A step attempt that ran longer than the step's ``timeout`` (retried like any
    failure; recorded as the step's outcome when retries run out)."""

    def __init__(self, step: str, timeout: float) -> None:
        super().__init__(
            f"step {step!r} did not finish within its timeout of {timeout} s; raise "
            f"@rt.step(timeout=...) or make the step faster"
        )
        self.step = step
        self.timeout = timeout


class MaxRecoveryAttemptsExceededError(LitewfError):
    """Raised by ``get_result()`` of a workflow that crashed its process too often."""

    def __init__(self, workflow_id: str, attempts: int) -> None:
        super().__init__(
            f"workflow {workflow_id!r} was recovered {attempts} times and crashed each time; "
            f"find what kills the process, then resume_workflow() it"
        )
        self.workflow_id = workflow_id
        self.attempts = attempts


class WorkflowFailedError(LitewfError):
    """A recorded failure whose exception class is not imported in this process.

    ``error_type`` is the original class name (module-qualified unless builtin) and
    ``error_message`` its message.
    """

    def __init__(self, error_type: str, error_message: str) -> None:
        super().__init__(f"{error_type}: {error_message}")
        self.error_type = error_type
        self.error_message = error_message


class ExecutorConflictError(LitewfError):
    """Raised by ``launch()`` when a live runtime already uses this ``executor_id``."""

    def __init__(self, executor_id: str) -> None:
        super().__init__(
            f"executor_id {executor_id!r} is in use by another live runtime on this database; "
            f"give each runtime its own executor_id (or leave it unset)"
        )
        self.executor_id = executor_id


class RuntimeNotLaunchedError(LitewfError):
    """Raised when a call needs a launched runtime (``async with rt:``) and it is not."""

    def __init__(self, call: str, how: str = "'async with rt:' or rt.launch()") -> None:
        super().__init__(f"{call} needs a launched runtime: use {how}")


class DatabaseError(LitewfError):
    """Problems with the database file itself."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


class NotADatabaseError(DatabaseError):
    """Raised when the file is not an SQLite database; it is left untouched."""


class ForeignDatabaseError(DatabaseError):
    """Raised when the file is an SQLite database that litewf did not create; left untouched."""


class SchemaTooNewError(DatabaseError):
    """Raised when the file was written by a newer litewf; left untouched."""


class CorruptDatabaseError(DatabaseError):
    """Raised when SQLite reports the file as malformed, or a stored row holds a value
    litewf never writes (a damaged or hand-edited database).

    For a bad row, ``workflow_id`` names the workflow it belongs to and ``column`` the
    column (``"table.column"``); both are None when the file itself is damaged.
    """

    def __init__(
        self,
        path: str,
        problem: str,
        *,
        workflow_id: str | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(path, problem)
        self.workflow_id = workflow_id
        self.column = column


class DatabaseBusyError(DatabaseError):
    """Raised when another process held the write lock longer than litewf waits."""


class DatabaseWriteError(DatabaseError):
    """Raised when the disk refused a write (full, read-only, I/O error); nothing was stored."""


@final
class _Superseded(BaseException):
    """Unwinds a workflow that this runtime no longer owns (cancelled or taken over)."""


@final
class _Hibernated(BaseException):
    """Unwinds a workflow whose wait left memory (``_hibernation``): a replay resumes it."""

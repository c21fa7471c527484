"""litewf: durable workflows in one SQLite file, no server needed.

Workflows, their checkpointed steps, events and message queues live in one WAL-mode
SQLite file. A workflow whose process dies resumes where it left off; callers wait for
its events and talk to it with messages, from this process or another one.

Module map, from the ground up (issue 11 is to make every import point down this list):

- ``_types``, ``_exceptions``, ``_validate``, ``_serialization``, ``_clock``: records,
  errors, argument checks, stored forms of values and exceptions, time.
- ``_schema`` (migrations), ``_db`` (connection, group commit), ``_liveness`` (executor
  locks on the file), ``_walwatch`` + ``_notifier`` (waking), ``_store`` (all SQL),
  ``_rows`` (checks every stored column read back).
- ``_core``: what a Runtime and a Client share (calls made outside workflows).
- ``_context`` (record-or-replay, the workflow's write funnel), ``_step``, ``_workflow``,
  ``_events``, ``_messages``, ``_reads`` (recorded reads): workflow-side operations.
- ``_threads`` (sync step bodies), ``_serving`` (the runtime's own task), ``_recovery``,
  ``_management``; ``_runtime`` and ``_client`` on top.
- ``testing``, ``pytest_plugin``, ``_cli``, ``_bench``: tools around the runtime.
"""

from __future__ import annotations

from ._client import Client
from ._exceptions import (
    CorruptDatabaseError,
    DatabaseBusyError,
    DatabaseError,
    DatabaseWriteError,
    EventAlreadySetError,
    ExecutorConflictError,
    ForeignDatabaseError,
    InvalidValueError,
    LitewfError,
    MaxRecoveryAttemptsExceededError,
    NonDeterminismError,
    NotADatabaseError,
    NotInWorkflowError,
    RuntimeNotLaunchedError,
    SchemaTooNewError,
    SerializationError,
    WorkflowCancelledError,
    WorkflowConflictError,
    WorkflowFailedError,
    WorkflowNotFoundError,
)
from ._runtime import Runtime
from ._serialization import JsonSerializer, PickleSerializer, Serializer
from ._step import Step
from ._types import CollectedCounts, QueuedMessage, Status, StepRecord, WorkflowStatus
from ._workflow import Workflow, WorkflowHandle

__version__ = "0.1.0"

__all__ = (
    "Client",
    "CollectedCounts",
    "CorruptDatabaseError",
    "DatabaseBusyError",
    "DatabaseError",
    "DatabaseWriteError",
    "EventAlreadySetError",
    "ExecutorConflictError",
    "ForeignDatabaseError",
    "InvalidValueError",
    "JsonSerializer",
    "LitewfError",
    "MaxRecoveryAttemptsExceededError",
    "NonDeterminismError",
    "NotADatabaseError",
    "NotInWorkflowError",
    "PickleSerializer",
    "QueuedMessage",
    "Runtime",
    "RuntimeNotLaunchedError",
    "SchemaTooNewError",
    "SerializationError",
    "Serializer",
    "Status",
    "Step",
    "StepRecord",
    "Workflow",
    "WorkflowCancelledError",
    "WorkflowConflictError",
    "WorkflowFailedError",
    "WorkflowHandle",
    "WorkflowNotFoundError",
    "WorkflowStatus",
)

# Public names show as litewf.X in tracebacks and reprs, and stored error types read
# "litewf.WorkflowNotFoundError", so they can be rebuilt wherever litewf is imported.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("litewf."):
        _obj.__module__ = __name__
del _name, _obj

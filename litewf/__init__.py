"""litewf: durable workflows in one SQLite file, no server needed.

Workflows, their checkpointed steps, events and message queues live in one WAL-mode
SQLite file. A workflow whose process dies resumes where it left off; callers wait for
its events and talk to it with messages, from this process or another one.

Module map, from the ground up; each imports only modules listed before it
(``pyproject.toml``'s import-linter contract, checked by ``tests/test_layering.py``):

- ``_exceptions``; ``_types`` (public records), ``_validate`` (argument checks),
  ``_serialization`` (stored forms of values and exceptions), ``_tracing``
  (OpenTelemetry spans, when the application configured it).
- ``_clock`` (real time), ``_threads`` (sync step bodies), ``_change`` (what a commit
  changed: the keys waiters watch), ``_schema`` (DDL, migrations), ``_liveness`` (executor
  locks on the file), ``_walwatch`` (noticing other processes' writes), ``_ticks`` (a
  schedule's grid in time: cron, ``every=``, time zones), ``_pgdialect`` (the SQL
  modules' SQLite dialect turned into PostgreSQL's; URLs).
- ``_tx`` (a unit of work's transaction), ``_portal`` (sync code calling into the event
  loop: the one mechanism under the synchronous API), ``_pgschema`` (PostgreSQL's DDL,
  migrations), ``_dbfile`` (checks on the file), ``_pgtx`` (the ``Tx`` on PostgreSQL),
  ``_db`` (the connection, group commit), ``_pgdb`` (PostgreSQL's group commit and batched
  reads), ``_pgquick`` (a lone one-statement read on the event loop), ``_pgconn`` (a
  PostgreSQL connection, in a worker thread), ``_rows`` (checks
  every stored column read back), ``_pgliveness`` (executor advisory locks),
  ``_inspectsql`` (SQL: listing filters, a workflow's stored details, its streams).
- ``_store`` (SQL: workflows, change log, recovery), ``_journal`` (SQL: operations, events,
  messages), ``_history`` (what recorded names mean), ``_upkeep`` (SQL: gc, health),
  ``_queuesql`` (SQL: enqueue, the dequeue decision), ``_forksql`` (SQL: a fork's copy),
  ``_deadlinesql`` (SQL: workflow deadlines, delayed starts), ``_schedulesql`` (SQL:
  schedules, firing their ticks), ``_copysql`` (SQL: copying a whole database).
- ``_backend`` (``SqliteBackend``: the storage seam), ``_pgbackend`` (``PostgresBackend``:
  the same seam on PostgreSQL), ``_notifier`` (keyed wake-ups).
- ``_session`` (what a Runtime and a Client share), ``_management`` (listing, gc),
  ``_copy`` (a whole database into an empty one, across backends).
- ``_replay`` (record-or-replay), ``_deadlines`` (workflow deadlines, step timeouts: checks,
  timers), ``_hibernation`` (recorded waits beyond ``max_resident_waits`` leave memory),
  ``_operations (sleep, events, messages, child
  starts, patch markers), ``_step``, ``_reads`` (recorded reads), ``_streams``,
  ``_workflow`` (workflows, handles).
- ``_fork`` (fork and delete, outside workflows and as operations).
- ``_api`` (the calls Runtime and Client share), ``_executor`` (running workflows),
  ``_waiting`` (``wait_first``, its waits, ``sleep_until``), ``_patches`` (``patched``),
  ``_recovery``, ``_queues`` (queues: enqueue, dequeue), ``_schedules`` (schedule calls,
  ``@rt.scheduled``), ``_scheduler`` (a runtime's scheduler loop), ``_sync_api`` (blocking
  twins of ``_api``'s calls and of handles), ``_serving`` (a launch's own task),
  ``_registration`` (the runtime's decorators: workflows, steps, queues),
  ``_sync_parts`` (blocking workflows, steps, queues).
- ``_runtime``, ``_client``: the facades; ``_sync``, ``_sync_client``: their synchronous
  views (``SyncRuntime``, ``SyncClient``).
- ``_virtualclock``, ``_check`` (replaying stored histories against today's code),
  ``testing``, ``pytest_plugin``, ``_cli_output``, ``_bench_figures`` (the bench's
  figures, sizes, and each figure's ratio to its bound), ``_bench_streams``,
  ``_bench_wake``, ``_bench_queue``, ``_bench_limits`` (the machine's bounds: raw SQL,
  commit latency), ``_bench_scale`` (costs under load: 10,000 at once, a million
  rows), ``_cli_queue``, ``_cli_check``, ``_cli_change`` (fork, delete),
  ``_cli_schedule``, ``_cli_inspect`` (list, show, steps), ``_cli_start``, ``_cli_args``
  (the command line's argument types), ``_cli_migrate``
  (``litewf migrate``), ``_cli_ui`` (``litewf ui``), ``_ui`` (the dashboard's web app, the
  ``ui`` extra), ``_ui_pages`` (its HTML, every stored value escaped), ``_ui_assets`` (its
  stylesheet and script), ``_cli``, ``_bench``: tools.
"""

from __future__ import annotations

import importlib
import typing as _typing

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
    QueueDuplicateError,
    RuntimeNotLaunchedError,
    ScheduleNotFoundError,
    SchemaTooNewError,
    SerializationError,
    StepTimeoutError,
    StreamClosedError,
    WorkflowCancelledError,
    WorkflowConflictError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowTimeoutError,
)
from ._serialization import JsonSerializer, PickleSerializer, Serializer
from ._types import (
    CollectedCounts,
    QueuedMessage,
    ScheduleRecord,
    Status,
    StepRecord,
    WorkflowStatus,
)

if _typing.TYPE_CHECKING:  # imported on first use (``__getattr__``): ``litewf --help`` stays quick
    from ._client import Client
    from ._queues import Queue
    from ._runtime import Runtime
    from ._step import Step
    from ._sync import SyncRuntime
    from ._sync_api import SyncWorkflowHandle
    from ._sync_client import SyncClient
    from ._sync_parts import SyncQueue, SyncStep, SyncWorkflow
    from ._waiting import EventWait, FirstOf, MessageWait
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
    "EventWait",
    "ExecutorConflictError",
    "FirstOf",
    "ForeignDatabaseError",
    "InvalidValueError",
    "JsonSerializer",
    "LitewfError",
    "MaxRecoveryAttemptsExceededError",
    "MessageWait",
    "NonDeterminismError",
    "NotADatabaseError",
    "NotInWorkflowError",
    "PickleSerializer",
    "Queue",
    "QueuedMessage",
    "QueueDuplicateError",
    "Runtime",
    "RuntimeNotLaunchedError",
    "ScheduleNotFoundError",
    "ScheduleRecord",
    "SchemaTooNewError",
    "SerializationError",
    "Serializer",
    "Status",
    "Step",
    "StepRecord",
    "StepTimeoutError",
    "StreamClosedError",
    "SyncClient",
    "SyncQueue",
    "SyncRuntime",
    "SyncStep",
    "SyncWorkflow",
    "SyncWorkflowHandle",
    "Workflow",
    "WorkflowCancelledError",
    "WorkflowConflictError",
    "WorkflowFailedError",
    "WorkflowHandle",
    "WorkflowNotFoundError",
    "WorkflowStatus",
    "WorkflowTimeoutError",
)


# Public names show as litewf.X in tracebacks and reprs, and stored error types read
# "litewf.WorkflowNotFoundError", so they can be rebuilt wherever litewf is imported.
def _public(names: list[str], where: dict[str, _typing.Any]) -> None:
    for name in names:
        obj = where[name]
        if getattr(obj, "__module__", "").startswith("litewf."):
            obj.__module__ = __name__


_public([name for name in __all__ if name in globals()], globals())

#: The modules of the public names imported on first use: the runtime and what it needs
#: (asyncio, aiosqlite...) load only when a program touches one of them.
_LAZY = {
    "_client": ("Client",),
    "_queues": ("Queue",),
    "_runtime": ("Runtime",),
    "_step": ("Step",),
    "_sync": ("SyncRuntime",),
    "_sync_api": ("SyncWorkflowHandle",),
    "_sync_client": ("SyncClient",),
    "_sync_parts": ("SyncQueue", "SyncStep", "SyncWorkflow"),
    "_waiting": ("EventWait", "FirstOf", "MessageWait"),
    "_workflow": ("Workflow", "WorkflowHandle"),
}


def __getattr__(name: str) -> _typing.Any:
    """Load every lazily imported public name at the first use of one (so that they all
    show as ``litewf.X`` from then on)."""
    if not any(name in names for names in _LAZY.values()):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    loaded: dict[str, _typing.Any] = {}
    for module, names in _LAZY.items():
        imported = importlib.import_module(f"{__name__}.{module}")
        loaded.update((n, getattr(imported, n)) for n in names)
    _public(list(loaded), loaded)
    globals().update(loaded)
    return loaded[name]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""Schedules at run time: the calls Runtime and Client share, and ``@rt.scheduled``.

Each call is a function over a session (the CLI calls them too) and a method of the
``ScheduleCalls`` mixin. A tick's run is a workflow with the deterministic ID
``_ticks.tick_id(schedule, tick)``; its stored arguments carry litewf's own
``schedule`` entry, from which the executor rebuilds the ``scheduled_at`` keyword
(``_ticks.call_kwargs``). A run started by a runtime that has the workflow is its own
and runs at once; one started by a Client, the CLI or a runtime without the function is
PENDING and unowned, and a runtime that has the function takes it at its next
recovery pass (as with ``Client.resume_workflow``).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from . import _schedulesql as sql
from ._exceptions import InvalidValueError, ScheduleNotFoundError
from ._executor import Executor
from ._history import identity
from ._replay import WorkflowContext
from ._serialization import dumps_checked
from ._session import Session
from ._store import ClaimedWorkflow
from ._ticks import ScheduleSpec, check_spec, schedule_inputs, tick_id
from ._tx import Tx
from ._types import ScheduleRecord
from ._validate import check_id, check_key, check_when
from ._workflow import Workflow, WorkflowHandle

__all__ = [
    "MAX_BACKFILL",
    "ScheduleCalls",
    "backfill",
    "create",
    "declare",
    "delete",
    "encoder",
    "get",
    "list_all",
    "set_paused",
    "trigger",
]

R = TypeVar("R")

#: The operation name of a schedule call made inside a workflow.
SCHEDULE = "schedule"

#: The most ticks one ``backfill_schedule`` call runs.
MAX_BACKFILL = 10_000


def encoder(session: Session) -> sql.Encode:
    """How a tick's run stores its arguments, with the session's serializer."""

    def encode(name: str, tick: float, tz: str) -> str:
        value = schedule_inputs(name, tick, tz)
        return dumps_checked(session.serializer, value, f"the arguments of schedule {name!r}")

    return encode


async def create(
    session: Session,
    name: Any,
    workflow_name: str,
    timing: tuple[Any, Any, Any, Any],
    ctx: WorkflowContext | None = None,
) -> None:
    """Store schedule ``name`` (``timing``: cron, every, tz, missed), replacing one."""
    name = check_id(name, "schedule name")
    spec = check_spec(*timing)
    at = session.clock.time()
    await _write(
        session, ctx, "create", name, lambda tx: sql.put(tx, name, workflow_name, spec, at)
    )


async def declare(session: Session, declared: dict[str, ScheduleSpec]) -> None:
    """Create or update the schedules of ``@rt.scheduled`` (at launch)."""
    at = session.clock.time()
    for name, spec in declared.items():
        await session.backend.write(sql.put, name, name, spec, at)


async def get(
    session: Session, name: Any, ctx: WorkflowContext | None = None
) -> ScheduleRecord | None:
    name = check_id(name, "schedule name")
    found = await _write(session, ctx, "get", name, lambda tx: sql.get(tx, name), _found_json)
    return None if found is None else _record(found)


async def list_all(session: Session, ctx: WorkflowContext | None = None) -> list[ScheduleRecord]:
    found = await _write(session, ctx, "list", "", sql.list_all, _list_json)
    return [_record(item) for item in found]


async def set_paused(
    session: Session, name: Any, paused: bool, ctx: WorkflowContext | None = None
) -> None:
    name = check_id(name, "schedule name")
    action, at = ("pause" if paused else "resume"), session.clock.time()
    await _write(session, ctx, action, name, lambda tx: sql.set_paused(tx, name, paused, at))


async def delete(session: Session, name: Any, ctx: WorkflowContext | None = None) -> None:
    name = check_id(name, "schedule name")
    await _write(session, ctx, "delete", name, lambda tx: sql.delete(tx, name))


async def trigger(
    session: Session, executor: Executor | None, name: Any, ctx: WorkflowContext | None = None
) -> WorkflowHandle[Any]:
    """Run one tick now (its ``scheduled_at`` is now)."""
    name = check_id(name, "schedule name")
    handles = await _start(session, executor, name, [session.clock.time()], ctx, "trigger")
    return handles[0]


async def backfill(
    session: Session,
    executor: Executor | None,
    name: Any,
    start: Any,
    end: Any,
    ctx: WorkflowContext | None = None,
) -> list[WorkflowHandle[Any]]:
    """Run every tick in ``[start, end)`` not run before; a handle per tick."""
    name = check_id(name, "schedule name")
    lo, hi = check_when(start, "start"), check_when(end, "end")
    schedule = await session.backend.read(sql.get, name)
    ticks: list[float] = []
    if schedule is not None and hi > lo:
        ticks = schedule.spec.between(lo, hi, MAX_BACKFILL)
    return await _start(session, executor, name, ticks, ctx, "backfill")


async def _start(
    session: Session,
    executor: Executor | None,
    name: str,
    ticks: list[float],
    ctx: WorkflowContext | None,
    action: str,
) -> list[WorkflowHandle[Any]]:
    registered = {} if executor is None else executor.workflows

    def owner(wf_name: str) -> str | None:
        return None if executor is None or wf_name not in registered else executor.executor_id

    def store(tx: Tx) -> list[tuple[str, ClaimedWorkflow | None]]:
        return sql.start_ticks(tx, name, ticks, owner, encoder(session))[1]

    def ids(started: list[tuple[str, ClaimedWorkflow | None]]) -> list[str]:
        return [wid for wid, _ in started]

    with contextlib.ExitStack() as stack:
        if executor is not None:
            for tick in ticks:  # (the recovery loop must not take them for idle ones)
                stack.enter_context(executor.starting_up(tick_id(name, tick)))
        fresh, value = await _recorded(session, ctx, action, name, store, ids)
        if fresh and executor is not None:
            _spawn(executor, [wf for _, wf in value if wf is not None])
    found = ids(value) if fresh else value
    return [WorkflowHandle(session, str(wid)) for wid in found]


async def _write(
    session: Session,
    ctx: WorkflowContext | None,
    action: str,
    name: str,
    fn: Callable[[Tx], R],
    view: Callable[[R], Any] | None = None,
) -> Any:
    """``fn`` in a transaction (a read if ``view`` is given: a read's JSON-able form);
    inside a workflow one recorded operation, whose ``view`` it returns on every run."""
    if ctx is None:
        if view is not None:
            return await session.backend.read(fn)
        return await session.backend.write(fn)
    show = view if view is not None else (lambda result: None)
    fresh, value = await _recorded(session, ctx, action, name, fn, show)
    return show(value) if fresh else value


async def _recorded(
    session: Session,
    ctx: WorkflowContext | None,
    action: str,
    name: str,
    fn: Callable[[Tx], R],
    view: Callable[[R], Any],
) -> tuple[bool, Any]:
    """Run ``fn``; inside a workflow (``ctx``) its writes and the record of ``view`` of
    its result (or of its ``ScheduleNotFoundError``) commit together. Returns (True, the
    result) on a first run, (False, the recorded view) on a replay."""
    if ctx is None:
        return True, await session.backend.write(fn)
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, SCHEDULE, identity(action=action, schedule=name))
    if recorded is not None:
        return False, ctx.outcome(recorded, f"the recorded schedule call {action}")
    serializer = session.serializer

    def store(tx: Tx) -> tuple[ScheduleNotFoundError | None, R | None]:
        try:
            result = fn(tx)
        except ScheduleNotFoundError as exc:  # a fact about the database: the outcome
            ctx.record(tx, op_id, SCHEDULE, None, error=exc)
            return exc, None
        output = dumps_checked(serializer, view(result), f"schedule call {action}")
        ctx.record(tx, op_id, SCHEDULE, output)
        return None, result

    refused, result = await ctx.write(store)
    if refused is not None:
        raise refused
    return True, result


def _found_json(found: sql.Schedule | None) -> dict[str, Any] | None:
    return None if found is None else _list_json([found])[0]


def _list_json(found: list[sql.Schedule]) -> list[dict[str, Any]]:
    """Schedules as JSON-able values (what a workflow records), for ``_record``."""
    return [
        {
            "name": s.name,
            "workflow_name": s.workflow_name,
            "cron": s.spec.cron,
            "every": s.spec.every,
            "tz": s.spec.tz,
            "missed": s.spec.missed,
            "paused": s.paused,
            "handled_until": s.handled_until,
            "created_at": s.created_at,
            "updated_at": s.updated_at,
        }
        for s in found
    ]


def _record(item: Any) -> ScheduleRecord:
    """A schedule as the caller sees it, from its JSON-able form (or its row)."""
    if isinstance(item, sql.Schedule):
        return item.record()
    every = item["every"]
    spec = check_spec(
        item["cron"],
        None if every is None else timedelta(seconds=every),
        item["tz"],
        item["missed"],
    )
    return sql.Schedule(
        item["name"],
        item["workflow_name"],
        spec,
        bool(item["paused"]),
        float(item["handled_until"]),
        float(item["created_at"]),
        float(item["updated_at"]),
    ).record()


def _spawn(executor: Executor, claimed: list[ClaimedWorkflow]) -> None:
    for wf in claimed:
        workflow = executor.workflows.get(wf.name)
        if workflow is not None:
            executor.spawn(wf.workflow_id, workflow, wf.inputs, fresh=True)


def takes_scheduled_at(wf: Workflow[Any, Any]) -> Workflow[Any, Any]:
    """``wf``, if it can be called as a schedule calls it: ``wf(scheduled_at=...)``."""
    try:
        inspect.signature(wf.fn).bind(scheduled_at=None)
    except TypeError:
        raise InvalidValueError(
            f"{wf!r} cannot be scheduled: a scheduled workflow is called with one keyword "
            f"argument, scheduled_at (give any other parameter a default)"
        ) from None
    except ValueError:  # no signature to inspect (a builtin): let the call decide
        pass
    return wf


class ScheduleCalls:
    """Mixin: schedule management for ``Runtime`` and ``Client``. Inside a workflow each
    call is one recorded operation (exactly once; replays return what it returned)."""

    def _session_for(self, call: str) -> Session:
        raise NotImplementedError

    def _workflow(self) -> WorkflowContext | None:
        """The running workflow whose operations these calls are, if any."""
        return None

    def _schedule_executor(self) -> Executor | None:
        """The executor that runs the ticks it starts itself (None: a Client)."""
        return None

    def _schedule_workflow(self, workflow: Any) -> str:
        """The registered name of ``workflow`` (a Client is given the name)."""
        return check_key(workflow, "workflow")

    async def create_schedule(
        self,
        name: str,
        workflow: Any,
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        tz: str = "UTC",
        missed: str = "latest",
    ) -> None:
        """Store schedule ``name``: run ``workflow(scheduled_at=...)`` at each tick of
        ``cron`` or every ``every`` in zone ``tz``; ``missed`` ("skip", "latest" or
        "all") says which ticks missed while nothing ran are run. An existing schedule of
        that name is replaced (its pause state and the ticks it handled are kept)."""
        session = self._session_for("create_schedule")
        wf_name = self._schedule_workflow(workflow)
        await create(session, name, wf_name, (cron, every, tz, missed), self._workflow())

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        """The stored schedule ``name``, or None."""
        return await get(self._session_for("get_schedule"), name, self._workflow())

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every stored schedule, by name."""
        return await list_all(self._session_for("list_schedules"), self._workflow())

    async def pause_schedule(self, name: str) -> None:
        """Stop running the schedule's ticks until ``resume_schedule``."""
        await set_paused(self._session_for("pause_schedule"), name, True, self._workflow())

    async def resume_schedule(self, name: str) -> None:
        """Run the schedule's ticks again, from now on (ticks passed while paused are not
        run; ``backfill_schedule`` runs them)."""
        await set_paused(self._session_for("resume_schedule"), name, False, self._workflow())

    async def trigger_schedule(self, name: str) -> WorkflowHandle[Any]:
        """Run one tick of the schedule now; its handle."""
        session = self._session_for("trigger_schedule")
        return await trigger(session, self._schedule_executor(), name, self._workflow())

    async def backfill_schedule(self, name: str, start: Any, end: Any) -> list[WorkflowHandle[Any]]:
        """Run the schedule's ticks in ``[start, end)`` (aware datetimes), one workflow
        per tick; a tick that ran already is not run again. Handles in tick order."""
        session = self._session_for("backfill_schedule")
        executor = self._schedule_executor()
        return await backfill(session, executor, name, start, end, self._workflow())

    async def delete_schedule(self, name: str) -> None:
        """Delete the schedule (the workflows it ran stay)."""
        await delete(self._session_for("delete_schedule"), name, self._workflow())


class RuntimeScheduleCalls(ScheduleCalls):
    """The Runtime's side: workflows are functions, and ``@rt.scheduled``."""

    _executor: Executor
    _declared: dict[str, ScheduleSpec]

    def _schedule_executor(self) -> Executor | None:
        return self._executor

    def _schedule_workflow(self, workflow: Any) -> str:
        return takes_scheduled_at(self._executor.registered(workflow)).name

    def scheduled(
        self,
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        tz: str = "UTC",
        missed: str = "latest",
    ) -> Callable[[Workflow[Any, Any]], Workflow[Any, Any]]:
        """Run a workflow on a schedule; put it above ``@rt.workflow()``. At launch the
        schedule named after the workflow is created, or updated to these arguments.
        The workflow takes ``scheduled_at``, the tick as an aware datetime in ``tz``."""
        spec = check_spec(cron, every, tz, missed)

        def register(fn: Workflow[Any, Any]) -> Workflow[Any, Any]:
            if not isinstance(fn, Workflow):
                raise InvalidValueError(
                    f"@rt.scheduled(...) goes above @rt.workflow(): it needs a workflow, got {fn!r}"
                )
            self._declared[self._schedule_workflow(fn)] = spec
            return fn

        return register

"""Reads of durable state inside a workflow, recorded as operations.

``get_all_events``, ``retrieve_workflow``, ``get_status``, ``get_result``,
``list_workflows`` and ``list_steps`` called inside a workflow take an operation number
and record what they saw (or the ``WorkflowNotFoundError`` they raised), so a replay sees
what the first run saw even though the database has moved on. The first run returns the
value decoded from its record too, so both runs see equal values.

Workflows recorded before reads were operations (history version 1) read live, as they
did then: numbering their reads now would shift every later operation.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from . import _journal as journal
from . import _management as management
from . import _store as store
from ._change import Change
from ._exceptions import WorkflowNotFoundError
from ._history import identity
from ._replay import WorkflowContext, retry_storage
from ._serialization import loads_checked, replay_form
from ._session import not_finished, row_outcome, workflow_filter
from ._types import UNFINISHED, Status, StepRecord, WorkflowStatus, utc_datetime
from ._validate import check_id, check_limit

if TYPE_CHECKING:
    from ._session import Session
    from ._tx import Tx

__all__ = [
    "get_all_events",
    "get_result",
    "get_status",
    "list_steps",
    "list_workflows",
    "retrieve",
]

T = TypeVar("T")

#: Fields of WorkflowStatus and StepRecord stored as POSIX timestamps.
_TIMES = frozenset({"created_at", "updated_at", "deadline", "started_at", "finished_at"})


async def _recorded(
    ctx: WorkflowContext,
    name: str,
    target: str,
    read: Callable[[], Awaitable[str | None]],
    decode: Callable[[str | None], T],
) -> T:
    """Replay operation ``name`` or run ``read`` and record what it returned (its stored
    text) or the ``WorkflowNotFoundError`` it raised; hand back the decoded record."""
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, name, target)
    if recorded is None:
        output: str | None = None
        error: WorkflowNotFoundError | None = None
        try:
            output = await retry_storage(ctx.workflow_id, read)
        except WorkflowNotFoundError as exc:  # a fact about the database: the outcome
            error = exc
        await ctx.write(ctx.record, op_id, name, output, error)
        if error is not None:
            raise replay_form(error)
        return decode(output)
    if recorded.error is not None:
        ctx.outcome(recorded, name)  # raises the recorded exception
    return decode(recorded.output)


def _plain(record: Any) -> dict[str, Any]:
    """A WorkflowStatus or StepRecord as JSON-able fields (times as timestamps)."""
    fields: dict[str, Any] = {}
    for item in dataclasses.fields(record):
        value = getattr(record, item.name)
        if isinstance(value, datetime):
            value = value.timestamp()
        elif isinstance(value, Status):
            value = value.value
        fields[item.name] = value
    return fields


def _times(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        key: utc_datetime(value) if key in _TIMES and value is not None else value
        for key, value in fields.items()
    }


def _status(fields: dict[str, Any]) -> WorkflowStatus:
    return WorkflowStatus(**{**_times(fields), "status": Status(fields["status"])})


def _json(text: str | None) -> Any:
    assert text is not None
    return json.loads(text)


async def get_all_events(
    ctx: WorkflowContext, session: Session, workflow_id: str
) -> dict[str, Any]:
    check_id(workflow_id)

    async def read() -> str:
        await session.require_exists(workflow_id)
        return json.dumps(dict(await session.backend.read(journal.get_all_events, workflow_id)))

    def decode(text: str | None) -> dict[str, Any]:
        return {
            key: loads_checked(session.serializer, value, f"event {key!r}")
            for key, value in _json(text).items()
        }

    return await _recorded(ctx, "get_all_events", identity(workflow_id=workflow_id), read, decode)


async def retrieve(ctx: WorkflowContext, session: Session, workflow_id: str) -> None:
    """Record that the workflow exists (``WorkflowNotFoundError`` if it did not)."""
    check_id(workflow_id)

    async def read() -> None:
        await session.require_exists(workflow_id)

    await _recorded(
        ctx, "retrieve_workflow", identity(workflow_id=workflow_id), read, lambda _: None
    )


async def get_status(ctx: WorkflowContext, session: Session, workflow_id: str) -> WorkflowStatus:
    check_id(workflow_id)

    async def read() -> str:
        return json.dumps(_plain(await session.get_status(workflow_id)))

    return await _recorded(
        ctx,
        "get_status",
        identity(workflow_id=workflow_id),
        read,
        lambda text: _status(_json(text)),
    )


async def list_workflows(
    ctx: WorkflowContext,
    session: Session,
    status: Status | str | None,
    name: str | None,
    limit: int,
    offset: int,
    queue: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    prefix: str | None = None,
    parent: str | None = None,
) -> list[WorkflowStatus]:
    wanted = workflow_filter(status, name, limit, offset, queue, since, until, prefix, parent)

    async def read() -> str:
        found = await session.backend.read(store.list_workflows, wanted, limit, offset)
        return json.dumps([_plain(item) for item in found])

    # (newer filters only when given: histories recorded before they existed keep matching)
    given = {
        key: value
        for key, value in (
            ("queue", wanted.queue),
            ("since", wanted.since),
            ("until", wanted.until),
            ("prefix", wanted.prefix),
            ("parent", wanted.parent),
        )
        if value is not None
    }
    target = identity(
        status=None if wanted.status is None else wanted.status.value,
        name=wanted.name,
        limit=limit,
        offset=offset,
        **given,
    )
    return await _recorded(
        ctx, "list_workflows", target, read, lambda text: [_status(f) for f in _json(text)]
    )


async def list_steps(ctx: WorkflowContext, session: Session, workflow_id: str) -> list[StepRecord]:
    check_id(workflow_id)

    async def read() -> str:
        found = await management.list_steps(session, workflow_id)
        return json.dumps([_plain(item) for item in found])

    return await _recorded(
        ctx,
        "list_steps",
        identity(workflow_id=workflow_id),
        read,
        lambda text: [StepRecord(**_times(f)) for f in _json(text)],
    )


async def get_result(
    ctx: WorkflowContext,
    session: Session,
    workflow_id: str,
    timeout: float | None,
    deadline_at: datetime | None = None,
) -> Any:
    """Wait for a workflow's outcome as an operation: like ``get_event``, the deadline is
    recorded first (a restart waits only until it) and the outcome (its result, its
    error, ``TimeoutError``, ``WorkflowNotFoundError``) last."""
    check_id(workflow_id)
    limit = check_limit(timeout, deadline_at, optional=True)
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, "get_result", identity(workflow_id=workflow_id))
    what = f"result of {workflow_id!r}"

    def value(output: str | None) -> Any:
        return None if output is None else loads_checked(session.serializer, output, what)

    def settle(row: store.ResultRow | None) -> tuple[str | None, Exception | None]:
        if row is None:
            return None, WorkflowNotFoundError(workflow_id)
        return row_outcome(session.path, workflow_id, row)

    if recorded is not None and recorded.done:
        if recorded.error is not None:
            ctx.outcome(recorded, what)  # raises the recorded exception
        return value(recorded.output)
    if recorded is None:
        deadline = limit.deadline(session.clock.time())

        def look_or_start_waiting(tx: Tx) -> tuple[str | None, Exception | None] | None:
            row = store.get_result(tx, workflow_id)
            if row is not None and row.status in UNFINISHED:
                ctx.record(tx, op_id, "get_result", deadline=deadline, done=False)
                return None
            output, error = settle(row)
            ctx.record(tx, op_id, "get_result", output, error)
            return output, error

        settled = await ctx.write(look_or_start_waiting)
    else:
        deadline, settled = recorded.deadline, None
    if settled is None:

        async def finished() -> tuple[store.ResultRow | None] | None:
            row = await ctx.read(store.get_result, workflow_id)
            return None if row is not None and row.status in UNFINISHED else (row,)

        got = await session.notifier.wait_for(
            Change.status(workflow_id), finished, deadline, hibernate=True
        )
        if got is None:
            settled = None, not_finished(workflow_id, limit)
        else:
            settled = settle(got[0])
        await ctx.write(ctx.finish_wait, op_id, "get_result", *settled)
    output, error = settled
    if error is not None:
        raise replay_form(error)
    return value(output)

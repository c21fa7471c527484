"""Looking inside a database and cleaning it up: operations, queues, garbage collection, health.

These work from a Runtime or a Client, in any process, while workflows run. Garbage
collection deletes in short batches (one transaction each) so that it never keeps the
write lock from running workflows for long.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import EllipsisType
from typing import TYPE_CHECKING, Any

from . import _store as store
from ._context import operation_kind
from ._core import CHANGE_RETENTION_S
from ._exceptions import InvalidValueError
from ._notifier import status_key
from ._rows import Columns
from ._types import utc_datetime
from ._validate import check_id, check_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._core import Core

__all__ = [
    "CollectedCounts",
    "QueuedMessage",
    "StepRecord",
    "doctor",
    "garbage_collect",
    "list_messages",
    "list_steps",
]

#: Workflows deleted per garbage-collection transaction (each holds the write lock briefly).
GC_BATCH = 500
#: Change-log rows deleted per transaction.
CHANGES_BATCH = 5_000
#: Longest output shown in a ``StepRecord.summary``.
SUMMARY_LENGTH = 80


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One recorded operation of a workflow, as ``list_steps`` reports it.

    ``number`` is the operation's place in call order (from 0); ``kind`` is ``"step"``,
    ``"child"``, ``"sleep"``, ``"send"``, ``"recv"``, ``"set_event"``, ``"get_event"`` or
    a recorded read (``"get_result"``, ``"get_status"``, ``"list_workflows"``, ...);
    ``outcome`` is ``"ok"``, ``"error"`` or ``"waiting"`` (a recv or get_event still
    waiting until ``deadline``); ``summary`` is a one-line account of the outcome.
    """

    workflow_id: str
    number: int
    name: str
    kind: str
    outcome: str
    summary: str
    created_at: datetime
    deadline: datetime | None
    error_type: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A message sent to a workflow and not received yet."""

    workflow_id: str
    topic: str | None
    message: Any
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CollectedCounts:
    """How many rows ``garbage_collect`` deleted, by kind."""

    workflows: int = 0
    operations: int = 0
    events: int = 0
    messages: int = 0
    message_keys: int = 0
    changes: int = 0


def _clock(ts: float) -> str:
    return utc_datetime(ts).strftime("%Y-%m-%d %H:%M:%S UTC")


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_LENGTH else text[: SUMMARY_LENGTH - 3] + "..."


async def list_steps(core: Core, workflow_id: str) -> list[StepRecord]:
    """The workflow's recorded operations in call order."""
    check_id(workflow_id)
    await core.require_exists(workflow_id)
    records = []
    check = Columns(core.db.path, "operations", workflow_id)
    for number, name, done, deadline, output, error, created, _ in await core.db.read(
        store.list_operations, workflow_id
    ):
        kind = operation_kind(name)
        error_type = error_message = None
        if error is not None:
            error_type, error_message = check.error_record("error", error)
            outcome, summary = "error", _shorten(f"{error_type}: {error_message}")
        elif not done:
            until = "forever" if deadline is None else _clock(deadline)
            outcome, summary = "waiting", f"waiting until {until}"
        else:
            outcome, summary = "ok", _summary(core, kind, output)
        records.append(
            StepRecord(
                workflow_id=workflow_id,
                number=number,
                name=name,
                kind=kind,
                outcome=outcome,
                summary=summary,
                created_at=utc_datetime(created),
                deadline=None if deadline is None else utc_datetime(deadline),
                error_type=error_type,
                error_message=error_message,
            )
        )
    return records


def _summary(core: Core, kind: str, output: str | None) -> str:
    if output is None:
        return "timed out" if kind in ("recv", "get_event") else "done"
    if kind == "sleep":
        try:
            return f"wakes at {_clock(float(core.serializer.loads(output)))}"
        except Exception:  # noqa: BLE001 - a summary must not fail on odd stored data
            return _shorten(output)
    return _shorten(output)


async def list_messages(
    core: Core, workflow_id: str, topic: str | EllipsisType | None = ...
) -> list[QueuedMessage]:
    """Messages still queued for the workflow, oldest first: every topic by default."""
    check_id(workflow_id)
    every_topic = topic is ...
    wanted = None if isinstance(topic, EllipsisType) else check_key(topic, "topic", optional=True)
    await core.require_exists(workflow_id)
    check = Columns(core.db.path, "messages", workflow_id)
    return [
        QueuedMessage(
            workflow_id=workflow_id,
            topic=queue,
            message=check.value(core.serializer, "message", data),
            created_at=utc_datetime(created),
        )
        for queue, data, created in await core.db.read(
            store.list_queued, workflow_id, wanted, every_topic
        )
    ]


def _seconds(older_than: float | timedelta) -> float:
    if isinstance(older_than, timedelta):
        older_than = older_than.total_seconds()
    if isinstance(older_than, bool) or not isinstance(older_than, (int, float)):
        raise InvalidValueError(
            f"older_than must be a number of seconds or a timedelta, got {older_than!r}"
        )
    if not older_than >= 0:  # also refuses NaN
        raise InvalidValueError(f"older_than must be zero or more seconds, got {older_than!r}")
    return float(older_than)


async def garbage_collect(
    core: Core, older_than: float | timedelta, keep_pending: bool, dry_run: bool = False
) -> CollectedCounts:
    """Delete workflow trees whose root was last updated more than ``older_than`` ago,
    with everything of theirs (a child goes only with its root: its parent may replay it).

    Each batch is its own short transaction, so workflows running meanwhile (here or in
    other processes) wait for the write lock at most one batch. The change log is pruned
    too, down to the last ``CHANGE_RETENTION_S`` seconds that pollers may still need.
    ``dry_run`` counts what would be deleted (the same selection) and deletes nothing.
    """
    cutoff = time.time() - _seconds(older_than)
    for flag, what in ((keep_pending, "keep_pending"), (dry_run, "dry_run")):
        if not isinstance(flag, bool):
            raise InvalidValueError(f"{what} must be True or False, got {flag!r}")
    if dry_run:
        counts = await core.db.read(store.count_collectable, cutoff, keep_pending, GC_BATCH)
        changes = await core.db.read(store.count_prunable_changes, time.time() - CHANGE_RETENTION_S)
        return CollectedCounts(**counts, changes=changes)
    totals = dict.fromkeys(store.GC_TABLES, 0)
    after: int | None = 0
    while after is not None:
        counts, deleted, after = await core.db.write(
            store.delete_finished, cutoff, keep_pending, GC_BATCH, after
        )
        _waker(core, deleted)()
        for table, count in counts.items():
            totals[table] += count
    changes = 0
    while True:
        pruned = await core.db.write(
            store.prune_changes_batch, time.time() - CHANGE_RETENTION_S, CHANGES_BATCH
        )
        changes += pruned
        if pruned < CHANGES_BATCH:
            break
    return CollectedCounts(**totals, changes=changes)


def _waker(core: Core, deleted: list[str]) -> Callable[[], None]:
    """Wake this process's waiters on deleted workflows (a running one stops)."""

    def wake() -> None:
        for workflow_id in deleted:
            core.notifier.notify(status_key(workflow_id))

    return wake


async def doctor(core: Core) -> dict[str, Any]:
    """Facts about the open database for ``litewf doctor``; reads only."""
    info = await core.db.read(store.database_info, integrity_limit=20)
    corrupt, problems = await core.db.read(store.find_corrupt_rows, limit=5)
    checks: Any = info.pop("integrity_check")
    page_size, page_count = info.pop("page_size"), info.pop("page_count")
    assert isinstance(page_size, int) and isinstance(page_count, int)
    return {
        "path": core.db.path,
        "schema_version": info.pop("user_version"),
        "application_id": info.pop("application_id"),
        "journal_mode": info.pop("journal_mode"),
        "file_bytes": page_size * page_count,
        "wal_bytes": core.db.wal_bytes(),
        "free_pages": info.pop("freelist_count"),
        "integrity": "ok" if checks == ["ok"] else "; ".join(checks),
        "corrupt_rows": corrupt,
        "corrupt_row_problems": problems,
        **info,
    }

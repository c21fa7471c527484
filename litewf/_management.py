"""Looking inside a database and cleaning it up: operations, queues, garbage collection.

These work from a Runtime or a Client, in any process, while workflows run. Garbage
collection deletes in small chunks, each its own group-committed write bounded by rows
and by time, and pauses between chunks, so that it never keeps the write lock from
running workflows for long.
"""

from __future__ import annotations

import time
from datetime import timedelta
from types import EllipsisType
from typing import TYPE_CHECKING

import anyio

from . import _journal as journal
from . import _upkeep as upkeep
from ._exceptions import InvalidValueError
from ._history import operation_kind
from ._rows import Columns
from ._session import CHANGE_RETENTION_S
from ._types import CollectedCounts, QueuedMessage, StepRecord, utc_datetime
from ._validate import check_id, check_key

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["garbage_collect", "list_messages", "list_steps"]

#: Workflows deleted per garbage-collection chunk (one write), at most (a tree is never
#: split, so one larger tree may pass it).
GC_CHUNK_ROWS = 500
#: Change-log rows deleted per chunk, at most.
CHANGES_CHUNK_ROWS = 5_000
#: Seconds of deleting per chunk: a chunk stops after the step that passes it (so the write
#: lock is held about this long plus one step and the commit).
GC_CHUNK_S = 0.02
#: Between chunks collection pauses as long as the last chunk took (so that it gets at most
#: about half the writing time), up to this many seconds.
GC_PAUSE_MAX_S = 0.05
#: Longest output shown in a ``StepRecord.summary``.
SUMMARY_LENGTH = 80


def _clock(ts: float) -> str:
    return utc_datetime(ts).strftime("%Y-%m-%d %H:%M:%S UTC")


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_LENGTH else text[: SUMMARY_LENGTH - 3] + "..."


async def list_steps(session: Session, workflow_id: str) -> list[StepRecord]:
    """The workflow's recorded operations in call order."""
    check_id(workflow_id)
    await session.require_exists(workflow_id)
    records = []
    check = Columns(session.path, "operations", workflow_id)
    rows = await session.backend.read(journal.list_operations, workflow_id)
    for number, name, done, deadline, output, error, created, _, started, finished in rows:
        kind = operation_kind(name)
        error_type = error_message = None
        if error is not None:
            error_type, error_message = check.error_record("error", error)
            outcome, summary = "error", _shorten(f"{error_type}: {error_message}")
        elif not done:
            until = "forever" if deadline is None else _clock(deadline)
            outcome, summary = "waiting", f"waiting until {until}"
        else:
            outcome, summary = "ok", _summary(session, kind, output)
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
                started_at=None if started is None else utc_datetime(started),
                finished_at=None if finished is None else utc_datetime(finished),
            )
        )
    return records


def _summary(session: Session, kind: str, output: str | None) -> str:
    if output is None:
        return "timed out" if kind in ("recv", "get_event", "wait_first") else "done"
    if kind == "sleep":
        try:
            return f"wakes at {_clock(float(session.serializer.loads(output)))}"
        except Exception:  # noqa: BLE001 - a summary must not fail on odd stored data
            return _shorten(output)
    return _shorten(output)


async def list_messages(
    session: Session, workflow_id: str, topic: str | EllipsisType | None = ...
) -> list[QueuedMessage]:
    """Messages still queued for the workflow, oldest first: every topic by default."""
    check_id(workflow_id)
    every_topic = topic is ...
    wanted = None if isinstance(topic, EllipsisType) else check_key(topic, "topic", optional=True)
    await session.require_exists(workflow_id)
    check = Columns(session.path, "messages", workflow_id)
    return [
        QueuedMessage(
            workflow_id=workflow_id,
            topic=queue,
            message=check.value(session.serializer, "message", data),
            created_at=utc_datetime(created),
        )
        for queue, data, created in await session.backend.read(
            journal.list_queued, workflow_id, wanted, every_topic
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


async def _pause(began: float) -> None:
    """Between two chunks of collection: let other writers have the write lock."""
    await anyio.sleep(min(time.monotonic() - began, GC_PAUSE_MAX_S))


async def garbage_collect(
    session: Session, older_than: float | timedelta, keep_pending: bool, dry_run: bool = False
) -> CollectedCounts:
    """Delete workflow trees whose root was last updated more than ``older_than`` ago,
    with everything of theirs (a child goes only with its root: its parent may replay it).

    Each chunk is its own short write (at most ``GC_CHUNK_ROWS`` workflows and about
    ``GC_CHUNK_S`` seconds), and collection pauses between chunks, so workflows running
    meanwhile (here or in other processes) wait for the write lock at most one chunk. A
    crash between chunks leaves whole trees deleted; a later call finishes the job. The
    change log is pruned too, down to the last ``CHANGE_RETENTION_S`` seconds that
    pollers may still need.
    ``dry_run`` counts what would be deleted (the same selection) and deletes nothing.
    """
    cutoff = time.time() - _seconds(older_than)
    for flag, what in ((keep_pending, "keep_pending"), (dry_run, "dry_run")):
        if not isinstance(flag, bool):
            raise InvalidValueError(f"{what} must be True or False, got {flag!r}")
    totals = dict.fromkeys(upkeep.GC_TABLES, 0)
    cursor: upkeep.Cursor | None = upkeep.START
    while cursor is not None:
        if dry_run:
            counts, cursor = await session.backend.read(
                upkeep.count_collectable, cutoff, keep_pending, cursor, GC_CHUNK_S
            )
        else:
            began = time.monotonic()
            counts, _, cursor = await session.backend.write(
                upkeep.delete_finished, cutoff, keep_pending, cursor, GC_CHUNK_ROWS, GC_CHUNK_S
            )
            await _pause(began)
        for table, count in counts.items():
            totals[table] += count
    if dry_run:
        changes = await session.backend.read(
            upkeep.count_prunable_changes, time.time() - CHANGE_RETENTION_S
        )
        return CollectedCounts(**totals, changes=changes)
    changes, more = 0, True
    while more:
        began = time.monotonic()
        pruned, more = await session.backend.write(
            upkeep.prune_changes_batch,
            time.time() - CHANGE_RETENTION_S,
            CHANGES_CHUNK_ROWS,
            GC_CHUNK_S,
        )
        changes += pruned
        await _pause(began)
    return CollectedCounts(**totals, changes=changes)

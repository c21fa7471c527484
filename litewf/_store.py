"""The SQL of workflows, the change log and recovery, as small functions.

(Operations, events and messages are ``_journal``'s; collection and health ``_upkeep``'s.)
They are plain functions over a ``Tx`` and run in the database thread: writers through
``backend.write`` (inside a group-committed transaction), readers through
``backend.read``. Every change a waiter may watch is logged by ``log_change``. Ownership rule: a running workflow's writes only land while its row is
still ``PENDING`` and owned by the writing executor, so a cancelled or taken-over
workflow can never record anything more.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ._change import Change, ChangeKind
from ._exceptions import CorruptDatabaseError
from ._inspectsql import WorkflowFilter
from ._rows import Columns
from ._tx import Tx
from ._types import Status, WorkflowStatus

__all__ = [
    "IS_ENQUEUED",
    "IS_PENDING",
    "IS_UNFINISHED",
    "ClaimedWorkflow",
    "ResultRow",
    "status_is",
]


def status_is(*statuses: Status) -> str:
    """``status = 'PENDING'`` (``status IN (...)`` for several) with the values written
    into the SQL, for a statement that looks rows up by status: PostgreSQL's generic
    plan of a prepared statement then knows from the column's statistics how few rows
    are unfinished and reads an index; with the status bound, it guessed a third of the
    table and read all of it. (litewf's own constants, never a caller's text.)"""
    values = ", ".join(f"'{status.value}'" for status in statuses)
    return f"status = {values}" if len(statuses) == 1 else f"status IN ({values})"


_PENDING = Status.PENDING.value
#: Conditions on the status, written out (``status_is``), shared by the SQL modules.
IS_PENDING = status_is(Status.PENDING)
IS_ENQUEUED = status_is(Status.ENQUEUED)
IS_UNFINISHED = status_is(Status.PENDING, Status.ENQUEUED)


def now() -> float:
    return time.time()


# -- records -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedWorkflow:
    """A workflow this executor has just taken ownership of, ready to run."""

    workflow_id: str
    name: str
    inputs: str


@dataclass(frozen=True, slots=True)
class ResultRow:
    status: Status
    output: str | None
    error: str | None
    recovery_attempts: int


_STATUS_COLUMNS = (
    "workflow_id, name, status, created_at, updated_at, executor_id, recovery_attempts, "
    "error_type, error_message, queue_name, priority, dedup_id"
)


def status_record(db: Tx, row: sqlite3.Row) -> WorkflowStatus:
    """The row as a ``WorkflowStatus``; ``CorruptDatabaseError`` for a value litewf never
    writes."""
    check = Columns(db, "workflows", row["workflow_id"])
    return WorkflowStatus(
        workflow_id=check.text("workflow_id", row["workflow_id"]),
        name=check.text("name", row["name"]),
        status=check.status("status", row["status"]),
        created_at=check.moment("created_at", row["created_at"]),
        updated_at=check.moment("updated_at", row["updated_at"]),
        executor_id=check.optional_text("executor_id", row["executor_id"]),
        recovery_attempts=check.count("recovery_attempts", row["recovery_attempts"]),
        error_type=check.optional_text("error_type", row["error_type"]),
        error_message=check.optional_text("error_message", row["error_message"]),
        queue=check.optional_text("queue_name", row["queue_name"]),
        priority=None if row["priority"] is None else check.count("priority", row["priority"]),
        dedup_id=check.optional_text("dedup_id", row["dedup_id"]),
    )


def _status_or_corrupt(db: Tx, row: sqlite3.Row) -> WorkflowStatus | CorruptDatabaseError:
    try:
        return status_record(db, row)
    except CorruptDatabaseError as exc:
        return exc


# -- change log (read by pollers in other processes) -----------------------------------------


def log_change(tx: Tx, change: Change) -> None:
    """Record ``change`` for other processes' pollers, and for this process's waiters once
    the transaction commits: every wake-up litewf makes comes from here."""
    tx.execute_later(
        "INSERT INTO changes (kind, workflow_id, key, created_at) VALUES (?, ?, ?, ?)",
        (change.kind.value, change.workflow_id, change.key, now()),
    )
    tx.changed(change)


def last_change(db: Tx) -> int:
    row = db.fetchone("SELECT coalesce(max(seq), 0) FROM changes")
    return int(row[0]) if row else 0


def changes_since(db: Tx, seq: int) -> tuple[int, list[Change]]:
    """The changes logged after ``seq`` and the last seq read (a row litewf never writes,
    say a tampered kind, is skipped: a waiter re-checks on its own timer anyway)."""
    changes = []
    for row_seq, kind, workflow_id, key in db.fetchall(
        "SELECT seq, kind, workflow_id, key FROM changes WHERE seq > ? ORDER BY seq", (seq,)
    ):
        seq = row_seq
        if (
            kind in _KINDS
            and isinstance(workflow_id, str)
            and (key is None or isinstance(key, str))
        ):
            changes.append(Change(ChangeKind(kind), workflow_id, key))
    return seq, changes


_KINDS = frozenset(kind.value for kind in ChangeKind)


# -- workflows -------------------------------------------------------------------------------


def insert_workflow(
    tx: Tx,
    workflow_id: str,
    name: str,
    inputs: str,
    executor_id: str,
    parent_id: str | None,
) -> str | None:
    """Record a new PENDING workflow; return the stored name if the ID already existed."""
    ts = now()
    inserted = tx.apply(
        "INSERT INTO workflows (workflow_id, name, status, inputs, executor_id, parent_id, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (workflow_id) DO NOTHING",
        (workflow_id, name, _PENDING, inputs, executor_id, parent_id, ts, ts),
    )
    if inserted:
        return None
    row = tx.fetchone("SELECT name FROM workflows WHERE workflow_id = ?", (workflow_id,))
    assert row is not None
    return str(row[0])


def get_status(db: Tx, workflow_id: str) -> WorkflowStatus | None:
    row = db.fetchone(
        f"SELECT {_STATUS_COLUMNS} FROM workflows WHERE workflow_id = ?", (workflow_id,)
    )
    return None if row is None else status_record(db, row)


def workflow_exists(tx: Tx, workflow_id: str) -> bool:
    row = tx.fetchone("SELECT 1 FROM workflows WHERE workflow_id = ?", (workflow_id,))
    return row is not None


def status_of(db: Tx, workflow_id: str) -> Status | None:
    """The workflow's status alone (None: no such workflow), for readiness checks that
    must not read its output."""
    row = db.fetchone("SELECT status FROM workflows WHERE workflow_id = ?", (workflow_id,))
    if row is None:
        return None
    return Columns(db, "workflows", workflow_id).status("status", row[0])


def get_result(db: Tx, workflow_id: str) -> ResultRow | None:
    row = db.fetchone(
        "SELECT status, output, error, recovery_attempts FROM workflows WHERE workflow_id = ?",
        (workflow_id,),
    )
    if row is None:
        return None
    check = Columns(db, "workflows", workflow_id)
    status = check.status("status", row[0])
    error = check.optional_text("error", row[2])
    if status is Status.ERROR and error is None:
        raise check.corrupt("error", "NULL for a workflow in status ERROR")
    return ResultRow(
        status,
        check.optional_text("output", row[1]),
        error,
        check.count("recovery_attempts", row[3]),
    )


def get_inputs(db: Tx, workflow_id: str) -> tuple[str, str] | None:
    row = db.fetchone("SELECT name, inputs FROM workflows WHERE workflow_id = ?", (workflow_id,))
    if row is None:
        return None
    check = Columns(db, "workflows", workflow_id)
    return check.text("name", row[0]), check.text("inputs", row[1])


def list_workflows(db: Tx, wanted: WorkflowFilter, limit: int, offset: int) -> list[WorkflowStatus]:
    """Stored workflows, newest first; ``CorruptDatabaseError`` for the first bad row."""
    return [status_record(db, r) for r in _workflow_rows(db, wanted, limit, offset)]


def list_workflows_marked(
    db: Tx, wanted: WorkflowFilter, limit: int, offset: int
) -> list[WorkflowStatus | CorruptDatabaseError]:
    """As ``list_workflows``, with each bad row's error in its place (for the CLI)."""
    return [_status_or_corrupt(db, r) for r in _workflow_rows(db, wanted, limit, offset)]


def _workflow_rows(db: Tx, wanted: WorkflowFilter, limit: int, offset: int) -> list[sqlite3.Row]:
    clause, params = wanted.clause()
    return db.fetchall(
        f"SELECT {_STATUS_COLUMNS} FROM workflows {clause} "
        f"ORDER BY seq DESC LIMIT ? OFFSET ?",  # insertion order: a clock step reorders nothing
        (*params, limit, offset),
    )


def finish_workflow(
    tx: Tx,
    workflow_id: str,
    executor_id: str,
    status: Status,
    output: str | None,
    error: str | None,
    error_type: str | None,
    error_message: str | None,
) -> bool:
    """Store the outcome if this executor still owns the workflow; False if it does not."""
    changed = tx.apply(
        "UPDATE workflows SET status = ?, output = ?, error = ?, error_type = ?, "
        "error_message = ?, executor_id = NULL, updated_at = ? "
        "WHERE workflow_id = ? AND status = ? AND executor_id = ? RETURNING queue_name",
        (
            status.value,
            output,
            error,
            error_type,
            error_message,
            now(),
            workflow_id,
            _PENDING,
            executor_id,
        ),
        then=lambda rows: slot_freed(tx, rows[0][0]),
    )
    if changed:
        log_change(tx, Change.status(workflow_id))
    return changed


def slot_freed(tx: Tx, queue_name: object) -> None:
    """A workflow of ``queue_name`` (if it is one's) left PENDING or ENQUEUED: wake the
    runtimes that dequeue it, in every process."""
    if isinstance(queue_name, str):
        log_change(tx, Change.queue(queue_name))


def owns(tx: Tx, workflow_id: str, executor_id: str) -> bool:
    row = tx.fetchone(
        "SELECT 1 FROM workflows WHERE workflow_id = ? AND status = ? AND executor_id = ?",
        (workflow_id, _PENDING, executor_id),
    )
    return row is not None


def cancel_workflow(tx: Tx, workflow_id: str) -> bool:
    """Cancel a PENDING or ENQUEUED workflow (an enqueued one leaves its queue)."""
    changed = tx.fetchall(
        "UPDATE workflows SET status = ?, executor_id = NULL, updated_at = ? "
        "WHERE workflow_id = ? AND status IN (?, ?) RETURNING queue_name",
        (Status.CANCELLED.value, now(), workflow_id, _PENDING, Status.ENQUEUED.value),
    )
    if changed:
        log_change(tx, Change.status(workflow_id))
        slot_freed(tx, changed[0][0])
    return bool(changed)


def restart_workflow(tx: Tx, workflow_id: str, executor_id: str | None) -> bool:
    """Make a stopped (not successful) workflow PENDING again, owned by ``executor_id``.

    ``None`` leaves it unowned, for whichever live runtime has its function to claim.
    A queued workflow goes back to its queue instead (ENQUEUED, unowned: its queue's
    bounds decide when it runs again); then this returns False (nothing to run now).
    """
    rows = tx.fetchall(
        "UPDATE workflows SET status = CASE WHEN queue_name IS NULL THEN ? ELSE ? END, "
        "executor_id = CASE WHEN queue_name IS NULL THEN ? END, error = NULL, "
        "error_type = NULL, error_message = NULL, recovery_attempts = 0, updated_at = ? "
        "WHERE workflow_id = ? AND status IN (?, ?, ?) RETURNING queue_name",
        (
            _PENDING,
            Status.ENQUEUED.value,
            executor_id,
            now(),
            workflow_id,
            Status.CANCELLED.value,
            Status.ERROR.value,
            Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED.value,
        ),
    )
    if not rows:
        return False
    log_change(tx, Change.status(workflow_id))
    slot_freed(tx, rows[0][0])  # (a queued one: wake its queue's runtimes)
    return rows[0][0] is None


def release_workflows(tx: Tx, executor_id: str, keep: Collection[str] = ()) -> int:
    """Give up ownership of this executor's PENDING workflows (clean shutdown), except
    ``keep``: workflows with a step body still running in this process."""
    kept = list(keep)
    return tx.execute(
        f"UPDATE workflows SET executor_id = NULL, updated_at = ? "
        f"WHERE {IS_PENDING} AND executor_id = ? "
        f"AND workflow_id NOT IN (SELECT value FROM json_each(?))",
        (now(), executor_id, json.dumps(kept)),
    )


# -- recovery ----------------------------------------------------------------------------------


def pending_owners(db: Tx) -> list[str | None]:
    """Executors holding PENDING workflows (``None`` for released ones)."""
    rows = db.fetchall(f"SELECT DISTINCT executor_id FROM workflows WHERE {IS_PENDING}")
    # A non-text owner is a hand-edited row, no executor's: leave it (list and show report it).
    return [r[0] for r in rows if r[0] is None or isinstance(r[0], str)]


def count_owned_pending(db: Tx, executor_id: str) -> int:
    """How many PENDING workflows this executor owns (counted on the status index)."""
    row = db.fetchone(
        f"SELECT count(*) FROM workflows WHERE {IS_PENDING} AND executor_id = ?",
        (executor_id,),
    )
    return 0 if row is None else int(row[0])


def owned_pending_ids(db: Tx, executor_id: str) -> list[str]:
    """The IDs of this executor's PENDING workflows (a scan of the status index)."""
    rows = db.fetchall(
        f"SELECT workflow_id FROM workflows WHERE {IS_PENDING} AND executor_id = ?",
        (executor_id,),
    )
    return [r[0] for r in rows]


def owned_pending(db: Tx, executor_id: str, among: Sequence[str]) -> list[tuple[str, str, str]]:
    """(workflow_id, name, inputs) of this executor's PENDING workflows among ``among``."""
    found: list[tuple[str, str, str]] = []
    for chunk in chunks(list(among)):
        rows = db.fetchall(
            f"SELECT workflow_id, name, inputs FROM workflows WHERE {IS_PENDING} "
            f"AND executor_id = ? AND workflow_id IN ({placeholders(chunk)})",
            (executor_id, *chunk),
        )
        found.extend((r[0], r[1], r[2]) for r in rows)
    return found


def placeholders(names: Sequence[str]) -> str:
    return ",".join("?" * len(names))


def is_value(column: str, value: str | None) -> tuple[str, tuple[str, ...]]:
    """``column IS ?`` as a condition an index answers, and its parameters: PostgreSQL
    turns ``IS ?`` into ``IS NOT DISTINCT FROM``, which no index can look up."""
    if value is None:
        return f"{column} IS NULL", ()
    return f"{column} = ?", (value,)


def unregistered_pending(db: Tx, owner: str | None, names: Sequence[str]) -> list[tuple[str, str]]:
    owned, by = is_value("executor_id", owner)
    rows = db.fetchall(
        f"SELECT workflow_id, name FROM workflows WHERE {IS_PENDING} AND {owned} "
        f"AND name NOT IN ({placeholders(names)})",
        (*by, *names),
    )
    return [(r[0], r[1]) for r in rows]


def claim(
    tx: Tx,
    owner: str | None,
    executor_id: str,
    names: Sequence[str],
    max_attempts: int,
) -> tuple[list[ClaimedWorkflow], list[str]]:
    """Atomically take ``owner``'s PENDING workflows (``None``: released ones).

    Taking a dead executor's workflow counts a recovery attempt; one that has used up
    ``max_attempts`` is marked MAX_RECOVERY_ATTEMPTS_EXCEEDED instead. The conditional
    UPDATE decides the single winner when several runtimes recover at once.
    """
    if not names:
        return [], []
    ts = now()
    exhausted: list[sqlite3.Row] = []
    if owner is not None:
        exhausted = tx.fetchall(
            f"UPDATE workflows SET status = ?, executor_id = NULL, updated_at = ? "
            f"WHERE {IS_PENDING} AND executor_id = ? AND recovery_attempts >= ? "
            f"AND name IN ({placeholders(names)}) RETURNING workflow_id, queue_name",
            (
                Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED.value,
                ts,
                owner,
                max_attempts,
                *names,
            ),
        )
        for row in exhausted:
            log_change(tx, Change.status(row[0]))
            slot_freed(tx, row[1])
    bump = 1 if owner is not None else 0
    owned, by = is_value("executor_id", owner)
    rows = tx.fetchall(
        f"UPDATE workflows SET executor_id = ?, recovery_attempts = recovery_attempts + ?, "
        f"updated_at = ? WHERE {IS_PENDING} AND {owned} AND name IN ({placeholders(names)}) "
        f"RETURNING workflow_id, name, inputs",
        (executor_id, bump, ts, *by, *names),
    )
    return [ClaimedWorkflow(r[0], r[1], r[2]) for r in rows], [r[0] for r in exhausted]


def chunks(ids: list[str], size: int = 500) -> list[list[str]]:
    """Split ``ids`` so that no statement exceeds SQLite's bound on parameters."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]

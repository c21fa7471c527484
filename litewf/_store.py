"""Every SQL statement litewf runs against its own tables, as small functions.

They are plain functions over a ``Tx`` and run in the database thread: writers through
``Database.write`` (inside a group-committed transaction), readers through
``Database.read``. Ownership rule: a running workflow's writes only land while its row is
still ``PENDING`` and owned by the writing executor, so a cancelled or taken-over
workflow can never record anything more.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ._db import Tx
from ._exceptions import CorruptDatabaseError
from ._rows import Columns
from ._types import Status, WorkflowStatus

__all__ = [
    "ClaimedWorkflow",
    "Operation",
    "ResultRow",
]

_PENDING = Status.PENDING.value


def now() -> float:
    return time.time()


# -- records -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Operation:
    """A recorded operation: its name and either its output or its error.

    ``done`` is False for a wait that has started (its ``deadline`` recorded) but not ended.
    """

    name: str
    output: str | None
    error: str | None
    done: bool = True
    deadline: float | None = None
    #: The call's identifying arguments as canonical JSON (None: the name identifies it,
    #: or the row predates operation identity).
    target: str | None = None


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
    "error_type, error_message"
)


def _status(db: Tx, row: sqlite3.Row) -> WorkflowStatus:
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
    )


def _status_or_corrupt(db: Tx, row: sqlite3.Row) -> WorkflowStatus | CorruptDatabaseError:
    try:
        return _status(db, row)
    except CorruptDatabaseError as exc:
        return exc


# -- change log (read by pollers in other processes) -----------------------------------------


def log_change(tx: Tx, kind: str, workflow_id: str, key: str | None) -> None:
    tx.execute(
        "INSERT INTO changes (kind, workflow_id, key, created_at) VALUES (?, ?, ?, ?)",
        (kind, workflow_id, key, now()),
    )


def last_change(db: Tx) -> int:
    row = db.fetchone("SELECT coalesce(max(seq), 0) FROM changes")
    return int(row[0]) if row else 0


def changes_since(db: Tx, seq: int) -> list[tuple[int, str, str, str | None]]:
    rows = db.fetchall(
        "SELECT seq, kind, workflow_id, key FROM changes WHERE seq > ? ORDER BY seq", (seq,)
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


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
    inserted = tx.execute(
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
    return None if row is None else _status(db, row)


def workflow_exists(tx: Tx, workflow_id: str) -> bool:
    row = tx.fetchone("SELECT 1 FROM workflows WHERE workflow_id = ?", (workflow_id,))
    return row is not None


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


def list_workflows(
    db: Tx, status: Status | None, name: str | None, limit: int, offset: int
) -> list[WorkflowStatus]:
    """Stored workflows, newest first; ``CorruptDatabaseError`` for the first bad row."""
    return [_status(db, r) for r in _workflow_rows(db, status, name, limit, offset)]


def list_workflows_marked(
    db: Tx, status: Status | None, name: str | None, limit: int, offset: int
) -> list[WorkflowStatus | CorruptDatabaseError]:
    """As ``list_workflows``, with each bad row's error in its place (for the CLI)."""
    return [_status_or_corrupt(db, r) for r in _workflow_rows(db, status, name, limit, offset)]


def _workflow_rows(
    db: Tx, status: Status | None, name: str | None, limit: int, offset: int
) -> list[sqlite3.Row]:
    where, params = [], []
    if status is not None:
        where.append("status = ?")
        params.append(status.value)
    if name is not None:
        where.append("name = ?")
        params.append(name)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = db.fetchall(
        f"SELECT {_STATUS_COLUMNS} FROM workflows {clause} "
        f"ORDER BY seq DESC LIMIT ? OFFSET ?",  # insertion order: a clock step reorders nothing
        (*params, limit, offset),
    )
    return rows


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
    changed = tx.execute(
        "UPDATE workflows SET status = ?, output = ?, error = ?, error_type = ?, "
        "error_message = ?, executor_id = NULL, updated_at = ? "
        "WHERE workflow_id = ? AND status = ? AND executor_id = ?",
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
    )
    if changed:
        log_change(tx, "status", workflow_id, None)
    return bool(changed)


def owns(tx: Tx, workflow_id: str, executor_id: str) -> bool:
    row = tx.fetchone(
        "SELECT 1 FROM workflows WHERE workflow_id = ? AND status = ? AND executor_id = ?",
        (workflow_id, _PENDING, executor_id),
    )
    return row is not None


def cancel_workflow(tx: Tx, workflow_id: str) -> bool:
    changed = tx.execute(
        "UPDATE workflows SET status = ?, executor_id = NULL, updated_at = ? "
        "WHERE workflow_id = ? AND status = ?",
        (Status.CANCELLED.value, now(), workflow_id, _PENDING),
    )
    if changed:
        log_change(tx, "status", workflow_id, None)
    return bool(changed)


def restart_workflow(tx: Tx, workflow_id: str, executor_id: str | None) -> bool:
    """Make a stopped (not successful) workflow PENDING again, owned by ``executor_id``.

    ``None`` leaves it unowned, for whichever live runtime has its function to claim.
    """
    changed = tx.execute(
        "UPDATE workflows SET status = ?, executor_id = ?, error = NULL, error_type = NULL, "
        "error_message = NULL, recovery_attempts = 0, updated_at = ? "
        "WHERE workflow_id = ? AND status IN (?, ?, ?)",
        (
            _PENDING,
            executor_id,
            now(),
            workflow_id,
            Status.CANCELLED.value,
            Status.ERROR.value,
            Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED.value,
        ),
    )
    if changed:
        log_change(tx, "status", workflow_id, None)
    return bool(changed)


def release_workflows(tx: Tx, executor_id: str, keep: Collection[str] = ()) -> int:
    """Give up ownership of this executor's PENDING workflows (clean shutdown), except
    ``keep``: workflows with a step body still running in this process."""
    kept = list(keep)
    return tx.execute(
        "UPDATE workflows SET executor_id = NULL, updated_at = ? "
        "WHERE status = ? AND executor_id = ? "
        "AND workflow_id NOT IN (SELECT value FROM json_each(?))",
        (now(), _PENDING, executor_id, json.dumps(kept)),
    )


# -- recovery ----------------------------------------------------------------------------------


def pending_owners(db: Tx) -> list[str | None]:
    """Executors holding PENDING workflows (``None`` for released ones)."""
    rows = db.fetchall("SELECT DISTINCT executor_id FROM workflows WHERE status = ?", (_PENDING,))
    # A non-text owner is a hand-edited row, no executor's: leave it (list and show report it).
    return [r[0] for r in rows if r[0] is None or isinstance(r[0], str)]


def count_owned_pending(db: Tx, executor_id: str) -> int:
    """How many PENDING workflows this executor owns (counted on the status index)."""
    row = db.fetchone(
        "SELECT count(*) FROM workflows WHERE status = ? AND executor_id = ?",
        (_PENDING, executor_id),
    )
    return 0 if row is None else int(row[0])


def owned_pending_ids(db: Tx, executor_id: str) -> list[str]:
    """The IDs of this executor's PENDING workflows (a scan of the status index)."""
    rows = db.fetchall(
        "SELECT workflow_id FROM workflows WHERE status = ? AND executor_id = ?",
        (_PENDING, executor_id),
    )
    return [r[0] for r in rows]


def owned_pending(db: Tx, executor_id: str, among: Sequence[str]) -> list[tuple[str, str, str]]:
    """(workflow_id, name, inputs) of this executor's PENDING workflows among ``among``."""
    found: list[tuple[str, str, str]] = []
    for chunk in _chunks(list(among)):
        rows = db.fetchall(
            f"SELECT workflow_id, name, inputs FROM workflows WHERE status = ? "
            f"AND executor_id = ? AND workflow_id IN ({_in(chunk)})",
            (_PENDING, executor_id, *chunk),
        )
        found.extend((r[0], r[1], r[2]) for r in rows)
    return found


def _in(names: Sequence[str]) -> str:
    return ",".join("?" * len(names))


def unregistered_pending(db: Tx, owner: str | None, names: Sequence[str]) -> list[tuple[str, str]]:
    rows = db.fetchall(
        f"SELECT workflow_id, name FROM workflows WHERE status = ? AND executor_id IS ? "
        f"AND name NOT IN ({_in(names)})",
        (_PENDING, owner, *names),
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
            f"WHERE status = ? AND executor_id = ? AND recovery_attempts >= ? "
            f"AND name IN ({_in(names)}) RETURNING workflow_id",
            (
                Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED.value,
                ts,
                _PENDING,
                owner,
                max_attempts,
                *names,
            ),
        )
        for row in exhausted:
            log_change(tx, "status", row[0], None)
    bump = 1 if owner is not None else 0
    rows = tx.fetchall(
        f"UPDATE workflows SET executor_id = ?, recovery_attempts = recovery_attempts + ?, "
        f"updated_at = ? WHERE status = ? AND executor_id IS ? AND name IN ({_in(names)}) "
        f"RETURNING workflow_id, name, inputs",
        (executor_id, bump, ts, _PENDING, owner, *names),
    )
    return [ClaimedWorkflow(r[0], r[1], r[2]) for r in rows], [r[0] for r in exhausted]


# -- operations ----------------------------------------------------------------------------


def load_operations(db: Tx, workflow_id: str) -> dict[int, Operation]:
    """The workflow's recorded operations by number, each column checked."""
    return {
        op_id: Operation(name, output, error, done, deadline, target)
        for op_id, name, done, deadline, output, error, _, target in list_operations(
            db, workflow_id
        )
    }


def load_history(db: Tx, workflow_id: str) -> tuple[int, dict[int, Operation]]:
    """The workflow's history version (the replay rules it was recorded under) and its
    recorded operations."""
    row = db.fetchone("SELECT history FROM workflows WHERE workflow_id = ?", (workflow_id,))
    version = 1 if row is None else Columns(db, "workflows", workflow_id).count("history", row[0])
    return version, load_operations(db, workflow_id)


def last_operation(db: Tx, workflow_id: str) -> tuple[int, str, str | None] | None:
    """The highest-numbered recorded operation: op_id, name, error."""
    row = db.fetchone(
        "SELECT op_id, name, error FROM operations WHERE workflow_id = ? "
        "ORDER BY op_id DESC LIMIT 1",
        (workflow_id,),
    )
    return None if row is None else (row[0], row[1], row[2])


def ended_by(db: Tx, workflow_id: str) -> tuple[str | None, str | None] | None:
    """The stored error type and message of a workflow that ended ERROR, else None."""
    row = db.fetchone(
        "SELECT error_type, error_message FROM workflows WHERE workflow_id = ? AND status = ?",
        (workflow_id, Status.ERROR.value),
    )
    return None if row is None else (row[0], row[1])


def delete_operation(tx: Tx, workflow_id: str, op_id: int) -> None:
    tx.execute("DELETE FROM operations WHERE workflow_id = ? AND op_id = ?", (workflow_id, op_id))


_OWNED = "EXISTS (SELECT 1 FROM workflows WHERE workflow_id = ? AND status = ? AND executor_id = ?)"


def record_operation(
    tx: Tx,
    workflow_id: str,
    executor_id: str,
    op_id: int,
    op: Operation,
) -> bool:
    """Record an operation (finished, or a started wait) if this executor owns the workflow."""
    inserted = tx.execute(
        "INSERT INTO operations (workflow_id, op_id, name, done, deadline, output, error, "
        f"created_at, target) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE {_OWNED}",
        (
            workflow_id,
            op_id,
            op.name,
            int(op.done),
            op.deadline,
            op.output,
            op.error,
            now(),
            op.target,
            workflow_id,
            _PENDING,
            executor_id,
        ),
    )
    return bool(inserted)


def finish_wait(
    tx: Tx,
    workflow_id: str,
    executor_id: str,
    op_id: int,
    output: str | None,
    error: str | None,
) -> bool:
    """Store the outcome of a started wait if this executor owns the workflow."""
    changed = tx.execute(
        "UPDATE operations SET done = 1, output = ?, error = ? "
        f"WHERE workflow_id = ? AND op_id = ? AND done = 0 AND {_OWNED}",
        (output, error, workflow_id, op_id, workflow_id, _PENDING, executor_id),
    )
    return bool(changed)


# -- events ----------------------------------------------------------------------------------


def insert_event(tx: Tx, workflow_id: str, key: str, value: str) -> bool:
    """Store an event; False if the key was already set (events never change)."""
    inserted = tx.execute(
        "INSERT INTO events (workflow_id, key, value, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (workflow_id, key) DO NOTHING",
        (workflow_id, key, value, now()),
    )
    if inserted:
        log_change(tx, "event", workflow_id, key)
    return bool(inserted)


def get_event(db: Tx, workflow_id: str, key: str) -> str | None:
    row = db.fetchone(
        "SELECT value FROM events WHERE workflow_id = ? AND key = ?", (workflow_id, key)
    )
    return None if row is None else Columns(db, "events", workflow_id).text("value", row[0])


def get_all_events(db: Tx, workflow_id: str) -> list[tuple[str, str]]:
    rows = db.fetchall(
        "SELECT key, value FROM events WHERE workflow_id = ? ORDER BY key", (workflow_id,)
    )
    check = Columns(db, "events", workflow_id)
    return [(check.text("key", r[0]), check.text("value", r[1])) for r in rows]


# -- messages --------------------------------------------------------------------------------


def enqueue_message(
    tx: Tx,
    destination_id: str,
    topic: str | None,
    message: str,
    idempotency_key: str | None,
) -> bool:
    """Append a message to its queue; False if ``idempotency_key`` was seen before."""
    ts = now()
    if idempotency_key is not None:
        fresh = tx.execute(
            "INSERT INTO message_keys (destination_id, idempotency_key, created_at) "
            "VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (destination_id, idempotency_key, ts),
        )
        if not fresh:
            return False
    tx.execute(
        "INSERT INTO messages (destination_id, topic, message, created_at) VALUES (?, ?, ?, ?)",
        (destination_id, topic, message, ts),
    )
    log_change(tx, "message", destination_id, topic)
    return True


def peek_message(db: Tx, destination_id: str, topic: str | None) -> bool:
    row = db.fetchone(
        "SELECT 1 FROM messages WHERE destination_id = ? AND topic IS ? LIMIT 1",
        (destination_id, topic),
    )
    return row is not None


def take_message(tx: Tx, destination_id: str, topic: str | None) -> str | None:
    """Remove and return the oldest message of the queue, or None if it is empty."""
    row = tx.fetchone(
        "DELETE FROM messages WHERE seq = (SELECT seq FROM messages "
        "WHERE destination_id = ? AND topic IS ? ORDER BY seq LIMIT 1) RETURNING message",
        (destination_id, topic),
    )
    return None if row is None else str(row[0])


# -- management (listing, garbage collection, health) ------------------------------------------


_OPERATION_COLUMNS = "op_id, name, done, deadline, output, error, created_at, target"
OperationRow = tuple[int, str, bool, float | None, str | None, str | None, float, str | None]


def _operation(check: Columns, r: sqlite3.Row) -> OperationRow:
    """An ``operations`` row (``_OPERATION_COLUMNS``) with each column checked."""
    return (
        check.count("op_id", r["op_id"]),
        check.text("name", r["name"]),
        check.flag("done", r["done"]),
        check.optional_timestamp("deadline", r["deadline"]),
        check.optional_text("output", r["output"]),
        check.optional_text("error", r["error"]),
        check.timestamp("created_at", r["created_at"]),
        check.optional_text("target", r["target"]),
    )


def list_operations(db: Tx, workflow_id: str) -> list[OperationRow]:
    """Every recorded operation, checked, in call order: op_id, name, done, deadline,
    output, error, created_at, target."""
    rows = db.fetchall(
        f"SELECT {_OPERATION_COLUMNS} FROM operations WHERE workflow_id = ? ORDER BY op_id",
        (workflow_id,),
    )
    check = Columns(db, "operations", workflow_id)
    return [_operation(check, r) for r in rows]


def list_queued(
    db: Tx, workflow_id: str, topic: str | None, every_topic: bool
) -> list[tuple[str | None, str, float]]:
    """Unconsumed messages (topic, message, created_at), oldest first."""
    rows = db.fetchall(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages "
        "WHERE destination_id = ? AND (? OR topic IS ?) ORDER BY seq",
        (workflow_id, every_topic, topic),
    )
    check = Columns(db, "messages", workflow_id)
    return [_message(check, r) for r in rows]


_MESSAGE_COLUMNS = "topic, message, created_at"


def _message(check: Columns, r: sqlite3.Row) -> tuple[str | None, str, float]:
    """A ``messages`` row (``_MESSAGE_COLUMNS``) with each column checked."""
    return (
        check.optional_text("topic", r["topic"]),
        check.text("message", r["message"]),
        check.timestamp("created_at", r["created_at"]),
    )


#: What one garbage-collection batch deleted, by table.
GC_TABLES = ("workflows", "operations", "events", "messages", "message_keys")


def _collectable(
    db: Tx, cutoff: float, keep_pending: bool, limit: int, after: int
) -> tuple[list[tuple[str, str]], int | None]:
    """The workflows garbage collection deletes next: one definition for the real
    deletion and for its dry run.

    A root is a workflow without a parent (or whose parent is gone); its tree is every
    descendant, at any depth. Trees are judged by their root alone, so a finished child
    stays as long as its parent (which may be resumed and replay it) stays. A tree with a
    PENDING member is kept unless ``keep_pending`` is False. Looks at roots past seq
    ``after`` and stops once about ``limit`` workflows are chosen. Returns (ID, status)
    of each, and the seq to continue after (None: no roots left).
    ``created_at <= updated_at`` lets the created_at index bound the scan.
    """
    roots = db.fetchall(
        "SELECT w.seq, w.workflow_id FROM workflows w WHERE w.seq > ? AND w.created_at < ? "
        "AND w.updated_at < ? AND (? OR w.status != ?) AND (w.parent_id IS NULL OR NOT EXISTS "
        "(SELECT 1 FROM workflows p WHERE p.workflow_id = w.parent_id)) ORDER BY w.seq LIMIT ?",
        (after, cutoff, cutoff, not keep_pending, _PENDING, limit),
    )
    chosen: list[tuple[str, str]] = []
    resume_after: int | None = roots[-1][0] if len(roots) == limit else None
    for seq, root_id in roots:
        tree = db.fetchall(
            "WITH RECURSIVE tree(id) AS (SELECT ? UNION SELECT w.workflow_id FROM workflows w "
            "JOIN tree ON w.parent_id = tree.id) "
            "SELECT w.workflow_id, w.status FROM workflows w JOIN tree ON w.workflow_id = tree.id",
            (root_id,),
        )
        if keep_pending and any(row[1] == _PENDING for row in tree):
            continue
        chosen.extend((row[0], row[1]) for row in tree)
        if len(chosen) >= limit:
            resume_after = seq
            break
    return chosen, resume_after


#: Each table garbage collection deletes from, and the column naming the workflow.
_GC_COLUMNS = (
    ("workflows", "workflow_id"),
    ("operations", "workflow_id"),
    ("events", "workflow_id"),
    ("messages", "destination_id"),
    ("message_keys", "destination_id"),
)


def count_collectable(db: Tx, cutoff: float, keep_pending: bool, batch: int) -> dict[str, int]:
    """What ``delete_finished`` would delete, by table, without deleting (a dry run)."""
    counts = dict.fromkeys(GC_TABLES, 0)
    after: int | None = 0
    while after is not None:
        chosen, after = _collectable(db, cutoff, keep_pending, batch, after)
        for chunk in _chunks([workflow_id for workflow_id, _ in chosen]):
            for table, column in _GC_COLUMNS:
                row = db.fetchone(
                    f"SELECT count(*) FROM {table} WHERE {column} IN ({_in(chunk)})", chunk
                )
                counts[table] += 0 if row is None else int(row[0])
    return counts


def count_prunable_changes(db: Tx, older_than: float) -> int:
    """How many change rows ``prune_changes_batch`` would delete, without deleting."""
    row = db.fetchone("SELECT count(*) FROM changes WHERE created_at < ?", (older_than,))
    return 0 if row is None else int(row[0])


def delete_finished(
    tx: Tx, cutoff: float, keep_pending: bool, limit: int, after: int
) -> tuple[dict[str, int], list[str], int | None]:
    """Delete the next batch of whole workflow trees that ``_collectable`` chooses.

    A status change is logged for each deleted PENDING one (``keep_pending=False``), so
    that a process running it stops it. Returns the counts by table, the deleted IDs, and
    the seq to continue after (None: no roots left).
    """
    deleted, resume_after = _collectable(tx, cutoff, keep_pending, limit, after)
    ids = [workflow_id for workflow_id, _ in deleted]
    counts = dict.fromkeys(GC_TABLES, 0)
    for chunk in _chunks(ids):
        marks = _in(chunk)
        for table, column in _GC_COLUMNS:
            counts[table] += tx.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", chunk)
    for workflow_id, status in deleted:
        if status == _PENDING:
            log_change(tx, "status", workflow_id, None)
    return counts, ids, resume_after


def _chunks(ids: list[str], size: int = 500) -> list[list[str]]:
    """Split ``ids`` so that no statement exceeds SQLite's bound on parameters."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def prune_changes_batch(tx: Tx, older_than: float, limit: int) -> int:
    """Delete up to ``limit`` of the oldest change rows created before ``older_than``."""
    return tx.execute(
        "DELETE FROM changes WHERE seq IN (SELECT seq FROM changes WHERE created_at < ? "
        "ORDER BY seq LIMIT ?)",
        (older_than, limit),
    )


def find_corrupt_rows(db: Tx, limit: int) -> tuple[int, list[str]]:
    """Check every stored workflow, operation, event and message as the read paths do: the
    number of bad rows and the first ``limit`` problems (for ``litewf doctor``)."""
    problems: list[str] = []
    count = 0

    def check(table: str, row: sqlite3.Row) -> None:
        owner_column = "destination_id" if table == "messages" else "workflow_id"
        c = Columns(db, table, row[owner_column])
        c.text(owner_column, row[owner_column])
        if table == "workflows":
            _status(db, row)
            c.text("inputs", row["inputs"])
            c.optional_text("output", row["output"])
            c.optional_text("parent_id", row["parent_id"])
        elif table == "operations":
            _operation(c, row)  # the same checks as replay and list_steps
        elif table == "events":
            c.text("key", row["key"])
            c.text("value", row["value"])
            c.timestamp("created_at", row["created_at"])
        else:
            _message(c, row)  # the same checks as list_messages
        if table in ("workflows", "operations") and row["error"] is not None:
            c.error_record("error", row["error"])

    for table, sql in (
        ("workflows", "SELECT * FROM workflows"),
        ("operations", f"SELECT workflow_id, {_OPERATION_COLUMNS} FROM operations"),
        ("events", "SELECT workflow_id, key, value, created_at FROM events"),
        ("messages", f"SELECT destination_id, {_MESSAGE_COLUMNS} FROM messages"),
    ):
        for row in db.conn.execute(sql):
            try:
                check(table, row)
            except CorruptDatabaseError as exc:
                count += 1
                if len(problems) < limit:
                    problems.append(str(exc))
    return count, problems


def database_info(db: Tx, integrity_limit: int) -> dict[str, object]:
    """Schema, journal and size facts plus row counts; reads only, writes nothing."""
    info: dict[str, object] = {}
    for pragma in (
        "application_id",
        "user_version",
        "journal_mode",
        "page_size",
        "page_count",
        "freelist_count",
    ):
        row = db.fetchone(f"PRAGMA {pragma}")
        info[pragma] = None if row is None else row[0]
    rows = db.fetchall(f"PRAGMA integrity_check({int(integrity_limit)})")
    info["integrity_check"] = [str(r[0]) for r in rows]
    rows = db.fetchall("SELECT status, count(*) FROM workflows GROUP BY status")
    # A tampered status may be a blob or a number: name it by its repr.
    info["workflows"] = {r[0] if isinstance(r[0], str) else repr(r[0]): r[1] for r in rows}
    for key, sql in (
        ("queued_messages", "SELECT count(*) FROM messages"),
        ("waiting_operations", "SELECT count(*) FROM operations WHERE done = 0"),
        ("idempotency_keys", "SELECT count(*) FROM message_keys"),
        ("change_rows", "SELECT count(*) FROM changes"),
    ):
        row = db.fetchone(sql)
        info[key] = 0 if row is None else row[0]
    return info

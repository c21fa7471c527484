"""Garbage collection and health checks: the SQL of ``garbage_collect`` and ``doctor``.

Like ``_store``, plain functions over a ``Tx``. Collection works in chunks, each its own
short write bounded by rows and time, choosing whole workflow trees by their root
(``_collectable``) in steps along the creation-time index.
"""

from __future__ import annotations

import sqlite3
import time

from ._change import Change
from ._exceptions import CorruptDatabaseError, InvalidValueError, WorkflowNotFoundError
from ._journal import (
    MESSAGE_COLUMNS,
    OPERATION_COLUMNS,
    message_row,
    operation_row,
    stream_row,
)
from ._rows import Columns
from ._store import chunks, log_change, placeholders, slot_freed, status_record
from ._tx import Tx
from ._types import Status

__all__ = [
    "GC_TABLES",
    "count_collectable",
    "count_prunable_changes",
    "database_info",
    "delete_finished",
    "delete_tree",
    "delete_workflows",
    "find_corrupt_rows",
    "prune_changes_batch",
]

_PENDING = Status.PENDING.value
_UNFINISHED = (_PENDING, Status.ENQUEUED.value)


#: What one garbage-collection chunk deleted, by table.
GC_TABLES = ("workflows", "operations", "events", "messages", "message_keys", "streams")


#: Where a garbage collection has got to: the (created_at, seq) of the last root it looked
#: at (roots are visited in ``workflows_by_created`` order).
Cursor = tuple[float, int]
#: The cursor before the first root.
START: Cursor = (float("-inf"), 0)
#: Roots one step of collection looks at, at most (bounds each statement's scan).
SCAN_STEP = 100


def _collectable(
    db: Tx, cutoff: float, keep_pending: bool, after: Cursor, scan: int = SCAN_STEP
) -> tuple[list[tuple[str, str]], Cursor | None]:
    """The next workflows garbage collection deletes, among the ``scan`` workflows created
    next after ``after``: one definition for the real deletion and for its dry run.

    A root is a workflow without a parent (or whose parent is gone); its tree is every
    descendant, at any depth. Trees are judged by their root alone, so a finished child
    stays as long as its parent (which may be resumed and replay it) stays. A tree with a
    PENDING member is kept unless ``keep_pending`` is False; a tree is never split.
    ``created_at <= updated_at`` lets the created_at index bound the scan, so a file of
    recent workflows costs nothing. Returns (ID, status) of each chosen workflow and the
    cursor to continue after (None: no roots left). A root without children (the parent
    index says so at once) needs no tree query.
    """
    looked = db.fetchall(
        "SELECT created_at, seq FROM workflows WHERE created_at >= ? AND created_at < ? "
        "AND (created_at > ? OR seq > ?) ORDER BY created_at, seq LIMIT ?",
        (after[0], cutoff, after[0], after[1], scan),
    )
    if not looked:
        return [], None
    last: Cursor = (looked[-1][0], looked[-1][1])
    seqs = [row[1] for row in looked]
    roots = db.fetchall(
        f"SELECT w.workflow_id, w.status, EXISTS (SELECT 1 FROM workflows c "
        f"WHERE c.parent_id = w.workflow_id) FROM workflows w "
        f"WHERE w.seq IN ({','.join('?' * len(seqs))}) AND w.updated_at < ? "
        f"AND (? OR w.status NOT IN (?, ?)) AND (w.parent_id IS NULL OR NOT EXISTS "
        f"(SELECT 1 FROM workflows p WHERE p.workflow_id = w.parent_id)) ORDER BY w.seq",
        (*seqs, cutoff, not keep_pending, *_UNFINISHED),
    )
    chosen: list[tuple[str, str]] = []
    for root_id, root_status, has_children in roots:
        if not has_children:
            chosen.append((root_id, root_status))
            continue
        tree = db.fetchall(
            "WITH RECURSIVE tree(id) AS (SELECT ? UNION SELECT w.workflow_id "
            "FROM workflows w JOIN tree ON w.parent_id = tree.id) SELECT w.workflow_id, "
            "w.status FROM workflows w JOIN tree ON w.workflow_id = tree.id",
            (root_id,),
        )
        if not (keep_pending and any(row[1] in _UNFINISHED for row in tree)):
            chosen.extend((row[0], row[1]) for row in tree)
    return chosen, (last if len(looked) == scan else None)


#: Each table garbage collection deletes from, and the column naming the workflow.
_GC_COLUMNS = (
    ("workflows", "workflow_id"),
    ("operations", "workflow_id"),
    ("events", "workflow_id"),
    ("messages", "destination_id"),
    ("message_keys", "destination_id"),
    ("streams", "workflow_id"),
)


def count_collectable(
    db: Tx, cutoff: float, keep_pending: bool, after: Cursor, budget_s: float
) -> tuple[dict[str, int], Cursor | None]:
    """What ``delete_finished`` would delete, by table, without deleting (a dry run):
    from ``after`` on, for about ``budget_s`` seconds. Returns the counts and the cursor
    to continue after (None: done)."""
    counts = dict.fromkeys(GC_TABLES, 0)
    started = time.monotonic()
    cursor: Cursor | None = after
    while cursor is not None:
        chosen, cursor = _collectable(db, cutoff, keep_pending, cursor)
        for chunk in chunks([workflow_id for workflow_id, _ in chosen]):
            for table, column in _GC_COLUMNS:
                row = db.fetchone(
                    f"SELECT count(*) FROM {table} WHERE {column} IN ({placeholders(chunk)})", chunk
                )
                counts[table] += 0 if row is None else int(row[0])
        if time.monotonic() - started >= budget_s:
            break
    return counts, cursor


def count_prunable_changes(db: Tx, older_than: float) -> int:
    """How many change rows ``prune_changes_batch`` would delete, without deleting."""
    row = db.fetchone("SELECT count(*) FROM changes WHERE created_at < ?", (older_than,))
    return 0 if row is None else int(row[0])


def delete_finished(
    tx: Tx, cutoff: float, keep_pending: bool, after: Cursor, limit: int, budget_s: float
) -> tuple[dict[str, int], list[str], Cursor | None]:
    """Delete whole workflow trees that ``_collectable`` chooses, from ``after`` on: one
    chunk of garbage collection, bounded by rows and time. It stops once about ``limit``
    workflows are deleted or ``budget_s`` seconds have passed (checked after each step of
    ``SCAN_STEP`` roots), so it holds the write lock briefly.

    Returns the counts by table, the deleted IDs, and the cursor to continue after
    (None: no roots left).
    """
    counts = dict.fromkeys(GC_TABLES, 0)
    ids: list[str] = []
    started = time.monotonic()
    cursor: Cursor | None = after
    while cursor is not None:  # at least one step, however small the budget
        scan = max(1, min(SCAN_STEP, limit - len(ids)))
        chosen, cursor = _collectable(tx, cutoff, keep_pending, cursor, scan)
        step = [workflow_id for workflow_id, _ in chosen]
        for table, count in delete_workflows(tx, step, announce_all=False).items():
            counts[table] += count
        ids.extend(step)
        if len(ids) >= limit or time.monotonic() - started >= budget_s:
            break
    return counts, ids, cursor


def delete_workflows(tx: Tx, ids: list[str], *, announce_all: bool) -> dict[str, int]:
    """Delete these workflows and all their data: the one deletion of garbage collection
    and ``delete_workflow``. Returns the counts by table.

    A status change is logged for each deleted unfinished one (so that a process running
    it stops it, and a queued one frees its queue's slot), or for every one with
    ``announce_all`` (so that waiters on any of them end with ``WorkflowNotFoundError``).
    """
    counts = dict.fromkeys(GC_TABLES, 0)
    for chunk in chunks(ids):
        marks = placeholders(chunk)
        gone = tx.fetchall(
            f"DELETE FROM workflows WHERE workflow_id IN ({marks}) "
            f"RETURNING workflow_id, status, queue_name",
            chunk,
        )
        counts["workflows"] += len(gone)
        for table, column in _GC_COLUMNS[1:]:
            counts[table] += tx.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", chunk)
        for workflow_id, status, queue_name in gone:
            if announce_all or status in _UNFINISHED:
                log_change(tx, Change.status(workflow_id))
            if status in _UNFINISHED:
                slot_freed(tx, queue_name)
    return counts


def delete_tree(
    tx: Tx, workflow_id: str, children: bool, caller: str | None = None
) -> dict[str, int]:
    """Delete a workflow with all its data, and with ``children`` its descendants at any
    depth; without, its children become top-level workflows (``parent_id`` NULL).
    Returns the counts by table.

    Raises before deleting anything: ``WorkflowNotFoundError`` if there is no such
    workflow, ``InvalidValueError`` if ``caller`` (the workflow asking) would be deleted.
    """
    found = tx.fetchall(
        "WITH RECURSIVE tree(id) AS (SELECT workflow_id FROM workflows WHERE workflow_id = ? "
        "UNION SELECT w.workflow_id FROM workflows w JOIN tree ON ? AND w.parent_id = tree.id) "
        "SELECT id FROM tree",
        (workflow_id, children),
    )
    if not found:
        raise WorkflowNotFoundError(workflow_id)
    ids = [row[0] for row in found]
    if caller is not None and caller in ids:
        raise InvalidValueError(
            f"workflow {caller!r} cannot delete {workflow_id!r}"
            f"{' with its descendants' if caller != workflow_id else ''}: that would delete "
            f"the calling workflow itself; delete it from outside, or from another workflow"
        )
    if not children:
        tx.execute("UPDATE workflows SET parent_id = NULL WHERE parent_id = ?", (workflow_id,))
    return delete_workflows(tx, ids, announce_all=True)


def prune_changes_batch(tx: Tx, older_than: float, limit: int, budget_s: float) -> tuple[int, bool]:
    """Delete up to ``limit`` of the oldest change rows created before ``older_than``, in
    steps of at most ``SCAN_STEP * 10`` rows, stopping after ``budget_s`` seconds.
    Returns how many, and whether older rows may remain."""
    pruned = 0
    started = time.monotonic()
    while True:  # at least one step, however small the budget
        step = max(1, min(SCAN_STEP * 10, limit - pruned))
        done = tx.execute(
            "DELETE FROM changes WHERE seq IN (SELECT seq FROM changes WHERE created_at < ? "
            "ORDER BY seq LIMIT ?)",
            (older_than, step),
        )
        pruned += done
        if done < step:
            return pruned, False
        if pruned >= limit or time.monotonic() - started >= budget_s:
            return pruned, True


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
            status_record(db, row)
            c.text("inputs", row["inputs"])
            c.optional_text("output", row["output"])
            c.optional_text("parent_id", row["parent_id"])
        elif table == "operations":
            operation_row(c, row)  # the same checks as replay and list_steps
        elif table == "streams":
            stream_row(c, row)  # the same checks as read_stream
            c.text("key", row["key"])
            c.optional_text("writer", row["writer"])
            c.timestamp("created_at", row["created_at"])
        elif table == "events":
            c.text("key", row["key"])
            c.text("value", row["value"])
            c.timestamp("created_at", row["created_at"])
        else:
            message_row(c, row)  # the same checks as list_messages
        if table in ("workflows", "operations") and row["error"] is not None:
            c.error_record("error", row["error"])

    for table, sql in (
        ("workflows", "SELECT * FROM workflows"),
        ("operations", f"SELECT workflow_id, {OPERATION_COLUMNS} FROM operations"),
        ("events", "SELECT workflow_id, key, value, created_at FROM events"),
        ("messages", f"SELECT destination_id, {MESSAGE_COLUMNS} FROM messages"),
        ("streams", "SELECT * FROM streams"),
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

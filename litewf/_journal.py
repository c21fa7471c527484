"""What workflows record and exchange: operations, events and messages, as SQL functions.

Plain functions over a ``Tx``, as in ``_store``. A workflow's own writes (an operation
record, a wait's outcome) land only while its row is PENDING and owned by the writer.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ._change import Change
from ._exceptions import WorkflowNotFoundError
from ._rows import Columns
from ._store import is_value, log_change, now, workflow_exists
from ._tx import Tx
from ._types import Status

__all__ = ["Operation", "OperationRow"]

_PENDING = Status.PENDING.value


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
    #: When it began (epoch seconds; None: when it is recorded, as for instant calls).
    started_at: float | None = None


# -- operations ----------------------------------------------------------------------------


def load_operations(db: Tx, workflow_id: str) -> dict[int, Operation]:
    """The workflow's recorded operations by number, each column checked."""
    return {
        op_id: Operation(name, output, error, done, deadline, target)
        for op_id, name, done, deadline, output, error, _, target, *_ in list_operations(
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
    """Record an operation (finished, or a started wait) if this executor owns the workflow.

    Its timing rides on the same insert: started at ``op.started_at`` (default: now),
    finished now if it is done (a started wait's end is set by ``finish_wait``)."""
    ts = now()
    inserted = tx.apply(
        "INSERT INTO operations (workflow_id, op_id, name, done, deadline, output, error, "
        "created_at, target, started_at, finished_at) "
        f"SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE {_OWNED}",
        (
            workflow_id,
            op_id,
            op.name,
            int(op.done),
            op.deadline,
            op.output,
            op.error,
            ts,
            op.target,
            ts if op.started_at is None else op.started_at,
            ts if op.done else None,
            workflow_id,
            _PENDING,
            executor_id,
        ),
    )
    return inserted


def finish_wait(
    tx: Tx,
    workflow_id: str,
    executor_id: str,
    op_id: int,
    output: str | None,
    error: str | None,
) -> bool:
    """Store the outcome of a started wait if this executor owns the workflow."""
    changed = tx.apply(
        "UPDATE operations SET done = 1, output = ?, error = ?, finished_at = ? "
        f"WHERE workflow_id = ? AND op_id = ? AND done = 0 AND {_OWNED}",
        (output, error, now(), workflow_id, op_id, workflow_id, _PENDING, executor_id),
    )
    return bool(changed)


# -- events ----------------------------------------------------------------------------------


def insert_event(tx: Tx, workflow_id: str, key: str, value: str) -> bool:
    """Store an event; False if the key was already set (events never change)."""
    inserted = tx.apply(
        "INSERT INTO events (workflow_id, key, value, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (workflow_id, key) DO NOTHING",
        (workflow_id, key, value, now()),
    )
    if inserted:
        log_change(tx, Change.event(workflow_id, key))
    return bool(inserted)


def get_event(db: Tx, workflow_id: str, key: str) -> str | None:
    row = db.fetchone(
        "SELECT value FROM events WHERE workflow_id = ? AND key = ?", (workflow_id, key)
    )
    return None if row is None else Columns(db, "events", workflow_id).text("value", row[0])


def get_live_event(db: Tx, workflow_id: str, key: str) -> str | None:
    """As ``get_event``; ``WorkflowNotFoundError`` once the workflow is gone (deleted while
    waited for), so that a wait for its event ends."""
    row = db.fetchone(  # one statement: on PostgreSQL a lone read of one is the fastest
        "SELECT (SELECT value FROM events WHERE workflow_id = ? AND key = ?), "
        "EXISTS (SELECT 1 FROM workflows WHERE workflow_id = ?)",
        (workflow_id, key, workflow_id),
    )
    assert row is not None  # (a SELECT without FROM: one row)
    if row[0] is not None:
        return Columns(db, "events", workflow_id).text("value", row[0])
    if not row[1]:
        raise WorkflowNotFoundError(workflow_id)
    return None


def get_all_events(db: Tx, workflow_id: str) -> list[tuple[str, str]]:
    rows = db.fetchall(
        "SELECT key, value FROM events WHERE workflow_id = ? ORDER BY key", (workflow_id,)
    )
    check = Columns(db, "events", workflow_id)
    return [(check.text("key", r[0]), check.text("value", r[1])) for r in rows]


# -- messages --------------------------------------------------------------------------------


#: The workflow a message is for exists.
_EXISTS = "EXISTS (SELECT 1 FROM workflows WHERE workflow_id = ?)"


def enqueue_message(
    tx: Tx,
    destination_id: str,
    topic: str | None,
    message: str,
    idempotency_key: str | None,
) -> bool | None:
    """Append a message to its queue; False if ``idempotency_key`` was seen before, None
    (nothing written) if there is no such workflow.

    The workflow's existence rides on the inserts (``apply``: on PostgreSQL, a batch of
    sends waits for no answer)."""
    ts = now()
    if idempotency_key is not None:
        fresh = tx.apply(
            "INSERT INTO message_keys (destination_id, idempotency_key, created_at) "
            f"SELECT ?, ?, ? WHERE {_EXISTS} ON CONFLICT DO NOTHING",
            (destination_id, idempotency_key, ts, destination_id),
        )
        if not fresh:
            return False if workflow_exists(tx, destination_id) else None
    inserted = tx.apply(
        "INSERT INTO messages (destination_id, topic, message, created_at) "
        f"SELECT ?, ?, ?, ? WHERE {_EXISTS}",
        (destination_id, topic, message, ts, destination_id),
    )
    if not inserted:
        return None
    log_change(tx, Change.message(destination_id, topic))
    return True


def _queue(destination_id: str, topic: str | None) -> tuple[str, tuple[str, ...]]:
    """The condition that selects one message queue in its index, and its parameters."""
    is_topic, params = is_value("topic", topic)
    return f"destination_id = ? AND {is_topic}", (destination_id, *params)


def peek_message(db: Tx, destination_id: str, topic: str | None) -> bool:
    queue, params = _queue(destination_id, topic)
    row = db.fetchone(f"SELECT 1 FROM messages WHERE {queue} LIMIT 1", params)
    return row is not None


def take_message(tx: Tx, destination_id: str, topic: str | None) -> str | None:
    """Remove and return the oldest message of the queue, or None if it is empty."""
    queue, params = _queue(destination_id, topic)
    row = tx.fetchone(
        "DELETE FROM messages WHERE seq = (SELECT seq FROM messages "
        f"WHERE {queue} ORDER BY seq LIMIT 1) RETURNING message",
        params,
    )
    return None if row is None else str(row[0])


# -- streams -----------------------------------------------------------------------------------

#: What ``append_stream`` returns for a stream that was closed (nothing is appended).
CLOSED = -1


def append_stream(
    tx: Tx, workflow_id: str, key: str, value: str | None, writer: str | None = None
) -> int | None:
    """Append ``value`` to the stream (``None``: close it); its position, ``CLOSED`` if the
    stream is closed, or None if ``writer`` (the operation writing it) already wrote it.

    A close of a closed stream returns its closing position (closing is idempotent).
    """
    last = tx.fetchone(
        "SELECT position, value FROM streams WHERE workflow_id = ? AND key = ? "
        "ORDER BY position DESC LIMIT 1",
        (workflow_id, key),
    )
    if last is not None and last[1] is None:
        return int(last[0]) if value is None else CLOSED
    if writer is not None and tx.fetchone(
        "SELECT 1 FROM streams WHERE workflow_id = ? AND key = ? AND writer = ?",
        (workflow_id, key, writer),
    ):
        return None
    position = 0 if last is None else int(last[0]) + 1
    tx.execute(
        "INSERT INTO streams (workflow_id, key, position, value, writer, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (workflow_id, key, position, value, writer, now()),
    )
    log_change(tx, Change.stream(workflow_id, key))
    return position


def stream_closed(db: Tx, workflow_id: str, key: str) -> bool:
    """Whether the stream has been closed (its last row is the close)."""
    last = db.fetchone(
        "SELECT value IS NULL FROM streams WHERE workflow_id = ? AND key = ? "
        "ORDER BY position DESC LIMIT 1",
        (workflow_id, key),
    )
    return last is not None and bool(last[0])


def read_stream(
    db: Tx, workflow_id: str, key: str, start: int, limit: int
) -> list[tuple[int, str | None]]:
    """Up to ``limit`` (position, value) of the stream from ``start`` on, in order, each
    column checked; a ``None`` value is the close."""
    rows = db.fetchall(
        "SELECT position, value FROM streams WHERE workflow_id = ? AND key = ? "
        "AND position >= ? ORDER BY position LIMIT ?",
        (workflow_id, key, start, limit),
    )
    check = Columns(db, "streams", workflow_id)
    return [stream_row(check, r) for r in rows]


def stream_row(check: Columns, r: sqlite3.Row) -> tuple[int, str | None]:
    """A ``streams`` row (position, value) with each column checked."""
    return check.count("position", r["position"]), check.optional_text("value", r["value"])


# -- listing ------------------------------------------


OPERATION_COLUMNS = (
    "op_id, name, done, deadline, output, error, created_at, target, started_at, finished_at"
)
OperationRow = tuple[
    int, str, bool, float | None, str | None, str | None, float, str | None, float | None,
    float | None,
]  # fmt: skip


def operation_row(check: Columns, r: sqlite3.Row) -> OperationRow:
    """An ``operations`` row (``OPERATION_COLUMNS``) with each column checked."""
    return (
        check.count("op_id", r["op_id"]),
        check.text("name", r["name"]),
        check.flag("done", r["done"]),
        check.optional_timestamp("deadline", r["deadline"]),
        check.optional_text("output", r["output"]),
        check.optional_text("error", r["error"]),
        check.timestamp("created_at", r["created_at"]),
        check.optional_text("target", r["target"]),
        check.optional_timestamp("started_at", r["started_at"]),
        check.optional_timestamp("finished_at", r["finished_at"]),
    )


def list_operations(db: Tx, workflow_id: str) -> list[OperationRow]:
    """Every recorded operation, checked, in call order: op_id, name, done, deadline,
    output, error, created_at, target, started_at, finished_at."""
    rows = db.fetchall(
        f"SELECT {OPERATION_COLUMNS} FROM operations WHERE workflow_id = ? ORDER BY op_id",
        (workflow_id,),
    )
    check = Columns(db, "operations", workflow_id)
    return [operation_row(check, r) for r in rows]


def list_queued(
    db: Tx, workflow_id: str, topic: str | None, every_topic: bool
) -> list[tuple[str | None, str, float]]:
    """Unconsumed messages (topic, message, created_at), oldest first."""
    queue: str = "destination_id = ?"
    params: tuple[str, ...] = (workflow_id,)
    if not every_topic:
        queue, params = _queue(workflow_id, topic)
    rows = db.fetchall(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {queue} ORDER BY seq", params)
    check = Columns(db, "messages", workflow_id)
    return [message_row(check, r) for r in rows]


MESSAGE_COLUMNS = "topic, message, created_at"


def message_row(check: Columns, r: sqlite3.Row) -> tuple[str | None, str, float]:
    """A ``messages`` row (``MESSAGE_COLUMNS``) with each column checked."""
    return (
        check.optional_text("topic", r["topic"]),
        check.text("message", r["message"]),
        check.timestamp("created_at", r["created_at"]),
    )

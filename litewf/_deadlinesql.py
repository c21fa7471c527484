"""The SQL of workflow deadlines and delayed starts (migration 5).

A workflow's ``deadline`` is epoch seconds on the runtime's clock; once it passes, the
workflow and every unfinished workflow under it end CANCELLED with a
``WorkflowTimeoutError`` outcome (``time_out``). A workflow not started yet keeps a
``timeout`` (seconds) that becomes a deadline when it starts. A delayed start is a
row ENQUEUED with no queue and ``not_before``; ``start_due`` makes it PENDING.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._change import Change
from ._exceptions import WorkflowTimeoutError
from ._serialization import encode_exception, exception_type_and_message
from ._store import (
    IS_ENQUEUED,
    IS_UNFINISHED,
    ClaimedWorkflow,
    log_change,
    now,
    placeholders,
    slot_freed,
)
from ._tx import Tx
from ._types import Status

__all__ = [
    "DELAYED",
    "Timing",
    "as_deadline",
    "clear",
    "deadline_of",
    "inherit",
    "next_delayed",
    "overdue",
    "place",
    "start_due",
    "time_out",
]

#: The ``QUEUE`` change key of delayed starts (no queue is named ""): a runtime's
#: dequeuer looks at them when one is recorded, as at its queues' changes.
DELAYED = ""

_ENQUEUED = Status.ENQUEUED.value
_DELAYED_ROW = f"{IS_ENQUEUED} AND queue_name IS NULL"

#: How many delayed starts one pass takes (the next pass takes more).
_BATCH = 500


@dataclass(frozen=True, slots=True)
class Timing:
    """When a workflow must be done by, and when it may start (all optional).

    ``deadline``: epoch seconds; ``timeout``: seconds counted from its start, for a
    workflow that does not start now; ``not_before``: a delayed start's epoch seconds.
    """

    deadline: float | None = None
    timeout: float | None = None
    not_before: float | None = None


@dataclass(frozen=True, slots=True)
class Placed:
    """A new workflow's effective deadline, and whether its start is delayed (ENQUEUED)."""

    deadline: float | None
    delayed: bool


def earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def as_deadline(value: object) -> float | None:
    """A stored deadline; None for NULL and for a value litewf never writes (a tampered
    row runs without a deadline rather than stopping the runtime)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def deadline_of(db: Tx, workflow_id: str) -> float | None:
    row = db.fetchone("SELECT deadline FROM workflows WHERE workflow_id = ?", (workflow_id,))
    return None if row is None else as_deadline(row[0])


def inherit(tx: Tx, workflow_id: str, parent_id: str | None) -> float | None:
    """Give a new child its parent's deadline when that one is earlier; its deadline."""
    if parent_id is not None:
        tx.execute(
            "UPDATE workflows SET deadline = p.deadline FROM (SELECT deadline FROM workflows "
            "WHERE workflow_id = ?) AS p WHERE workflow_id = ? AND p.deadline IS NOT NULL "
            "AND (workflows.deadline IS NULL OR workflows.deadline > p.deadline)",
            (parent_id, workflow_id),
        )
    return deadline_of(tx, workflow_id)


def place(tx: Tx, workflow_id: str, parent_id: str | None, timing: Timing | None) -> Placed:
    """Record a just-inserted PENDING workflow's timing (and its parent's deadline).

    A delayed start becomes ENQUEUED, unowned, until ``not_before``.
    """
    if timing is None:
        return Placed(inherit(tx, workflow_id, parent_id), delayed=False)
    delayed = timing.not_before is not None
    tx.execute(
        f"UPDATE workflows SET deadline = ?, timeout = ?, not_before = ?, "
        f"status = CASE WHEN ? THEN '{Status.ENQUEUED.value}' ELSE status END, "
        f"executor_id = CASE WHEN ? THEN NULL ELSE executor_id END WHERE workflow_id = ?",
        (timing.deadline, timing.timeout, timing.not_before, delayed, delayed, workflow_id),
    )
    deadline = inherit(tx, workflow_id, parent_id)
    if delayed:
        log_change(tx, Change.status(workflow_id))
        log_change(tx, Change.queue(DELAYED))
    return Placed(deadline, delayed)


def start_due(
    tx: Tx, executor_id: str, names: list[str], at: float
) -> tuple[list[tuple[ClaimedWorkflow, float | None]], float | None]:
    """Make the delayed starts due at ``at`` PENDING here (those whose function is in
    ``names``); them with their deadlines (a ``timeout`` counts from now), and the
    next delayed start's time (None: none waits)."""
    if not names:
        return [], None
    rows = tx.fetchall(
        f"SELECT workflow_id, name, inputs FROM workflows WHERE {_DELAYED_ROW} "
        f"AND not_before <= ? AND name IN ({placeholders(names)}) ORDER BY not_before LIMIT ?",
        (at, *names, _BATCH),
    )
    taken: list[tuple[ClaimedWorkflow, float | None]] = []
    ts = now()
    for workflow_id, name, inputs in rows:
        row = tx.fetchone(
            "UPDATE workflows SET status = ?, executor_id = ?, started_at = ?, updated_at = ?, "
            "deadline = CASE WHEN timeout IS NULL THEN deadline "
            "WHEN deadline IS NULL OR deadline > ? + timeout THEN ? + timeout "
            "ELSE deadline END WHERE workflow_id = ? AND status = ? AND queue_name IS NULL "
            "RETURNING deadline",  # (status bound: a plan can't read the delayed rows' index)
            (Status.PENDING.value, executor_id, at, ts, at, at, workflow_id, _ENQUEUED),
        )
        if row is not None:
            log_change(tx, Change.status(workflow_id))
            taken.append((ClaimedWorkflow(workflow_id, name, inputs), as_deadline(row[0])))
    if len(rows) == _BATCH:
        return taken, at  # more are due: look again at once
    return taken, next_delayed(tx, names)


def next_delayed(db: Tx, names: list[str]) -> float | None:
    """When the next delayed start of one of ``names`` is due (None: none waits); a
    read on a small partial index, so an idle runtime writes nothing to learn it."""
    if not names:
        return None
    row = db.fetchone(
        f"SELECT min(not_before) FROM workflows WHERE {_DELAYED_ROW} "
        f"AND name IN ({placeholders(names)})",
        tuple(names),
    )
    return None if row is None else as_deadline(row[0])


def overdue(db: Tx, at: float, limit: int = 500) -> list[str]:
    """Unfinished workflows whose deadline has passed at ``at`` (earliest first)."""
    rows = db.fetchall(
        f"SELECT workflow_id FROM workflows WHERE deadline IS NOT NULL "
        f"AND {IS_UNFINISHED} AND deadline <= ? ORDER BY deadline LIMIT ?",
        (at, limit),
    )
    return [str(r[0]) for r in rows]


def time_out(tx: Tx, workflow_id: str, at: float) -> list[str]:
    """End the workflow CANCELLED with ``WorkflowTimeoutError`` if it is unfinished and
    its deadline has passed at ``at``, with every unfinished workflow under it (each
    with its own error); the IDs it ended."""
    row = tx.fetchone(  # (statuses bound: a plan can't read the deadlines' partial index)
        "SELECT deadline FROM workflows WHERE workflow_id = ? AND deadline IS NOT NULL "
        "AND status IN (?, ?) AND deadline <= ?",
        (workflow_id, Status.PENDING.value, _ENQUEUED, at),
    )
    if row is None:
        return []
    deadline = float(row[0])
    tree = tx.fetchall(
        "WITH RECURSIVE tree(id) AS (SELECT ? UNION SELECT w.workflow_id FROM workflows w "
        "JOIN tree ON w.parent_id = tree.id) SELECT id FROM tree",
        (workflow_id,),
    )
    ended: list[str] = []
    ts = now()
    for (member,) in tree:
        error = encode_exception(WorkflowTimeoutError(member, deadline))
        error_type, message = exception_type_and_message(error)
        changed = tx.fetchall(
            f"UPDATE workflows SET status = ?, executor_id = NULL, error = ?, error_type = ?, "
            f"error_message = ?, updated_at = ? WHERE workflow_id = ? "
            f"AND {IS_UNFINISHED} RETURNING queue_name",
            (Status.CANCELLED.value, error, error_type, message, ts, member),
        )
        if changed:
            ended.append(member)
            log_change(tx, Change.status(member))
            slot_freed(tx, changed[0][0])
    return ended


def clear(tx: Tx, workflow_id: str) -> None:
    """Forget a stopped workflow's deadline (``resume_workflow`` runs it with none)."""
    tx.execute(
        "UPDATE workflows SET deadline = NULL, timeout = NULL WHERE workflow_id = ? "
        "AND status IN (?, ?, ?)",
        (
            workflow_id,
            Status.CANCELLED.value,
            Status.ERROR.value,
            Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED.value,
        ),
    )

"""The SQL of queues: enqueue, and the dequeue decision, each in one write transaction.

A queued workflow is a ``workflows`` row in status ENQUEUED with its queue's columns
(migration 4). A dequeue makes rows PENDING, owned by the dequeuing executor, inside the
write transaction that counted the queue's PENDING rows: writes are serialized
(``BEGIN IMMEDIATE``), so two processes can never both take the last slot. Times
(``not_before``, ``started_at``) are on the runtime's clock, passed in as ``at``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._change import Change
from ._exceptions import QueueDuplicateError
from ._store import (
    IS_ENQUEUED,
    IS_PENDING,
    IS_UNFINISHED,
    ClaimedWorkflow,
    log_change,
    now,
    placeholders,
)
from ._tx import Tx
from ._types import Status

__all__ = ["Dequeued", "Enqueued", "QueueLimits", "dequeue", "enqueue"]

_ENQUEUED = Status.ENQUEUED.value
_PENDING = Status.PENDING.value

#: How many queued candidates one dequeue looks at (it loops while it takes a full batch).
_SCAN = 500


@dataclass(frozen=True, slots=True)
class Enqueued:
    """What to store for one enqueue."""

    queue_name: str
    workflow_id: str
    name: str
    inputs: str
    priority: int
    dedup_id: str | None
    partition_key: str | None
    not_before: float | None
    parent_id: str | None = None
    #: A deadline (epoch seconds), and a timeout that counts from the dequeue.
    deadline: float | None = None
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Dequeued:
    """A workflow a dequeue made PENDING here; ``fresh``: it never ran before (one that
    was resumed back onto its queue has a history to replay)."""

    workflow: ClaimedWorkflow
    fresh: bool
    deadline: float | None = None


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """A queue's bounds (None: unbounded)."""

    concurrency: int | None
    worker_concurrency: int | None
    rate_limit: tuple[int, float] | None


def enqueue(tx: Tx, item: Enqueued) -> str | None:
    """Store the workflow ENQUEUED; the stored name if its ID existed (nothing stored).

    ``QueueDuplicateError`` (nothing stored) if ``dedup_id`` is held by an unfinished
    workflow of the queue.
    """
    row = tx.fetchone("SELECT name FROM workflows WHERE workflow_id = ?", (item.workflow_id,))
    if row is not None:
        return str(row[0])
    if item.dedup_id is not None:
        held = tx.fetchone(
            "SELECT workflow_id FROM workflows WHERE queue_name = ? AND dedup_id = ? "
            f"AND {IS_UNFINISHED} LIMIT 1",
            (item.queue_name, item.dedup_id),
        )
        if held is not None:
            raise QueueDuplicateError(item.queue_name, item.dedup_id, str(held[0]))
    ts = now()
    tx.execute(
        "INSERT INTO workflows (workflow_id, name, status, inputs, executor_id, parent_id, "
        "created_at, updated_at, queue_name, priority, dedup_id, partition_key, not_before, "
        "deadline, timeout) VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            item.workflow_id,
            item.name,
            _ENQUEUED,
            item.inputs,
            item.parent_id,
            ts,
            ts,
            item.queue_name,
            item.priority,
            item.dedup_id,
            item.partition_key,
            item.not_before,
            item.deadline,
            item.timeout,
        ),
    )
    log_change(tx, Change.status(item.workflow_id))
    log_change(tx, Change.queue(item.queue_name))
    return None


def dequeue(
    tx: Tx,
    queue_name: str,
    limits: QueueLimits,
    executor_id: str,
    names: list[str],
    at: float,
) -> tuple[list[Dequeued], float | None]:
    """Take what the queue's bounds allow now, by priority then FIFO, as PENDING workflows
    owned by ``executor_id`` (only those whose function is in ``names``).

    Returns them, and when something held back may become startable (the end of a delay
    or of the rate window; None: only a freed slot or a new enqueue can change it).
    """
    if not names:
        return [], None
    budget = math.inf
    wake: float | None = None
    if limits.worker_concurrency is not None:
        mine = _count(
            tx,
            f"SELECT count(*) FROM workflows WHERE queue_name = ? AND {IS_PENDING} "
            "AND executor_id = ?",
            (queue_name, executor_id),
        )
        budget = min(budget, limits.worker_concurrency - mine)
    if limits.rate_limit is not None:
        n, seconds = limits.rate_limit
        window = tx.fetchall(
            "SELECT started_at FROM workflows WHERE queue_name = ? AND started_at > ? "
            "ORDER BY started_at DESC LIMIT ?",
            (queue_name, at - seconds, n),
        )
        budget = min(budget, n - len(window))
        if len(window) >= n:
            wake = float(window[-1][0]) + seconds  # when the oldest counted start leaves
    if budget <= 0:
        return [], wake
    running: dict[str | None, int] = {}
    if limits.concurrency is not None:
        for key, count in tx.fetchall(
            f"SELECT partition_key, count(*) FROM workflows WHERE queue_name = ? "
            f"AND {IS_PENDING} GROUP BY partition_key",
            (queue_name,),
        ):
            running[key] = int(count)
        if len(running) == 1 and None in running and running[None] >= limits.concurrency:
            return [], wake  # unpartitioned and full: nothing to look at
    taken: list[Dequeued] = []
    after: tuple[int, int] = (-1, -1)
    while budget > 0:
        rows = tx.fetchall(
            f"SELECT seq, workflow_id, name, inputs, partition_key, priority, not_before, "
            f"started_at "
            f"FROM workflows "
            f"WHERE queue_name = ? AND {IS_ENQUEUED} AND (priority, seq) > (?, ?) "
            f"AND name IN ({placeholders(names)}) ORDER BY priority, seq LIMIT ?",
            (queue_name, *after, *names, _SCAN),
        )
        for seq, workflow_id, name, inputs, partition, priority, not_before, started in rows:
            after = (priority, seq)
            if not_before is not None and not_before > at:
                wake = not_before if wake is None else min(wake, not_before)
                continue
            if limits.concurrency is not None:
                if running.get(partition, 0) >= limits.concurrency:
                    continue
                running[partition] = running.get(partition, 0) + 1
            taken.append(Dequeued(ClaimedWorkflow(workflow_id, name, inputs), started is None))
            budget -= 1
            if budget <= 0:
                break
        if len(rows) < _SCAN:
            break
    ts = now()
    begun: list[Dequeued] = []
    for item in taken:
        wf = item.workflow
        # A timeout counts from this start: the deadline is the earlier of both.
        row = tx.fetchone(
            "UPDATE workflows SET status = ?, executor_id = ?, started_at = ?, updated_at = ?, "
            "deadline = CASE WHEN timeout IS NULL THEN deadline "
            "WHEN deadline IS NULL OR deadline > ? + timeout THEN ? + timeout ELSE deadline END "
            "WHERE workflow_id = ? AND status = ? RETURNING deadline",
            (_PENDING, executor_id, at, ts, at, at, wf.workflow_id, _ENQUEUED),
        )
        log_change(tx, Change.status(wf.workflow_id))
        value = None if row is None else row[0]
        deadline = float(value) if isinstance(value, int | float) else None
        begun.append(Dequeued(wf, item.fresh, deadline))
    return begun, wake


def _count(tx: Tx, sql: str, params: tuple[object, ...]) -> int:
    row = tx.fetchone(sql, params)
    return 0 if row is None else int(row[0])

"""The SQL of ``fork_workflow``: a new workflow that starts with a copy of another's history.

Like ``_store``, plain functions over a ``Tx``. The fork gets the source's name, inputs and
history version, and copies of the source's operations numbered below ``from_step``, of
the events those operations set and of the stream values they wrote (each stream value
says which operation wrote it: see ``_streams``). Everything is checked before anything is
written, so a refused fork stores nothing (and an operation recording the refusal can
share the transaction).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from ._change import Change
from ._exceptions import WorkflowConflictError, WorkflowNotFoundError
from ._rows import Columns
from ._store import log_change, now
from ._tx import Tx
from ._types import Status

__all__ = ["MAX_STEP", "Forked", "fork_workflow"]

#: The largest operation number SQLite can compare: a larger ``from_step`` copies all.
MAX_STEP = 2**63 - 1

#: A stream row's writer is "<op>", "<op>:<n>" or "<op>:close"; its operation number, or
#: NULL for a writer litewf never writes (such a row is not copied).
_WRITER_OP = (
    "CASE WHEN substr(w, 1, instr(w || ':', ':') - 1) GLOB '[0-9]*' "
    "AND NOT substr(w, 1, instr(w || ':', ':') - 1) GLOB '*[^0-9]*' "
    "THEN CAST(substr(w, 1, instr(w || ':', ':') - 1) AS INTEGER) END"
)


@dataclass(frozen=True, slots=True)
class Forked:
    """What a fork stored: the workflow's name, its inputs, and whether the fork is owned
    by the executor that asked (which runs it now) rather than left unowned."""

    name: str
    inputs: str
    owned: bool


def fork_workflow(
    tx: Tx,
    source_id: str,
    new_id: str,
    from_step: int,
    owner: Callable[[str], str | None],
) -> Forked:
    """Store ``new_id``, PENDING and owned by ``owner(name)`` (None: unowned, for a runtime
    that has the function to claim), as a copy of ``source_id``'s history before
    ``from_step``. ``WorkflowNotFoundError`` for an unknown source and
    ``WorkflowConflictError`` for a taken ``new_id``, both before anything is written."""
    row = tx.fetchone(
        "SELECT name, inputs, history FROM workflows WHERE workflow_id = ?", (source_id,)
    )
    if row is None:
        raise WorkflowNotFoundError(source_id)
    check = Columns(tx, "workflows", source_id)
    name, inputs = check.text("name", row[0]), check.text("inputs", row[1])
    history = check.count("history", row[2])
    taken = tx.fetchone("SELECT name FROM workflows WHERE workflow_id = ?", (new_id,))
    if taken is not None:
        raise WorkflowConflictError(new_id, str(taken[0]), name)
    executor_id = owner(name)
    ts = now()
    tx.execute(
        "INSERT INTO workflows (workflow_id, name, status, inputs, executor_id, parent_id, "
        "history, created_at, updated_at) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?)",
        (new_id, name, Status.PENDING.value, inputs, executor_id, history, ts, ts),
    )
    # A call's identity naming the source itself (code that passes its own ID, say
    # ``get_all_events(rt.current_workflow_id())``) names the fork in the fork's replay.
    tx.execute(
        "INSERT INTO operations (workflow_id, op_id, name, done, deadline, output, error, "
        "created_at, target, started_at, finished_at) SELECT ?, op_id, name, done, deadline, "
        "output, error, created_at, replace(target, ?, ?), started_at, finished_at "
        "FROM operations WHERE workflow_id = ? AND op_id < ?",
        (new_id, json.dumps(source_id), json.dumps(new_id), source_id, from_step),
    )
    for key in _copy_events(tx, source_id, new_id, from_step):
        log_change(tx, Change.event(new_id, key))
    for key in _copy_streams(tx, source_id, new_id, from_step):
        log_change(tx, Change.stream(new_id, key))
    log_change(tx, Change.status(new_id))
    return Forked(name, inputs, executor_id is not None)


def _copy_events(tx: Tx, source_id: str, new_id: str, from_step: int) -> list[str]:
    """Copy the events set by the copied ``set_event`` operations (by the key each one
    recorded; one recorded before keys were, history 1, by time: the events set no later
    than the last copied ``set_event``). The keys copied."""
    rows = tx.fetchall(
        "SELECT target, created_at FROM operations WHERE workflow_id = ? AND op_id < ? "
        "AND name = 'set_event' AND error IS NULL",
        (source_id, from_step),
    )
    keys: list[str] = []
    until: float | None = None
    for target, created_at in rows:
        key = _recorded_key(target)
        if key is not None:
            keys.append(key)
        elif isinstance(created_at, (int, float)):
            until = created_at if until is None else max(until, created_at)
    copied = tx.fetchall(
        "INSERT INTO events (workflow_id, key, value, created_at) "
        "SELECT ?, key, value, created_at FROM events WHERE workflow_id = ? "
        "AND (key IN (SELECT value FROM json_each(?)) OR created_at <= ?) RETURNING key",
        (new_id, source_id, json.dumps(keys), until),
    )
    return [str(row[0]) for row in copied]


def _recorded_key(target: object) -> str | None:
    """The key a ``set_event`` operation recorded in its identity, if it did."""
    if not isinstance(target, str):
        return None
    try:
        key = json.loads(target).get("key")
    except (ValueError, AttributeError):
        return None
    return key if isinstance(key, str) else None


def _copy_streams(tx: Tx, source_id: str, new_id: str, from_step: int) -> list[str]:
    """Copy the stream values (and closes) written by operations numbered below
    ``from_step``, in their order, at positions 0, 1, 2, ... of each stream (a value a
    later operation wrote in between leaves no gap). The keys copied."""
    copied = tx.fetchall(
        "INSERT INTO streams (workflow_id, key, position, value, writer, created_at) "
        "SELECT ?, key, row_number() OVER (PARTITION BY key ORDER BY position) - 1, value, "
        "w, created_at FROM (SELECT key, position, value, writer AS w, created_at "
        f"FROM streams WHERE workflow_id = ?) AS source WHERE {_WRITER_OP} < ? "
        "ORDER BY key, position RETURNING key",
        (new_id, source_id, from_step),
    )
    return sorted({str(row[0]) for row in copied})

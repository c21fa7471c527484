"""SQL for looking at workflows: which ones a listing wants, one workflow's stored
details (inputs, outcome, parent) and the streams it wrote.

Plain functions over a ``Tx``, as in ``_store``; used by listings and the dashboard.
Every value read back is checked (``Columns``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._rows import Columns
from ._tx import Tx
from ._types import Status

__all__ = ["StoredDetail", "WorkflowFilter", "stored_detail", "stream_keys"]


@dataclass(frozen=True, slots=True)
class WorkflowFilter:
    """What ``list_workflows`` keeps: each field set narrows the listing (all checked)."""

    status: Status | None = None
    name: str | None = None
    queue: str | None = None
    #: Created at or after ``since``, before ``until`` (epoch seconds).
    since: float | None = None
    until: float | None = None
    #: Workflow IDs that start with ``prefix`` (compared exactly: no wildcards).
    prefix: str | None = None
    #: Children of the workflow ``parent``.
    parent: str | None = None

    def clause(self) -> tuple[str, list[object]]:
        """The WHERE clause (empty for no filter) and its parameters."""
        tests: list[tuple[str, object]] = [
            ("queue_name = ?", self.queue),
            ("status = ?", None if self.status is None else self.status.value),
            ("name = ?", self.name),
            ("created_at >= ?", self.since),
            ("created_at < ?", self.until),
            ("parent_id = ?", self.parent),
        ]
        where = [sql for sql, value in tests if value is not None]
        params = [value for _, value in tests if value is not None]
        if self.prefix is not None:
            where.append("substr(workflow_id, 1, ?) = ?")
            params += [len(self.prefix), self.prefix]
        return (f"WHERE {' AND '.join(where)}" if where else ""), params


@dataclass(frozen=True, slots=True)
class StoredDetail:
    """A workflow's stored inputs and outcome (serialized), and its parent's ID."""

    inputs: str
    output: str | None
    error: str | None
    parent_id: str | None


def stored_detail(db: Tx, workflow_id: str) -> StoredDetail | None:
    """The workflow's inputs, output, error and parent, checked; None if there is none."""
    row = db.fetchone(
        "SELECT inputs, output, error, parent_id FROM workflows WHERE workflow_id = ?",
        (workflow_id,),
    )
    if row is None:
        return None
    check = Columns(db, "workflows", workflow_id)
    return StoredDetail(
        check.text("inputs", row[0]),
        check.optional_text("output", row[1]),
        check.optional_text("error", row[2]),
        check.optional_text("parent_id", row[3]),
    )


def stream_keys(db: Tx, workflow_id: str) -> list[tuple[str, int, bool]]:
    """The workflow's streams in key order: key, values written, whether it is closed."""
    rows = db.fetchall(
        "SELECT key, count(value), max(value IS NULL) FROM streams WHERE workflow_id = ? "
        "GROUP BY key ORDER BY key",
        (workflow_id,),
    )
    check = Columns(db, "streams", workflow_id)
    return [(check.text("key", r[0]), int(r[1]), bool(r[2])) for r in rows]

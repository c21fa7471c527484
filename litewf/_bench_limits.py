"""``litewf bench --scenario limits``: the machine's bounds, measured in the same run as the
figures compared with them (``_bench_figures.with_ratios``).

- the raw-SQL bound: the statements one one-step workflow writes (insert it, record its
  step, finish it, log the change), run by the storage functions themselves (``_store``,
  ``_journal``) over a plain ``sqlite3`` connection, 500 workflows a transaction, WAL,
  ``synchronous=FULL``: workflows/s and CPU per workflow, with no runtime around them.
- hot commits: one small fsync'd write transaction after another (p50, and commits/s).
- commits after an idle gap of 5-15 ms (p50): a disk that dozes between commits is slower
  to wake; a message sent into an idle runtime needs two such commits (its ``send``, then
  the receiver's ``recv``): the "two-commit floor".
"""

from __future__ import annotations

import random
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import _journal as journal
from . import _store as store
from ._bench_figures import Bounds, Figure, ms
from ._change import Change
from ._schema import migrate
from ._serialization import JsonSerializer, dumps_arguments
from ._tx import Tx
from ._types import Status

__all__ = ["BATCH", "limits", "open_plain"]

#: Workflows per transaction in the raw-SQL bound.
BATCH = 500
_NAME, _STEP, _EXECUTOR = "bench.workflow", "bench.one", "bench-limits"


def open_plain(path: Path, synchronous: str = "FULL") -> Tx:
    """A litewf file opened by plain ``sqlite3`` (WAL), migrated; autocommit mode."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    transaction(conn, migrate, conn)
    return Tx(conn)


def transaction(conn: sqlite3.Connection, body: Callable[..., object], *args: Any) -> None:
    """``body(*args)`` in one write transaction, as the runtime's group commit runs it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        body(*args)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def one_step_workflows(tx: Tx, ids: list[str], inputs: str, output: str) -> None:
    """What ``ids`` one-step workflows write, each statement from the storage functions."""
    for workflow_id in ids:
        store.insert_workflow(tx, workflow_id, _NAME, inputs, _EXECUTOR, None)
        journal.record_operation(
            tx, workflow_id, _EXECUTOR, 1, journal.Operation(_STEP, output, None)
        )
        store.finish_workflow(tx, workflow_id, _EXECUTOR, Status.SUCCESS, output, None, None, None)


def raw_sql(path: Path, n: int, synchronous: str) -> tuple[float, float]:
    """Workflows/s and µs of CPU per workflow of ``n`` one-step workflows in raw SQL."""
    tx = open_plain(path, synchronous)
    inputs = dumps_arguments(JsonSerializer(), _NAME, (1,), {})
    output = JsonSerializer().dumps(1)
    ids = [str(uuid.uuid4()) for _ in range(n)]
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, n, BATCH):
        chunk = ids[start : start + BATCH]
        transaction(tx.conn, one_step_workflows, tx, chunk, inputs, output)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    tx.conn.close()
    return n / wall, cpu / n * 1e6


def commit_times(
    path: Path, n: int, gap: tuple[float, float] | None, synchronous: str
) -> list[float]:
    """Seconds of each of ``n`` one-change write transactions (``store.log_change``), back
    to back or each after an idle pause drawn from ``gap`` (seconds)."""
    tx = open_plain(path, synchronous)
    change = Change.status("bench-limits")
    times = []
    for _ in range(n):
        if gap is not None:
            time.sleep(random.uniform(*gap))
        t = time.perf_counter()
        transaction(tx.conn, store.log_change, tx, change)
        times.append(time.perf_counter() - t)
    tx.conn.close()
    return times


def limits(
    fresh_path: Callable[[], Path], raw: int, hot: int, idle: int, synchronous: str = "FULL"
) -> list[Figure]:
    """The ``limits`` scenario's figures; ``bounds(figures)`` reads the bounds back.
    ``synchronous``: FULL, or NORMAL for ``--durability normal``."""
    rate, cpu = raw_sql(fresh_path(), raw, synchronous)
    hot_times = commit_times(fresh_path(), hot, None, synchronous)
    idle_times = commit_times(fresh_path(), idle, (0.005, 0.015), synchronous)
    hot_p50, hot_p99 = ms(hot_times)
    idle_p50, idle_p99 = ms(idle_times)
    measure = f"{raw} one-step workflows in raw SQL, {BATCH} a transaction"
    return [
        Figure("limits", measure, rate, "workflows/s"),
        Figure("limits", measure, cpu, "µs CPU each"),
        Figure("limits", "hot commit (back to back)", hot_p50, "ms (p50)", hot_p50, hot_p99),
        Figure("limits", "hot commits", len(hot_times) / sum(hot_times), "commits/s"),
        Figure(
            "limits", "commit after a 5-15 ms idle gap", idle_p50, "ms (p50)", idle_p50, idle_p99
        ),
        Figure("limits", "two-commit floor (2x the above)", 2 * idle_p50, "ms"),
    ]


def bounds(figures: list[Figure]) -> Bounds | None:
    """The bounds among ``figures`` (None if the ``limits`` scenario did not run)."""
    found = [f.value for f in figures if f.scenario == "limits"]
    if len(found) < 5:
        return None
    return Bounds(*found[:5])

"""SQL for copying a whole database between backends (``litewf migrate``).

Table by table in primary-key order, in chunks, with the same column names on both
sides (the two schemas are kept column for column alike). After the copy, PostgreSQL's
identity counters are moved past the copied rows (SQLite's AUTOINCREMENT follows
explicit values by itself).
"""

from __future__ import annotations

from typing import Any

from ._pgdialect import translate
from ._pgtx import PgTx
from ._tx import Tx

__all__ = ["TABLES", "count_rows", "insert_rows", "read_chunk", "reset_counters"]

#: Every table litewf stores, with its primary key (the copy order).
TABLES: tuple[tuple[str, str], ...] = (
    ("workflows", "seq"),
    ("operations", "workflow_id, op_id"),
    ("events", "workflow_id, key"),
    ("messages", "seq"),
    ("message_keys", "destination_id, idempotency_key"),
    ("changes", "seq"),
    ("streams", "workflow_id, key, position"),
    ("schedules", "name"),
)
_COUNTED = {"workflows": "seq", "messages": "seq", "changes": "seq"}


def count_rows(tx: Tx) -> int:
    """How many rows all litewf tables hold together."""
    total = 0
    for table, _ in TABLES:
        row = tx.fetchone(f"SELECT count(*) FROM {table}")
        total += int(row[0]) if row is not None else 0
    return total


def read_chunk(
    tx: Tx, table: str, key: str, offset: int, limit: int
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Rows ``offset`` to ``offset + limit`` of ``table`` in key order, and their columns."""
    rows = tx.fetchall(f"SELECT * FROM {table} ORDER BY {key} LIMIT ? OFFSET ?", (limit, offset))
    columns = list(rows[0].keys()) if rows else []
    return columns, [tuple(row) for row in rows]


def insert_rows(tx: Tx, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    marks = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
    if isinstance(tx, PgTx):  # one pipelined round trip, not one per row
        tx.pg.cursor().executemany(translate(sql), rows)
    else:
        tx.conn.executemany(sql, rows)


def reset_counters(tx: Tx) -> None:
    """Move PostgreSQL's identity counters past the copied rows (nothing on SQLite)."""
    if not isinstance(tx, PgTx):
        return
    for table, column in _COUNTED.items():
        tx.pg.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
            f"coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)"
        )

"""The database schema: append-only migrations, versioned by ``PRAGMA user_version``.

Migration ``i`` (0-based) upgrades a file from version ``i`` to ``i + 1``. Never edit a
released entry; append a new one. ``APPLICATION_ID`` marks a file as litewf's so that a
foreign SQLite file is refused instead of being "migrated".
"""

from __future__ import annotations

import sqlite3

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "migrate"]

#: "LWF1" as a 32-bit integer, stored in the SQLite header (offset 68).
APPLICATION_ID = 0x4C574631

MIGRATIONS: tuple[str, ...] = (
    # 1: workflows, their operations, events, message queues and the change log.
    """
    CREATE TABLE workflows (
        seq               INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order
        workflow_id       TEXT NOT NULL UNIQUE,
        name              TEXT NOT NULL,
        status            TEXT NOT NULL,
        inputs            TEXT NOT NULL,
        output            TEXT,
        error             TEXT,
        error_type        TEXT,
        error_message     TEXT,
        executor_id       TEXT,
        recovery_attempts INTEGER NOT NULL DEFAULT 0,
        parent_id         TEXT,
        created_at        REAL NOT NULL,
        updated_at        REAL NOT NULL
    );
    CREATE INDEX workflows_by_status ON workflows (status, executor_id);
    CREATE INDEX workflows_by_created ON workflows (created_at, seq);

    -- One row per recorded operation (step, sleep, child start, send, recv, ...).
    -- A waiting operation (recv, get_event) is first stored with done = 0 and its
    -- deadline, so that after a restart it waits only until the original deadline.
    CREATE TABLE operations (
        workflow_id TEXT NOT NULL,
        op_id       INTEGER NOT NULL,
        name        TEXT NOT NULL,
        done        INTEGER NOT NULL DEFAULT 1,
        deadline    REAL,
        output      TEXT,
        error       TEXT,
        created_at  REAL NOT NULL,
        PRIMARY KEY (workflow_id, op_id)
    ) WITHOUT ROWID;

    CREATE TABLE events (
        workflow_id TEXT NOT NULL,
        key         TEXT NOT NULL,
        value       TEXT NOT NULL,
        created_at  REAL NOT NULL,
        PRIMARY KEY (workflow_id, key)
    ) WITHOUT ROWID;

    -- Unconsumed messages; seq is the FIFO order (AUTOINCREMENT: never reused).
    CREATE TABLE messages (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        destination_id TEXT NOT NULL,
        topic          TEXT,
        message        TEXT NOT NULL,
        created_at     REAL NOT NULL
    );
    CREATE INDEX messages_by_queue ON messages (destination_id, topic, seq);

    -- Idempotency keys outlive the message they admitted.
    CREATE TABLE message_keys (
        destination_id  TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        created_at      REAL NOT NULL,
        PRIMARY KEY (destination_id, idempotency_key)
    ) WITHOUT ROWID;

    -- What changed, for pollers in other processes: they read only rows past their last seq.
    CREATE TABLE changes (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        kind        TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        key         TEXT,
        created_at  REAL NOT NULL
    );
    """,
    # 2: operation identity, the replay rules each workflow's history was recorded under.
    # ``target`` holds the identifying arguments of a call (canonical JSON; NULL for steps
    # and children, whose name identifies them, and for every row written before this
    # migration: those are compared by name only). ``history`` is 1 for workflows recorded
    # before it (their reads were not operations, so replaying them must not number reads)
    # and 2 for every workflow inserted after it (the column default). The parent index
    # finds a workflow's children at once (garbage collection deletes whole trees).
    """
    ALTER TABLE operations ADD COLUMN target TEXT;
    ALTER TABLE workflows ADD COLUMN history INTEGER NOT NULL DEFAULT 2;
    UPDATE workflows SET history = 1;
    CREATE INDEX workflows_by_parent ON workflows (parent_id) WHERE parent_id IS NOT NULL;
    """,
    # 3: streams. A value per (workflow, key, position); a NULL value closes the stream
    # (always its last row). ``writer`` names the operation that wrote it: a workflow's
    # own write or close by its operation number, a step's by "<step's operation
    # number>:<n>" (its n-th write in that run; "...:close" for its close): a run of the
    # step after a crash finds its earlier writes there and does not append them again.
    """
    CREATE TABLE streams (
        workflow_id TEXT NOT NULL,
        key         TEXT NOT NULL,
        position    INTEGER NOT NULL,
        value       TEXT,
        writer      TEXT,
        created_at  REAL NOT NULL,
        PRIMARY KEY (workflow_id, key, position)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX streams_by_writer ON streams (workflow_id, key, writer)
        WHERE writer IS NOT NULL;
    """,
    # 4: queues. An enqueued workflow is ENQUEUED with its queue, priority (lower first,
    # FIFO by seq within), optional dedup ID and partition key, and ``not_before`` (a
    # delay, on the runtime's clock); ``started_at`` is when a dequeue made it PENDING
    # (the rate limit counts those). Enqueue looks a dedup ID up among the queue's
    # unfinished workflows on the last index, inside its write transaction.
    """
    ALTER TABLE workflows ADD COLUMN queue_name TEXT;
    ALTER TABLE workflows ADD COLUMN priority INTEGER;
    ALTER TABLE workflows ADD COLUMN dedup_id TEXT;
    ALTER TABLE workflows ADD COLUMN partition_key TEXT;
    ALTER TABLE workflows ADD COLUMN not_before REAL;
    ALTER TABLE workflows ADD COLUMN started_at REAL;
    CREATE INDEX workflows_by_queue ON workflows (queue_name, status, priority, seq)
        WHERE queue_name IS NOT NULL;
    CREATE INDEX workflows_by_queue_start ON workflows (queue_name, started_at)
        WHERE started_at IS NOT NULL;
    CREATE INDEX workflows_by_dedup ON workflows (queue_name, dedup_id)
        WHERE dedup_id IS NOT NULL;
    """,
    # 5: deadlines and delayed starts. ``deadline`` (epoch seconds on the runtime's clock)
    # ends an unfinished workflow CANCELLED with WorkflowTimeoutError once it passes;
    # ``timeout`` (seconds) of a workflow not started yet (enqueued, or a delayed start)
    # becomes a deadline when it starts. A delayed start is ENQUEUED with no queue and
    # ``not_before``. The partial indexes hold only what the runtimes look for.
    """
    ALTER TABLE workflows ADD COLUMN deadline REAL;
    ALTER TABLE workflows ADD COLUMN timeout REAL;
    CREATE INDEX workflows_by_deadline ON workflows (deadline)
        WHERE deadline IS NOT NULL AND status IN ('PENDING', 'ENQUEUED');
    CREATE INDEX workflows_delayed ON workflows (not_before)
        WHERE status = 'ENQUEUED' AND queue_name IS NULL;
    """,
    # 6: schedules. One row per schedule: the workflow it runs, its timing (``cron`` or
    # ``every_s`` seconds, in zone ``tz``), what to do with missed ticks, and
    # ``handled_until`` (on the runtime's clock): every tick at or before it has run or
    # was passed over. Firing a tick inserts its workflow (a deterministic ID) and moves
    # ``handled_until`` in one write transaction, so each tick runs once.
    """
    CREATE TABLE schedules (
        name          TEXT PRIMARY KEY,
        workflow_name TEXT NOT NULL,
        cron          TEXT,
        every_s       REAL,
        tz            TEXT NOT NULL,
        missed        TEXT NOT NULL,
        paused        INTEGER NOT NULL DEFAULT 0,
        handled_until REAL NOT NULL,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 7: step timing. ``started_at``: when the operation began (a step's first attempt, a
    # wait's start); ``finished_at``: when its outcome was recorded (NULL while a wait is
    # under way). Both are written by the writes that record the operation anyway (its
    # insert, a wait's finishing update); rows from before this migration keep NULL.
    """
    ALTER TABLE operations ADD COLUMN started_at REAL;
    ALTER TABLE operations ADD COLUMN finished_at REAL;
    """,
    # 8: listing by status. ``list_workflows(status=...)`` reads newest first (by seq):
    # on this index it reads the first rows of its status in order, instead of sorting
    # every workflow of that status (a million finished ones took ~1 s).
    """
    CREATE INDEX workflows_by_status_seq ON workflows (status, seq);
    """,
    # 9: nothing here. On PostgreSQL, ``workflows_by_status`` gains ``workflow_id`` as its
    # last column: writes for a running workflow check ``WHERE workflow_id = ? AND status
    # = ? AND executor_id = ?``, and PostgreSQL's generic plans chose that index for it,
    # scanning every running workflow of the executor for each write. SQLite's planner
    # looks the ID up in its unique index, so its index stays as small as it was.
    """
    SELECT 1;
    """,
    # 10: nothing here either. On PostgreSQL, ``workflows_by_status`` becomes (status,
    # workflow_id, executor_id): whatever a prepared statement's generic plan chooses for
    # a lookup by ID and status (``workflow_id = ? AND status = ?``, with or without the
    # owner), this index or the unique one, it is a lookup of one entry. Plans are made
    # when a statement is first prepared, often on a table that is still empty, where
    # every index costs the same; with (status, executor_id, workflow_id) a queued
    # workflow's claim (no owner yet) read every ENQUEUED entry. Lookups by status and
    # owner (recovery, once a second) read the status's entries, as listing the owners
    # of PENDING workflows already does.
    """
    SELECT 1;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to ``SCHEMA_VERSION``; re-reads the version under the write lock,
    so two processes creating one file at once migrate it once."""
    row = conn.execute("PRAGMA user_version").fetchone()
    version = int(row[0]) if row is not None else 0
    for script in MIGRATIONS[version:]:
        for statement in _statements(script):
            conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _statements(script: str) -> list[str]:
    """Split a migration script into complete SQL statements."""
    out: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending.strip())
            pending = ""
    if pending.strip():
        out.append(pending.strip())
    return out

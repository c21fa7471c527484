"""Another connection holds SQLite's write lock, or a long read (issue 10, section 6).

The other party is a plain ``sqlite3`` connection in this process: SQLite locks between
connections exactly as between processes. Nothing here waits for a time to pass: each
test orders events (a call returns while the lock or the read is still held).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from litewf import _db, testing
from tests.faults import dbhooks


@contextmanager
def write_lock(db: Path) -> Iterator[sqlite3.Connection]:
    """Hold SQLite's write lock on ``db`` from another connection until the block ends."""
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield holder
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@contextmanager
def long_read(db: Path) -> Iterator[sqlite3.Connection]:
    """Hold one read snapshot of ``db`` from another connection until the block ends."""
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM workflows").fetchone()
    try:
        yield reader
    finally:
        reader.execute("COMMIT")
        reader.close()


@contextmanager
def hooked(hook: dbhooks.Hook) -> Iterator[None]:
    undo = dbhooks.install(hook)
    try:
        yield
    finally:
        undo()


def when_called(name: str, event: anyio.Event) -> dbhooks.Hook:
    """A hook that sets ``event`` when the database thread is about to run ``name``."""

    def hook(phase: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if phase == "before" and getattr(fn, "__name__", "") == name:
            event.set()

    return hook


async def test_busy_past_the_give_up_raises_database_busy_error(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that waited past the give-up raises DatabaseBusyError (before: a raw
    ``sqlite3.OperationalError`` with no error code); once the lock is free it works."""
    monkeypatch.setattr(_db, "BUSY_GIVE_UP_S", 0.2)
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="b.idle")
    async def idle() -> None:
        await rt.recv(timeout=60)

    async with rt:
        await rt.start_workflow(idle, workflow_id="idle")
        with write_lock(db_path), pytest.raises(litewf.DatabaseBusyError, match="write lock"):
            await rt.send("idle", "hello")
        await rt.send("idle", "hello")
        assert await (await rt.retrieve_workflow("idle")).get_result(timeout=10) is None


async def test_reads_do_not_wait_behind_a_write_waiting_for_the_lock(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SQLite's busy timeout made very long, a read still returns at once while a
    write of ours waits for another connection's write lock (before: the waiting write
    held the one database thread for the whole busy timeout, and the read behind it)."""
    monkeypatch.setattr(_db, "_BUSY_TIMEOUT_MS", 600_000)
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="b.idle")
    async def idle() -> str:
        return str(await rt.recv(timeout=60))

    async with rt:
        handle = await rt.start_workflow(idle, workflow_id="idle")
        attempted = anyio.Event()
        with hooked(when_called("_run_units", attempted)):
            async with anyio.create_task_group() as tg:
                with write_lock(db_path):
                    tg.start_soon(rt.send, "idle", "hello")
                    with anyio.fail_after(30):
                        await attempted.wait()  # our write is trying for the lock
                        for _ in range(3):
                            assert (await handle.get_status()).status == "PENDING"
                            assert await rt.list_workflows() != []
                # released: the waiting send goes through
        assert await handle.get_result(timeout=30) == "hello"


async def test_a_checkpoint_does_not_hold_the_write_lock_waiting_for_a_reader(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With another connection's read open and the WAL past the truncate size, the
    runtime's checkpoint does not keep the write lock waiting for the reader: another
    writer's send completes while the reader is still open (before: the TRUNCATE
    checkpoint held the write lock for SQLite's whole busy timeout)."""
    monkeypatch.setattr(_db, "_BUSY_TIMEOUT_MS", 600_000)
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="b.idle")
    async def idle() -> None:
        await rt.recv("stop", timeout=120)

    async with rt:
        await rt.start_workflow(idle, workflow_id="idle")
        with long_read(db_path):
            for _ in range(50):  # well past _WAL_TRUNCATE_AT
                await rt.send("idle", "x" * 100_000, topic="filler")
            assert testing.backend(rt).wal_bytes() > _db._WAL_TRUNCATE_AT
            async with litewf.Client(db_path) as client:
                started = anyio.Event()
                with hooked(when_called("_truncate_wal", started)):
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(testing.backend(rt).maintain)
                        with anyio.fail_after(30):
                            await started.wait()
                            await client.send("idle", "more", topic="filler")
            # the reader is still open here: the WAL could not be truncated
            assert testing.backend(rt).wal_bytes() > _db._WAL_TRUNCATE_AT
        await rt.send("idle", "done", topic="stop")
        assert await (await rt.retrieve_workflow("idle")).get_result(timeout=30) is None

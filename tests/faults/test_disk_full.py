"""Disk full and I/O errors (issue 5, part 3).

``PRAGMA max_page_count`` on litewf's own connection makes SQLite report SQLITE_FULL; a
lowered ``RLIMIT_FSIZE`` in a child process makes writes fail with EFBIG (an I/O error).
Each time: a clear ``DatabaseWriteError``, nothing half-stored, no transaction left open
(another connection writes within 1 s), and once space is back everything carries on.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

import litewf
from litewf import testing
from tests import procs

NO_LIMIT = 1_073_741_823  # SQLite's largest max_page_count


def another_process_can_write(db: Path) -> None:
    """Take SQLite's write lock from a fresh connection, waiting at most 1 s."""
    con = sqlite3.connect(db, isolation_level=None, timeout=1.0)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
    finally:
        con.close()


def count(db: Path, sql: str) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


def gated_sink(rt: litewf.Runtime) -> litewf.Workflow[[], list[str]]:
    """A workflow that, once the gate opens, takes every queued ``t`` message."""

    @rt.workflow(name="d.sink")
    async def sink() -> list[str]:
        await rt.recv("gate", timeout=60)
        got: list[str] = []
        while (message := await rt.recv("t", timeout=0)) is not None:
            got.append(message[:5])
        return got

    return sink


async def cap_pages(rt: litewf.Runtime, extra: int = 0) -> None:
    row = await testing.backend(rt).db.fetchone("PRAGMA page_count")
    assert row is not None
    await testing.backend(rt).db.fetchone(f"PRAGMA max_page_count = {int(row[0]) + extra}")


async def test_sqlite_full_once_then_continuously_then_space_is_back(db_path: Path) -> None:
    """Writes that hit SQLITE_FULL raise DatabaseWriteError (the first and every later one),
    store nothing, leave no transaction open; after space is back every acknowledged
    message is delivered, in order, once."""
    rt = litewf.Runtime(db_path)
    sink = gated_sink(rt)

    @rt.workflow(name="d.echo")
    async def echo(value: str) -> str:
        return value

    async with rt:
        handle = await rt.start_workflow(sink, workflow_id="sink")
        acked = []
        for i in range(10):
            await rt.send("sink", f"m{i:04d}", topic="t")
            acked.append(f"m{i:04d}")
        await cap_pages(rt, extra=8)
        errors: list[litewf.DatabaseWriteError] = []
        for i in range(10, 60):
            try:
                await rt.send("sink", f"m{i:04d}" + "x" * 20_000, topic="t")
                acked.append(f"m{i:04d}")
            except litewf.DatabaseWriteError as exc:
                errors.append(exc)
                if len(errors) == 4:
                    break
        assert len(errors) == 4 and len(acked) < 50  # failed once, then continuously
        assert all("database or disk is full" in str(e) for e in errors)
        assert all("nothing was stored" in str(e) for e in errors)
        with pytest.raises(litewf.DatabaseWriteError):
            await rt.start_workflow(echo, "y" * 50_000, workflow_id="big")
        with pytest.raises(litewf.WorkflowNotFoundError):
            await rt.retrieve_workflow("big")
        assert count(db_path, "SELECT count(*) FROM messages WHERE topic = 't'") == len(acked)
        await anyio.to_thread.run_sync(another_process_can_write, db_path)
        await testing.backend(rt).db.fetchone(f"PRAGMA max_page_count = {NO_LIMIT}")
        for i in range(1000, 1005):
            await rt.send("sink", f"m{i:04d}" + "x" * 20_000, topic="t")
            acked.append(f"m{i:04d}")
        await rt.send("sink", "open", topic="gate")
        assert await handle.get_result(timeout=30) == acked
        assert await (await rt.start_workflow(echo, "z", workflow_id="after")).get_result(10) == "z"
    assert count(db_path, "SELECT count(*) FROM messages") == 0


async def test_outcome_write_failure_does_not_take_the_runtime_down(db_path: Path) -> None:
    """A workflow whose result cannot be stored while the disk is full stays PENDING; the
    runtime keeps serving, and once space is back the result is stored."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="d.make")
    async def make(n: int) -> str:
        return "y" * n

    async with rt:
        assert await (await rt.start_workflow(make, 1)).get_result(timeout=10) == "y"
        await cap_pages(rt)
        handle = await rt.start_workflow(make, 50_000, workflow_id="big")
        with pytest.raises(TimeoutError):
            await handle.get_result(timeout=0.5)
        assert (await handle.get_status()).status == "PENDING"
        await testing.backend(rt).db.fetchone(f"PRAGMA max_page_count = {NO_LIMIT}")
        assert await (await rt.start_workflow(make, 2)).get_result(timeout=10) == "yy"
        assert await handle.get_result(timeout=10) == "y" * 50_000


async def test_io_error_from_a_file_size_limit_in_a_child(tmp_path: Path) -> None:
    """With RLIMIT_FSIZE below what the next write needs, sends raise DatabaseWriteError
    naming the I/O error, once and then continuously; meanwhile another process can
    write; after the limit is lifted the child carries on and loses nothing acknowledged."""
    db = tmp_path / "disk.db"
    child = procs.spawn("faults_disk", db, tmp_path)
    try:
        await procs.wait_for_file(tmp_path / "failing", child)
        await anyio.to_thread.run_sync(another_process_can_write, db)
        procs.touch(tmp_path / "resume")
        await procs.finish_async(child)
    finally:
        if child.poll() is None:
            procs.kill(child)
    result = json.loads((tmp_path / "result.json").read_text())
    assert len(result["errors"]) == 4
    for error in result["errors"]:
        assert error["type"] == "DatabaseWriteError"
        assert "disk I/O error" in error["message"] and "nothing was stored" in error["message"]
    assert len(result["acked"]) >= 15
    assert result["got"] == result["acked"]
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        con.close()

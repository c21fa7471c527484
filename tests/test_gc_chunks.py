"""garbage_collect of many old workflows: small chunks, each its own write, other writers
served between them, the same result, and a crash part way finished by a later call."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from litewf import _management as management
from litewf import _upkeep as upkeep
from tests import procs, sqldb

#: Old finished workflows each test stores.
OLD = 3_000
#: Workflows per chunk in these tests (so that there are many chunks).
CHUNK = 100


async def create(db_path: Path) -> None:
    async with litewf.Runtime(db_path):
        pass


def store_old(db_path: Path, pending_tree: bool = False) -> None:
    """``OLD`` finished workflows two hours old, each with a step and a change row. With
    ``pending_tree``: also an old finished parent whose old child is still PENDING, and an
    old PENDING workflow (collection must keep all three)."""
    old = time.time() - 7200
    rows = [(f"old-{n:05d}", old + n * 1e-3) for n in range(OLD)]
    with sqldb.connect(db_path) as conn:
        conn.executemany(
            "INSERT INTO workflows (workflow_id, name, status, inputs, output, created_at, "
            "updated_at) VALUES (?, 'wf', 'SUCCESS', '[[], {}]', '1', ?, ?)",
            [(workflow_id, at, at) for workflow_id, at in rows],
        )
        conn.executemany(
            "INSERT INTO operations (workflow_id, op_id, name, output, created_at) "
            "VALUES (?, 1, 'step', '1', ?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO changes (kind, workflow_id, created_at) VALUES ('status', ?, ?)", rows
        )
        if pending_tree:
            conn.executemany(
                "INSERT INTO workflows (workflow_id, name, status, inputs, parent_id, "
                "created_at, updated_at) VALUES (?, 'wf', ?, '[[], {}]', ?, ?, ?)",
                [
                    ("keep-parent", "SUCCESS", None, old, old),
                    ("keep-child", "PENDING", "keep-parent", old, old),
                    ("keep-pending", "PENDING", None, old, old),
                ],
            )


def count(db_path: Path, sql: str) -> int:
    with sqldb.connect(db_path) as conn:
        return int(conn.execute(sql).fetchone()[0])


async def test_gc_works_in_chunks_between_other_writes(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Collection of many old workflows is many small writes, none over ``GC_CHUNK_ROWS``
    workflows, and a writer sending meanwhile gets its writes in between them; every old
    finished workflow is gone with its rows, the unfinished tree and workflow stay."""
    monkeypatch.setattr(management, "GC_CHUNK_ROWS", CHUNK)
    await create(db_path)
    store_old(db_path, pending_tree=True)
    log: list[tuple[str, int]] = []  # ("chunk", workflows) and ("send", n), in commit order
    delete_finished = upkeep.delete_finished

    def chunk(tx: Any, *args: Any) -> Any:
        counts, ids, cursor = delete_finished(tx, *args)
        tx.after_commit(lambda: log.append(("chunk", len(ids))))
        return counts, ids, cursor

    monkeypatch.setattr(upkeep, "delete_finished", chunk)
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def sink() -> None:
        await rt.recv("never", timeout=3600)

    waits: list[float] = []  # the writer's own waits (not asserted: see the bench)
    async with rt:
        await rt.start_workflow(sink, workflow_id="sink")
        collecting = True

        async def writer() -> None:
            n = 0
            while collecting:
                began = time.perf_counter()
                await rt.send("sink", n, topic="t")
                waits.append(time.perf_counter() - began)
                log.append(("send", n))
                n += 1
                await anyio.sleep(0.002)

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer)
            counts = await rt.garbage_collect(older_than=3600)
            collecting = False

    sizes = [n for what, n in log if what == "chunk"]
    assert sum(sizes) == counts.workflows == OLD
    assert all(0 < n <= CHUNK for n in sizes[:-1]) and sizes[-1] <= CHUNK
    assert len(sizes) >= OLD // CHUNK
    first = next(i for i, (what, _) in enumerate(log) if what == "chunk")
    last = max(i for i, (what, _) in enumerate(log) if what == "chunk")
    assert any(what == "send" for what, _ in log[first:last])  # served between chunks
    assert counts.operations == OLD and counts.changes >= OLD
    assert count(db_path, "SELECT count(*) FROM workflows WHERE workflow_id LIKE 'old-%'") == 0
    assert count(db_path, "SELECT count(*) FROM operations WHERE workflow_id LIKE 'old-%'") == 0
    assert count(db_path, "SELECT count(*) FROM workflows WHERE workflow_id LIKE 'keep-%'") == 3
    assert count(db_path, "SELECT count(*) FROM messages") == len(waits)


async def test_gc_dry_run_counts_what_chunks_delete(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dry run, itself read in chunks, counts exactly what the collection deletes."""
    monkeypatch.setattr(management, "GC_CHUNK_S", 0.0)  # one step per chunk
    await create(db_path)
    store_old(db_path, pending_tree=True)
    async with litewf.Client(db_path) as client:
        dry = await client.garbage_collect(older_than=3600, dry_run=True)
        assert (dry.workflows, dry.operations) == (OLD, OLD)
        assert await client.garbage_collect(older_than=3600) == dry
        assert (await client.garbage_collect(older_than=3600)).workflows == 0


async def test_gc_killed_part_way_is_finished_by_a_later_call(
    db_path: Path, tmp_path: Path
) -> None:
    """A process collecting is SIGKILLed after some chunks: the database is consistent
    (no workflow half deleted) and the next collection deletes the rest."""
    await create(db_path)
    store_old(db_path, pending_tree=True)
    proc = procs.spawn("gc", db_path, tmp_path)
    try:
        await procs.wait_for_file(tmp_path / "chunked", proc)
    finally:
        procs.kill(proc)
    left = count(db_path, "SELECT count(*) FROM workflows WHERE workflow_id LIKE 'old-%'")
    assert 0 < left < OLD
    orphans = (
        "SELECT count(*) FROM operations o WHERE NOT EXISTS "
        "(SELECT 1 FROM workflows w WHERE w.workflow_id = o.workflow_id)"
    )
    assert count(db_path, orphans) == 0
    async with litewf.Client(db_path) as client:
        assert (await client.garbage_collect(older_than=3600)).workflows == left
    assert count(db_path, "SELECT count(*) FROM workflows WHERE workflow_id LIKE 'old-%'") == 0
    assert count(db_path, "SELECT count(*) FROM workflows WHERE workflow_id LIKE 'keep-%'") == 3

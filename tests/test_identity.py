"""One database, one identity: however a file is reached, its live executors are seen alive.

Most tests here are about SQLite files (symlinks, hard links, side files); those about
processes (fork, two runtimes in one process) run on PostgreSQL too.

Each test counts executions of a step body with a side-effect file (one line per run, in
any process): a workflow taken from a live runtime would run the body a second time.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

import litewf
from litewf import testing
from tests import procs
from tests.children.identity import WORKFLOW_ID, build
from tests.children.recovery import read_lines


def spawn(*args: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
    return procs.spawn("identity", *args)


async def scan_from_child(db: str, out: Path, before: str = "-", after: str = "-") -> str:
    """Run a peer runtime in a child (path spelled ``db``); what it saw of ``w1``."""
    child = spawn("scan", db, out, before, after)
    try:
        return (await procs.finish_async(child)).strip()
    finally:
        if child.poll() is None:
            procs.kill(child)


async def held_here(
    db_path: Path, out: Path, check: str, before: str = "-", after: str = "-"
) -> None:
    """Run ``w1`` here (its step mid-way) while a child scans the file spelled ``check``."""
    flows = build(db_path, out, executor_id="here")
    async with flows.rt:
        h = await flows.rt.start_workflow(flows.held, workflow_id=WORKFLOW_ID)
        await procs.wait_for_file(out / f"work.{os.getpid()}")
        seen = await scan_from_child(check, out, before, after)
        assert seen == f"{WORKFLOW_ID} here 0"  # the child saw us alive and took nothing
        procs.touch(out / "go")
        assert await h.get_result(timeout=30) == f"done {os.getpid()}"
        status = await h.get_status()
    assert status.recovery_attempts == 0
    assert read_lines(out / "steps.log") == [str(os.getpid())]


@pytest.mark.sqlite_only
async def test_symlink_peer_is_alive(db_path: Path, tmp_path: Path) -> None:
    """A runtime reaching the file through a symlink sees this process's executor alive."""
    link = tmp_path / "link.db"
    link.symlink_to(db_path)
    await held_here(db_path, tmp_path, str(link))


@pytest.mark.sqlite_only
async def test_relative_path_and_chdir(db_path: Path, tmp_path: Path) -> None:
    """A Runtime built with a relative path keeps meaning that file across chdir, before
    launch and after it, and sees this process's executor alive throughout."""
    relative = os.path.relpath(db_path, procs.ROOT)  # noqa: ASYNC240 - the child's cwd
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    await held_here(db_path, tmp_path, relative, str(before), str(after))


@pytest.mark.sqlite_only
async def test_dotdot_through_a_symlinked_folder(db_path: Path, tmp_path: Path) -> None:
    """``link/..`` is the parent of the link's target, as the OS resolves it."""
    sub = tmp_path / "sub"
    sub.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "link").symlink_to(sub)
    await held_here(db_path, tmp_path, str(tmp_path / "elsewhere" / "link" / ".." / "test.db"))


@pytest.mark.sqlite_only
async def test_lock_folder_removed(db_path: Path, tmp_path: Path) -> None:
    """Removing what looks like lock files by hand never makes a live executor look dead."""
    flows = build(db_path, tmp_path, executor_id="here")
    async with flows.rt:
        h = await flows.rt.start_workflow(flows.held, workflow_id=WORKFLOW_ID)
        await procs.wait_for_file(tmp_path / f"work.{os.getpid()}")
        shutil.rmtree(f"{db_path}-litewf", ignore_errors=True)
        assert await scan_from_child(str(db_path), tmp_path) == f"{WORKFLOW_ID} here 0"
        procs.touch(tmp_path / "go")
        assert await h.get_result(timeout=30) == f"done {os.getpid()}"
    assert read_lines(tmp_path / "steps.log") == [str(os.getpid())]


@pytest.mark.sqlite_only
async def test_hard_link_refused(db_path: Path, tmp_path: Path) -> None:
    """A file with two names is refused by Runtime and Client, through either name."""
    async with litewf.Runtime(db_path):
        pass
    other = tmp_path / "other.db"
    os.link(db_path, other)
    for path in (db_path, other):
        with pytest.raises(litewf.DatabaseError, match="hard link"):
            await litewf.Runtime(path).launch()
        with pytest.raises(litewf.DatabaseError, match="hard link"):
            async with litewf.Client(path):
                pass
    assert not os.path.exists(f"{other}-wal")  # noqa: ASYNC240 - refused before SQLite ran


async def test_forked_child_holds_no_lock(db_path: Path, tmp_path: Path) -> None:
    """After fork() the child holds none of the parent's locks (the parent's SIGKILL is
    recovered at once while the child lives), and its calls on the inherited runtime
    raise at once instead of hanging."""
    parent = spawn("fork", db_path, tmp_path)
    try:
        await procs.wait_for_file(tmp_path / "held", parent)
        await procs.wait_for_file(tmp_path / "fork.pid", parent)
        outcomes = (tmp_path / "fork.out").read_text(encoding="utf-8").splitlines()
        assert len(outcomes) == 2, outcomes  # list_workflows(), shutdown()
        for outcome in outcomes:
            assert outcome.startswith("raised LitewfError"), outcome
            assert "another process" in outcome
        parent.send_signal(signal.SIGKILL)  # the forked child lives on
        assert await anyio.to_thread.run_sync(parent.wait, 30) == -signal.SIGKILL

        flows = build(db_path, tmp_path, executor_id="here", recovery_interval=600.0)
        async with flows.rt:
            h = await flows.rt.retrieve_workflow(WORKFLOW_ID)
            status = await h.get_status()
            assert (status.executor_id, status.recovery_attempts) == ("here", 1)  # at launch
            procs.touch(tmp_path / "go")
            assert await h.get_result(timeout=30) == f"done {os.getpid()}"
        assert read_lines(tmp_path / "steps.log") == [str(parent.pid), str(os.getpid())]
    finally:
        procs.touch(tmp_path / "stop")  # the forked child exits
        if parent.poll() is None:
            parent.kill()
        parent.wait(30)
        parent.communicate()  # EOF once the forked child, which shares the pipes, exits


@pytest.mark.sqlite_only
async def test_wal_deleted_stops_the_runtime(db_path: Path, tmp_path: Path) -> None:
    """Deleting the -wal file under a live runtime stops it with a clear error."""
    flows = build(db_path, tmp_path, executor_id="here", recovery_interval=0.05)
    async with flows.rt:
        h = await flows.rt.start_workflow(flows.held, workflow_id=WORKFLOW_ID)
        await procs.wait_for_file(tmp_path / f"work.{os.getpid()}")
        os.unlink(f"{db_path}-wal")
        with pytest.raises(litewf.LitewfError, match="-wal file was deleted"):
            await h.get_result(timeout=20)
        with pytest.raises(litewf.LitewfError, match="-wal file was deleted"):
            await flows.rt.list_workflows()
    assert read_lines(tmp_path / "steps.log") == [str(os.getpid())]


@pytest.mark.sqlite_only
async def test_second_runtime_refused_after_wal_deleted(db_path: Path, tmp_path: Path) -> None:
    """With -wal and -shm deleted under a live runtime in another process, that runtime
    stops with a clear error and a new Runtime or Client on the file is refused."""
    child = spawn("hold", db_path, tmp_path, "owner")
    try:
        await procs.wait_for_file(tmp_path / "held", child)
        os.unlink(f"{db_path}-wal")
        os.unlink(f"{db_path}-shm")
        flows = build(db_path, tmp_path, executor_id="here")
        with pytest.raises(litewf.DatabaseError, match="deleted while a runtime"):
            await flows.rt.launch()
        with pytest.raises(litewf.DatabaseError, match="deleted while a runtime"):
            async with litewf.Client(db_path):
                pass
        procs.touch(tmp_path / "release")  # (the child holds its lock until now)
        out = await procs.finish_async(child)
        assert "error" in out and "was deleted" in out, out
    finally:
        if child.poll() is None:
            procs.kill(child)
    assert read_lines(tmp_path / "steps.log") == [str(child.pid)]


@pytest.mark.sqlite_only
async def test_client_refuses_rollback_journal(db_path: Path) -> None:
    """A Client on a litewf file that is not in WAL mode says so instead of working."""
    async with litewf.Runtime(db_path):
        pass
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)
    finally:
        conn.close()
    with pytest.raises(litewf.DatabaseError, match="not in WAL mode"):
        async with litewf.Client(db_path):
            pass


async def test_two_runtimes_in_one_process_see_each_other(
    db_path: Path, tmp_path: Path, backend: str
) -> None:
    """Locks held in this process count too (the OS does not report them to their holder):
    a second runtime here (on SQLite through a symlink) leaves the first one's workflow
    alone."""
    link = db_path
    if backend == "sqlite":
        link = tmp_path / "link.db"
        link.symlink_to(db_path)
    first = build(db_path, tmp_path, executor_id="first")
    async with first.rt:
        h = await first.rt.start_workflow(first.held, workflow_id=WORKFLOW_ID)
        await procs.wait_for_file(tmp_path / f"work.{os.getpid()}")
        second = build(link, tmp_path, executor_id="second")
        async with second.rt:  # launch-time recovery has run when this returns
            status = await (await second.rt.retrieve_workflow(WORKFLOW_ID)).get_status()
        assert (status.executor_id, status.recovery_attempts) == ("first", 0)
        procs.touch(tmp_path / "go")
        assert await h.get_result(timeout=30) == f"done {os.getpid()}"
    assert read_lines(tmp_path / "steps.log") == [str(os.getpid())]


async def test_the_wal_of_a_database_reached_through_a_symlink_is_measured_and_truncated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite names the WAL after the resolved path: the runtime's checkpoint and
    ``doctor`` look there (before: at ``<symlink>-wal``, which does not exist, so a WAL
    reached through a symlink was never truncated and doctor reported 0 bytes).

    (SQLite's auto-checkpoint lets the WAL plateau near 1000 pages, ~4.1 MB, too close to
    the 4 MiB default to rely on: the truncation size is lowered to 2 MiB here.)"""
    monkeypatch.setattr("litewf._db._WAL_TRUNCATE_AT", 2 * 1024 * 1024)
    real, link = tmp_path / "real.db", tmp_path / "link.db"
    link.symlink_to(real)
    rt = litewf.Runtime(link)

    @rt.workflow(name="i.sink")
    async def sink() -> None:
        await rt.recv("stop", timeout=120)

    async with rt:
        await rt.start_workflow(sink, workflow_id="sink")
        # 5 MB in one commit: past the size the runtime truncates at, whatever the page
        # count at which SQLite's own checkpoint (1000 pages) would start the WAL over.
        await rt.send("sink", "x" * 5_000_000, topic="filler")
        wal = f"{real}-wal"
        assert await anyio.to_thread.run_sync(os.path.getsize, wal) > 2 * 1024 * 1024
        assert testing.backend(rt).wal_bytes() > 2 * 1024 * 1024
        await testing.backend(rt).maintain()
        assert await anyio.to_thread.run_sync(os.path.getsize, wal) == 0
        await rt.send("sink", "done", topic="stop")

"""Guarantee 6 (recovery) with real processes killed by SIGKILL.

Children are ``tests/children/recovery.py``; each body execution appends a line (with the
executing pid) to a log file, so the tests count executions across processes.
"""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

import litewf
from tests import procs, sqldb
from tests.children.recovery import STOP, build, read_lines


@pytest.fixture(autouse=True)
def reap_children() -> Iterator[None]:
    """Whatever a test leaves running (after a failure, say) is killed, and pipes closed."""
    before = set(_spawned)
    yield
    for proc in set(_spawned) - before:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        _spawned.remove(proc)


_spawned: list[subprocess.Popen[bytes]] = []


def spawn(*args: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
    """``tests.children.recovery`` with these arguments, reaped after the test."""
    proc = procs.spawn("recovery", *args)
    _spawned.append(proc)
    return proc


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a child, reap it and close its pipes."""
    procs.kill(proc)
    proc.communicate()


def stop(out: Path, *children: subprocess.Popen[bytes]) -> None:
    """Ask ``serve``/``park``/``hold`` children to shut down cleanly and wait for them."""
    procs.touch(out / STOP)
    for child in children:
        procs.finish(child)


async def stored(db: Path, workflow_id: str) -> litewf.WorkflowStatus:
    """The stored row, read by a Client (which recovers nothing)."""
    async with litewf.Client(db) as client:
        return await (await client.retrieve_workflow(workflow_id)).get_status()


@pytest.mark.parametrize("same_executor", [False, True], ids=["new-executor", "same-executor"])
async def test_launch_recovers_crashed_workflow_at_once(
    db_path: Path, tmp_path: Path, same_executor: bool
) -> None:
    """A SIGKILLed workflow resumes at the next launch, not after a lease or a scan.

    A ran once (recorded), B twice (interrupted body re-runs), C once; the recovering
    runtime scans only every 60 s, so only launch-time recovery explains the result.
    Reusing the dead process's executor_id must count as a crash too.
    """
    child = spawn("abc", db_path, tmp_path, "dead-abc")
    await procs.wait_for_file(tmp_path / "B.started", child)
    kill(child)
    row = await stored(db_path, "wf-abc")
    assert (row.status, row.executor_id, row.recovery_attempts) == ("PENDING", "dead-abc", 0)

    executor_id = "dead-abc" if same_executor else None
    flows = build(db_path, tmp_path, recovery_interval=60.0, executor_id=executor_id)
    t0 = time.monotonic()
    async with flows.rt:
        h = await flows.rt.retrieve_workflow("wf-abc")
        assert await h.get_result(timeout=10) == "x:A:B:C"
        assert time.monotonic() - t0 < 10
        status = await h.get_status()
    assert status.status is litewf.Status.SUCCESS
    assert status.recovery_attempts == 1
    assert status.executor_id is None
    me = str(os.getpid())
    assert read_lines(tmp_path / "A.log") == [str(child.pid)]
    assert read_lines(tmp_path / "B.log") == [str(child.pid), me]
    assert read_lines(tmp_path / "C.log") == [me]


async def test_live_runtime_takes_over_dead_peer(db_path: Path, tmp_path: Path) -> None:
    """A runtime launched before its peer crashed finishes the peer's workflow, no relaunch."""
    flows = build(db_path, tmp_path, recovery_interval=0.2)
    async with flows.rt:
        child = spawn("abc", db_path, tmp_path, "peer-q")
        await procs.wait_for_file(tmp_path / "B.started", child)
        h = await flows.rt.retrieve_workflow("wf-abc")
        row = await h.get_status()  # Q is alive and owns it: P leaves it alone
        assert (row.status, row.executor_id, row.recovery_attempts) == ("PENDING", "peer-q", 0)
        kill(child)
        assert await h.get_result(timeout=10) == "x:A:B:C"
        status = await h.get_status()
    assert (status.status, status.recovery_attempts, status.executor_id) == ("SUCCESS", 1, None)
    me = str(os.getpid())
    assert read_lines(tmp_path / "A.log") == [str(child.pid)]
    assert read_lines(tmp_path / "B.log") == [str(child.pid), me]
    assert read_lines(tmp_path / "C.log") == [me]


def executions(out: Path) -> dict[str, list[tuple[str, int, float]]]:
    """``tracked.log`` grouped by workflow: (event, pid, wall time) in file order."""
    by_wf: dict[str, list[tuple[str, int, float]]] = defaultdict(list)
    for line in read_lines(out / "tracked.log"):
        event, pid, wid, ts = line.split()
        by_wf[wid].append((event, int(pid), float(ts)))
    return by_wf


def assert_never_overlapping(
    by_wf: dict[str, list[tuple[str, int, float]]], deaths: dict[int, float]
) -> None:
    """No workflow ever ran in two processes at once.

    An execution lasts from its start line to the same pid's end line, or, if it has none,
    until its process was killed (``deaths``); a live process without an end line would be
    an execution still running, which the caller rules out by waiting for every result.
    """
    for wid, events in by_wf.items():
        spans = []
        for event, pid, ts in events:
            if event != "start":
                continue
            ends = [t for e, p, t in events if e == "end" and p == pid and t >= ts]
            assert ends or pid in deaths, f"{wid}: run in live {pid} never ended"
            spans.append((ts, min(ends) if ends else deaths[pid], pid))
        spans.sort()
        for (_, end_a, pid_a), (start_b, _, pid_b) in itertools.pairwise(spans):
            assert start_b >= end_a, f"{wid}: {pid_a} and {pid_b} ran it at once: {events}"


async def test_two_live_processes_never_share_workflows(db_path: Path, tmp_path: Path) -> None:
    """Two live runtimes, both with the workflow registered and scanning every 50 ms:
    each workflow runs exactly once, in the process that started it, and all complete."""
    n = 25
    one = spawn("serve", db_path, tmp_path, "one", str(n), "sleep", "0.05")
    two = spawn("serve", db_path, tmp_path, "two", str(n), "sleep", "0.05")
    try:
        await procs.wait_for_file(tmp_path / "one.running", one)
        await procs.wait_for_file(tmp_path / "two.running", two)
        async with litewf.Client(db_path) as client:
            for prefix in ("one", "two"):
                for i in range(n):
                    h = await client.retrieve_workflow(f"{prefix}-{i}")
                    assert await h.get_result(timeout=30) == f"done {prefix}-{i}"
    finally:
        stop(tmp_path, one, two)
    by_wf = executions(tmp_path)
    pids = {"one": one.pid, "two": two.pid}
    assert len(by_wf) == 2 * n
    for wid, events in by_wf.items():
        owner = pids[wid.split("-")[0]]
        assert [(e, p) for e, p, _ in events] == [("start", owner), ("end", owner)], wid
    assert_never_overlapping(by_wf, {})


async def test_survivors_split_dead_peers_workflows(db_path: Path, tmp_path: Path) -> None:
    """Of two live survivors racing to recover a killed peer's 30 workflows, exactly one
    runs each, only after the peer died, and every workflow completes."""
    n = 30
    dead = spawn("serve", db_path, tmp_path, "dead", str(n), "go", "0.05")
    two = spawn("serve", db_path, tmp_path, "two", "0", "go", "0.05")
    three = spawn("serve", db_path, tmp_path, "three", "0", "go", "0.05")
    try:
        for name, proc in (("dead", dead), ("two", two), ("three", three)):
            await procs.wait_for_file(tmp_path / f"{name}.running", proc)
        t_kill = time.time()
        kill(dead)
        async with litewf.Client(db_path) as client:
            for i in range(n):
                await client.send(f"dead-{i}", "go", topic="go")
            for i in range(n):
                h = await client.retrieve_workflow(f"dead-{i}")
                assert await h.get_result(timeout=30) == f"done dead-{i}"
                status = await h.get_status()
                assert (status.status, status.recovery_attempts) == ("SUCCESS", 1)
    finally:
        stop(tmp_path, two, three)
    by_wf = executions(tmp_path)
    assert sorted(by_wf) == sorted(f"dead-{i}" for i in range(n))
    survivors = {two.pid, three.pid}
    for wid, events in by_wf.items():
        (s1, p1, t1), (s2, p2, t2), (s3, p3, _) = events  # exactly three lines
        assert (s1, p1) == ("start", dead.pid) and t1 < t_kill, wid
        assert s2 == "start" and p2 in survivors and t2 > t_kill, wid
        assert (s3, p3) == ("end", p2), wid
    assert_never_overlapping(by_wf, {dead.pid: t_kill})


@pytest.mark.parametrize("crash", [False, True], ids=["clean-shutdown", "sigkill"])
async def test_clean_shutdown_releases_without_counting(
    db_path: Path, tmp_path: Path, crash: bool
) -> None:
    """A clean shutdown leaves PENDING workflows unowned and their resumption is no
    recovery attempt; a SIGKILL leaves them owned and their recovery counts once."""
    n = 3
    child = spawn("park", db_path, tmp_path, "parker", str(n))
    await procs.wait_for_file(tmp_path / "park.ready", child)
    if crash:
        kill(child)
    else:
        stop(tmp_path, child)
    for i in range(n):
        row = await stored(db_path, f"park-{i}")
        assert row.status is litewf.Status.PENDING
        assert row.executor_id == ("parker" if crash else None)
        assert row.recovery_attempts == 0

    flows = build(db_path, tmp_path, recovery_interval=60.0)
    async with flows.rt:
        for i in range(n):
            await flows.rt.send(f"park-{i}", "go", topic="go")
        for i in range(n):
            h = await flows.rt.retrieve_workflow(f"park-{i}")
            assert await h.get_result(timeout=10) == "p1 got go"
            status = await h.get_status()
            assert (status.status, status.recovery_attempts) == ("SUCCESS", int(crash))
    assert read_lines(tmp_path / "P1.log") == [str(child.pid)] * n  # replayed, not re-run
    lines = read_lines(tmp_path / "parked.log")
    assert sorted(lines) == sorted(
        [f"{child.pid} park-{i}" for i in range(n)] + [f"{os.getpid()} park-{i}" for i in range(n)]
    )


async def test_crash_loop_stops_at_max_recovery_attempts(db_path: Path, tmp_path: Path) -> None:
    """A step that SIGKILLs its process: with max_recovery_attempts=2 the body runs 3 times
    (first run + 2 recoveries); the next recovery marks it MAX_RECOVERY_ATTEMPTS_EXCEEDED and
    it never runs again."""
    codes = []
    for _ in range(6):
        child = spawn("doomed", db_path, tmp_path, "2")
        out, err = child.communicate(timeout=60)
        codes.append(child.returncode)
        if child.returncode == 0:
            assert out.decode().split() == ["exceeded"], err.decode()
            break
    assert codes == [-9, -9, -9, 0]
    assert len(read_lines(tmp_path / "doomed.log")) == 3

    # Relaunching once more (child, then this process) runs nothing.
    child = spawn("doomed", db_path, tmp_path, "2")
    assert procs.finish(child).split() == ["exceeded"]
    flows = build(db_path, tmp_path, max_recovery_attempts=2)
    async with flows.rt:
        h = await flows.rt.retrieve_workflow("doomed")
        with pytest.raises(litewf.MaxRecoveryAttemptsExceededError):
            await h.get_result(timeout=10)
        status = await h.get_status()
    assert status.status is litewf.Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED
    assert (status.recovery_attempts, status.executor_id) == (2, None)
    assert len(read_lines(tmp_path / "doomed.log")) == 3


async def test_unregistered_workflow_is_left_alone(
    db_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A runtime without the dead workflow's function warns, does not run or count it, and
    leaves it for a runtime that has the function."""
    caplog.set_level(logging.WARNING, logger="litewf")
    child = spawn("park", db_path, tmp_path, "parker", "1")
    await procs.wait_for_file(tmp_path / "park.ready", child)
    kill(child)

    rt = litewf.Runtime(db_path, recovery_interval=0.05)

    @rt.workflow(name="other")
    async def other() -> str:
        return "other"

    async with rt:
        assert await other() == "other"
        await anyio.sleep(0.3)  # several recovery scans: waiting for something NOT to happen
        row = await (await rt.retrieve_workflow("park-0")).get_status()
    assert row.status is litewf.Status.PENDING
    assert row.executor_id in ("parker", None)
    assert row.recovery_attempts == 0
    assert len(read_lines(tmp_path / "parked.log")) == 1
    warnings = [r for r in caplog.records if r.name == "litewf" and r.levelno == logging.WARNING]
    assert any("park-0" in r.getMessage() and "parked" in r.getMessage() for r in warnings)

    flows = build(db_path, tmp_path, recovery_interval=60.0)
    async with flows.rt:
        await flows.rt.send("park-0", "go", topic="go")
        h = await flows.rt.retrieve_workflow("park-0")
        assert await h.get_result(timeout=10) == "p1 got go"
        status = await h.get_status()
    assert (status.status, status.recovery_attempts) == ("SUCCESS", 1)
    assert read_lines(tmp_path / "P1.log") == [str(child.pid)]


async def test_same_executor_id_conflicts_in_process(db_path: Path, tmp_path: Path) -> None:
    """A second live runtime with the same executor_id cannot launch, and its failed launch
    does not touch the first runtime's workflows."""
    first = build(db_path, tmp_path, executor_id="twin", park_target=1)
    async with first.rt:
        await first.rt.start_workflow(first.parked, workflow_id="park-0")
        await first.all_parked.wait()
        second = build(db_path, tmp_path, executor_id="twin")
        with pytest.raises(litewf.ExecutorConflictError, match="twin"):
            await second.rt.launch()
        await first.rt.send("park-0", "go", topic="go")
        h = await first.rt.retrieve_workflow("park-0")
        assert await h.get_result(timeout=10) == "p1 got go"
        status = await h.get_status()
    assert status.recovery_attempts == 0
    assert read_lines(tmp_path / "parked.log") == [f"{os.getpid()} park-0"]
    async with second.rt:  # the ID is free again once the first shut down
        pass


async def test_same_executor_id_conflicts_across_processes(db_path: Path, tmp_path: Path) -> None:
    """The executor_id of a live child cannot be launched here, and vice versa; once the
    holder shuts down cleanly the ID is usable."""
    child = spawn("hold", db_path, tmp_path, "shared-id")
    await procs.wait_for_file(tmp_path / "held", child)
    here = build(db_path, tmp_path, executor_id="shared-id")
    with pytest.raises(litewf.ExecutorConflictError):
        await here.rt.launch()
    stop(tmp_path, child)
    async with here.rt:
        rival_out = tmp_path / "rival"
        rival_out.mkdir()
        procs.touch(rival_out / STOP)  # were its launch to succeed, it would exit 0 at once
        rival = spawn("hold", db_path, rival_out, "shared-id")
        out, _ = rival.communicate(timeout=60)
        assert (rival.returncode, out.decode().split()) == (3, ["conflict"])


@pytest.mark.sqlite_only
async def test_shutdown_during_blocked_recovery_scan(db_path: Path, tmp_path: Path) -> None:
    """Shutting down while a recovery scan waits for another process's write lock stops
    cleanly: the scan's transaction is undone and the shutdown's own release still works."""
    child = spawn("park", db_path, tmp_path, "parker", "1")
    await procs.wait_for_file(tmp_path / "park.ready", child)
    kill(child)
    rt = litewf.Runtime(db_path, recovery_interval=0.05)  # "parked" is not registered here:
    await rt.launch()  # every scan opens a write transaction for the dead owner's workflow
    held, release = threading.Event(), threading.Event()

    def hold_write_lock() -> None:
        conn = sqldb.connect(db_path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            held.set()
            release.wait(30)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    holder = threading.Thread(target=hold_write_lock)
    holder.start()
    try:
        await anyio.to_thread.run_sync(held.wait, 30)
        await anyio.sleep(0.5)  # ten scan intervals: a scan is now blocked in BEGIN
        # Let the other process go only once shutdown has cancelled the blocked scan.
        threading.Timer(0.3, release.set).start()
        await rt.shutdown()
    finally:
        release.set()
        holder.join()
        await rt.shutdown()
    async with litewf.Client(db_path) as client:  # the file is writable and the row intact
        row = await (await client.retrieve_workflow("park-0")).get_status()
        await client.send("park-0", "go", topic="go")
    assert (row.status, row.executor_id, row.recovery_attempts) == ("PENDING", "parker", 0)


@pytest.mark.slow
async def test_launch_recovers_a_thousand_workflows(db_path: Path, tmp_path: Path) -> None:
    """1,000 workflows of a SIGKILLed process are all back at their ``recv`` after the
    next launch, each counted as one recovery, none re-running its recorded first step.

    Prints the time from launch until all are back (a figure, not an assertion; also by
    hand: ``python -m tests.children.recovery bench DB OUT N``).
    """
    n = 1000
    child = spawn("park", db_path, tmp_path, "parker", str(n))
    await procs.wait_for_file(tmp_path / "park.ready", child, timeout=120)
    kill(child)
    flows = build(db_path, tmp_path, park_target=n, recovery_interval=60.0)
    t0 = time.monotonic()
    async with flows.rt:
        with anyio.fail_after(60):
            await flows.all_parked.wait()
        elapsed = time.monotonic() - t0
        statuses = await flows.rt.list_workflows(limit=n + 1)
    print(f"recovered {n} workflows {elapsed:.3f} s after launch")
    assert len(statuses) == n
    assert {(s.status, s.recovery_attempts) for s in statuses} == {("PENDING", 1)}
    assert {s.executor_id for s in statuses} == {flows.rt.executor_id}
    assert len(read_lines(tmp_path / "P1.log")) == n
    assert sorted(read_lines(tmp_path / "parked.log")) == sorted(
        [f"{child.pid} park-{i}" for i in range(n)] + [f"{os.getpid()} park-{i}" for i in range(n)]
    )

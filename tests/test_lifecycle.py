"""Lifecycle and management: cancel then resume, re-adopting idle workflows, garbage
collection of whole trees, interrupts from workflow code, launch and shutdown across tasks
and event loops, and the listing order."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

import litewf
from litewf import _management as management
from litewf import _store as store
from litewf import testing
from litewf._cli import main as cli
from tests import sqldb
from tests.procs import spawn

#: Generous bound for anything that should take milliseconds.
WAIT = 10.0


def query(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read (or, to set up a state, write) rows straight in the database."""
    return sqldb.query(db_path, sql, params)


def stored(db_path: Path, workflow_id: str) -> tuple[Any, ...]:
    """(status, executor_id, recovery_attempts) of one stored workflow."""
    rows = query(
        db_path,
        "SELECT status, executor_id, recovery_attempts FROM workflows WHERE workflow_id = ?",
        (workflow_id,),
    )
    assert len(rows) == 1, rows
    return rows[0]


def stored_ids(db_path: Path) -> set[str]:
    return {row[0] for row in query(db_path, "SELECT workflow_id FROM workflows")}


async def wait_set(event: anyio.Event) -> None:
    """Wait for ``event``, failing the test instead of hanging."""
    with anyio.fail_after(WAIT):
        await event.wait()


async def wait_until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll a condition another task brings about; fail after ``WAIT``."""
    with anyio.fail_after(WAIT):
        while not await check():  # noqa: ASYNC110 - the condition is in the database
            await anyio.sleep(0.005)


class SteppedClock:
    """What ``_store.now`` returns: real time plus an offset the test moves."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0
        monkeypatch.setattr(store, "now", self.now)

    def now(self) -> float:
        return time.time() + self.offset


# -- cancel, resume, re-adoption ----------------------------------------------------------------


async def test_cancel_then_resume_at_once_runs_the_workflow(db_path: Path) -> None:
    """Resuming a workflow whose cancelled run still unwinds (a step's slow cleanup) runs it
    again once that run has ended: it ends SUCCESS, not PENDING for good."""
    rt = litewf.Runtime(db_path, recovery_interval=3600)  # no help from the recovery loop
    entered, cleaning, release = anyio.Event(), anyio.Event(), anyio.Event()
    bodies: list[str] = []

    @rt.step()
    async def slow() -> str:
        bodies.append("slow")
        if len(bodies) > 1:
            return "done"
        entered.set()
        try:
            await anyio.sleep_forever()
        finally:
            cleaning.set()
            with anyio.CancelScope(shield=True):
                await release.wait()  # cleanup that outlives the cancel
        return "unreachable"

    @rt.workflow()
    async def flow() -> str:
        return await slow()

    async with rt:
        handle = await rt.start_workflow(flow, workflow_id="w")
        await wait_set(entered)
        await rt.cancel_workflow("w")
        await wait_set(cleaning)
        await rt.resume_workflow("w")
        release.set()
        assert await handle.get_result(timeout=WAIT) == "done"
        assert bodies == ["slow", "slow"]
    assert stored(db_path, "w") == ("SUCCESS", None, 0)


async def test_a_late_status_change_does_not_stop_a_resumed_run(db_path: Path) -> None:
    """The change log replays this runtime's own cancel and resume to its poller once
    another connection commits; the resumed run must not take them for a new cancel."""
    rt = litewf.Runtime(db_path, recovery_interval=3600)  # no help from the recovery loop

    @rt.workflow()
    async def waits() -> str:
        got: str = await rt.recv("go", timeout=3600)
        return got

    async with rt:
        handle = await rt.start_workflow(waits, workflow_id="w")
        await wait_until(lambda: recv_waiting(rt, "w"))
        await rt.cancel_workflow("w")
        await wait_until(lambda: no_waiters(rt))  # the cancelled run has stopped
        await rt.resume_workflow("w")
        await wait_until(lambda: has_waiters(rt))  # the resumed run waits in recv
        async with litewf.Client(db_path) as client:  # a commit from another connection
            await client.send("w", "went", "go")
        assert await handle.get_result(timeout=WAIT) == "went"


async def no_waiters(rt: litewf.Runtime) -> bool:
    return testing.waiting(rt) == 0


async def has_waiters(rt: litewf.Runtime) -> bool:
    return testing.waiting(rt) > 0


async def test_recovery_loop_readopts_own_idle_pending_workflow(db_path: Path) -> None:
    """A PENDING workflow owned by this live runtime that no task here runs is run again
    by the recovery loop (not left PENDING for good)."""
    rt = litewf.Runtime(db_path, executor_id="me", recovery_interval=0.05)
    runs: list[int] = []

    @rt.workflow()
    async def flaky() -> str:
        runs.append(1)
        if len(runs) == 1:
            raise ValueError("first run fails")
        return "second run"

    async with rt:
        handle = await rt.start_workflow(flaky, workflow_id="idle")
        with pytest.raises(ValueError, match="first run fails"):
            await handle.get_result(timeout=WAIT)
        # The state to recover from: ours and PENDING, with no task running it.
        query(
            db_path,
            "UPDATE workflows SET status = 'PENDING', executor_id = 'me' WHERE workflow_id = ?",
            ("idle",),
        )
        assert await handle.get_result(timeout=WAIT) == "second run"
    assert runs == [1, 1]


async def test_readoption_never_runs_a_starting_or_finishing_workflow_twice(
    db_path: Path,
) -> None:
    """With the recovery loop scanning all the time, workflows that are being started (row
    committed, task not yet running) or are storing their outcome are never re-adopted:
    each body runs exactly once."""
    rt = litewf.Runtime(db_path, recovery_interval=0.001)
    entries: Counter[str] = Counter()

    @rt.step()
    async def add(a: int, b: int) -> int:
        return a + b

    @rt.workflow()
    async def quick(n: int) -> int:
        workflow_id = rt.current_workflow_id()
        assert workflow_id is not None
        entries[workflow_id] += 1
        return await add(n, 1)

    @rt.workflow()
    async def parent(n: int) -> int:
        return await quick(n) + await quick(n + 1)

    async with rt:
        handles: list[litewf.WorkflowHandle[int]] = []

        async def start(n: int) -> None:
            handles.append(await rt.start_workflow(parent, n))

        for _ in range(3):
            handles.clear()
            async with anyio.create_task_group() as tg:
                for n in range(40):
                    tg.start_soon(start, n)
            for handle in handles:
                await handle.get_result(timeout=WAIT)
        for _ in range(5):  # let the loop scan the finished rows a few more times
            await anyio.sleep(0.01)
    assert len(entries) == 3 * 40 * 2
    assert set(entries.values()) == {1}


# -- garbage collection ------------------------------------------------------------------------


async def test_gc_keeps_the_child_of_a_parent_that_failed_later(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child that finished long ago whose parent failed only now is kept (the tree's age
    is its root's), so resuming the parent replays the child instead of raising
    WorkflowNotFoundError."""
    clock = SteppedClock(monkeypatch)
    rt = litewf.Runtime(db_path)
    child_done, fail_now = anyio.Event(), anyio.Event()
    failures: list[int] = []

    @rt.workflow()
    async def child() -> str:
        return "child result"

    @rt.workflow()
    async def parent() -> str:
        got = await child()
        child_done.set()
        await fail_now.wait()
        if not failures:
            failures.append(1)
            raise RuntimeError("parent fails after its child finished")
        return f"parent saw {got}"

    async with rt:
        clock.offset = -7200.0  # the child runs and finishes two hours "ago"
        handle = await rt.start_workflow(parent, workflow_id="p")
        await wait_set(child_done)
        clock.offset = 0.0
        fail_now.set()
        with pytest.raises(RuntimeError):
            await handle.get_result(timeout=WAIT)
        assert (await rt.garbage_collect(older_than=3600)).workflows == 0
        assert stored_ids(db_path) == {"p", "p-0"}
        await rt.resume_workflow("p")
        assert await handle.get_result(timeout=WAIT) == "parent saw child result"


async def test_gc_deletes_an_old_finished_tree_whole(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A root that finished long ago goes with all its descendants, however young they are
    (here a child and grandchild that finished after their root); a tree with a PENDING
    member stays unless keep_pending=False."""
    clock = SteppedClock(monkeypatch)
    rt = litewf.Runtime(db_path)
    go = anyio.Event()

    @rt.workflow()
    async def leaf() -> str:
        await go.wait()
        return "leaf"

    @rt.workflow()
    async def middle() -> str:
        return await leaf()

    @rt.workflow()
    async def root(waits: bool) -> str:
        await rt.start_workflow(middle)  # not awaited: the root finishes first
        if waits:
            await rt.recv("never", timeout=3600)
        return "root"

    async with rt:
        clock.offset = -7200.0
        done = await rt.start_workflow(root, False, workflow_id="done")
        assert await done.get_result(timeout=WAIT) == "root"
        clock.offset = 0.0
        go.set()
        grandchild = await rt.retrieve_workflow("done-0-0")
        assert await grandchild.get_result(timeout=WAIT) == "leaf"
        assert stored_ids(db_path) == {"done", "done-0", "done-0-0"}

        go = anyio.Event()
        clock.offset = -7200.0
        busy = await rt.start_workflow(root, True, workflow_id="busy")  # its leaf waits
        await wait_until(lambda: exists(rt, "busy-0-0"))
        clock.offset = 0.0

        counts = await rt.garbage_collect(older_than=3600)
        assert counts.workflows == 3
        assert stored_ids(db_path) == {"busy", "busy-0", "busy-0-0"}
        counts = await rt.garbage_collect(older_than=3600, keep_pending=False)
        assert counts.workflows == 3
        assert stored_ids(db_path) == set()
        with pytest.raises(litewf.WorkflowNotFoundError):
            await busy.get_result(timeout=WAIT)


async def exists(rt: litewf.Runtime, workflow_id: str) -> bool:
    try:
        await rt.retrieve_workflow(workflow_id)
    except litewf.WorkflowNotFoundError:
        return False
    return True


async def test_gc_in_batches_deletes_whole_trees_and_passes_over_kept_ones(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With batches smaller than a tree, each tree still goes whole, and a tree that is
    kept (its root waits) does not stop the collection of the trees after it."""
    monkeypatch.setattr(management, "GC_CHUNK_ROWS", 2)
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def node(depth: int) -> int:
        return (await node(depth - 1) if depth else 0) + 1

    @rt.workflow()
    async def waiter() -> None:
        await rt.recv("never", timeout=3600)

    @rt.workflow()
    async def starter() -> None:
        await rt.start_workflow(waiter)  # not awaited: the root finishes, its child waits

    async with rt:
        await (await rt.start_workflow(starter, workflow_id="kept")).get_result(timeout=WAIT)
        for name in ("a", "b", "c"):
            handle = await rt.start_workflow(node, 2, workflow_id=name)
            assert await handle.get_result(timeout=WAIT) == 3
        counts = await rt.garbage_collect(older_than=0)
        assert counts.workflows == 9
        assert stored_ids(db_path) == {"kept", "kept-0"}
        await rt.cancel_workflow("kept-0")
        assert (await rt.garbage_collect(older_than=0)).workflows == 2


async def test_launch_cancelled_while_starting_leaves_nothing_running(db_path: Path) -> None:
    """A launch cancelled before it serves stops its task, and the runtime launches later."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def double(n: int) -> int:
        return 2 * n

    with anyio.CancelScope() as scope:
        scope.cancel()
        await rt.launch()
    with pytest.raises(litewf.RuntimeNotLaunchedError):
        await rt.list_workflows()
    async with rt:
        assert await double(4) == 8


# -- interrupts from workflow code -------------------------------------------------------------


@pytest.mark.parametrize("runner", ["anyio", "asyncio"])
@pytest.mark.parametrize("interrupt", ["KeyboardInterrupt", "SystemExit"])
def test_interrupt_in_workflow_reaches_the_caller_bare(
    db_path: Path, runner: str, interrupt: str
) -> None:
    """KeyboardInterrupt or SystemExit raised in a workflow reaches the application as
    itself (``except KeyboardInterrupt:`` runs, no exception group anywhere), the workflow
    stays PENDING, and the next launch of the same runtime resumes it."""
    proc = spawn("lifecycle", "interrupt", db_path, runner, interrupt)
    out, err = proc.communicate(timeout=120)
    text, errors = out.decode(), err.decode()
    assert proc.returncode == 0, f"{text}\n{errors}"
    assert text.splitlines() == [f"caught {interrupt}", "status PENDING", "result recovered"]
    assert "ExceptionGroup" not in errors, errors
    assert "unhandled exception" not in errors, errors


# -- launch and shutdown across tasks and event loops ----------------------------------------------


async def test_launch_and_shutdown_in_different_tasks(db_path: Path) -> None:
    """launch() in one task and shutdown() in another (two notebook cells), twice over."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def double(n: int) -> int:
        return 2 * n

    for n in range(2):
        await asyncio.create_task(rt.launch())
        assert await double(n) == 2 * n
        await asyncio.create_task(rt.shutdown())
        with pytest.raises(litewf.RuntimeNotLaunchedError):
            await rt.list_workflows()
    task = asyncio.create_task(rt.launch())
    await task
    assert await double(5) == 10
    await rt.shutdown()


async def test_launch_failure_in_a_task_is_raised_by_launch(db_path: Path) -> None:
    """A launch that fails (a foreign database) raises its error and leaves nothing running."""
    query(db_path, "CREATE TABLE mine (x INTEGER)")
    rt = litewf.Runtime(db_path)
    with pytest.raises(litewf.DatabaseError):
        await asyncio.create_task(rt.launch())
    with pytest.raises(litewf.RuntimeNotLaunchedError):
        await rt.list_workflows()
    await rt.shutdown()  # a no-op


def test_launch_in_one_event_loop_then_use_another(db_path: Path) -> None:
    """``anyio.run(rt.launch)`` returns with its loop gone; a second ``anyio.run`` can use
    the same runtime again (after launching it there) and finds its workflows."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def waits() -> str:
        got: str = await rt.recv("go", timeout=3600)
        return got

    async def first() -> None:
        await rt.launch()
        await rt.start_workflow(waits, workflow_id="w")
        await wait_until(lambda: recv_waiting(rt, "w"))

    anyio.run(first, backend="asyncio")
    anyio.run(rt.launch, backend="asyncio")

    async def second() -> str:
        with pytest.raises(litewf.LitewfError, match="launch"):
            await rt.list_workflows()
        async with rt:
            await rt.send("w", "went", "go")
            return str(await (await rt.retrieve_workflow("w")).get_result(timeout=WAIT))

    assert anyio.run(second, backend="asyncio") == "went"
    assert stored(db_path, "w") == ("SUCCESS", None, 0)


def test_launch_in_a_loop_that_stops_running(db_path: Path) -> None:
    """A runtime launched in a loop that no longer runs (never closed, never cancelled)
    raises a clear error instead of hanging; launch() in another loop starts afresh and
    takes back its workflows without counting a recovery attempt."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def waits() -> str:
        got: str = await rt.recv("go", timeout=3600)
        return got

    async def first() -> None:
        await rt.launch()
        await rt.start_workflow(waits, workflow_id="w")
        await wait_until(lambda: recv_waiting(rt, "w"))

    old = asyncio.new_event_loop()
    try:
        old.run_until_complete(first())

        async def second() -> str:
            with pytest.raises(litewf.LitewfError, match="event loop that has ended"):
                await rt.list_workflows()
            await rt.shutdown()  # lets go of what that loop held
            with pytest.raises(litewf.RuntimeNotLaunchedError):
                await rt.list_workflows()
            async with rt:
                await rt.send("w", "went", "go")
                return str(await (await rt.retrieve_workflow("w")).get_result(timeout=WAIT))

        assert asyncio.run(second()) == "went"
        assert stored(db_path, "w") == ("SUCCESS", None, 0)
    finally:
        old.close()


async def test_a_call_from_another_running_loop_is_refused(db_path: Path) -> None:
    """A runtime serving an event loop in another thread refuses calls and a second
    launch from this loop with a clear error, instead of hanging."""
    rt = litewf.Runtime(db_path)
    launched, stop = threading.Event(), threading.Event()

    def serve() -> None:
        async def main() -> None:
            async with rt:
                launched.set()
                await anyio.to_thread.run_sync(stop.wait)

        anyio.run(main, backend="asyncio")

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        assert await anyio.to_thread.run_sync(launched.wait, WAIT)
        with pytest.raises(litewf.LitewfError, match="another event loop, which still runs"):
            await rt.list_workflows()
        with pytest.raises(litewf.LitewfError, match="already launched"):
            await rt.launch()
        with pytest.raises(litewf.LitewfError, match="shut it down from that loop"):
            await rt.shutdown()
    finally:
        stop.set()
        await anyio.to_thread.run_sync(thread.join)
    async with rt:  # that loop shut it down: this one may launch it
        assert await rt.list_workflows() == []


async def recv_waiting(rt: litewf.Runtime, workflow_id: str) -> bool:
    steps = await rt.list_steps(workflow_id)
    return bool(steps) and steps[-1].kind == "recv" and steps[-1].outcome == "waiting"


# -- listing order -----------------------------------------------------------------------------


async def test_list_order_is_insertion_even_when_the_clock_steps_back(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The workflow started last lists first, even if the wall clock was stepped back an
    hour in between (on the Runtime, the Client and the command line)."""
    clock = SteppedClock(monkeypatch)
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def quick(n: int) -> int:
        return n

    async with rt:
        for n, offset in enumerate((0.0, -3600.0, -1800.0)):
            clock.offset = offset
            await rt.start_workflow(quick, n, workflow_id=f"w{n}")
        expected = ["w2", "w1", "w0"]
        assert [s.workflow_id for s in await rt.list_workflows()] == expected
        assert [s.workflow_id for s in await rt.list_workflows(limit=2, offset=1)] == ["w1", "w0"]
        async with litewf.Client(db_path) as client:
            assert [s.workflow_id for s in await client.list_workflows()] == expected
    assert await anyio.to_thread.run_sync(cli, ["--json", "--db", str(db_path), "list"]) == 0
    assert [s["workflow_id"] for s in json.loads(capsys.readouterr().out)] == expected

"""Hibernation (``max_resident_waits``): a workflow waiting in a recorded wait leaves
memory and comes back by replay, keeping every guarantee of a resident wait.

The workflows count their runs: the function's top runs again on each wake from
hibernation (a replay), a recorded step never does. So each test also fails if nothing
hibernates (one run) or if a wake re-ran a step.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from litewf import testing
from tests import procs
from tests.children.hibernation import build
from tests.children.recovery import read_lines


@pytest.fixture(autouse=True)
def reap_children() -> Iterator[None]:
    yield
    for proc in _spawned:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    _spawned.clear()


_spawned: list[subprocess.Popen[bytes]] = []


def spawn(*args: str | Path) -> subprocess.Popen[bytes]:
    proc = procs.spawn("hibernation", *args)
    _spawned.append(proc)
    return proc


async def until_hibernated(rt: litewf.Runtime, *workflow_ids: str) -> None:
    with anyio.fail_after(20):
        while not set(workflow_ids) <= testing.hibernated(rt):  # noqa: ASYNC110
            await anyio.sleep(0.005)


def runs(out: Path) -> tuple[int, int]:
    """(runs of the function's top, runs of the step body)."""
    return len(read_lines(out / "runs.log")), len(read_lines(out / "steps.log"))


async def test_message_wakes_a_hibernated_workflow(db_path: Path, tmp_path: Path) -> None:
    """Hibernated at its recv, it still shows waiting; a message runs it again by replay:
    the step is not run again, the message is consumed once."""
    flows = build(db_path, tmp_path, max_resident_waits=0)
    async with flows.rt as rt:
        h = await rt.start_workflow(flows.waiter, workflow_id="w")
        await until_hibernated(rt, "w")
        assert testing.waiting(rt) == 1
        assert (await h.get_status()).status is litewf.Status.PENDING
        assert [s.name for s in await rt.list_steps("w")] == ["hib.step", "recv"]
        await rt.send("w", "hello", topic="go")
        assert await h.get_result(timeout=20) == "7:hello"
        assert testing.hibernated(rt) == frozenset()
    assert runs(tmp_path) == (2, 1)


async def test_recovery_loop_leaves_hibernated_alone(db_path: Path, tmp_path: Path) -> None:
    """A hibernated workflow is PENDING, ours, and no task runs it: the recovery loop
    must not take it for one that lost its task and run it again."""
    flows = build(db_path, tmp_path, max_resident_waits=0, recovery_interval=0.02)
    async with flows.rt as rt:
        await rt.start_workflow(flows.waiter, workflow_id="w")
        await until_hibernated(rt, "w")
        await anyio.sleep(0.5)  # some 25 recovery passes
        assert testing.hibernated(rt) == {"w"}
        assert runs(tmp_path) == (1, 1)


async def test_longest_waiting_are_hibernated_first(db_path: Path, tmp_path: Path) -> None:
    """With a cap of 2, the third wait evicts the first (the longest waiting); the two
    resident ones are woken without a replay."""
    flows = build(db_path, tmp_path, max_resident_waits=2)
    async with flows.rt as rt:
        for i in range(3):
            await rt.start_workflow(flows.waiter, workflow_id=f"w{i}")
            with anyio.fail_after(20):
                while testing.waiting(rt) < i + 1:  # noqa: ASYNC110
                    await anyio.sleep(0.005)
        await until_hibernated(rt, "w0")
        assert testing.hibernated(rt) == {"w0"}
        for i in (1, 2):
            await rt.send(f"w{i}", i, topic="go")
            assert await (await rt.retrieve_workflow(f"w{i}")).get_result(timeout=20) == f"7:{i}"
        assert runs(tmp_path) == (3, 3)  # no replay for the resident ones
        await rt.send("w0", 0, topic="go")
        assert await (await rt.retrieve_workflow("w0")).get_result(timeout=20) == "7:0"
    assert runs(tmp_path) == (4, 3)


async def test_event_child_and_wait_first_waits_hibernate(db_path: Path) -> None:
    """get_event, get_result of a child and wait_first hibernate and wake like recv."""
    rt = litewf.Runtime(db_path, max_resident_waits=0)
    tops: list[str] = []

    @rt.workflow(name="hib.setter")
    async def setter() -> str:
        tops.append("setter")
        value = await rt.recv("set", timeout=3600)
        await rt.set_event("k", value)
        return str(value)

    @rt.workflow(name="hib.reader")
    async def reader(source: str) -> str:
        tops.append("reader")
        child = await rt.start_workflow(setter, workflow_id=f"{source}-child")
        first = await rt.wait_first(msg=rt.message("x"), ev=rt.event(source, "k"), timeout=3600)
        assert first is not None
        value = await rt.get_event(source, "k", timeout=3600)
        done = await child.get_result(timeout=3600)
        return f"{first.name}:{value}:{done}"

    async with rt:
        src = await rt.start_workflow(setter, workflow_id="src")
        h = await rt.start_workflow(reader, "src", workflow_id="r")
        await until_hibernated(rt, "src", "r", "src-child")
        await rt.send("src", "v", topic="set")  # wakes the wait_first
        assert await src.get_result(timeout=20) == "v"
        await until_hibernated(rt, "r")  # now in get_result of its child
        await rt.send("src-child", "c", topic="set")
        assert await h.get_result(timeout=20) == "ev:v:c"
    assert tops.count("reader") >= 3


async def test_cancel_and_resume_a_hibernated_workflow(db_path: Path, tmp_path: Path) -> None:
    """A cancel ends a hibernated workflow (nothing runs it on); resume runs it again,
    back to the same recorded wait, and a message then finishes it."""
    flows = build(db_path, tmp_path, max_resident_waits=0)
    async with flows.rt as rt:
        h = await rt.start_workflow(flows.waiter, workflow_id="w")
        await until_hibernated(rt, "w")
        await rt.cancel_workflow("w")
        with anyio.fail_after(20):
            while testing.hibernated(rt):  # noqa: ASYNC110
                await anyio.sleep(0.005)
        assert (await h.get_status()).status is litewf.Status.CANCELLED
        await rt.send("w", "late", topic="go")
        assert testing.waiting(rt) == 0
        await rt.resume_workflow("w")  # the message is queued: the replay takes it
        assert await h.get_result(timeout=20) == "7:late"
    assert runs(tmp_path) == (2, 1)


async def test_fork_of_a_hibernated_workflow(db_path: Path, tmp_path: Path) -> None:
    flows = build(db_path, tmp_path, max_resident_waits=0)
    async with flows.rt as rt:
        await rt.start_workflow(flows.waiter, workflow_id="w")
        await until_hibernated(rt, "w")
        fork = await rt.fork_workflow("w", 1, workflow_id="f")
        await until_hibernated(rt, "w", "f")
        await rt.send("f", "forked", topic="go")
        assert await fork.get_result(timeout=20) == "7:forked"
        assert testing.hibernated(rt) == {"w"}
    assert runs(tmp_path) == (3, 1)  # the fork replays the copied step


async def test_virtual_clock_drives_hibernated_deadlines(db_path: Path) -> None:
    """A hibernated recv's timeout and a hibernated workflow's own deadline are kept by
    the virtual clock: advancing past them wakes the workflows, as resident ones."""
    clock = testing.VirtualClock()
    # (No recovery pass meanwhile: its sweep of overdue workflows would end "bounded".)
    rt = litewf.Runtime(db_path, max_resident_waits=0, clock=clock, recovery_interval=60)

    @rt.workflow(name="hib.timed")
    async def timed(timeout: float) -> str:
        return repr(await rt.recv(timeout=timeout))

    async with rt:
        with anyio.fail_after(30):  # (real time: a missed deadline would hang)
            short = await rt.start_workflow(timed, 100.0, workflow_id="short")
            bounded = await rt.start_workflow(timed, 10_000.0, workflow_id="bounded", timeout=500)
            await until_hibernated(rt, "short", "bounded")
            assert clock.next_deadline is not None
            clock.advance(99)
            await anyio.sleep(0.05)
            assert testing.hibernated(rt) == {"short", "bounded"}
            clock.advance(1)
            assert await short.get_result(timeout=20) == "None"
            clock.advance(400)
            with pytest.raises(litewf.WorkflowTimeoutError):
                await bounded.get_result(timeout=20)
            assert (await bounded.get_status()).status is litewf.Status.CANCELLED


async def test_auto_advancing_clock_reaches_a_hibernated_deadline(db_path: Path) -> None:
    clock = testing.VirtualClock(auto_advance=True)
    rt = litewf.Runtime(db_path, max_resident_waits=0, clock=clock)

    @rt.workflow(name="hib.slow")
    async def slow() -> str:
        return repr(await rt.recv(timeout=86_400))

    async with rt:
        started = clock.time()
        h = await rt.start_workflow(slow)
        await until_hibernated(rt, h.workflow_id)
        with anyio.fail_after(20):
            assert await h.get_result() == "None"
        assert clock.time() - started == pytest.approx(86_400)


async def test_another_process_wakes_and_cancels(db_path: Path, tmp_path: Path) -> None:
    """A Client in another process: its message wakes a hibernated workflow here (the
    change feed rings it), its cancel ends another one."""
    flows = build(db_path, tmp_path, max_resident_waits=0)
    async with flows.rt as rt:
        a = await rt.start_workflow(flows.waiter, workflow_id="a")
        b = await rt.start_workflow(flows.waiter, workflow_id="b")
        await until_hibernated(rt, "a", "b")
        await procs.finish_async(spawn("send", db_path, "a", "remote"))
        assert await a.get_result(timeout=20) == "7:remote"
        await procs.finish_async(spawn("cancel", db_path, "b"))
        with pytest.raises(litewf.WorkflowCancelledError):
            await b.get_result(timeout=20)
        with anyio.fail_after(20):  # (the row may be read before the change feed tells)
            while testing.hibernated(rt):  # noqa: ASYNC110
                await anyio.sleep(0.005)
        assert runs(tmp_path) == (3, 2)  # "a" woke by replay, "b" was not run again


async def test_sigkill_while_hibernated_then_recovery(db_path: Path, tmp_path: Path) -> None:
    """Hibernation keeps nothing durable: a process SIGKILLed with a hibernated workflow
    leaves it PENDING at its recorded wait; the next launch recovers it, and a message
    sent meanwhile is consumed once, its step never run again."""
    child = spawn("serve", db_path, tmp_path)
    await procs.wait_for_file(tmp_path / "parked", child)
    procs.kill(child)
    async with litewf.Client(db_path) as client:
        await client.send("hib-1", "after-crash", topic="go")
    flows = build(db_path, tmp_path)
    async with flows.rt as rt:
        h = await rt.retrieve_workflow("hib-1")
        assert await h.get_result(timeout=20) == "7:after-crash"
        status = await h.get_status()
    assert (status.status, status.recovery_attempts) == (litewf.Status.SUCCESS, 1)
    assert runs(tmp_path) == (2, 1)  # the first run, then the recovery's replay


async def test_clean_shutdown_with_hibernated_workflows(db_path: Path, tmp_path: Path) -> None:
    """Shutdown forgets the hibernated (their rows stay PENDING); the next launch runs
    them to their wait again, without counting a recovery."""
    flows = build(db_path, tmp_path, max_resident_waits=0)
    async with flows.rt as rt:
        await rt.start_workflow(flows.waiter, workflow_id="w")
        await until_hibernated(rt, "w")
    flows = build(db_path, tmp_path, max_resident_waits=0)
    async with flows.rt as rt:
        await until_hibernated(rt, "w")
        await rt.send("w", "again", topic="go")
        h = await rt.retrieve_workflow("w")
        assert await h.get_result(timeout=20) == "7:again"
        assert (await h.get_status()).recovery_attempts == 0
    assert runs(tmp_path) == (3, 1)


async def test_a_wait_in_a_task_of_the_workflow_stays_resident(db_path: Path) -> None:
    """Only the wait of the workflow's own task hibernates: one in a task it started
    would take its siblings down with it."""
    rt = litewf.Runtime(db_path, max_resident_waits=0)
    tops: list[int] = []

    @rt.workflow(name="hib.tasks")
    async def tasks() -> str:
        tops.append(1)
        got: list[Any] = []

        async def take() -> None:
            got.append(await rt.recv("t", timeout=3600))

        async with anyio.create_task_group() as tg:
            tg.start_soon(take)
        return str(got[0])

    async with rt:
        h = await rt.start_workflow(tasks)
        with anyio.fail_after(20):
            while testing.waiting(rt) < 1:  # noqa: ASYNC110
                await anyio.sleep(0.005)
        assert testing.hibernated(rt) == frozenset()
        await rt.send(h.workflow_id, "in-task", topic="t")
        assert await h.get_result(timeout=20) == "in-task"
    assert tops == [1]


async def test_a_wait_stays_resident_while_a_step_of_its_workflow_runs(db_path: Path) -> None:
    """A step running in a task the workflow started keeps the workflow's own wait in
    memory (unwinding would cancel the step and run its body again); once the step is
    recorded, the wait may hibernate."""
    rt = litewf.Runtime(db_path, max_resident_waits=0)
    tops: list[int] = []
    bodies: list[int] = []
    release = anyio.Event()

    @rt.step(name="hib.slow")
    async def slow() -> str:
        bodies.append(1)
        await release.wait()
        return "slow done"

    @rt.workflow(name="hib.step_beside")
    async def beside() -> list[str]:
        tops.append(1)
        done: list[str] = []

        async def run_step() -> None:
            done.append(await slow())

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_step)
            done.append(str(await rt.recv("t", timeout=3600)))
        return done

    async with rt:
        h = await rt.start_workflow(beside)
        with anyio.fail_after(20):
            while not bodies or testing.waiting(rt) < 1:  # noqa: ASYNC110
                await anyio.sleep(0.005)
        await anyio.sleep(0.05)  # time to hibernate, were it allowed
        assert testing.hibernated(rt) == frozenset()
        release.set()
        await rt.send(h.workflow_id, "msg", topic="t")
        assert sorted(await h.get_result(timeout=20)) == ["msg", "slow done"]
    assert bodies == [1]


@pytest.mark.parametrize("bad", [-1, True, 1.5, "10", float("inf")])
def test_bad_max_resident_waits(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(litewf.InvalidValueError, match="max_resident_waits"):
        litewf.Runtime(tmp_path / "x.db", max_resident_waits=bad)

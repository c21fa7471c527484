"""The synchronous API (issue 15): plain ``def`` tests, ``def`` workflows and steps.

Every call goes through the one portal into the async runtime, so these tests check what
the portal adds: the workflow context follows a ``def`` workflow's thread into each call,
blocked calls end when their workflow stops, threads call at once safely, and sync and
async code share workflows and handles.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

import litewf
from litewf import testing
from litewf.pytest_plugin import SyncRuntimeFactory
from tests import procs
from tests.children import sync_crash


def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll an in-memory or on-disk condition from sync code; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


@pytest.fixture
def srt(db_path: Path) -> Iterator[litewf.SyncRuntime]:
    runtime = litewf.SyncRuntime(db_path, shutdown_timeout=30.0)
    yield runtime
    runtime.shutdown()


def waiting(srt: litewf.SyncRuntime) -> int:
    return testing.waiting(srt.runtime)


def test_def_workflow_with_def_and_async_steps(srt: litewf.SyncRuntime) -> None:
    threads: list[str] = []

    @srt.step()
    def add(a: int, b: int) -> int:
        threads.append(threading.current_thread().name)
        return a + b

    @srt.step(retries=1, retry_interval=0)
    async def double(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return 2 * x

    @srt.workflow()
    def flow(x: int) -> list[Any]:
        return [double(add(x, 1)), srt.current_workflow_id()]

    with srt:
        h = srt.start_workflow(flow, 3, workflow_id="w1")
        assert h.get_result(timeout=10) == [8, "w1"]
        assert h.get_status().status is litewf.Status.SUCCESS
        assert [s.kind for s in srt.list_steps("w1")] == ["step", "step"]
        assert flow(1)[0] == 4  # calling the workflow starts it and waits
    assert threads and threads[0] != threading.current_thread().name


def test_calling_a_sync_workflow_starts_it_and_waits(srt: litewf.SyncRuntime) -> None:
    @srt.workflow()
    def child(x: int) -> int:
        return x * 3

    @srt.workflow()
    def parent(x: int) -> int:
        return child(x) + 1  # a child workflow, recorded in the parent's history

    with srt:
        assert parent(2) == 7
        parents = srt.list_workflows(name=parent.name)
        assert [s.kind for s in srt.list_steps(parents[0].workflow_id)] == ["child", "get_result"]


def test_durable_calls_from_a_def_workflow(srt: litewf.SyncRuntime) -> None:
    @srt.workflow()
    def partner() -> str:
        srt.set_event("ready", True)
        return "partner-done"

    @srt.workflow()
    def flow(partner_id: str) -> dict[str, Any]:
        got: dict[str, Any] = {"patched": srt.patched("v2")}
        srt.deprecate_patch("old")
        srt.sleep(0.01)
        srt.sleep_until(datetime.now(UTC) + timedelta(milliseconds=10))
        got["event"] = srt.get_event(partner_id, "ready", timeout=10)
        srt.set_event("mine", "set")
        got["recv"] = srt.recv("in", timeout=10)
        first = srt.wait_first(
            msg=srt.message("second"),
            done=srt.retrieve_workflow(partner_id),
            ev=srt.event(partner_id, "ready"),
            timeout=10,
        )
        assert first is not None
        got["first"] = [first.name, first.value]
        srt.write_stream("out", 1)
        srt.write_stream("out", 2)
        srt.close_stream("out")
        got["events"] = srt.get_all_events(partner_id)
        return got

    with srt:
        p = srt.start_workflow(partner, workflow_id="partner")
        assert p.get_result(timeout=10) == "partner-done"
        h = srt.start_workflow(flow, "partner", workflow_id="flow")
        assert srt.get_event("flow", "mine", timeout=10) == "set"
        assert srt.send("flow", {"n": 1}, topic="in", idempotency_key="k")
        assert not srt.send("flow", {"n": 1}, topic="in", idempotency_key="k")
        result = h.get_result(timeout=10)
        assert list(srt.read_stream("flow", "out")) == [1, 2]
        assert list(srt.read_stream("flow", "out", offset=1)) == [2]
    assert result == {
        "patched": True,
        "event": True,
        "recv": {"n": 1},
        "first": ["done", "partner-done"],
        "events": {"ready": True},
    }


def test_a_def_workflow_reads_a_stream_and_replays_it(srt: litewf.SyncRuntime) -> None:
    @srt.step()
    def produce() -> None:
        for i in range(3):
            srt.write_stream("s", i)  # inside a step: the step's numbered writes
        srt.close_stream("s")

    @srt.workflow()
    def writer() -> None:
        produce()

    @srt.workflow()
    def reader(wid: str) -> list[int]:
        return list(srt.read_stream(wid, "s", timeout=10))

    with srt:
        srt.start_workflow(writer, workflow_id="writer").get_result(timeout=10)
        assert srt.start_workflow(reader, "writer").get_result(timeout=10) == [0, 1, 2]


def test_calls_from_eight_threads_at_once(srt: litewf.SyncRuntime) -> None:
    @srt.workflow()
    def echo(n: int) -> int:
        got = srt.recv(timeout=30)
        assert isinstance(got, int)
        return got + n

    barrier = threading.Barrier(8)

    def one(i: int) -> int:
        barrier.wait()
        h = srt.start_workflow(echo, i, workflow_id=f"echo-{i}")
        srt.send(h.workflow_id, 100 * i)
        result: int = srt.retrieve_workflow(h.workflow_id).get_result(timeout=30)
        return result

    with srt, ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(8))) == [101 * i for i in range(8)]


def test_start_in_sync_code_and_await_in_async_code_and_the_other_way(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)
    srt = litewf.SyncRuntime(rt)  # a view: the async code launches the runtime

    @srt.workflow()
    def sync_flow(x: int) -> int:
        got: int = srt.recv(timeout=10)
        return x + got

    @rt.workflow()
    async def async_flow(x: int) -> int:
        got: int = await rt.recv(timeout=10)
        return x + got

    def from_a_thread(async_id: str) -> tuple[str, int]:
        h = srt.start_workflow(sync_flow, 1, workflow_id="sync-started")
        srt.send(async_id, 20)
        return h.workflow_id, srt.retrieve_workflow(async_id).get_result(timeout=10)

    async def main() -> None:
        async with rt:
            a = await rt.start_workflow(async_flow, 2, workflow_id="async-started")
            sync_id, async_result = await anyio.to_thread.run_sync(from_a_thread, a.workflow_id)
            assert async_result == 22
            await rt.send(sync_id, 10)
            assert await (await rt.retrieve_workflow(sync_id)).get_result(timeout=10) == 11
            assert await rt.start_workflow(sync_flow.aio, 0, workflow_id="sync-started") is not None
            with pytest.raises(litewf.LitewfError, match="wait for itself forever"):
                srt.list_workflows()  # from the event loop's own thread: would deadlock

    anyio.run(main)


def test_launch_in_one_thread_and_shutdown_in_another(db_path: Path) -> None:
    srt = litewf.SyncRuntime(db_path)

    @srt.workflow()
    def flow() -> str:
        return "ok"

    launcher = threading.Thread(target=srt.launch)
    launcher.start()
    launcher.join()
    assert srt.start_workflow(flow).get_result(timeout=10) == "ok"
    stopper = threading.Thread(target=srt.shutdown)
    stopper.start()
    stopper.join()
    with pytest.raises(litewf.RuntimeNotLaunchedError, match="with srt:"):
        srt.list_workflows()
    srt.launch()  # and again, after a shutdown
    assert srt.start_workflow(flow).get_result(timeout=10) == "ok"
    srt.shutdown()


def test_a_killed_def_workflow_resumes_without_running_a_recorded_step(
    db_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    child = procs.spawn("sync_crash", db_path, out)
    anyio.run(procs.wait_for_file, out / "b.started", child)
    procs.kill(child)
    srt = litewf.SyncRuntime(db_path)
    flow = sync_crash.build(srt, out, block=False)
    with srt:
        assert srt.retrieve_workflow("sync-wf-1").get_result(timeout=30) == [2, 20]
        assert flow.name == "sync-wf"
    assert (out / "a.log").read_text().splitlines() == ["a"]  # step a ran once


def test_a_simulated_crash_of_a_def_workflow_keeps_its_recorded_steps(db_path: Path) -> None:
    runs: list[str] = []

    def build(srt: litewf.SyncRuntime) -> litewf.SyncWorkflow[[], str]:
        @srt.step(name="one")
        def one() -> str:
            runs.append("one")
            return "1"

        @srt.step(name="two")
        def two() -> str:
            runs.append("two")
            return "2"

        @srt.workflow(name="crashy")
        def crashy() -> str:
            return one() + two()

        return crashy

    first = litewf.SyncRuntime(db_path)
    flow = build(first)
    testing.crash_at(first.runtime, before_step="two")
    with first:
        first.start_workflow(flow, workflow_id="c")
        until(lambda: first.runtime._executor.dead is not None)
    second = litewf.SyncRuntime(db_path)
    build(second)
    with second:
        assert second.retrieve_workflow("c").get_result(timeout=10) == "12"
    assert runs == ["one", "two"]


def test_cancel_of_a_def_workflow_blocked_in_recv_ends_it_promptly(
    srt: litewf.SyncRuntime,
) -> None:
    seen: list[type[BaseException]] = []

    @srt.workflow()
    def parked() -> str:
        try:
            srt.recv(timeout=3600)
        except BaseException as exc:
            seen.append(type(exc))
            try:
                srt.set_event("after", 1)  # a stopped workflow's next call raises at once
            except BaseException as again:  # noqa: BLE001 - the test looks at it
                seen.append(type(again))
            raise
        return "received"

    with srt:
        h = srt.start_workflow(parked)
        until(lambda: waiting(srt) == 1)
        started = time.monotonic()
        srt.cancel_workflow(h.workflow_id)
        with pytest.raises(litewf.WorkflowCancelledError):
            h.get_result(timeout=10)
        until(lambda: not srt.runtime._step_threads.alive())
        assert time.monotonic() - started < 5
        assert seen == [asyncio.CancelledError, asyncio.CancelledError]
        again = srt.resume_workflow(h.workflow_id)  # runs again from the top, replaying
        until(lambda: waiting(srt) == 1)
        srt.send(h.workflow_id, "now")
        assert again.get_result(timeout=10) == "received"
        assert [s.kind for s in srt.list_steps(h.workflow_id)] == ["recv"]


def test_shutdown_with_a_def_workflow_blocked_in_recv_does_not_hang(db_path: Path) -> None:
    def build(srt: litewf.SyncRuntime) -> litewf.SyncWorkflow[[], Any]:
        @srt.workflow(name="parked")
        def parked() -> Any:
            return srt.recv(timeout=3600)

        return parked

    srt = litewf.SyncRuntime(db_path, shutdown_timeout=60.0)
    flow = build(srt)
    srt.launch()
    h = srt.start_workflow(flow, workflow_id="p")
    until(lambda: waiting(srt) == 1)
    started = time.monotonic()
    srt.shutdown()
    assert time.monotonic() - started < 5  # not shutdown_timeout: the body ended
    with litewf.SyncClient(db_path) as client:
        assert client.retrieve_workflow("p").get_status().status is litewf.Status.PENDING
        client.send("p", "late")  # queued for the next launch
    again = litewf.SyncRuntime(db_path)
    build(again)
    with again:
        assert again.retrieve_workflow(h.workflow_id).get_result(timeout=10) == "late"


def test_a_waiting_outside_call_ends_when_the_runtime_shuts_down(
    srt: litewf.SyncRuntime,
) -> None:
    errors: list[BaseException] = []

    @srt.workflow()
    def quiet() -> None:
        pass

    def wait() -> None:
        try:
            srt.get_event("quiet", "never", timeout=3600)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            errors.append(exc)

    srt.launch()
    srt.start_workflow(quiet, workflow_id="quiet").get_result(timeout=10)
    waiter = threading.Thread(target=wait)
    waiter.start()
    until(lambda: waiting(srt) == 1)
    srt.shutdown()
    waiter.join(10)
    assert not waiter.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], litewf.LitewfError)


def test_a_virtual_clock_drives_a_def_workflows_sleep(db_path: Path) -> None:
    clock = testing.VirtualClock(auto_advance=True)
    srt = litewf.SyncRuntime(db_path, clock=clock)

    @srt.workflow()
    def napper() -> str:
        srt.sleep(3600)
        return "rested"

    started, real = clock.time(), time.monotonic()
    with srt:
        assert srt.start_workflow(napper).get_result() == "rested"
    assert clock.time() - started >= 3600
    assert time.monotonic() - real < 10


def test_queues_and_a_sync_client(srt: litewf.SyncRuntime, db_path: Path) -> None:
    queue = srt.queue("jobs", concurrency=2)

    @srt.workflow(name="job")
    def job(x: int) -> int:
        return x * x

    with srt:
        handles = [queue.enqueue(job, i, priority=i) for i in range(4)]
        assert [h.get_result(timeout=10) for h in handles] == [0, 1, 4, 9]
        with litewf.SyncClient(db_path) as client:
            h = client.enqueue("jobs", "job", 5, workflow_id="from-client")
            assert h.get_result(timeout=10) == 25
            assert client.list_workflows(queue="jobs", limit=10)
            assert client.retrieve_workflow("from-client").workflow_id == "from-client"


ASYNC_ONLY = {"launch", "shutdown"}  # the sync view has its own (blocking) lifecycle


@pytest.mark.parametrize(
    ("sync_cls", "async_cls"),
    [
        (litewf.SyncRuntime, litewf.Runtime),
        (litewf.SyncClient, litewf.Client),
        (litewf.SyncQueue, litewf.Queue),
        (litewf.SyncWorkflowHandle, litewf.WorkflowHandle),
    ],
)
def test_every_async_call_has_a_sync_twin_with_the_same_arguments(
    sync_cls: type, async_cls: type
) -> None:
    """A new async method needs its one-line twin (``name = blocking(Runtime.name)`` in
    litewf/_sync.py, or ``blocking_handle`` when it returns a handle)."""
    for name, member in inspect.getmembers(async_cls):
        if name.startswith("_") or name in ASYNC_ONLY:
            continue
        if not (inspect.iscoroutinefunction(member) or name == "read_stream"):
            continue
        twin = getattr(sync_cls, name, None)
        assert twin is not None, f"{sync_cls.__name__} lacks {name}: add its sync twin"
        params = list(inspect.signature(member).parameters.values())
        twin_params = list(inspect.signature(twin).parameters.values())
        assert [(p.name, p.kind, p.default) for p in twin_params] == [
            (p.name, p.kind, p.default) for p in params
        ], f"{sync_cls.__name__}.{name} must take the arguments of {async_cls.__name__}.{name}"


def test_the_pytest_plugin_launches_a_sync_runtime_for_a_plain_test(
    litewf_db: Path, litewf_sync_runtime: SyncRuntimeFactory
) -> None:
    built = litewf.SyncRuntime(litewf_db)

    @built.workflow()
    def hello(name: str) -> str:
        return f"hello {name}"

    srt = litewf_sync_runtime(built)  # launched now, shut down at teardown
    assert srt is built
    assert srt.start_workflow(hello, "sync").get_result(timeout=10) == "hello sync"
    other = litewf_sync_runtime(executor_id="second")
    assert other.runtime.executor_id == "second"
    with pytest.raises(TypeError, match=r"litewf\.SyncRuntime"):
        litewf_sync_runtime(built.runtime)  # type: ignore[arg-type]


def test_fork_and_delete_from_sync_code(srt: litewf.SyncRuntime) -> None:
    """A def workflow stuck on a recorded step error is forked past it with fixed code;
    the copied step does not run again; the original is deleted."""
    runs: list[str] = []
    broken = True

    @srt.step()
    def first() -> int:
        runs.append("first")
        return 1

    @srt.step()
    def second() -> int:
        runs.append("second")
        if broken:
            raise ValueError("bug")
        return 2

    @srt.workflow()
    def flow() -> int:
        return first() + second()

    srt.launch()
    h = srt.start_workflow(flow, workflow_id="stuck")
    with pytest.raises(ValueError, match="bug"):
        h.get_result(timeout=30)
    broken = False
    fork = srt.fork_workflow("stuck", from_step=1, workflow_id="fixed")
    assert fork.get_result(timeout=30) == 3
    assert runs == ["first", "second", "second"]
    srt.delete_workflow("stuck")
    with pytest.raises(litewf.WorkflowNotFoundError):
        srt.retrieve_workflow("stuck")


def test_a_scheduled_def_workflow_and_schedule_calls_from_sync_code(db_path: Path) -> None:
    """``@srt.scheduled`` over a def workflow; the schedule calls, blocking, on the runtime
    and on a SyncClient; a backfill's handles block too."""
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    clock = testing.VirtualClock(start=start.timestamp())
    srt = litewf.SyncRuntime(db_path, clock=clock)
    seen: list[datetime] = []

    @srt.scheduled(every=timedelta(hours=1), missed="skip")
    @srt.workflow(name="hourly")
    def hourly(scheduled_at: datetime) -> str:
        seen.append(scheduled_at)
        return scheduled_at.isoformat()

    with srt:
        record = srt.get_schedule("hourly")
        assert record is not None and record.workflow_name == "hourly"
        assert [r.name for r in srt.list_schedules()] == ["hourly"]
        srt.pause_schedule("hourly")
        runs = srt.backfill_schedule("hourly", start - timedelta(hours=2), start)
        assert [h.get_result(timeout=10) for h in runs] == [
            (start - timedelta(hours=2)).isoformat(),
            (start - timedelta(hours=1)).isoformat(),
        ]
        now = srt.trigger_schedule("hourly")
        assert now.get_result(timeout=10) == start.isoformat()
        with litewf.SyncClient(db_path) as client:
            client.resume_schedule("hourly")
            paused = client.get_schedule("hourly")
            assert paused is not None and not paused.paused
            client.delete_schedule("hourly")
        assert srt.get_schedule("hourly") is None
    assert len(seen) == 3

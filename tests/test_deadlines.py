"""Deadlines and timeouts (issue 14): workflow timeouts and deadlines, delayed starts, and
step timeouts, all on the runtime's clock (a VirtualClock here: no real waits)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

import litewf
from litewf import Status
from litewf._cli import main
from litewf.testing import VirtualClock, crash_now
from tests import procs, sqldb
from tests.conditions import wait_until

HOUR = 3600.0


def column(db: Path, sql: str, *params: Any) -> list[Any]:
    conn = sqldb.connect(db)
    try:
        return [r[0] for r in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


async def expect_timeout(handle: litewf.WorkflowHandle[Any]) -> litewf.WorkflowTimeoutError:
    """The workflow ended CANCELLED with WorkflowTimeoutError as its outcome."""
    with anyio.fail_after(10), pytest.raises(litewf.WorkflowTimeoutError) as info:
        await handle.get_result()
    assert isinstance(info.value, litewf.WorkflowCancelledError)
    assert info.value.workflow_id == handle.workflow_id
    status = await handle.get_status()
    assert status.status is Status.CANCELLED
    assert status.error_type == "litewf.WorkflowTimeoutError"
    assert status.executor_id is None
    return info.value


async def test_a_workflow_waiting_in_recv_is_woken_at_its_deadline(db_path: Path) -> None:
    """Advance past the deadline: the workflow ends at once, where it waits (its recv had
    an hour left). A Client sees CANCELLED and the error."""
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, clock=clock)
    after: list[str] = []

    @rt.workflow()
    async def waiter() -> str:
        got = await rt.recv("go", timeout=HOUR)
        after.append("woke")  # never: cancelled where it waits
        return f"{got}"

    async with rt:
        t0 = clock.time()
        h = await rt.start_workflow(waiter, workflow_id="w", timeout=10)
        await clock.wait_idle()
        clock.advance(9.5)
        await clock.wait_idle()
        assert (await h.get_status()).status is Status.PENDING
        clock.advance(0.5)
        error = await expect_timeout(h)
        assert error.deadline == pytest.approx(t0 + 10)
        assert after == []
        async with litewf.Client(db_path) as client:
            seen = await client.retrieve_workflow("w")
            assert (await seen.get_status()).status is Status.CANCELLED
            with pytest.raises(litewf.WorkflowTimeoutError, match="passed its deadline"):
                await seen.get_result()
            (listed,) = await client.list_workflows()
            assert listed.error_type == "litewf.WorkflowTimeoutError"
        # A send to it now is stored and never received; the workflow stays cancelled.
        await rt.send("w", "late", topic="go")
        assert (await h.get_status()).status is Status.CANCELLED


async def test_deadline_wakes_sleep_get_event_step_and_wait_first(db_path: Path) -> None:
    """Whatever a workflow waits on, its deadline cancels it there."""
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, clock=clock)
    entered = anyio.Event()

    @rt.step()
    async def slow() -> None:
        entered.set()
        await rt.sleep(10 * HOUR)  # (in a step: a plain sleep on the clock)

    @rt.workflow()
    async def sleeper() -> None:
        await rt.sleep(HOUR)

    @rt.workflow()
    async def eventer() -> None:
        await rt.get_event("nobody", "k", timeout=HOUR)

    @rt.workflow()
    async def stepper() -> None:
        await slow()

    @rt.workflow()
    async def chooser() -> None:
        await rt.wait_first(a=rt.message("a"), timeout=HOUR)

    deadline = datetime.fromtimestamp(clock.time() + 60, UTC)
    async with rt:
        await rt.start_workflow(sleeper, workflow_id="nobody")
        handles = [
            await rt.start_workflow(wf, workflow_id=wf.name, deadline=deadline)
            for wf in (sleeper, eventer, stepper, chooser)
        ]
        await entered.wait()
        await clock.wait_idle()
        clock.advance(60.001)  # (a datetime holds microseconds: a float's instant rounds)
        for h in handles:
            await expect_timeout(h)
        assert (await rt.retrieve_workflow("nobody")).workflow_id == "nobody"
        assert (await (await rt.retrieve_workflow("nobody")).get_status()).status is (
            Status.PENDING
        )


async def test_a_parents_deadline_ends_its_children_each_with_its_own_error(
    db_path: Path,
) -> None:
    """Children running, a grandchild, an enqueued child and a delayed child: at the
    parent's deadline each ends CANCELLED with WorkflowTimeoutError naming itself."""
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, clock=clock)
    queue = rt.queue("slow", concurrency=1)

    @rt.workflow()
    async def leaf() -> None:
        await rt.recv("never", timeout=HOUR)

    @rt.workflow()
    async def middle() -> None:
        await rt.start_workflow(leaf, workflow_id="grandchild")
        await rt.recv("never", timeout=HOUR)

    @rt.workflow()
    async def parent() -> None:
        await rt.start_workflow(middle, workflow_id="child")
        await rt.start_workflow(leaf, workflow_id="sleepy", delay=HOUR)
        await queue.enqueue(leaf, workflow_id="queued-1")
        await queue.enqueue(leaf, workflow_id="queued-2")  # waits: concurrency 1
        await rt.sleep(HOUR)

    async with rt:
        t0 = clock.time()
        h = await rt.start_workflow(parent, workflow_id="p", timeout=30)
        await wait_until(lambda: running_count(rt) == 4)  # p, child, grandchild, queued-1
        await clock.wait_idle()
        ids = ["child", "grandchild", "sleepy", "queued-1", "queued-2"]
        deadlines = column(
            db_path, "SELECT deadline FROM workflows WHERE parent_id IS NOT NULL ORDER BY seq"
        )
        assert deadlines == [pytest.approx(t0 + 30)] * 5  # inherited
        clock.advance(30)
        await expect_timeout(h)
        for wid in ids:
            error = await expect_timeout(await rt.retrieve_workflow(wid))
            assert error.deadline == pytest.approx(t0 + 30)
        await wait_until(lambda: running_count(rt) == 0)


def running_count(rt: litewf.Runtime) -> int:
    """How many workflows have a task in ``rt`` now."""
    return len(rt._executor.running)


async def test_the_cascade_reaches_children_no_task_runs(db_path: Path) -> None:
    """A child whose function no runtime has (no timer of its own): the parent's
    deadline still ends it, with its own WorkflowTimeoutError."""
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, clock=clock)

    @rt.workflow(name="parent")
    async def parent() -> None:
        await rt.recv("never", timeout=HOUR)

    async with rt:
        h = await rt.start_workflow(parent, workflow_id="p", timeout=5)
        await clock.wait_idle()
        conn = sqldb.connect(db_path)
        with conn:  # an orphan child row, as a peer with another function would leave
            conn.execute(
                "INSERT INTO workflows (workflow_id, name, status, inputs, parent_id, "
                "created_at, updated_at) VALUES ('c', 'elsewhere', 'PENDING', "
                "'{\"args\": [], \"kwargs\": {}}', 'p', 0, 0)"
            )
        conn.close()
        clock.advance(5)
        await expect_timeout(h)
        await expect_timeout(await rt.retrieve_workflow("c"))


async def test_a_childs_own_earlier_deadline_wins(db_path: Path) -> None:
    """A child's timeout earlier than its parent's ends the child alone; a later one is
    cut to the parent's deadline."""
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, clock=clock)

    @rt.workflow()
    async def child() -> None:
        await rt.recv("never", timeout=HOUR)

    @rt.workflow()
    async def parent() -> str:
        short = await rt.start_workflow(child, workflow_id="short", timeout=10)
        await rt.start_workflow(child, workflow_id="long", timeout=10 * HOUR)
        try:
            await short.get_result()
        except litewf.WorkflowTimeoutError as exc:
            return f"child {exc.workflow_id} timed out"
        return "no"

    async with rt:
        t0 = clock.time()
        h = await rt.start_workflow(parent, workflow_id="p", timeout=100)
        await clock.wait_idle()
        rows = dict(
            zip(
                column(db_path, "SELECT workflow_id FROM workflows ORDER BY seq"),
                column(db_path, "SELECT deadline FROM workflows ORDER BY seq"),
                strict=True,
            )
        )
        assert rows == {
            "p": pytest.approx(t0 + 100),
            "short": pytest.approx(t0 + 10),
            "long": pytest.approx(t0 + 100),
        }
        clock.advance(10)
        with anyio.fail_after(10):
            assert await h.get_result() == "child short timed out"
        await expect_timeout(await rt.retrieve_workflow("short"))
        # The parent finished in time; its other child keeps its own (the parent's) deadline.
        assert (await (await rt.retrieve_workflow("long")).get_status()).status is Status.PENDING
        await clock.wait_idle()
        clock.advance(90)
        await expect_timeout(await rt.retrieve_workflow("long"))


async def test_a_deadline_passed_while_the_process_was_down_is_enforced_at_launch(
    db_path: Path,
) -> None:
    """Simulated SIGKILL mid-recv, the clock moves on, the next launch ends the workflow
    CANCELLED with WorkflowTimeoutError and never runs it again; its child too."""
    clock = VirtualClock()
    runs: list[str] = []

    def make(executor_id: str) -> tuple[litewf.Runtime, Any]:
        rt = litewf.Runtime(db_path, executor_id=executor_id, clock=clock)

        @rt.workflow(name="kid")
        async def kid() -> None:
            runs.append(f"kid@{executor_id}")
            await rt.recv("never", timeout=HOUR)

        @rt.workflow(name="waiter")
        async def waiter() -> None:
            runs.append(f"waiter@{executor_id}")
            await rt.start_workflow(kid, workflow_id="kid")
            await rt.recv("never", timeout=HOUR)

        return rt, waiter

    first, waiter = make("first")
    async with first:
        await first.start_workflow(waiter, workflow_id="w", timeout=60)
        await wait_until(lambda: len(runs) == 2)
        await clock.wait_idle()
        crash_now(first)
    assert column(db_path, "SELECT status FROM workflows") == ["PENDING", "PENDING"]
    clock.advance(HOUR)  # nothing runs: no timer fires

    second, _ = make("second")
    async with second:
        await expect_timeout(await second.retrieve_workflow("w"))
        await expect_timeout(await second.retrieve_workflow("kid"))
    assert runs == ["waiter@first", "kid@first"]  # never re-run past its deadline


@pytest.mark.sqlite_only
async def test_a_deadline_passed_while_a_real_process_was_killed(db_path: Path) -> None:
    """A real SIGKILLed process: a runtime launched after its deadline ends the workflow
    without running it; another process (a Client) sees the outcome."""
    proc = procs.spawn("deadlines", db_path, "w")
    try:
        await procs.wait_for_file(db_path.with_suffix(".ready"), proc)
    finally:
        procs.kill(proc)
    assert column(db_path, "SELECT status FROM workflows") == ["PENDING"]
    (deadline,) = column(db_path, "SELECT deadline FROM workflows")
    rt = litewf.Runtime(db_path, clock=VirtualClock(start=deadline + 1))

    @rt.workflow(name="deadlines.waiter")
    async def waiter() -> None:
        raise AssertionError("a workflow past its deadline must not run again")

    async with rt:
        await expect_timeout(await rt.retrieve_workflow("w"))
    async with litewf.Client(db_path) as client:
        with pytest.raises(litewf.WorkflowTimeoutError):
            await (await client.retrieve_workflow("w")).get_result()


async def test_a_deadline_already_past_times_out_at_once(db_path: Path) -> None:
    """Documented choice: a past deadline is accepted and the workflow ends at once."""
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, clock=clock)
    ran: list[int] = []

    @rt.workflow()
    async def wf() -> None:
        ran.append(1)

    async with rt:
        past = datetime.fromtimestamp(clock.time() - 1, UTC)
        await expect_timeout(await rt.start_workflow(wf, workflow_id="late", deadline=past))
    assert ran == []


async def test_resume_runs_a_timed_out_workflow_without_a_deadline(db_path: Path) -> None:
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, clock=clock)

    @rt.workflow()
    async def wf() -> str:
        return f"{await rt.recv('go', timeout=HOUR)}"

    async with rt:
        h = await rt.start_workflow(wf, workflow_id="w", timeout=1)
        await clock.wait_idle()
        clock.advance(1)
        await expect_timeout(h)
        await rt.resume_workflow("w")
        await clock.wait_idle()
        clock.advance(10)
        await rt.send("w", "paid", topic="go")
        with anyio.fail_after(10):
            assert await h.get_result() == "paid"
    assert column(db_path, "SELECT deadline FROM workflows") == [None]


async def test_enqueue_timeout_counts_from_the_start(db_path: Path) -> None:
    """A queued workflow's timeout starts when a dequeue makes it PENDING, not at the
    enqueue (Queue.enqueue and Client.enqueue alike)."""
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, clock=clock)
    queue = rt.queue("one", concurrency=1)

    @rt.workflow(name="waiter")
    async def waiter() -> str:
        return f"{await rt.recv('go', timeout=10 * HOUR)}"

    async with rt, litewf.Client(db_path) as client:
        blocker = await queue.enqueue(waiter, workflow_id="blocker")
        timed = await queue.enqueue(waiter, workflow_id="timed", timeout=10)
        remote = await client.enqueue("one", "waiter", workflow_id="remote", timeout=20)
        await wait_until(lambda: running_count(rt) == 1)
        assert column(db_path, "SELECT deadline FROM workflows ORDER BY seq") == [None] * 3
        await clock.wait_idle()
        clock.advance(HOUR)  # longer than both timeouts: still ENQUEUED, not timed out
        await clock.wait_idle()
        assert (await timed.get_status()).status is Status.ENQUEUED
        started = clock.time()
        await rt.send("blocker", "done", topic="go")
        assert await blocker.get_result() == "done"
        await wait_until(lambda: "timed" in rt._executor.running)
        await clock.wait_idle()
        assert column(db_path, "SELECT deadline FROM workflows WHERE workflow_id = 'timed'") == [
            pytest.approx(started + 10)
        ]
        clock.advance(9.5)
        await clock.wait_idle()
        assert (await timed.get_status()).status is Status.PENDING
        clock.advance(0.5)
        await expect_timeout(timed)
        await wait_until(lambda: "remote" in rt._executor.running)
        await clock.wait_idle()
        clock.advance(20)
        await expect_timeout(remote)


async def test_delay_and_start_at_survive_a_restart_and_start_on_time(db_path: Path) -> None:
    """A delayed start is ENQUEUED (no queue) until its time, across a restart."""
    clock = VirtualClock()
    ran: list[tuple[str, float]] = []

    def make() -> tuple[litewf.Runtime, Any]:
        rt = litewf.Runtime(db_path, clock=clock)

        @rt.workflow(name="job")
        async def job(tag: str) -> str:
            ran.append((tag, clock.time()))
            return tag

        return rt, job

    rt, job = make()
    async with rt:
        t0 = clock.time()
        a = await rt.start_workflow(job, "a", workflow_id="a", delay=timedelta(minutes=1))
        b = await rt.start_workflow(
            job, "b", workflow_id="b", start_at=datetime.fromtimestamp(t0 + 120, UTC)
        )
        c = await rt.start_workflow(job, "c", workflow_id="c", delay=0)  # starts now
        assert await c.get_result() == "c"
        for h in (a, b):
            status = await h.get_status()
            assert (status.status, status.queue) == (Status.ENQUEUED, None)
    rt, job = make()
    async with rt:
        clock.advance(59)
        await anyio.wait_all_tasks_blocked()  # the dequeuer had its chance to be early
        handle_a = await rt.retrieve_workflow("a")
        assert (await handle_a.get_status()).status is Status.ENQUEUED
        assert ran == [("c", t0)]
        clock.advance(1)
        with anyio.fail_after(10):
            assert await handle_a.get_result() == "a"
        assert (await (await rt.retrieve_workflow("b")).get_status()).status is Status.ENQUEUED
        clock.advance(60.001)  # (a datetime holds microseconds: a float's instant rounds)
        with anyio.fail_after(10):
            assert await (await rt.retrieve_workflow("b")).get_result() == "b"
    assert ran == [("c", t0), ("a", t0 + 60), ("b", t0 + 120.001)]


async def test_a_delayed_starts_timeout_counts_from_its_start(db_path: Path) -> None:
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, clock=clock)

    @rt.workflow()
    async def waiter() -> None:
        await rt.recv("never", timeout=10 * HOUR)

    async with rt:
        t0 = clock.time()
        h = await rt.start_workflow(waiter, workflow_id="w", delay=HOUR, timeout=30)
        clock.advance(HOUR)
        await wait_until(lambda: "w" in rt._executor.running)
        await clock.wait_idle()
        assert column(db_path, "SELECT deadline FROM workflows") == [pytest.approx(t0 + HOUR + 30)]
        clock.advance(30)
        await expect_timeout(h)


async def test_cancel_takes_a_delayed_start_off_for_good(db_path: Path) -> None:
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, clock=clock)

    @rt.workflow()
    async def job() -> None:
        raise AssertionError("cancelled before its start")

    async with rt:
        h = await rt.start_workflow(job, workflow_id="j", delay=10)
        await rt.cancel_workflow("j")
        clock.advance(20)
        with pytest.raises(litewf.WorkflowCancelledError) as info:
            await h.get_result()
        assert not isinstance(info.value, litewf.WorkflowTimeoutError)


async def test_workflow_parameters_named_like_start_options(db_path: Path) -> None:
    """``timeout`` etc. are start_workflow's own: a workflow's parameter of that name is
    passed positionally, or by calling the workflow (every keyword is the workflow's)."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def wf(timeout: float, delay: str = "-") -> str:
        return f"{timeout} {delay}"

    async with rt:
        assert await (await rt.start_workflow(wf, 5, "x")).get_result() == "5 x"
        assert await wf(timeout=7, delay="y") == "7 y"


# -- step timeouts -------------------------------------------------------------------------


async def test_async_step_timeout_is_retried_then_succeeds(db_path: Path) -> None:
    clock = VirtualClock(auto_advance=True)
    rt = litewf.Runtime(db_path, clock=clock)
    attempts: list[float] = []

    @rt.step(timeout=5, retries=2, retry_interval=1)
    async def flaky() -> str:
        attempts.append(clock.time())
        if len(attempts) == 1:
            await rt.sleep(HOUR)  # (inside a step: a plain sleep on the clock)
        return "ok"

    @rt.step(timeout=timedelta(seconds=5), retries=1, retry_interval=1)
    async def hopeless() -> str:
        await rt.sleep(HOUR)
        return "never"

    @rt.workflow()
    async def wf() -> str:
        first = await flaky()
        try:
            await hopeless()
        except litewf.StepTimeoutError as exc:
            return f"{first}; {exc.step} timed out after {exc.timeout} s"
        return "no"

    async with rt:
        t0 = clock.time()
        with anyio.fail_after(10):
            result = await (await rt.start_workflow(wf, workflow_id="w")).get_result()
        assert result == f"ok; {hopeless.name} timed out after 5.0 s"
        assert attempts == [t0, t0 + 6]  # 5 s timeout, then 1 s retry_interval
        steps = await rt.list_steps("w")
        assert [s.error_type for s in steps] == [None, "litewf.StepTimeoutError"]
        # Outside a workflow a step's timeout applies too.
        with anyio.fail_after(10), pytest.raises(litewf.StepTimeoutError):
            await hopeless()


async def test_sync_step_timeout_abandons_the_thread_and_drops_its_result(
    db_path: Path,
) -> None:
    """A sync body cannot be killed: at the timeout the step fails with
    StepTimeoutError, its thread runs on in the background and what it returns is
    dropped; the retry runs in a new thread."""
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, clock=clock)
    release = threading.Event()
    started = threading.Event()
    finished: list[str] = []
    calls: list[int] = []

    @rt.step(timeout=30, retries=1, retry_interval=1)
    def blocking() -> str:
        calls.append(1)
        if len(calls) == 1:
            started.set()
            release.wait(30)
            finished.append("first body ended")
            return "too late"
        return "second"

    @rt.workflow()
    async def wf() -> str:
        return await blocking()

    async with rt:
        h = await rt.start_workflow(wf, workflow_id="w")
        await anyio.to_thread.run_sync(started.wait, 10)
        await wait_until(lambda: clock.next_deadline is not None)  # the step's timer
        clock.advance(30)  # the timeout: the first attempt fails, its thread still runs
        await wait_until(lambda: clock.next_deadline is not None)  # the retry's pause
        clock.advance(1)
        with anyio.fail_after(10):
            assert await h.get_result() == "second"
        assert finished == []  # the first body is still running, abandoned
        release.set()
        await wait_until(lambda: finished == ["first body ended"])
    steps = await_steps(db_path)
    assert steps == ['"second"']


def await_steps(db: Path) -> list[Any]:
    return column(db, "SELECT output FROM operations WHERE workflow_id = 'w' ORDER BY op_id")


async def test_step_without_timeout_is_not_limited(db_path: Path) -> None:
    clock = VirtualClock(auto_advance=True)
    rt = litewf.Runtime(db_path, clock=clock)

    @rt.step()
    async def long() -> str:
        await rt.sleep(10 * HOUR)
        return "done"

    @rt.workflow()
    async def wf() -> str:
        return await long()

    started = time.monotonic()
    async with rt:
        assert await (await rt.start_workflow(wf)).get_result() == "done"
    assert time.monotonic() - started < 10


async def test_auto_advance_jumps_to_a_workflow_deadline(db_path: Path) -> None:
    """An auto-advancing clock counts deadlines among what it jumps to: a day-long sleep
    under an hour's timeout ends at the hour; a workflow done in time succeeds."""
    clock = VirtualClock(auto_advance=True)
    rt = litewf.Runtime(db_path, clock=clock)

    @rt.workflow()
    async def napper(seconds: float) -> str:
        await rt.sleep(seconds)
        return "rested"

    async with rt:
        t0 = clock.time()
        quick = await rt.start_workflow(napper, 60, timeout=HOUR)
        with anyio.fail_after(10):
            assert await quick.get_result() == "rested"
        slow = await rt.start_workflow(napper, 24 * HOUR, timeout=HOUR)
        await expect_timeout(slow)
        assert clock.time() == pytest.approx(t0 + 60 + HOUR)


async def test_an_enqueued_workflow_past_its_deadline_ends_without_starting(
    db_path: Path,
) -> None:
    """A fixed ``deadline=`` on an enqueue counts while the workflow waits in its queue:
    the next recovery pass ends it, and it never runs."""
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, clock=clock)
    queue = rt.queue("one", concurrency=1)
    ran: list[str] = []

    @rt.workflow(name="waiter")
    async def waiter(tag: str) -> str:
        ran.append(tag)
        return f"{await rt.recv('go', timeout=10 * HOUR)}"

    async with rt:
        blocker = await queue.enqueue(waiter, "blocker", workflow_id="blocker")
        when = datetime.fromtimestamp(clock.time() + 60, UTC)
        late = await queue.enqueue(waiter, "late", workflow_id="late", deadline=when)
        await wait_until(lambda: ran == ["blocker"])
        clock.advance(61)
        await rt.recover()  # (the runtime's own pass comes every recovery_interval)
        await expect_timeout(late)
        await rt.send("blocker", "done", topic="go")
        assert await blocker.get_result() == "done"
    assert ran == ["blocker"]


async def test_a_real_time_timeout_ends_the_workflow_on_time(db_path: Path) -> None:
    """On the real clock too: a 0.2 s timeout ends a workflow waiting in recv for a
    minute, promptly."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def waiter() -> None:
        await rt.recv("never", timeout=60)

    async with rt:
        started = time.monotonic()
        h = await rt.start_workflow(waiter, timeout=timedelta(milliseconds=200))
        await expect_timeout(h)
        assert 0.15 < time.monotonic() - started < 5


def test_cli_resume_of_a_delayed_start_says_so(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def make() -> None:
        rt = litewf.Runtime(db_path)

        @rt.workflow(name="job")
        async def job() -> None:
            pass

        async with rt:
            await rt.start_workflow(job, workflow_id="later", delay=HOUR)

    anyio.run(make)
    code = main(["--db", str(db_path), "resume", "later"])
    out, err = capsys.readouterr()
    assert (code, out, err) == (0, "later: ENQUEUED (a delayed start; its runtimes start it)\n", "")

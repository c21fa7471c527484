"""Queues: ENQUEUED workflows started within the queue's bounds (concurrency, per-runtime
concurrency, partitions, rate limit), by priority then FIFO, with dedup IDs and durable
delays; enqueue from a Client and from inside a workflow (an operation)."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from litewf import Status
from litewf._schema import SCHEMA_VERSION
from litewf.testing import VirtualClock, crash_at, crash_now
from tests import procs, sqldb


def new_runtime(db: Path, **kwargs: Any) -> litewf.Runtime:
    return litewf.Runtime(db, **kwargs)


async def until(predicate: Any, timeout: float = 10.0) -> None:
    """Wait for an in-memory condition (bodies running); fail after ``timeout``."""
    with anyio.fail_after(timeout):
        while True:
            if predicate():
                return
            await anyio.sleep(0.005)


def column(db: Path, sql: str, *params: Any) -> list[Any]:
    con = sqldb.connect(db)
    try:
        return [row[0] for row in con.execute(sql, params)]
    finally:
        con.close()


class Gate:
    """Workflows of a test wait on it; counts how many bodies run at once."""

    def __init__(self) -> None:
        self.open = anyio.Event()
        self.running = 0
        self.most = 0
        self.order: list[str] = []

    async def through(self, tag: str) -> str:
        self.running += 1
        self.most = max(self.most, self.running)
        self.order.append(tag)
        try:
            await self.open.wait()
        finally:
            self.running -= 1
        return tag


def gated(rt: litewf.Runtime, gate: Gate) -> Any:
    @rt.workflow(name="gated")
    async def wf(tag: str) -> str:
        return await gate.through(tag)

    return wf


async def test_enqueued_workflow_runs_and_reports_its_queue(db_path: Path) -> None:
    rt = new_runtime(db_path)
    q = rt.queue("q", concurrency=2)

    @rt.workflow()
    async def double(x: int) -> int:
        return 2 * x

    async with rt:
        h = await q.enqueue(double, 21, priority=3, dedup_id="d")
        assert await h.get_result(timeout=10) == 42
        status = await h.get_status()
        assert (status.status, status.queue, status.priority, status.dedup_id) == (
            Status.SUCCESS,
            "q",
            3,
            "d",
        )
        plain = await rt.start_workflow(double, 1)
        assert await plain.get_result(timeout=10) == 2
        plain_status = await plain.get_status()
        assert (plain_status.queue, plain_status.priority, plain_status.dedup_id) == (
            None,
            None,
            None,
        )
        listed = await rt.list_workflows(queue="q")
        assert [s.workflow_id for s in listed] == [h.workflow_id]


async def test_concurrency_bounds_running_bodies_and_priority_then_fifo(db_path: Path) -> None:
    rt = new_runtime(db_path)
    q = rt.queue("q", concurrency=1)
    gate = Gate()
    wf = gated(rt, gate)
    async with rt:
        first = await q.enqueue(wf, "first")
        await until(lambda: gate.running == 1)
        handles = [
            await q.enqueue(wf, tag, priority=p)
            for tag, p in [("b1", 1), ("a1", 0), ("b2", 1), ("a2", 0), ("c", 5)]
        ]
        statuses = [(await h.get_status()).status for h in handles]
        assert statuses == [Status.ENQUEUED] * 5
        waiting = await rt.list_workflows(queue="q", status="ENQUEUED")
        assert len(waiting) == 5
        gate.open.set()
        for h in [first, *handles]:
            await h.get_result(timeout=10)
    assert gate.order == ["first", "a1", "a2", "b1", "b2", "c"]
    assert gate.most == 1


async def test_worker_concurrency_and_concurrency(db_path: Path) -> None:
    rt = new_runtime(db_path)
    q = rt.queue("q", concurrency=5, worker_concurrency=2)
    gate = Gate()
    wf = gated(rt, gate)
    async with rt:
        handles = [await q.enqueue(wf, str(i)) for i in range(6)]
        await until(lambda: gate.running == 2)
        await anyio.sleep(0.05)
        assert gate.running == 2
        assert len(await rt.list_workflows(queue="q", status="ENQUEUED")) == 4
        gate.open.set()
        for h in handles:
            await h.get_result(timeout=10)
    assert gate.most == 2


async def test_partitions_apply_concurrency_each(db_path: Path) -> None:
    rt = new_runtime(db_path)
    q = rt.queue("q", concurrency=1)
    gate = Gate()
    wf = gated(rt, gate)
    async with rt:
        handles = [await q.enqueue(wf, f"{p}{i}", partition_key=p) for p in "xy" for i in range(2)]
        await until(lambda: gate.running == 2)
        assert sorted(gate.order) == ["x0", "y0"]
        gate.open.set()
        for h in handles:
            await h.get_result(timeout=10)
    assert gate.most == 2


async def test_dedup_refused_while_queued_or_running_accepted_after(db_path: Path) -> None:
    rt = new_runtime(db_path)
    q = rt.queue("q", concurrency=1)
    other = rt.queue("other")
    gate = Gate()
    wf = gated(rt, gate)
    async with rt:
        running = await q.enqueue(wf, "r", dedup_id="a")
        await until(lambda: gate.running == 1)
        with pytest.raises(litewf.QueueDuplicateError, match="dedup_id 'a'"):
            await q.enqueue(wf, "again", dedup_id="a")  # running
        queued = await q.enqueue(wf, "b", dedup_id="b")
        with pytest.raises(litewf.QueueDuplicateError):
            await q.enqueue(wf, "again", dedup_id="b")  # queued
        # Scoped to its queue; a refused enqueue stored nothing.
        elsewhere = await other.enqueue(wf, "o", dedup_id="a")
        assert len(await rt.list_workflows(queue="q")) == 2
        gate.open.set()
        for h in (running, queued, elsewhere):
            await h.get_result(timeout=10)
        again = await q.enqueue(wf, "after", dedup_id="a")
        assert await again.get_result(timeout=10) == "after"


async def test_existing_workflow_id_returns_its_handle(db_path: Path) -> None:
    rt = new_runtime(db_path)
    q = rt.queue("q")

    @rt.workflow()
    async def one(x: int) -> int:
        return x

    @rt.workflow()
    async def two(x: int) -> int:
        return x

    async with rt:
        h = await q.enqueue(one, 1, workflow_id="w")
        assert await h.get_result(timeout=10) == 1
        h2 = await q.enqueue(one, 2, workflow_id="w", dedup_id="x")
        assert await h2.get_result(timeout=10) == 1
        with pytest.raises(litewf.WorkflowConflictError):
            await q.enqueue(two, 1, workflow_id="w")


async def test_cancel_enqueued_takes_it_off_the_queue_and_resume_changes_nothing(
    db_path: Path,
) -> None:
    rt = new_runtime(db_path)
    q = rt.queue("q", concurrency=1)
    gate = Gate()
    wf = gated(rt, gate)
    async with rt:
        first = await q.enqueue(wf, "first")
        await until(lambda: gate.running == 1)
        second = await q.enqueue(wf, "second", dedup_id="s")
        third = await q.enqueue(wf, "third")
        resumed = await rt.resume_workflow(second.workflow_id)
        assert (await resumed.get_status()).status is Status.ENQUEUED
        await rt.cancel_workflow(second.workflow_id)
        assert (await second.get_status()).status is Status.CANCELLED
        gate.open.set()
        assert await third.get_result(timeout=10) == "third"
        await first.get_result(timeout=10)
        with pytest.raises(litewf.WorkflowCancelledError):
            await second.get_result(timeout=1)
        # its dedup ID is free again
        again = await q.enqueue(wf, "again", dedup_id="s")
        assert await again.get_result(timeout=10) == "again"
    assert "second" not in gate.order


async def test_client_enqueue_runs_in_the_runtime(db_path: Path) -> None:
    rt = new_runtime(db_path)
    rt.queue("q", concurrency=1)

    @rt.workflow(name="greet")
    async def greet(who: str, punct: str = "!") -> str:
        return f"hi {who}{punct}"

    async with rt, litewf.Client(db_path) as client:
        h = await client.enqueue("q", "greet", "ann", punct="?", priority=2)
        assert await h.get_result(timeout=10) == "hi ann?"
        assert [s.workflow_id for s in await client.list_workflows(queue="q")] == [h.workflow_id]
        # A queue this runtime does not have: stays ENQUEUED.
        stuck = await client.enqueue("nobody", "greet", "bob")
        await anyio.sleep(0.1)
        assert (await stuck.get_status()).status is Status.ENQUEUED
        await client.cancel_workflow(stuck.workflow_id)
        assert (await stuck.get_status()).status is Status.CANCELLED


async def test_queued_workflow_waits_for_a_runtime_that_has_the_queue(db_path: Path) -> None:
    rt = new_runtime(db_path)
    q = rt.queue("q")

    @rt.workflow(name="f")
    async def f() -> str:
        return "ran"

    async with rt:
        pass
    async with litewf.Client(db_path) as client:
        h = await client.enqueue("q", "f")
        assert (await h.get_status()).status is Status.ENQUEUED
    async with rt:
        again = await rt.retrieve_workflow(h.workflow_id)
        assert await again.get_result(timeout=10) == "ran"
    assert q.name == "q"


async def test_delay_on_the_virtual_clock_survives_a_restart(db_path: Path) -> None:
    clock = VirtualClock()
    rt = new_runtime(db_path, clock=clock)
    q = rt.queue("q")

    @rt.workflow(name="late")
    async def late() -> float:
        return clock.time()

    start = clock.time()
    async with rt:
        h = await q.enqueue(late, delay=100)
        clock.advance(50)
        await anyio.sleep(0.1)
        assert (await h.get_status()).status is Status.ENQUEUED
    rt2 = new_runtime(db_path, clock=clock)
    rt2.queue("q")

    @rt2.workflow(name="late")
    async def late2() -> float:
        return clock.time()

    async with rt2:
        h = await rt2.retrieve_workflow(h.workflow_id)
        clock.advance(49)
        await anyio.sleep(0.1)
        assert (await h.get_status()).status is Status.ENQUEUED
        clock.advance(1)
        assert await h.get_result(timeout=10) >= start + 100


async def test_rate_limit_never_more_than_n_starts_in_any_window(db_path: Path) -> None:
    clock = VirtualClock()
    rt = new_runtime(db_path, clock=clock)
    q = rt.queue("q", rate_limit=(10, 1.0))

    @rt.workflow(name="tick")
    async def tick(i: int) -> int:
        return i

    async with rt:
        handles = [await q.enqueue(tick, i) for i in range(35)]
        with anyio.fail_after(20):
            while len(await rt.list_workflows(queue="q", status="SUCCESS", limit=50)) < 35:
                await anyio.sleep(0.01)  # let the dequeuer take what the window allows
                clock.advance(0.1)
        for h in handles:
            await h.get_result(timeout=10)
    starts = sorted(column(db_path, "SELECT started_at FROM workflows WHERE queue_name = 'q'"))
    assert len(starts) == 35
    assert starts[-1] - starts[0] >= 3.0  # 35 starts at 10 per second: the limit held them
    for i, at in enumerate(starts):
        in_window = [s for s in starts[i:] if s < at + 1.0]
        assert len(in_window) <= 10, (at, in_window)


async def test_enqueue_inside_a_workflow_is_an_operation(db_path: Path) -> None:
    rt = new_runtime(db_path)
    q = rt.queue("q")

    @rt.workflow(name="child")
    async def child(x: int) -> int:
        return x + 1

    @rt.workflow(name="parent")
    async def parent() -> list[Any]:
        h = await q.enqueue(child, 1, dedup_id="c")
        try:
            await q.enqueue(child, 2, dedup_id="c")
            refused = None
        except litewf.QueueDuplicateError as exc:
            refused = type(exc).__name__
        return [h.workflow_id, await h.get_result(), refused]

    async with rt:
        h = await rt.start_workflow(parent, workflow_id="p")
        wid, value, refused = await h.get_result(timeout=10)
    assert (wid, value, refused) == ("p-0", 2, "QueueDuplicateError")
    names = column(db_path, "SELECT name FROM operations WHERE workflow_id = 'p' ORDER BY op_id")
    assert names[:2] == ["enqueue", "enqueue"]
    assert len(column(db_path, "SELECT 1 FROM workflows WHERE queue_name = 'q'")) == 1


async def test_enqueue_inside_a_workflow_happens_once_across_a_crash(db_path: Path) -> None:
    rt = new_runtime(db_path)
    q = rt.queue("q")

    @rt.workflow(name="child")
    async def child(x: int) -> int:
        return x

    @rt.workflow(name="parent")
    async def parent() -> int:
        h = await q.enqueue(child, 7)
        await rt.sleep(0)
        return int(await h.get_result())

    crash = crash_at(rt, after_operations=1, workflow_id="p")
    async with rt:
        await rt.start_workflow(parent, workflow_id="p")
        await crash.wait()
    async with rt:
        h = await rt.retrieve_workflow("p")
        assert await h.get_result(timeout=10) == 7
    assert column(db_path, "SELECT workflow_id FROM workflows WHERE queue_name = 'q'") == ["p-0"]


async def running_child(
    children: list[subprocess.Popen[bytes]], out: Path, db: Path
) -> subprocess.Popen[bytes] | None:
    """A child with a body running now (None once no workflow is left to run)."""
    with anyio.fail_after(30):
        while True:
            busy = {int(p.name.split("-", 1)[0]) for p in (out / "run").iterdir()}
            found = [c for c in children if c.pid in busy]
            if found:
                return found[0]
            if len(column(db, QUEUED_LEFT)) == 0:
                return None
            await anyio.sleep(0.005)


QUEUED_LEFT = "SELECT 1 FROM workflows WHERE status IN ('ENQUEUED', 'PENDING') LIMIT 1"


@pytest.mark.slow
@pytest.mark.parametrize("k", [2, 4])
async def test_concurrency_holds_across_processes_killed_at_random(
    db_path: Path, tmp_path: Path, k: int
) -> None:
    """K processes serve one queue (concurrency 3) while the test SIGKILLs and restarts
    them at random: never more than 3 bodies run at once, every workflow ends once."""
    out = tmp_path / "out"
    (out / "run").mkdir(parents=True)
    rng = random.Random(k)
    children: list[subprocess.Popen[bytes]] = []

    async def start_child() -> None:
        child = procs.spawn("queues", "serve", db_path, out)
        await procs.wait_for_file(out / f"ready-{child.pid}", child)
        children.append(child)

    for _ in range(k):
        await start_child()
    # Enough work that the queue outlasts a few kills and restarts, even on a loaded
    # machine where a child takes a second to start (at 60 it could drain after one).
    n = 150
    async with litewf.Client(db_path) as client:
        ids = [(await client.enqueue("shared", "job", i)).workflow_id for i in range(n)]
        for _ in range(6):
            # SIGKILL a child while a body of it runs (its slot must stay taken until a
            # peer knows it dead and recovers the workflow), then start a new one.
            victim = await running_child(children, out, db_path)
            if victim is None:
                break  # all done
            await anyio.sleep(rng.uniform(0.0, 0.03))
            children.remove(victim)
            procs.kill(victim)
            await start_child()
        for i, wid in enumerate(ids):
            handle = await client.retrieve_workflow(wid)
            assert await handle.get_result(timeout=60) == i * i
    (out / "stop").touch()
    for child in children:
        await procs.finish_async(child)
    assert not (out / "over").exists(), (out / "over").read_text()
    seen = [int(x) for x in (out / "seen").read_text().split()]
    assert len(seen) >= n and max(seen) == 3  # the bound was reached, never passed
    assert column(db_path, "SELECT count(*) FROM workflows WHERE status = 'SUCCESS'") == [n]
    # Some kills hit running workflows (recovered elsewhere, their slots kept meanwhile).
    assert column(db_path, "SELECT max(recovery_attempts) FROM workflows")[0] >= 1


async def test_cli_show_names_the_queue(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from litewf._cli import main

    rt = new_runtime(db_path)
    rt.queue("q")

    @rt.workflow(name="f")
    async def f() -> None:
        return None

    async with rt:
        pass
    async with litewf.Client(db_path) as client:
        h = await client.enqueue("elsewhere", "f", priority=4, dedup_id="once")
    capsys.readouterr()
    assert await anyio.to_thread.run_sync(main, ["--db", str(db_path), "show", h.workflow_id]) == 0
    out = capsys.readouterr().out
    assert "ENQUEUED" in out
    assert "elsewhere (priority 4)" in out
    assert "once" in out


async def test_starts_are_woken_by_changes_not_by_the_recovery_tick(db_path: Path) -> None:
    """With the recovery tick an hour away, a freed slot (this process) and a Client's
    enqueue (found through the change feed, as another process's would be) start
    workflows at once."""
    rt = new_runtime(db_path, recovery_interval=3600)
    q = rt.queue("q", concurrency=1)
    gate = Gate()
    wf = gated(rt, gate)
    async with rt:
        first = await q.enqueue(wf, "first")
        second = await q.enqueue(wf, "second")
        await until(lambda: gate.running == 1)
        gate.open.set()
        assert await second.get_result(timeout=10) == "second"
        await first.get_result(timeout=10)
        async with litewf.Client(db_path) as client:
            third = await client.enqueue("q", "gated", "third")
            assert await third.get_result(timeout=10) == "third"


async def test_auto_advance_jumps_to_a_delayed_start_only_when_awaited(db_path: Path) -> None:
    clock = VirtualClock(auto_advance=True)
    rt = new_runtime(db_path, clock=clock)
    q = rt.queue("q")

    @rt.workflow(name="late")
    async def late() -> float:
        return clock.time()

    start = clock.time()
    async with rt:
        h = await q.enqueue(late, delay=3600)
        await anyio.sleep(0.1)
        assert clock.time() == start  # the dequeuer's wait does not move the clock
        assert (await h.get_status()).status is Status.ENQUEUED
        assert await h.get_result() >= start + 3600


@pytest.mark.sqlite_only
async def test_a_version_3_database_is_migrated(db_path: Path) -> None:
    """Migration 4 keeps every workflow (not queued: queue fields None) and adds queues."""
    from litewf._schema import APPLICATION_ID, MIGRATIONS

    con = sqldb.connect(db_path)
    for script in MIGRATIONS[:3]:
        con.executescript(script)
    con.execute(
        "INSERT INTO workflows (workflow_id, name, status, inputs, output, created_at, "
        "updated_at) VALUES ('old', 'f', 'SUCCESS', '{\"args\":[],\"kwargs\":{}}', '1', 1, 1)"
    )
    con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    con.execute("PRAGMA user_version = 3")
    con.commit()
    con.close()
    rt = new_runtime(db_path)
    q = rt.queue("q")

    @rt.workflow(name="f")
    async def f() -> int:
        return 2

    async with rt:
        old = await rt.retrieve_workflow("old")
        status = await old.get_status()
        assert (status.status, status.queue, status.priority, status.dedup_id) == (
            Status.SUCCESS,
            None,
            None,
            None,
        )
        assert await old.get_result() == 1
        assert await (await q.enqueue(f)).get_result(timeout=10) == 2
    assert column(db_path, "PRAGMA user_version") == [SCHEMA_VERSION]


async def test_resume_puts_a_queued_workflow_back_on_its_queue(db_path: Path) -> None:
    """A cancelled or failed queued workflow, resumed, waits for its queue's bounds again,
    and replays what it recorded (its steps do not run twice)."""
    rt = new_runtime(db_path)
    q = rt.queue("q", concurrency=1)
    gate = Gate()
    wf = gated(rt, gate)
    calls: list[str] = []
    fail = [True]

    @rt.step()
    async def once() -> str:
        calls.append("once")
        return "done"

    @rt.workflow(name="flaky")
    async def flaky() -> str:
        await once()
        if fail[0]:
            raise RuntimeError("not yet")
        return "ok"

    async with rt:
        failed = await q.enqueue(flaky)
        with pytest.raises(RuntimeError):
            await failed.get_result(timeout=10)
        blocker = await q.enqueue(wf, "blocker")
        await until(lambda: gate.running == 1)
        cancelled = await q.enqueue(wf, "cancelled")
        await rt.cancel_workflow(cancelled.workflow_id)
        fail[0] = False
        for h in (failed, cancelled):
            await rt.resume_workflow(h.workflow_id)
            assert (await h.get_status()).status is Status.ENQUEUED  # the slot is taken
        gate.open.set()
        assert await failed.get_result(timeout=10) == "ok"
        assert await cancelled.get_result(timeout=10) == "cancelled"
        await blocker.get_result(timeout=10)
    assert calls == ["once"]
    assert gate.most == 1


@pytest.mark.parametrize("how", ["shutdown", "crash"])
async def test_a_started_workflow_keeps_its_slot_across_a_stop(db_path: Path, how: str) -> None:
    """A queued workflow that was running when its runtime stopped stays PENDING and keeps
    its slot; the next launch runs it again (a crash counts one recovery attempt, a clean
    shutdown none) and only then the next queued one."""
    rt = new_runtime(db_path)
    q = rt.queue("q", concurrency=1)
    gate = Gate()
    wf = gated(rt, gate)
    async with rt:
        first = await q.enqueue(wf, "first", workflow_id="first")
        await until(lambda: gate.running == 1)
        await q.enqueue(wf, "second", workflow_id="second")
        if how == "crash":
            crash_now(rt)
    assert column(db_path, "SELECT status FROM workflows ORDER BY seq") == ["PENDING", "ENQUEUED"]
    gate.order.clear()
    async with rt:
        first = await rt.retrieve_workflow("first")
        await until(lambda: gate.running == 1)
        assert gate.order == ["first"]
        assert (await (await rt.retrieve_workflow("second")).get_status()).status is (
            Status.ENQUEUED
        )
        gate.open.set()
        assert await first.get_result(timeout=10) == "first"
        second = await rt.retrieve_workflow("second")
        assert await second.get_result(timeout=10) == "second"
        attempts = (await first.get_status()).recovery_attempts
        assert attempts == (1 if how == "crash" else 0)
        assert (await second.get_status()).recovery_attempts == 0


async def test_cli_enqueue_and_queue_list(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from litewf._cli import main

    rt = new_runtime(db_path)
    rt.queue("q")

    @rt.workflow(name="add")
    async def add(a: int, b: int) -> int:
        return a + b

    async with rt:
        pass

    def cli(*args: str) -> tuple[int, str, str]:
        code = main(["--db", str(db_path), *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    capsys.readouterr()
    code, text, _ = await anyio.to_thread.run_sync(
        cli, "enqueue", "q", "add", "2", "3", "--workflow-id", "a1", "--priority", "2"
    )
    assert (code, text.strip()) == (0, "a1: ENQUEUED on queue 'q'")
    code, text, _ = await anyio.to_thread.run_sync(
        cli, "enqueue", "q", "add", "1", "1", "--dedup-id", "d", "--json"
    )
    assert code == 0
    shown = json.loads(text)
    assert (shown["status"], shown["queue"], shown["dedup_id"]) == ("ENQUEUED", "q", "d")
    code, _, err = await anyio.to_thread.run_sync(
        cli, "enqueue", "q", "add", "1", "--dedup-id", "d"
    )
    assert code == 1 and "QueueDuplicate" not in err and "dedup_id 'd'" in err
    code, _, err = await anyio.to_thread.run_sync(cli, "enqueue", "q", "add", "{bad")
    assert code == 1 and "not valid JSON" in err
    code, text, _ = await anyio.to_thread.run_sync(cli, "queue", "list", "q")
    assert code == 0 and "a1" in text and "ENQUEUED" in text
    async with rt:
        assert await (await rt.retrieve_workflow("a1")).get_result(timeout=10) == 5
        for s in await rt.list_workflows(queue="q"):
            await (await rt.retrieve_workflow(s.workflow_id)).get_result(timeout=10)
    code, text, _ = await anyio.to_thread.run_sync(cli, "queue", "list", "q")
    assert (code, text.strip()) == (0, "queue 'q': nothing waits or runs")
    code, text, _ = await anyio.to_thread.run_sync(
        cli, "queue", "list", "q", "--status", "success", "--json"
    )
    assert code == 0 and len(json.loads(text)) == 2


async def test_a_queue_registered_after_launch_is_served(db_path: Path) -> None:
    rt = new_runtime(db_path, recovery_interval=3600)

    @rt.workflow(name="f")
    async def f() -> str:
        return "ran"

    async with rt:
        late = rt.queue("late")
        assert await (await late.enqueue(f)).get_result(timeout=10) == "ran"

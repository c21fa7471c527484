"""litewf.testing.crash_at / crash_now: a crash in one process, as a real SIGKILL leaves it."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

import litewf
from litewf import _liveness
from litewf._liveness import lock_dir
from litewf._pgdialect import is_postgres_url
from litewf.testing import VirtualClock, crash_at, crash_now
from tests import procs, sqldb
from tests.children import crashsim
from tests.conditions import wait_until

#: Columns that say what happened; timestamps and sleep wake-up times differ between runs.
_QUERIES = {
    "workflows": "SELECT seq, workflow_id, name, status, inputs, output, error, error_type, "
    "error_message, executor_id, recovery_attempts, parent_id FROM workflows ORDER BY seq",
    "operations": "SELECT workflow_id, op_id, name, done, deadline IS NOT NULL, "
    "CASE name WHEN 'sleep' THEN 'wake-up time' ELSE output END, error "
    "FROM operations ORDER BY workflow_id, op_id",
    "events": "SELECT workflow_id, key, value FROM events ORDER BY workflow_id, key",
    "messages": "SELECT seq, destination_id, topic, message FROM messages ORDER BY seq",
    "message_keys": "SELECT destination_id, idempotency_key FROM message_keys ORDER BY 1, 2",
    "changes": "SELECT seq, kind, workflow_id, key FROM changes ORDER BY seq",
}


def stored(db: Path) -> dict[str, Any]:
    """Everything litewf stored that a crash could affect, plus (SQLite) the executor
    lock files."""
    state: dict[str, Any] = {table: sqldb.query(db, sql) for table, sql in _QUERIES.items()}
    if not is_postgres_url(db):
        folder = lock_dir(str(db))
        state["lock files"] = sorted(os.listdir(folder)) if folder.exists() else []
    return state


async def killed_for_real(db: Path, point: str) -> None:
    """Run the workflow in a child process that SIGKILLs itself at ``point``."""
    proc = procs.spawn("crashsim", db, point)
    try:
        code = await anyio.to_thread.run_sync(proc.wait, 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    _, err = proc.communicate()
    assert code == -signal.SIGKILL, err.decode()


POINTS: dict[str, dict[str, Any]] = {
    "after:0": {"after_operations": 0},
    "after:1": {"after_operations": 1},
    "after:3": {"after_operations": 3},
    "after:6": {"after_operations": 6},
    "before:charge": {"before_step": "charge"},
    "after:8": {"after_operations": 8},
}


@pytest.mark.parametrize("point", list(POINTS))
async def test_simulated_crash_leaves_what_a_sigkill_leaves(
    db_path: Path, other_db: Path, point: str
) -> None:
    """Rows, operations, events, queues, change log and lock files match a real SIGKILL."""
    real_db, sim_db = db_path, other_db
    await killed_for_real(real_db, point)

    flows = crashsim.build(sim_db)
    crash = crash_at(flows.rt, workflow_id=crashsim.WORKFLOW_ID, **POINTS[point])
    async with flows.rt:
        await flows.rt.start_workflow(flows.flow, "o", workflow_id=crashsim.WORKFLOW_ID)
        await crash.wait()
        assert crash.workflow_id == crashsim.WORKFLOW_ID
    assert crash.happened

    real, simulated = stored(real_db), stored(sim_db)
    assert simulated == real
    # The point is where we meant it: the flow is PENDING, owned by the dead executor,
    # with exactly the operations before the point.
    flow_row = next(r for r in real["workflows"] if r[1] == crashsim.WORKFLOW_ID)
    assert (flow_row[3], flow_row[9]) == ("PENDING", crashsim.EXECUTOR)
    done = 7 if point == "before:charge" else int(point.split(":")[1])
    assert [op[1] for op in real["operations"] if op[0] == crashsim.WORKFLOW_ID] == list(
        range(done)
    )
    # Where executor locks live on the database file itself nothing is left; where they
    # are lock files, one stays behind, unlocked, as the OS leaves it.
    if not is_postgres_url(sim_db):
        assert len(simulated["lock files"]) == (0 if _liveness._OFD else 1)
    for db in (real_db, sim_db):
        assert not sqldb.executor_alive(db, crashsim.EXECUTOR)


async def test_recovery_after_a_simulated_crash(db_path: Path) -> None:
    """A fresh runtime recovers at once: recorded steps are not run again, the rest run once."""
    first = crashsim.build(db_path)
    crash = crash_at(first.rt, before_step="charge")
    async with first.rt:
        await first.rt.start_workflow(first.flow, "o", workflow_id="flow-1")
        await crash.wait()
    assert first.ran == ["reserve"]

    second = crashsim.build(db_path)
    async with second.rt:
        h = await second.rt.retrieve_workflow("flow-1")
        assert await h.get_result() == "r-o note child-o c-o"
        status = await h.get_status()
    assert second.ran == ["charge"]
    assert status.recovery_attempts == 1


async def test_crash_now_while_waiting_keeps_the_deadline(db_path: Path) -> None:
    """crash_now() mid-recv: the dead runtime writes nothing more, refuses calls, wakes waiters.

    Relaunched, the workflow waits until the deadline recorded before the crash.
    """
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, executor_id="doomed", clock=clock)
    idle = litewf.Runtime(db_path, executor_id="doomed", clock=clock)

    @rt.workflow(name="waiter")
    async def waiter() -> str:
        return f"got {await rt.recv('go', timeout=3600)}"

    @idle.workflow(name="waiter")
    async def waiter_again() -> str:
        return f"got {await idle.recv('go', timeout=3600)}"

    async with rt:
        h = await rt.start_workflow(waiter, workflow_id="w")
        await clock.wait_idle()
        before = stored(db_path)
        async with anyio.create_task_group() as tg:

            async def expect_crash() -> None:
                with pytest.raises(litewf.LitewfError, match="crashed on crash_now"):
                    await h.get_result()

            tg.start_soon(expect_crash)
            await anyio.wait_all_tasks_blocked()
            crash_now(rt)
        # Dropped before shutdown (on PostgreSQL the server ends the session a moment
        # after the socket closed, as for a killed process).
        await wait_until(lambda: not sqldb.executor_alive(db_path, "doomed"))
        with pytest.raises(litewf.LitewfError, match=r"simulated by litewf\.testing"):
            await rt.send("w", "go", topic="go")
        with pytest.raises(litewf.LitewfError, match="crashed"):
            await rt.list_workflows()
    after = stored(db_path)
    assert after["workflows"] == before["workflows"]  # shutdown released nothing
    assert after["operations"] == before["operations"]
    (wait_op,) = after["operations"]
    assert wait_op[2:5] == ("recv", 0, 1)  # started, not done, deadline recorded
    row = after["workflows"][0]
    assert (row[3], row[9]) == ("PENDING", "doomed")

    async with idle:
        handle = await idle.retrieve_workflow("w")
        await clock.wait_idle()
        clock.advance(3599)  # the recorded deadline is an hour after the first start
        await clock.wait_idle()
        assert (await handle.get_status()).status == litewf.Status.PENDING
        clock.advance(1)
        assert await handle.get_result() == "got None"
        assert (await handle.get_status()).recovery_attempts == 1


async def test_a_crashed_runtime_can_be_launched_again(db_path: Path) -> None:
    """Launching the same object again is a restarted process: it recovers its workflows."""
    flows = crashsim.build(db_path)
    crash = crash_at(flows.rt, after_operations=1, workflow_id="flow-1")
    async with flows.rt:
        await flows.rt.start_workflow(flows.flow, "o", workflow_id="flow-1")
        await crash.wait()
    async with flows.rt:
        h = await flows.rt.retrieve_workflow("flow-1")
        assert await h.get_result() == "r-o note child-o c-o"
    assert flows.ran == ["reserve", "charge"]


async def test_crash_plans_are_checked(db_path: Path) -> None:
    """Bad plans fail with a clear error before anything runs."""
    rt = litewf.Runtime(db_path)
    with pytest.raises(litewf.InvalidValueError, match="exactly one"):
        crash_at(rt)
    with pytest.raises(litewf.InvalidValueError, match="exactly one"):
        crash_at(rt, after_operations=1, before_step="x")
    with pytest.raises(litewf.InvalidValueError, match="after_operations"):
        crash_at(rt, after_operations=-1)
    with pytest.raises(litewf.InvalidValueError, match="Runtime"):
        crash_at("rt", after_operations=1)  # type: ignore[arg-type]
    with pytest.raises(litewf.RuntimeNotLaunchedError):
        crash_now(rt)
    crash = crash_at(rt, before_step="charge")
    assert "before_step='charge'" in repr(crash)
    with pytest.raises(litewf.LitewfError, match="already planned"):
        crash_at(rt, after_operations=2)


async def test_recorded_reads_replay_the_first_run_after_a_simulated_crash(db_path: Path) -> None:
    """A workflow read another's status, then waited for its result (deadline recorded,
    on the VirtualClock); it crashes, the other is cancelled meanwhile. Relaunched, the
    replayed read returns what the first run saw (PENDING, not CANCELLED), and the wait
    ends on the cancel long before its recorded deadline."""
    clock = VirtualClock()
    runtimes = [litewf.Runtime(db_path, executor_id="doomed", clock=clock) for _ in range(2)]
    flows = []
    for rt in runtimes:

        @rt.workflow(name="other")
        async def other(rt: litewf.Runtime = rt) -> None:
            await rt.recv("never", timeout=86_400)

        @rt.workflow(name="reader")
        async def reader(rt: litewf.Runtime = rt) -> str:
            handle = await rt.retrieve_workflow("other-1")
            status = (await handle.get_status()).status
            try:
                await handle.get_result(timeout=3600)
            except litewf.WorkflowCancelledError:
                return f"{status} then cancelled"
            return f"{status} then finished"

        flows.append((other, reader))

    first, again = runtimes
    start = clock.time()
    async with first:
        await first.start_workflow(flows[0][0], workflow_id="other-1")
        await clock.wait_idle()
        await first.start_workflow(flows[0][1], workflow_id="reader-1")
        await clock.wait_idle()  # the reader waits in get_result, its deadline recorded
        crash_now(first)
    async with litewf.Client(db_path) as client:
        await client.cancel_workflow("other-1")
    async with again:
        handle = await again.retrieve_workflow("reader-1")
        with anyio.fail_after(30):
            assert await handle.get_result() == "PENDING then cancelled"
        assert clock.time() - start < 3600  # it did not wait out the recorded deadline
        kinds = [step.kind for step in await again.list_steps("reader-1")]
        assert kinds == ["retrieve_workflow", "get_status", "get_result"]

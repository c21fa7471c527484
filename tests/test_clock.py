"""VirtualClock: day-long sleeps and hour-long timeouts in milliseconds, deadlines kept."""

from __future__ import annotations

import math
import time
from pathlib import Path

import anyio
import pytest

import litewf
from litewf.testing import VirtualClock
from tests import sqldb

DAY, HOUR = 86400.0, 3600.0
#: A generous bound: each test skips a day or more; real time would never get close.
REAL_BOUND_S = 10.0


def recorded(db: Path, workflow_id: str) -> list[tuple[str, float | None, str | None]]:
    """(name, deadline, output) of each recorded operation, in order."""
    rows = sqldb.query(
        db,
        "SELECT name, deadline, output FROM operations WHERE workflow_id = ? ORDER BY op_id",
        (workflow_id,),
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def test_one_day_sleep_ends_when_the_clock_is_advanced(db_path: Path) -> None:
    """Not a moment early: one second short of a day it still sleeps."""
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, clock=clock)

    @rt.workflow()
    async def napper() -> str:
        await rt.sleep(DAY)
        return "rested"

    started = time.monotonic()
    async with rt:
        t0 = clock.time()
        h = await rt.start_workflow(napper, workflow_id="nap")
        await clock.wait_idle()
        clock.advance(DAY - 1)
        await clock.wait_idle()
        assert (await h.get_status()).status == litewf.Status.PENDING
        clock.advance(1)
        assert await h.get_result() == "rested"
    assert time.monotonic() - started < REAL_BOUND_S
    ((name, _, wake_at),) = recorded(db_path, "nap")
    assert (name, float(wake_at or "nan")) == ("sleep", t0 + DAY)


async def test_hour_long_timeouts_auto_advance(db_path: Path) -> None:
    """recv and get_event time out an hour later each, in virtual time only."""
    clock = VirtualClock(auto_advance=True)
    rt = litewf.Runtime(db_path, clock=clock)

    @rt.workflow()
    async def quiet() -> str:
        return f"{await rt.recv('never', timeout=30 * DAY)}"

    @rt.workflow()
    async def patient() -> str:
        message = await rt.recv("payment", timeout=HOUR)
        event = await rt.get_event("quiet", "never", timeout=HOUR)
        return f"{message} {event}"

    started = time.monotonic()
    async with rt:
        await rt.start_workflow(quiet, workflow_id="quiet")
        t0 = clock.time()
        h = await rt.start_workflow(patient, workflow_id="patient")
        assert await h.get_result() == "None None"
        assert clock.time() == t0 + 2 * HOUR  # exactly the two timeouts, not quiet's
    assert time.monotonic() - started < REAL_BOUND_S
    deadlines = [d for _, d, _ in recorded(db_path, "patient")]
    assert deadlines == [t0 + HOUR, t0 + 2 * HOUR]


async def test_a_message_in_time_beats_the_timeout(db_path: Path) -> None:
    """Manual mode: the test acts at a chosen virtual instant."""
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, clock=clock)

    @rt.workflow()
    async def payment() -> str:
        return f"{await rt.recv('paid', timeout=HOUR)}"

    async with rt:
        h = await rt.start_workflow(payment, workflow_id="p")
        await clock.wait_idle()
        clock.advance(HOUR - 1)
        await rt.send("p", "yes", topic="paid")
        assert await h.get_result() == "yes"


async def test_auto_advance_waits_while_a_workflow_works(db_path: Path) -> None:
    """Time jumps only once every workflow waits, not while one runs a step."""
    clock = VirtualClock(auto_advance=True)
    rt = litewf.Runtime(db_path, clock=clock)
    release = anyio.Event()

    @rt.step()
    async def slow_work() -> None:
        await release.wait()  # not a clock wait: the workflow is busy

    @rt.workflow()
    async def worker() -> str:
        await slow_work()
        await rt.sleep(60)
        return "worked"

    @rt.workflow()
    async def sleeper() -> str:
        await rt.sleep(HOUR)
        return "slept"

    async with rt:
        t0 = clock.time()
        await rt.start_workflow(sleeper, workflow_id="sleeper")
        await clock.wait_idle()  # the sleeper waits for its hour
        busy = await rt.start_workflow(worker, workflow_id="worker")
        async with anyio.create_task_group() as tg:

            async def wait_for_worker() -> None:
                assert await busy.get_result() == "worked"

            tg.start_soon(wait_for_worker)
            await anyio.sleep(0.05)  # ten re-checks of an auto-advancing wait, to no avail
            assert clock.time() == t0  # the worker is busy: no jump
            release.set()
        assert clock.time() == t0 + 60  # the worker's sleep, not the sleeper's hour


async def test_children_retries_and_plain_sleeps_use_the_clock(db_path: Path) -> None:
    """A parent waiting for a sleeping child, step retry back-off, rt.sleep outside."""
    clock = VirtualClock(auto_advance=True)
    rt = litewf.Runtime(db_path, clock=clock)
    attempts: list[float] = []

    @rt.step(retries=2, retry_interval=600, backoff=2)
    async def flaky() -> str:
        attempts.append(clock.time())
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "ok"

    @rt.workflow()
    async def child() -> str:
        await rt.sleep(DAY)
        return await flaky()

    @rt.workflow()
    async def parent() -> str:
        return f"child said {await child()}"

    started = time.monotonic()
    async with rt:
        t0 = clock.time()
        assert await parent() == "child said ok"
        assert [a - t0 for a in attempts] == [DAY, DAY + 600, DAY + 1800]
        await rt.sleep(HOUR)  # outside a workflow: a plain sleep, on the clock too
        assert clock.time() == t0 + DAY + 1800 + HOUR
    assert time.monotonic() - started < REAL_BOUND_S


async def test_get_result_timeout_is_virtual(db_path: Path) -> None:
    """A test's own timeout is measured on the runtime's clock as well."""
    clock = VirtualClock(auto_advance=True)
    rt = litewf.Runtime(db_path, clock=clock)

    @rt.workflow()
    async def long_nap() -> None:
        await rt.sleep(DAY)

    async with rt:
        t0 = clock.time()
        h = await rt.start_workflow(long_nap)
        with pytest.raises(TimeoutError):
            await h.get_result(timeout=60)
        assert clock.time() == t0 + 60


async def test_deadlines_mean_the_same_instant_under_either_clock(db_path: Path) -> None:
    """A deadline recorded in real time is kept by a virtual clock, and the other way round."""
    real = litewf.Runtime(db_path, executor_id="real")

    @real.workflow(name="wait")
    async def wait_real() -> str:
        return f"{await real.recv('go', timeout=HOUR)}"

    async with real:
        await real.start_workflow(wait_real, workflow_id="from-real")
        while not recorded(db_path, "from-real"):  # noqa: ASYNC110 - real time: watch the database
            await anyio.sleep(0.001)
    ((_, deadline, _),) = recorded(db_path, "from-real")
    assert deadline is not None

    clock = VirtualClock(start=deadline - 5)
    virtual = litewf.Runtime(db_path, clock=clock)

    @virtual.workflow(name="wait")
    async def wait_virtual() -> str:
        return f"{await virtual.recv('go', timeout=HOUR)}"

    async with virtual:
        h = await virtual.retrieve_workflow("from-real")
        await clock.wait_idle()
        clock.advance(4)
        await clock.wait_idle()
        assert (await h.get_status()).status == litewf.Status.PENDING
        clock.advance(1)
        assert await h.get_result() == "None"
        # And one recorded under the virtual clock, resumed by a later virtual clock:
        await virtual.start_workflow(wait_virtual, workflow_id="from-virtual")
        await clock.wait_idle()
    ((_, virtual_deadline, _),) = recorded(db_path, "from-virtual")
    assert virtual_deadline == clock.time() + HOUR
    later = VirtualClock(start=(virtual_deadline or math.nan) - 1)
    resumed = litewf.Runtime(db_path, clock=later)

    @resumed.workflow(name="wait")
    async def wait_resumed() -> str:
        return f"{await resumed.recv('go', timeout=HOUR)}"

    async with resumed:
        h = await resumed.retrieve_workflow("from-virtual")
        await later.wait_idle()
        later.advance(1)
        assert await h.get_result() == "None"


def test_real_time_is_the_default_and_clocks_are_checked(db_path: Path) -> None:
    """Runtime() reads real time; a wrong clock or step is refused with a clear error."""
    rt = litewf.Runtime(db_path)
    assert not isinstance(rt.clock, VirtualClock)
    assert abs(rt.clock.time() - time.time()) < 60
    with pytest.raises(litewf.InvalidValueError, match="VirtualClock"):
        litewf.Runtime(db_path, clock=time)  # type: ignore[arg-type]
    clock = VirtualClock(start=1000.0)
    assert clock.time() == 1000.0
    assert "VirtualClock" in repr(clock)
    with pytest.raises(litewf.InvalidValueError, match="zero or more"):
        clock.advance(-1)
    with pytest.raises(litewf.InvalidValueError, match="finite"):
        clock.advance(math.inf)
    with pytest.raises(litewf.InvalidValueError, match="epoch seconds"):
        VirtualClock(start="now")  # type: ignore[arg-type]
    assert clock.next_deadline is None

"""``get_result`` of a workflow run in this process takes the outcome its run committed,
without reading the row; anything else (a change made elsewhere, a run that ended without
an outcome) still reads the row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf

from .conditions import count_reads


async def test_result_of_a_run_here_is_not_read(db_path: Path) -> None:
    """Outputs and errors come back as stored, with no read of the workflow's row."""
    rt = litewf.Runtime(db_path)
    gate = anyio.Event()

    @rt.step()
    async def wait_for_gate() -> None:
        await gate.wait()

    @rt.workflow()
    async def double(x: int) -> dict[str, int]:
        await wait_for_gate()
        if x < 0:
            raise ValueError(f"negative: {x}")
        return {"x": x * 2}

    async with rt:
        reads = count_reads(rt)
        handles = [await rt.start_workflow(double, x) for x in (1, 2, -3)]
        outcomes: list[Any] = []

        async def result(handle: litewf.WorkflowHandle[dict[str, int]]) -> None:
            try:
                outcomes.append(await handle.get_result(timeout=10))
            except ValueError as exc:
                outcomes.append(str(exc))

        async with anyio.create_task_group() as tg:
            for handle in handles:
                tg.start_soon(result, handle)
            await anyio.sleep(0.05)  # each waits while the runs are under way
            gate.set()
        assert sorted(map(str, outcomes)) == ["negative: -3", "{'x': 2}", "{'x': 4}"]
        assert "get_result" not in reads
        # Once the run is over, a caller reads the row, and gets the same answers.
        assert await handles[1].get_result(timeout=10) == {"x": 4}
        with pytest.raises(ValueError, match="negative: -3"):
            await handles[2].get_result(timeout=10)
        assert reads.count("get_result") == 2


def stuck_runtime(
    db_path: Path,
) -> tuple[litewf.Runtime, litewf.Workflow[[], str], anyio.Event, anyio.Event]:
    """A runtime whose workflow gets stuck in a step that ignores cancellation: the
    workflow, the event set once the step is entered, the one that releases it."""
    rt = litewf.Runtime(db_path)
    entered, release = anyio.Event(), anyio.Event()

    @rt.step()
    async def stubborn() -> str:
        with anyio.CancelScope(shield=True):
            entered.set()
            await release.wait()
        return "done"

    @rt.workflow()
    async def stuck() -> str:
        return await stubborn()

    return rt, stuck, entered, release


async def test_cancel_reaches_a_waiter_while_the_run_is_stuck(db_path: Path) -> None:
    """A cancel made elsewhere wakes the waiter, which reads the row: CANCELLED, although
    the run here has not noticed yet (its step ignores cancellation)."""
    rt, stuck, entered, release = stuck_runtime(db_path)
    async with rt:
        handle = await rt.start_workflow(stuck, workflow_id="stuck")
        await entered.wait()
        async with anyio.create_task_group() as tg:

            async def cancel_soon() -> None:
                await anyio.sleep(0.05)  # let get_result start waiting first
                async with litewf.Client(db_path) as client:
                    await client.cancel_workflow("stuck")

            tg.start_soon(cancel_soon)
            with anyio.fail_after(10), pytest.raises(litewf.WorkflowCancelledError):
                await handle.get_result()
        release.set()


async def test_a_run_ending_without_outcome_wakes_its_waiters(db_path: Path) -> None:
    """Cancelled before ``get_result`` began waiting, while the run here was stuck: the
    waiter's first look skips the read (the run is under way); the run's end wakes it to
    read the row (not the 30 s safety re-check)."""
    rt, stuck, entered, release = stuck_runtime(db_path)
    async with rt:
        handle = await rt.start_workflow(stuck, workflow_id="stuck")
        await entered.wait()
        await rt.cancel_workflow("stuck")
        await anyio.sleep(0.05)  # the cancel's change has been handed out

        async def release_soon() -> None:
            await anyio.sleep(0.05)  # let get_result start waiting first
            release.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(release_soon)
            with anyio.fail_after(10), pytest.raises(litewf.WorkflowCancelledError):
                await handle.get_result()
        assert (await handle.get_status()).status == "CANCELLED"

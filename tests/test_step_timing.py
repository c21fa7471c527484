"""Step timing: operations record when they started and finished (issue 17)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

import litewf
from litewf._schema import MIGRATIONS
from tests import sqldb


async def test_a_step_records_its_start_and_its_end(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.step()
    async def slow() -> str:
        await anyio.sleep(0.2)
        return "done"

    @rt.workflow()
    async def flow() -> str:
        await rt.set_event("k", 1)
        return await slow()

    before = time.time()
    async with rt:
        await (await rt.start_workflow(flow, workflow_id="w")).get_result()
        steps = await rt.list_steps("w")
    after = time.time()
    event, step = steps
    assert step.kind == "step" and step.started_at is not None and step.finished_at is not None
    assert before <= step.started_at.timestamp() <= step.finished_at.timestamp() <= after
    assert step.duration is not None and step.duration >= timedelta(seconds=0.19)
    assert step.finished_at == step.created_at  # recorded when it finished
    # An instant call starts and ends at once.
    assert event.started_at == event.finished_at is not None


async def test_a_wait_records_when_it_began_and_when_it_ended(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def flow() -> object:
        return await rt.recv("go", timeout=30)

    async with rt:
        h = await rt.start_workflow(flow, workflow_id="w")

        async def waiting() -> bool:
            steps = await rt.list_steps("w")
            return bool(steps) and steps[0].outcome == "waiting"

        with anyio.fail_after(10):
            while True:
                if await waiting():
                    break
                await anyio.sleep(0.005)
        (wait,) = await rt.list_steps("w")
        assert wait.started_at is not None and wait.finished_at is None
        assert wait.duration is None
        await anyio.sleep(0.1)
        await rt.send("w", "now", topic="go")
        assert await h.get_result() == "now"
        (done,) = await rt.list_steps("w")
    assert done.started_at == wait.started_at and done.finished_at is not None
    assert done.duration is not None and done.duration >= timedelta(seconds=0.09)


async def test_a_client_sees_the_timing_and_rows_from_before_show_none(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.step()
    def add(a: int, b: int) -> int:
        return a + b

    @rt.workflow()
    async def flow() -> int:
        return await add(1, 2) + await add(3, 4)

    async with rt:
        await (await rt.start_workflow(flow, workflow_id="w")).get_result()
    # A row recorded before the migration: no timing.
    with sqldb.connect(db_path) as con:
        con.execute("UPDATE operations SET started_at = NULL, finished_at = NULL WHERE op_id = 0")
    async with litewf.Client(db_path) as client:
        old, new = await client.list_steps("w")
    assert old.started_at is None and old.finished_at is None and old.duration is None
    assert new.started_at is not None and new.finished_at is not None


async def test_a_recorded_list_steps_replays_the_timing(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.step()
    def one() -> int:
        return 1

    @rt.workflow()
    async def inner() -> int:
        return await one()

    seen: list[list[litewf.StepRecord]] = []

    @rt.workflow()
    async def outer() -> None:
        await (await rt.start_workflow(inner, workflow_id="in")).get_result()
        seen.append(await rt.list_steps("in"))  # decoded from its record, as a replay's

    async with rt:
        await (await rt.start_workflow(outer, workflow_id="out")).get_result()
        live = await rt.list_steps("in")
    assert seen == [live] and live[0].started_at is not None and live[0].finished_at is not None


@pytest.mark.sqlite_only  # PostgreSQL's typed columns refuse the text in the first place
@pytest.mark.parametrize("column", ["started_at", "finished_at"])
async def test_a_tampered_time_is_a_corrupt_database_error(db_path: Path, column: str) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def flow() -> None:
        await rt.set_event("k", 1)

    async with rt:
        await (await rt.start_workflow(flow, workflow_id="w")).get_result()
    with sqldb.connect(db_path) as con:
        con.execute(f"UPDATE operations SET {column} = 'soon'")
    async with litewf.Client(db_path) as client:
        with pytest.raises(litewf.CorruptDatabaseError) as info:
            await client.list_steps("w")
    assert info.value.column == f"operations.{column}"


def test_the_timing_is_one_appended_migration() -> None:
    timing = [n for n, script in enumerate(MIGRATIONS, 1) if "finished_at" in script]
    assert timing == [7] and "started_at" in MIGRATIONS[6]

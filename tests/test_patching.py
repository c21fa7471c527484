"""Patching (DESIGN.md Part 2, "Living with code changes"): a workflow in flight when the
code changed replays the old branch; new runs, and histories with the marker, the new one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from litewf.testing import crash_now

WAIT = 30.0


def build(
    db_path: Path, version: int, log: list[str]
) -> tuple[litewf.Runtime, litewf.Workflow[[], Any]]:
    """The same workflow at three versions of the code: 1 before the patch, 2 with the
    ``patched`` branch, 3 after the old branch was removed (``deprecate_patch``)."""
    rt = litewf.Runtime(db_path)

    @rt.step(name="charge_dollars")
    async def charge_dollars() -> str:
        log.append("dollars")
        return "$10"

    @rt.step(name="charge_cents")
    async def charge_cents() -> str:
        log.append("cents")
        return "1000c"

    @rt.workflow(name="order")
    async def order() -> Any:
        await rt.recv("go", timeout=WAIT)
        if version == 1:
            charged = await charge_dollars()
        elif version == 2:
            new = await rt.patched("cents")
            charged = await (charge_cents() if new else charge_dollars())
        else:
            await rt.deprecate_patch("cents")
            charged = await charge_cents()
        await rt.recv("ship", timeout=WAIT)
        return charged

    return rt, order


async def waiting_in_recv(rt: litewf.Runtime, workflow_id: str, count: int) -> None:
    with anyio.fail_after(WAIT):
        while len(await rt.list_steps(workflow_id)) < count:  # noqa: ASYNC110
            await anyio.sleep(0.005)


async def test_an_old_history_takes_the_old_branch_and_a_new_run_the_new(db_path: Path) -> None:
    log: list[str] = []
    rt, order = build(db_path, 1, log)
    async with rt:
        await rt.start_workflow(order, workflow_id="old")
        await rt.send("old", "go", topic="go")
        await waiting_in_recv(rt, "old", 3)  # recv, charge_dollars, recv (waiting)
        crash_now(rt)
    assert log == ["dollars"]
    rt2, order2 = build(db_path, 2, log)
    async with rt2:
        await rt2.start_workflow(order2, workflow_id="new")
        await rt2.send("new", "go", topic="go")
        await waiting_in_recv(rt2, "new", 4)  # recv, patch marker, charge_cents, recv
        for wid in ("old", "new"):
            await rt2.send(wid, "ship", topic="ship")
        assert await (await rt2.retrieve_workflow("old")).get_result(timeout=WAIT) == "$10"
        assert await (await rt2.retrieve_workflow("new")).get_result(timeout=WAIT) == "1000c"
        kinds = [s.kind for s in await rt2.list_steps("new")]
        assert kinds == ["recv", "patch", "step", "recv"]
    assert log == ["dollars", "cents"]  # the old one's step was replayed, not run again


async def test_a_history_with_the_marker_replays_the_new_branch(db_path: Path) -> None:
    """Replayed after a crash, a v2 history takes the patched branch again; after the old
    branch is removed (v3), deprecate_patch passes over its marker."""
    log: list[str] = []
    rt, order = build(db_path, 2, log)
    async with rt:
        await rt.start_workflow(order, workflow_id="w")
        await rt.send("w", "go", topic="go")
        await waiting_in_recv(rt, "w", 4)
        crash_now(rt)
    for version in (2, 3):
        again, _ = build(db_path, version, log)
        async with again:
            if version == 3:
                await again.send("w", "ship", topic="ship")
                h = await again.retrieve_workflow("w")
                assert await h.get_result(timeout=WAIT) == "1000c"
            else:
                await waiting_in_recv(again, "w", 4)
                crash_now(again)
    assert log == ["cents"]  # run once, replayed twice


async def test_a_new_run_with_deprecate_patch_records_no_marker(db_path: Path) -> None:
    log: list[str] = []
    rt, order = build(db_path, 3, log)
    async with rt:
        h = await rt.start_workflow(order, workflow_id="w")
        await rt.send("w", "go", topic="go")
        await rt.send("w", "ship", topic="ship")
        assert await h.get_result(timeout=WAIT) == "1000c"
        assert [s.kind for s in await rt.list_steps("w")] == ["recv", "step", "recv"]


async def test_another_patchs_marker_is_a_divergence(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)
    name = ["first"]

    @rt.workflow(name="p")
    async def p() -> bool:
        result = await rt.patched(name[0])
        await rt.recv("go", timeout=WAIT)
        return result

    async with rt:
        await rt.start_workflow(p, workflow_id="p")
        await waiting_in_recv(rt, "p", 2)
        crash_now(rt)
    name[0] = "second"
    rt2 = litewf.Runtime(db_path)
    rt2.workflow(name="p")(p.fn)
    async with rt2:
        with pytest.raises(litewf.NonDeterminismError, match="patch"):
            await (await rt2.retrieve_workflow("p")).get_result(timeout=WAIT)


async def test_patching_outside_a_workflow_and_bad_names_are_refused(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="bad")
    async def bad() -> list[str]:
        seen = []
        for value in (None, 5, "a\x00b"):
            try:
                await rt.patched(value)  # type: ignore[arg-type]
            except litewf.InvalidValueError:
                seen.append("refused")
        return seen

    async with rt:
        with pytest.raises(litewf.NotInWorkflowError):
            await rt.patched("x")
        with pytest.raises(litewf.NotInWorkflowError):
            await rt.deprecate_patch("x")
        assert await bad() == ["refused"] * 3
    with pytest.raises(litewf.InvalidValueError, match="reserved"):
        rt.step(name="patch x")(lambda: None)

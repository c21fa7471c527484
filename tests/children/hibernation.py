"""Child programs for tests/test_hibernation.py, selected by ``argv[1]``.

Every run of the workflow's function appends ``top`` to ``OUT/runs.log``, every run of
its step body appends ``step`` to ``OUT/steps.log`` (a replay runs the function again,
never a recorded step). ``build()`` is shared with the test process.

Modes (``python -m tests.children.hibernation MODE ...``):

- ``serve DB OUT``: with ``max_resident_waits=0``, start ``hib-1`` (a step, then
  ``recv("go")``), touch ``OUT/parked`` once it hibernated, and serve until killed or
  until ``OUT/stop`` exists (then shut down cleanly).
- ``send DB WORKFLOW_ID MESSAGE``: a ``Client`` sends ``MESSAGE`` on topic ``go``.
- ``cancel DB WORKFLOW_ID``: a ``Client`` cancels the workflow.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

import litewf
from litewf import testing
from tests import procs
from tests.children.recovery import append


@dataclass
class Flows:
    rt: litewf.Runtime
    waiter: litewf.Workflow[[], str]


def build(db: str | os.PathLike[str], out: Path, **runtime_kwargs: Any) -> Flows:
    rt = litewf.Runtime(db, **runtime_kwargs)

    @rt.step(name="hib.step")
    async def step() -> int:
        append(out / "steps.log", "step")
        return 7

    @rt.workflow(name="hib.waiter")
    async def waiter() -> str:
        append(out / "runs.log", f"top {rt.current_workflow_id()}")
        value = await step()
        got = await rt.recv("go", timeout=3600)
        return f"{value}:{got}"

    return Flows(rt, waiter)


async def serve(db: str, out: Path) -> None:
    flows = build(db, out, max_resident_waits=0, recovery_interval=0.2)
    async with flows.rt:
        await flows.rt.start_workflow(flows.waiter, workflow_id="hib-1")
        while "hib-1" not in testing.hibernated(flows.rt):  # noqa: ASYNC110
            await anyio.sleep(0.005)
        procs.touch(out / "parked")
        while not (out / "stop").exists():  # noqa: ASYNC110 - the test's signal
            await anyio.sleep(0.01)


async def client(mode: str, db: str, workflow_id: str, rest: list[str]) -> None:
    async with litewf.Client(db) as c:
        if mode == "send":
            await c.send(workflow_id, rest[0], topic="go")
        else:
            await c.cancel_workflow(workflow_id)


def main() -> None:
    mode, db = sys.argv[1], sys.argv[2]
    if mode == "serve":
        anyio.run(serve, db, Path(sys.argv[3]))
    else:
        anyio.run(client, mode, db, sys.argv[3], sys.argv[4:])


if __name__ == "__main__":
    main()

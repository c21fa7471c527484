"""The workflow of tests/test_crash_simulation.py, and a child that really dies in it.

``python -m tests.children.crashsim DB POINT`` runs workflow ``flow-1`` under executor
``crash-exec`` and SIGKILLs its own process at POINT: ``after:N`` (once N operations have
completed) or ``before:NAME`` (just before the step of that name). The test then compares
the file with one left by ``litewf.testing.crash_at`` at the same point.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass

import anyio

import litewf

EXECUTOR = "crash-exec"
WORKFLOW_ID = "flow-1"


@dataclass
class Flows:
    rt: litewf.Runtime
    flow: litewf.Workflow[[str], str]
    ran: list[str]


def build(db: str | os.PathLike[str], kill_at: str | None = None, **options: object) -> Flows:
    """A runtime with ``flow`` registered; ``kill_at`` makes it SIGKILL its process there."""
    rt = litewf.Runtime(db, executor_id=EXECUTOR, **options)  # type: ignore[arg-type]
    ran: list[str] = []

    def point(here: str) -> None:
        if kill_at == here:
            os.kill(os.getpid(), signal.SIGKILL)

    @rt.step(name="reserve")
    async def reserve(order: str) -> str:
        ran.append("reserve")
        return f"r-{order}"

    @rt.step(name="charge")
    async def charge(order: str) -> str:
        ran.append("charge")
        return f"c-{order}"

    @rt.workflow(name="child")
    async def child(order: str) -> str:
        await rt.set_event("child-done", order)
        return f"child-{order}"

    @rt.workflow(name="flow")
    async def flow(order: str) -> str:
        wid = rt.current_workflow_id()
        assert wid is not None
        point("after:0")
        reserved = await reserve(order)  # op 0
        point("after:1")
        await rt.set_event("reserved", reserved)  # op 1
        point("after:2")
        await rt.send(wid, "note", topic="self", idempotency_key="k-1")  # op 2
        point("after:3")
        note = await rt.recv("self", timeout=60)  # op 3
        point("after:4")
        from_child = await child(order)  # ops 4 (start) and 5 (get_result); the child's rows
        point("after:6")
        await rt.sleep(0.001)  # op 6
        point("after:7")
        point("before:charge")
        paid = await charge(order)  # op 7
        point("after:8")
        return f"{reserved} {note} {from_child} {paid}"

    return Flows(rt, flow, ran)


async def run(db: str, kill_at: str) -> None:
    flows = build(db, kill_at)
    async with flows.rt:
        await flows.rt.start_workflow(flows.flow, "o", workflow_id=WORKFLOW_ID)
        await anyio.sleep_forever()  # the workflow kills this process


if __name__ == "__main__":
    anyio.run(run, sys.argv[1], sys.argv[2])

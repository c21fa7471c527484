"""The workflow of tests/test_wait_first.py's crash cases, and a child that serves it.

``python -m tests.children.waitfirst DB FOLDER`` launches a Runtime, starts workflow
``order`` (``WORKFLOW_ID``) and serves until killed. The workflow waits for message
``go``, then ``wait_first(paid=message("paid"), cancelled=message("cancel"))``; it logs
the winner to ``FOLDER/winners`` and touches ``FOLDER/won`` (the winner's record has
committed by then), then waits for message ``done`` and returns the winner.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio

import litewf
from tests.children.comms import append
from tests.procs import touch

WORKFLOW_ID = "order"
#: What every wait of the workflow waits at most (never reached).
LONG = 60.0


def build(db: str | Path, folder: str | Path) -> tuple[litewf.Runtime, litewf.Workflow[[], Any]]:
    rt = litewf.Runtime(db)

    @rt.step(name="waitfirst.note")
    async def note(name: str) -> str:
        return name

    @rt.workflow(name="waitfirst.order")
    async def order() -> list[Any]:
        await rt.recv("go", timeout=LONG)
        got = await rt.wait_first(paid=rt.message("paid"), cancelled=rt.message("cancel"))
        assert got is not None
        append(Path(folder, "winners"), got.name)
        touch(Path(folder, "won"))
        await note(got.name)
        await rt.recv("done", timeout=LONG)
        return [got.name, got.value]

    return rt, order


async def serve(db: str, folder: str) -> None:
    rt, order = build(db, folder)
    async with rt:
        await rt.start_workflow(order, workflow_id=WORKFLOW_ID)
        touch(Path(folder, "started"))
        await anyio.sleep_forever()  # the test kills this process


if __name__ == "__main__":
    anyio.run(serve, sys.argv[1], sys.argv[2])

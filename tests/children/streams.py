"""Child programs for the stream tests, selected by ``argv[1]``.

``step_writer DB FOLDER``
    Launch a Runtime (executor ``writer``) and start ``streams.flow`` as ``w``: its step
    ``streams.gen`` writes ``a0`` and ``a1`` to stream ``tok``, touches ``wrote`` and then
    waits for a file that never comes (the test SIGKILLs this process there).
``reader DB FOLDER WID KEY OFFSET``
    Read the stream with a Client from OFFSET to its end; print the values as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio

import litewf
from tests.procs import touch, wait_for_file


def register(rt: litewf.Runtime, values: list[str], hold: Path | None) -> litewf.Workflow[[], str]:
    """``streams.flow``: a step writes ``values`` to ``tok`` (then waits for ``hold`` to
    exist, if given), and the workflow closes the stream."""

    @rt.step(name="streams.gen")
    async def gen() -> int:
        for value in values:
            await rt.write_stream("tok", value)
        if hold is not None:
            touch(hold.parent / "wrote")
            await wait_for_file(hold, timeout=3600)
        return len(values)

    @rt.workflow(name="streams.flow")
    async def flow() -> str:
        await gen()
        await rt.close_stream("tok")
        return "done"

    return flow


async def step_writer(db: str, folder: str) -> None:
    rt = litewf.Runtime(db, executor_id="writer")
    flow = register(rt, ["a0", "a1"], Path(folder, "never"))
    async with rt:
        await rt.start_workflow(flow, workflow_id="w")
        await anyio.sleep_forever()


async def reader(db: str, wid: str, key: str, offset: str) -> None:
    got: list[Any] = []
    async with litewf.Client(db) as client:
        async for value in client.read_stream(wid, key, offset=int(offset), timeout=60):
            got.append(value)
    print(json.dumps(got))


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "step_writer":
        anyio.run(step_writer, args[0], args[1])
    elif mode == "reader":
        anyio.run(reader, args[0], args[2], args[3], args[4])
    else:
        raise SystemExit(f"unknown mode {mode!r}")

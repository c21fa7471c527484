"""Child program for the lifecycle tests: an interrupt raised in workflow code.

``interrupt DB RUNNER EXCEPTION``: runs ``main`` with ``anyio.run`` or ``asyncio.run``
(RUNNER); its workflow raises KeyboardInterrupt or SystemExit (EXCEPTION) on its first
run. Prints ``caught EXCEPTION`` if the application's ``except EXCEPTION:`` ran, then the
workflow's stored status, then launches the same runtime again in a new event loop and
prints ``result`` and what the recovered workflow returned.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import anyio

import litewf
from tests import sqldb


def run(runner: str, fn: Callable[[], Awaitable[None]]) -> None:
    if runner == "anyio":
        anyio.run(fn, backend="asyncio")
    else:
        asyncio.run(fn())  # type: ignore[arg-type]


def interrupt(db: str, runner: str, name: str) -> None:
    interruption: type[BaseException] = (
        KeyboardInterrupt if name == "KeyboardInterrupt" else SystemExit
    )
    rt = litewf.Runtime(db)
    runs: list[int] = []

    @rt.workflow(name="lifecycle.interrupted")
    async def interrupted() -> str:
        runs.append(1)
        if len(runs) == 1:
            raise interruption()
        return "recovered"

    async def first() -> None:
        async with rt:
            handle = await rt.start_workflow(interrupted, workflow_id="k")
            await handle.get_result(timeout=60)

    try:
        run(runner, first)
    except interruption:
        print(f"caught {name}", flush=True)
    ((status,),) = sqldb.query(db, "SELECT status FROM workflows WHERE workflow_id = 'k'")
    print(f"status {status}", flush=True)

    async def second() -> None:
        async with rt:
            handle = await rt.retrieve_workflow("k")
            print(f"result {await handle.get_result(timeout=60)}", flush=True)

    run(runner, second)


if __name__ == "__main__":
    interrupt(*sys.argv[2:5]) if sys.argv[1] == "interrupt" else sys.exit(f"unknown {sys.argv[1]}")

"""Child program for tests/test_fork_delete.py: a runtime that runs a fork and is killed.

``python -m tests.children.forks run DB OUT SOURCE FROM_STEP FORK``: launch a runtime with
``build()``'s workflow, fork ``SOURCE`` from ``FROM_STEP`` as ``FORK`` (the runtime runs
it at once), and serve until SIGKILLed: the fork's ``ship`` step touches
``OUT/ship.started`` and blocks. Every step body appends its name to ``OUT/runs``, so the
test counts executions across processes. ``build()`` is shared with the test process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio

import litewf
from tests import procs


def build(
    db: str | os.PathLike[str], out: Path, *, broken: bool, block: bool
) -> tuple[litewf.Runtime, litewf.Workflow[[str], list[str]]]:
    """Three steps; ``ship`` fails while ``broken``, and blocks forever while ``block``."""
    rt = litewf.Runtime(db)

    def ran(name: str) -> None:
        with open(out / "runs", "a", encoding="utf-8") as f:
            f.write(name + "\n")

    @rt.step(name="forks.reserve")
    async def reserve(order: str) -> str:
        ran("reserve")
        return f"r-{order}"

    @rt.step(name="forks.ship")
    async def ship(order: str) -> str:
        ran("ship")
        if broken:
            raise ValueError("the carrier API changed")
        if block:
            procs.touch(out / "ship.started")
            await anyio.sleep_forever()
        return f"s-{order}"

    @rt.step(name="forks.notify")
    async def notify(order: str) -> str:
        ran("notify")
        return f"n-{order}"

    @rt.workflow(name="forks.order")
    async def order(order: str) -> list[str]:
        return [await reserve(order), await ship(order), await notify(order)]

    return rt, order


async def run(db: str, out: str, source: str, from_step: str, fork: str) -> None:
    rt, _ = build(db, Path(out), broken=False, block=True)
    async with rt:
        await rt.fork_workflow(source, int(from_step), workflow_id=fork)
        await anyio.sleep_forever()  # until SIGKILLed


def main() -> None:
    mode, db, out, source, from_step, fork = sys.argv[1:]
    assert mode == "run"
    anyio.run(run, db, out, source, from_step, fork, backend="asyncio")


if __name__ == "__main__":
    main()

"""Shutdown while a sync step body runs: ``python -m tests.children.faults_shutdown DB FOLDER``.

Launch a Runtime (executor ``proc-a``, ``shutdown_timeout=0.2``), start workflow ``flow``
whose sync step appends ``start PID`` to ``FOLDER/log`` and then waits for
``FOLDER/release`` before appending ``end PID``. Once the body runs, shut down, touch
``shut-down``, wait for ``exit`` and return: the interpreter must exit although the
step's thread still waits.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import anyio

import litewf
from tests.procs import touch, wait_for_file


def append(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(f"{line}\n")


async def main(db: str, folder: str) -> None:
    here = Path(folder)
    rt = litewf.Runtime(db, executor_id="proc-a", shutdown_timeout=0.2)

    @rt.step(name="s.slow")
    def slow() -> str:
        append(here / "log", f"start {os.getpid()}")
        touch(here / "started")
        while not (here / "release").exists():
            time.sleep(0.01)
        append(here / "log", f"end {os.getpid()}")
        return "slow"

    @rt.workflow(name="s.flow")
    async def flow() -> str:
        return await slow()

    await rt.launch()
    await rt.start_workflow(flow, workflow_id="flow")
    await wait_for_file(here / "started", timeout=60)
    await rt.shutdown()
    touch(here / "shut-down")
    await wait_for_file(here / "exit", timeout=120)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])

"""Child program for tests/test_postgres.py: a runtime serving a shared PostgreSQL database.

``python -m tests.children.pg DB OUT NAME N``: launch (recovery every 0.1 s), start N
workflows ``NAME-i`` if N > 0, and serve until ``OUT/stop`` exists. Each workflow runs
step ``record`` (logs ``record WID PID``), then step ``slow`` (logs ``slow WID PID TIME``,
then waits for ``OUT/release``). ``OUT/NAME.running`` appears once this process's N slow
steps have started.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import anyio

import litewf
from tests import procs


def log(out: Path, line: str) -> None:
    with open(out / "log", "a", encoding="utf-8") as f:
        f.write(line + "\n")


def build(
    db: str, out: Path, started: list[int]
) -> tuple[litewf.Runtime, litewf.Workflow[[], str]]:
    rt = litewf.Runtime(db, recovery_interval=0.1)

    @rt.step(name="record")
    async def record(wid: str) -> None:
        log(out, f"record {wid} {os.getpid()}")

    @rt.step(name="slow")
    async def slow(wid: str) -> str:
        log(out, f"slow {wid} {os.getpid()} {time.time()}")
        started.append(1)
        while not (out / "release").exists():  # noqa: ASYNC110 - the test's file
            await anyio.sleep(0.01)
        return f"done {wid}"

    @rt.workflow(name="pg.job")
    async def job() -> str:
        wid = rt.current_workflow_id()
        assert wid is not None
        await record(wid)
        return await slow(wid)

    return rt, job


async def serve(db: str, out: Path, name: str, n: int) -> None:
    started: list[int] = []
    rt, job = build(db, out, started)
    async with rt:
        for i in range(n):
            await rt.start_workflow(job, workflow_id=f"{name}-{i}")
        while len(started) < n:  # noqa: ASYNC110 - step bodies report by a list
            await anyio.sleep(0.01)
        procs.touch(out / f"{name}.running")
        while not (out / "stop").exists():  # noqa: ASYNC110 - the test\'s file
            await anyio.sleep(0.02)


def main() -> None:
    db, out, name, n = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    anyio.run(serve, db, out, name, n)


if __name__ == "__main__":
    main()

"""Child program for tests/test_pg_lockloss.py: a runtime whose executor lock the test
ends (``pg_terminate_backend`` on that one connection).

``python -m tests.children.pg_lockloss DB OUT NAME N [hold]``: launch as executor ``NAME``
(recovery every 0.1 s), start N workflows ``NAME-i`` if N > 0, and serve until
``OUT/stop`` exists. Each workflow runs step ``record`` (logs ``record WID PID``), then
step ``slow``: logs ``slow WID PID``, waits for ``OUT/release``, logs ``after WID PID``
(or ``cancelled WID PID`` if its run is stopped while it waits). ``OUT/NAME.running``
appears once this process's N slow steps have started. ``hold``: once its lock is lost,
the runtime takes it back only after ``OUT/relock`` exists (so that a peer surely takes
its workflows over first).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import anyio

import litewf
from litewf._pgliveness import PgExecutorLock
from tests import procs


def log(out: Path, line: str) -> None:
    with open(out / "log", "a", encoding="utf-8") as f:
        f.write(line + "\n")


async def serve(db: str, out: Path, name: str, n: int) -> None:
    rt = litewf.Runtime(db, executor_id=name, recovery_interval=0.1)
    started: list[str] = []

    @rt.step(name="record")
    async def record(wid: str) -> None:
        log(out, f"record {wid} {os.getpid()}")

    @rt.step(name="slow")
    async def slow(wid: str) -> str:
        log(out, f"slow {wid} {os.getpid()}")
        started.append(wid)
        try:
            while not (out / "release").exists():  # noqa: ASYNC110 - the test's file
                await anyio.sleep(0.01)
        except anyio.get_cancelled_exc_class():
            log(out, f"cancelled {wid} {os.getpid()}")
            raise
        log(out, f"after {wid} {os.getpid()}")
        return f"done {wid}"

    @rt.workflow(name="pg.lockloss")
    async def job() -> str:
        wid = rt.current_workflow_id()
        assert wid is not None
        await record(wid)
        return await slow(wid)

    async with rt:
        for i in range(n):
            await rt.start_workflow(job, workflow_id=f"{name}-{i}")
        while len(started) < n:  # noqa: ASYNC110 - step bodies report by a list
            await anyio.sleep(0.01)
        procs.touch(out / f"{name}.running")
        while not (out / "stop").exists():  # noqa: ASYNC110 - the test's file
            await anyio.sleep(0.02)


def hold_relocking(out: Path) -> None:
    """Make a second ``acquire`` (the lock taken back) wait for ``OUT/relock``."""
    acquire = PgExecutorLock.acquire
    calls: list[int] = []

    def waiting_acquire(self: PgExecutorLock) -> None:
        calls.append(1)
        if len(calls) > 1:
            log(out, f"relocking {os.getpid()}")
            while not (out / "relock").exists():  # runs in a worker thread
                time.sleep(0.01)
        acquire(self)

    PgExecutorLock.acquire = waiting_acquire  # type: ignore[method-assign]


def main() -> None:
    db, out, name, n = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    if sys.argv[5:] == ["hold"]:
        hold_relocking(out)
    anyio.run(serve, db, out, name, n)


if __name__ == "__main__":
    main()

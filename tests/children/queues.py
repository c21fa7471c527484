"""Child program for tests/test_queues.py: serve a shared queue until told to stop.

``python -m tests.children.queues serve DB OUT``: a runtime with queue ``shared``
(concurrency 3) and workflow ``job``; touches ``OUT/ready-<pid>`` once launched and shuts
down cleanly when ``OUT/stop`` exists. Each body marks itself running with a file
``OUT/run/<pid>-<workflow>`` while it runs; under an ``flock`` it first counts the marks
of live processes (a SIGKILLed child's marks are stale, its bodies dead) and appends a
line to ``OUT/over`` if three were already running, then appends its count to
``OUT/seen``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio

import litewf
from tests import procs

CONCURRENCY = 3


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A SIGKILLed child that the test has not reaped yet is a zombie: dead for us.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    with open(out / "lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def enter(out: Path, workflow_id: str) -> Path:
    run = out / "run"
    mark = run / f"{os.getpid()}-{workflow_id}"
    with locked(out):
        live = [p for p in run.iterdir() if alive(int(p.name.split("-", 1)[0]))]
        with open(out / "seen", "a", encoding="utf-8") as f:
            f.write(f"{len(live) + 1}\n")
        if len(live) >= CONCURRENCY:
            with open(out / "over", "a", encoding="utf-8") as f:
                f.write(f"{workflow_id} {sorted(p.name for p in live)}\n")
        mark.touch()
    return mark


def build(db: str, out: Path) -> litewf.Runtime:
    rt = litewf.Runtime(db, recovery_interval=0.1)
    rt.queue("shared", concurrency=CONCURRENCY)

    @rt.workflow(name="job")
    async def job(i: int) -> int:
        workflow_id = rt.current_workflow_id()
        assert workflow_id is not None
        mark = enter(out, workflow_id)
        try:
            await anyio.sleep(random.uniform(0.02, 0.08))
        finally:
            with locked(out):
                mark.unlink()
        return i * i

    return rt


async def serve(db: str, out: Path) -> None:
    rt = build(db, out)
    async with rt:
        procs.touch(out / f"ready-{os.getpid()}")
        while not (out / "stop").exists():  # noqa: ASYNC110 - a stat per tick
            await anyio.sleep(0.02)


def main() -> None:
    mode, db, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    assert mode == "serve"
    anyio.run(serve, db, out)


if __name__ == "__main__":
    main()

"""Child program for tests/test_schedules.py: serve a shared schedule for a while.

``python -m tests.children.schedules share DB OUT SECONDS``: a runtime whose workflow
``beat`` is scheduled every second; each run appends its workflow ID to
``OUT/ran-<pid>`` (one line, flushed). Shuts down cleanly after SECONDS.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

import anyio

import litewf


async def share(db: str, out: Path, seconds: float) -> None:
    rt = litewf.Runtime(db, recovery_interval=0.1)
    ran = out / f"ran-{os.getpid()}"

    @rt.step()
    def mark(workflow_id: str) -> None:
        with open(ran, "a", encoding="utf-8") as f:
            f.write(workflow_id + "\n")

    @rt.scheduled(every=timedelta(seconds=1), missed="all")
    @rt.workflow(name="beat")
    async def beat(scheduled_at: datetime) -> None:
        workflow_id = rt.current_workflow_id()
        assert workflow_id is not None and scheduled_at.tzinfo is not None
        await mark(workflow_id)

    async with rt:
        await anyio.sleep(seconds)


if __name__ == "__main__":
    command, db, out, seconds = sys.argv[1:]
    assert command == "share"
    anyio.run(share, db, Path(out), float(seconds))

"""A process that starts a workflow with an hour's timeout and waits to be SIGKILLed.

``python -m tests.children.deadlines DB WORKFLOW_ID`` starts ``deadlines.waiter`` (it waits
in ``recv``) with ``timeout=3600``, then creates ``DB.ready`` once the workflow waits.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

import litewf
from tests import procs


async def main(db: str, workflow_id: str) -> None:
    rt = litewf.Runtime(db)
    waiting = anyio.Event()

    @rt.workflow(name="deadlines.waiter")
    async def waiter() -> None:
        waiting.set()
        await rt.recv("never", timeout=7200)

    async with rt:
        await rt.start_workflow(waiter, workflow_id=workflow_id, timeout=3600)
        await waiting.wait()
        procs.touch(Path(db).with_suffix(".ready"))
        await anyio.sleep_forever()  # until SIGKILLed


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])

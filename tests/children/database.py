"""Child programs for the storage tests, selected by ``argv[1]``.

Modes (all paths absolute; progress is reported by creating files the test watches):

``writer DB FOLDER PREFIX COUNT SINK_ID``
    Launch a Runtime, touch ``ready-PREFIX``, wait for ``go``, then as fast as possible
    start COUNT one-step workflows ``PREFIX-i`` and send ``"PREFIX-i"`` to ``SINK_ID`` on topic
    ``n`` after each start; wait for every result and print ``ok PREFIX``. Each step
    execution appends a line to ``steps-PREFIX``.
``unclosed DB``
    Launch a Runtime, start the ``db.unclosed_waiter`` workflow as ``left`` (it waits
    for a message on topic ``go``), print ``launched`` and return from main without
    shutting down. Warnings are shown as Python shows them with ``-W default``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import anyio

import litewf
from tests.procs import touch, wait_for_file

#: Topic of the messages the writers send to the sink workflow.
SINK_TOPIC = "n"
#: Name of the workflow the ``unclosed`` child leaves running.
UNCLOSED_WORKFLOW = "db.unclosed_waiter"


def register_waiter(rt: litewf.Runtime) -> litewf.Workflow[[], str]:
    """The workflow ``unclosed`` leaves PENDING; the test registers it to recover it."""

    @rt.workflow(name=UNCLOSED_WORKFLOW)
    async def waiter() -> str:
        message: str = await rt.recv("go", timeout=60)
        return f"got {message}"

    return waiter


async def writer(db: str, folder: str, prefix: str, count: int, sink_id: str) -> None:
    rt = litewf.Runtime(db, poll_interval=0.01, recovery_interval=0.5)
    log = Path(folder, f"steps-{prefix}")

    @rt.step(name="db.record")
    def record(tag: str) -> str:
        with log.open("a") as f:
            f.write(f"{tag}\n")
        return tag.upper()

    @rt.workflow(name="db.one_step")
    async def one_step(tag: str) -> str:
        return await record(tag)

    async with rt:
        touch(Path(folder, f"ready-{prefix}"))
        await wait_for_file(Path(folder, "go"))
        handles = []
        for i in range(count):
            tag = f"{prefix}-{i}"
            handles.append(await rt.start_workflow(one_step, tag, workflow_id=tag))
            await rt.send(sink_id, tag, topic=SINK_TOPIC)
        for i, handle in enumerate(handles):
            result = await handle.get_result(timeout=60)
            assert result == f"{prefix}-{i}".upper(), result
    print(f"ok {prefix}", flush=True)


async def unclosed(db: str) -> None:
    rt = litewf.Runtime(db, poll_interval=0.01)
    waiter = register_waiter(rt)
    await rt.launch()
    await rt.start_workflow(waiter, workflow_id="left")
    print("launched", flush=True)


def main(argv: list[str]) -> None:
    mode, db, *rest = argv
    if mode == "writer":
        folder, prefix, count, sink_id = rest
        anyio.run(writer, db, folder, prefix, int(count), sink_id)
    elif mode == "unclosed":
        warnings.simplefilter("default")  # as `python -W default`
        anyio.run(unclosed, db)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

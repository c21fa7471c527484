"""Child programs for the event, message and waking tests, selected by ``argv[1]``.

Modes (all paths absolute; the child reports progress by creating files in ``folder``):

``serve DB FOLDER NAME WID``
    Launch a Runtime, start workflow ``NAME`` (one of ``register``'s) as ``WID`` with
    ``FOLDER`` as its argument, touch ``started``, print its result as JSON.
``client_send DB FOLDER WID TOPIC MESSAGE``
    ``Client.send`` one message, touch ``sent``, then wait to be killed.
``sender DB FOLDER WID PREFIX N``
    Open a Client, touch ``ready-PREFIX``, wait for ``go``, send N messages
    ``{"id": "PREFIX-i"}`` on topic ``burst``.
``pinger DB WID N``
    N round trips: send ``{"i": i, "t": time.time()}`` on topic ``ping``, wait for the
    workflow's event ``ack-i``.
``client_ops DB WID BLOCKER_ID``
    Exercise every Client call against a database a Runtime in another process serves;
    print what it saw as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import anyio

import litewf
from tests.procs import touch, wait_for_file

#: What every ``recv``/``get_event`` in these children waits at most (never reached).
LONG = 60.0


def append(path: Path, line: str) -> None:
    """Append one line to a log file (a line per execution / delivery)."""
    with path.open("a") as f:
        f.write(f"{line}\n")


def lines(path: Path) -> list[str]:
    """The lines of a log file, or [] if nothing was ever written."""
    return path.read_text().splitlines() if path.exists() else []


def register(rt: litewf.Runtime) -> dict[str, litewf.Workflow[..., Any]]:
    """Register the shared workflows on ``rt`` under stable names (children and tests)."""

    @rt.step(name="comms.deliver")
    def deliver(folder: str, message: str) -> None:
        append(Path(folder, "deliveries"), message)

    @rt.workflow(name="comms.set_after_go")
    async def set_after_go(folder: str) -> str:
        go: str = await rt.recv("go", timeout=LONG)
        await rt.set_event("k", go)
        return go

    @rt.workflow(name="comms.set_then_hang")
    async def set_then_hang(folder: str) -> None:
        await rt.set_event("k", "durable")
        touch(Path(folder, "set"))
        await rt.recv("never", timeout=LONG)

    @rt.workflow(name="comms.consumer")
    async def consumer(folder: str) -> list[str]:
        append(Path(folder, "runs"), "run")
        first: str = await rt.recv("q", timeout=LONG)
        await deliver(folder, first)
        touch(Path(folder, "consumed-1"))  # the step's record has committed by now
        second: str = await rt.recv("q", timeout=LONG)
        await deliver(folder, second)
        return [first, second]

    return {wf.name: wf for wf in (set_after_go, set_then_hang, consumer)}


async def serve(db: str, folder: str, name: str, workflow_id: str) -> None:
    rt = litewf.Runtime(db)
    workflows = register(rt)
    async with rt:
        handle = await rt.start_workflow(workflows[name], folder, workflow_id=workflow_id)
        touch(Path(folder, "started"))
        print(json.dumps(await handle.get_result(timeout=LONG)))


async def client_send(db: str, folder: str, workflow_id: str, topic: str, message: str) -> None:
    async with litewf.Client(db) as client:
        await client.send(workflow_id, message, topic)
        touch(Path(folder, "sent"))
        await anyio.sleep_forever()


async def sender(db: str, folder: str, workflow_id: str, prefix: str, count: str) -> None:
    async with litewf.Client(db) as client:
        touch(Path(folder, f"ready-{prefix}"))
        await wait_for_file(Path(folder, "go"))  # a start line: the senders really overlap
        for i in range(int(count)):
            await client.send(workflow_id, {"id": f"{prefix}-{i}"}, "burst")


async def pinger(db: str, workflow_id: str, count: str) -> None:
    async with litewf.Client(db) as client:
        for i in range(int(count)):
            await client.send(workflow_id, {"i": i, "t": time.time()}, "ping")
            if await client.get_event(workflow_id, f"ack-{i}", timeout=LONG) is None:
                raise SystemExit(f"no ack-{i}")


async def _error_name(call: Any) -> str | None:
    try:
        await call
    except litewf.LitewfError as exc:
        return type(exc).__name__
    return None


async def client_ops(db: str, workflow_id: str, blocker_id: str) -> None:
    async with litewf.Client(db) as client:
        greeting = await client.get_event(workflow_id, "greeting", timeout=LONG)
        await client.send(workflow_id, "abc", "in")
        handle = await client.retrieve_workflow(workflow_id)
        result = await handle.get_result(timeout=LONG)
        status = await handle.get_status()
        events = await client.get_all_events(workflow_id)
        await client.cancel_workflow(blocker_id)
        blocker = await (await client.retrieve_workflow(blocker_id)).get_status()
        listed = [(s.workflow_id, s.status.value) for s in await client.list_workflows()]
        pending = [s.workflow_id for s in await client.list_workflows(status="PENDING")]
        seen = {
            "greeting": greeting,
            "result": result,
            "status": status.status.value,
            "events": events,
            "blocker": blocker.status.value,
            "listed": listed,
            "pending": pending,
            "missing_retrieve": await _error_name(client.retrieve_workflow("no-such-id")),
            "missing_send": await _error_name(client.send("no-such-id", 1)),
            "missing_event": await _error_name(client.get_event("no-such-id", "k", timeout=LONG)),
        }
        print(json.dumps(seen))


MODES: dict[str, Any] = {
    "serve": serve,
    "client_send": client_send,
    "sender": sender,
    "pinger": pinger,
    "client_ops": client_ops,
}


def main() -> None:
    mode, *args = sys.argv[1:]
    anyio.run(MODES[mode], *args, backend="asyncio")


if __name__ == "__main__":
    main()

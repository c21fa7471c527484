"""Child program for the management and command-line tests: an application serving workflows.

``serve DB FOLDER`` launches a Runtime with the workflows of ``register`` and starts
``order-1`` (a tour of every kind of operation, ending in a ``recv`` that waits),
``fail-1`` (fails in a step) and ``quick-1`` (returns at once). Once the last two have
finished it touches ``FOLDER/started``. When ``order-1`` ends (a message arrived, or it
was cancelled, or deleted) it checks that nothing in this process still waits, prints
``{"result": ..., "idle": ...}`` as JSON and exits.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio

import litewf
from litewf import testing
from tests.procs import touch

#: Long enough never to be reached: a test that ends sooner proves a wake-up or a cancel.
LONG = 600.0


def register(rt: litewf.Runtime) -> dict[str, litewf.Workflow[..., Any]]:
    """Register the workflows under stable names (used by the child and by tests)."""

    @rt.step(name="ops.reserve")
    async def reserve(order_id: str) -> str:
        return f"https://pay.example/{order_id}"

    @rt.step(name="ops.charge")
    def charge(order_id: str) -> None:
        raise ValueError(f"card declined for {order_id}")

    @rt.workflow(name="ops.notify")
    async def notify(order_id: str) -> str:
        return f"notified {order_id}"

    @rt.workflow(name="ops.order")
    async def order(order_id: str) -> str:
        url = await reserve(order_id)
        await rt.sleep(0)
        await rt.set_event("checkout_url", url)
        await notify(order_id)  # a child workflow
        workflow_id = rt.current_workflow_id()
        assert workflow_id is not None
        await rt.send(workflow_id, {"note": "for the audit queue"}, topic="audit")
        await rt.get_event(workflow_id, "checkout_url", timeout=1)
        paid: dict[str, Any] = await rt.recv("checkout_complete", timeout=LONG)
        await rt.set_event("paid", paid)
        return "paid" if paid.get("ok") else "declined"

    @rt.workflow(name="ops.fail")
    async def fail(order_id: str) -> None:
        await charge(order_id)

    @rt.workflow(name="ops.quick")
    async def quick(n: int) -> int:
        return n * 2

    return {wf.name: wf for wf in (notify, order, fail, quick)}


async def serve(db: str, folder: str) -> None:
    rt = litewf.Runtime(db, executor_id="app-1")
    workflows = register(rt)
    async with rt:
        tour = await rt.start_workflow(workflows["ops.order"], "o-1", workflow_id="order-1")
        failed = await rt.start_workflow(workflows["ops.fail"], "o-2", workflow_id="fail-1")
        quick = await rt.start_workflow(workflows["ops.quick"], 21, workflow_id="quick-1")
        with anyio.fail_after(60):
            await quick.get_result()
            try:
                await failed.get_result()
            except ValueError:
                pass
        touch(Path(folder, "started"))
        result: Any
        try:
            result = await tour.get_result(timeout=LONG)
        except litewf.WorkflowCancelledError:
            result = "CANCELLED"
        except litewf.WorkflowNotFoundError:
            result = "GONE"  # deleted by garbage collection
        # A cancelled recv must stop waiting here too, not just show CANCELLED in the table.
        idle = False
        with anyio.move_on_after(30):
            while True:
                if testing.waiting(rt) == 0:
                    idle = True
                    break
                await anyio.sleep(0.01)
        print(json.dumps({"result": result, "idle": idle}))


def main() -> None:
    mode, *args = sys.argv[1:]
    modes: dict[str, Any] = {"serve": serve}
    anyio.run(modes[mode], *args, backend="asyncio")


if __name__ == "__main__":
    main()

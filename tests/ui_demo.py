"""A database to look at in the dashboard's tests: finished, failed, waiting and
streaming workflows, a tree of children, events, queued messages; hostile text inside."""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import anyio

import litewf

#: Stored text that would run as script if a page failed to escape it.
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2">\'"'


class Demo(NamedTuple):
    rt: litewf.Runtime
    order: litewf.Workflow[[str, int], object]
    waiter: litewf.Workflow[[str], object]
    streamer: litewf.Workflow[[], int]


def demo_runtime(path: object) -> Demo:
    """A runtime with the demo's workflows (``waiter`` and ``streamer`` wait on messages)."""
    rt = litewf.Runtime(path)  # type: ignore[arg-type]

    @rt.step(name="demo.reserve")
    async def reserve(order: str) -> str:
        await anyio.sleep(0.03)
        return f"reserved {order}"

    @rt.step(name="demo.charge")
    async def charge(order: str, cents: int) -> dict[str, object]:
        await anyio.sleep(0.05)
        if cents < 0:
            raise ValueError(f"cannot charge {cents} cents")
        return {"order": order, "charged": cents}

    @rt.workflow(name="demo.ship")
    async def ship(order: str) -> str:
        await rt.set_event("carrier", "DHL")
        return f"shipped {order}"

    @rt.workflow(name="demo.order")
    async def order(order: str, cents: int) -> object:
        await reserve(order)
        await rt.set_event("stage", "reserved")
        paid = await charge(order, cents)
        await rt.write_stream("log", f"charged {cents}")
        await rt.close_stream("log")
        await ship(order)
        return paid

    @rt.workflow(name="demo.waiter")
    async def waiter(note: str) -> object:
        await rt.set_event("note", note)
        return await rt.recv("go", timeout=3600)

    @rt.workflow(name="demo.streamer")
    async def streamer() -> int:
        n = 0
        while True:
            got = await rt.recv("tick", timeout=3600)
            if got is None or got == "stop":
                await rt.close_stream("ticks")
                return n
            n += 1
            await rt.write_stream("ticks", got)

    return Demo(rt, order, waiter, streamer)


async def fill(path: object) -> None:
    """Store the demo's workflows; leaves ``waiter-1`` and ``streamer-1`` waiting."""
    demo = demo_runtime(path)
    rt = demo.rt
    async with rt:
        for i in range(3):
            h = await rt.start_workflow(demo.order, f"o-{i}", 100 * i + 5, workflow_id=f"order-{i}")
            await h.get_result()
        failed = await rt.start_workflow(demo.order, "o-bad", -1, workflow_id="order-bad")
        with contextlib.suppress(ValueError):
            await failed.get_result()
        await rt.start_workflow(demo.waiter, HOSTILE, workflow_id="waiter-1")
        await rt.start_workflow(demo.streamer, workflow_id="streamer-1")
        await rt.send("waiter-1", {"html": HOSTILE}, topic="later")
        hostile = await rt.start_workflow(demo.waiter, HOSTILE, workflow_id=HOSTILE)
        await rt.send(hostile.workflow_id, "go", topic="go")
        await hostile.get_result()

"""``litewf bench``'s ``wait-first`` scenario: how soon a message wakes a workflow that
waits for it in ``recv``, and in a ``wait_first`` over three things (two messages and an
event, the message sent named last), measured the same way in the same process."""

from __future__ import annotations

import random
import time

import anyio

from . import testing
from ._runtime import Runtime

__all__ = ["HOW", "wake_times"]

#: The waits compared: plain ``recv``, and ``wait_first``.
HOW = ("recv", "wait_first")


async def wake_times(
    rt: Runtime, how: str, n: int, gap: tuple[float, float] | None = None
) -> list[float]:
    """On a launched ``rt``: ``n`` times, seconds from just before a ``send`` until the
    workflow waiting in ``how`` (one of ``HOW``) has the message in hand; with ``gap``,
    each send comes after an idle pause drawn from it (seconds), as a webhook would."""
    woke: list[float] = []
    arrived = [anyio.Event()]

    @rt.workflow(name=f"bench.wake.{how}{'.idle' if gap else ''}")
    async def waiter(count: int) -> None:
        me = rt.current_workflow_id()
        assert me is not None
        for _ in range(count):
            if how == "recv":
                await rt.recv("paid", timeout=60)
            else:
                await rt.wait_first(
                    cancelled=rt.message("cancel"),
                    shipped=rt.event(me, "shipped"),
                    paid=rt.message("paid"),
                    timeout=60,
                )
            woke.append(time.perf_counter())
            arrived[0].set()

    handle = await rt.start_workflow(waiter, n)
    times = []
    for i in range(n):
        while testing.waiting(rt) < 1:  # noqa: ASYNC110 - polling a counter, outside the timing
            await anyio.sleep(0.001)
        if gap is not None:
            await anyio.sleep(random.uniform(*gap))
        arrived[0] = anyio.Event()
        sent = time.perf_counter()
        await rt.send(handle.workflow_id, i, topic="paid")
        await arrived[0].wait()
        times.append(woke[i] - sent)
    await handle.get_result()
    return times

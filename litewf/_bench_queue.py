"""``litewf bench``'s ``queue`` scenario: throughput of one-step workflows through a queue
of concurrency 10, and how soon an enqueued workflow starts when a slot is free."""

from __future__ import annotations

import time

from ._runtime import Runtime

__all__ = ["queue_times"]

CONCURRENCY = 10


async def queue_times(rt: Runtime, n: int) -> tuple[str, float, str, list[float]]:
    """On a launched ``rt``: workflows per second for ``n`` enqueued at once, and ``n``
    (at most 200) times from just before an ``enqueue`` until its body runs; each after
    what it measures."""
    queue = rt.queue("bench.queue", concurrency=CONCURRENCY)
    began: list[float] = []

    @rt.step(name="bench.queue.one")
    async def one(i: int) -> int:
        return i

    @rt.workflow(name="bench.queue.job")
    async def job(i: int) -> int:
        return await one(i)

    @rt.workflow(name="bench.queue.mark")
    async def mark() -> None:
        began.append(time.perf_counter())

    started = time.perf_counter()
    handles = [await queue.enqueue(job, i) for i in range(n)]
    for handle in handles:
        await handle.get_result()
    rate = n / (time.perf_counter() - started)
    times = []
    for _ in range(min(n, 200)):
        sent = time.perf_counter()
        await (await queue.enqueue(mark)).get_result()
        times.append(began[-1] - sent)
    through = f"{n} one-step workflows through a queue, concurrency {CONCURRENCY}"
    return through, rate, "enqueue -> running, a slot free, same process", times

"""``litewf bench``'s ``queue`` scenario: throughput of one-step workflows through a queue
of concurrency 100, and how soon an enqueued workflow starts when a slot is free, enqueued
in the same process and from a Client in another."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio

from ._client import Client
from ._runtime import Runtime

__all__ = ["QUEUE", "queue_times"]

QUEUE = "bench.queue"
CONCURRENCY = 100
#: Enqueuers at once while measuring throughput (their enqueues share commits).
ENQUEUERS = 100

#: Runs a bench child ``enqueue-marks PATH N`` and returns its stdout (``_bench._run_child``).
ChildRunner = Callable[[str, str, str], Awaitable[str]]


async def queue_times(
    rt: Runtime, path: str, n: int, marks: int, child: ChildRunner
) -> tuple[str, float, list[tuple[str, list[float]]]]:
    """On a launched ``rt``: workflows per second for ``n`` enqueued by ``ENQUEUERS`` tasks
    at once, then ``marks`` times from an ``enqueue`` until the workflow's body runs, from
    this process and from another; each enqueue after the previous one finished."""
    queue = rt.queue(QUEUE, concurrency=CONCURRENCY)
    began: dict[int, float] = {}

    @rt.step(name="bench.queue.one")
    async def one(i: int) -> int:
        return i

    @rt.workflow(name="bench.queue.job")
    async def job(i: int) -> int:
        return await one(i)

    @rt.workflow(name="bench.queue.mark")
    async def mark(i: int) -> None:
        began[i] = time.time()

    started = time.perf_counter()

    async def enqueuer(first: int) -> None:
        for i in range(first, n, ENQUEUERS):
            await (await queue.enqueue(job, i)).get_result()

    async with anyio.create_task_group() as tg:
        for first in range(min(ENQUEUERS, n)):
            tg.start_soon(enqueuer, first)
    rate = n / (time.perf_counter() - started)
    here = []
    for i in range(marks):
        sent = time.time()
        await (await queue.enqueue(mark, i)).get_result()
        here.append(began[i] - sent)
    began.clear()
    sent_there = [float(line) for line in (await child("enqueue-marks", path, str(marks))).split()]
    there = [began[i] - sent for i, sent in enumerate(sent_there)]
    through = f"{n} one-step workflows through a queue, concurrency {CONCURRENCY}"
    return (
        through,
        rate,
        [
            ("enqueue -> running, a slot free, same process", here),
            ("Client.enqueue in another process -> running", there),
        ],
    )


async def child_enqueue_marks(path: str, n: str) -> None:
    """In a bench child: enqueue ``bench.queue.mark(i)`` ``n`` times as a Client, each
    after the previous one finished; print each enqueue's wall-clock time."""
    async with Client(path) as client:
        for i in range(int(n)):
            sent = time.time()
            handle = await client.enqueue(QUEUE, "bench.queue.mark", i)
            await handle.get_result(timeout=60)
            print(sent)

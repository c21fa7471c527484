"""``litewf bench --scenario scale``: how the runtime's costs grow with the load.

- one-step workflows/s at ``Sizes.concurrent`` (10,000) concurrent, against the same at
  ``Sizes.workflows`` (1,000) in the same run;
- one workflow of ``Sizes.steps`` sequential steps: steps/s (against the hot commit rate);
- memory per waiting workflow: the growth of the process's resident memory while
  ``Sizes.waiting`` workflows wait in ``recv``, divided by their number;
- a file holding ``Sizes.finished`` finished workflows (written straight through the
  storage functions, as ``limits`` writes them, not run): sequential workflows/s and
  send -> recv against an empty file, ``list_workflows(status=...)``, and
  ``garbage_collect`` of them all: its longest write transaction (from ``BEGIN
  IMMEDIATE`` to ``COMMIT``, seen through the database's statement trace hook) and the
  latency of a ``send`` made every 5 ms meanwhile.
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import anyio

from . import testing
from ._bench_figures import Figure, Sizes, latency, ms
from ._bench_limits import one_step_workflows, open_plain, transaction
from ._bench_wake import wake_times
from ._runtime import Runtime
from ._serialization import JsonSerializer, dumps_arguments
from ._types import Status

__all__ = ["one_step_rate", "scale"]

#: Workflows per transaction when filling a file with finished workflows.
_FILL_BATCH = 10_000
#: Pause between the sends made while garbage collection runs.
_SEND_EVERY = 0.005

Runtimes = Callable[[Path], Runtime]


async def one_step_rate(rt: Runtime, n: int, concurrent: bool) -> tuple[float, list[float], float]:
    """On a fresh, not yet launched ``rt``: run ``n`` one-step workflows, all at once or one
    after the other; their rate (workflows/s), each one's latency (s), µs of CPU each."""

    @rt.step(name="bench.one")
    async def one(i: int) -> int:
        return i

    @rt.workflow(name="bench.workflow")
    async def workflow(i: int) -> int:
        return await one(i)

    latencies: list[float] = []

    async def run(i: int) -> None:
        t = time.perf_counter()
        handle = await rt.start_workflow(workflow, i)
        await handle.get_result()
        latencies.append(time.perf_counter() - t)

    async with rt:
        cpu, started = time.process_time(), time.perf_counter()
        if concurrent:
            async with anyio.create_task_group() as tg:
                for i in range(n):
                    tg.start_soon(run, i)
        else:
            for i in range(n):
                await run(i)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return n / elapsed, latencies, cpu / n * 1e6


def _progress(text: str) -> None:
    print(f"  ... {text}", file=sys.stderr, flush=True)


async def scale(fresh_path: Callable[[], Path], runtime: Runtimes, sizes: Sizes) -> list[Figure]:
    """The ``scale`` scenario's figures (each part on a fresh file)."""
    small, large = sizes.workflows, sizes.concurrent
    base, _, _ = await one_step_rate(runtime(fresh_path()), small, concurrent=True)
    _progress(f"{large} concurrent one-step workflows")
    rate, lat, _ = await one_step_rate(runtime(fresh_path()), large, concurrent=True)
    p50, p99 = ms(lat)
    figures = [
        Figure(
            "scale",
            f"{small} one-step, concurrency {small}",
            base,
            "workflows/s",
            None,
            None,
            "raw-sql",
        ),
        Figure(
            "scale",
            f"{large} one-step, concurrency {large}",
            rate,
            "workflows/s",
            p50,
            p99,
            f"{small} concurrent",
            rate / base * 100,
        ),
    ]
    _progress(f"one workflow of {sizes.steps} steps")
    figures.append(await _steps(runtime(fresh_path()), sizes.steps))
    _progress(f"{sizes.waiting} workflows waiting in recv")
    figures += await _memory(runtime(fresh_path()), sizes.waiting)
    figures += await _full_file(fresh_path, runtime, sizes)
    return figures


async def _steps(rt: Runtime, n: int) -> Figure:
    @rt.step(name="bench.step")
    async def step(i: int) -> int:
        return i

    @rt.workflow(name="bench.steps")
    async def steps(count: int) -> int:
        for i in range(count):
            await step(i)
        return count

    async with rt:
        t = time.perf_counter()
        await steps(n)
        elapsed = time.perf_counter() - t
    return Figure(
        "scale",
        f"one workflow of {n} sequential steps",
        n / elapsed,
        "steps/s",
        bound="hot-commits",
    )


def _rss_kib() -> float:
    """The process's resident memory now (Linux), else its peak so far, in KiB."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024
    except OSError:
        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


async def _memory(rt: Runtime, n: int) -> list[Figure]:
    @rt.workflow(name="bench.waiting")
    async def waiting() -> None:
        await rt.recv(timeout=3600)

    async def start(count: int) -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(rt.start_workflow, waiting)

    async def settle(target: int) -> None:
        # Counting the waits costs O(waits): poll seldom, not to measure the polling.
        while testing.waiting(rt) < target:  # noqa: ASYNC110 - polling a counter
            await anyio.sleep(0.25)

    async with rt:
        await start(100)  # code paths warmed, caches filled: not counted
        await settle(100)
        gc.collect()
        before = _rss_kib()
        rates = []
        for done in range(0, n, 1000):
            t = time.perf_counter()
            await start(min(1000, n - done))
            rates.append(min(1000, n - done) / (time.perf_counter() - t))
        await settle(100 + n)
        gc.collect()
        grown = _rss_kib() - before
        _progress(f"{n} waiting: shutting down")
    last = f"start_workflow, the last {min(n, 1000)} of {n} started (the rest waiting)"
    return [
        Figure("scale", f"{n} workflows waiting in recv", grown / n, "KiB each (RSS)"),
        Figure(
            "scale",
            last,
            rates[-1],
            "workflows/s",
            None,
            None,
            "the first ones",
            rates[-1] / rates[0] * 100,
        ),
    ]


def _fill(path: Path, n: int) -> None:
    """``n`` finished one-step workflows in ``path``, written by the storage functions."""
    tx = open_plain(path, synchronous="OFF")  # filling is not measured
    inputs = dumps_arguments(JsonSerializer(), "bench.workflow", (1,), {})
    output = JsonSerializer().dumps(1)
    for start in range(0, n, _FILL_BATCH):
        ids = [str(uuid.uuid4()) for _ in range(min(_FILL_BATCH, n - start))]
        transaction(tx.conn, one_step_workflows, tx, ids, inputs, output)
    tx.conn.close()


#: Alternating rounds on the empty and the full file (the machine's load drifts).
_ROUNDS = 3


async def _compare(
    paths: tuple[Path, Path], runtime: Runtimes, sizes: Sizes
) -> list[tuple[float, list[float]]]:
    """For each of ``paths``: the median rate of sequential one-step workflows, and the
    times of send -> woken in recv, measured in alternating rounds."""
    rates: list[list[float]] = [[], []]
    times: list[list[float]] = [[], []]
    n, trips = max(1, sizes.workflows // _ROUNDS), max(1, sizes.round_trips // _ROUNDS)
    for _ in range(_ROUNDS):
        for i, path in enumerate(paths):
            rate, _, _ = await one_step_rate(runtime(path), n, concurrent=False)
            rates[i].append(rate)
            async with runtime(path) as rt:
                times[i] += await wake_times(rt, "recv", trips)
    return [(statistics.median(rates[i]), times[i]) for i in range(2)]


async def _full_file(
    fresh_path: Callable[[], Path], runtime: Runtimes, sizes: Sizes
) -> list[Figure]:
    """The figures of a file with ``sizes.finished`` finished workflows, against an empty
    file; then garbage collection of those workflows."""
    n, path, empty = sizes.finished, fresh_path(), fresh_path()
    _progress(f"writing {n} finished workflows")
    t = time.perf_counter()
    await anyio.to_thread.run_sync(_fill, path, n)
    filled = time.time()
    _progress(f"written in {time.perf_counter() - t:.1f} s; measuring it and an empty file")
    (empty_rate, empty_times), (rate, times) = await _compare((empty, path), runtime, sizes)
    p50, p99 = ms(times)
    empty_p50, _ = ms(empty_times)
    sequential = f"one-step, one after the other, {n} finished in the file"
    figures = [
        Figure(
            "scale",
            sequential,
            rate,
            "workflows/s",
            None,
            None,
            "empty file",
            rate / empty_rate * 100,
        ),
        Figure(
            "scale",
            f"send -> woken in recv, {n} finished in the file",
            p50,
            "ms (p50)",
            p50,
            p99,
            "empty file",
            p50 / empty_p50,
        ),
    ]
    async with runtime(path) as rt:
        listed = []
        for _ in range(max(10, sizes.round_trips // 4)):
            t = time.perf_counter()
            await rt.list_workflows(status=Status.SUCCESS, limit=100)
            listed.append(time.perf_counter() - t)
        figures.append(
            latency(
                "scale", f"list_workflows(status=SUCCESS, limit=100), {n} in the file", listed, None
            )
        )
        figures += await _collect(rt, n, time.time() - filled)
    return figures


async def _collect(rt: Runtime, n: int, older_than: float) -> list[Figure]:
    """``garbage_collect`` of the ``n`` workflows written before the last ``older_than``
    seconds, while a ``send`` every 5 ms feeds a workflow waiting in ``recv``."""
    holds: list[float] = []
    began: list[float] = []

    def trace(sql: str) -> None:  # in the database thread, before each statement runs
        if sql.startswith("BEGIN IMMEDIATE"):
            began[:] = [time.perf_counter()]
        elif sql == "COMMIT" and began:
            holds.append(time.perf_counter() - began.pop())

    @rt.workflow(name="bench.fed")
    async def fed() -> int:
        count = 0
        while await rt.recv(timeout=3600) != "stop":
            count += 1
        return count

    handle = await rt.start_workflow(fed)
    sends: list[float] = []
    collecting = True

    async def feed() -> None:
        while collecting:
            t = time.perf_counter()
            await rt.send(handle.workflow_id, 1)
            sends.append(time.perf_counter() - t)
            await anyio.sleep(_SEND_EVERY)

    await testing.backend(rt).db.trace(trace)
    async with anyio.create_task_group() as tg:
        tg.start_soon(feed)
        t = time.perf_counter()
        counts = await rt.garbage_collect(older_than=older_than)
        took = time.perf_counter() - t
        collecting = False
    await testing.backend(rt).db.trace(None)
    await rt.send(handle.workflow_id, "stop")
    await handle.get_result()
    p50, p99 = ms(sends)
    return [
        Figure("scale", f"garbage_collect of {counts.workflows} finished workflows", took, "s"),
        Figure("scale", "its longest write transaction (BEGIN to COMMIT)", max(holds) * 1000, "ms"),
        Figure(
            "scale", f"send every {_SEND_EVERY * 1000:.0f} ms meanwhile", p50, "ms (p50)", p50, p99
        ),
        Figure("scale", "the slowest of those sends", max(sends) * 1000, "ms"),
    ]

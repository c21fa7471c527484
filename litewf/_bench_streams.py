"""``litewf bench --scenario streams``: values from a workflow to a reader in another process.

A workflow here writes a stream; a ``Client`` in a child process follows it. Each value is
the writer's wall-clock time (``time.time()``: one clock for both processes on one machine)
taken right before its ``write_stream`` call, so the reader measures write -> read latency.
Writes from a step are group-committed (queued, and committed by one flush at a time while
the step goes on); the workflow's own writes are operations, each durable before it
returns. Registered by ``_bench``, kept apart so that each module stays small.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from ._client import Client
from ._runtime import Runtime
from ._types import Durability
from ._workflow import Workflow

__all__ = ["run"]

KEY = "tokens"
#: Pause between the latency run's writes, so that each finds the reader waiting.
PAUSE = 0.002


async def run(
    paths: Callable[[], Path], durability: Durability, values: int, samples: int
) -> tuple[list[tuple[str, float]], tuple[str, list[float]]]:
    """Each run on a fresh database (``paths()`` gives one): (measure, values/s) of
    ``values`` values written by a step and of ``values // 4`` written by the workflow
    itself (one commit each); and (measure, seconds of each) of ``samples`` paced writes
    from a step, for ``_bench`` to turn into its figures."""
    batched = await _transfer(paths(), durability, values, 0.0, in_step=True)
    alone = max(1, values // 4)
    one_by_one = await _transfer(paths(), durability, alone, 0.0, in_step=False)
    paced = await _transfer(paths(), durability, samples, PAUSE, in_step=True)
    to = "to a Client in another process"
    rates = [
        (f"{values} values from a step (group commit), {to}", _rate(batched)),
        (f"{alone} values from the workflow (one commit each), {to}", _rate(one_by_one)),
    ]
    return rates, ("write_stream in a step -> read_stream in another process", paced["latencies"])


def _rate(report: dict[str, Any]) -> float:
    """Values per second from the first write to the reader's seeing the last value."""
    return float(report["count"] / (report["last_seen"] - report["first_written"]))


def _writer(rt: Runtime) -> Workflow[[int, float, bool], int]:
    @rt.step(name="bench.produce")
    async def produce(n: int, pause: float) -> int:
        for _ in range(n):
            await rt.write_stream(KEY, time.time())
            if pause:
                await anyio.sleep(pause)
        return n

    @rt.workflow(name="bench.streamer")
    async def streamer(n: int, pause: float, in_step: bool) -> int:
        await rt.recv(timeout=60)  # from the reader: it is there
        if in_step:
            await produce(n, pause)
        else:
            for _ in range(n):
                await rt.write_stream(KEY, time.time())
        await rt.close_stream(KEY)
        return n

    return streamer


async def _transfer(
    path: Path, durability: Durability, n: int, pause: float, in_step: bool
) -> dict[str, Any]:
    """A workflow writes ``n`` values; a child process reads them."""
    rt = Runtime(path, durability=durability)
    streamer = _writer(rt)
    async with rt:
        handle = await rt.start_workflow(streamer, n, pause, in_step)
        code = "import litewf._bench_streams as b; b._child()"
        command = [sys.executable, "-c", code, str(path), handle.workflow_id]

        def child() -> subprocess.CompletedProcess[str]:
            return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)

        finished = await anyio.to_thread.run_sync(child)
        if finished.returncode != 0:
            raise RuntimeError(f"bench child (stream reader) failed:\n{finished.stderr}")
        await handle.get_result(timeout=60)
    report: dict[str, Any] = json.loads(finished.stdout)
    if report["count"] != n:
        raise RuntimeError(f"the reader saw {report['count']} values of {n}")
    return report


def _child() -> None:
    """The reader process: start the writer, follow its stream to the end, print a JSON
    report (count, first value written, when the last was seen, each latency)."""
    path, workflow_id = sys.argv[1:]
    anyio.run(_read, path, workflow_id)


async def _read(path: str, workflow_id: str) -> None:
    latencies: list[float] = []
    first = last = 0.0
    async with Client(path) as client:
        await client.send(workflow_id, "go")
        async for written in client.read_stream(workflow_id, KEY, timeout=60):
            last = time.time()
            first = first or written
            latencies.append(last - written)
    report = {"count": len(latencies), "first_written": first, "last_seen": last}
    print(json.dumps(report | {"latencies": latencies}))

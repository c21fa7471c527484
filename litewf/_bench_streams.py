"""``litewf bench --scenario streams``: values from workflows to a reader in another process.

Workflows here write streams; a ``Client`` in a child process follows them. Each value is
the writer's wall-clock time (``time.time()``: one clock for both processes on one machine)
taken right before its ``write_stream`` call, so the reader measures write -> read latency.
``write_stream`` returns once its value is durable, so one workflow's writes commit one at
a time; writes of several workflows at once share commits (group commit). Registered by
``_bench``, kept apart so that each module stays small.
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

__all__ = ["Row", "run"]

#: A figure as ``_bench.Figure`` takes it after the scenario name:
#: (measure, value, unit, p50 ms, p99 ms).
Row = tuple[str, float, str, float | None, float | None]

KEY = "tokens"
#: Workflows writing at once in the group-committed run.
WRITERS = 32
#: Pause between the latency run's writes, so that each finds the reader waiting.
PAUSE = 0.002


async def run(
    paths: Callable[[], Path], durability: Durability, values: int, samples: int
) -> list[Row]:
    """Three figures, each from a fresh database (``paths()`` gives one):
    ``values // 4`` values from one workflow, back to back; ``values`` values from
    ``WRITERS`` workflows at once; and the latency of ``samples`` paced writes."""
    one = max(1, values // 4)
    alone = await _transfer(paths(), durability, 1, one, 0.0)
    per = max(1, -(-values // WRITERS))
    shared = await _transfer(paths(), durability, WRITERS, per, 0.0)
    paced = await _transfer(paths(), durability, 1, samples, PAUSE)
    ordered = sorted(paced["latencies"])
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    to = "to a Client in another process"
    return [
        (
            f"{one} values from one workflow, back to back, {to}",
            _rate(alone),
            "values/s",
            None,
            None,
        ),
        (
            f"{per * WRITERS} values from {WRITERS} workflows at once (group commit), {to}",
            _rate(shared),
            "values/s",
            None,
            None,
        ),
        ("write_stream -> read_stream in another process", p50, "ms (p50)", p50, p99),
    ]


def _rate(report: dict[str, Any]) -> float:
    """Values per second from the first write to the reader's seeing the last value."""
    return float(report["count"] / (report["last_seen"] - report["first_written"]))


def _writer(rt: Runtime) -> Workflow[[int, float], int]:
    @rt.workflow(name="bench.streamer")
    async def streamer(n: int, pause: float) -> int:
        await rt.recv(timeout=60)  # from the reader: it is there
        for _ in range(n):
            await rt.write_stream(KEY, time.time())
            if pause:
                await anyio.sleep(pause)  # not recorded: the benchmark's pacing
        await rt.close_stream(KEY)
        return n

    return streamer


async def _transfer(
    path: Path, durability: Durability, writers: int, n: int, pause: float
) -> dict[str, Any]:
    """``writers`` workflows write ``n`` values each; a child process reads them all."""
    rt = Runtime(path, durability=durability)
    streamer = _writer(rt)
    async with rt:
        handles = [await rt.start_workflow(streamer, n, pause) for _ in range(writers)]
        ids = [h.workflow_id for h in handles]
        code = "import litewf._bench_streams as b; b._child()"
        command = [sys.executable, "-c", code, str(path), *ids]

        def child() -> subprocess.CompletedProcess[str]:
            return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)

        finished = await anyio.to_thread.run_sync(child)
        if finished.returncode != 0:
            raise RuntimeError(f"bench child (stream reader) failed:\n{finished.stderr}")
        for handle in handles:
            await handle.get_result(timeout=60)
    report: dict[str, Any] = json.loads(finished.stdout)
    if report["count"] != n * writers:
        raise RuntimeError(f"the reader saw {report['count']} values of {n * writers}")
    return report


def _child() -> None:
    """The reader process: start the writers, follow their streams to the end, print a
    JSON report (count, first value written, when the last was seen, each latency)."""
    path, *workflow_ids = sys.argv[1:]
    anyio.run(_read, path, workflow_ids)


async def _read(path: str, workflow_ids: list[str]) -> None:
    latencies: list[float] = []
    firsts: list[float] = []
    last = 0.0

    async def follow(workflow_id: str) -> None:
        nonlocal last
        first = True
        async for written in client.read_stream(workflow_id, KEY, timeout=60):
            last = time.time()
            if first:
                firsts.append(written)
                first = False
            latencies.append(last - written)

    async with Client(path) as client, anyio.create_task_group() as tg:
        for workflow_id in workflow_ids:
            tg.start_soon(follow, workflow_id)
        for workflow_id in workflow_ids:
            await client.send(workflow_id, "go")
    report = {"count": len(latencies), "first_written": min(firsts), "last_seen": last}
    print(json.dumps(report | {"latencies": latencies}))

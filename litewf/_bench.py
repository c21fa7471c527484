"""``litewf bench``: throughput and latency of the runtime, each scenario on a fresh file.

Figures depend on the machine (disk fsync speed above all); compare runs made on one
machine, and prefer medians of several runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.to_thread

from . import _bench_limits, _bench_scale, _bench_streams, testing
from ._api import SessionCalls
from ._bench_figures import FULL, QUICK, Figure, Sizes, latency, ms, render, with_ratios
from ._bench_queue import child_enqueue_marks, queue_times
from ._bench_scale import one_step_rate
from ._bench_wake import HOW, wake_times
from ._client import Client
from ._pgschema import bench_schema, drop_bench_schemas
from ._runtime import Runtime
from ._types import Durability
from ._workflow import Workflow

__all__ = ["main"]

SCENARIOS: tuple[str, ...] = ("workflows", "send-recv", "send-recv-xproc", "events", "messages")
SCENARIOS += ("wait-first", "queue", "recovery", "idle", "streams", "limits", "scale")


async def _until_waiting(rt: Runtime, n: int, interval: float) -> None:
    """Return once ``n`` workflows of ``rt`` wait (in recv, sleep, ...)."""
    while testing.waiting(rt) < n:  # noqa: ASYNC110 - polling a counter
        await anyio.sleep(interval)


def _parked(rt: Runtime) -> Workflow[[], int]:
    """The workflow ``recovery`` parks in a child process and recovers here."""

    @rt.workflow(name="bench.parked")
    async def parked() -> int:
        got: int = await rt.recv(timeout=3600)
        return got

    return parked


def _progress(text: str) -> None:
    print(f"  ... {text}", file=sys.stderr, flush=True)


class Bench:
    """Runs scenarios; each gets a fresh database in its own temporary folder."""

    def __init__(
        self, folder: Path, durability: Durability, sizes: Sizes, db: str | None = None
    ) -> None:
        self.folder, self.db = folder, db
        self.durability = durability
        self.sizes = sizes
        self._count = 0

    def fresh_path(self) -> Path:
        self._count += 1
        if self.db is not None:  # a fresh schema on that server (a URL where paths go)
            return cast(Path, bench_schema(self.db, self._count))
        return self.folder / f"bench-{self._count}.db"

    def runtime(self, path: Path, **options: Any) -> Runtime:
        return Runtime(path, durability=self.durability, **options)

    # -- scenarios ----------------------------------------------------------------------

    async def workflows(self) -> list[Figure]:
        n = self.sizes.workflows
        rate, latencies, cpu = await one_step_rate(self.runtime(self.fresh_path()), n, True)
        p50, p99 = ms(latencies)
        concurrent = f"{n} one-step, concurrency {n}"
        figures = [
            Figure("workflows", concurrent, rate, "workflows/s", p50, p99, "raw-sql"),
            Figure("workflows", concurrent, cpu, "µs CPU each", bound="raw-sql-cpu"),
        ]
        rate, latencies, _ = await one_step_rate(self.runtime(self.fresh_path()), n, False)
        p50, p99 = ms(latencies)
        measure = f"{n} one-step, concurrency 1"
        return [
            *figures,
            Figure("workflows", measure, rate, "workflows/s", p50, p99, "hot-commits"),
        ]

    async def limits(self) -> list[Figure]:  # in _bench_limits
        if self.db is not None:
            _progress("limits: measured on SQLite files only; skipped with --db")
            return []
        s = self.sizes
        sync = "FULL" if self.durability == "full" else "NORMAL"
        sizes = (s.raw_workflows, s.hot_commits, s.idle_commits)
        return _bench_limits.limits(self.fresh_path, *sizes, sync)

    async def scale(self) -> list[Figure]:  # in _bench_scale
        if self.db is not None:
            _progress("scale: fills SQLite files only; skipped with --db")
            return []
        return await _bench_scale.scale(self.fresh_path, self.runtime, self.sizes)

    def _echo(self, rt: Runtime) -> Workflow[[int, str], None]:
        @rt.workflow(name="bench.echo")
        async def echo(n: int, reply: str) -> None:
            for i in range(n):
                message = await rt.recv(timeout=60)
                if reply == "event":
                    await rt.set_event(f"r{i}", message)
                else:
                    await rt.send(message["from"], i, topic="reply")

        return echo

    async def send_recv(self) -> list[Figure]:
        rt = self.runtime(self.fresh_path())
        echo = self._echo(rt)

        @rt.workflow(name="bench.caller")
        async def caller(target: str, n: int) -> list[float]:
            times = []
            for i in range(n):
                t = time.perf_counter()
                await rt.send(target, {"from": rt.current_workflow_id(), "i": i})
                await rt.recv("reply", timeout=60)
                times.append(time.perf_counter() - t)
            return times

        n = self.sizes.round_trips
        async with rt:
            target = await rt.start_workflow(echo, n, "send")
            times = await caller(target.workflow_id, n)
        return [latency("send-recv", "workflow -> workflow -> workflow, same process", times)]

    async def send_recv_xproc(self) -> list[Figure]:
        path = self.fresh_path()
        rt = self.runtime(path)
        echo = self._echo(rt)
        n = self.sizes.round_trips
        async with rt:
            target = await rt.start_workflow(echo, n, "event")
            out = await _run_child("round-trips", path, target.workflow_id, str(n), "r")
        times = [float(x) for x in out.split()]
        measure = "Client send -> recv -> set_event -> Client get_event"
        return [latency("send-recv-xproc", measure, times)]

    async def events(self) -> list[Figure]:
        path = self.fresh_path()
        rt = self.runtime(path)

        @rt.workflow(name="bench.publisher")
        async def publisher(n: int) -> None:
            for i in range(n):
                await rt.recv(timeout=60)
                await rt.set_event(f"e{i}", time.time())

        n = self.sizes.round_trips
        figures = []
        async with rt:
            handle = await rt.start_workflow(publisher, n)
            times = await _round_trips(rt, handle.workflow_id, n, "e")
            figures.append(latency("events", "send -> set_event -> get_event, same process", times))
            second = await rt.start_workflow(publisher, n)
            out = await _run_child("round-trips", path, second.workflow_id, str(n), "e")
        times = [float(x) for x in out.split()]
        measure = "set_event here -> get_event in another process"
        return [*figures, latency("events", measure, times)]

    async def streams(self) -> list[Figure]:  # in _bench_streams; sizes: messages, round_trips
        n, samples = self.sizes.messages, self.sizes.round_trips
        rates, paced = await _bench_streams.run(self.fresh_path, self.durability, n, samples)
        figures = [Figure("streams", m, rate, "values/s", bound="hot-commits") for m, rate in rates]
        return [*figures, latency("streams", *paced)]

    async def messages(self) -> list[Figure]:
        rt = self.runtime(self.fresh_path())

        @rt.workflow(name="bench.drain")
        async def drain(n: int) -> int:
            total = 0
            for _ in range(n):
                total += await rt.recv(timeout=60)
            return total

        n = self.sizes.messages
        async with rt:
            started = time.perf_counter()
            handle = await rt.start_workflow(drain, n)

            async def send_all(part: int, parts: int) -> None:
                for _ in range(part, n, parts):
                    await rt.send(handle.workflow_id, 1)

            async with anyio.create_task_group() as tg:
                for part in range(8):
                    tg.start_soon(send_all, part, 8)
            assert await handle.get_result() == n
            elapsed = time.perf_counter() - started
        return [
            Figure(
                "messages",
                f"{n} messages into one workflow, end to end",
                n / elapsed,
                "messages/s",
                bound="hot-commits",
            )
        ]

    async def wait_first(self) -> list[Figure]:
        n = self.sizes.round_trips
        async with self.runtime(self.fresh_path()) as rt:
            times = {how: await wake_times(rt, how, n) for how in HOW}
            idle = await wake_times(rt, "recv", n, gap=(0.005, 0.015))
        measure = "send -> woken in {}, same process"
        return [
            *(latency("wait-first", measure.format(how), times[how]) for how in HOW),
            latency("wait-first", "the same into recv, each after a 5-15 ms idle gap", idle),
        ]

    async def queue(self) -> list[Figure]:
        path, marks = self.fresh_path(), self.sizes.round_trips
        async with self.runtime(path) as rt:
            through, rate, waits = await queue_times(
                rt, str(path), self.sizes.messages, marks, _run_child
            )
        return [
            Figure("queue", through, rate, "workflows/s", bound="raw-sql"),
            *(latency("queue", how, times) for how, times in waits),
        ]

    async def recovery(self) -> list[Figure]:
        path = self.fresh_path()
        n = self.sizes.recovery
        _progress(f"a child process starts {n} workflows that wait in recv, then is killed")
        await _run_child("park", path, str(n))
        rt = self.runtime(path)
        _parked(rt)
        started = time.perf_counter()
        async with rt:
            launched = time.perf_counter() - started
            await _until_waiting(rt, n, 0.005)
            waiting = time.perf_counter() - started
            ids = [w.workflow_id for w in await rt.list_workflows(limit=n)]
            t = time.perf_counter()

            async def finish(workflow_id: str) -> None:
                await rt.send(workflow_id, 1)
                await (await rt.retrieve_workflow(workflow_id)).get_result()

            async with anyio.create_task_group() as tg:
                for workflow_id in ids:
                    tg.start_soon(finish, workflow_id)
            completed = time.perf_counter() - t
        return [
            Figure("recovery", f"{n} pending: launch() returned", launched, "s"),
            Figure("recovery", f"{n} pending: all back waiting in recv", waiting, "s"),
            Figure("recovery", f"{n} pending: all done once messages arrive", completed, "s"),
        ]

    async def idle(self) -> list[Figure]:
        rt = self.runtime(self.fresh_path())

        @rt.workflow(name="bench.idle")
        async def idle() -> None:
            await rt.recv(timeout=3600)

        n, seconds = self.sizes.idle_waiters, self.sizes.idle_seconds
        async with rt:
            for _ in range(n):
                await rt.start_workflow(idle)
            await _until_waiting(rt, n, 0.01)
            await anyio.sleep(min(1.0, seconds))  # let start-up work settle
            cpu, wall = time.process_time(), time.perf_counter()
            await anyio.sleep(seconds)
            share = (time.process_time() - cpu) / (time.perf_counter() - wall) * 100
        return [Figure("idle", f"launched runtime, {n} workflows waiting", share, "% of a core")]


async def _run_child(role: str, *args: str | os.PathLike[str]) -> str:
    """Run a bench helper in another process; return its stdout."""
    command = [sys.executable, "-c", "import litewf._bench as b; b._child()", role, *map(str, args)]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)

    done = await anyio.to_thread.run_sync(run)
    if done.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"bench child {role} failed:\n{done.stderr}")
    return done.stdout


def _child() -> None:
    """Entry point of bench helper processes (see ``_run_child``)."""
    role, path, *rest = sys.argv[1:]
    anyio.run(_CHILDREN[role], path, *rest)


async def _child_round_trips(path: str, target: str, n: str, key_prefix: str) -> None:
    """``_round_trips`` from another process, as a Client; print each time."""
    async with Client(path) as client:
        for seconds in await _round_trips(client, target, int(n), key_prefix):
            print(seconds)


async def _round_trips(calls: SessionCalls, target: str, n: int, key_prefix: str) -> list[float]:
    """Send ``i`` to ``target`` and wait for its event ``<key_prefix><i>``; each time taken."""
    times = []
    for i in range(n):
        t = time.perf_counter()
        await calls.send(target, i)
        await calls.get_event(target, f"{key_prefix}{i}", timeout=60)
        times.append(time.perf_counter() - t)
    return times


async def _child_park(path: str, n: str) -> None:
    """Start ``n`` workflows waiting in recv, then die as a crash would (SIGKILL)."""
    rt = Runtime(path, durability="normal")
    parked = _parked(rt)
    await rt.launch()
    for _ in range(int(n)):
        await rt.start_workflow(parked)
    await _until_waiting(rt, int(n), 0.01)
    os.kill(os.getpid(), signal.SIGKILL)


_CHILDREN: dict[str, Callable[..., Awaitable[None]]] = {
    "round-trips": _child_round_trips,
    "enqueue-marks": child_enqueue_marks,
    "park": _child_park,
}


def _machine() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
    }


#: The sizes that options (``--round-trips N``) can set.
_SIZE_OPTIONS: tuple[str, ...] = (
    "workflows",
    "round_trips",
    "messages",
    "recovery",
    "idle_waiters",
)
_SIZE_OPTIONS += ("raw_workflows", "concurrent", "steps", "waiting", "finished")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    parser = argparse.ArgumentParser(prog="litewf bench", description=__doc__.replace("``", ""))
    parser.add_argument("--durability", choices=("full", "normal"), default="full")
    parser.add_argument("--quick", action="store_true", help="small sizes: a few seconds")
    parser.add_argument("--db", metavar="URL", help="run on PostgreSQL (fresh schemas there)")
    parser.add_argument(
        "--scenario", action="append", choices=SCENARIOS, help="run only this scenario (repeatable)"
    )
    parser.add_argument(
        "--json", metavar="FILE", help="also write the figures as JSON ('-': to stdout, no table)"
    )
    for field in _SIZE_OPTIONS:
        parser.add_argument(f"--{field.replace('_', '-')}", type=int, metavar="N")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    given = {field: getattr(args, field) for field in _SIZE_OPTIONS if getattr(args, field)}
    sizes = dataclasses.replace(base, **given)
    chosen = args.scenario or list(SCENARIOS)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="litewf-bench-") as folder:
        bench = Bench(Path(folder), args.durability, sizes, args.db)
        for name in chosen:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            scenario = getattr(bench, name.replace("-", "_"))
            try:
                figures += anyio.run(scenario)
            finally:
                drop_bench_schemas(args.db, bench._count)
    bounds = _bench_limits.bounds(figures)
    figures = with_ratios(figures, bounds)
    machine = _machine()
    report = {
        "machine": machine,
        "durability": args.durability,
        "quick": args.quick,
        "bounds": None if bounds is None else bounds.as_dict(),
        "figures": [dataclasses.asdict(f) for f in figures],
    }
    if args.json == "-":
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"litewf bench, durability={args.durability}, "
        f"{'quick' if args.quick else 'full'} sizes; "
        + ", ".join(f"{k} {v}" for k, v in machine.items())
    )
    print(render(figures))
    if bounds is None:
        print("(no bounds: add --scenario limits to compare each figure with its bound)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0

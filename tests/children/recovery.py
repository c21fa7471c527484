"""Child programs for tests/test_recovery.py, selected by ``argv[1]``.

Every body execution appends a line to a log file in the output folder, so the test can
count executions across processes (a SIGKILLed child cannot report anything else).
``build()`` is shared with the test process, so a runtime there registers the same
workflows under the same explicit names.

Modes (``python -m tests.children.recovery MODE DB OUT ...``):

- ``abc DB OUT EXECUTOR``: start workflow ``wf-abc`` (steps A, B, C); B touches
  ``B.started`` and blocks until the test kills the process.
- ``serve DB OUT PREFIX N WAIT RECOVERY_INTERVAL``: start N ``tracked`` workflows
  ``PREFIX-i``, touch ``PREFIX.running`` once all their bodies started, serve (and recover
  peers' workflows) until ``OUT/stop`` exists, then shut down cleanly.
- ``park DB OUT EXECUTOR N``: start N ``parked`` workflows ``park-i`` that wait on
  ``recv("go")``; touch ``park.ready`` once all recorded their first step; shut down
  cleanly when ``OUT/stop`` exists.
- ``doomed DB OUT MAX``: run workflow ``doomed``, whose step SIGKILLs its own process;
  prints ``exceeded`` and exits 0 once ``get_result`` raises
  ``MaxRecoveryAttemptsExceededError``.
- ``hold DB OUT EXECUTOR``: launch with that executor ID, touch ``held``, serve until
  ``OUT/stop``; exit code 3 (printing ``conflict``) if ``launch()`` raises
  ``ExecutorConflictError``.
- ``bench DB OUT N``: by hand, not part of the test run: time the launch-time recovery of
  N parked workflows left by a SIGKILLed ``park`` child (prints the figures).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

import litewf
from tests import procs

STOP = "stop"


def append(path: Path, line: str) -> None:
    """Append one line (O_APPEND: whole lines, even with several writer processes)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def read_lines(path: Path) -> list[str]:
    """The lines of a log file; none if it was never written."""
    if not path.exists():
        return []
    return path.read_text(encoding="utf-8").splitlines()


@dataclass
class Flows:
    """A runtime with the workflows of these tests registered on it."""

    rt: litewf.Runtime
    abc: litewf.Workflow[[str], str]
    tracked: litewf.Workflow[[bool], str]
    parked: litewf.Workflow[[], str]
    doomed: litewf.Workflow[[], str]
    parked_count: list[int]
    all_parked: anyio.Event


def build(
    db: str | os.PathLike[str],
    out: Path,
    *,
    block_in_b: bool = False,
    park_target: int = 0,
    tracked_target: int = 0,
    **runtime_kwargs: Any,
) -> Flows:
    """Create a runtime on ``db`` with every workflow used by the recovery tests."""
    rt = litewf.Runtime(db, **runtime_kwargs)
    all_parked = anyio.Event()
    parked_count = [0]
    tracked_count = [0]

    @rt.step(name="A")
    async def step_a(x: str) -> str:
        append(out / "A.log", str(os.getpid()))
        return x + ":A"

    @rt.step(name="B")
    async def step_b(x: str) -> str:
        append(out / "B.log", str(os.getpid()))
        if block_in_b:
            procs.touch(out / "B.started")
            await anyio.sleep_forever()
        return x + ":B"

    @rt.step(name="C")
    async def step_c(x: str) -> str:
        append(out / "C.log", str(os.getpid()))
        return x + ":C"

    @rt.workflow(name="abc")
    async def abc(x: str) -> str:
        return await step_c(await step_b(await step_a(x)))

    @rt.step(name="T1")
    async def step_t1() -> int:
        return os.getpid()

    @rt.workflow(name="tracked")
    async def tracked(wait_for_go: bool) -> str:
        wid = rt.current_workflow_id()
        log = out / "tracked.log"
        append(log, f"start {os.getpid()} {wid} {time.time()!r}")
        tracked_count[0] += 1
        if tracked_count[0] == tracked_target:
            procs.touch(out / f"{os.getpid()}.tracked")
        await step_t1()
        if wait_for_go:
            assert await rt.recv("go", timeout=120) == "go"
        else:
            await rt.sleep(0.3)  # long enough for the peer's recovery scans to see it
        append(log, f"end {os.getpid()} {wid} {time.time()!r}")
        return f"done {wid}"

    @rt.step(name="P1")
    async def step_p1() -> str:
        append(out / "P1.log", str(os.getpid()))
        return "p1"

    @rt.workflow(name="parked")
    async def parked() -> str:
        first = await step_p1()
        # Written after the first step is recorded: a recovered run replays that step,
        # then writes this line again, so lines count body executions past the first op.
        append(out / "parked.log", f"{os.getpid()} {rt.current_workflow_id()}")
        parked_count[0] += 1
        if parked_count[0] == park_target:
            all_parked.set()
        note = await rt.recv("go", timeout=300)
        return f"{first} got {note}"

    @rt.step(name="suicide")
    async def suicide() -> None:
        append(out / "doomed.log", str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)

    @rt.workflow(name="doomed")
    async def doomed() -> str:
        await suicide()
        return "survived"

    return Flows(rt, abc, tracked, parked, doomed, parked_count, all_parked)


async def wait_for_stop(out: Path) -> None:
    await procs.wait_for_file(out / STOP, timeout=600)


async def run_abc(db: str, out: Path, executor_id: str) -> None:
    flows = build(db, out, block_in_b=True, executor_id=executor_id)
    async with flows.rt:
        await flows.rt.start_workflow(flows.abc, "x", workflow_id="wf-abc")
        await anyio.sleep_forever()  # the test SIGKILLs us while B blocks


async def run_serve(db: str, out: Path, prefix: str, n: int, wait: bool, interval: float) -> None:
    flows = build(db, out, tracked_target=n, recovery_interval=interval)
    async with flows.rt:
        for i in range(n):
            await flows.rt.start_workflow(flows.tracked, wait, workflow_id=f"{prefix}-{i}")
        if n:
            await procs.wait_for_file(out / f"{os.getpid()}.tracked")
        procs.touch(out / f"{prefix}.running")
        await wait_for_stop(out)


async def run_park(db: str, out: Path, executor_id: str, n: int) -> None:
    flows = build(db, out, park_target=n, executor_id=executor_id, durability="normal")
    async with flows.rt:
        for i in range(n):
            await flows.rt.start_workflow(flows.parked, workflow_id=f"park-{i}")
        await flows.all_parked.wait()
        procs.touch(out / "park.ready")
        await wait_for_stop(out)


async def run_doomed(db: str, out: Path, max_attempts: int) -> None:
    flows = build(db, out, max_recovery_attempts=max_attempts)
    async with flows.rt:
        h = await flows.rt.start_workflow(flows.doomed, workflow_id="doomed")
        try:
            await h.get_result(timeout=60)
        except litewf.MaxRecoveryAttemptsExceededError:
            print("exceeded")


async def run_hold(db: str, out: Path, executor_id: str) -> None:
    flows = build(db, out, executor_id=executor_id)
    try:
        await flows.rt.launch()
    except litewf.ExecutorConflictError:
        print("conflict")
        sys.exit(3)
    try:
        procs.touch(out / "held")
        await wait_for_stop(out)
    finally:
        await flows.rt.shutdown()


async def run_bench(db: str, out: Path, n: int) -> None:
    """Time launch-time recovery of ``n`` parked workflows left by a SIGKILLed child."""
    t0 = time.monotonic()
    child = procs.spawn("recovery", "park", db, out, "bench-dead", str(n))
    await procs.wait_for_file(out / "park.ready", child, timeout=600)
    setup = time.monotonic() - t0
    procs.kill(child)
    child.communicate()
    before = len(read_lines(out / "parked.log"))
    flows = build(db, out, park_target=n, recovery_interval=600.0)
    t0 = time.monotonic()
    async with flows.rt:
        launched = time.monotonic() - t0
        await flows.all_parked.wait()
        recovered = time.monotonic() - t0
        statuses = await flows.rt.list_workflows(limit=n + 1)
    after = len(read_lines(out / "parked.log")) - before
    attempts = {s.recovery_attempts for s in statuses}
    print(
        f"n={n} setup (start + park, durability=normal) {setup:.2f} s; "
        f"launch() returned after {launched:.3f} s; all {after} bodies back at recv after "
        f"{recovered:.3f} s; recovery_attempts={sorted(attempts)}; "
        f"P1 executions={len(read_lines(out / 'P1.log'))}"
    )


def main(argv: list[str]) -> None:
    mode, db, out_s, *rest = argv
    out = Path(out_s)
    if mode == "abc":
        anyio.run(run_abc, db, out, rest[0])
    elif mode == "serve":
        prefix, n, wait, interval = rest
        anyio.run(run_serve, db, out, prefix, int(n), wait == "go", float(interval))
    elif mode == "park":
        anyio.run(run_park, db, out, rest[0], int(rest[1]))
    elif mode == "doomed":
        anyio.run(run_doomed, db, out, int(rest[0]))
    elif mode == "hold":
        anyio.run(run_hold, db, out, rest[0])
    elif mode == "bench":
        out.mkdir(parents=True, exist_ok=True)
        anyio.run(run_bench, db, out, int(rest[0]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Child programs for tests/test_identity.py, selected by ``argv[1]``.

Workflow ``held`` runs step ``work``, whose body appends this process's pid to
``OUT/steps.log`` (one line per execution, in any process), touches
``OUT/work.<pid>`` and then waits until ``OUT/go`` exists. ``build()`` is shared with the
test process, so a runtime there registers the same names.

Modes (``python -m tests.children.identity MODE DB OUT ...``):

- ``hold DB OUT EXECUTOR``: start ``w1``, touch ``OUT/held`` once its step runs, then print
  how ``get_result`` ended (``result ...`` or ``error TYPE: MESSAGE``), wait for
  ``OUT/release`` (at most 60 s) and shut down.
- ``scan DB OUT BEFORE AFTER``: construct a Runtime on DB (maybe relative or a symlink),
  chdir to BEFORE, launch, chdir to AFTER, let recovery scan for a while, print
  ``w1 EXECUTOR ATTEMPTS`` and shut down (``-`` means no chdir).
- ``fork DB OUT``: launch as executor ``forker``, start ``w1``, and once its step runs fork;
  the forked child calls the inherited runtime (``list_workflows``, ``shutdown``), writes
  what happened to ``OUT/fork.out`` (a line each) and its pid to ``OUT/fork.pid``, then
  stays alive until ``OUT/stop`` exists. The parent touches ``OUT/held`` and waits to be
  killed.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

import litewf
from tests import procs
from tests.children.recovery import append

WORKFLOW_ID = "w1"


@dataclass
class Flows:
    rt: litewf.Runtime
    held: litewf.Workflow[[], str]


def build(db: str | os.PathLike[str], out: Path, **runtime_kwargs: Any) -> Flows:
    """A runtime with workflow ``held`` registered on it."""
    rt = litewf.Runtime(db, **runtime_kwargs)

    @rt.step(name="work")
    async def work() -> int:
        append(out / "steps.log", str(os.getpid()))
        procs.touch(out / f"work.{os.getpid()}")
        while not (out / "go").exists():  # noqa: ASYNC110 - the test releases it by a file
            await anyio.sleep(0.01)
        return os.getpid()

    @rt.workflow(name="held")
    async def held() -> str:
        return f"done {await work()}"

    return Flows(rt, held)


async def run_hold(db: str, out: Path, executor_id: str) -> None:
    flows = build(db, out, executor_id=executor_id, recovery_interval=0.05)
    async with flows.rt:
        h = await flows.rt.start_workflow(flows.held, workflow_id=WORKFLOW_ID)
        while not (out / f"work.{os.getpid()}").exists():  # noqa: ASYNC110
            await anyio.sleep(0.01)
        procs.touch(out / "held")
        try:
            print("result", await h.get_result(timeout=60))
        except litewf.LitewfError as exc:
            print(f"error {type(exc).__name__}: {exc}")
        # Hold the executor lock (stay alive to peers) until the test has looked.
        deadline = time.monotonic() + 60
        while not (out / "release").exists() and time.monotonic() < deadline:  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def run_scan(db: str, out: Path, before: str, after: str) -> None:
    flows = build(db, out, executor_id="scanner", recovery_interval=0.02)
    if before != "-":
        os.chdir(before)
    async with flows.rt:
        if after != "-":
            os.chdir(after)
        # Waiting for something NOT to happen: many recovery scans see the peer alive.
        await anyio.sleep(0.5)
        status = await (await flows.rt.retrieve_workflow(WORKFLOW_ID)).get_status()
        print(WORKFLOW_ID, status.executor_id, status.recovery_attempts)


async def run_fork(db: str, out: Path) -> None:
    flows = build(db, out, executor_id="forker")
    await flows.rt.launch()
    await flows.rt.start_workflow(flows.held, workflow_id=WORKFLOW_ID)
    while not (out / f"work.{os.getpid()}").exists():  # noqa: ASYNC110
        await anyio.sleep(0.01)
    pid = os.fork()
    if pid == 0:
        forked_child(flows.rt, out)
    procs.touch(out / "held")
    await anyio.sleep_forever()


def forked_child(rt: litewf.Runtime, out: Path) -> None:
    """In the forked child: a call on the inherited runtime must raise at once."""
    try:
        outcomes = []
        for coro in (rt.list_workflows(), rt.shutdown()):
            try:
                coro.send(None)
            except litewf.LitewfError as exc:
                outcomes.append(f"raised {type(exc).__name__}: {exc}")
            except StopIteration:
                outcomes.append("returned")
            else:
                outcomes.append("blocked")  # waits for a thread the fork did not copy
                coro.close()
        (out / "fork.out").write_text("\n".join(outcomes), encoding="utf-8")
        (out / "fork.pid").write_text(str(os.getpid()), encoding="utf-8")
        deadline = time.monotonic() + 120
        while not (out / "stop").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os._exit(0)  # never run the parent's cleanup (atexit, finalizers) here


def main(argv: list[str]) -> None:
    mode, db, out_s, *rest = argv
    out = Path(out_s)
    if mode == "hold":
        anyio.run(run_hold, db, out, rest[0])
    elif mode == "scan":
        anyio.run(run_scan, db, out, rest[0], rest[1])
    elif mode == "fork":
        anyio.run(run_fork, db, out)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

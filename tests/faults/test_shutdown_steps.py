"""Shutdown while a sync step body runs in its thread (issue 10, section 6).

A thread cannot be stopped: shutdown waits for the body (up to ``shutdown_timeout``) and
releases the workflow only once nothing of it runs in this process; past the bound the
workflow stays owned by the process, so no peer runs the same step while the body still
runs, and the process still exits promptly (step threads are daemon threads).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import anyio.to_thread

import litewf
from tests import procs, sqldb


class _Seen(logging.Handler):
    def __init__(self, text: str, then: Callable[[], None]) -> None:
        super().__init__(logging.INFO)
        self.text, self.then = text, then

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.then()


@contextmanager
def on_log(text: str, then: Callable[[], None]) -> Iterator[None]:
    """Call ``then()`` when litewf logs a record containing ``text``."""
    logger = logging.getLogger("litewf")
    handler, level = _Seen(text, then), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def owner(db: Path, workflow_id: str) -> str | None:
    ((executor_id,),) = sqldb.query(
        db, "SELECT executor_id FROM workflows WHERE workflow_id = ?", (workflow_id,)
    )
    return None if executor_id is None else str(executor_id)


async def test_shutdown_waits_for_a_sync_step_body_then_releases(db_path: Path) -> None:
    """Shutdown returns only after the running sync step body has ended, then releases
    the workflow (before: it returned at once and released it, the body still running)."""
    started, gate = threading.Event(), threading.Event()
    ended: list[str] = []
    rt = litewf.Runtime(db_path, shutdown_timeout=60)

    @rt.step(name="s.body")
    def body() -> str:
        started.set()
        gate.wait(60)
        ended.append("body")
        return "ok"

    @rt.workflow(name="s.flow")
    async def flow() -> str:
        return await body()

    try:
        await rt.launch()
        await rt.start_workflow(flow, workflow_id="flow")
        assert await anyio.to_thread.run_sync(started.wait, 30)
        with on_log("shutdown waits up to", gate.set):
            await rt.shutdown()
        assert ended == ["body"]
        assert owner(db_path, "flow") is None  # released: nothing of it runs here
    finally:
        gate.set()
        await rt.shutdown()
    async with litewf.Runtime(db_path) as again:
        again.workflow(name="s.flow")(flow.fn)
        # registered after launch: recover now that the function is known
        await again.recover()
        assert await (await again.retrieve_workflow("flow")).get_result(timeout=30) == "ok"


async def test_a_peer_never_runs_a_step_whose_body_still_runs_after_shutdown(
    db_path: Path, tmp_path: Path
) -> None:
    """A child process shuts down while its sync step body waits (past shutdown_timeout):
    the workflow stays owned by the child, so this process's runtime does not take it
    over (before: released, taken over, and the two bodies overlapped); the child exits
    promptly although the body's thread still runs (before: exit waited for the thread);
    then this runtime recovers the workflow and runs the step once more."""
    db = db_path
    log = tmp_path / "log"
    rt = litewf.Runtime(db, recovery_interval=0.05)

    @rt.step(name="s.slow")
    def slow() -> str:
        with log.open("a") as f:
            f.write(f"start {os.getpid()}\nend {os.getpid()}\n")
        return "slow"

    @rt.workflow(name="s.flow")
    async def flow() -> str:
        return await slow()

    child = procs.spawn("faults_shutdown", db, tmp_path)
    try:
        await procs.wait_for_file(tmp_path / "shut-down", child, timeout=60)
        assert owner(db, "flow") == "proc-a"  # not released: its body still runs
        async with rt:
            await rt.recover()
            assert log.read_text().splitlines() == [f"start {child.pid}"]
            assert (await (await rt.retrieve_workflow("flow")).get_status()).status == "PENDING"
            procs.touch(tmp_path / "exit")
            await procs.finish_async(child, timeout=30)  # exits with the body still waiting
            result = await (await rt.retrieve_workflow("flow")).get_result(timeout=30)
            assert result == "slow"
        assert log.read_text().splitlines() == [
            f"start {child.pid}",
            f"start {os.getpid()}",
            f"end {os.getpid()}",
        ]
    finally:
        procs.touch(tmp_path / "release")
        if child.poll() is None:
            procs.kill(child)

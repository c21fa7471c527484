"""Sync step bodies in threads litewf owns, so that shutdown knows what still runs.

A thread cannot be stopped from outside. When a workflow is cancelled (by shutdown or
``cancel_workflow``) while a sync step body runs, the workflow stops waiting for it but
the body runs on. Shutdown must therefore not release that workflow to other processes
until the body has ended: a peer would run the same step while ours still runs.

The threads are daemon threads (anyio's worker threads are not): a body still running
when the program ends does not keep the interpreter from exiting; it stops as it would
in a crash, and the step runs again wherever the workflow is recovered.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import anyio

__all__ = ["StepThreads"]

logger = logging.getLogger("litewf")

T = TypeVar("T")


class StepThreads:
    """The sync step bodies running in this runtime's threads, by workflow ID."""

    def __init__(self) -> None:
        # Touched only from the event loop; each body sets its event there as it ends.
        self._running: dict[threading.Thread, tuple[str | None, anyio.Event]] = {}

    async def run(self, workflow_id: str | None, fn: Callable[[], T]) -> T:
        """Run ``fn()`` in a new daemon thread (with this task's context) and return its
        result. Cancelled, the caller stops waiting; the thread runs to its end."""
        loop = asyncio.get_running_loop()
        done = anyio.Event()
        outcome: list[Any] = []
        context = contextvars.copy_context()

        def body() -> None:
            try:
                outcome.append((True, context.run(fn)))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                outcome.append((False, exc))
            finally:
                try:
                    loop.call_soon_threadsafe(done.set)
                except RuntimeError:
                    pass  # the event loop has closed: nobody waits any more

        thread = threading.Thread(target=body, name=f"litewf step {workflow_id}", daemon=True)
        self._running[thread] = (workflow_id, done)
        thread.start()
        try:
            await done.wait()
        finally:
            if done.is_set():
                self._running.pop(thread, None)
        ok, value = outcome[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def alive(self) -> list[threading.Thread]:
        """The threads whose body still runs (forgets those that ended)."""
        for thread in [t for t, (_, done) in self._running.items() if done.is_set()]:
            del self._running[thread]
        return list(self._running)

    async def wait(self, timeout: float) -> set[str]:
        """Wait up to ``timeout`` s for every step body to end; return the IDs of the
        workflows whose step bodies still run then (they must not be released: they stay
        owned by this process until the bodies end or it exits)."""
        running = len(self.alive())
        if running:
            logger.info(
                "shutdown waits up to %g s for %d step bodies still running in threads",
                timeout,
                running,
            )
        with anyio.move_on_after(timeout):
            for _, done in list(self._running.values()):
                await done.wait()
        ids = (self._running[thread][0] for thread in self.alive())
        keep = {workflow_id for workflow_id in ids if workflow_id is not None}
        if keep:
            logger.warning(
                "step bodies of workflows %s still run after %g s; those workflows stay "
                "owned by this process until the bodies end or it exits",
                ", ".join(sorted(keep)),
                timeout,
            )
        return keep

    def after_all(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` now if no step thread runs, else once the last one ends
        (from a daemon thread of its own)."""
        threads = self.alive()
        if not threads:
            callback()
            return
        threading.Thread(
            target=_join_then, args=(threads, callback), name="litewf step waiter", daemon=True
        ).start()


def _join_then(threads: Iterable[threading.Thread], callback: Callable[[], None]) -> None:
    for thread in threads:
        thread.join()
    callback()

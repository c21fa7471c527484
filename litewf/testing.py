"""Tools for testing code that uses litewf: a clock tests control, and simulated crashes.

``VirtualClock`` makes a workflow that sleeps a day, or waits an hour for a message,
finish in milliseconds: pass it as ``Runtime(path, clock=VirtualClock())`` and
``advance()`` it (or let it ``auto_advance``).

``crash_at(rt, ...)`` makes a runtime die at a chosen point as if its process had been
SIGKILLed there, without spawning a process: what was committed stays, nothing more is
written, its PENDING workflows stay owned by the dead executor and its executor lock is
dropped the way the OS drops it. Launch a new ``Runtime`` on the same file and assert
what recovery does. ``crash_now(rt)`` does the same at once (for example while a workflow
waits in ``recv``).
"""

from __future__ import annotations

import anyio

from ._clock import VirtualClock
from ._exceptions import InvalidValueError, LitewfError
from ._runtime import Runtime, _Crashed
from ._validate import check_count, check_id, check_key

__all__ = ["Crash", "VirtualClock", "crash_at", "crash_now"]

VirtualClock.__module__ = __name__  # shown as litewf.testing.VirtualClock


class Crash:
    """A planned crash of one runtime; ``await crash.wait()`` returns once it happened."""

    def __init__(
        self,
        runtime: Runtime,
        after_operations: int | None,
        before_step: str | None,
        workflow_id: str | None,
    ) -> None:
        self._runtime = runtime
        self.after_operations = after_operations
        self.before_step = before_step
        self.target_workflow_id = workflow_id
        #: The workflow that reached the crash point, once it did.
        self.workflow_id: str | None = None
        self._event: anyio.Event | None = None
        self.happened = False

    def __repr__(self) -> str:
        point = (
            f"before_step={self.before_step!r}"
            if self.before_step is not None
            else f"after_operations={self.after_operations}"
        )
        return f"<litewf.testing.Crash {point} happened={self.happened}>"

    async def wait(self) -> None:
        """Wait until the runtime has crashed at the planned point."""
        if self.happened:
            return
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()

    def _check(self, workflow_id: str, op_id: int, name: str | None) -> None:
        """Called by the runtime before operation ``op_id`` (``name`` None: the end)."""
        if self.target_workflow_id is not None and workflow_id != self.target_workflow_id:
            return
        if self.before_step is not None:
            if name != self.before_step:
                return
            where = f"before step {name!r} (operation {op_id}) of workflow {workflow_id!r}"
        else:
            if op_id != self.after_operations:
                return
            where = f"after {op_id} operations of workflow {workflow_id!r}"
        self.workflow_id = workflow_id
        self._happen(where)
        raise _Crashed()

    def _happen(self, where: str) -> None:
        self._runtime._die(where)
        self.happened = True
        if self._event is not None:
            self._event.set()


def crash_at(
    runtime: Runtime,
    *,
    after_operations: int | None = None,
    before_step: str | None = None,
    workflow_id: str | None = None,
) -> Crash:
    """Make ``runtime`` die, as if SIGKILLed, when a workflow reaches the given point.

    ``after_operations=N``: once N operations (steps, sleeps, sends, receives, events,
    child starts, recorded reads; replayed ones count too) have completed, before the next
    one starts or the workflow's result is stored. ``before_step=name``: when the workflow calls the
    step (or builtin operation: ``"recv"``, ``"sleep"``, ...) of that name, before any of
    it runs. ``workflow_id`` limits the plan to one workflow; by default the first
    workflow to reach the point crashes the runtime. Plan it before or after launch; it
    fires once. After the crash every call on the runtime raises ``LitewfError``; leave
    its ``async with`` block (or call ``shutdown()``), which then writes nothing.
    """
    if not isinstance(runtime, Runtime):
        raise InvalidValueError(f"crash_at() needs a litewf.Runtime, got {runtime!r}")
    if (after_operations is None) == (before_step is None):
        raise InvalidValueError("crash_at() needs exactly one of after_operations= or before_step=")
    if after_operations is not None:
        check_count(after_operations, "after_operations")
    check_key(before_step, "before_step", optional=True)
    if workflow_id is not None:
        check_id(workflow_id)
    if runtime._crash_hook is not None:
        raise LitewfError(f"a crash is already planned for {runtime!r}; plan one at a time")
    crash = Crash(runtime, after_operations, before_step, workflow_id)
    runtime._crash_hook = crash._check
    return crash


def crash_now(runtime: Runtime) -> None:
    """Make a launched ``runtime`` die at once, as if its process were SIGKILLed now."""
    if not isinstance(runtime, Runtime):
        raise InvalidValueError(f"crash_now() needs a litewf.Runtime, got {runtime!r}")
    runtime._launched("crash_now()")
    runtime._die("on crash_now()")

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

``check_replay(rt, path)`` replays every history stored in a database (a copy of
production, say) against today's code, running no step bodies, and reports each
divergence: run it in CI before deploying.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from ._backend import SqliteBackend
from ._check import Divergence, ReplayReport, check_replay
from ._exceptions import InvalidValueError, LitewfError
from ._replay import Crashed
from ._runtime import Runtime
from ._validate import check_count, check_id, check_key
from ._virtualclock import VirtualClock

__all__ = [
    "Crash",
    "Divergence",
    "ReplayReport",
    "VirtualClock",
    "backend",
    "check_replay",
    "crash_at",
    "crash_now",
    "hibernated",
    "waiting",
]

for _shown in (VirtualClock, Divergence, ReplayReport, check_replay):
    _shown.__module__ = __name__  # shown as litewf.testing.X
del _shown


class Crash:
    """A planned crash of one runtime; ``await crash.wait()`` returns once it happened."""

    def __init__(
        self, after_operations: int | None, before_step: str | None, workflow_id: str | None
    ) -> None:
        self._die: Callable[[str], None] | None = None
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

    def attached(self, die: Callable[[str], None]) -> None:
        self._die = die

    def before_operation(self, workflow_id: str, op_id: int, name: str | None) -> None:
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
        self.happen(where)
        raise Crashed()

    def happen(self, where: str) -> None:
        """Make the runtime die now, ``where`` saying at what point."""
        assert self._die is not None, "not planned on a runtime"
        self._die(where)
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
    crash = Crash(after_operations, before_step, workflow_id)
    runtime.use_hooks(crash)
    return crash


def crash_now(runtime: Runtime) -> None:
    """Make a launched ``runtime`` die at once, as if its process were SIGKILLed now."""
    if not isinstance(runtime, Runtime):
        raise InvalidValueError(f"crash_now() needs a litewf.Runtime, got {runtime!r}")
    runtime._session_for("crash_now()")  # not launched (or dead): say so
    crash = runtime.hooks
    if not isinstance(crash, Crash):  # none planned (crash_at's, if any, dies with this)
        crash = Crash(None, None, None)
        runtime.use_hooks(crash)
    crash.happen("on crash_now()")


def waiting(runtime: Runtime) -> int:
    """How many waits (``recv``, ``get_event``, ``get_result``, ...) of a launched
    ``runtime`` are registered now: await a count to know workflows reached their waits."""
    return runtime._session_for("waiting()").notifier.waiting


def backend(runtime: Runtime) -> SqliteBackend:
    """The storage backend of a launched ``runtime``, for tests that look below the API
    (pragmas, statements run). Its surface is internal and may change in any release.
    SQLite only: a runtime on PostgreSQL raises ``LitewfError``."""
    found = runtime._session_for("backend()").backend
    if not isinstance(found, SqliteBackend):
        raise LitewfError(f"testing.backend() looks into SQLite; {runtime!r} is on PostgreSQL")
    return found


def hibernated(runtime: Runtime) -> frozenset[str]:
    """The IDs of a launched ``runtime``'s workflows whose recorded wait left memory
    (``max_resident_waits``): they still wait, and count in ``waiting``."""
    runtime._session_for("hibernated()")
    return frozenset(runtime._executor.hibernation.parked)

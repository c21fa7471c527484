"""The Runtime: the facade that registers workflows and steps, launches, and shuts down.

It wires the parts: an ``Executor`` (runs workflows), a ``Session`` per launch (the
database and its waiters), recovery, and the runtime's own serving task (``_serving``).
The calls it shares with a Client are ``_api.SessionCalls``.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

import anyio

from . import _operations as operations
from . import _replay as replay
from . import _streams as streams
from ._api import SessionCalls
from ._clock import REAL_CLOCK, Clock
from ._dbfile import absolute_path
from ._deadlines import check_start
from ._exceptions import InvalidValueError, LitewfError, RuntimeNotLaunchedError
from ._executor import Executor
from ._hibernation import DEFAULT_MAX_RESIDENT_WAITS, check_max_resident
from ._patches import PatchCalls
from ._queues import Queue
from ._recovery import recover
from ._registration import Registration
from ._schedules import RuntimeScheduleCalls
from ._serialization import JsonSerializer, Serializer
from ._serving import (
    Serving,
    Settings,
    default_executor_id,
    failure,
    loop_gone,
    serve,
    warn_unclosed,
)
from ._session import Session
from ._threads import StepThreads
from ._ticks import ScheduleSpec
from ._types import Durability
from ._validate import DEFAULT_WAIT_S, check_count, check_id, check_timeout
from ._waiting import WaitCalls
from ._workflow import Workflow, WorkflowHandle

__all__ = ["Runtime"]

P = ParamSpec("P")
R = TypeVar("R")


class Runtime(Registration, SessionCalls, WaitCalls, PatchCalls, RuntimeScheduleCalls):
    """A durable workflow runtime over one SQLite file.

    Constructing it opens nothing. ``async with rt:`` (or ``launch()``) opens and migrates
    the database, recovers workflows whose process died, and serves until ``shutdown()``;
    workflows still running then stay PENDING and resume at the next launch.
    ``launch()`` and ``shutdown()`` may be called from different tasks.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "litewf.db",
        *,
        executor_id: str | None = None,
        serializer: Serializer | None = None,
        durability: Durability = "full",
        poll_interval: float = 0.01,
        max_recovery_attempts: int = 50,
        recovery_interval: float = 1.0,
        clock: Clock | None = None,
        shutdown_timeout: float = 10.0,
        max_resident_waits: int | None = DEFAULT_MAX_RESIDENT_WAITS,
    ) -> None:
        if durability not in ("full", "normal"):
            raise InvalidValueError(f"durability must be 'full' or 'normal', got {durability!r}")
        for value, what in (
            (poll_interval, "poll_interval"),
            (recovery_interval, "recovery_interval"),
        ):
            if check_timeout(value, what) == 0:
                raise InvalidValueError(f"{what} must be more than 0 seconds")
        check_count(max_recovery_attempts, "max_recovery_attempts")
        resident_cap = check_max_resident(max_resident_waits)
        # Resolved now: a later chdir must not change which file is meant.
        self.path = absolute_path(path)
        self.executor_id = (
            default_executor_id() if executor_id is None else check_id(executor_id, "executor_id")
        )
        self.serializer: Serializer = serializer if serializer is not None else JsonSerializer()
        self.durability: Durability = durability
        self.poll_interval = float(poll_interval)
        self.max_recovery_attempts = max_recovery_attempts
        self.recovery_interval = float(recovery_interval)
        #: How long shutdown waits for sync step bodies still running in threads.
        self.shutdown_timeout: float = check_timeout(shutdown_timeout, "shutdown_timeout")
        if clock is not None and not isinstance(clock, Clock):
            raise InvalidValueError(
                f"clock must be a litewf.testing.VirtualClock, or None for real time; got {clock!r}"
            )
        #: Where deadlines are read and timed waits happen (real time unless a test says).
        self.clock: Clock = REAL_CLOCK if clock is None else clock
        self._step_threads = StepThreads()
        self._executor = Executor(self.executor_id)
        #: Recorded waits kept in memory at most; the longest-waiting beyond hibernate.
        self._executor.hibernation.cap = resident_cap
        self.clock.attach(self._executor.running_ids)
        self._serving: Serving | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._reclaim = False  # a launch whose event loop died left workflows owned
        self._queues: dict[str, Queue] = {}
        self._declared: dict[str, ScheduleSpec] = {}  # @rt.scheduled's, stored at launch

    def __repr__(self) -> str:
        return f"<litewf.Runtime {self.path!r} executor={self.executor_id!r}>"

    # -- registration ----------------------------------------------------------------------

    def use_hooks(self, hooks: replay.Hooks) -> None:
        """Plug in ``litewf.testing``'s crash plan (one at a time); see ``replay.Hooks``."""
        if self._executor.hooks.hooks is not None:
            raise LitewfError(f"a crash is already planned for {self!r}; plan one at a time")
        self._executor.hooks.hooks = hooks
        hooks.attached(self._die)

    @property
    def hooks(self) -> replay.Hooks | None:
        """The plugged-in hooks, if any (see ``use_hooks``)."""
        return self._executor.hooks.hooks

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.launch()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    async def launch(self) -> None:
        """Open and migrate the database, recover dead executors' workflows, start serving.

        The runtime serves from a task of its own, so ``shutdown()`` may be called from
        another task than ``launch()``. A launch whose event loop has gone (``anyio.run``
        returned) is forgotten here and its workflows are taken back.
        """
        loop = asyncio.get_running_loop()
        serving = self._serving
        if serving is not None:
            if serving.done.is_set():
                self._serving = None  # it stopped on its own (an error, or its loop's end)
            elif loop_gone(serving.loop, loop):
                self._abandon(serving)
            else:
                raise LitewfError(f"{self!r} is already launched")
        session = Session(
            self.path,
            serializer=self.serializer,
            durability=self.durability,
            poll_interval=self.poll_interval,
            create=True,
            clock=self.clock,
        )
        session.on_lost = self._halt
        serving = self._serving = Serving(loop, session)
        settings = Settings(
            name=repr(self),
            max_recovery_attempts=self.max_recovery_attempts,
            recovery_interval=self.recovery_interval,
            shutdown_timeout=self.shutdown_timeout,
            on_stop=self._forget_finalizer,
        )
        serving.task = loop.create_task(
            serve(
                serving,
                self._executor,
                self._step_threads,
                settings,
                reclaim=self._reclaim,
                queues=self._queues,
                schedules=self._declared,
            ),
            name=f"litewf {self.path}",
        )
        try:
            await serving.ready.wait()
        except BaseException:  # cancelled while starting: stop, then report the cancel
            serving.stop()
            with anyio.CancelScope(shield=True):
                await serving.done.wait()
            raise
        if serving.done.is_set():
            self._serving = None
            error = serving.error
            while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
                error = error.exceptions[0]  # the task group wraps what failed to start
            raise error or LitewfError(f"the launch of {self!r} was interrupted")
        self._reclaim = False  # taken back by this launch
        if self._finalizer is not None:
            self._finalizer.detach()  # an earlier launch's: this one is what counts now
        self._finalizer = weakref.finalize(self, warn_unclosed, repr(self))

    def _forget_finalizer(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()

    def _abandon(self, serving: Serving) -> None:
        """Forget a launch whose event loop has ended without shutting it down.

        Its task can never run again: drop its connection and executor lock here; the
        next launch releases its workflows and takes them back (no recovery attempt).
        """
        self._serving = None
        self._executor.detach()
        if serving.abandon():
            self._reclaim = self._executor.dead is None

    async def shutdown(self) -> None:
        """Stop running workflows (they stay PENDING), release them, close the database.

        May be called from another task than ``launch()``. An error that stopped the
        runtime is raised here; KeyboardInterrupt and SystemExit from workflow code are
        not (asyncio raised them out of the event loop already).
        """
        serving = self._serving
        if serving is None:
            return
        if serving.opened:
            serving.session.backend.check_process()  # a fork() child must not touch it
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        elsewhere = not serving.done.is_set() and serving.loop is not current
        if elsewhere and not loop_gone(serving.loop, current):
            raise LitewfError(
                f"{self!r} serves another event loop, which still runs; shut it down from that loop"
            )
        if self._finalizer is not None:
            self._finalizer.detach()
        if elsewhere:
            self._abandon(serving)  # its event loop has ended
            return
        serving.stop()
        with anyio.CancelScope(shield=True):
            await serving.done.wait()
        if self._serving is serving:
            self._serving = None
        error = failure(serving.error)
        if error is not None and self._executor.dead is None:
            raise error  # (after a simulated crash, dying tasks' errors have no one to tell)

    def _session_for(self, call: str) -> Session:
        checking = replay.checking_session()  # litewf.testing.check_replay's copy
        if checking is not None:
            return checking
        serving = self._serving
        if serving is None:
            raise RuntimeNotLaunchedError(call)
        return serving.session_for(call, repr(self), self._executor.dead)

    def _workflow(self) -> replay.WorkflowContext | None:
        return replay.current()

    def _runner(self) -> Executor:
        return self._executor

    def _loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop this runtime serves, if launched (``SyncRuntime``'s portal)."""
        return None if self._serving is None else self._serving.loop

    def _die(self, where: str) -> None:
        """Die as a SIGKILL would (for ``litewf.testing``): from now on write nothing.

        Running workflows and the recovery loop are cancelled (a transaction not yet
        committing rolls back), nothing is released, the executor lock is dropped the
        way the OS drops it, and every call or wait on this runtime raises. The task
        group is left to ``shutdown()``, which then writes nothing.
        """
        serving = self._serving
        self._session_for("crash_now()")
        assert serving is not None
        self._executor.hooks.hooks = None
        serving.drop_lock()
        self._halt(
            f"{self!r} crashed {where} (simulated by litewf.testing); launch a new Runtime "
            f"on {self.path!r} to recover its workflows"
        )

    def _halt(self, reason: str) -> None:
        """Stop for good without writing: cancel running workflows and the recovery loop,
        wake every waiter, make every later call raise ``LitewfError(reason)``.

        Also used when the database is lost (its -wal file deleted); the executor lock is
        then kept until ``shutdown()``, so peers see this runtime alive and refuse the file.
        """
        serving = self._serving
        if serving is None or not serving.opened or self._executor.dead is not None:
            return
        self._executor.halt(reason)
        serving.background.cancel()
        serving.session.notifier.close(reason)

    # -- workflows -------------------------------------------------------------------------

    async def start_workflow(
        self,
        fn: Workflow[P, R],
        *args: Any,
        workflow_id: str | None = None,
        timeout: float | timedelta | None = None,
        deadline: datetime | None = None,
        delay: float | timedelta | None = None,
        start_at: datetime | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[R]:
        """Durably record the workflow as PENDING, then run it; return its handle (an
        existing ID's, run no more). In a workflow: a child, an operation. ``timeout=``/
        ``deadline=``, ``delay=``/``start_at=``: see the README's "Deadlines and timeouts"."""
        timing = check_start(timeout, deadline, delay, start_at, self.clock.time())
        handle: WorkflowHandle[R] = await self._start(fn, args, kwargs, workflow_id, timing)
        return handle

    async def _start(self, fn: Any, args: Any, kwargs: Any, wid: Any, timing: Any = None) -> Any:
        session = self._session_for("start_workflow")
        return await self._executor.start(session, fn, args, kwargs, wid, timing)

    async def resume_workflow(self, workflow_id: str) -> WorkflowHandle[Any]:
        """Run a cancelled or failed workflow again from the top, replaying what it recorded.

        A workflow that succeeded, or is PENDING, is left as it is.
        """
        session = self._session_for("resume_workflow")
        return await self._executor.resume(session, workflow_id)

    async def recover(self) -> None:
        """Run a recovery pass now: take over PENDING workflows whose executor is gone,
        and run again this runtime's own that no task runs. The runtime does this at
        launch and every ``recovery_interval``; call it after registering a workflow
        late, or in a test that must not wait for the next pass."""
        session = self._session_for("recover")
        await recover(self._executor, session, self.max_recovery_attempts, first=False)

    def current_workflow_id(self) -> str | None:
        """The ID of the workflow running in this task (also inside its steps), or None."""
        return replay.current_workflow_id()

    # -- durable calls only a workflow makes -----------------------------------------------

    async def sleep(self, seconds: float) -> None:
        """Sleep durably: the wake-up time is recorded, so a restart keeps the original one.

        Outside a workflow this is a plain sleep.
        """
        seconds = check_timeout(seconds, "seconds")
        ctx = replay.current()
        if ctx is None:
            await self.clock.sleep(seconds)
        else:
            await operations.sleep(ctx, seconds)

    async def set_event(self, key: str, value: Any) -> None:
        """Publish an immutable key-value pair from the running workflow."""
        await operations.set_event(replay.require("set_event()"), key, value)

    async def write_stream(self, key: str, value: Any) -> None:
        """Append ``value`` to this workflow's stream ``key`` (in a workflow: exactly once;
        in a step: at once, and not again when the step runs again)."""
        await streams.write_anywhere(key, value)

    async def close_stream(self, key: str) -> None:
        """Close this workflow's stream ``key``: readers end after its last value."""
        await streams.close_anywhere(key)

    async def recv(
        self,
        topic: str | None = None,
        timeout: float = DEFAULT_WAIT_S,
        *,
        deadline: datetime | None = None,
    ) -> Any:
        """Consume the next message on this workflow's ``topic`` queue, or None once
        ``timeout`` seconds pass (or the aware datetime ``deadline``, given instead)."""
        return await operations.recv(replay.require("recv()"), topic, timeout, deadline)

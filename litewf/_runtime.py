"""The Runtime: registers workflows and steps, runs them, and recovers them after crashes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import secrets
import socket
import sqlite3
import uuid
import warnings
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from datetime import timedelta
from types import EllipsisType, TracebackType
from typing import Any, ParamSpec, Self, TypeVar, overload

import anyio
from anyio.abc import TaskGroup

from . import _context as context
from . import _management as management
from . import _reads as reads
from . import _store as store
from ._clock import REAL_CLOCK, Clock
from ._core import Core
from ._db import Database, Durability, Tx, absolute_path, hold_side_files
from ._events import get_event_in_workflow, set_event_in_workflow
from ._exceptions import (
    DatabaseError,
    InvalidValueError,
    LitewfError,
    RuntimeNotLaunchedError,
    WorkflowConflictError,
    _Superseded,
)
from ._liveness import ExecutorLock
from ._management import CollectedCounts, QueuedMessage, StepRecord
from ._messages import recv_in_workflow, send_in_workflow
from ._notifier import Key, Notifier, status_key
from ._recovery import recover
from ._serialization import (
    JsonSerializer,
    Serializer,
    dumps_checked,
    encode_exception,
    exception_type_and_message,
    loads_checked,
)
from ._serving import Serving, failure, loop_gone, stopped_by
from ._step import Step
from ._threads import StepThreads
from ._types import Status, WorkflowStatus
from ._validate import check_count, check_id, check_key, check_timeout, check_value
from ._workflow import Workflow, WorkflowHandle

__all__ = ["Runtime"]

logger = logging.getLogger("litewf")

P = ParamSpec("P")
R = TypeVar("R")


def _default_executor_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


def _warn_unclosed(description: str) -> None:
    # ResourceWarning is hidden by Python's default filters, so say it in the log too.
    logger.warning(
        "%s was never shut down; its workflows stay PENDING until recovered", description
    )
    warnings.warn(
        f"{description} was never shut down; use 'async with rt:' or await rt.shutdown() "
        f"(its workflows stay PENDING and are recovered at the next launch)",
        ResourceWarning,
        stacklevel=1,
    )


class Runtime:
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
        # Resolved now: a later chdir must not change which file is meant.
        self.path = absolute_path(path)
        self.executor_id = (
            _default_executor_id() if executor_id is None else check_id(executor_id, "executor_id")
        )
        self.serializer: Serializer = serializer if serializer is not None else JsonSerializer()
        self.durability: Durability = durability
        self.poll_interval = float(poll_interval)
        self.max_recovery_attempts = max_recovery_attempts
        self.recovery_interval = float(recovery_interval)
        #: How long shutdown waits for sync step bodies still running in threads.
        self.shutdown_timeout: float = check_timeout(shutdown_timeout, "shutdown_timeout")
        self._step_threads = StepThreads()
        self._workflows: dict[str, Workflow[Any, Any]] = {}
        self._core: Core | None = None
        self._tg: TaskGroup | None = None
        self._lock: ExecutorLock | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._serving: Serving | None = None
        self._reclaim = False  # a launch whose event loop died left workflows owned
        self._running: dict[str, anyio.CancelScope] = {}
        #: Resumed while their previous run still unwinds: run again when it has ended.
        self._respawn: dict[str, tuple[Workflow[Any, Any], str]] = {}
        #: Being started or resumed here: their row is ours before their task exists.
        self._starting: dict[str, int] = {}
        #: Whose task ended since the recovery loop last looked for idle workflows.
        self._ended: set[str] = set()
        self._finishing: set[str] = set()
        self._warned: set[str] = set()
        if clock is not None and not isinstance(clock, Clock):
            raise InvalidValueError(
                f"clock must be a litewf.testing.VirtualClock, or None for real time; got {clock!r}"
            )
        #: Where deadlines are read and timed waits happen (real time unless a test says).
        self.clock: Clock = REAL_CLOCK if clock is None else clock
        self.clock.attach(self)
        #: Set by litewf.testing to simulate a crash at a chosen point (see _die).
        self._crash_hook: Callable[[str, int, str | None], None] | None = None
        self._dead: str | None = None
        self._background: anyio.CancelScope | None = None  # the recovery loop's scope

    def __repr__(self) -> str:
        return f"<litewf.Runtime {self.path!r} executor={self.executor_id!r}>"

    # -- registration ----------------------------------------------------------------------

    def workflow(
        self, name: str | None = None
    ) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Workflow[P, R]]:
        """Register an async function as a workflow; ``name`` defaults to module.qualname."""

        def register(fn: Callable[P, Coroutine[Any, Any, R]]) -> Workflow[P, R]:
            if not callable(fn) or not _is_async(fn):
                raise InvalidValueError(f"@rt.workflow() needs an 'async def' function, got {fn!r}")
            wf_name = check_key(name, "name", optional=True) or _qualified_name(fn)
            if wf_name in self._workflows:
                raise InvalidValueError(
                    f"a workflow named {wf_name!r} is already registered on this runtime; "
                    f"pass @rt.workflow(name=...) to tell them apart"
                )
            wf = Workflow(self, fn, wf_name)
            self._workflows[wf_name] = wf
            return wf

        return register

    @overload
    def step(
        self,
        name: str | None = ...,
        *,
        retries: int = ...,
        retry_interval: float = ...,
        backoff: float = ...,
    ) -> _StepDecorator: ...

    @overload
    def step(self, name: Callable[P, Awaitable[R]]) -> Step[P, R]: ...

    def step(
        self,
        name: str | Callable[..., Any] | None = None,
        *,
        retries: int = 0,
        retry_interval: float = 1.0,
        backoff: float = 2.0,
    ) -> Any:
        """Register a checkpointed step (sync or async); usable as ``@rt.step()``."""
        if callable(name):
            return self.step()(name)
        check_count(retries, "retries")
        check_timeout(retry_interval, "retry_interval")
        if check_timeout(backoff, "backoff") < 1:
            raise InvalidValueError(f"backoff must be >= 1, got {backoff!r}")
        step_name = check_key(name, "name", optional=True)
        return _StepDecorator(self, step_name, retries, float(retry_interval), float(backoff))

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
        core = Core(
            self.path,
            serializer=self.serializer,
            durability=self.durability,
            poll_interval=self.poll_interval,
            create=True,
            clock=self.clock,
        )
        core.on_lost = self._halt
        self._dead = None
        self._background = anyio.CancelScope()
        serving = self._serving = Serving(loop)
        serving.task = loop.create_task(self._serve(core, serving), name=f"litewf {self.path}")
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
        if self._finalizer is not None:
            self._finalizer.detach()  # an earlier launch's: this one is what counts now
        self._finalizer = weakref.finalize(self, _warn_unclosed, repr(self))

    async def _serve(self, core: Core, serving: Serving) -> None:
        """The runtime's own task: hosts its task group from launch until shutdown.

        Errors are kept in ``serving.error`` for ``launch()`` or ``shutdown()`` to raise.
        """
        lock: ExecutorLock | None = None
        try:
            async with anyio.create_task_group() as tg:
                serving.tg = tg
                await core.open(tg)
                lock = ExecutorLock(self.path, self.executor_id)
                lock.acquire()
                self._core, self._tg, self._lock = core, tg, lock
                core.notifier.add_listener(self._on_change)
                if self._reclaim:  # a launch whose event loop died held these: not a crash
                    await core.db.write(store.release_workflows, self.executor_id)
                    self._reclaim = False
                await recover(self, first=True)
                tg.start_soon(self._recovery_loop)
                serving.ready.set()
                await anyio.sleep_forever()  # until shutdown() cancels the task group
        except GeneratorExit:
            raise  # its event loop is gone and the task is being destroyed
        except BaseException as exc:  # kept for launch() or shutdown() to raise
            serving.error = exc
            if serving.ready.is_set() and not serving.stopping and failure(exc) is not None:
                logger.error("%r stopped serving after an error", self, exc_info=exc)
        finally:
            if not serving.abandoned:
                await self._close(core, serving, lock)

    async def _close(self, core: Core, serving: Serving, lock: ExecutorLock | None) -> None:
        """Release this launch's PENDING workflows (unless it crashed) and close it all."""
        opened = self._core is core
        if opened:
            self._core = self._tg = self._lock = None
        if self._finalizer is not None and serving.stopping:
            self._finalizer.detach()  # else (its event loop ended): still never shut down
        self._running.clear()
        self._respawn.clear()
        self._ended.clear()
        try:
            with anyio.CancelScope(shield=True):
                try:
                    if opened and self._dead is None:  # a crashed process releases nothing
                        keep = await self._wait_for_step_bodies()
                        await core.db.write(store.release_workflows, self.executor_id, keep)
                finally:
                    if lock is not None:
                        if self._step_threads.alive():
                            # A step body outlived the wait: hold the lock (no peer takes its
                            # workflow) and the -wal file (a live lock over a missing -wal
                            # means "deleted" to other openers) until the last body ends.
                            hold = hold_side_files(core.db.path)
                            self._step_threads.after_all(functools.partial(_let_go, lock, hold))
                        else:  # before closing: a live lock says the -wal file exists
                            lock.release()  # a no-op if a simulated crash abandoned it
                    await core.db.close()
        finally:
            serving.ready.set()
            serving.done.set()

    async def _wait_for_step_bodies(self) -> set[str]:
        """Wait up to ``shutdown_timeout`` for sync step bodies still running in threads
        (a thread cannot be stopped); return the workflows whose body still runs. Those
        stay owned by this executor, not released, and its lock is held until the last
        body ends, so no other process runs the same step meanwhile; they are recovered
        once the bodies end or this process exits."""
        running = len(self._step_threads.alive())
        if running:
            logger.info(
                "shutdown waits up to %g s for %d step bodies still running in threads",
                self.shutdown_timeout,
                running,
            )
        keep = await self._step_threads.wait(self.shutdown_timeout)
        if keep:
            logger.warning(
                "step bodies of workflows %s still run after %g s; those workflows stay "
                "owned by this process until the bodies end or it exits",
                ", ".join(sorted(keep)),
                self.shutdown_timeout,
            )
        return keep

    def _abandon(self, serving: Serving) -> None:
        """Forget a launch whose event loop has ended without shutting it down.

        Its task can never run again: drop its connection and executor lock here; the
        next launch releases its workflows and takes them back (no recovery attempt).
        """
        serving.abandoned = True
        self._serving = None
        core, lock = self._core, self._lock
        self._core = self._tg = self._lock = None
        self._running.clear()
        self._respawn.clear()
        if lock is not None:  # before the connection: a live lock says the -wal file exists
            lock.release()
        if core is not None:
            core.db.abandon()
            self._reclaim = self._dead is None

    async def shutdown(self) -> None:
        """Stop running workflows (they stay PENDING), release them, close the database.

        May be called from another task than ``launch()``. An error that stopped the
        runtime is raised here; KeyboardInterrupt and SystemExit from workflow code are
        not (asyncio raised them out of the event loop already).
        """
        serving = self._serving
        if serving is None:
            return
        if self._core is not None:
            self._core.db.check_process()  # a fork() child must not touch the parent's task
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
        if error is not None and self._dead is None:
            raise error  # (after a simulated crash, dying tasks' errors have no one to tell)

    # -- internals shared with steps and operations -------------------------------------------

    def _launched(self, call: str) -> Core:
        serving = self._serving
        if self._core is None or serving is None:
            if serving is not None and stopped_by(serving.error) is not None:
                raise LitewfError(
                    f"{self!r} stopped serving after an error ({serving.error!r}); "
                    f"shut it down and launch it again"
                ) from serving.error
            raise RuntimeNotLaunchedError(call)
        if self._dead is not None:
            raise LitewfError(self._dead)
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = serving.loop  # called from a worker thread: nothing to compare
        if current is not serving.loop:
            if loop_gone(serving.loop, current):
                raise LitewfError(
                    f"{self!r} was launched in an event loop that has ended; call "
                    f"launch() again in this one (it takes back its workflows)"
                )
            raise LitewfError(
                f"{self!r} serves another event loop, which still runs; call it from "
                f"that loop (a runtime serves one event loop at a time)"
            )
        return self._core

    def _die(self, where: str) -> None:
        """Die as a SIGKILL would (for ``litewf.testing``): from now on write nothing.

        Running workflows and the recovery loop are cancelled (a transaction not yet
        committing rolls back), nothing is released, the executor lock is dropped the
        way the OS drops it, and every call or wait on this runtime raises. The task
        group is left to ``shutdown()``, which then writes nothing.
        """
        if self._core is None or self._dead is not None:
            return
        self._crash_hook = None
        if self._lock is not None:
            self._lock.abandon()
            self._lock = None
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
        core = self._core
        if core is None or self._dead is not None:
            return
        self._dead = reason
        for scope in self._running.values():
            scope.cancel()
        if self._background is not None:
            self._background.cancel()
        core.notifier.close(reason)

    def _reading(self) -> context.WorkflowContext | None:
        """The running workflow whose reads of this database are recorded operations."""
        return context.reading(self._core)

    @property
    def db(self) -> Database:
        return self._launched("this call").db

    @property
    def notifier(self) -> Notifier:
        return self._launched("this call").notifier

    # -- workflows -------------------------------------------------------------------------

    async def start_workflow(
        self,
        fn: Workflow[P, R],
        *args: Any,
        workflow_id: str | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[R]:
        """Durably record the workflow as PENDING, then run it; return its handle.

        An existing ID returns a handle to that workflow without running it again. Inside a
        workflow this starts a child, an operation whose default ID is derived from the
        parent's ID and the operation number.
        """
        return await self._start(fn, args, kwargs, workflow_id)

    async def _start(
        self,
        fn: Workflow[P, R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        workflow_id: str | None,
    ) -> WorkflowHandle[R]:
        core = self._launched("start_workflow")
        wf = self._registered(fn)
        if workflow_id is not None:
            check_id(workflow_id)
        inputs = dumps_checked(
            self.serializer,
            {"args": list(args), "kwargs": kwargs},
            f"the arguments of workflow {wf.name!r}",
            wrapping=2,  # {"args": [...]}: each argument may nest MAX_VALUE_DEPTH deep
        )
        ctx = context.current()
        if ctx is None:
            wid = workflow_id if workflow_id is not None else str(uuid.uuid4())
            with self._starting_up(wid):
                existing = await core.db.write(
                    store.insert_workflow, wid, wf.name, inputs, self.executor_id, None
                )
                _check_same(wid, existing, wf.name)
                if existing is None:
                    self._spawn(wid, wf, inputs, fresh=True)
            return WorkflowHandle(core, wid)
        else:
            op_id = ctx.reserve()
            op_name = f"{context.CHILD_PREFIX}{wf.name}"
            recorded = ctx.replayed(op_id, op_name)  # the name is the child's identity
            if recorded is not None:
                child_id: str = ctx.outcome(recorded, "child workflow ID")
                return WorkflowHandle(core, child_id)
            wid = workflow_id if workflow_id is not None else f"{ctx.workflow_id}-{op_id}"
            parent, child_output = ctx, self.serializer.dumps(wid)

            def start_child(tx: Tx) -> str | None:
                existing = store.insert_workflow(
                    tx, wid, wf.name, inputs, self.executor_id, parent.workflow_id
                )
                _check_same(wid, existing, wf.name)
                parent.record(tx, op_id, op_name, child_output)
                return existing

            with self._starting_up(wid):
                existing = await ctx.write(start_child)
                if existing is None:
                    self._spawn(wid, wf, inputs, fresh=True)
        return WorkflowHandle(core, wid)

    async def retrieve_workflow(self, workflow_id: str) -> WorkflowHandle[Any]:
        """A handle to a stored workflow; ``WorkflowNotFoundError`` if there is none."""
        core = self._launched("retrieve_workflow")
        ctx = self._reading()
        if ctx is not None:
            await reads.retrieve(ctx, core, workflow_id)
        else:
            await core.require_exists(check_id(workflow_id))
        return WorkflowHandle(core, workflow_id)

    async def list_workflows(
        self,
        *,
        status: Status | str | None = None,
        name: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[WorkflowStatus]:
        """Stored workflows, newest first."""
        core = self._launched("list_workflows")
        ctx = self._reading()
        if ctx is not None:
            return await reads.list_workflows(ctx, core, status, name, limit, offset)
        return await core.list_workflows(status=status, name=name, limit=limit, offset=offset)

    async def cancel_workflow(self, workflow_id: str) -> None:
        """Cancel a PENDING workflow wherever it runs; a finished one is left unchanged."""
        await self._launched("cancel_workflow").cancel_workflow(workflow_id)

    async def resume_workflow(self, workflow_id: str) -> WorkflowHandle[Any]:
        """Run a cancelled or failed workflow again from the top, replaying what it recorded.

        A workflow that succeeded, or is PENDING, is left as it is.
        """
        core = self._launched("resume_workflow")
        registered = self._workflows

        def owner(name: str) -> str | None:
            # Ours if we can run it; else unowned, for a peer that has the function.
            return self.executor_id if name in registered else None

        with self._starting_up(check_id(workflow_id)):
            restarted = await core.resume_workflow(workflow_id, owner)
            if restarted is not None and restarted[0] in registered:
                name, inputs = restarted
                self._spawn(workflow_id, registered[name], inputs, fresh=False)
        return WorkflowHandle(core, workflow_id)

    async def list_steps(self, workflow_id: str) -> list[StepRecord]:
        """The workflow's recorded operations (steps, sleeps, messages, events, children)."""
        core = self._launched("list_steps")
        ctx = self._reading()
        if ctx is not None:
            return await reads.list_steps(ctx, core, workflow_id)
        return await management.list_steps(core, workflow_id)

    async def list_messages(
        self, workflow_id: str, topic: str | EllipsisType | None = ...
    ) -> list[QueuedMessage]:
        """Messages queued for the workflow and not received yet; every topic by default."""
        return await management.list_messages(self._launched("list_messages"), workflow_id, topic)

    async def garbage_collect(
        self, *, older_than: float | timedelta, keep_pending: bool = True, dry_run: bool = False
    ) -> CollectedCounts:
        """Delete workflow trees whose root finished more than ``older_than`` (seconds)
        ago, with their data; a child goes only with its root.

        Trees with a PENDING member are kept; ``keep_pending=False`` also deletes trees
        whose root is PENDING and not updated for that long (running ones stop). Safe
        while workflows run: it deletes in short transactions.
        ``dry_run=True`` returns the counts it would delete and deletes nothing.
        """
        core = self._launched("garbage_collect")
        return await management.garbage_collect(core, older_than, keep_pending, dry_run)

    def current_workflow_id(self) -> str | None:
        """The ID of the workflow running in this task (also inside its steps), or None."""
        return context.current_workflow_id()

    # -- durable calls ---------------------------------------------------------------------

    async def sleep(self, seconds: float) -> None:
        """Sleep durably: the wake-up time is recorded, so a restart keeps the original one.

        Outside a workflow this is a plain sleep.
        """
        seconds = check_timeout(seconds, "seconds")
        ctx = context.current()
        if ctx is None:
            await self.clock.sleep(seconds)
            return
        op_id = ctx.reserve()
        recorded = ctx.replayed(op_id, "sleep")
        if recorded is not None:
            wake_at = float(ctx.outcome(recorded, "wake-up time"))
        else:
            wake_at = self.clock.time() + seconds
            await ctx.write(ctx.record, op_id, "sleep", self.serializer.dumps(wake_at))
        await self.clock.sleep_until(wake_at)

    async def set_event(self, key: str, value: Any) -> None:
        """Publish an immutable key-value pair from the running workflow."""
        ctx = context.require("set_event()")
        check_key(key, "key")
        check_value(value, "an event value")
        data = dumps_checked(self.serializer, value, f"the value of event {key!r}")
        await set_event_in_workflow(self, ctx, key, data)

    async def get_event(self, workflow_id: str, key: str, timeout: float = 60.0) -> Any:
        """Wait for a workflow's event; the value, or None once ``timeout`` seconds pass."""
        core = self._launched("get_event")
        ctx = context.current()
        if ctx is None:
            return await core.get_event(workflow_id, key, timeout)
        check_id(workflow_id)
        check_key(key, "key")
        seconds = check_timeout(timeout)
        return await get_event_in_workflow(self, ctx, workflow_id, key, seconds)

    async def get_all_events(self, workflow_id: str) -> dict[str, Any]:
        """Every event the workflow has set so far."""
        core = self._launched("get_all_events")
        ctx = self._reading()
        if ctx is not None:
            return await reads.get_all_events(ctx, core, workflow_id)
        return await core.get_all_events(workflow_id)

    async def send(
        self,
        destination_id: str,
        message: Any,
        topic: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> bool:
        """Put ``message`` on the destination's ``topic`` queue; on disk when this returns.

        Returns False (and enqueues nothing) if ``idempotency_key`` was used before for
        this destination; True otherwise. In a workflow a replay returns what the first
        run got.
        """
        core = self._launched("send")
        ctx = context.current()
        if ctx is None:
            return await core.send(destination_id, message, topic, idempotency_key)
        check_id(destination_id, "destination_id")
        check_value(message, "message")
        check_key(topic, "topic", optional=True)
        check_key(idempotency_key, "idempotency_key", optional=True)
        data = dumps_checked(self.serializer, message, "the message")
        return await send_in_workflow(self, ctx, destination_id, data, topic, idempotency_key)

    async def recv(self, topic: str | None = None, timeout: float = 60.0) -> Any:
        """Consume the next message on this workflow's ``topic`` queue, or None on timeout."""
        ctx = context.require("recv()")
        check_key(topic, "topic", optional=True)
        seconds = check_timeout(timeout)
        return await recv_in_workflow(self, ctx, topic, seconds)

    # -- running -------------------------------------------------------------------------

    def _registered(self, fn: Any) -> Workflow[Any, Any]:
        if isinstance(fn, Workflow) and self._workflows.get(fn.name) is fn:
            return fn
        raise InvalidValueError(
            f"{fn!r} is not a workflow of this runtime; decorate it with @rt.workflow()"
        )

    def _spawn(
        self,
        workflow_id: str,
        wf: Workflow[Any, Any],
        inputs: str,
        *,
        fresh: bool,
        recheck: bool = False,
    ) -> None:
        if self._tg is None:
            return
        if workflow_id in self._running:
            # Its previous run still unwinds (say, cancelled and resumed at once, while a
            # step's cleanup runs): run it again once that run has ended.
            self._respawn[workflow_id] = (wf, inputs)
            return
        scope = anyio.CancelScope()
        self._running[workflow_id] = scope
        self._tg.start_soon(self._run, workflow_id, wf, inputs, fresh, scope, recheck)

    async def _run(
        self,
        workflow_id: str,
        wf: Workflow[Any, Any],
        inputs: str,
        fresh: bool,
        scope: anyio.CancelScope,
        recheck: bool = False,
    ) -> None:
        try:
            with scope:
                if not recheck or await self._still_ours(workflow_id):
                    await self._execute(workflow_id, wf, inputs, fresh)
        except (_Crashed, Exception):
            if self._dead is None:
                raise  # else: the simulated crash stopped it; a dead process reports nothing
        finally:
            self._running.pop(workflow_id, None)
            self._finishing.discard(workflow_id)
            self._ended.add(workflow_id)
            again = self._respawn.pop(workflow_id, None)
            if again is not None and self._dead is None:
                self._spawn(workflow_id, *again, fresh=False, recheck=True)

    async def _still_ours(self, workflow_id: str) -> bool:
        """Whether a workflow about to run again is still PENDING and ours (a resume
        that waited for the previous run may have been overtaken by its outcome)."""
        try:
            return await self.db.read(store.owns, workflow_id, self.executor_id)
        except LitewfError:
            return True  # let the run find out, and handle it, as any run does

    @contextlib.contextmanager
    def _starting_up(self, workflow_id: str) -> Iterator[None]:
        """Mark a workflow whose row becomes ours before its task runs (the recovery
        loop must not take it for an idle one meanwhile)."""
        self._starting[workflow_id] = self._starting.get(workflow_id, 0) + 1
        try:
            yield
        finally:
            left = self._starting.pop(workflow_id) - 1
            if left:
                self._starting[workflow_id] = left

    def _idle(self, workflow_id: str) -> bool:
        """Whether no task here runs, starts or just ended the workflow."""
        return not (
            workflow_id in self._running
            or workflow_id in self._starting
            or workflow_id in self._ended
        )

    async def _execute(
        self, workflow_id: str, wf: Workflow[Any, Any], inputs: str, fresh: bool
    ) -> None:
        """Run the function with replay, then store its outcome (if still ours)."""
        ctx = context.WorkflowContext(self, workflow_id, self.executor_id, {})
        output: str | None = None
        error: BaseException | None = None
        token = context.enter(ctx)
        try:
            if not fresh:  # a malformed record (CorruptDatabaseError) is the outcome
                load = functools.partial(self.db.read, store.load_history, workflow_id)
                ctx.history, ctx.recorded = await context.retry_storage(workflow_id, load)
            decoded = loads_checked(self.serializer, inputs, f"arguments of {workflow_id!r}")
            result = await wf.fn(*decoded["args"], **decoded["kwargs"])
            output = dumps_checked(self.serializer, result, f"the result of workflow {wf.name!r}")
        except _Superseded:
            return  # cancelled or taken over: whoever changed the row decides what's next
        except Exception as exc:  # noqa: BLE001 - the workflow's failure is its outcome
            error = exc
        finally:
            context.leave(token)
        if ctx.nondeterminism is not None:
            output, error = None, ctx.nondeterminism
        if error is not None:
            logger.info("workflow %s failed: %r", workflow_id, error)
        encoded = None if error is None else encode_exception(error)
        error_type, error_message = (
            (None, None) if encoded is None else exception_type_and_message(encoded)
        )
        if self._crash_hook is not None:
            self._crash_hook(workflow_id, ctx.next_op, None)
        self._finishing.add(workflow_id)
        notifier = self.notifier
        status = Status.SUCCESS if error is None else Status.ERROR

        def finish(tx: Tx) -> None:
            if store.finish_workflow(
                tx,
                workflow_id,
                self.executor_id,
                status,
                output,
                encoded,
                error_type,
                error_message,
            ):
                tx.after_commit(lambda: notifier.notify(status_key(workflow_id)))

        # A full or failing disk must not take the runtime down: the outcome is still in
        # memory and the row still PENDING, so retry; a shutdown meanwhile leaves it
        # PENDING and the next launch runs the workflow again (replaying its records).
        delay = 0.1
        while True:
            try:
                await self.db.write(finish)
                return
            except DatabaseError:
                logger.exception("cannot store the outcome of workflow %s; retrying", workflow_id)
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _on_change(self, key: Key) -> None:
        """A status change of a workflow running here, not made by its run: stop the run
        unless the workflow is still PENDING and ours (cancelled, deleted, taken over)."""
        kind, workflow_id, _ = key
        if kind == "status" and workflow_id not in self._finishing:
            scope = self._running.get(workflow_id)
            if scope is not None and self._tg is not None:
                self._tg.start_soon(self._stop_unless_ours, workflow_id, scope)

    async def _stop_unless_ours(self, workflow_id: str, scope: anyio.CancelScope) -> None:
        # The row decides, not the notification: one read late from the change log may be
        # a change made before this run started (a cancel that a resume undid).
        try:
            ours = await self.db.read(store.owns, workflow_id, self.executor_id)
        except LitewfError:
            ours = False
        if not ours:
            scope.cancel()

    # -- recovery --------------------------------------------------------------------------

    async def _recovery_loop(self) -> None:
        assert self._background is not None
        with self._background:
            while True:
                await anyio.sleep(self.recovery_interval)
                try:
                    await recover(self, first=False)
                    await self.db.checkpoint_if_large()
                except LitewfError:
                    logger.exception("litewf recovery scan failed; retrying")


class _Crashed(BaseException):
    """Unwinds a workflow at a simulated crash point without letting it write anything."""


class _StepDecorator:
    """What ``@rt.step(...)`` returns: turns a function into a ``Step``."""

    def __init__(
        self, runtime: Runtime, name: str | None, retries: int, interval: float, backoff: float
    ) -> None:
        self._args = (runtime, name, retries, interval, backoff)

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> Step[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> Step[P, R]: ...

    def __call__(self, fn: Callable[..., Any]) -> Step[Any, Any]:
        runtime, name, retries, interval, backoff = self._args
        if not callable(fn):
            raise InvalidValueError(f"@rt.step() needs a function, got {fn!r}")
        step_name = context.check_step_name(name or _qualified_name(fn))
        return Step(runtime, fn, step_name, retries, interval, backoff)


def _let_go(lock: ExecutorLock, hold: sqlite3.Connection | None) -> None:
    """Once the last step body has ended: drop the executor lock, then the -wal hold."""
    lock.release()
    if hold is not None:
        hold.close()


def _check_same(workflow_id: str, existing: str | None, name: str) -> None:
    if existing is not None and existing != name:
        raise WorkflowConflictError(workflow_id, existing, name)


def _qualified_name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn)

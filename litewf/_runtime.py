"""The Runtime: registers workflows and steps, runs them, and recovers them after crashes."""

from __future__ import annotations

import inspect
import logging
import os
import secrets
import socket
import uuid
import warnings
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from types import EllipsisType, TracebackType
from typing import Any, ParamSpec, Self, TypeVar, overload

import anyio
from anyio.abc import TaskGroup

from . import _context as context
from . import _management as management
from . import _store as store
from ._clock import REAL_CLOCK, Clock
from ._core import Core
from ._db import Database, Durability, Tx
from ._events import get_event_in_workflow, set_event_in_workflow
from ._exceptions import (
    DatabaseWriteError,
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
from ._step import Step
from ._types import Status, WorkflowStatus
from ._validate import check_id, check_key, check_timeout, check_value
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
    ``launch()`` and ``shutdown()`` must be called from the same task.
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
    ) -> None:
        if durability not in ("full", "normal"):
            raise InvalidValueError(f"durability must be 'full' or 'normal', got {durability!r}")
        for value, what in (
            (poll_interval, "poll_interval"),
            (recovery_interval, "recovery_interval"),
        ):
            if check_timeout(value, what) == 0:
                raise InvalidValueError(f"{what} must be more than 0 seconds")
        if (
            isinstance(max_recovery_attempts, bool)
            or not isinstance(max_recovery_attempts, int)
            or max_recovery_attempts < 0
        ):
            raise InvalidValueError(
                f"max_recovery_attempts must be an int >= 0, got {max_recovery_attempts!r}"
            )
        self.path = os.fspath(path)
        self.executor_id = (
            _default_executor_id() if executor_id is None else check_id(executor_id, "executor_id")
        )
        self.serializer: Serializer = serializer if serializer is not None else JsonSerializer()
        self.durability: Durability = durability
        self.poll_interval = float(poll_interval)
        self.max_recovery_attempts = max_recovery_attempts
        self.recovery_interval = float(recovery_interval)
        self._workflows: dict[str, Workflow[Any, Any]] = {}
        self._core: Core | None = None
        self._tg: TaskGroup | None = None
        self._lock: ExecutorLock | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._running: dict[str, anyio.CancelScope] = {}
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
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidValueError(f"retries must be an int >= 0, got {retries!r}")
        check_timeout(retry_interval, "retry_interval")
        if check_timeout(backoff, "backoff") is not None and backoff < 1:
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
        """Open and migrate the database, recover dead executors' workflows, start serving."""
        if self._core is not None:
            raise LitewfError(f"{self!r} is already launched")
        core = Core(
            self.path,
            serializer=self.serializer,
            durability=self.durability,
            poll_interval=self.poll_interval,
            create=True,
            clock=self.clock,
        )
        self._dead = None
        self._background = anyio.CancelScope()
        tg = anyio.create_task_group()
        await tg.__aenter__()
        lock: ExecutorLock | None = None
        try:
            await core.open(tg)
            lock = ExecutorLock(self.path, self.executor_id)
            lock.acquire()
            self._core, self._tg, self._lock = core, tg, lock
            core.notifier.add_listener(self._on_change)
            await recover(self, first=True)
            tg.start_soon(self._recovery_loop)
        except BaseException:
            self._core = self._tg = self._lock = None
            tg.cancel_scope.cancel()
            try:
                await tg.__aexit__(None, None, None)
            finally:
                await core.db.close()
            if lock is not None:
                lock.release()
            raise
        self._finalizer = weakref.finalize(self, _warn_unclosed, repr(self))

    async def shutdown(self) -> None:
        """Stop running workflows (they stay PENDING), release them, close the database."""
        core, tg, lock = self._core, self._tg, self._lock
        if core is None or tg is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
        tg.cancel_scope.cancel()
        try:
            await tg.__aexit__(None, None, None)
        except Exception:
            if self._dead is None:
                raise  # after a simulated crash, dying tasks' errors have no one to tell
        finally:
            self._core = self._tg = self._lock = None
            self._running.clear()
            with anyio.CancelScope(shield=True):
                try:
                    if self._dead is None:  # a crashed process releases nothing
                        await core.db.write(store.release_workflows, self.executor_id)
                finally:
                    await core.db.close()
                    if lock is not None:
                        lock.release()

    # -- internals shared with steps and operations -------------------------------------------

    def _launched(self, call: str) -> Core:
        if self._core is None:
            raise RuntimeNotLaunchedError(call)
        if self._dead is not None:
            raise LitewfError(self._dead)
        return self._core

    def _die(self, where: str) -> None:
        """Die as a SIGKILL would (for ``litewf.testing``): from now on write nothing.

        Running workflows and the recovery loop are cancelled (a transaction not yet
        committing rolls back), nothing is released, the executor lock is dropped the
        way the OS drops it, and every call or wait on this runtime raises. The task
        group is left to ``shutdown()``: cancelling it would cancel the caller's code.
        """
        core = self._core
        if core is None or self._dead is not None:
            return
        self._dead = (
            f"{self!r} crashed {where} (simulated by litewf.testing); launch a new Runtime "
            f"on {self.path!r} to recover its workflows"
        )
        self._crash_hook = None
        for scope in self._running.values():
            scope.cancel()
        if self._background is not None:
            self._background.cancel()
        if self._lock is not None:
            self._lock.abandon()
            self._lock = None
        core.notifier.close(self._dead)

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
        )
        ctx = context.current()
        if ctx is None:
            wid = workflow_id if workflow_id is not None else str(uuid.uuid4())
            existing = await core.db.write(
                store.insert_workflow, wid, wf.name, inputs, self.executor_id, None
            )
            _check_same(wid, existing, wf.name)
        else:
            op_id = ctx.reserve()
            op_name = f"{context.CHILD_PREFIX}{wf.name}"
            recorded = ctx.replayed(op_id, op_name)
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

            existing = await core.db.write(start_child)
        if existing is None:
            self._spawn(wid, wf, inputs, fresh=True)
        return WorkflowHandle(core, wid)

    async def retrieve_workflow(self, workflow_id: str) -> WorkflowHandle[Any]:
        """A handle to a stored workflow; ``WorkflowNotFoundError`` if there is none."""
        core = self._launched("retrieve_workflow")
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

        restarted = await core.resume_workflow(workflow_id, owner)
        if restarted is not None and restarted[0] in registered:
            name, inputs = restarted
            self._spawn(workflow_id, registered[name], inputs, fresh=False)
        return WorkflowHandle(core, workflow_id)

    async def list_steps(self, workflow_id: str) -> list[StepRecord]:
        """The workflow's recorded operations (steps, sleeps, messages, events, children)."""
        return await management.list_steps(self._launched("list_steps"), workflow_id)

    async def list_messages(
        self, workflow_id: str, topic: str | EllipsisType | None = ...
    ) -> list[QueuedMessage]:
        """Messages queued for the workflow and not received yet; every topic by default."""
        return await management.list_messages(self._launched("list_messages"), workflow_id, topic)

    async def garbage_collect(
        self, *, older_than: float | timedelta, keep_pending: bool = True, dry_run: bool = False
    ) -> CollectedCounts:
        """Delete workflows finished more than ``older_than`` (seconds) ago, with their data.

        ``keep_pending=False`` also deletes PENDING workflows not updated for that long (a
        running one stops). Safe while workflows run: it deletes in short transactions.
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
        seconds = check_timeout(seconds, "seconds")  # type: ignore[assignment]
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
            await self.db.write(ctx.record, op_id, "sleep", self.serializer.dumps(wake_at))
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
        assert seconds is not None
        return await get_event_in_workflow(self, ctx, workflow_id, key, seconds)

    async def get_all_events(self, workflow_id: str) -> dict[str, Any]:
        """Every event the workflow has set so far."""
        return await self._launched("get_all_events").get_all_events(workflow_id)

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
        assert seconds is not None
        return await recv_in_workflow(self, ctx, topic, seconds)

    # -- running -------------------------------------------------------------------------

    def _registered(self, fn: Any) -> Workflow[Any, Any]:
        if isinstance(fn, Workflow) and self._workflows.get(fn.name) is fn:
            return fn
        raise InvalidValueError(
            f"{fn!r} is not a workflow of this runtime; decorate it with @rt.workflow()"
        )

    def _spawn(self, workflow_id: str, wf: Workflow[Any, Any], inputs: str, *, fresh: bool) -> None:
        if self._tg is None or workflow_id in self._running:
            return
        scope = anyio.CancelScope()
        self._running[workflow_id] = scope
        self._tg.start_soon(self._run, workflow_id, wf, inputs, fresh, scope)

    async def _run(
        self,
        workflow_id: str,
        wf: Workflow[Any, Any],
        inputs: str,
        fresh: bool,
        scope: anyio.CancelScope,
    ) -> None:
        try:
            with scope:
                await self._execute(workflow_id, wf, inputs, fresh)
        except (_Crashed, Exception):
            if self._dead is None:
                raise  # else: the simulated crash stopped it; a dead process reports nothing
        finally:
            self._running.pop(workflow_id, None)
            self._finishing.discard(workflow_id)

    async def _execute(
        self, workflow_id: str, wf: Workflow[Any, Any], inputs: str, fresh: bool
    ) -> None:
        """Run the function with replay, then store its outcome (if still ours)."""
        recorded = {} if fresh else await self.db.read(store.load_operations, workflow_id)
        ctx = context.WorkflowContext(self, workflow_id, self.executor_id, recorded)
        output: str | None = None
        error: BaseException | None = None
        token = context.enter(ctx)
        try:
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
            except DatabaseWriteError:
                logger.exception("cannot store the outcome of workflow %s; retrying", workflow_id)
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _on_change(self, key: Key) -> None:
        """A status change of a workflow running here, not made by us: it was cancelled."""
        kind, workflow_id, _ = key
        if kind == "status" and workflow_id not in self._finishing:
            scope = self._running.get(workflow_id)
            if scope is not None:
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


def _check_same(workflow_id: str, existing: str | None, name: str) -> None:
    if existing is not None and existing != name:
        raise WorkflowConflictError(workflow_id, existing, name)


def _qualified_name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn)

"""``SyncRuntime``: the runtime for code without ``async`` (scripts, notebooks, WSGI views,
plain pytest tests), with the same method names and arguments, blocking.

It is a view of a ``Runtime`` (its ``runtime``), not a second implementation: every call
is the async call, made through the portal (``_portal``) on the runtime's event loop. A
``SyncRuntime(path, ...)`` launched from sync code runs that loop in a thread of its own;
a ``SyncRuntime(rt)`` of a runtime that async code launched calls into that code's loop.
``@srt.workflow()`` registers a plain ``def`` function: the registered ``Workflow`` runs
it in a worker thread, where ``srt.recv()`` and the rest block that thread.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar, overload

from . import _replay as replay
from ._exceptions import InvalidValueError, LitewfError
from ._portal import LoopThread, Portal, blocking, run_body
from ._runtime import Runtime
from ._step import qualified_name
from ._sync_api import SyncSessionCalls, SyncWorkflowHandle, blocking_handle
from ._sync_parts import (
    SyncQueue,
    SyncScheduleCalls,
    SyncStep,
    SyncStepDecorator,
    SyncWorkflow,
    async_form,
)
from ._validate import check_key
from ._waiting import EventWait, FirstOf, MessageWait
from ._workflow import Workflow, WorkflowHandle

__all__ = ["SyncRuntime"]

P = ParamSpec("P")
R = TypeVar("R")

_HOW = "'with srt:' or srt.launch()"


class SyncRuntime(SyncSessionCalls, SyncScheduleCalls):
    """A ``Runtime`` for synchronous code: ``with litewf.SyncRuntime("app.db") as srt:``.

    ``SyncRuntime(path, **options)`` makes its own ``Runtime(path, **options)``;
    ``SyncRuntime(rt)`` is a view of ``rt``, for threads of a program whose async code
    launched it (or launches it later). Calls are safe from any number of threads;
    ``launch()`` and ``shutdown()`` may be called from different threads. A call made
    from the event loop's own thread raises (it would wait for itself forever).
    """

    def __init__(self, path: str | os.PathLike[str] | Runtime = "litewf.db", **options: Any):
        if isinstance(path, Runtime):
            if options:
                raise InvalidValueError(
                    f"SyncRuntime({path!r}) takes no options: they are the runtime's own"
                )
            runtime = path
        else:
            runtime = Runtime(path, **options)
        #: The async runtime this view calls (the same workflows, steps and database).
        self.runtime = runtime
        self._target = runtime
        self._portal = Portal(runtime._loop, "SyncRuntime", _HOW)
        self._owned: LoopThread | None = None  # the loop thread launch() started
        self._lifecycle = threading.Lock()

    def __repr__(self) -> str:
        return f"<litewf.SyncRuntime {self.runtime.path!r} executor={self.runtime.executor_id!r}>"

    # -- registration ----------------------------------------------------------------------

    def workflow(self, name: str | None = None) -> Callable[[Callable[P, R]], SyncWorkflow[P, R]]:
        """Register a plain ``def`` function as a workflow (run in a worker thread);
        ``name`` defaults to module.qualname."""
        threads = self.runtime._step_threads

        def register(fn: Callable[P, R]) -> SyncWorkflow[P, R]:
            if not callable(fn) or inspect.iscoroutinefunction(fn):
                raise InvalidValueError(
                    f"@srt.workflow() needs a plain 'def' function, got {fn!r}; register an "
                    f"'async def' workflow with @rt.workflow() (rt = srt.runtime)"
                )
            wf_name = check_key(name, "name", optional=True) or qualified_name(fn)

            @functools.wraps(fn)
            async def body(*args: P.args, **kwargs: P.kwargs) -> R:
                run = functools.partial(fn, *args, **kwargs)
                return await run_body(threads, replay.current_workflow_id(), run)

            return SyncWorkflow(self.runtime.workflow(wf_name)(body), self._portal)

        return register

    @overload
    def step(
        self,
        name: str | None = ...,
        *,
        retries: int = ...,
        retry_interval: float = ...,
        backoff: float = ...,
        timeout: float | timedelta | None = ...,
    ) -> SyncStepDecorator: ...

    @overload
    def step(self, name: Callable[P, Awaitable[R]]) -> SyncStep[P, R]: ...

    @overload
    def step(self, name: Callable[P, R]) -> SyncStep[P, R]: ...

    def step(
        self,
        name: str | Callable[..., Any] | None = None,
        *,
        retries: int = 0,
        retry_interval: float = 1.0,
        backoff: float = 2.0,
        timeout: float | timedelta | None = None,
    ) -> Any:
        """Register a checkpointed step (``def``: run in a worker thread; ``async def``:
        on the event loop); calling it blocks until its outcome. ``@srt.step()``."""
        if callable(name):
            return self.step()(name)
        decorator = self.runtime.step(
            name, retries=retries, retry_interval=retry_interval, backoff=backoff, timeout=timeout
        )
        return SyncStepDecorator(decorator, self._portal)

    def queue(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> SyncQueue:
        """Register a queue (see ``Runtime.queue``); its ``enqueue`` blocks."""
        queue = self.runtime.queue(
            name,
            concurrency=concurrency,
            worker_concurrency=worker_concurrency,
            rate_limit=rate_limit,
        )
        return SyncQueue(queue, self._portal)

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.launch()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def launch(self) -> None:
        """Start an event loop in a thread of its own and launch the runtime there."""
        with self._lifecycle:
            loop = self.runtime._loop()
            if self._owned is not None or (loop is not None and not loop.is_closed()):
                raise LitewfError(f"{self!r} is already launched")
            owned = LoopThread(f"litewf {self.runtime.path}")
            self._portal.reopen(owned.loop)
            try:
                self._portal.call_on(owned.loop, self.runtime.launch)
            except BaseException:
                owned.stop()
                raise
            self._owned = owned

    def shutdown(self) -> None:
        """Shut the runtime down (running workflows stay PENDING), from any thread;
        calls still waiting in other threads raise. Then end the loop thread."""
        with self._lifecycle:
            owned, self._owned = self._owned, None
            if owned is None:
                loop = self.runtime._loop()
                if loop is not None and not loop.is_closed():  # launched by async code
                    self._portal.call(self.runtime.shutdown)
                return
            try:
                self._portal.call_on(owned.loop, self.runtime.shutdown)
            finally:
                self._portal.call_on(owned.loop, self._portal.drain)
                owned.stop()

    recover = blocking(Runtime.recover)

    # -- workflows -------------------------------------------------------------------------

    def scheduled(
        self,
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        tz: str = "UTC",
        missed: str = "latest",
    ) -> Callable[[SyncWorkflow[P, R]], SyncWorkflow[P, R]]:
        """``@rt.scheduled``, above ``@srt.workflow()``: its ``def`` takes ``scheduled_at``."""
        schedule = self.runtime.scheduled(cron=cron, every=every, tz=tz, missed=missed)

        def register(fn: SyncWorkflow[P, R]) -> SyncWorkflow[P, R]:
            schedule(async_form(fn))
            return fn

        return register

    def create_schedule(
        self,
        name: str,
        workflow: Any,
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        tz: str = "UTC",
        missed: str = "latest",
    ) -> None:
        """``create_schedule``, blocking (``workflow``: a sync or async workflow)."""
        wf = async_form(workflow) if isinstance(workflow, SyncWorkflow) else workflow
        self._portal.call(
            self.runtime.create_schedule, name, wf, cron=cron, every=every, tz=tz, missed=missed
        )

    def start_workflow(
        self,
        fn: SyncWorkflow[P, R] | Workflow[P, R],
        *args: Any,
        workflow_id: str | None = None,
        timeout: float | timedelta | None = None,
        deadline: datetime | None = None,
        delay: float | timedelta | None = None,
        start_at: datetime | None = None,
        **kwargs: Any,
    ) -> SyncWorkflowHandle[R]:
        """Record the workflow as PENDING, then run it; return its (blocking) handle."""
        handle = self._portal.call(
            self.runtime.start_workflow,
            async_form(fn),
            *args,
            workflow_id=workflow_id,
            timeout=timeout,
            deadline=deadline,
            delay=delay,
            start_at=start_at,
            **kwargs,
        )
        return SyncWorkflowHandle(self._portal, handle)

    resume_workflow = blocking_handle(Runtime.resume_workflow)

    def current_workflow_id(self) -> str | None:
        """The ID of the workflow running in this thread (also inside its steps), or None."""
        return self.runtime.current_workflow_id()

    # -- durable calls only a workflow makes -----------------------------------------------

    sleep = blocking(Runtime.sleep)
    sleep_until = blocking(Runtime.sleep_until)
    set_event = blocking(Runtime.set_event)
    write_stream = blocking(Runtime.write_stream)
    close_stream = blocking(Runtime.close_stream)
    recv = blocking(Runtime.recv)
    patched = blocking(Runtime.patched)
    deprecate_patch = blocking(Runtime.deprecate_patch)

    def message(self, topic: str | None = None) -> MessageWait:
        """For ``wait_first``: the next message on this workflow's ``topic`` queue."""
        return self.runtime.message(topic)

    def event(self, workflow_id: str, key: str) -> EventWait:
        """For ``wait_first``: the event ``key`` of workflow ``workflow_id``."""
        return self.runtime.event(workflow_id, key)

    def wait_first(
        self,
        *,
        timeout: float | None = None,
        deadline: datetime | None = None,
        **waits: MessageWait | EventWait | SyncWorkflowHandle[Any] | WorkflowHandle[Any],
    ) -> FirstOf | None:
        """``Runtime.wait_first``, blocking; a wait may also be a ``SyncWorkflowHandle``."""
        aio = {k: w.aio if isinstance(w, SyncWorkflowHandle) else w for k, w in waits.items()}
        return self._portal.call(self.runtime.wait_first, timeout=timeout, deadline=deadline, **aio)

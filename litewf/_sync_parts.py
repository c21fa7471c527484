"""What the synchronous runtime's decorators and ``queue()`` return: blocking callables
around the very ``Workflow``, ``Step`` and ``Queue`` objects the async runtime uses."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, Generic, ParamSpec, TypeVar, overload

from ._portal import Portal, SyncView, blocking
from ._queues import Queue
from ._schedules import ScheduleCalls
from ._step import Step, StepDecorator
from ._sync_api import SyncWorkflowHandle, blocking_handle
from ._workflow import Workflow

__all__ = [
    "SyncQueue",
    "SyncScheduleCalls",
    "SyncStep",
    "SyncStepDecorator",
    "SyncWorkflow",
    "async_form",
]

P = ParamSpec("P")
R = TypeVar("R")


class SyncWorkflow(Generic[P, R]):
    """A workflow registered with ``@srt.workflow()``: calling it starts it (a child,
    inside a workflow) and blocks until its result. ``aio`` is the registered async
    ``Workflow``, for ``await rt.start_workflow(wf.aio, ...)`` in async code."""

    def __init__(self, workflow: Workflow[P, R], portal: Portal) -> None:
        self.aio = workflow
        self.name = workflow.name
        self._portal = portal
        functools.update_wrapper(self, workflow, updated=())

    def __repr__(self) -> str:
        return f"<litewf sync workflow {self.name!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._portal.call(self.aio, *args, **kwargs)


class SyncStep(Generic[P, R]):
    """A step registered with ``@srt.step()`` (a ``def`` body runs in a worker thread,
    an ``async def`` one on the event loop); calling it blocks until its outcome.
    ``aio`` is the async ``Step``, for async workflows (``await step.aio(...)``)."""

    def __init__(self, step: Step[P, R], portal: Portal) -> None:
        self.aio = step
        self.name = step.name
        self._portal = portal
        functools.update_wrapper(self, step, updated=())

    def __repr__(self) -> str:
        return f"<litewf sync step {self.name!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._portal.call(self.aio, *args, **kwargs)


class SyncStepDecorator:
    """What ``@srt.step(...)`` returns: the runtime's ``StepDecorator``, made blocking."""

    def __init__(self, decorator: StepDecorator, portal: Portal) -> None:
        self._decorator = decorator
        self._portal = portal

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> SyncStep[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> SyncStep[P, R]: ...

    def __call__(self, fn: Callable[..., Any]) -> SyncStep[Any, Any]:
        return SyncStep(self._decorator(fn), self._portal)


def async_form(fn: SyncWorkflow[P, R] | Workflow[P, R]) -> Workflow[P, R]:
    """The registered ``Workflow`` of a sync workflow (an async one is itself)."""
    return fn.aio if isinstance(fn, SyncWorkflow) else fn


class SyncQueue:
    """A queue of a ``SyncRuntime``: ``queue.enqueue(fn, *args, ...)``, blocking.
    ``aio`` is the runtime's ``Queue``."""

    def __init__(self, queue: Queue, portal: Portal) -> None:
        self.aio = queue
        self.name = queue.name
        self._portal = portal

    def __repr__(self) -> str:
        return f"<litewf.SyncQueue {self.name!r}>"

    def enqueue(
        self,
        fn: SyncWorkflow[P, R] | Workflow[P, R],
        *args: Any,
        workflow_id: str | None = None,
        priority: int | None = None,
        dedup_id: str | None = None,
        delay: float | None = None,
        partition_key: str | None = None,
        timeout: float | timedelta | None = None,
        deadline: datetime | None = None,
        **kwargs: Any,
    ) -> SyncWorkflowHandle[Any]:
        """``Queue.enqueue``, blocking: store the workflow ENQUEUED; return its handle."""
        handle = self._portal.call(
            self.aio.enqueue,
            async_form(fn),
            *args,
            workflow_id=workflow_id,
            priority=priority,
            dedup_id=dedup_id,
            delay=delay,
            partition_key=partition_key,
            timeout=timeout,
            deadline=deadline,
            **kwargs,
        )
        return SyncWorkflowHandle(self._portal, handle)


class SyncScheduleCalls(SyncView):
    """Mixin: the blocking twins of ``_schedules.ScheduleCalls`` (schedule management)."""

    create_schedule = blocking(ScheduleCalls.create_schedule)
    get_schedule = blocking(ScheduleCalls.get_schedule)
    list_schedules = blocking(ScheduleCalls.list_schedules)
    pause_schedule = blocking(ScheduleCalls.pause_schedule)
    resume_schedule = blocking(ScheduleCalls.resume_schedule)
    trigger_schedule = blocking_handle(ScheduleCalls.trigger_schedule)
    delete_schedule = blocking(ScheduleCalls.delete_schedule)

    def backfill_schedule(self, name: str, start: Any, end: Any) -> list[SyncWorkflowHandle[Any]]:
        """``backfill_schedule``, blocking: a run per tick in ``[start, end)``; handles."""
        handles = self._portal.call(self._target.backfill_schedule, name, start, end)
        return [SyncWorkflowHandle(self._portal, h) for h in handles]

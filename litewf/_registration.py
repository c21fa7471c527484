"""Registering workflows, steps and queues on a runtime: the ``Runtime``'s decorators.

A mixin, so that the facade stays a facade: the registries themselves live in the
executor (workflows), the runtime (queues) and each ``Step``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar, overload

from ._clock import Clock
from ._deadlines import check_step_timeout
from ._exceptions import InvalidValueError
from ._executor import Executor
from ._queues import Queue, register_queue
from ._session import Session
from ._step import Step, StepDecorator, qualified_name
from ._threads import StepThreads
from ._validate import check_count, check_key, check_timeout
from ._workflow import Workflow, WorkflowHandle

__all__ = ["Registration"]

P = ParamSpec("P")
R = TypeVar("R")


class Registration:
    """Mixin: ``@rt.workflow()``, ``@rt.step()`` and ``rt.queue()``."""

    _executor: Executor
    _queues: dict[str, Queue]
    _step_threads: StepThreads
    clock: Clock

    def _session_for(self, call: str) -> Session:
        raise NotImplementedError

    async def _start(
        self, fn: Any, args: Any, kwargs: Any, wid: Any, timing: Any = None
    ) -> WorkflowHandle[Any]:
        raise NotImplementedError

    def workflow(
        self, name: str | None = None
    ) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Workflow[P, R]]:
        """Register an async function as a workflow; ``name`` defaults to module.qualname."""
        registered = self._executor.workflows

        def register(fn: Callable[P, Coroutine[Any, Any, R]]) -> Workflow[P, R]:
            if not callable(fn) or not inspect.iscoroutinefunction(fn):
                raise InvalidValueError(
                    f"@rt.workflow() needs an 'async def' function, got {fn!r}; register a "
                    f"plain 'def' workflow with @srt.workflow() of a litewf.SyncRuntime"
                )
            wf_name = check_key(name, "name", optional=True) or qualified_name(fn)
            if wf_name in registered:
                raise InvalidValueError(
                    f"a workflow named {wf_name!r} is already registered on this runtime; "
                    f"pass @rt.workflow(name=...) to tell them apart"
                )
            wf = Workflow(fn, wf_name, self._start)
            registered[wf_name] = wf
            return wf

        return register

    def queue(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> Queue:
        """Register a queue: at most ``concurrency`` of its workflows PENDING at once in
        all processes (per ``partition_key`` when given), ``worker_concurrency`` in this
        runtime, and ``rate_limit=(n, seconds)`` starts per sliding window."""
        limits = (concurrency, worker_concurrency, rate_limit)
        return register_queue(self._queues, name, limits, self._executor, self._session_for)

    @overload
    def step(
        self,
        name: str | None = ...,
        *,
        retries: int = ...,
        retry_interval: float = ...,
        backoff: float = ...,
        timeout: float | timedelta | None = ...,
    ) -> StepDecorator: ...

    @overload
    def step(self, name: Callable[P, Awaitable[R]]) -> Step[P, R]: ...

    def step(
        self,
        name: str | Callable[..., Any] | None = None,
        *,
        retries: int = 0,
        retry_interval: float = 1.0,
        backoff: float = 2.0,
        timeout: float | timedelta | None = None,
    ) -> Any:
        """Register a checkpointed step (sync or async); usable as ``@rt.step()``.
        ``timeout``: an attempt running longer fails with ``StepTimeoutError``."""
        if callable(name):
            return self.step()(name)
        check_count(retries, "retries")
        check_timeout(retry_interval, "retry_interval")
        if check_timeout(backoff, "backoff") < 1:
            raise InvalidValueError(f"backoff must be >= 1, got {backoff!r}")
        step_name = check_key(name, "name", optional=True)
        return StepDecorator(
            step_name,
            retries,
            float(retry_interval),
            float(backoff),
            timeout=check_step_timeout(timeout),
            clock=self.clock,
            threads=self._step_threads,
        )

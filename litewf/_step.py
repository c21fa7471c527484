"""Checkpointed steps: run once, record the outcome, replay it forever after."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from . import _replay as replay
from . import _tracing as tracing
from ._deadlines import within
from ._exceptions import InvalidValueError
from ._history import check_step_name
from ._serialization import dumps_checked, loads_checked, replay_form

if TYPE_CHECKING:
    from ._clock import Clock
    from ._threads import StepThreads

__all__ = ["Step", "StepDecorator", "qualified_name"]

P = ParamSpec("P")
R = TypeVar("R")


class Step(Generic[P, R]):
    """A function whose outcome a workflow records, so that replay never runs it again.

    The body is at-least-once (a crash before the record commits runs it again); its
    outcome, value or exception, is exactly-once. Sync functions run in a worker thread.
    """

    def __init__(
        self,
        fn: Callable[P, Any],
        name: str,
        retries: int,
        retry_interval: float,
        backoff: float,
        *,
        timeout: float | None = None,
        clock: Clock,
        threads: StepThreads,
    ) -> None:
        self._clock = clock
        self.timeout = timeout
        self._threads = threads
        self._fn = fn
        self._is_async = inspect.iscoroutinefunction(fn)
        self.name = name
        self.retries = retries
        self.retry_interval = retry_interval
        self.backoff = backoff
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<litewf step {self.name!r}>"

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        ctx = replay.current()
        if ctx is None:
            return await self._attempts(args, kwargs, None)  # outside a workflow: just run it
        op_id = ctx.reserve()
        recorded = ctx.replayed(op_id, self.name)
        if recorded is not None:
            result: R = ctx.outcome(recorded, f"result of step {self.name!r}")
            return result
        serializer = ctx.session.serializer
        output: str | None = None
        error: Exception | None = None
        started = time.time()  # recorded with the outcome (wall time, as created_at)
        ctx.steps_running += 1
        try:
            try:
                value = await self._attempts(args, kwargs, (ctx, op_id))
                output = dumps_checked(serializer, value, f"the result of step {self.name!r}")
                # Hand back the decoded form, so the first run sees what a replay will see.
                result = loads_checked(serializer, output, f"result of step {self.name!r}")
            except Exception as exc:  # noqa: BLE001 - the step's failure is its outcome
                error = exc
            await ctx.write(ctx.record, op_id, self.name, output, error, started_at=started)
        finally:
            ctx.steps_running -= 1
        if error is not None:
            # As decoded from its record, so the first run sees what a replay will see
            # (its attributes, its class or WorkflowFailedError); the traceback is kept.
            raise replay_form(error)
        return result

    async def _attempts(
        self, args: Any, kwargs: Any, operation: tuple[replay.WorkflowContext, int] | None
    ) -> R:
        """Run the body, retrying ``retries`` more times with exponential backoff.

        ``operation``: the workflow and operation number this call is (None outside one).
        """
        delay = self.retry_interval
        attempt = 0
        while True:
            try:
                return await self._once(args, kwargs, operation, attempt + 1)
            except Exception:
                if attempt >= self.retries:
                    raise
            attempt += 1
            await self._clock.sleep(delay)
            delay *= self.backoff

    async def _once(
        self,
        args: Any,
        kwargs: Any,
        operation: tuple[replay.WorkflowContext, int] | None,
        attempt: int,
    ) -> R:
        # Each attempt is a run of its own: its stream writes are numbered from 0 again.
        run = None if operation is None else replay.StepRun(*operation)
        token = replay.enter_step(run)
        try:
            with tracing.step_attempt(operation, self.name, attempt):
                body = self._body(args, kwargs)
                result: R = await within(self._clock, self.timeout, self.name, body)
        except BaseException as exc:
            if run is not None and run.finish is not None:
                await run.finish(exc)
            raise
        finally:
            replay.leave_step(token)
        if run is not None and run.finish is not None:
            await run.finish(None)
        return result

    def _body(self, args: Any, kwargs: Any) -> Callable[[], Awaitable[R]]:
        if self._is_async:
            return functools.partial(self._fn, *args, **kwargs)
        # A thread of the runtime's own: cancelled (or timed out), the workflow stops
        # waiting and the body runs on (its outcome never recorded; a workflow's runs
        # again on recovery); shutdown keeps the workflow from other processes until the
        # body has ended.
        return functools.partial(
            self._threads.run,
            replay.current_workflow_id(),
            functools.partial(self._fn, *args, **kwargs),
        )


class StepDecorator:
    """What ``@rt.step(...)`` returns: turns a function into a ``Step``."""

    def __init__(
        self,
        name: str | None,
        retries: int,
        interval: float,
        backoff: float,
        *,
        timeout: float | None = None,
        clock: Clock,
        threads: StepThreads,
    ) -> None:
        self._args = (name, retries, interval, backoff)
        self._timeout = timeout
        self._clock = clock
        self._threads = threads

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> Step[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> Step[P, R]: ...

    def __call__(self, fn: Callable[..., Any]) -> Step[Any, Any]:
        name, retries, interval, backoff = self._args
        if not callable(fn):
            raise InvalidValueError(f"@rt.step() needs a function, got {fn!r}")
        step_name = check_step_name(name or qualified_name(fn))
        return Step(
            fn,
            step_name,
            retries,
            interval,
            backoff,
            timeout=self._timeout,
            clock=self._clock,
            threads=self._threads,
        )


def qualified_name(fn: Callable[..., Any]) -> str:
    """The default name of a step or workflow: ``module.qualname``."""
    return f"{fn.__module__}.{fn.__qualname__}"

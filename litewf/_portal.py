"""The blocking portal: how synchronous code calls into the event loop a runtime runs on.

The synchronous API (``SyncRuntime``, ``SyncClient``) has no logic of its own: each of its
calls runs the async call of the same name as a task on the runtime's event loop, and
blocks the calling thread until it ends. Three things make that safe:

- The calling thread's context variables go with the call (the task runs in a copy of
  them): a plain ``def`` workflow's body runs in a thread whose context says which
  workflow it is, so its ``recv`` is that workflow's recorded operation.
- A ``def`` workflow's body (``run_body``) runs in a thread of the runtime's
  ``StepThreads``. When its workflow is stopped (cancelled, shut down, crashed), the call
  it blocks in is cancelled and every later call raises ``CancelledError`` at once, so
  the body ends promptly and shutdown does not wait for it.
- A call from the event loop's own thread would wait for itself forever: it raises.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio
import anyio.from_thread

from ._exceptions import LitewfError, RuntimeNotLaunchedError
from ._threads import StepThreads

__all__ = ["LoopThread", "Portal", "SyncView", "blocking", "iterate", "run_body"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

Loop = asyncio.AbstractEventLoop


class _Body:
    """A ``def`` workflow's body running in a thread: its calls in flight on the loop."""

    __slots__ = ("loop", "stopped", "tasks")

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        # Both touched only on that loop's thread.
        self.stopped = False
        self.tasks: set[asyncio.Task[Any]] = set()

    async def stop(self) -> None:
        """No more calls: cancel those in flight and wait until they have unwound (as
        an async workflow's cancelled call unwinds before its task ends)."""
        self.stopped = True
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        with anyio.CancelScope(shield=True):
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task


_body: contextvars.ContextVar[_Body | None] = contextvars.ContextVar(
    "litewf_sync_body", default=None
)


async def run_body(threads: StepThreads, workflow_id: str | None, fn: Callable[[], T]) -> T:
    """Run a ``def`` workflow's body in a runtime thread and return what it returns.

    Stopped (the awaiting task cancelled), the call the body blocks in raises
    ``CancelledError`` and so does every later one; the thread is the runtime's, so
    shutdown keeps the workflow owned while the body still runs.
    """
    body = _Body(asyncio.get_running_loop())
    token = _body.set(body)  # the thread's context is a copy of this task's
    try:
        return await threads.run(workflow_id, fn)
    finally:
        _body.reset(token)
        await body.stop()


class Portal:
    """Calls from other threads into the event loop ``loop_of()`` names (None: not
    launched), each as a task running in a copy of the caller's context."""

    def __init__(self, loop_of: Callable[[], Loop | None], owner: str, how: str) -> None:
        self._loop_of = loop_of
        self._owner = owner  # "SyncRuntime": for messages
        self._how = how  # how to launch it: for messages
        self._lock = threading.Lock()
        #: Loops whose calls were drained: refuse more (weak: a stopped loop is let go).
        self._closed: weakref.WeakSet[Loop] = weakref.WeakSet()
        self._tasks: set[asyncio.Task[Any]] = set()  # touched only on the loop's thread

    def call(self, fn: Callable[..., Awaitable[R]], *args: Any, **kwargs: Any) -> R:
        """``await fn(*args, **kwargs)`` on the runtime's loop; block until it ends."""
        name = getattr(fn, "__name__", "call")
        loop = self._loop_of()
        body = _body.get()
        if loop is None and body is not None:
            loop = body.loop  # a def workflow run while not launched: check_replay's
        if loop is None or loop.is_closed():
            raise RuntimeNotLaunchedError(f"{self._owner}.{name}", self._how)
        return self.call_on(loop, fn, *args, **kwargs)

    def call_on(self, loop: Loop, fn: Callable[..., Awaitable[R]], *args: Any, **kwargs: Any) -> R:
        """``call`` on a given loop (launching: the runtime names none yet)."""
        name = f"{self._owner}.{getattr(fn, '__name__', 'call')}"
        try:
            running: Loop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise LitewfError(
                f"{name}() was called from the event loop the runtime runs on, and would wait "
                f"for itself forever; in async code await the Runtime's own call instead"
            )
        body = _body.get()
        if body is not None and body.loop is not loop:
            body = None  # a call to another runtime's loop: not this workflow's operation
        if body is not None and body.stopped:
            raise asyncio.CancelledError(f"{name}(): this workflow was stopped")
        context = contextvars.copy_context()
        future: concurrent.futures.Future[R] = concurrent.futures.Future()
        started: list[asyncio.Task[R]] = []

        def begin() -> None:
            if body is not None and body.stopped:
                future.cancel()
                return
            if loop in self._closed:
                future.set_exception(RuntimeNotLaunchedError(name, self._how))
                return

            async def run() -> R:
                return await fn(*args, **kwargs)

            task = loop.create_task(run(), context=context)
            started.append(task)
            tracked = self._tasks if body is None else body.tasks
            tracked.add(task)
            task.add_done_callback(functools.partial(_settle, future, tracked))

        with self._lock:
            if loop in self._closed:
                raise RuntimeNotLaunchedError(name, self._how)
            try:
                loop.call_soon_threadsafe(begin)
            except RuntimeError:  # its loop has closed
                raise RuntimeNotLaunchedError(name, self._how) from None
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            if body is not None and body.stopped:
                raise asyncio.CancelledError(f"{name}(): this workflow was stopped") from None
            raise LitewfError(f"{name}() was interrupted: the runtime shut down") from None
        except BaseException:
            if not future.done():  # interrupted here (KeyboardInterrupt): stop the call
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(lambda: [t.cancel() for t in started])
            raise

    async def drain(self) -> None:
        """On the loop, before it ends: interrupt the calls still in flight (their
        threads raise), and refuse later ones."""
        with self._lock:
            self._closed.add(asyncio.get_running_loop())
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    def reopen(self, loop: Loop) -> None:
        with self._lock:
            self._closed.discard(loop)


def _settle(
    future: concurrent.futures.Future[R], tracked: set[asyncio.Task[Any]], task: asyncio.Task[R]
) -> None:
    tracked.discard(task)
    if future.done():
        return
    if task.cancelled():
        future.cancel()
    elif (error := task.exception()) is not None:
        future.set_exception(error)
    else:
        future.set_result(task.result())


class LoopThread:
    """An event loop in a daemon thread of its own (anyio's blocking portal), for a
    synchronous runtime or client that async code did not launch."""

    def __init__(self, name: str) -> None:
        self._cm = anyio.from_thread.start_blocking_portal(name=name)
        #: anyio's portal, for an async context manager that must enter and exit in one
        #: task (``wrap_async_context_manager``).
        self.portal = self._cm.__enter__()
        self.loop: Loop = self.portal.call(asyncio.get_running_loop)

    def stop(self) -> None:
        """End the loop and its thread (from any other thread)."""
        self._cm.__exit__(None, None, None)


class SyncView:
    """Base of the synchronous views: the async object they call, through a portal."""

    _portal: Portal
    #: The async object whose calls this view makes (a Runtime, a Client).
    _target: Any


def blocking(
    method: Callable[Concatenate[Any, P], Awaitable[R]],
) -> Callable[Concatenate[SyncView, P], R]:
    """The synchronous twin of an async method: ``send = blocking(Runtime.send)``.

    It calls the method of that name on the view's target through its portal (so a
    subclass's override is the one called), with the same arguments and docstring. (A
    method taking ``*args`` cannot be typed this way: give it a thin method instead.)
    """
    name = method.__name__

    @functools.wraps(method)
    def call(self: SyncView, /, *args: P.args, **kwargs: P.kwargs) -> R:
        bound: Callable[P, Awaitable[R]] = getattr(self._target, name)
        return self._portal.call(bound, *args, **kwargs)

    return call


_DONE = object()


def iterate(portal: Portal, make: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
    """A plain iterator over the async iterator ``make()`` (made on the loop, in the
    caller's context), one value per portal call."""

    async def start() -> AsyncIterator[T]:
        return make()

    start.__name__ = getattr(make, "__name__", "read_stream")
    source = portal.call(start)

    async def read_stream() -> object:
        try:
            return await anext(source)
        except StopAsyncIteration:
            return _DONE

    def values() -> Iterator[T]:
        try:
            while (value := portal.call(read_stream)) is not _DONE:
                yield value  # type: ignore[misc]
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:  # (left early, or collected in any thread: best effort)
                with contextlib.suppress(LitewfError, asyncio.CancelledError):
                    portal.call(close)

    return values()

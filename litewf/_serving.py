"""How a launched runtime serves: from a task of its own, in one event loop.

``launch()`` starts the task, which hosts the runtime's task group (poller, recovery loop,
running workflows) until ``shutdown()`` cancels it, from whatever task. The task keeps
its own error for ``launch()`` or ``shutdown()`` to raise. A launch whose event loop has
ended (``anyio.run(rt.launch)`` returned) is noticed by the next call on the runtime.
"""

from __future__ import annotations

import asyncio

import anyio
from anyio.abc import TaskGroup

__all__ = ["Serving", "failure", "loop_gone", "stopped_by"]


class Serving:
    """One launch: the runtime's own task, its event loop, its task group and its end."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.task: asyncio.Task[None] | None = None
        self.tg: TaskGroup | None = None
        self.ready = anyio.Event()  # serving, or failed to start (then ``done`` too)
        self.done = anyio.Event()
        self.error: BaseException | None = None
        self.stopping = False
        self.abandoned = False

    def stop(self) -> None:
        self.stopping = True
        if self.tg is not None:
            self.tg.cancel_scope.cancel()
        elif self.task is not None:
            self.task.cancel()  # still opening: its task group does not exist yet


def loop_gone(loop: asyncio.AbstractEventLoop, current: asyncio.AbstractEventLoop | None) -> bool:
    """Whether ``loop`` (not the current one) has ended: closed, or no longer running."""
    return loop is not current and (loop.is_closed() or not loop.is_running())


def failure(error: BaseException | None) -> BaseException | None:
    """What of a stopped launch's error is worth raising at shutdown.

    Not a cancellation, and not KeyboardInterrupt or SystemExit from workflow code:
    asyncio raised those out of the event loop, bare, already.
    """
    quiet = (KeyboardInterrupt, SystemExit, asyncio.CancelledError)
    if isinstance(error, BaseExceptionGroup):
        return error.split(quiet)[1]
    return None if isinstance(error, quiet) else error


def stopped_by(error: BaseException | None) -> BaseException | None:
    """The error that stopped a launch, unless it was only cancelled (its loop ended)."""
    return None if isinstance(error, asyncio.CancelledError) else error

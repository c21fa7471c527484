"""How a launched runtime serves: from a task of its own, in one event loop.

``launch()`` starts the task (``serve``), which opens the session, takes the executor
lock, recovers, and hosts the runtime's task group (change feed, recovery loop, running
workflows) until ``shutdown()`` cancels it, from whatever task. Then it releases the
launch's workflows and closes everything. The task keeps its own error for ``launch()``
or ``shutdown()`` to raise. A launch whose event loop has ended (``anyio.run(rt.launch)``
returned) is noticed by the next call on the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
import sqlite3
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from . import _store as store
from ._exceptions import LitewfError, RuntimeNotLaunchedError
from ._executor import Executor
from ._liveness import ExecutorLock
from ._pgliveness import PgExecutorLock
from ._queues import Queue, keep_dequeuing
from ._recovery import keep_recovering, recover
from ._scheduler import keep_scheduling
from ._schedules import declare
from ._session import Session
from ._threads import StepThreads
from ._ticks import ScheduleSpec

__all__ = [
    "Serving",
    "Settings",
    "default_executor_id",
    "failure",
    "loop_gone",
    "serve",
    "stopped_by",
    "warn_unclosed",
]

logger = logging.getLogger("litewf")


@dataclass(frozen=True, slots=True)
class Settings:
    """What ``serve`` needs of the runtime's configuration."""

    name: str  # the runtime's repr, for the log
    max_recovery_attempts: int
    recovery_interval: float
    shutdown_timeout: float
    #: Called when a stop was asked for (shutdown, or a cancelled launch).
    on_stop: Callable[[], None]


class Serving:
    """One launch: the runtime's own task, its event loop, session, lock and end."""

    def __init__(self, loop: asyncio.AbstractEventLoop, session: Session) -> None:
        self.loop = loop
        self.session = session
        self.task: asyncio.Task[None] | None = None
        self.tg: TaskGroup | None = None
        self.lock: ExecutorLock | PgExecutorLock | None = None
        #: The session is open and the executor lock held: calls may use it.
        self.opened = False
        #: The recovery loop's scope (cancelled by a simulated crash).
        self.background = anyio.CancelScope()
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

    def session_for(self, call: str, name: str, dead: str | None) -> Session:
        """The session, if ``call`` may use it now: launched, alive, in this event loop."""
        if not self.opened:
            if stopped_by(self.error) is not None:
                raise LitewfError(
                    f"{name} stopped serving after an error ({self.error!r}); "
                    f"shut it down and launch it again"
                ) from self.error
            raise RuntimeNotLaunchedError(call)
        if dead is not None:
            raise LitewfError(dead)
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = self.loop  # called from a worker thread: nothing to compare
        if current is not self.loop:
            if loop_gone(self.loop, current):
                raise LitewfError(
                    f"{name} was launched in an event loop that has ended; call "
                    f"launch() again in this one (it takes back its workflows)"
                )
            raise LitewfError(
                f"{name} serves another event loop, which still runs; call it from "
                f"that loop (a runtime serves one event loop at a time)"
            )
        return self.session

    def drop_lock(self) -> None:
        """Drop the executor lock the way the OS drops a dead process's (a simulated crash)."""
        if self.lock is not None:
            self.lock.abandon()
            self.lock = None

    def abandon(self) -> bool:
        """Close without the event loop (it has ended); whether the launch had opened."""
        self.abandoned = True
        opened, self.opened = self.opened, False
        lock, self.lock = self.lock, None
        if lock is not None:  # before the connection: a live lock says the -wal file exists
            lock.release()
        if opened:
            self.session.backend.abandon()
        return opened


async def serve(
    serving: Serving,
    executor: Executor,
    threads: StepThreads,
    settings: Settings,
    *,
    reclaim: bool,
    queues: dict[str, Queue] | None = None,
    schedules: dict[str, ScheduleSpec] | None = None,
) -> None:
    """The runtime's own task: hosts its task group from launch until shutdown.

    Errors are kept in ``serving.error`` for ``launch()`` or ``shutdown()`` to raise.
    ``reclaim``: a launch whose event loop died left workflows owned; take them back
    (that was no crash: no recovery attempt is counted).
    """
    session = serving.session
    me = executor.executor_id
    try:
        async with anyio.create_task_group() as tg:
            serving.tg = tg
            await session.open(tg)
            serving.lock = await anyio.to_thread.run_sync(session.backend.lock, me)
            serving.opened = True
            executor.attach(session, tg)
            if reclaim:
                await session.backend.write(store.release_workflows, me)
            await recover(executor, session, settings.max_recovery_attempts, first=True)
            await declare(session, schedules or {})  # @rt.scheduled's, before launch returns
            tg.start_soon(
                _recovery_loop, serving, executor, settings, {} if queues is None else queues
            )
            serving.ready.set()
            await anyio.sleep_forever()  # until shutdown() cancels the task group
    except GeneratorExit:
        raise  # its event loop is gone and the task is being destroyed
    except BaseException as exc:  # kept for launch() or shutdown() to raise
        serving.error = exc
        if serving.ready.is_set() and not serving.stopping and failure(exc) is not None:
            logger.error("%s stopped serving after an error", settings.name, exc_info=exc)
    finally:
        if not serving.abandoned:
            await _close(serving, executor, threads, settings)


async def _recovery_loop(
    serving: Serving, executor: Executor, settings: Settings, queues: dict[str, Queue]
) -> None:
    """Recovery, the dequeuing of this runtime's queues and its scheduler (all stop on
    a crash)."""
    interval = settings.recovery_interval
    with serving.background:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_keep_lock, serving, executor, settings)
            tg.start_soon(keep_dequeuing, executor, serving.session, queues, interval)
            tg.start_soon(keep_scheduling, executor, serving.session, interval)
            await keep_recovering(
                executor, serving.session, settings.max_recovery_attempts, interval
            )


async def _keep_lock(serving: Serving, executor: Executor, settings: Settings) -> None:
    """On PostgreSQL: once the executor lock's session has ended while this runtime lives
    on (a server restart, ``pg_terminate_backend``, a network cut), a peer may take its
    workflows over. So stop every run here at once and start none, take the lock again
    on a new session, then run again, as at launch, the workflows still ours."""
    lock = serving.lock
    if not isinstance(lock, PgExecutorLock):
        return  # an OS lock on the file lasts as long as the process
    session = serving.session
    while True:
        lost = anyio.Event()
        lock.watch(functools.partial(_call_soon, serving.loop, lost.set))
        await lost.wait()
        executor.suspend(lock.lost or "lost")
        logger.warning(
            "%s lost its executor lock (%s): its workflows were stopped here; taking the "
            "lock again, then running again those no peer took over",
            settings.name,
            lock.lost,
        )
        await _lock_again(lock, session, settings.name)
        executor.suspended = None
        try:
            await recover(executor, session, settings.max_recovery_attempts, first=True)
        except LitewfError:  # the recovery loop runs them again (``_readopt``)
            logger.exception("%s: recovery after taking its lock again failed", settings.name)


async def _lock_again(lock: PgExecutorLock, session: Session, name: str) -> None:
    """Take the executor lock again (retried until the server is back)."""
    delay, said = 0.05, 0.0
    while True:
        try:
            await anyio.to_thread.run_sync(lock.acquire)
            # Every write takes the schema's write lock: this one commits after the claim
            # of any peer that found the lock free before it was taken again, so the
            # recovery that follows sees that claim (its reads could miss it).
            await session.backend.write(_nothing)
            return
        except LitewfError as exc:  # the server is down; a peer probes it (a conflict)
            if time.monotonic() - said > 10.0:
                said = time.monotonic()
                logger.warning("%s cannot take its executor lock again yet: %s", name, exc)
        await anyio.sleep(delay)
        delay = min(delay * 2, 1.0)


def _nothing(tx: object) -> None:
    return None


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[[], None], reason: str) -> None:
    """Call ``fn`` in ``loop`` (from another thread); nothing if that loop has closed."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn)


async def _close(
    serving: Serving, executor: Executor, threads: StepThreads, settings: Settings
) -> None:
    """Release this launch's PENDING workflows (unless it crashed) and close it all."""
    opened, serving.opened = serving.opened, False
    lock, serving.lock = serving.lock, None
    backend = serving.session.backend
    if serving.stopping:
        settings.on_stop()  # else (its event loop ended): still never shut down
    executor.detach()
    try:
        with anyio.CancelScope(shield=True):
            try:
                if opened and executor.dead is None:  # a crashed process releases nothing
                    keep = await threads.wait(settings.shutdown_timeout)
                    await backend.write(store.release_workflows, executor.executor_id, keep)
            finally:
                if lock is not None:
                    if threads.alive():
                        # A step body outlived the wait: hold the lock (no peer takes its
                        # workflow) and the -wal file (a live lock over a missing -wal
                        # means "deleted" to other openers) until the last body ends.
                        hold = backend.keep_files()
                        threads.after_all(functools.partial(_let_go, lock, hold))
                    else:  # before closing: a live lock says the -wal file exists
                        lock.release()
                await backend.close()
    finally:
        serving.ready.set()
        serving.done.set()


def _let_go(lock: ExecutorLock | PgExecutorLock, hold: sqlite3.Connection | None) -> None:
    """Once the last step body has ended: drop the executor lock, then the -wal hold."""
    lock.release()
    if hold is not None:
        hold.close()


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


def default_executor_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


def warn_unclosed(description: str) -> None:
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

"""Streams: a workflow's append-only sequences of values, read from anywhere as they grow.

A stream is the values a workflow wrote under one key, at positions 0, 1, 2, ... .
``write_stream`` and ``close_stream`` called by the workflow are operations (exactly once
across replay): the value row and the operation record commit together.

Inside a step body a write is committed within milliseconds (batched, see
``StepWriter``), and numbered within the step's run: its
n-th write is stored as written by "<step's operation number>:<n>" (a workflow's own
write by its operation number: every value says which operation wrote it, so that a fork
can copy what the operations it copies wrote). A step runs again when
the process died before its outcome was recorded, or when an attempt failed and it retries;
the new run's first writes then find their numbers already written and are skipped, so a
reader never sees a position twice or two runs interleaved: it sees the values the first
run wrote, then the values only a later run got to. (A step that writes different values
when it runs again leaves the first run's in place.)

``read_stream`` yields from an offset and waits for more until the stream is closed or
the workflow has finished; its ``timeout`` bounds the wait for each next value. Inside a
workflow each value it yields (or the end) is an operation, so a replay reads the same.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from . import _journal as journal
from . import _replay as replay
from . import _store as store
from ._change import Change
from ._exceptions import (
    InvalidValueError,
    NotInWorkflowError,
    StreamClosedError,
    WorkflowNotFoundError,
    _Superseded,
)
from ._history import identity
from ._rows import Columns
from ._serialization import Serializer, dumps_checked, loads_checked
from ._types import UNFINISHED
from ._validate import check_count, check_id, check_key, check_timeout, check_value

if TYPE_CHECKING:
    from ._replay import StepRun, WorkflowContext
    from ._session import Session
    from ._tx import Tx

__all__ = [
    "close",
    "close_anywhere",
    "close_in_step",
    "ended",
    "read",
    "read_recorded",
    "write",
    "write_anywhere",
    "write_in_step",
]

#: Values read per transaction while catching up.
BATCH = 500

#: What a look at a stream found: values (position, stored text; None text: the close),
#: or that nothing is there yet (None).
Found = list[tuple[int, str | None]] | None


def encode(serializer: Serializer, key: str, value: Any) -> str:
    """Check a stream write's arguments; the value as stored."""
    check_key(key, "key")
    if value is None:
        raise InvalidValueError(
            "None cannot be written to a stream (a reader could not tell it from the end); "
            "write a value, or call close_stream()"
        )
    check_value(value, "a stream value")
    return dumps_checked(serializer, value, f"the value written to stream {key!r}")


# -- writing ---------------------------------------------------------------------------------


async def write_anywhere(key: str, value: Any) -> None:
    """``rt.write_stream``: an operation in a workflow, a numbered write in a step."""
    ctx = replay.current()
    if ctx is not None:
        await write(ctx, key, value)
    else:
        await write_in_step(_step_run("write_stream()"), key, value)


async def close_anywhere(key: str) -> None:
    """``rt.close_stream``: an operation in a workflow, a queued close in a step."""
    ctx = replay.current()
    if ctx is not None:
        await close(ctx, key)
    else:
        await close_in_step(_step_run("close_stream()"), key)


def _step_run(call: str) -> StepRun:
    run = replay.current_step()
    if run is None:
        raise NotInWorkflowError(call)
    return run


async def write(ctx: WorkflowContext, key: str, value: Any) -> None:
    """Append ``value`` as the workflow's operation: exactly once across replay."""
    data = encode(ctx.session.serializer, key, value)
    await _append_as_operation(ctx, "write_stream", key, data)


async def close(ctx: WorkflowContext, key: str) -> None:
    """Close the stream as the workflow's operation (closing twice is a no-op)."""
    check_key(key, "key")
    await _append_as_operation(ctx, "close_stream", key, None)


async def _append_as_operation(ctx: WorkflowContext, name: str, key: str, data: str | None) -> None:
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, name, identity(key=key))
    if recorded is not None:
        ctx.outcome(recorded, name)  # raises a recorded StreamClosedError
        return

    def append(tx: Tx) -> StreamClosedError | None:
        position = journal.append_stream(tx, ctx.workflow_id, key, data, str(op_id))
        error = StreamClosedError(ctx.workflow_id, key) if position == journal.CLOSED else None
        ctx.record(tx, op_id, name, error=error)
        return error

    error = await ctx.write(append)
    if error is not None:
        raise error


async def write_in_step(run: StepRun, key: str, value: Any) -> None:
    """Append ``value`` from a step body: numbered within the step's run, and batched
    (see ``StepWriter``)."""
    data = encode(run.ctx.session.serializer, key, value)
    writer = f"{run.op_id}:{run.writes}"
    run.writes += 1
    await StepWriter.of(run).add(key, data, writer)


async def close_in_step(run: StepRun, key: str) -> None:
    """Close the stream from a step body (closing twice is a no-op), after its writes."""
    check_key(key, "key")
    await StepWriter.of(run).add(key, None, f"{run.op_id}:close")


class StepWriter:
    """A step run's stream writes, committed in order by one flush at a time.

    ``write_stream`` in a step returns once its value is queued: a flush commits all that
    is queued in one transaction (one fsync), while the step goes on producing the next
    values, so a step streams as fast as it produces. This is safe because a step's
    outcome is not recorded before its writes are committed (the step waits for them when
    its body ends), and a step that dies first runs again and writes them again, as
    numbered writes. A write's error (a closed stream, a lost ownership) is raised by the
    step's next write, or when its body ends.
    """

    #: Queued values at which a write waits for the flush (bounds memory and lag).
    MAX_QUEUED = 2_000

    def __init__(self, run: StepRun) -> None:
        self._run = run
        self._queued: list[tuple[str, str | None, str | None]] = []
        self._flush: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    @classmethod
    def of(cls, run: StepRun) -> StepWriter:
        """The writer of this step run (made at its first write)."""
        writer = run.stream_writer
        if not isinstance(writer, StepWriter):
            writer = run.stream_writer = cls(run)
            run.finish = writer.finish
        return writer

    async def add(self, key: str, data: str | None, writer: str | None) -> None:
        self._raise_error()
        self._queued.append((key, data, writer))
        if self._flush is None:
            self._flush = asyncio.get_running_loop().create_task(self._flush_all())
        elif len(self._queued) >= self.MAX_QUEUED:
            await asyncio.shield(self._flush)
            self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    async def _flush_all(self) -> None:
        ctx = self._run.ctx
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                closed = await ctx.write(_append_batch, ctx.workflow_id, ctx.executor_id, batch)
                if closed is not None:
                    self._error = StreamClosedError(ctx.workflow_id, closed)
                    self._queued.clear()
        except BaseException as exc:  # noqa: BLE001 - raised by the step's next write
            self._error = exc
            self._queued.clear()
        finally:
            self._flush = None

    async def finish(self, error: BaseException | None) -> None:
        """The body has ended: wait for its writes (cancelled: drop what is unwritten, the
        step runs again); raise a write's error if the body did not raise its own."""
        flush = self._flush
        if flush is not None:
            if error is not None and not isinstance(error, Exception):
                flush.cancel()  # cancelled (or unwinding): this run stops here
                return
            await asyncio.shield(flush)
        if error is None:
            self._raise_error()


def _append_batch(
    tx: Tx, workflow_id: str, executor_id: str, batch: list[tuple[str, str | None, str | None]]
) -> str | None:
    """Append a step's queued writes in order; the key of a closed stream written to (the
    writes after it are dropped), else None."""
    if not store.owns(tx, workflow_id, executor_id):
        raise _Superseded()  # cancelled or taken over: this run writes nothing more
    for key, data, writer in batch:
        if journal.append_stream(tx, workflow_id, key, data, writer) == journal.CLOSED:
            return key
    return None


# -- reading ---------------------------------------------------------------------------------


#: The largest offset SQLite can compare (a signed 64-bit integer).
MAX_OFFSET = 2**63 - 1


def _check_read(workflow_id: str, key: str, offset: int, timeout: float | None) -> float | None:
    check_id(workflow_id)
    check_key(key, "key")
    if check_count(offset, "offset") > MAX_OFFSET:
        raise InvalidValueError(f"offset must be at most {MAX_OFFSET}, got {offset}")
    return check_timeout(timeout, optional=True)


def _look(tx: Tx, workflow_id: str, key: str, start: int, limit: int) -> Found:
    """The stream's values from ``start``; the end (a close) once the workflow has finished
    with nothing more; None if it waits for more. ``WorkflowNotFoundError`` if none."""
    rows = journal.read_stream(tx, workflow_id, key, start, limit)
    if rows:
        return rows
    status = store.status_of(tx, workflow_id)
    if status is None:
        raise WorkflowNotFoundError(workflow_id)
    if status in UNFINISHED and not journal.stream_closed(tx, workflow_id, key):
        return None
    return [(start, None)]  # closed before ``start``, or finished: nothing more will come


async def ended(session: Session, workflow_id: str, key: str, offset: int) -> bool:
    """Whether the stream has nothing at ``offset`` and never will (it was closed, or the
    workflow has finished): a read that stopped there ended, rather than timed out."""
    found = await session.backend.read(_look, workflow_id, key, offset, 1)
    return found is not None and found[0][1] is None


def _watched(workflow_id: str, key: str) -> tuple[Change, Change]:
    return Change.stream(workflow_id, key), Change.status(workflow_id)


async def read(
    session: Session, workflow_id: str, key: str, offset: int, timeout: float | None
) -> AsyncIterator[Any]:
    """The stream's values from ``offset`` on, waiting for more, outside workflows."""
    timeout = _check_read(workflow_id, key, offset, timeout)
    check = Columns(session.path, "streams", workflow_id)
    position = offset
    while True:
        deadline = None if timeout is None else session.clock.time() + timeout

        more = functools.partial(session.backend.read, _look, workflow_id, key, position, BATCH)
        rows = await session.notifier.wait_for(_watched(workflow_id, key), more, deadline)
        if rows is None:
            return  # nothing new within the timeout
        for at, data in rows:
            if data is None:
                return
            yield check.value(session.serializer, f"value {at} of stream {key!r}", data)
            position = at + 1


async def read_recorded(
    ctx: WorkflowContext, workflow_id: str, key: str, offset: int, timeout: float | None
) -> AsyncIterator[Any]:
    """As ``read``, inside a workflow: each value (or the end) is an operation."""
    timeout = _check_read(workflow_id, key, offset, timeout)
    position = offset
    while True:
        found = await _next_recorded(ctx, workflow_id, key, position, timeout)
        if found is None:
            return
        yield found[0]
        position += 1


async def _next_recorded(
    ctx: WorkflowContext, workflow_id: str, key: str, position: int, timeout: float | None
) -> tuple[Any] | None:
    """One step of a recorded read: the value at ``position`` in a 1-tuple, or None (the
    end, or the timeout). The deadline is recorded first, the outcome last."""
    session = ctx.session
    name, what = "read_stream", f"value {position} of stream {key!r}"
    op_id = ctx.reserve()
    recorded = ctx.replayed(
        op_id, name, identity(workflow_id=workflow_id, key=key, offset=position)
    )

    def value(data: str | None) -> tuple[Any] | None:
        return None if data is None else (loads_checked(session.serializer, data, what),)

    if recorded is not None and recorded.done:
        if recorded.error is not None:
            ctx.outcome(recorded, what)  # raises the recorded WorkflowNotFoundError
        return value(recorded.output)
    if recorded is None:
        deadline = None if timeout is None else session.clock.time() + timeout

        def look_or_start_waiting(tx: Tx) -> Found | WorkflowNotFoundError:
            try:
                rows = _look(tx, workflow_id, key, position, 1)
            except WorkflowNotFoundError as exc:
                ctx.record(tx, op_id, name, error=exc)
                return exc
            output = None if rows is None else rows[0][1]
            ctx.record(tx, op_id, name, output, deadline=deadline, done=rows is not None)
            return rows

        found = await ctx.write(look_or_start_waiting)
        if isinstance(found, WorkflowNotFoundError):
            raise found
        if found is not None:
            return value(found[0][1])
    else:
        deadline = recorded.deadline

    async def more() -> Found:
        return await ctx.read(_look, workflow_id, key, position, 1)

    rows = await session.notifier.wait_for(_watched(workflow_id, key), more, deadline)
    data = None if rows is None else rows[0][1]
    await ctx.write(ctx.finish_wait, op_id, name, data)
    return value(data)

"""A session on a database: what a Runtime and a Client share.

The backend, the notifier it feeds, and every call that works from any process outside
workflows, written once. The workflow-side variants (recorded operations) live in
``_operations`` and ``_reads``; ``_management`` adds listing, collection and health.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import anyio
from anyio.abc import TaskGroup

from . import _deadlinesql as deadlinesql
from . import _journal as journal
from . import _store as store
from ._backend import SqliteBackend
from ._change import Change
from ._clock import REAL_CLOCK, Clock
from ._exceptions import (
    CorruptDatabaseError,
    InvalidValueError,
    LitewfError,
    MaxRecoveryAttemptsExceededError,
    WorkflowCancelledError,
    WorkflowNotFoundError,
)
from ._history import retry_ending_failure
from ._inspectsql import WorkflowFilter
from ._notifier import Notifier
from ._pgbackend import PostgresBackend
from ._pgdialect import is_postgres_url
from ._rows import Columns
from ._serialization import Serializer, dumps_checked
from ._tx import Tx
from ._types import UNFINISHED, Durability, Status, WorkflowStatus
from ._validate import (
    Limit,
    check_count,
    check_id,
    check_key,
    check_limit,
    check_value,
    check_when,
)

__all__ = [
    "LocalRun",
    "Session",
    "check_event_args",
    "check_list_filters",
    "encode_message",
    "not_finished",
    "row_outcome",
    "workflow_filter",
]

logger = logging.getLogger("litewf")

#: Changes older than this are pruned; pollers that slept longer fall back on re-checks.
CHANGE_RETENTION_S = 600.0


class LocalRun:
    """A workflow whose run is under way in this process, and its outcome once the run has
    stored it: this process's ``get_result`` callers take it without a read."""

    __slots__ = ("ended", "row")

    def __init__(self) -> None:
        #: The outcome as committed (set from the commit's callbacks, before its waiters
        #: run); None until then, or if the run ended without storing one.
        self.row: store.ResultRow | None = None
        self.ended = False


class Session:
    """An open database plus the machinery to wait on it."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        serializer: Serializer,
        durability: Durability,
        poll_interval: float,
        create: bool,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.backend: SqliteBackend | PostgresBackend
        if is_postgres_url(path):
            self.backend = PostgresBackend(str(path), durability=durability, create=create)
        else:
            self.backend = SqliteBackend(path, durability=durability, create=create)
        self.path = self.backend.path
        self.serializer = serializer
        self.clock = clock
        self.notifier = Notifier(clock)
        #: The workflows this process's runtime runs now (see ``wait_result``).
        self.local_runs: dict[str, LocalRun] = {}
        self.backend.on_change = self.notifier.notify
        self.poll_interval = poll_interval
        #: Called once if the database is lost (its -wal file deleted); a Runtime stops.
        self.on_lost: Callable[[str], None] = self.notifier.close

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, path: str | os.PathLike[str], *, serializer: Serializer, poll_interval: float
    ) -> AsyncIterator[Session]:
        """A session on an existing database (never created or migrated), open inside."""
        session = cls(
            path,
            serializer=serializer,
            durability="full",
            poll_interval=poll_interval,
            create=False,
        )
        # Entered by hand, not "async with": an error in the caller's block must reach it
        # as itself, not wrapped in the task group's ExceptionGroup.
        tg = anyio.create_task_group()
        await tg.__aenter__()
        try:
            await session.open(tg)
        except BaseException:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
            raise
        try:
            yield session
        finally:
            tg.cancel_scope.cancel()
            try:
                await tg.__aexit__(None, None, None)
            finally:
                await session.backend.close()

    async def open(self, tg: TaskGroup) -> None:
        await self.backend.open()
        tg.start_soon(self._follow_forever)

    async def _follow_forever(self) -> None:
        """Follow the change feed; a failing read is logged and retried, never fatal."""
        while True:
            try:
                await self.backend.follow(self.poll_interval)
            except LitewfError as exc:
                if self.backend.lost is not None:
                    logger.error("litewf stopped: %s", exc)
                    self.on_lost(str(exc))
                    return
                logger.exception("litewf change feed failed; retrying in 1 s")
                await anyio.sleep(1.0)

    # -- workflows ---------------------------------------------------------------------

    async def get_status(self, workflow_id: str) -> WorkflowStatus:
        status = await self.backend.read(store.get_status, check_id(workflow_id))
        if status is None:
            raise WorkflowNotFoundError(workflow_id)
        return status

    async def require_exists(self, workflow_id: str) -> None:
        if not await self.backend.read(store.workflow_exists, workflow_id):
            raise WorkflowNotFoundError(workflow_id)

    async def wait_result(
        self, workflow_id: str, timeout: float | None, deadline_at: datetime | None = None
    ) -> Any:
        check_id(workflow_id)
        limit = check_limit(timeout, deadline_at, optional=True)
        deadline = limit.deadline(self.clock.time())
        # Run here now: not finished at the first look, and its outcome comes from its run
        # (no read); a wake-up without one (a change made elsewhere, a run that ended
        # without an outcome) reads the row.
        run = self.local_runs.get(workflow_id)
        first_look = True

        async def finished() -> store.ResultRow | None:
            nonlocal first_look
            skip_read, first_look = first_look, False
            if run is not None:
                if run.row is not None:
                    return run.row
                if skip_read and not run.ended:
                    return None
            row = await self.backend.read(store.get_result, workflow_id)
            if row is None:
                raise WorkflowNotFoundError(workflow_id)
            return None if row.status in UNFINISHED else row

        row = await self.notifier.wait_for(Change.status(workflow_id), finished, deadline)
        if row is None:
            raise not_finished(workflow_id, limit)
        output, error = row_outcome(self.path, workflow_id, row)
        if error is not None:
            raise error
        if output is None:
            return None
        check = Columns(self.path, "workflows", workflow_id)
        return check.value(self.serializer, "output", output)

    async def list_workflows(
        self,
        *,
        status: Status | str | None = None,
        name: str | None = None,
        limit: int = 100,
        offset: int = 0,
        queue: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        prefix: str | None = None,
        parent: str | None = None,
    ) -> list[WorkflowStatus]:
        """Stored workflows; ``CorruptDatabaseError`` if one of them is a bad row."""
        wanted = workflow_filter(status, name, limit, offset, queue, since, until, prefix, parent)
        return await self.backend.read(store.list_workflows, wanted, limit, offset)

    async def list_workflows_marked(
        self,
        *,
        status: Status | str | None,
        name: str | None,
        limit: int,
        offset: int,
        queue: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        prefix: str | None = None,
        parent: str | None = None,
    ) -> list[WorkflowStatus | CorruptDatabaseError]:
        """As ``list_workflows``, with each bad row's error in its place."""
        wanted = workflow_filter(status, name, limit, offset, queue, since, until, prefix, parent)
        return await self.backend.read(store.list_workflows_marked, wanted, limit, offset)

    async def cancel_workflow(self, workflow_id: str) -> None:
        """Stop a PENDING workflow, or take an ENQUEUED one off its queue (it ends CANCELLED);
        finished ones are left as they are."""
        check_id(workflow_id)

        def cancel(tx: Tx) -> None:
            if not store.workflow_exists(tx, workflow_id):
                raise WorkflowNotFoundError(workflow_id)
            store.cancel_workflow(tx, workflow_id)

        await self.backend.write(cancel)

    async def resume_workflow(
        self, workflow_id: str, owner: Callable[[str], str | None]
    ) -> tuple[str, str] | None:
        """Make a stopped (not successful) workflow PENDING again, owned by ``owner(name)``
        (``None``: unowned, for any live runtime that has its function to claim).

        Returns its name and stored inputs if it was restarted; None if it had succeeded
        or was PENDING already (then nothing changes).
        """
        check_id(workflow_id)

        def restart(tx: Tx) -> tuple[str, str] | None:
            found = store.get_inputs(tx, workflow_id)
            if found is None:
                raise WorkflowNotFoundError(workflow_id)
            retry_ending_failure(tx, workflow_id)  # only when it ended ERROR
            deadlinesql.clear(tx, workflow_id)  # a resumed run has no deadline
            if not store.restart_workflow(tx, workflow_id, owner(found[0])):
                return None
            return found

        return await self.backend.write(restart)

    # -- events and messages, outside workflows ---------------------------------------------

    async def send(
        self,
        destination_id: str,
        message: Any,
        topic: str | None,
        idempotency_key: str | None,
    ) -> bool:
        """Enqueue the message; False if ``idempotency_key`` was used before (nothing sent)."""
        topic, idempotency_key, data = encode_message(
            self.serializer, destination_id, message, topic, idempotency_key
        )

        def enqueue(tx: Tx) -> bool:
            sent = journal.enqueue_message(tx, destination_id, topic, data, idempotency_key)
            if sent is None:
                raise WorkflowNotFoundError(destination_id)
            return sent

        return await self.backend.write(enqueue)

    async def get_event(
        self, workflow_id: str, key: str, timeout: float, deadline: datetime | None = None
    ) -> Any:
        limit = check_event_args(workflow_id, key, timeout, deadline)
        at = limit.deadline(self.clock.time())  # (no such workflow: the first look raises)
        assert at is not None
        found = await self.wait_event(workflow_id, key, at)
        return None if found is None else found[0]

    async def wait_event(self, workflow_id: str, key: str, deadline: float) -> tuple[Any] | None:
        """The event's decoded value in a 1-tuple, or None once ``deadline`` has passed;
        ``WorkflowNotFoundError`` if the workflow is deleted meanwhile."""

        async def lookup() -> tuple[Any] | None:
            data = await self.backend.read(journal.get_live_event, workflow_id, key)
            if data is None:
                return None
            check = Columns(self.path, "events", workflow_id)
            return (check.value(self.serializer, f"value of key {key!r}", data),)

        if math.isinf(deadline):
            deadline = self.clock.time() + 1e9
        watched = Change.event(workflow_id, key), Change.status(workflow_id)
        return await self.notifier.wait_for(watched, lookup, deadline)

    async def get_all_events(self, workflow_id: str) -> dict[str, Any]:
        check_id(workflow_id)
        await self.require_exists(workflow_id)
        check = Columns(self.path, "events", workflow_id)
        return {
            key: check.value(self.serializer, f"value of key {key!r}", value)
            for key, value in await self.backend.read(journal.get_all_events, workflow_id)
        }


def encode_message(
    serializer: Serializer,
    destination_id: str,
    message: Any,
    topic: str | None,
    idempotency_key: str | None,
) -> tuple[str | None, str | None, str]:
    """Check ``send``'s arguments; the topic, the idempotency key and the stored message."""
    check_id(destination_id, "destination_id")
    check_value(message, "message")
    topic = check_key(topic, "topic", optional=True)
    idempotency_key = check_key(idempotency_key, "idempotency_key", optional=True)
    return topic, idempotency_key, dumps_checked(serializer, message, "the message")


def check_event_args(
    workflow_id: str, key: str, timeout: float, deadline: datetime | None = None
) -> Limit:
    """Check ``get_event``'s arguments; how long it may wait."""
    check_id(workflow_id)
    check_key(key, "key")
    return check_limit(timeout, deadline)


def not_finished(workflow_id: str, limit: Limit) -> TimeoutError:
    """What ``get_result`` raises when the workflow has not finished in time."""
    return TimeoutError(
        f"workflow {workflow_id!r} did not finish {limit.describe()} (it keeps running)"
    )


def row_outcome(
    path: str, workflow_id: str, row: store.ResultRow
) -> tuple[str | None, Exception | None]:
    """A finished workflow's stored output, or the exception ``get_result`` raises for it
    (``CorruptDatabaseError`` for a malformed error record)."""
    if row.status is Status.SUCCESS:
        return row.output, None
    if row.status is Status.CANCELLED and row.error is None:
        return None, WorkflowCancelledError(workflow_id)  # (else: WorkflowTimeoutError)
    if row.status is Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED:
        return None, MaxRecoveryAttemptsExceededError(workflow_id, row.recovery_attempts)
    return None, Columns(path, "workflows", workflow_id).exception("error", row.error)


def check_list_filters(
    status: Status | str | None, name: str | None, limit: int, offset: int
) -> tuple[Status | None, str | None]:
    """Check ``list_workflows``' arguments; the status as a ``Status`` and the name."""

    try:
        wanted = None if status is None else Status(status)
    except ValueError:
        choices = ", ".join(s.value for s in Status)
        raise InvalidValueError(f"status must be one of {choices}, got {status!r}") from None
    name = check_key(name, "name", optional=True)
    check_count(limit, "limit")
    check_count(offset, "offset")
    return wanted, name


def workflow_filter(
    status: Status | str | None,
    name: str | None,
    limit: int,
    offset: int,
    queue: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    prefix: str | None = None,
    parent: str | None = None,
) -> WorkflowFilter:
    """Check every ``list_workflows`` argument; the filter they make.

    ``since`` and ``until`` are aware datetimes (created at or after / before), ``prefix``
    a workflow ID's start (matched exactly), ``parent`` a workflow ID (its children)."""
    wanted, name = check_list_filters(status, name, limit, offset)
    return WorkflowFilter(
        status=wanted,
        name=name,
        queue=check_key(queue, "queue", optional=True),
        since=None if since is None else check_when(since, "since"),
        until=None if until is None else check_when(until, "until"),
        prefix=None if prefix is None else check_id(prefix, "prefix"),
        parent=None if parent is None else check_id(parent, "parent"),
    )

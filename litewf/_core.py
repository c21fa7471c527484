"""What a Runtime and a Client share: the database, the notifier and its poller.

Everything here works from any process and outside workflows; the workflow-side
variants of send and get_event (which are recorded operations) live in the runtime.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from . import _store as store
from ._clock import REAL_CLOCK, Clock
from ._context import retry_ending_failure
from ._db import Database, Durability, Tx
from ._exceptions import (
    CorruptDatabaseError,
    InvalidValueError,
    LitewfError,
    MaxRecoveryAttemptsExceededError,
    WorkflowCancelledError,
    WorkflowNotFoundError,
)
from ._notifier import Notifier, event_key, message_key, poll_changes, status_key
from ._rows import Columns
from ._serialization import Serializer, dumps_checked
from ._types import Status, WorkflowStatus
from ._validate import check_count, check_id, check_key, check_timeout, check_value

__all__ = ["Core"]

logger = logging.getLogger("litewf")

#: Changes older than this are pruned; pollers that slept longer fall back on re-checks.
CHANGE_RETENTION_S = 600.0


class Core:
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
        self.db = Database(path, durability=durability, create=create)
        self.serializer = serializer
        self.clock = clock
        self.notifier = Notifier(clock)
        self.poll_interval = poll_interval
        #: Called once if the database is lost (its -wal file deleted); a Runtime stops.
        self.on_lost: Callable[[str], None] = self.notifier.close

    async def open(self, tg: TaskGroup) -> None:
        await self.db.open()
        tg.start_soon(self._poll_forever)

    async def _poll_forever(self) -> None:
        """Run the poller; a failing read is logged and retried, never fatal."""
        while True:
            try:
                await poll_changes(self.db, self.notifier, self.poll_interval)
            except LitewfError as exc:
                if self.db.lost is not None:
                    logger.error("litewf stopped: %s", exc)
                    self.on_lost(str(exc))
                    return
                logger.exception("litewf poller failed; retrying in 1 s")
                await anyio.sleep(1.0)

    # -- workflows ---------------------------------------------------------------------

    async def get_status(self, workflow_id: str) -> WorkflowStatus:
        status = await self.db.read(store.get_status, check_id(workflow_id))
        if status is None:
            raise WorkflowNotFoundError(workflow_id)
        return status

    async def require_exists(self, workflow_id: str) -> None:
        if not await self.db.read(store.workflow_exists, workflow_id):
            raise WorkflowNotFoundError(workflow_id)

    async def wait_result(self, workflow_id: str, timeout: float | None) -> Any:
        check_id(workflow_id)
        timeout = check_timeout(timeout, optional=True)
        deadline = None if timeout is None else self.clock.time() + timeout

        async def finished() -> store.ResultRow | None:
            row = await self.db.read(store.get_result, workflow_id)
            if row is None:
                raise WorkflowNotFoundError(workflow_id)
            return None if row.status is Status.PENDING else row

        row = await self.notifier.wait_for(status_key(workflow_id), finished, deadline)
        if row is None:
            raise TimeoutError(
                f"workflow {workflow_id!r} did not finish within {timeout} s (it keeps running)"
            )
        output, error = row_outcome(self.db.path, workflow_id, row)
        if error is not None:
            raise error
        if output is None:
            return None
        check = Columns(self.db.path, "workflows", workflow_id)
        return check.value(self.serializer, "output", output)

    async def list_workflows(
        self,
        *,
        status: Status | str | None = None,
        name: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[WorkflowStatus]:
        """Stored workflows; ``CorruptDatabaseError`` if one of them is a bad row."""
        wanted, name = check_list_filters(status, name, limit, offset)
        return await self.db.read(store.list_workflows, wanted, name, limit, offset)

    async def list_workflows_marked(
        self, *, status: Status | str | None, name: str | None, limit: int, offset: int
    ) -> list[WorkflowStatus | CorruptDatabaseError]:
        """As ``list_workflows``, with each bad row's error in its place."""
        wanted, name = check_list_filters(status, name, limit, offset)
        return await self.db.read(store.list_workflows_marked, wanted, name, limit, offset)

    async def cancel_workflow(self, workflow_id: str) -> None:
        """Stop a PENDING workflow (it ends CANCELLED); finished ones are left as they are."""
        check_id(workflow_id)
        notifier = self.notifier

        def cancel(tx: Tx) -> None:
            if not store.workflow_exists(tx, workflow_id):
                raise WorkflowNotFoundError(workflow_id)
            if store.cancel_workflow(tx, workflow_id):
                tx.after_commit(lambda: notifier.notify(status_key(workflow_id)))

        await self.db.write(cancel)

    async def resume_workflow(
        self, workflow_id: str, owner: Callable[[str], str | None]
    ) -> tuple[str, str] | None:
        """Make a stopped (not successful) workflow PENDING again, owned by ``owner(name)``
        (``None``: unowned, for any live runtime that has its function to claim).

        Returns its name and stored inputs if it was restarted; None if it had succeeded
        or was PENDING already (then nothing changes).
        """
        check_id(workflow_id)
        notifier = self.notifier

        def restart(tx: Tx) -> tuple[str, str] | None:
            found = store.get_inputs(tx, workflow_id)
            if found is None:
                raise WorkflowNotFoundError(workflow_id)
            retry_ending_failure(tx, workflow_id)  # only when it ended ERROR
            if not store.restart_workflow(tx, workflow_id, owner(found[0])):
                return None
            tx.after_commit(lambda: notifier.notify(status_key(workflow_id)))
            return found

        return await self.db.write(restart)

    # -- events and messages, outside workflows ---------------------------------------------

    async def send(
        self,
        destination_id: str,
        message: Any,
        topic: str | None,
        idempotency_key: str | None,
    ) -> bool:
        """Enqueue the message; False if ``idempotency_key`` was used before (nothing sent)."""
        check_id(destination_id, "destination_id")
        check_value(message, "message")
        topic = check_key(topic, "topic", optional=True)
        idempotency_key = check_key(idempotency_key, "idempotency_key", optional=True)
        data = dumps_checked(self.serializer, message, "the message")
        notifier = self.notifier

        def enqueue(tx: Tx) -> bool:
            if not store.workflow_exists(tx, destination_id):
                raise WorkflowNotFoundError(destination_id)
            if not store.enqueue_message(tx, destination_id, topic, data, idempotency_key):
                return False
            key = message_key(destination_id, topic)
            tx.after_commit(lambda: notifier.notify(key))
            return True

        return await self.db.write(enqueue)

    async def get_event(self, workflow_id: str, key: str, timeout: float) -> Any:
        check_id(workflow_id)
        key = check_key(key, "key")
        timeout = check_timeout(timeout)
        await self.require_exists(workflow_id)
        found = await self.wait_event(workflow_id, key, self.clock.time() + timeout)
        return None if found is None else found[0]

    async def wait_event(self, workflow_id: str, key: str, deadline: float) -> tuple[Any] | None:
        """The event's decoded value in a 1-tuple, or None once ``deadline`` has passed."""

        async def lookup() -> tuple[Any] | None:
            data = await self.db.read(store.get_event, workflow_id, key)
            if data is None:
                return None
            check = Columns(self.db.path, "events", workflow_id)
            return (check.value(self.serializer, f"value of key {key!r}", data),)

        if math.isinf(deadline):
            deadline = self.clock.time() + 1e9
        return await self.notifier.wait_for(event_key(workflow_id, key), lookup, deadline)

    async def get_all_events(self, workflow_id: str) -> dict[str, Any]:
        check_id(workflow_id)
        await self.require_exists(workflow_id)
        check = Columns(self.db.path, "events", workflow_id)
        return {
            key: check.value(self.serializer, f"value of key {key!r}", value)
            for key, value in await self.db.read(store.get_all_events, workflow_id)
        }


def row_outcome(
    path: str, workflow_id: str, row: store.ResultRow
) -> tuple[str | None, Exception | None]:
    """A finished workflow's stored output, or the exception ``get_result`` raises for it
    (``CorruptDatabaseError`` for a malformed error record)."""
    if row.status is Status.SUCCESS:
        return row.output, None
    if row.status is Status.CANCELLED:
        return None, WorkflowCancelledError(workflow_id)
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

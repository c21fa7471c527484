"""The calls a Runtime and a Client both offer, written once.

Outside a workflow each is the session's call. Inside a workflow of a runtime, ``send``
and ``get_event`` are recorded operations (``_operations``), and the reads of durable
state are recorded too when the workflow's history records reads (``_reads``). A Client
runs no workflows, so its calls are always the session's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from types import EllipsisType
from typing import Any

from . import _fork as fork
from . import _management as management
from . import _operations as operations
from . import _reads as reads
from . import _replay as replay
from . import _streams as streams
from ._session import Session
from ._types import CollectedCounts, QueuedMessage, Status, StepRecord, WorkflowStatus
from ._validate import DEFAULT_WAIT_S, check_id
from ._workflow import WorkflowHandle

__all__ = ["SessionCalls"]


class SessionCalls:
    """Mixin: the public calls on a session, for ``Runtime`` and ``Client``."""

    def _session_for(self, call: str) -> Session:
        """The open session, or the error that says why ``call`` cannot be made now."""
        raise NotImplementedError

    def _workflow(self) -> replay.WorkflowContext | None:
        """The running workflow whose operations these calls are, if any."""
        return None

    def _runner(self) -> fork.Runner | None:
        """What runs a fork at once here (a runtime's executor); None: nothing does."""
        return None

    def _reading(self, session: Session) -> replay.WorkflowContext | None:
        """The running workflow whose reads through ``session`` are recorded operations."""
        return None if self._workflow() is None else replay.reading(session)

    async def send(
        self,
        destination_id: str,
        message: Any,
        topic: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> bool:
        """Put ``message`` on the destination's ``topic`` queue; on disk when this returns.

        Returns False (and enqueues nothing) if ``idempotency_key`` was used before for
        this destination; True otherwise. In a workflow a replay returns what the first
        run got.
        """
        session = self._session_for("send")
        ctx = self._workflow()
        if ctx is None:
            return await session.send(destination_id, message, topic, idempotency_key)
        return await operations.send(ctx, destination_id, message, topic, idempotency_key)

    async def get_event(
        self,
        workflow_id: str,
        key: str,
        timeout: float = DEFAULT_WAIT_S,
        *,
        deadline: datetime | None = None,
    ) -> Any:
        """Wait for a workflow's event; the value, or None once ``timeout`` seconds pass
        (or the aware datetime ``deadline``, given instead)."""
        session = self._session_for("get_event")
        ctx = self._workflow()
        if ctx is None:
            return await session.get_event(workflow_id, key, timeout, deadline)
        return await operations.get_event(ctx, workflow_id, key, timeout, deadline)

    def read_stream(
        self, workflow_id: str, key: str, offset: int = 0, timeout: float | None = None
    ) -> AsyncIterator[Any]:
        """Iterate over the workflow's stream ``key`` from ``offset``: its values as they
        are written, ending once the stream is closed or the workflow has finished, or
        when ``timeout`` seconds pass with no new value. Resume from the next offset to
        miss nothing and see nothing twice. Inside a workflow each value is recorded."""
        session = self._session_for("read_stream")
        ctx = self._workflow()
        if ctx is None:
            return streams.read(session, workflow_id, key, offset, timeout)
        return streams.read_recorded(ctx, workflow_id, key, offset, timeout)

    async def get_all_events(self, workflow_id: str) -> dict[str, Any]:
        """Every event the workflow has set so far."""
        session = self._session_for("get_all_events")
        ctx = self._reading(session)
        if ctx is not None:
            return await reads.get_all_events(ctx, session, workflow_id)
        return await session.get_all_events(workflow_id)

    async def retrieve_workflow(self, workflow_id: str) -> WorkflowHandle[Any]:
        """A handle to a stored workflow; ``WorkflowNotFoundError`` if there is none."""
        session = self._session_for("retrieve_workflow")
        ctx = self._reading(session)
        if ctx is not None:
            await reads.retrieve(ctx, session, workflow_id)
        else:
            await session.require_exists(check_id(workflow_id))
        return WorkflowHandle(session, workflow_id)

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
        """Stored workflows, newest first; each filter given narrows the list: ``queue``
        (that queue's, in every status), created ``since`` / before ``until`` (aware
        datetimes), IDs starting with ``prefix``, children of ``parent``."""
        session = self._session_for("list_workflows")
        ctx = self._reading(session)
        if ctx is not None:
            return await reads.list_workflows(
                ctx, session, status, name, limit, offset, queue, since, until, prefix, parent
            )
        return await session.list_workflows(
            status=status,
            name=name,
            limit=limit,
            offset=offset,
            queue=queue,
            since=since,
            until=until,
            prefix=prefix,
            parent=parent,
        )

    async def cancel_workflow(self, workflow_id: str) -> None:
        """Cancel a PENDING workflow wherever it runs, or take an ENQUEUED one off its
        queue; a finished one is left unchanged."""
        await self._session_for("cancel_workflow").cancel_workflow(workflow_id)

    async def list_steps(self, workflow_id: str) -> list[StepRecord]:
        """The workflow's recorded operations (steps, sleeps, messages, events, children)."""
        session = self._session_for("list_steps")
        ctx = self._reading(session)
        if ctx is not None:
            return await reads.list_steps(ctx, session, workflow_id)
        return await management.list_steps(session, workflow_id)

    async def list_messages(
        self, workflow_id: str, topic: str | EllipsisType | None = ...
    ) -> list[QueuedMessage]:
        """Messages queued for the workflow and not received yet; every topic by default."""
        session = self._session_for("list_messages")
        return await management.list_messages(session, workflow_id, topic)

    async def garbage_collect(
        self, *, older_than: float | timedelta, keep_pending: bool = True, dry_run: bool = False
    ) -> CollectedCounts:
        """Delete workflow trees whose root finished more than ``older_than`` (seconds)
        ago, with their data; a child goes only with its root.

        Trees with a PENDING member are kept; ``keep_pending=False`` also deletes trees
        whose root is PENDING and not updated for that long (running ones stop). Safe
        while workflows run: it deletes in short transactions.
        ``dry_run=True`` returns the counts it would delete and deletes nothing.
        """
        session = self._session_for("garbage_collect")
        return await management.garbage_collect(session, older_than, keep_pending, dry_run)

    async def fork_workflow(
        self, source_id: str, /, from_step: int, *, workflow_id: str | None = None
    ) -> WorkflowHandle[Any]:
        """A new workflow with the source's function and inputs that starts with a copy
        of its operations numbered below ``from_step`` (and the events and stream values
        they wrote), then runs on with today's code: the way out of a history that
        ``resume_workflow`` can only replay (say, a step's recorded error).

        ``workflow_id`` names the fork (default: a new UUID; a taken ID raises
        ``WorkflowConflictError``). A runtime that has the function runs it at once;
        otherwise it is PENDING until a runtime that has it claims it.
        """
        session = self._session_for("fork_workflow")
        ctx = self._workflow()
        new_id = await fork.fork(session, self._runner(), ctx, source_id, from_step, workflow_id)
        return WorkflowHandle(session, new_id)

    async def delete_workflow(self, workflow_id: str, *, children: bool = False) -> None:
        """Delete the workflow and all its data (operations, events, messages, streams);
        with ``children=True`` its descendants too, else they become top-level workflows.

        A PENDING one stops wherever it runs (it can record nothing more); waiters on a
        deleted workflow end with ``WorkflowNotFoundError``.
        """
        session = self._session_for("delete_workflow")
        await fork.delete(session, self._workflow(), workflow_id, children)

"""A Client: talk to workflows in a database that another process runs."""

from __future__ import annotations

import contextlib
import os
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from ._api import SessionCalls
from ._dbfile import absolute_path
from ._deadlines import check_enqueue
from ._exceptions import LitewfError, RuntimeNotLaunchedError
from ._queues import enqueue_by_name
from ._schedules import ScheduleCalls
from ._serialization import JsonSerializer, Serializer
from ._session import Session
from ._workflow import WorkflowHandle

__all__ = ["Client"]


class Client(SessionCalls, ScheduleCalls):
    """Send messages, read events and manage workflows of an existing litewf database.

    A client runs no workflows and recovers nothing; it never creates or migrates a
    database (a missing path is a ``DatabaseError``, so a typo creates no stray file).
    Use it as ``async with litewf.Client(path) as client:``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "litewf.db",
        *,
        serializer: Serializer | None = None,
        poll_interval: float = 0.01,
    ) -> None:
        # Resolved now: a later chdir must not change which file is meant.
        self.path = absolute_path(path)
        self._serializer = serializer if serializer is not None else JsonSerializer()
        self._poll_interval = poll_interval
        self._session: Session | None = None
        self._exit: contextlib.AsyncExitStack | None = None

    def __repr__(self) -> str:
        return f"<litewf.Client {self.path!r}>"

    async def __aenter__(self) -> Self:
        if self._session is not None:
            raise LitewfError(f"{self!r} is already open")
        async with contextlib.AsyncExitStack() as stack:
            connect = Session.connect(
                self.path, serializer=self._serializer, poll_interval=self._poll_interval
            )
            self._session = await stack.enter_async_context(connect)
            self._exit = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, stack = self._session, self._exit
        if session is None or stack is None:
            return
        session.backend.check_process()  # a fork() child must not touch the parent's tasks
        self._session = self._exit = None
        await stack.aclose()

    def _session_for(self, call: str) -> Session:
        if self._session is None:
            raise RuntimeNotLaunchedError(f"Client.{call}")
        return self._session

    async def resume_workflow(self, workflow_id: str) -> WorkflowHandle[Any]:
        """Make a cancelled or failed workflow PENDING again; a live runtime picks it up."""
        session = self._session_for("resume_workflow")
        await session.resume_workflow(workflow_id, lambda name: None)
        return WorkflowHandle(session, workflow_id)

    async def enqueue(
        self,
        queue_name: str,
        workflow_name: str,
        *args: Any,
        workflow_id: str | None = None,
        priority: int | None = None,
        dedup_id: str | None = None,
        delay: float | None = None,
        partition_key: str | None = None,
        timeout: float | timedelta | None = None,
        deadline: datetime | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[Any]:
        """Enqueue the workflow registered as ``workflow_name`` on ``queue_name``: a runtime
        that has both starts it (see ``Queue.enqueue``). Outside workflows' histories."""
        return await enqueue_by_name(
            self._session_for("enqueue"),
            queue_name,
            workflow_name,
            args,
            kwargs,
            workflow_id=workflow_id,
            priority=priority,
            dedup_id=dedup_id,
            delay=delay,
            partition_key=partition_key,
            timing=check_enqueue(timeout, deadline),
        )

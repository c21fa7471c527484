"""``SyncClient``: a ``Client`` for synchronous code, its calls made through the portal."""

from __future__ import annotations

import asyncio
import os
import threading
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from ._client import Client
from ._exceptions import LitewfError
from ._portal import LoopThread, Portal
from ._serialization import Serializer
from ._sync_api import SyncSessionCalls, SyncWorkflowHandle, blocking_handle
from ._sync_parts import SyncScheduleCalls

__all__ = ["SyncClient"]


class SyncClient(SyncSessionCalls, SyncScheduleCalls):
    """``with litewf.SyncClient(path) as client:``: a ``Client`` (its ``client``) whose
    calls block, from any number of threads. It runs an event loop in a thread of its own
    while open."""

    def __init__(
        self,
        path: str | os.PathLike[str] = "litewf.db",
        *,
        serializer: Serializer | None = None,
        poll_interval: float = 0.01,
    ) -> None:
        #: The async client this view calls.
        self.client = Client(path, serializer=serializer, poll_interval=poll_interval)
        self._target = self.client
        self._owned: LoopThread | None = None
        self._opened: AbstractContextManager[Client] | None = None
        self._portal = Portal(self._loop, "SyncClient", "'with litewf.SyncClient(path):'")
        self._lifecycle = threading.Lock()

    def __repr__(self) -> str:
        return f"<litewf.SyncClient {self.client.path!r}>"

    def _loop(self) -> asyncio.AbstractEventLoop | None:
        return None if self._owned is None else self._owned.loop

    def __enter__(self) -> Self:
        with self._lifecycle:
            if self._owned is not None:
                raise LitewfError(f"{self!r} is already open")
            owned = LoopThread(f"litewf client {self.client.path}")
            self._portal.reopen(owned.loop)
            # Opened and closed in one task: its session's task group must be.
            opened = owned.portal.wrap_async_context_manager(self.client)
            try:
                opened.__enter__()
            except BaseException:
                owned.stop()
                raise
            self._owned, self._opened = owned, opened
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lifecycle:
            owned, opened, self._owned, self._opened = self._owned, self._opened, None, None
            if owned is None or opened is None:
                return
            try:
                opened.__exit__(None, None, None)
            finally:
                self._portal.call_on(owned.loop, self._portal.drain)
                owned.stop()

    resume_workflow = blocking_handle(Client.resume_workflow)

    def enqueue(
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
    ) -> SyncWorkflowHandle[Any]:
        """``Client.enqueue``, blocking: a runtime that has the queue and the workflow
        registered as ``workflow_name`` starts it."""
        handle = self._portal.call(
            self.client.enqueue,
            queue_name,
            workflow_name,
            *args,
            workflow_id=workflow_id,
            priority=priority,
            dedup_id=dedup_id,
            delay=delay,
            partition_key=partition_key,
            timeout=timeout,
            deadline=deadline,
            **kwargs,
        )
        return SyncWorkflowHandle(self._portal, handle)

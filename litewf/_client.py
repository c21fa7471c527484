"""A Client: talk to workflows in a database that another process runs."""

from __future__ import annotations

import os
from datetime import timedelta
from types import EllipsisType, TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup

from . import _management as management
from ._core import Core
from ._db import absolute_path
from ._exceptions import LitewfError, RuntimeNotLaunchedError
from ._management import CollectedCounts, QueuedMessage, StepRecord
from ._serialization import JsonSerializer, Serializer
from ._types import Status, WorkflowStatus
from ._validate import check_id
from ._workflow import WorkflowHandle

__all__ = ["Client"]


class Client:
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
        self._core: Core | None = None
        self._tg: TaskGroup | None = None

    def __repr__(self) -> str:
        return f"<litewf.Client {self.path!r}>"

    async def __aenter__(self) -> Self:
        if self._core is not None:
            raise LitewfError(f"{self!r} is already open")
        core = Core(
            self.path,
            serializer=self._serializer,
            durability="full",
            poll_interval=self._poll_interval,
            create=False,
        )
        tg = anyio.create_task_group()
        await tg.__aenter__()
        try:
            await core.open(tg)
        except BaseException:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
            raise
        self._core, self._tg = core, tg
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        core, tg = self._core, self._tg
        if core is None or tg is None:
            return
        core.db.check_process()  # a fork() child must not touch the parent's task group
        self._core = self._tg = None
        tg.cancel_scope.cancel()
        try:
            await tg.__aexit__(None, None, None)
        finally:
            await core.db.close()

    def _open(self, call: str) -> Core:
        if self._core is None:
            raise RuntimeNotLaunchedError(f"Client.{call}")
        return self._core

    async def send(
        self,
        destination_id: str,
        message: Any,
        topic: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> bool:
        """Enqueue ``message`` for the destination workflow; on disk when this returns.

        Returns False (and enqueues nothing) if ``idempotency_key`` was used before for
        this destination; True otherwise.
        """
        return await self._open("send").send(destination_id, message, topic, idempotency_key)

    async def get_event(self, workflow_id: str, key: str, timeout: float = 60.0) -> Any:
        """Wait for a workflow's event; the value, or None once ``timeout`` seconds pass."""
        return await self._open("get_event").get_event(workflow_id, key, timeout)

    async def get_all_events(self, workflow_id: str) -> dict[str, Any]:
        return await self._open("get_all_events").get_all_events(workflow_id)

    async def retrieve_workflow(self, workflow_id: str) -> WorkflowHandle[Any]:
        core = self._open("retrieve_workflow")
        await core.require_exists(check_id(workflow_id))
        return WorkflowHandle(core, workflow_id)

    async def list_workflows(
        self,
        *,
        status: Status | str | None = None,
        name: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[WorkflowStatus]:
        return await self._open("list_workflows").list_workflows(
            status=status, name=name, limit=limit, offset=offset
        )

    async def cancel_workflow(self, workflow_id: str) -> None:
        await self._open("cancel_workflow").cancel_workflow(workflow_id)

    async def resume_workflow(self, workflow_id: str) -> WorkflowHandle[Any]:
        """Make a cancelled or failed workflow PENDING again; a live runtime picks it up."""
        core = self._open("resume_workflow")
        await core.resume_workflow(workflow_id, lambda name: None)
        return WorkflowHandle(core, workflow_id)

    async def list_steps(self, workflow_id: str) -> list[StepRecord]:
        return await management.list_steps(self._open("list_steps"), workflow_id)

    async def list_messages(
        self, workflow_id: str, topic: str | EllipsisType | None = ...
    ) -> list[QueuedMessage]:
        return await management.list_messages(self._open("list_messages"), workflow_id, topic)

    async def garbage_collect(
        self, *, older_than: float | timedelta, keep_pending: bool = True, dry_run: bool = False
    ) -> CollectedCounts:
        core = self._open("garbage_collect")
        return await management.garbage_collect(core, older_than, keep_pending, dry_run)

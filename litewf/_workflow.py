"""Registered workflow functions and handles to stored workflows."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from . import _reads as reads
from . import _replay as replay

if TYPE_CHECKING:
    from ._session import Session
    from ._types import WorkflowStatus

__all__ = ["Starter", "Workflow", "WorkflowHandle"]

P = ParamSpec("P")
R = TypeVar("R")

#: How a workflow starts itself: its runtime's start, given the workflow, its arguments
#: and keyword arguments, and an ID (None: a new one).
Starter = Callable[
    ["Workflow[Any, Any]", tuple[Any, ...], dict[str, Any], "str | None"],
    Awaitable["WorkflowHandle[Any]"],
]


class Workflow(Generic[P, R]):
    """A workflow function registered on a runtime; calling it starts it and awaits its result.

    The function re-runs from the top on recovery; its recorded operations return their
    recorded outcomes, so it must make the same durable calls in the same order.
    """

    def __init__(self, fn: Callable[P, Coroutine[Any, Any, R]], name: str, start: Starter) -> None:
        self._start = start
        self.fn = fn
        self.name = name
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<litewf workflow {self.name!r}>"

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Start the workflow (a child, inside a workflow) and wait for its result."""
        handle: WorkflowHandle[R] = await self._start(self, args, kwargs, None)
        return await handle.get_result()


class WorkflowHandle(Generic[R]):
    """A reference to a stored workflow, valid in any process that opens the database."""

    __slots__ = ("_session", "_workflow_id")

    def __init__(self, session: Session, workflow_id: str) -> None:
        self._session = session
        self._workflow_id = workflow_id

    def __repr__(self) -> str:
        return f"<WorkflowHandle {self._workflow_id!r}>"

    @property
    def workflow_id(self) -> str:
        return self._workflow_id

    async def get_result(
        self, timeout: float | None = None, *, deadline: datetime | None = None
    ) -> R:
        """Wait for the workflow to finish; return its result or raise its error.

        Raises the builtin ``TimeoutError`` if it has not finished within ``timeout``
        seconds, or by ``deadline`` (an aware datetime, instead); the workflow keeps running.
        """
        ctx = replay.reading(self._session)
        session, workflow_id = self._session, self._workflow_id
        if ctx is not None:  # inside a workflow: a recorded operation
            recorded: R = await reads.get_result(ctx, session, workflow_id, timeout, deadline)
            return recorded
        result: R = await session.wait_result(workflow_id, timeout, deadline)
        return result

    async def get_status(self) -> WorkflowStatus:
        """The workflow's stored status record."""
        ctx = replay.reading(self._session)
        if ctx is not None:  # inside a workflow: a recorded operation
            return await reads.get_status(ctx, self._session, self._workflow_id)
        return await self._session.get_status(self._workflow_id)

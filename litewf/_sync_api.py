"""The synchronous twins of the calls a Runtime and a Client share (``_api``), and of
workflow handles: each one line, the async call made through the portal (``_portal``)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from ._api import SessionCalls
from ._portal import Portal, SyncView, blocking, iterate
from ._types import WorkflowStatus
from ._workflow import WorkflowHandle

__all__ = ["SyncSessionCalls", "SyncWorkflowHandle", "blocking_handle"]

P = ParamSpec("P")
R = TypeVar("R")


class SyncWorkflowHandle(Generic[R]):
    """A ``WorkflowHandle`` for synchronous code: the same calls, blocking.

    ``aio`` is the async handle, for async code on the runtime's event loop.
    """

    __slots__ = ("_portal", "aio")

    def __init__(self, portal: Portal, handle: WorkflowHandle[R]) -> None:
        self._portal = portal
        self.aio = handle

    def __repr__(self) -> str:
        return f"<SyncWorkflowHandle {self.aio.workflow_id!r}>"

    @property
    def workflow_id(self) -> str:
        return self.aio.workflow_id

    def get_result(self, timeout: float | None = None, *, deadline: datetime | None = None) -> R:
        """Wait for the workflow to finish; return its result or raise its error
        (``TimeoutError`` after ``timeout`` seconds, or at ``deadline``)."""
        return self._portal.call(self.aio.get_result, timeout, deadline=deadline)

    def get_status(self) -> WorkflowStatus:
        """The workflow's stored status record."""
        return self._portal.call(self.aio.get_status)


def blocking_handle(
    method: Callable[Concatenate[Any, P], Awaitable[WorkflowHandle[R]]],
) -> Callable[Concatenate[SyncView, P], SyncWorkflowHandle[R]]:
    """``blocking`` for a method that returns a handle: returns a ``SyncWorkflowHandle``."""
    call = blocking(method)

    @functools.wraps(method)
    def wrapped(self: SyncView, /, *args: P.args, **kwargs: P.kwargs) -> SyncWorkflowHandle[R]:
        return SyncWorkflowHandle(self._portal, call(self, *args, **kwargs))

    return wrapped


class SyncSessionCalls(SyncView):
    """Mixin: the blocking twins of ``_api.SessionCalls``, for ``SyncRuntime`` and
    ``SyncClient``. Inside a ``def`` workflow they are its recorded operations, as the
    async calls are inside an async one."""

    send = blocking(SessionCalls.send)
    get_event = blocking(SessionCalls.get_event)
    get_all_events = blocking(SessionCalls.get_all_events)
    retrieve_workflow = blocking_handle(SessionCalls.retrieve_workflow)
    list_workflows = blocking(SessionCalls.list_workflows)
    cancel_workflow = blocking(SessionCalls.cancel_workflow)
    list_steps = blocking(SessionCalls.list_steps)
    list_messages = blocking(SessionCalls.list_messages)
    garbage_collect = blocking(SessionCalls.garbage_collect)
    fork_workflow = blocking_handle(SessionCalls.fork_workflow)
    delete_workflow = blocking(SessionCalls.delete_workflow)

    def read_stream(
        self, workflow_id: str, key: str, offset: int = 0, timeout: float | None = None
    ) -> Iterator[Any]:
        """A plain iterator over the workflow's stream ``key`` (see the async
        ``read_stream``): its values as they are written, until it ends."""
        target = self._target

        def read_stream() -> Any:
            return target.read_stream(workflow_id, key, offset, timeout)

        return iterate(self._portal, read_stream)

"""Waiting for the first of several things: ``rt.wait_first`` and what it waits for.

``rt.message(topic)`` and ``rt.event(workflow_id, key)`` are descriptors, checked when
made; a ``WorkflowHandle`` stands for its workflow's outcome. ``wait_first(name=wait,
...)`` is one recorded operation (``"wait_first"``), identified by its members (names and
what each waits for, in order). Its deadline is recorded first; the winner (its name and
value, or a handle's error) is recorded in the same transaction that takes a winning
message, so a crash leaves both or neither, and only the winner is taken: the other
messages stay queued. When several are ready at once, the first named wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import _journal as journal
from . import _operations as operations
from . import _replay as replay
from . import _store as store
from ._change import Change
from ._clock import Clock
from ._exceptions import InvalidValueError, SerializationError, WorkflowNotFoundError
from ._history import identity
from ._rows import Columns
from ._serialization import loads_checked, replay_form
from ._session import row_outcome
from ._types import UNFINISHED
from ._validate import check_id, check_key, check_limit, check_when
from ._workflow import WorkflowHandle

if TYPE_CHECKING:
    from ._replay import WorkflowContext
    from ._tx import Tx

__all__ = ["EventWait", "FirstOf", "MessageWait", "WaitCalls", "wait_first"]

#: The operation's recorded name.
NAME = "wait_first"

_ACCEPTED = "rt.message(topic), rt.event(workflow_id, key) or a WorkflowHandle"


@dataclass(frozen=True, slots=True)
class MessageWait:
    """``rt.message(topic)``: the next message on the running workflow's ``topic`` queue
    (``None``: the default topic), as a member of ``wait_first``."""

    topic: str | None = None

    def __post_init__(self) -> None:
        check_key(self.topic, "topic", optional=True)


@dataclass(frozen=True, slots=True)
class EventWait:
    """``rt.event(workflow_id, key)``: that workflow's event ``key``, as a member of
    ``wait_first``."""

    workflow_id: str
    key: str

    def __post_init__(self) -> None:
        check_id(self.workflow_id)
        check_key(self.key, "key")


@dataclass(frozen=True, slots=True)
class FirstOf:
    """What ``wait_first`` returns: the ``name`` of the wait that won, and its ``value``
    (the message, the event's value, or the workflow's result)."""

    name: str
    value: Any


@dataclass(frozen=True, slots=True)
class _Member:
    """One named wait: ``kind`` is ``message`` (``key``: the topic of ``workflow_id``'s
    own queue), ``event`` (``key``: the event key) or ``result`` (the workflow's outcome)."""

    name: str
    kind: str
    workflow_id: str
    key: str | None = None

    def target(self) -> list[str | None]:
        """How the member is recorded in the operation's identity."""
        if self.kind == "message":
            return [self.name, "message", self.key]
        if self.kind == "event":
            return [self.name, "event", self.workflow_id, self.key]
        return [self.name, "result", self.workflow_id]

    def changes(self) -> tuple[Change, ...]:
        """What wakes it (an event wait: also its workflow's deletion)."""
        if self.kind == "message":
            return (Change.message(self.workflow_id, self.key),)
        if self.kind == "event":
            assert self.key is not None
            return Change.event(self.workflow_id, self.key), Change.status(self.workflow_id)
        return (Change.status(self.workflow_id),)

    def ready(self, tx: Tx) -> bool:
        """Whether it would win now (a read: takes nothing)."""
        if self.kind == "message":
            return journal.peek_message(tx, self.workflow_id, self.key)
        if self.kind == "event":
            assert self.key is not None
            found = journal.get_event(tx, self.workflow_id, self.key) is not None
            return found or not store.workflow_exists(tx, self.workflow_id)  # (deleted)
        status = store.status_of(tx, self.workflow_id)
        return status is None or status not in UNFINISHED

    def take(self, tx: Tx, path: str) -> tuple[str | None, Exception | None] | None:
        """If ready: its stored value, or the error it ends with (a message is taken)."""
        if self.kind == "message":
            data = journal.take_message(tx, self.workflow_id, self.key)
            return None if data is None else (data, None)
        if self.kind == "event":
            assert self.key is not None
            try:
                data = journal.get_live_event(tx, self.workflow_id, self.key)
            except WorkflowNotFoundError as exc:  # deleted while waited for
                return None, exc
            return None if data is None else (data, None)
        row = store.get_result(tx, self.workflow_id)
        if row is None:  # deleted while waited for
            return None, WorkflowNotFoundError(self.workflow_id)
        if row.status in UNFINISHED:
            return None
        return row_outcome(path, self.workflow_id, row)


def _members(me: str, waits: dict[str, Any]) -> list[_Member]:
    """Check ``wait_first``'s waits (before any I/O); its members in call order."""
    if not waits:
        raise InvalidValueError(
            f"wait_first() needs at least one wait, as name=<wait>; a wait is {_ACCEPTED}"
        )
    members = []
    for name, wait in waits.items():
        check_key(name, "a wait's name")
        if isinstance(wait, MessageWait):
            members.append(_Member(name, "message", me, wait.topic))
        elif isinstance(wait, EventWait):
            members.append(_Member(name, "event", wait.workflow_id, wait.key))
        elif isinstance(wait, WorkflowHandle):
            members.append(_Member(name, "result", wait.workflow_id))
        else:
            raise InvalidValueError(
                f"wait_first() got {type(wait).__name__} for {name!r}; each wait must be "
                f"{_ACCEPTED}"
            )
    return members


async def wait_first(
    ctx: WorkflowContext,
    waits: dict[str, Any],
    timeout: float | None,
    deadline: datetime | None,
) -> FirstOf | None:
    """The first of ``waits`` to be ready, by name and value; None once the deadline passed."""
    limit = check_limit(timeout, deadline, optional=True)
    members = _members(ctx.workflow_id, waits)
    session = ctx.session
    serializer = session.serializer
    op_id = ctx.reserve()
    recorded = ctx.replayed(op_id, NAME, identity(waits=[m.target() for m in members]))
    if recorded is not None and recorded.done:
        return _decode(ctx, ctx.outcome(recorded, "wait_first winner"))

    def first_ready(tx: Tx) -> tuple[str | None, Exception | None] | None:
        """Take the first ready member (in call order): what to record for it."""
        for member in members:
            taken = member.take(tx, session.path)
            if taken is None:
                continue
            data, error = taken
            if error is not None:
                return None, error
            try:
                value = None if data is None else loads_checked(serializer, data, member.name)
            except SerializationError as exc:  # recorded: a replay raises it too
                return None, exc
            return serializer.dumps([member.name, value]), None
        return None

    at = limit.deadline(session.clock.time()) if recorded is None else recorded.deadline

    def look_or_start_waiting(tx: Tx) -> tuple[str | None, Exception | None] | None:
        for member in members:
            if member.kind != "message" and not store.workflow_exists(tx, member.workflow_id):
                error = WorkflowNotFoundError(member.workflow_id)
                ctx.record(tx, op_id, NAME, error=error)
                return None, error
        won = first_ready(tx)
        if won is None:
            ctx.record(tx, op_id, NAME, deadline=at, done=False)
        else:
            ctx.record(tx, op_id, NAME, *won)
        return won

    async def start() -> tuple[str | None, Exception | None] | None:
        return await ctx.write(look_or_start_waiting)

    def finish(tx: Tx) -> tuple[str | None, Exception | None] | None:
        got = first_ready(tx)
        if got is not None:
            ctx.finish_wait(tx, op_id, NAME, *got)
        return got

    async def settle() -> tuple[str | None, Exception | None] | None:
        return await ctx.write(finish)

    async def settle_if_ready() -> tuple[str | None, Exception | None] | None:
        if not await ctx.read(_any_ready, members):
            return None  # a read, so idle re-checks never take the write lock
        return await settle()

    # Registered before the first look (a write when the wait is new): a commit that
    # write did not see rings the waiter, so no read follows it.
    changes = tuple(dict.fromkeys(c for m in members for c in m.changes()))
    won = await session.notifier.wait_for(
        changes,
        settle_if_ready,
        at,
        on_notify=settle,
        first=start if recorded is None else None,
        hibernate=True,
    )
    if won is None:
        await ctx.write(ctx.finish_wait, op_id, NAME, None)
        return None
    output, error = won
    if error is not None:
        raise replay_form(error)
    assert output is not None
    return _decode(ctx, loads_checked(serializer, output, "wait_first winner"))


def _any_ready(tx: Tx, members: list[_Member]) -> bool:
    return any(member.ready(tx) for member in members)


def _decode(ctx: WorkflowContext, recorded: Any) -> FirstOf | None:
    """The recorded winner (``[name, value]``), or None: the deadline passed."""
    if recorded is None:
        return None
    if not (isinstance(recorded, list) and len(recorded) == 2 and isinstance(recorded[0], str)):
        check = Columns(ctx.session.path, "operations", ctx.workflow_id)
        raise check.corrupt(
            "output", f"a wait_first winner must be [name, value], got {recorded!r}"
        )
    return FirstOf(recorded[0], recorded[1])


#: What ``wait_first`` accepts as a wait.
Wait = MessageWait | EventWait | WorkflowHandle[Any]


class WaitCalls:
    """Mixin for ``Runtime``: ``wait_first``, its descriptors, and ``sleep_until``."""

    clock: Clock

    def message(self, topic: str | None = None) -> MessageWait:
        """For ``wait_first``: the next message on this workflow's ``topic`` queue."""
        return MessageWait(topic)

    def event(self, workflow_id: str, key: str) -> EventWait:
        """For ``wait_first``: the event ``key`` of workflow ``workflow_id``."""
        return EventWait(workflow_id, key)

    async def wait_first(
        self,
        *,
        timeout: float | None = None,
        deadline: datetime | None = None,
        **waits: Wait,
    ) -> FirstOf | None:
        """Wait for the first of several things; ``FirstOf(name, value)`` of the winner,
        or None once ``timeout`` seconds (or the aware datetime ``deadline``) passed.

        Each keyword names a wait: ``rt.message(topic)`` (taken only if it wins),
        ``rt.event(workflow_id, key)``, or a ``WorkflowHandle`` (its result is the value;
        its error is raised here). The first named wins when several are ready at once.
        """
        return await wait_first(replay.require("wait_first()"), waits, timeout, deadline)

    async def sleep_until(self, when: datetime) -> None:
        """Sleep durably until ``when`` (an aware datetime): ``sleep``'s absolute form,
        recorded the same way (its wake-up time). Outside a workflow a plain sleep."""
        at = check_when(when, "when")
        ctx = replay.current()
        if ctx is None:
            await self.clock.sleep_until(at)
        else:
            await operations.sleep(ctx, 0.0, at)

"""Records and enums that cross the public API."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

__all__ = [
    "CollectedCounts",
    "Durability",
    "QueuedMessage",
    "ScheduleRecord",
    "Status",
    "UNFINISHED",
    "StepRecord",
    "WorkflowStatus",
    "utc_datetime",
]


#: How hard a commit is made durable: "full" survives power loss, "normal" a process crash.
Durability = Literal["full", "normal"]


class Status(str, enum.Enum):
    """Lifecycle state of a workflow; a ``str``, so ``status == "SUCCESS"`` holds."""

    ENQUEUED = "ENQUEUED"
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    MAX_RECOVERY_ATTEMPTS_EXCEEDED = "MAX_RECOVERY_ATTEMPTS_EXCEEDED"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class WorkflowStatus:
    """A snapshot of one stored workflow."""

    workflow_id: str
    name: str
    status: Status
    created_at: datetime
    updated_at: datetime
    executor_id: str | None
    recovery_attempts: int
    error_type: str | None
    error_message: str | None
    #: The queue it was enqueued on, its priority and dedup ID (None when not queued).
    queue: str | None = None
    priority: int | None = None
    dedup_id: str | None = None


#: Statuses of a workflow that has not finished: waiting in a queue, or running.
UNFINISHED = frozenset({Status.ENQUEUED, Status.PENDING})


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One recorded operation of a workflow, as ``list_steps`` reports it.

    ``number`` is the operation's place in call order (from 0); ``kind`` is ``"step"``,
    ``"child"``, ``"enqueue"``, ``"schedule"``, ``"sleep"``, ``"send"``, ``"recv"``, ``"set_event"``, ``"get_event"`` or
    a recorded read (``"get_result"``, ``"get_status"``, ``"list_workflows"``, ...);
    ``outcome`` is ``"ok"``, ``"error"`` or ``"waiting"`` (a recv or get_event still
    waiting until ``deadline``); ``summary`` is a one-line account of the outcome.
    ``started_at`` is when the operation began (a step's first attempt, a wait's start),
    ``finished_at`` when its outcome was recorded (None while a wait is under way); both
    are None for operations recorded before litewf kept them.
    """

    workflow_id: str
    number: int
    name: str
    kind: str
    outcome: str
    summary: str
    created_at: datetime
    deadline: datetime | None
    error_type: str | None
    error_message: str | None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def duration(self) -> timedelta | None:
        """How long it took (None while a wait is under way, or for an untimed row)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A message sent to a workflow and not received yet."""

    workflow_id: str
    topic: str | None
    message: Any
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CollectedCounts:
    """How many rows ``garbage_collect`` deleted, by kind."""

    workflows: int = 0
    operations: int = 0
    events: int = 0
    messages: int = 0
    message_keys: int = 0
    changes: int = 0
    streams: int = 0


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A stored schedule: the workflow it runs, when, and where it stands.

    Exactly one of ``cron`` and ``every`` is set. ``handled_until``: every tick at or
    before it has run or was passed over (missed, or paused); ``next_tick``: the first
    tick after it (None if the expression never matches again). Both are in the
    schedule's zone ``tz``.
    """

    name: str
    workflow_name: str
    cron: str | None
    every: timedelta | None
    tz: str
    missed: str
    paused: bool
    handled_until: datetime
    next_tick: datetime | None
    created_at: datetime
    updated_at: datetime


def utc_datetime(epoch_seconds: float) -> datetime:
    """A stored time (seconds since 1970) as the timezone-aware UTC datetime users see."""
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)

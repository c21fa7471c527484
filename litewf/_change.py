"""What a commit changed, as a key that waiters watch: a workflow's status, an event, a queue, a schedule.

Each is written as a row of the ``changes`` table in the transaction that made it (so
other processes find it) and handed to this process's waiters once that transaction
commits (``Tx.changed``). Both happen in one place, ``_store.log_change``.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

__all__ = ["Change", "ChangeKind"]


class ChangeKind(enum.StrEnum):
    """What changed; the value is what the ``changes.kind`` column holds."""

    STATUS = "status"
    EVENT = "event"
    MESSAGE = "message"
    STREAM = "stream"
    QUEUE = "queue"
    SCHEDULE = "schedule"


class Change(NamedTuple):
    """One change: its kind, the workflow it concerns (a queue's name for ``QUEUE``), and
    the event key or message topic."""

    kind: ChangeKind
    workflow_id: str
    key: str | None = None

    @classmethod
    def status(cls, workflow_id: str) -> Change:
        """The workflow's status (or existence) changed."""
        return cls(ChangeKind.STATUS, workflow_id)

    @classmethod
    def event(cls, workflow_id: str, key: str) -> Change:
        """The workflow set event ``key``."""
        return cls(ChangeKind.EVENT, workflow_id, key)

    @classmethod
    def stream(cls, workflow_id: str, key: str) -> Change:
        """The workflow's stream ``key`` got a value, or was closed."""
        return cls(ChangeKind.STREAM, workflow_id, key)

    @classmethod
    def queue(cls, queue_name: str) -> Change:
        """A workflow was enqueued on ``queue_name``, or one of its slots freed (a queued
        workflow finished, was cancelled, or its delay or rate window may have passed)."""
        return cls(ChangeKind.QUEUE, queue_name)

    @classmethod
    def schedule(cls, name: str) -> Change:
        """Schedule ``name`` was created, changed, paused, resumed or deleted."""
        return cls(ChangeKind.SCHEDULE, name)

    @classmethod
    def message(cls, workflow_id: str, topic: str | None) -> Change:
        """A message was queued for the workflow on ``topic``."""
        return cls(ChangeKind.MESSAGE, workflow_id, topic)

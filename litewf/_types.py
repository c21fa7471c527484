"""Records and enums that cross the public API."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Status", "WorkflowStatus"]


class Status(str, enum.Enum):
    """Lifecycle state of a workflow; a ``str``, so ``status == "SUCCESS"`` holds."""

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

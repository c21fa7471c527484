"""Records and enums that cross the public API."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Status", "WorkflowStatus", "utc_datetime"]


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


def utc_datetime(epoch_seconds: float) -> datetime:
    """A stored time (seconds since 1970) as the timezone-aware UTC datetime users see."""
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)

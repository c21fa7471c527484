"""Argument checks made before any I/O, so a bad call stores nothing and takes no number."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, overload

from ._exceptions import InvalidValueError

__all__ = [
    "DEFAULT_WAIT_S",
    "Limit",
    "check_count",
    "check_id",
    "check_key",
    "check_limit",
    "check_timeout",
    "check_value",
    "check_when",
]

#: Longest workflow ID, event key or topic accepted (characters).
MAX_NAME_LENGTH = 1024


def check_id(value: Any, what: str = "workflow_id") -> str:
    if not isinstance(value, str) or not value:
        raise InvalidValueError(f"{what} must be a non-empty str, got {value!r}")
    _check_text(value, what)
    return value


@overload
def check_key(value: Any, what: str, *, optional: Literal[False] = ...) -> str: ...
@overload
def check_key(value: Any, what: str, *, optional: bool) -> str | None: ...
def check_key(value: Any, what: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        kind = "a str or None" if optional else "a str"
        raise InvalidValueError(f"{what} must be {kind}, got {type(value).__name__}")
    _check_text(value, what)
    return value


def _check_text(value: str, what: str) -> None:
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidValueError(
            f"{what} is {len(value)} characters long; at most {MAX_NAME_LENGTH}"
        )
    if "\x00" in value:
        raise InvalidValueError(f"{what} contains a NUL character; remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidValueError(f"{what} is not valid Unicode text ({exc.reason})") from exc


def check_count(value: Any, what: str) -> int:
    """A whole number >= 0 (a bool is refused: ``True`` is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidValueError(f"{what} must be an int >= 0, got {value!r}")
    return value


@overload
def check_timeout(value: Any, what: str = ..., *, optional: Literal[False] = ...) -> float: ...
@overload
def check_timeout(value: Any, what: str = ..., *, optional: bool) -> float | None: ...
def check_timeout(value: Any, what: str = "timeout", *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValueError(f"{what} must be a number of seconds, got {value!r}")
    if math.isnan(value) or value < 0:
        raise InvalidValueError(f"{what} must be zero or more seconds, got {value!r}")
    return float(value)


def check_value(value: Any, what: str) -> None:
    if value is None:
        raise InvalidValueError(
            f"{what} cannot be None: a None result means 'timed out', so it could not be "
            f"told apart; send a value such as {{}} or False instead"
        )


class _DefaultSeconds(float):
    """A default ``timeout``: a ``deadline=`` given beside it replaces it, where an
    explicit ``timeout=`` beside a ``deadline=`` is refused (it shows as the number)."""

    __slots__ = ()


#: The default ``timeout`` of ``recv`` and ``get_event`` (seconds).
DEFAULT_WAIT_S: float = _DefaultSeconds(60.0)


def check_when(value: Any, what: str = "deadline") -> float:
    """An aware datetime as epoch seconds (a naive one is refused: it names no instant)."""
    if not isinstance(value, datetime):
        raise InvalidValueError(
            f"{what} must be a timezone-aware datetime, got {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValueError(
            f"{what} must be a timezone-aware datetime, got the naive {value!r}; pass an "
            f"aware one, e.g. datetime.now(UTC) + timedelta(minutes=5)"
        )
    try:
        return value.timestamp()
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidValueError(f"{what} is out of range: {value!r}") from exc


@dataclass(frozen=True, slots=True)
class Limit:
    """How long a wait may last: ``seconds`` from its start, or until ``at`` (epoch
    seconds); neither: no limit."""

    seconds: float | None
    at: float | None = None

    def deadline(self, now: float) -> float | None:
        """The wait's deadline (epoch seconds) if it starts at ``now``; None: no limit.
        A deadline already past is a timeout of 0: the wait looks once and ends."""
        if self.at is not None:
            return self.at
        return None if self.seconds is None else now + self.seconds

    def describe(self) -> str:
        """``within 5.0 s`` or ``by 2026-01-01T00:00:00+00:00``, for messages."""
        if self.at is not None:
            return f"by {datetime.fromtimestamp(self.at).astimezone().isoformat()}"
        return f"within {self.seconds} s"


def check_limit(timeout: Any, deadline: Any, *, optional: bool = False) -> Limit:
    """Check a wait's ``timeout=`` (seconds) or ``deadline=`` (an aware datetime): at most
    one of them (a default timeout gives way to a deadline). ``optional``: a None
    timeout is allowed and means no limit."""
    if deadline is None:
        return Limit(check_timeout(timeout, optional=optional))
    if timeout is not None and not isinstance(timeout, _DefaultSeconds):
        raise InvalidValueError(
            "pass either timeout= (seconds from now) or deadline= (an aware datetime), not both"
        )
    return Limit(None, check_when(deadline))

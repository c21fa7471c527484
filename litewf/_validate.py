"""Argument checks made before any I/O, so a bad call stores nothing and takes no number."""

from __future__ import annotations

import math
from typing import Any, Literal, overload

from ._exceptions import InvalidValueError

__all__ = ["check_count", "check_id", "check_key", "check_timeout", "check_value"]

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

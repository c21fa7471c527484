"""The command line's argument types: counts, offsets, durations, ages, moments, JSON.

Each is an ``argparse`` ``type=`` (it raises ``ArgumentTypeError`` with what to type
instead), except ``json_argument``, which checks a value after parsing and raises
``InvalidValueError`` naming the argument.
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from ._exceptions import InvalidValueError

__all__ = ["age", "count", "duration", "json_argument", "moment", "offset"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)\s*")


def count(text: str) -> int:
    """A whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def offset(text: str) -> int:
    """A stream offset: a whole number that SQLite can store."""
    value = count(text)
    if value >= 2**63:
        raise argparse.ArgumentTypeError(f"expected an offset below 2**63, got {text!r}")
    return value


def duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``12h``, ``7d`` or ``2w``."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 90s, 30m, 12h or 7d, got {text!r}"
        )
    return float(match[1]) * _UNITS[match[2] or "s"]


def age(text: str) -> float:
    """Seconds from ``90s``, ``30m``, ``12h`` or ``7d``: the unit is required, because a
    bare ``7`` meant seconds where days were meant, and deleted a week of history."""
    seconds = duration(text)
    if not re.search(r"[smhdw]\s*$", text) and seconds != 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no unit; add one: s, m, h, d or w (e.g. {text.strip()}d for days)"
        )
    return seconds


def moment(text: str, now: datetime | None = None) -> datetime:
    """An aware datetime from an ISO date or datetime (naive: UTC, as the CLI prints
    times) or from an age with its unit (``2h``: two hours ago)."""
    if _DURATION.fullmatch(text) and re.search(r"[smhdw]\s*$", text):
        return (now or datetime.now(UTC)) - timedelta(seconds=duration(text))
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO datetime (2026-11-27T09:00, 2026-11-27 09:00+01:00) or an age "
            f"with its unit (90s, 30m, 2h, 7d, 2w), got {text!r}"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def json_argument(text: str, what: str) -> Any:
    """``text`` parsed as JSON; ``what`` names it in the error."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidValueError(
            f"{what} {text!r} is not valid JSON ({exc}); quote it for the shell, "
            f"e.g. '\"text\"' or '{{\"n\": 1}}'"
        ) from None

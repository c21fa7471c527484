"""A schedule's ticks: its grid in time (cron or ``every=``), its time zone, its checks.

Pure computation, no I/O. Times are epoch seconds. ``every=`` ticks are the multiples of
the interval since the Unix epoch (``every=timedelta(hours=1)`` ticks on the hour, UTC).
Cron ticks follow the wall clock of the schedule's zone, with cron's daylight-saving
rules (Vixie cron, cronie, Debian): an expression with a fixed minute and hour (``30 2 *
* *``) runs a wall time skipped by spring-forward once, at the jump, and a wall time
repeated by fall-back once, the first time; one with ``*`` in its minute or hour field
(``*/15 * * * *``) follows real time: nothing in the skipped hour, both copies of the
repeated one. Cron expressions are parsed by ``cronsim`` (the ``litewf[cron]`` extra).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._exceptions import InvalidValueError

__all__ = [
    "CronMissingError",
    "GRACE_S",
    "MISSED",
    "ScheduleSpec",
    "call_kwargs",
    "check_spec",
    "schedule_inputs",
    "scheduled_at",
    "tick_id",
    "zone",
]

#: What to do with ticks missed while nothing ran.
MISSED = ("skip", "latest", "all")
#: A tick the scheduler reaches within this many seconds of its time is on time, not missed.
GRACE_S = 60.0
#: The shortest ``every=`` interval (each tick is a stored workflow).
MIN_EVERY_S = 1.0
#: The longest ``every=`` interval (its ticks must stay within what a datetime can name).
MAX_EVERY_S = 100 * 366 * 86400.0
#: Wall-clock look-ahead when ordering cron ticks around a daylight-saving change.
_MARGIN = timedelta(hours=3)
_CRON_EXTRA = "pip install 'litewf[cron]'"


class CronMissingError(InvalidValueError):
    """A cron schedule, where the ``litewf[cron]`` extra is not installed."""


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """When a schedule ticks: ``cron`` or ``every`` (seconds), in zone ``tz``."""

    cron: str | None
    every: float | None
    tz: str
    missed: str

    def after(self, after: float) -> Iterator[float]:
        """Its ticks strictly after ``after``, in order (forever, or until none is left)."""
        if self.every is not None:
            k = math.floor(after / self.every) + 1
            while True:
                yield k * self.every
                k += 1
        assert self.cron is not None
        yield from _cron_after(self.cron, zone(self.tz), after)

    def between(self, start: float, end: float, limit: int) -> list[float]:
        """Its ticks in ``[start, end)``; ``InvalidValueError`` if more than ``limit``."""
        found: list[float] = []
        for tick in self.after(math.nextafter(start, -math.inf)):
            if tick >= end:
                break
            if len(found) == limit:
                raise InvalidValueError(
                    f"more than {limit} ticks between {_iso(start)} and {_iso(end)}; "
                    f"back-fill a shorter range at a time"
                )
            found.append(tick)
        return found

    def next_after(self, after: float) -> float | None:
        return next(iter(self.after(after)), None)


def check_spec(cron: Any, every: Any, tz: Any, missed: Any) -> ScheduleSpec:
    """A schedule's timing, checked; each mistake an ``InvalidValueError`` saying what to do."""
    if (cron is None) == (every is None):
        raise InvalidValueError(
            "pass exactly one of cron= (a cron expression, e.g. '0 9 * * 1-5') or every= "
            "(a datetime.timedelta, e.g. timedelta(minutes=5))"
        )
    if missed not in MISSED:
        raise InvalidValueError(
            f"missed must be 'skip', 'latest' or 'all' (what to do with ticks missed while "
            f"nothing ran), got {missed!r}"
        )
    if not isinstance(tz, str) or not tz:
        raise InvalidValueError(f"tz must be an IANA time zone name such as 'UTC', got {tz!r}")
    zone(tz)
    seconds: float | None = None
    if every is not None:
        if not isinstance(every, timedelta):
            raise InvalidValueError(
                f"every must be a datetime.timedelta, e.g. timedelta(minutes=5), got {every!r}"
            )
        seconds = every.total_seconds()
        if seconds > MAX_EVERY_S:
            raise InvalidValueError(f"every must be at most 100 years, got {every!r}")
        if seconds < MIN_EVERY_S:
            raise InvalidValueError(
                f"every must be at least 1 second, got {every!r}; for a zero or negative "
                f"interval there is no schedule to run"
            )
    else:
        if not isinstance(cron, str):
            raise InvalidValueError(f"cron must be a str such as '*/15 * * * *', got {cron!r}")
        _check_cron(cron)
    return ScheduleSpec(cron, seconds, tz, missed)


def zone(tz: str) -> ZoneInfo:
    """The time zone named ``tz``; ``InvalidValueError`` if unknown."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidValueError(
            f"unknown time zone {tz!r}: pass an IANA name such as 'Europe/Paris' or 'UTC' "
            f"(if this system has no time zone database, pip install tzdata)"
        ) from exc


def tick_id(schedule: str, tick: float) -> str:
    """The workflow ID of ``schedule``'s run for ``tick``: the same in every process."""
    return f"schedule:{schedule}:{_iso(tick)}"


def scheduled_at(tick: float, tz: str) -> datetime:
    """The tick as the aware datetime the workflow receives, in the schedule's zone."""
    return datetime.fromtimestamp(tick, zone(tz))


def schedule_inputs(schedule: str, tick: float, tz: str) -> dict[str, Any]:
    """The stored arguments of a scheduled run: no user arguments, and litewf's own
    ``schedule`` entry, from which ``call_kwargs`` rebuilds ``scheduled_at``."""
    return {"args": [], "kwargs": {}, "schedule": {"name": schedule, "at": tick, "tz": tz}}


def call_kwargs(decoded: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments to call a workflow with, from its stored arguments."""
    kwargs: dict[str, Any] = decoded["kwargs"]
    entry = decoded.get("schedule")
    if isinstance(entry, dict):
        kwargs = {**kwargs, "scheduled_at": scheduled_at(float(entry["at"]), str(entry["tz"]))}
    return kwargs


def _iso(tick: float) -> str:
    text = datetime.fromtimestamp(tick, UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


# -- cron --------------------------------------------------------------------------------


def _cronsim() -> Any:
    try:
        import cronsim
    except ImportError:
        raise CronMissingError(
            f"cron= schedules need the cronsim package: {_CRON_EXTRA} (or use every=)"
        ) from None
    return cronsim


def _check_cron(expr: str) -> None:
    cronsim = _cronsim()
    try:
        next(cronsim.CronSim(expr, datetime(2000, 1, 1)))
    except (cronsim.CronSimError, StopIteration, ValueError, IndexError, KeyError) as exc:
        raise InvalidValueError(
            f"bad cron expression {expr!r} ({exc or 'it never matches'}): use 5 fields, "
            f"minute hour day-of-month month day-of-week, e.g. '*/15 * * * *' or '0 9 * * 1-5'"
        ) from None


def _fixed_time(expr: str) -> bool:
    """Whether the expression names a fixed minute and hour (cron's wall-clock jobs)."""
    parts = expr.split()
    return len(parts) == 5 and not parts[0].startswith("*") and not parts[1].startswith("*")


def _cron_after(expr: str, tz: ZoneInfo, after: float) -> Iterator[float]:
    cronsim = _cronsim()
    if _fixed_time(expr) and tz.key != "UTC":
        # cronsim's own cron rule: a skipped time at the jump, a repeated one once.
        last = after
        start = datetime.fromtimestamp(after, tz)
        for when in cronsim.CronSim(expr, start):
            tick = when.timestamp()
            if tick > last:
                last = tick
                yield tick
        return
    # Real time: each instant whose wall time matches; around a change, the wall-time
    # order is not the instant order, so ticks wait in a heap until none can come before.
    wall = datetime.fromtimestamp(after, tz).replace(tzinfo=None) - _MARGIN
    heap: list[float] = []
    last = after
    for when in cronsim.CronSim(expr, wall):
        floor = when.replace(tzinfo=UTC).timestamp() - _max_offset(when, tz) - 3600
        while heap and heap[0] < floor:
            tick = heapq.heappop(heap)
            if tick > last:
                last = tick
                yield tick
        for tick in _instants(when, tz):
            heapq.heappush(heap, tick)


def _max_offset(wall: datetime, tz: ZoneInfo) -> float:
    offsets = (wall.replace(tzinfo=tz, fold=f).utcoffset() for f in (0, 1))
    return max(o.total_seconds() for o in offsets if o is not None)


def _instants(wall: datetime, tz: ZoneInfo) -> list[float]:
    """The instants whose wall time in ``tz`` is ``wall``: none (skipped), one, or two."""
    found = []
    for fold in (0, 1):
        aware = wall.replace(tzinfo=tz, fold=fold)
        back = aware.astimezone(UTC).astimezone(tz)
        if back.replace(tzinfo=None) == wall:
            found.append(aware.timestamp())
    return sorted(set(found))

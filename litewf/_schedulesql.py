"""The SQL of schedules: store and edit them, and fire their due ticks.

A schedule is a ``schedules`` row (migration 5). ``fire`` inserts the workflows of the
due ticks (each with the deterministic ID ``_ticks.tick_id``) and moves the schedule's
``handled_until`` in the same write transaction; writes are serialized (``BEGIN
IMMEDIATE``), so however many runtimes share the file, a tick is inserted once, and a
tick's ID existing already (a back-fill ran it) inserts nothing. Times on the runtime's
clock are passed in as ``at``. Every edit logs a ``SCHEDULE`` change, which wakes the
scheduler loops of every process.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ._change import Change
from ._exceptions import InvalidValueError, LitewfError, ScheduleNotFoundError
from ._rows import Columns
from ._store import ClaimedWorkflow, insert_workflow, log_change, now
from ._ticks import GRACE_S, CronMissingError, ScheduleSpec, check_spec, tick_id, zone
from ._tx import Tx
from ._types import ScheduleRecord, utc_datetime

__all__ = [
    "Encode",
    "Schedule",
    "delete",
    "fire",
    "get",
    "list_all",
    "pending",
    "put",
    "set_paused",
    "start_ticks",
]

#: The inputs of ``schedule``'s run for a tick: (schedule name, tick, tz) -> stored text.
Encode = Callable[[str, float, str], str]

#: At most this many missed ticks fired per schedule per transaction (``missed="all"``).
_BATCH = 100

_COLUMNS = (
    "name, workflow_name, cron, every_s, tz, missed, paused, handled_until, created_at, updated_at"
)


#: Which column a timing check's message is about (its first words), for the error.
_TIMING_COLUMNS = (("time zone", "tz"), ("missed", "missed"), ("every", "every_s"))


@dataclass(frozen=True, slots=True)
class Schedule:
    """A stored schedule, checked."""

    name: str
    workflow_name: str
    spec: ScheduleSpec
    paused: bool
    handled_until: float
    created_at: float
    updated_at: float

    def record(self) -> ScheduleRecord:
        zone_name = self.spec.tz
        nxt = self.spec.next_after(self.handled_until)
        every = None if self.spec.every is None else timedelta(seconds=self.spec.every)
        return ScheduleRecord(
            name=self.name,
            workflow_name=self.workflow_name,
            cron=self.spec.cron,
            every=every,
            tz=zone_name,
            missed=self.spec.missed,
            paused=self.paused,
            handled_until=_local(self.handled_until, zone_name),
            next_tick=None if nxt is None else _local(nxt, zone_name),
            created_at=utc_datetime(self.created_at),
            updated_at=utc_datetime(self.updated_at),
        )


def _local(at: float, tz: str) -> datetime:
    return utc_datetime(at).astimezone(zone(tz))


def put(tx: Tx, name: str, workflow_name: str, spec: ScheduleSpec, at: float) -> None:
    """Create the schedule, or replace its workflow and timing (its pause state and the
    ticks it handled are kept: a relaunch of ``@rt.scheduled`` changes nothing else)."""
    ts = now()
    tx.execute(
        "INSERT INTO schedules (name, workflow_name, cron, every_s, tz, missed, paused, "
        "handled_until, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET workflow_name = excluded.workflow_name, "
        "cron = excluded.cron, every_s = excluded.every_s, tz = excluded.tz, "
        "missed = excluded.missed, updated_at = excluded.updated_at",
        (name, workflow_name, spec.cron, spec.every, spec.tz, spec.missed, at, ts, ts),
    )
    log_change(tx, Change.schedule(name))


def get(db: Tx, name: str) -> Schedule | None:
    row = db.fetchone(f"SELECT {_COLUMNS} FROM schedules WHERE name = ?", (name,))
    return None if row is None else _schedule(db, row)


def list_all(db: Tx) -> list[Schedule]:
    rows = db.fetchall(f"SELECT {_COLUMNS} FROM schedules ORDER BY name")
    return [_schedule(db, row) for row in rows]


def _require(db: Tx, name: str) -> Schedule:
    found = get(db, name)
    if found is None:
        raise ScheduleNotFoundError(name)
    return found


def set_paused(tx: Tx, name: str, paused: bool, at: float) -> None:
    """Pause or resume; ticks that passed while paused are not run (resume moves
    ``handled_until`` to ``at``)."""
    _require(tx, name)
    tx.execute(
        "UPDATE schedules SET paused = ?, updated_at = ?, "
        "handled_until = CASE WHEN ? THEN handled_until ELSE max(handled_until, ?) END "
        "WHERE name = ?",
        (int(paused), now(), int(paused), at, name),
    )
    log_change(tx, Change.schedule(name))


def delete(tx: Tx, name: str) -> None:
    """Delete the schedule (its runs so far stay)."""
    if not tx.execute("DELETE FROM schedules WHERE name = ?", (name,)):
        raise ScheduleNotFoundError(name)
    log_change(tx, Change.schedule(name))


def start_ticks(
    tx: Tx, name: str, ticks: list[float], owner: Callable[[str], str | None], encode: Encode
) -> tuple[str, list[tuple[str, ClaimedWorkflow | None]]]:
    """Insert the runs of ``ticks`` (a trigger, a back-fill) PENDING, owned by
    ``owner(workflow name)`` (None: unowned, for a runtime that has the function).

    Returns the workflow name and, per tick, its ID and the inserted workflow (None: the
    tick's workflow existed already, nothing was inserted).
    """
    schedule = _require(tx, name)
    wf_name, tz = schedule.workflow_name, schedule.spec.tz
    executor_id = owner(wf_name)
    out: list[tuple[str, ClaimedWorkflow | None]] = []
    for tick in ticks:
        wid = tick_id(name, tick)
        inputs = encode(name, tick, tz)
        if executor_id is None:
            existed = _insert_unowned(tx, wid, wf_name, inputs)
        else:
            existed = insert_workflow(tx, wid, wf_name, inputs, executor_id, None) is not None
            if not existed:
                log_change(tx, Change.status(wid))
        out.append((wid, None if existed else ClaimedWorkflow(wid, wf_name, inputs)))
    return wf_name, out


def _insert_unowned(tx: Tx, wid: str, wf_name: str, inputs: str) -> bool:
    """Insert a PENDING workflow no executor owns yet; whether its ID existed."""
    ts = now()
    inserted = tx.execute(
        "INSERT INTO workflows (workflow_id, name, status, inputs, executor_id, parent_id, "
        "created_at, updated_at) VALUES (?, ?, 'PENDING', ?, NULL, NULL, ?, ?) "
        "ON CONFLICT (workflow_id) DO NOTHING",
        (wid, wf_name, inputs, ts, ts),
    )
    if inserted:
        log_change(tx, Change.status(wid))
    return not inserted


def fire(
    tx: Tx, names: list[str], executor_id: str, at: float, encode: Encode
) -> tuple[list[ClaimedWorkflow], float | None]:
    """Fire the due ticks of the unpaused schedules of workflows in ``names``, owned by
    ``executor_id``, and move their ``handled_until``.

    Due: after ``handled_until`` and at or before ``at``. A tick more than ``GRACE_S``
    late was missed: ``missed`` says which of those run (none, the last, or all).
    Returns the inserted workflows and when the next tick of these schedules is due
    (``at`` itself if a long back-log was cut into batches; None: no tick is left).
    """
    if not names:
        return [], None
    fired: list[ClaimedWorkflow] = []
    wake: float | None = None
    for schedule in _active(tx, names)[0]:
        ticks, until = _due(schedule.spec, schedule.handled_until, at)
        if until > schedule.handled_until:
            tx.execute(
                "UPDATE schedules SET handled_until = ? WHERE name = ?", (until, schedule.name)
            )
        for tick in ticks:
            wid = tick_id(schedule.name, tick)
            inputs = encode(schedule.name, tick, schedule.spec.tz)
            existed = insert_workflow(tx, wid, schedule.workflow_name, inputs, executor_id, None)
            if existed is not None:
                continue  # ran already (a back-fill or a trigger of this tick)
            log_change(tx, Change.status(wid))
            fired.append(ClaimedWorkflow(wid, schedule.workflow_name, inputs))
        nxt = at if until < at else schedule.spec.next_after(until)
        if nxt is not None:
            wake = nxt if wake is None else min(wake, nxt)
    return fired, wake


def _active(db: Tx, names: list[str]) -> tuple[list[Schedule], dict[str, str]]:
    """The unpaused schedules of workflows in ``names``, and those that cannot be read
    here (by name: why), which are left out (one bad row must not stop the others)."""
    wanted = set(names)
    found: list[Schedule] = []
    unusable: dict[str, str] = {}
    for row in db.fetchall(f"SELECT {_COLUMNS} FROM schedules WHERE paused IS NOT 1"):
        if row["workflow_name"] not in wanted:
            continue
        try:
            schedule = _schedule(db, row)
        except LitewfError as exc:  # a damaged row, or no cronsim in this process
            unusable[str(row["name"])] = str(exc)
            continue
        if not schedule.paused:
            found.append(schedule)
    return found, unusable


def pending(db: Tx, names: list[str], at: float) -> tuple[bool, float | None, dict[str, str]]:
    """Whether a tick of these schedules is due at ``at`` (a read: an idle runtime then
    writes nothing), when the next one is, and the schedules left out (see ``_active``)."""
    wake: float | None = None
    schedules, unusable = _active(db, names)
    for schedule in schedules:
        nxt = schedule.spec.next_after(schedule.handled_until)
        if nxt is not None and nxt <= at:
            return True, at, unusable
        if nxt is not None:
            wake = nxt if wake is None else min(wake, nxt)
    return False, wake, unusable


def _due(spec: ScheduleSpec, handled: float, at: float) -> tuple[list[float], float]:
    """The ticks to run now and the new ``handled_until``."""
    if at <= handled:
        return [], handled
    late_until = at - GRACE_S
    ticks: list[float] = []
    if late_until > handled:
        if spec.missed == "all":
            for tick in spec.after(handled):
                if tick > late_until:
                    break
                ticks.append(tick)
                if len(ticks) == _BATCH:
                    return ticks, tick  # the rest on the next pass
        elif spec.missed == "latest":
            last = _last_in(spec, handled, late_until)
            if last is not None:
                ticks.append(last)
    for tick in spec.after(max(handled, late_until)):
        if tick > at:
            break
        ticks.append(tick)
    return ticks, at


def _last_in(spec: ScheduleSpec, lo: float, hi: float) -> float | None:
    """The last tick in ``(lo, hi]``, or None."""
    if spec.every is not None:
        tick = math.floor(hi / spec.every) * spec.every
        return tick if tick > lo else None
    window = 3600.0
    while True:
        start = max(lo, hi - window)
        last = None
        for tick in spec.after(start):
            if tick > hi:
                break
            last = tick
        if last is not None or start == lo:
            return last
        window *= 8


def _schedule(db: Tx, row: sqlite3.Row) -> Schedule:
    check = Columns(db, "schedules", row["name"])
    name = check.text("name", row["name"])
    every = row["every_s"]
    try:
        spec = check_spec(
            row["cron"],
            None if every is None else timedelta(seconds=every),
            row["tz"],
            row["missed"],
        )
    except CronMissingError:
        raise  # a fact about this process, not about the row
    except (InvalidValueError, TypeError, OverflowError) as exc:
        text = str(exc)
        column = next((c for word, c in _TIMING_COLUMNS if word in text.split("(")[0]), "cron")
        raise check.corrupt(column, f"a timing litewf never writes ({exc})") from None
    return Schedule(
        name=name,
        workflow_name=check.text("workflow_name", row["workflow_name"]),
        spec=spec,
        paused=check.flag("paused", row["paused"]),
        handled_until=check.timestamp("handled_until", row["handled_until"]),
        created_at=check.timestamp("created_at", row["created_at"]),
        updated_at=check.timestamp("updated_at", row["updated_at"]),
    )

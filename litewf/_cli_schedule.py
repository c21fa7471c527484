"""The ``litewf schedule list|pause|resume|trigger|backfill|delete`` command (added to
``_cli``'s parser), over the same calls as ``Client``'s schedule methods.

The CLI runs no workflows: ``trigger`` and ``backfill`` store the ticks' workflows
PENDING and unowned, and a runtime that has the workflow takes them at its next recovery
pass (within its ``recovery_interval``), as after ``litewf resume``.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import _cli_output as out
from ._exceptions import InvalidValueError
from ._types import ScheduleRecord

if TYPE_CHECKING:  # the command imports what it runs when run: ``litewf --help`` is quick
    from ._session import Session

    Command = Callable[[Session, argparse.Namespace], Awaitable[int]]
    AddCommand = Callable[[str, Command, str], argparse.ArgumentParser]

__all__ = ["add_commands"]


def add_commands(command: AddCommand) -> None:
    """Add ``schedule`` to the parser (``command`` makes a subcommand)."""
    p = command("schedule", _schedule, "list and steer the stored schedules")
    p.add_argument("action", choices=["list", "pause", "resume", "trigger", "backfill", "delete"])
    p.add_argument("name", nargs="?", metavar="NAME", help="the schedule (all but list)")
    p.add_argument("start", nargs="?", metavar="START", help="backfill: ISO time, with offset")
    p.add_argument("end", nargs="?", metavar="END", help="backfill: ISO time (excluded)")


def _moment(text: str | None, what: str) -> datetime:
    if text is None:
        raise InvalidValueError(f"backfill needs {what}, an ISO time such as 2026-01-01T00:00Z")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValueError(
            f"{what} {text!r} is not an ISO time; write e.g. 2026-01-01T09:00+01:00"
        ) from None


def record_json(record: ScheduleRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "workflow_name": record.workflow_name,
        "cron": record.cron,
        "every_s": None if record.every is None else record.every.total_seconds(),
        "tz": record.tz,
        "missed": record.missed,
        "paused": record.paused,
        "handled_until": record.handled_until.isoformat(),
        "next_tick": None if record.next_tick is None else record.next_tick.isoformat(),
    }


async def _schedule(session: Session, args: argparse.Namespace) -> int:
    from . import _schedules as schedules

    action, name = args.action, args.name
    if action == "list":
        return _print_list(await schedules.list_all(session), args.json)
    if name is None:
        raise InvalidValueError(f"'schedule {action}' needs the schedule's NAME")
    if action in ("pause", "resume"):
        await schedules.set_paused(session, name, action == "pause")
        done = "paused" if action == "pause" else "resumed"
        return _say(args.json, {"name": name, "action": done}, f"schedule {name!r} {done}")
    if action == "delete":
        await schedules.delete(session, name)
        return _say(args.json, {"name": name, "action": "deleted"}, f"schedule {name!r} deleted")
    if action == "trigger":
        ids = [(await schedules.trigger(session, None, name)).workflow_id]
    else:
        start, end = _moment(args.start, "START"), _moment(args.end, "END")
        ids = [h.workflow_id for h in await schedules.backfill(session, None, name, start, end)]
    if args.json:
        out.print_json(ids)
    else:
        for wid in ids:
            print(wid)
        if not ids:
            print(f"schedule {name!r}: no tick in that range")
    return 0


def _say(as_json: bool, value: dict[str, Any], text: str) -> int:
    if as_json:
        out.print_json(value)
    else:
        print(text)
    return 0


def _print_list(found: list[ScheduleRecord], as_json: bool) -> int:
    if as_json:
        out.print_json([record_json(r) for r in found])
    elif not found:
        print("no schedules")
    else:
        headers = ["NAME", "WORKFLOW", "WHEN", "TZ", "MISSED", "STATE", "NEXT TICK"]
        rows = [
            [
                r.name,
                r.workflow_name,
                r.cron if r.cron is not None else f"every {r.every}",
                r.tz,
                r.missed,
                "paused" if r.paused else "active",
                "" if r.next_tick is None else r.next_tick.isoformat(),
            ]
            for r in found
        ]
        print(out.table(headers, rows))
    return 0

"""The ``litewf list``, ``show`` and ``steps`` commands (added to ``_cli``'s parser).

``list`` filters the workflows (status, name, queue, creation time, ID prefix, parent);
``show`` prints one workflow whole: status, inputs, output or error, steps, events and
waiting messages (long values shortened unless ``--full``; ``--json`` never shortens);
``steps`` its operations, one per line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import _cli_args as arg
from . import _cli_output as out
from ._exceptions import CorruptDatabaseError, LitewfError
from ._tracing import TRACE_KEY
from ._types import Status, StepRecord
from ._validate import check_id

if TYPE_CHECKING:  # the commands import what they run when run: ``litewf --help`` is quick
    from ._session import Session

    Command = Callable[[Session, argparse.Namespace], Awaitable[int]]
    AddCommand = Callable[[str, Command, str], argparse.ArgumentParser]

__all__ = ["add_commands", "event_rows", "report"]

#: Longest value ``show`` prints without ``--full`` (compact JSON characters).
SHORT = 300
#: ``list`` filters that the library's ``list_workflows`` takes (issue 17).


def add_commands(command: AddCommand) -> None:
    """Add ``list``, ``show`` and ``steps`` (``command`` makes a subcommand)."""
    p = command("list", _list, "list workflows, newest first")
    p.add_argument(
        "--status",
        type=str.upper,  # "pending" is PENDING
        choices=[s.value for s in Status],
        help="only this status (any case)",
    )
    p.add_argument("--name", help="only workflows of this (stored) function name")
    p.add_argument("--queue", help="only workflows enqueued on this queue")
    p.add_argument("--prefix", help="only workflow IDs that start with this text")
    p.add_argument("--parent", metavar="ID", help="only the children of workflow ID")
    when = "an ISO datetime (UTC unless it has an offset) or an age such as 90s, 30m, 2h, 7d"
    p.add_argument("--since", type=arg.moment, metavar="WHEN", help=f"created at or after: {when}")
    p.add_argument("--until", type=arg.moment, metavar="WHEN", help=f"created before: {when}")
    p.add_argument(
        "--limit", type=arg.count, default=50, metavar="K", help="at most K (default 50; 0: all)"
    )
    p.add_argument("--offset", type=arg.count, default=0, metavar="N", help="skip the first N")
    p = command("show", _show, "a workflow: status, inputs, output, steps, events, messages")
    p.add_argument("workflow_id", metavar="ID")
    p.add_argument("--full", action="store_true", help="print long values whole")
    p = command("steps", _steps, "a workflow's recorded operations, one per line")
    p.add_argument("workflow_id", metavar="ID")


# -- list --------------------------------------------------------------------------------------


async def _list(session: Session, args: argparse.Namespace) -> int:
    """The workflows; a corrupt row is listed as its ID and the bad column (exit 1)."""
    found = await session.list_workflows_marked(
        status=args.status,
        name=args.name,
        limit=args.limit or sys.maxsize,
        offset=args.offset,
        queue=args.queue,
        since=args.since,
        until=args.until,
        prefix=args.prefix,
        parent=args.parent,
    )
    if args.json:
        out.print_json(
            [
                out.corrupt_json(s) | {"workflow_id": s.workflow_id}
                if isinstance(s, CorruptDatabaseError)
                else out.status_json(s)
                for s in found
            ]
        )
    elif not found:
        print("no workflows")
    else:
        headers = ["ID", "NAME", "STATUS", "CREATED (UTC)", "UPDATED (UTC)", "ERROR"]
        print(out.table(headers, [out.status_row(s) for s in found]))
    report([s for s in found if isinstance(s, CorruptDatabaseError)])
    return 0


# -- show and steps ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Outcome:
    """A workflow's stored output or error (neither while it has not finished)."""

    status: Status
    output: Any = None
    error: dict[str, Any] | None = None


async def _inputs(session: Session, workflow_id: str) -> dict[str, Any]:
    from . import _store as store
    from ._rows import Columns

    found = await session.backend.read(store.get_inputs, workflow_id)
    if found is None:
        return {}
    decoded = Columns(session.path, "workflows", workflow_id).value(
        session.serializer, "inputs", found[1]
    )
    return decoded if isinstance(decoded, dict) else {"args": decoded}


async def _outcome(session: Session, workflow_id: str) -> _Outcome:
    from . import _store as store
    from ._rows import Columns

    row = await session.backend.read(store.get_result, workflow_id)
    if row is None:
        return _Outcome(Status.PENDING)
    check = Columns(session.path, "workflows", workflow_id)
    if row.error is not None:
        error_type, message = check.error_record("error", row.error)
        attributes = json.loads(row.error).get("attributes")  # (a checked JSON object)
        error: dict[str, Any] = {"type": error_type, "message": message}
        if isinstance(attributes, dict) and attributes:
            error["attributes"] = attributes
        return _Outcome(row.status, error=error)
    if row.status is Status.SUCCESS and row.output is not None:
        return _Outcome(row.status, check.value(session.serializer, "output", row.output))
    return _Outcome(row.status)


async def _show(session: Session, args: argparse.Namespace) -> int:
    from . import _management as management

    """Each part that reads; a part that cannot be read shows its error (exit 1)."""
    workflow_id = args.workflow_id
    await session.require_exists(check_id(workflow_id))
    failed: list[LitewfError] = []

    async def part(read: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await read()
        except LitewfError as exc:
            failed.append(exc)
            return exc

    status = await part(lambda: session.get_status(workflow_id))
    inputs = await part(lambda: _inputs(session, workflow_id))
    outcome = await part(lambda: _outcome(session, workflow_id))
    steps = await part(lambda: management.list_steps(session, workflow_id))
    events = await part(lambda: session.get_all_events(workflow_id))
    messages = await part(lambda: management.list_messages(session, workflow_id))
    if args.json:
        out.print_json(
            {
                "workflow": out.part_json(status, out.status_json),
                "inputs": out.part_json(inputs, lambda i: i),
                "output": out.part_json(outcome, lambda o: o.output),
                "error": out.part_json(outcome, lambda o: o.error),
                "steps": out.part_json(steps, lambda r: [_step_json(x) for x in r]),
                "events": out.part_json(events, lambda e: e),
                "messages": out.part_json(messages, lambda r: [dataclasses.asdict(x) for x in r]),
            }
        )
        report(failed)
        return 0
    if isinstance(status, LitewfError):
        print(out.table(None, [["workflow", workflow_id], ["status", out.unreadable(status)]]))
    else:
        print(out.status_text(status))
    _print_inputs(inputs, args.full)
    _print_outcome(outcome, args.full)
    out.section("steps", steps, _step_headers(), _step_rows)
    out.section("events", events, ["KEY", "VALUE"], event_rows)
    out.section(
        "waiting messages",
        messages,
        ["TOPIC", "MESSAGE", "SENT (UTC)"],
        lambda part: [
            [out.topic_text(m.topic), out.value_text(m.message), out.when(m.created_at)]
            for m in part
        ],
    )
    report(failed)
    return 0


def _long_value(value: Any, full: bool) -> str:
    """A value as JSON: whole and indented with ``--full``, else on one line, shortened."""
    if full:
        return json.dumps(value, ensure_ascii=False, indent=2)
    text = json.dumps(value, ensure_ascii=False)
    if len(text) <= SHORT:
        return text
    return f"{text[: SHORT - 3]}... ({len(text) - SHORT + 3:,} more characters; --full shows all)"


def _block(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n{title}")
    width = max((len(k) for k, _ in rows), default=0)
    pad = "  " if width else ""
    for key, text in rows:
        lines = text.splitlines() or [""]
        print(f"  {key.ljust(width)}{pad}{lines[0]}".rstrip())
        for line in lines[1:]:
            print(f"  {' ' * width}{pad}{line}")


def _print_inputs(inputs: Any, full: bool) -> None:
    if isinstance(inputs, LitewfError):
        print(f"\ninputs: {out.unreadable(inputs)}")
        return
    rows = [(f"[{i}]", _long_value(v, full)) for i, v in enumerate(inputs.get("args") or [])]
    rows += [(str(k), _long_value(v, full)) for k, v in (inputs.get("kwargs") or {}).items()]
    schedule = inputs.get("schedule")
    if isinstance(schedule, dict):
        rows.append(("(schedule)", f"{schedule.get('name')} at tick {schedule.get('at')}"))
    trace = inputs.get(TRACE_KEY)
    if isinstance(trace, dict) and "traceparent" in trace:
        rows.append(("(trace)", str(trace["traceparent"])))
    _block("inputs" if rows else "inputs: none", rows)


def _print_outcome(outcome: Any, full: bool) -> None:
    if isinstance(outcome, LitewfError):
        print(f"\noutput: {out.unreadable(outcome)}")
    elif outcome.error is not None:
        rows = [("type", outcome.error["type"]), ("message", outcome.error["message"])]
        if not full and len(rows[1][1]) > SHORT:
            rows[1] = ("message", _long_value(rows[1][1], False))
        rows += [(k, _long_value(v, full)) for k, v in outcome.error.get("attributes", {}).items()]
        _block("error", rows)
    elif outcome.status is Status.SUCCESS:
        _block("output", [("", _long_value(outcome.output, full))])
    else:
        print(f"\noutput: none yet ({outcome.status.value})")


def _duration(record: StepRecord) -> timedelta | None:
    """How long the operation took, when the library records it (issue 17's timing)."""
    duration: timedelta | None = getattr(record, "duration", None)
    return duration


def _step_headers() -> list[str]:
    timed = hasattr(StepRecord, "duration")
    return [
        "#",
        "KIND",
        "NAME",
        "OUTCOME",
        "SUMMARY",
        *(["TOOK"] if timed else []),
        "RECORDED (UTC)",
    ]


def _step_rows(records: Sequence[StepRecord]) -> list[list[str]]:
    timed = hasattr(StepRecord, "duration")
    rows = []
    for r in records:
        took = _duration(r)
        took_text = [] if not timed else ["-" if took is None else _took(took)]
        rows.append(
            [
                str(r.number),
                r.kind,
                r.name,
                r.outcome,
                r.summary,
                *took_text,
                out.when(r.created_at),
            ]
        )
    return rows


def _took(duration: timedelta) -> str:
    seconds = duration.total_seconds()
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _step_json(record: StepRecord) -> dict[str, Any]:
    took = _duration(record)
    extra = {} if took is None else {"duration_seconds": took.total_seconds()}
    return dataclasses.asdict(record) | extra


async def _steps(session: Session, args: argparse.Namespace) -> int:
    from . import _management as management

    records = await management.list_steps(session, args.workflow_id)
    if args.json:
        out.print_json([_step_json(r) for r in records])
    elif not records:
        print(f"workflow {args.workflow_id!r} has recorded no operations")
    else:
        print(out.table(_step_headers(), _step_rows(records)))
    return 0


def event_rows(events: dict[str, Any]) -> list[list[str]]:
    return [[k, out.value_text(v)] for k, v in events.items()]


def report(errors: Sequence[LitewfError]) -> None:
    """After printing what could be read: fail (exit 1) with the first error, if any."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise LitewfError(f"{len(errors)} parts could not be read; the first: {errors[0]}")

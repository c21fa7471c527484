"""The ``litewf`` command line: inspect and steer the workflows in a database.

It opens the database as a ``Client`` would (never creating one), so it works while an
application process runs the workflows. Exit status: 0 on success, 1 on a user error
(one line on stderr, no traceback), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import anyio

from ._client import Client
from ._exceptions import CorruptDatabaseError, LitewfError
from ._types import Status, WorkflowStatus

__all__ = ["main"]

#: Widest cell of a human-readable table; ``--json`` shows everything.
CELL_WIDTH = 60
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_GLOBAL_VALUE_OPTIONS = ("--db",)


class UserError(Exception):
    """A mistake in what the user asked for; shown as one line, exit status 1."""


Command = Callable[[Client, argparse.Namespace], Awaitable[int]]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    bench_args = _bench_arguments(args_list)
    if bench_args is not None:
        return _bench(bench_args)
    parser = _parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: 0 for --help, 2 for usage errors
        return exc.code if isinstance(exc.code, int) else 2
    command: Command = args.run
    try:
        return anyio.run(_with_client, command, args, backend="asyncio")
    except (LitewfError, UserError) as exc:
        print(f"litewf: error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("litewf: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (``| head``) left: silence the final flush, as the Python docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


async def _with_client(command: Command, args: argparse.Namespace) -> int:
    async with Client(args.db) as client:
        return await command(client, args)


# -- arguments -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    default_db = os.environ.get("LITEWF_DB") or "litewf.db"
    parser = argparse.ArgumentParser(
        prog="litewf",
        description="Inspect and steer the workflows stored in a litewf database.",
        epilog="The database is --db, else $LITEWF_DB, else ./litewf.db; it is never created.",
    )
    _add_globals(parser, default_db, argparse.SUPPRESS)
    parser.set_defaults(db=default_db, json=False)
    # Globals after the command too ("litewf list --json"); SUPPRESS keeps earlier values.
    common = argparse.ArgumentParser(add_help=False)
    _add_globals(common, argparse.SUPPRESS, argparse.SUPPRESS)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(name: str, run: Command, summary: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=summary, description=summary)
        p.set_defaults(run=run)
        return p

    p = command("list", _list, "list workflows, newest first")
    p.add_argument(
        "--status",
        type=str.upper,  # "pending" is PENDING
        choices=[s.value for s in Status],
        help="only this status (any case)",
    )
    p.add_argument("--name", help="only workflows of this (stored) function name")
    p.add_argument(
        "--limit", type=_count, default=50, metavar="K", help="at most K (default 50; 0: all)"
    )
    command("show", _show, "a workflow's status, steps, events and waiting messages").add_argument(
        "workflow_id", metavar="ID"
    )
    command("events", _events, "the events a workflow has set").add_argument(
        "workflow_id", metavar="ID"
    )
    p = command("send", _send, "send a JSON message to a workflow")
    p.add_argument("workflow_id", metavar="ID")
    p.add_argument("message", metavar="JSON", help="the message as JSON, e.g. '{\"ok\": true}'")
    p.add_argument("--topic", help="the queue's topic (default: the topic-less queue)")
    p.add_argument("--idempotency-key", help="deliver at most once per (workflow, key)")
    p = command("get-event", _get_event, "print a workflow's event value")
    p.add_argument("workflow_id", metavar="ID")
    p.add_argument("key", metavar="KEY")
    p.add_argument(
        "--timeout", type=_duration, default=0.0, help="wait up to S for it (default: no wait)"
    )
    command("cancel", _cancel, "cancel a PENDING workflow").add_argument(
        "workflow_id", metavar="ID"
    )
    command("resume", _resume, "run a cancelled or failed workflow again").add_argument(
        "workflow_id", metavar="ID"
    )
    p = command("gc", _gc, "delete finished workflows and their data")
    p.add_argument(
        "--older-than",
        type=_age,
        required=True,
        metavar="AGE",
        help="last updated longer ago than AGE, with its unit: 90s, 30m, 12h, 7d",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print what would be deleted; delete nothing"
    )
    p.add_argument(
        "--include-pending",
        action="store_true",
        help="also delete PENDING workflows not updated for AGE (running ones stop)",
    )
    command("doctor", _doctor, "check the database: schema, journal, integrity, counts")
    sub.add_parser("bench", help="run the benchmarks (arguments go to the benchmark)")
    return parser


def _add_globals(parser: argparse.ArgumentParser, db: str, flag: Any) -> None:
    parser.add_argument("--db", default=db, metavar="PATH", help="the database file")
    parser.add_argument("--json", action="store_true", default=flag, help="output JSON")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``12h`` or ``7d``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 90s, 30m, 12h or 7d, got {text!r}"
        )
    return float(match[1]) * _UNITS[match[2] or "s"]


def _age(text: str) -> float:
    """Seconds from ``90s``, ``30m``, ``12h`` or ``7d``: the unit is required, because a
    bare ``7`` meant seconds where days were meant, and deleted a week of history."""
    seconds = _duration(text)
    if not re.search(r"[smhd]\s*$", text) and seconds != 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no unit; add one: s, m, h or d (e.g. {text.strip()}d for days)"
        )
    return seconds


def _bench_arguments(argv: list[str]) -> list[str] | None:
    """The arguments after ``bench`` when it is the command, else None."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _GLOBAL_VALUE_OPTIONS:
            i += 2
        elif arg.startswith("-"):
            i += 1
        else:
            return argv[i + 1 :] if arg == "bench" else None
    return None


def _bench(argv: list[str]) -> int:
    bench = importlib.import_module("litewf._bench")  # imported only when asked for
    result: int = bench.main(argv)
    return result


# -- commands --------------------------------------------------------------------------------


async def _list(client: Client, args: argparse.Namespace) -> int:
    """The workflows; a corrupt row is listed as its ID and the bad column (exit 1)."""
    found = await client._session_for("list").list_workflows_marked(
        status=args.status, name=args.name, limit=args.limit or sys.maxsize, offset=0
    )
    if args.json:
        _print_json(
            [
                _corrupt_json(s) | {"workflow_id": s.workflow_id}
                if isinstance(s, CorruptDatabaseError)
                else _status_json(s)
                for s in found
            ]
        )
    elif not found:
        print("no workflows")
    else:
        rows = [
            [s.workflow_id or "?", "", _unreadable(s), "", "", ""]
            if isinstance(s, CorruptDatabaseError)
            else [
                s.workflow_id,
                s.name,
                s.status.value,
                _when(s.created_at),
                _when(s.updated_at),
                _error(s),
            ]
            for s in found
        ]
        print(_table(["ID", "NAME", "STATUS", "CREATED (UTC)", "UPDATED (UTC)", "ERROR"], rows))
    _report([s for s in found if isinstance(s, CorruptDatabaseError)])
    return 0


async def _show(client: Client, args: argparse.Namespace) -> int:
    """Each part that reads; a part that cannot be read shows its error (exit 1)."""
    handle = await client.retrieve_workflow(args.workflow_id)
    failed: list[LitewfError] = []

    async def part(read: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await read()
        except LitewfError as exc:
            failed.append(exc)
            return exc

    status = await part(handle.get_status)
    steps = await part(lambda: client.list_steps(args.workflow_id))
    events = await part(lambda: client.get_all_events(args.workflow_id))
    messages = await part(lambda: client.list_messages(args.workflow_id))
    if args.json:
        _print_json(
            {
                "workflow": _part_json(status, _status_json),
                "steps": _part_json(steps, lambda r: [dataclasses.asdict(x) for x in r]),
                "events": _part_json(events, lambda e: e),
                "messages": _part_json(messages, lambda r: [dataclasses.asdict(x) for x in r]),
            }
        )
        _report(failed)
        return 0
    if isinstance(status, LitewfError):
        print(_table(None, [["workflow", args.workflow_id], ["status", _unreadable(status)]]))
    else:
        print(_status_text(status))
    _section(
        "steps",
        steps,
        ["#", "KIND", "NAME", "OUTCOME", "SUMMARY", "RECORDED (UTC)"],
        lambda part: [
            [str(r.number), r.kind, r.name, r.outcome, r.summary, _when(r.created_at)] for r in part
        ],
    )
    _section(
        "events", events, ["KEY", "VALUE"], lambda part: [[k, _value(v)] for k, v in part.items()]
    )
    _section(
        "waiting messages",
        messages,
        ["TOPIC", "MESSAGE", "SENT (UTC)"],
        lambda part: [[_topic(m.topic), _value(m.message), _when(m.created_at)] for m in part],
    )
    _report(failed)
    return 0


def _section(
    title: str, part: Any, headers: list[str], rows: Callable[[Any], list[list[str]]]
) -> None:
    """One part of ``show``: its title and count, then its table; or why it is unreadable."""
    if isinstance(part, LitewfError):
        print(f"\n{title}: {_unreadable(part)}")
        return
    print(f"\n{title} ({len(part)})")
    if part:
        print(_indent(_table(headers, rows(part))))


def _report(errors: Sequence[LitewfError]) -> None:
    """After printing what could be read: fail (exit 1) with the first error, if any."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise UserError(f"{len(errors)} parts could not be read; the first: {errors[0]}")


async def _events(client: Client, args: argparse.Namespace) -> int:
    events = await client.get_all_events(args.workflow_id)
    if args.json:
        _print_json(events)
    elif not events:
        print(f"workflow {args.workflow_id!r} has set no events")
    else:
        print(_table(["KEY", "VALUE"], [[k, _value(v)] for k, v in events.items()]))
    return 0


async def _send(client: Client, args: argparse.Namespace) -> int:
    try:
        message = json.loads(args.message)
    except ValueError as exc:
        raise UserError(
            f"the message is not valid JSON ({exc}); quote it for the shell, "
            f"e.g. '{{\"ok\": true}}' or '\"text\"'"
        ) from None
    sent = await client.send(
        args.workflow_id, message, args.topic, idempotency_key=args.idempotency_key
    )
    if args.json:
        _print_json({"workflow_id": args.workflow_id, "topic": args.topic, "sent": sent})
    elif sent:
        print(f"sent to {args.workflow_id} (topic {_topic(args.topic)})")
    else:
        print(
            f"already sent (idempotency key {args.idempotency_key!r}), nothing enqueued "
            f"for {args.workflow_id}"
        )
    return 0


async def _get_event(client: Client, args: argparse.Namespace) -> int:
    value = await client.get_event(args.workflow_id, args.key, timeout=args.timeout)
    if value is None:
        waited = f" within {args.timeout:g} s" if args.timeout else ""
        raise UserError(f"workflow {args.workflow_id!r} has not set event {args.key!r}{waited}")
    if args.json or not isinstance(value, str):
        _print_json(value)
    else:
        print(value)
    return 0


async def _cancel(client: Client, args: argparse.Namespace) -> int:
    await client.cancel_workflow(args.workflow_id)
    status = await (await client.retrieve_workflow(args.workflow_id)).get_status()
    if args.json:
        _print_json(_status_json(status))
    elif status.status is Status.CANCELLED:
        print(f"{args.workflow_id}: CANCELLED")
    else:
        print(f"{args.workflow_id}: {status.status.value} (already finished; left unchanged)")
    return 0


async def _resume(client: Client, args: argparse.Namespace) -> int:
    handle = await client.resume_workflow(args.workflow_id)
    status = await handle.get_status()
    if args.json:
        _print_json(_status_json(status))
    elif status.status is Status.PENDING:
        print(f"{args.workflow_id}: PENDING (a runtime that has its function runs it)")
    else:
        print(f"{args.workflow_id}: {status.status.value} (finished; nothing to resume)")
    return 0


async def _gc(client: Client, args: argparse.Namespace) -> int:
    counts = await client.garbage_collect(
        older_than=args.older_than, keep_pending=not args.include_pending, dry_run=args.dry_run
    )
    if args.json:
        _print_json(dataclasses.asdict(counts))
    else:
        rows = [[name, str(n)] for name, n in dataclasses.asdict(counts).items()]
        print(_table(["WOULD DELETE" if args.dry_run else "DELETED", "ROWS"], rows))
        if args.dry_run:
            print("(dry run: nothing was deleted)")
    return 0


async def _doctor(client: Client, args: argparse.Namespace) -> int:
    info = await client._session_for("doctor").backend.info()
    if args.json:
        _print_json(info)
    else:
        rows = []
        for key, value in info.items():
            if key == "corrupt_row_problems":
                continue  # the first one goes to stderr below; --json has them all
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in sorted(value.items())) or "none"
            elif key == "application_id" and isinstance(value, int):
                value = f"{value:#x}"
            rows.append([key.replace("_", " "), str(value)])
        print(_table(["CHECK", "VALUE"], rows, width=200))
    if info["integrity"] != "ok":
        print("litewf: error: the integrity check failed; restore a backup", file=sys.stderr)
        return 1
    if info["corrupt_rows"]:
        first = _one_line(info["corrupt_row_problems"][0])
        print(
            f"litewf: error: {info['corrupt_rows']} corrupt rows; the first: {first}",
            file=sys.stderr,
        )
        return 1
    return 0


# -- output ----------------------------------------------------------------------------------


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _status_json(status: WorkflowStatus) -> dict[str, Any]:
    return {**dataclasses.asdict(status), "status": status.status.value}


def _corrupt_json(error: LitewfError) -> dict[str, Any]:
    column = error.column if isinstance(error, CorruptDatabaseError) else None
    return {"corrupt": {"column": column, "problem": str(error)}}


def _part_json(part: Any, convert: Callable[[Any], Any]) -> Any:
    return _corrupt_json(part) if isinstance(part, LitewfError) else convert(part)


def _unreadable(error: LitewfError) -> str:
    """A short cell for a part that could not be read."""
    if isinstance(error, CorruptDatabaseError) and error.column is not None:
        return f"corrupt: {error.column}"
    return f"unreadable: {error}"


def _status_text(s: WorkflowStatus) -> str:
    rows = [
        ["workflow", s.workflow_id],
        ["name", s.name],
        ["status", s.status.value],
        ["created", f"{_when(s.created_at)} UTC"],
        ["updated", f"{_when(s.updated_at)} UTC"],
        ["executor", s.executor_id or "-"],
        ["recovery attempts", str(s.recovery_attempts)],
    ]
    if s.error_type is not None:
        rows.append(["error", f"{s.error_type}: {s.error_message}"])
    return _table(None, rows, width=200)


def _table(headers: list[str] | None, rows: list[list[str]], width: int = CELL_WIDTH) -> str:
    """Left-aligned columns two spaces apart; long or multi-line cells are shortened."""
    body = [[_cell(c, width) for c in row] for row in rows]
    lines = body if headers is None else [headers, *body]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _cell(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _topic(topic: str | None) -> str:
    return "(none)" if topic is None else topic


def _error(status: WorkflowStatus) -> str:
    return "" if status.error_type is None else f"{status.error_type}: {status.error_message}"


def _one_line(text: str) -> str:
    return " ".join(text.split())

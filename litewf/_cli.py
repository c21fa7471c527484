"""The ``litewf`` command line: inspect and steer the workflows in a database.

A tool over a ``Session``, as the ``Client`` is: it opens an existing database (never
creating one), so it works while an application process runs the workflows. Printing
is ``_cli_output``'s. Exit status: 0 on success, 1 on a user error (one line on stderr,
no traceback), 2 on a usage error. The parser loads no more than argparse and the
commands' tables: each command imports the machinery it runs (sessions, anyio...) when
run, so that ``litewf --help`` stays quick.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import _cli_args as arg
from . import _cli_change as cli_change
from . import _cli_check as cli_check
from . import _cli_inspect as cli_inspect
from . import _cli_migrate as cli_migrate
from . import _cli_output as out
from . import _cli_queue as cli_queue
from . import _cli_schedule as cli_schedule
from . import _cli_start as cli_start
from . import _cli_ui as cli_ui
from ._exceptions import LitewfError
from ._serialization import JsonSerializer
from ._types import Status

if TYPE_CHECKING:  # imported when a command runs, so that ``litewf --help`` stays quick
    from ._session import Session

    Command = Callable[[Session, argparse.Namespace], Awaitable[int]]

__all__ = ["main"]

_GLOBAL_VALUE_OPTIONS = ("--db",)


class UserError(Exception):
    """A mistake in what the user asked for; shown as one line, exit status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    bench_args = _bench_arguments(args_list)
    if bench_args is not None:
        if "--json" in args_list[: len(args_list) - len(bench_args)]:
            bench_args = ["--json", "-", *bench_args]  # "litewf --json bench": JSON on stdout
        return _bench(bench_args)
    parser = _parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: 0 for --help, 2 for usage errors
        return exc.code if isinstance(exc.code, int) else 2
    if hasattr(args, "standalone"):  # check-replay: no session on --db (_cli_check)
        return int(args.standalone(args))
    command: Command = args.run
    import anyio  # the commands' machinery, imported only now (see the module docstring)

    try:
        return anyio.run(_in_session, command, args, backend="asyncio")
    except (LitewfError, UserError) as exc:
        print(f"litewf: error: {out.one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("litewf: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (``| head``) left: silence the final flush, as the Python docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


async def _in_session(command: Command, args: argparse.Namespace) -> int:
    """Run ``command`` on a session on ``--db``, opened as a ``Client`` opens it.

    The path is made absolute first, as the Client does, so that errors name the file
    the same way.
    """
    from ._dbfile import absolute_path
    from ._session import Session

    connect = Session.connect(
        absolute_path(args.db), serializer=JsonSerializer(), poll_interval=0.01
    )
    async with connect as session:
        return await command(session, args)


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

    cli_inspect.add_commands(command)  # list, show, steps
    cli_start.add_command(command)
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
        "--timeout", type=arg.duration, default=0.0, help="wait up to S for it (default: no wait)"
    )
    p = command("tail", _tail, "print a workflow's stream as it grows, until it ends")
    p.add_argument("workflow_id", metavar="ID")
    p.add_argument("key", metavar="KEY")
    p.add_argument(
        "--from", dest="offset", type=arg.offset, default=0, metavar="N", help="start at offset N"
    )
    p.add_argument(
        "--timeout", type=arg.duration, metavar="S", help="stop after S with no new value (exit 1)"
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
        type=arg.age,
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
    cli_queue.add_commands(command)
    cli_check.add_command(sub)
    cli_migrate.add_command(sub)
    cli_change.add_commands(command)
    cli_schedule.add_commands(command)
    cli_ui.add_command(sub)
    command("doctor", _doctor, "check the database: schema, journal, integrity, counts")
    sub.add_parser("bench", help="run the benchmarks (arguments go to the benchmark)")
    return parser


def _add_globals(parser: argparse.ArgumentParser, db: str, flag: Any) -> None:
    parser.add_argument("--db", default=db, metavar="PATH", help="the database file")
    parser.add_argument("--json", action="store_true", default=flag, help="output JSON")


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


async def _events(session: Session, args: argparse.Namespace) -> int:
    events = await session.get_all_events(args.workflow_id)
    if args.json:
        out.print_json(events)
    elif not events:
        print(f"workflow {args.workflow_id!r} has set no events")
    else:
        print(out.table(["KEY", "VALUE"], cli_inspect.event_rows(events)))
    return 0


async def _send(session: Session, args: argparse.Namespace) -> int:
    message = arg.json_argument(args.message, "the message")
    sent = await session.send(args.workflow_id, message, args.topic, args.idempotency_key)
    if args.json:
        out.print_json({"workflow_id": args.workflow_id, "topic": args.topic, "sent": sent})
    elif sent:
        print(f"sent to {args.workflow_id} (topic {out.topic_text(args.topic)})")
    else:
        print(
            f"already sent (idempotency key {args.idempotency_key!r}), nothing enqueued "
            f"for {args.workflow_id}"
        )
    return 0


async def _get_event(session: Session, args: argparse.Namespace) -> int:
    value = await session.get_event(args.workflow_id, args.key, args.timeout)
    if value is None:
        waited = f" within {args.timeout:g} s" if args.timeout else ""
        raise UserError(f"workflow {args.workflow_id!r} has not set event {args.key!r}{waited}")
    if args.json or not isinstance(value, str):
        out.print_json(value)
    else:
        print(value)
    return 0


async def _tail(session: Session, args: argparse.Namespace) -> int:
    """Each value as it comes (``--json``: with its offset); exit 0 at the stream's end, 1
    when ``--timeout`` passed first, naming the offset to continue from."""
    from . import _streams as streams

    workflow_id, key, position = args.workflow_id, args.key, args.offset
    async for value in streams.read(session, workflow_id, key, position, args.timeout):
        print(out.stream_line(position, value, args.json), flush=True)
        position += 1
    if args.timeout is None:
        return 0  # without a timeout, a read ends only at the stream's end
    if await streams.ended(session, workflow_id, key, position):
        return 0  # closed, or the workflow finished
    raise UserError(
        f"no new value of stream {key!r} within {args.timeout:g} s; it is still open "
        f"(continue with --from {position})"
    )


async def _cancel(session: Session, args: argparse.Namespace) -> int:
    await session.cancel_workflow(args.workflow_id)
    status = await session.get_status(args.workflow_id)
    if args.json:
        out.print_json(out.status_json(status))
    elif status.status is Status.CANCELLED:
        print(f"{args.workflow_id}: CANCELLED")
    else:
        print(f"{args.workflow_id}: {status.status.value} (already finished; left unchanged)")
    return 0


async def _resume(session: Session, args: argparse.Namespace) -> int:
    await session.resume_workflow(args.workflow_id, lambda name: None)  # unowned: any runtime
    status = await session.get_status(args.workflow_id)
    if args.json:
        out.print_json(out.status_json(status))
    elif status.status is Status.PENDING:
        print(f"{args.workflow_id}: PENDING (a runtime that has its function runs it)")
    elif status.status is Status.ENQUEUED:
        where = "a delayed start" if status.queue is None else f"on queue {status.queue!r}"
        print(f"{args.workflow_id}: ENQUEUED ({where}; its runtimes start it)")
    else:
        print(f"{args.workflow_id}: {status.status.value} (finished; nothing to resume)")
    return 0


async def _gc(session: Session, args: argparse.Namespace) -> int:
    from . import _management as management

    counts = await management.garbage_collect(
        session, args.older_than, keep_pending=not args.include_pending, dry_run=args.dry_run
    )
    if args.json:
        out.print_json(dataclasses.asdict(counts))
    else:
        rows = [[name, str(n)] for name, n in dataclasses.asdict(counts).items()]
        print(out.table(["WOULD DELETE" if args.dry_run else "DELETED", "ROWS"], rows))
        if args.dry_run:
            print("(dry run: nothing was deleted)")
    return 0


async def _doctor(session: Session, args: argparse.Namespace) -> int:
    info = await session.backend.info()
    if args.json:
        out.print_json(info)
    else:  # the corrupt rows' problems: the first goes to stderr below; --json has them all
        print(out.table(["CHECK", "VALUE"], out.doctor_rows(info), width=out.WIDE))
    if info["integrity"] != "ok":
        print("litewf: error: the integrity check failed; restore a backup", file=sys.stderr)
        return 1
    if info["corrupt_rows"]:
        first = out.one_line(info["corrupt_row_problems"][0])
        print(
            f"litewf: error: {info['corrupt_rows']} corrupt rows; the first: {first}",
            file=sys.stderr,
        )
        return 1
    return 0

"""The ``litewf enqueue`` and ``litewf queue list`` commands (added to ``_cli``'s parser).

``enqueue`` stores a workflow ENQUEUED by its registered name, as ``Client.enqueue``
does; a runtime that has that queue and that workflow starts it. ``queue list`` shows a
queue's workflows that wait (ENQUEUED) or run (PENDING), or those of one ``--status``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from . import _cli_args as arg
from . import _cli_output as out
from ._types import Status

if TYPE_CHECKING:  # the commands import what they run when run: ``litewf --help`` is quick
    from ._session import Session

    Command = Callable[[Session, argparse.Namespace], Awaitable[int]]
    AddCommand = Callable[[str, Command, str], argparse.ArgumentParser]

__all__ = ["add_commands"]


def add_commands(command: AddCommand) -> None:
    """Add ``enqueue`` and ``queue`` to the parser (``command`` makes a subcommand)."""
    p = command("enqueue", _enqueue, "enqueue a workflow on a queue by its registered name")
    p.add_argument("queue_name", metavar="QUEUE")
    p.add_argument("workflow_name", metavar="WORKFLOW", help="the workflow's registered name")
    p.add_argument("args", nargs="*", metavar="JSON", help="its arguments, each as JSON")
    p.add_argument("--workflow-id", metavar="ID", help="its ID (default: a new UUID)")
    p.add_argument("--priority", type=arg.count, default=0, help="lower runs first (default 0)")
    p.add_argument("--dedup-id", metavar="KEY", help="refused while one with it waits or runs")
    p.add_argument(
        "--delay", type=arg.duration, metavar="S", help="start no sooner than S from now"
    )
    p.add_argument("--partition-key", metavar="KEY", help="concurrency applies per partition")
    p = command("queue", _queue, "list a queue's workflows: waiting and running by default")
    p.add_argument("action", choices=["list"])
    p.add_argument("queue_name", metavar="QUEUE")
    p.add_argument(
        "--status",
        type=str.upper,
        choices=[s.value for s in Status],
        help="only this status (default: ENQUEUED and PENDING)",
    )
    p.add_argument("--limit", type=arg.count, default=50, metavar="K", help="at most K (0: all)")


async def _enqueue(session: Session, args: argparse.Namespace) -> int:
    from ._queues import enqueue_by_name

    values = [arg.json_argument(text, "argument") for text in args.args]
    handle = await enqueue_by_name(
        session,
        args.queue_name,
        args.workflow_name,
        tuple(values),
        {},
        workflow_id=args.workflow_id,
        priority=args.priority,
        dedup_id=args.dedup_id,
        delay=args.delay,
        partition_key=args.partition_key,
    )
    status = await session.get_status(handle.workflow_id)
    if args.json:
        out.print_json(out.status_json(status))
    else:
        print(f"{status.workflow_id}: {status.status.value} on queue {args.queue_name!r}")
    return 0


async def _queue(session: Session, args: argparse.Namespace) -> int:
    limit = args.limit or sys.maxsize
    wanted = [args.status] if args.status else [Status.PENDING.value, Status.ENQUEUED.value]
    found = []
    for status in wanted:
        found += await session.list_workflows(
            status=status, limit=limit, offset=0, queue=args.queue_name
        )
    found = found[:limit]
    if args.json:
        out.print_json([out.status_json(s) for s in found])
    elif not found:
        print(f"queue {args.queue_name!r}: nothing waits or runs")
    else:
        headers = ["ID", "NAME", "STATUS", "PRIORITY", "DEDUP ID", "CREATED (UTC)"]
        rows = [
            [
                s.workflow_id,
                s.name,
                s.status.value,
                str(s.priority),
                s.dedup_id or "",
                out.when(s.created_at),
            ]
            for s in found
        ]
        print(out.table(headers, rows))
    return 0

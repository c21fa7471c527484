"""The ``litewf start`` command (added to ``_cli``'s parser).

``start NAME ARGS...`` has no runtime in its process to run the workflow. It stores it
as a delayed start due now (ENQUEUED, unowned, no queue): every runtime's dequeuer is
woken by the change, and the first one that registered ``NAME`` starts it, within
milliseconds; a runtime without the function leaves it alone. With ``--queue`` it is
enqueued there instead, as ``litewf enqueue`` and ``Client.enqueue`` do.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from . import _cli_args as arg
from . import _cli_output as out
from ._exceptions import InvalidValueError
from ._serialization import dumps_arguments
from ._types import Status
from ._validate import check_id

if TYPE_CHECKING:  # the commands import what they run when run: ``litewf --help`` is quick
    from ._session import Session
    from ._tx import Tx

    Command = Callable[[Session, argparse.Namespace], Awaitable[int]]
    AddCommand = Callable[[str, Command, str], argparse.ArgumentParser]

__all__ = ["add_command"]


def add_command(command: AddCommand) -> None:
    """Add ``start`` (``command`` makes a subcommand)."""
    p = command("start", _start, "start a workflow by its registered name, for a runtime")
    p.epilog = "Give the arguments before the options: start NAME 1 '\"a\"' --workflow-id ID."
    p.add_argument("workflow_name", metavar="NAME", help="the workflow's registered name")
    p.add_argument("args", nargs="*", metavar="JSON", help="its arguments, each as JSON")
    p.add_argument("--kwargs", metavar="JSON", help="its keyword arguments, a JSON object")
    p.add_argument("--workflow-id", metavar="ID", help="its ID (default: a new UUID)")
    p.add_argument("--queue", metavar="QUEUE", help="enqueue it on this queue instead")
    p.add_argument(
        "--delay", type=arg.duration, metavar="S", help="start no sooner than S from now (90s, 2h)"
    )


async def _start(session: Session, args: argparse.Namespace) -> int:
    from ._queues import enqueue_by_name

    name = check_id(args.workflow_name, "workflow_name")
    values = tuple(arg.json_argument(text, "argument") for text in args.args)
    kwargs = {} if args.kwargs is None else arg.json_argument(args.kwargs, "--kwargs")
    if not isinstance(kwargs, dict):
        raise InvalidValueError(f"--kwargs must be a JSON object, got {args.kwargs!r}")
    known = await session.list_workflows(name=name, limit=1)
    if args.queue is not None:
        handle = await enqueue_by_name(
            session,
            args.queue,
            name,
            values,
            kwargs,
            workflow_id=args.workflow_id,
            priority=None,
            dedup_id=None,
            delay=args.delay,
            partition_key=None,
        )
        workflow_id, stored = handle.workflow_id, False
    else:
        workflow_id, stored = await _start_unowned(session, name, values, kwargs, args)
    status = await session.get_status(workflow_id)
    if args.json:
        out.print_json(out.status_json(status))
    elif stored or status.status is Status.ENQUEUED:  # (stored: a runtime may run it already)
        where = "" if args.queue is None else f" on queue {args.queue!r}"
        print(f"{workflow_id}: ENQUEUED{where} (a runtime that has workflow {name!r} starts it)")
    else:
        print(f"{workflow_id}: {status.status.value} (already stored under this ID)")
    if not known:
        print(
            f"litewf: note: no workflow named {name!r} was stored before; a runtime starts it "
            f"only if it registered that name (module.qualname unless name= was given)",
            file=sys.stderr,
        )
    return 0


async def _start_unowned(
    session: Session,
    name: str,
    values: tuple[Any, ...],
    kwargs: dict[str, Any],
    args: argparse.Namespace,
) -> tuple[str, bool]:
    """Store a delayed start due now (or after ``--delay``): ENQUEUED, owned by no one,
    for the dequeuer of a runtime that has the function; the ID, and whether it was
    stored now (an existing one's with the same name is left as it is)."""
    from . import _deadlinesql as deadlinesql
    from . import _store as store
    from ._operations import check_same

    workflow_id = check_id(args.workflow_id) if args.workflow_id else str(uuid.uuid4())
    inputs = dumps_arguments(session.serializer, name, values, kwargs)
    not_before = session.clock.time() + (args.delay or 0.0)

    def insert(tx: Tx) -> bool:
        # Inserted owned by "" for a moment: ``place`` makes it ENQUEUED and unowned in
        # the same transaction, and logs the change that wakes the runtimes' dequeuers.
        existing = store.insert_workflow(tx, workflow_id, name, inputs, "", None)
        check_same(workflow_id, existing, name)
        if existing is None:
            deadlinesql.place(tx, workflow_id, None, deadlinesql.Timing(not_before=not_before))
        return existing is None

    return workflow_id, await session.backend.write(insert)

"""The ``litewf fork`` and ``litewf delete`` commands (added to ``_cli``'s parser).

``fork`` stores a fork as a Client does: PENDING and unowned, for a runtime that has the
workflow's function to claim and run. ``delete`` removes a workflow (``--children``: and
its descendants) with all its data; it asks first on a terminal, and needs ``--yes``
where nobody can answer.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from . import _cli_args as arg
from . import _cli_output as out
from ._exceptions import LitewfError

if TYPE_CHECKING:  # the commands import what they run when run: ``litewf --help`` is quick
    from ._session import Session

    Command = Callable[[Session, argparse.Namespace], Awaitable[int]]
    AddCommand = Callable[[str, Command, str], argparse.ArgumentParser]

__all__ = ["add_commands"]


def add_commands(command: AddCommand) -> None:
    """Add ``fork`` and ``delete`` to the parser (``command`` makes a subcommand)."""
    p = command("fork", _fork, "copy a workflow's history before a step into a new workflow")
    p.add_argument("workflow_id", metavar="ID", help="the workflow to fork")
    p.add_argument(
        "--from-step",
        type=arg.count,
        required=True,
        metavar="N",
        help="copy operations 0..N-1 (see 'litewf show ID'); the fork runs the rest anew",
    )
    p.add_argument(
        "--workflow-id", dest="new_id", metavar="NEW", help="the fork's ID (default: a new UUID)"
    )
    p = command("delete", _delete, "delete a workflow and all its data")
    p.add_argument("workflow_id", metavar="ID")
    p.add_argument(
        "--children",
        action="store_true",
        help="its descendants too (else they stay, as top-level workflows)",
    )
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")


async def _fork(session: Session, args: argparse.Namespace) -> int:
    from . import _fork as fork

    source, step = args.workflow_id, args.from_step
    new_id = await fork.fork(session, None, None, source, step, args.new_id)
    status = await session.get_status(new_id)
    if args.json:
        out.print_json(out.status_json(status) | {"forked_from": source, "from_step": step})
    else:
        print(
            f"{new_id}: {status.status.value} (fork of {source} from step {step}; "
            f"a runtime that has its function runs it)"
        )
    return 0


async def _delete(session: Session, args: argparse.Namespace) -> int:
    import anyio.to_thread

    from . import _fork as fork

    what = f"workflow {args.workflow_id!r}" + (" and its descendants" if args.children else "")
    if not args.yes:
        if not sys.stdin.isatty():
            raise LitewfError(f"not deleting {what}: pass --yes to delete without a prompt")
        prompt = f"delete {what} and all their data? [y/N] "
        answer = await anyio.to_thread.run_sync(input, prompt)
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    counts = await fork.delete(session, None, args.workflow_id, args.children)
    if args.json:
        out.print_json({"workflow_id": args.workflow_id, "deleted": counts})
    else:
        print(f"deleted {what}")
        print(out.table(["DELETED", "ROWS"], [[t, str(n)] for t, n in counts.items()]))
    return 0

"""The ``litewf check-replay`` command (added to ``_cli``'s parser).

``litewf check-replay --app module:attribute PATH`` imports the application's Runtime
(as uvicorn imports an app: the module from the current directory or ``sys.path``) and
replays every workflow stored in PATH against it (``_check``), on a copy: run it in CI
against a copy of production before deploying. It opens no session on ``--db``.

Exit status: 0 every history replays; 1 a divergence (or a file that cannot be
checked: one line on stderr; with ``--fail-on-unknown``, an unfinished workflow whose
name is not registered); 2 a usage error (a bad ``--app``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

from . import _cli_output as out
from ._exceptions import LitewfError
from ._types import UNFINISHED, Status

if TYPE_CHECKING:  # imported when the command runs: ``litewf --help`` stays quick
    from ._check import ReplayReport
    from ._runtime import Runtime

__all__ = ["add_command"]


class UsageError(Exception):
    """A bad ``--app``: shown as one line, exit status 2."""


def add_command(sub: Any) -> None:
    """Add ``check-replay`` to the parser's subcommands (``sub``); it runs on its own
    (``standalone``), without a session on ``--db``."""
    summary = "replay every stored workflow against today's code (no step runs, no writes)"
    p = sub.add_parser("check-replay", help=summary, description=summary)
    p.set_defaults(standalone=_run)
    p.add_argument(
        "--app",
        required=True,
        metavar="MODULE:ATTR",
        help="the application's Runtime, e.g. shop.app:rt (imported from the current directory)",
    )
    p.add_argument("path", metavar="PATH", help="the database to check (it is copied first)")
    p.add_argument(
        "--status",
        type=str.upper,
        choices=[s.value for s in Status],
        help="only workflows of this status (PENDING: those a deploy replays)",
    )
    p.add_argument("--limit", type=_positive, metavar="K", help="at most K workflows, newest first")
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="S",
        help="give each workflow's replay at most S seconds (default 30)",
    )
    p.add_argument(
        "--fail-on-unknown",
        action="store_true",
        help="exit 1 also when an unfinished workflow's name is not registered (a workflow "
        "function renamed or moved: no runtime with this code would run it)",
    )
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="output JSON")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def load_runtime(spec: str) -> Runtime:
    """The Runtime named by ``module:attribute`` (the attribute may be dotted)."""
    from ._runtime import Runtime

    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise UsageError(f"--app must be 'module:attribute', e.g. 'shop.app:rt'; got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as uvicorn: the application from where we run
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise UsageError(
                f"cannot import module {module_name!r} ({exc}); run from the folder that "
                f"holds it, or add that folder to PYTHONPATH"
            ) from None
        raise UsageError(f"importing {module_name!r} failed: {_error(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - the application's import failed: say how
        raise UsageError(f"importing {module_name!r} failed: {_error(exc)}") from None
    found: Any = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise UsageError(f"module {module_name!r} has no attribute {attribute!r}")
        found = getattr(found, part)
    if not isinstance(found, Runtime):
        raise UsageError(
            f"{spec} is not a litewf.Runtime (it is a {type(found).__name__}); name the "
            f"Runtime your workflows are registered on"
        )
    return found


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {out.one_line(str(exc))}"


def _run(args: argparse.Namespace) -> int:
    """Run the check; print the report; the exit status."""
    import anyio

    try:
        rt = load_runtime(args.app)
    except UsageError as exc:
        print(f"litewf check-replay: error: {exc}", file=sys.stderr)
        return 2
    try:
        report = anyio.run(_check, rt, args, backend="asyncio")
    except LitewfError as exc:
        print(f"litewf: error: {out.one_line(str(exc))}", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        out.print_json(report_json(report))
    else:
        print(report)
    orphaned = [s for s in report.unknown if s.status in UNFINISHED]
    return 0 if report.ok and not (args.fail_on_unknown and orphaned) else 1


async def _check(rt: Runtime, args: argparse.Namespace) -> ReplayReport:
    from ._check import check_replay

    return await check_replay(
        rt, args.path, status=args.status, limit=args.limit, timeout=args.timeout
    )


def report_json(report: ReplayReport) -> dict[str, Any]:
    return {
        "path": report.path,
        "ok": report.ok,
        "checked": report.checked,
        "divergences": [
            {
                "workflow_id": d.workflow_id,
                "name": d.name,
                "op_id": d.op_id,
                "recorded": d.recorded,
                "called": d.called,
                "message": d.message,
            }
            for d in report.divergences
        ],
        "unknown": [out.status_json(s) for s in report.unknown],
    }

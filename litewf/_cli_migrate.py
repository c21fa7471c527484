"""``litewf migrate --from SOURCE --to TARGET``: copy a whole database between backends.

Either side is a SQLite path or a PostgreSQL URL. The target is created (and migrated to
this litewf's schema) if needed and must hold no rows; the source is only read. Stop
the runtimes on the source first: rows written during the copy may be missed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._cli_output import one_line
from ._exceptions import LitewfError

__all__ = ["add_command"]


def add_command(sub: Any) -> None:
    """Add ``migrate`` to the parser's subcommands; it runs without a session on --db."""
    summary = "copy a whole database to another (SQLite path or postgresql:// URL)"
    p = sub.add_parser("migrate", help=summary, description=summary)
    p.set_defaults(standalone=_run)
    p.add_argument("--from", dest="source", required=True, metavar="PATH_OR_URL")
    p.add_argument("--to", dest="target", required=True, metavar="PATH_OR_URL")


def _run(args: argparse.Namespace) -> int:
    import anyio  # here, not at import: ``litewf --help`` loads no runtime

    from ._copy import copy_database

    try:
        counts = anyio.run(copy_database, args.source, args.target, backend="asyncio")
    except LitewfError as exc:
        print(f"litewf: error: {one_line(str(exc))}", file=sys.stderr)
        return 1
    total = sum(counts.values())
    detail = ", ".join(f"{table} {n}" for table, n in counts.items())
    print(f"copied {total} rows ({detail})")
    return 0

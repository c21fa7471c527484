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
from ._serialization import JsonSerializer

__all__ = ["add_command", "copy_database"]

#: Rows per read and per write transaction.
CHUNK = 2_000


def add_command(sub: Any) -> None:
    """Add ``migrate`` to the parser's subcommands; it runs without a session on --db."""
    summary = "copy a whole database to another (SQLite path or postgresql:// URL)"
    p = sub.add_parser("migrate", help=summary, description=summary)
    p.set_defaults(standalone=_run)
    p.add_argument("--from", dest="source", required=True, metavar="PATH_OR_URL")
    p.add_argument("--to", dest="target", required=True, metavar="PATH_OR_URL")


def _run(args: argparse.Namespace) -> int:
    import anyio  # imported when run, as every command's machinery: quick ``--help``

    try:
        counts = anyio.run(copy_database, args.source, args.target, backend="asyncio")
    except LitewfError as exc:
        print(f"litewf: error: {one_line(str(exc))}", file=sys.stderr)
        return 1
    total = sum(counts.values())
    detail = ", ".join(f"{table} {n}" for table, n in counts.items())
    print(f"copied {total} rows ({detail})")
    return 0


async def copy_database(source: str, target: str) -> dict[str, int]:
    """Copy every row of ``source`` into the empty ``target``; rows copied per table."""
    from . import _copysql as copysql
    from ._session import Session

    counts: dict[str, int] = {}
    async with Session.connect(source, serializer=JsonSerializer(), poll_interval=1.0) as src:
        dst = Session(
            target,
            serializer=JsonSerializer(),
            durability="full",
            poll_interval=1.0,
            create=True,
        )
        await dst.backend.open()
        try:
            if await dst.backend.read(copysql.count_rows):
                raise LitewfError(
                    f"{dst.path}: already holds litewf rows; migrate copies only into an "
                    f"empty database (choose a new file or schema)"
                )
            for table, key in copysql.TABLES:
                offset = 0
                while True:
                    columns, rows = await src.backend.read(
                        copysql.read_chunk, table, key, offset, CHUNK
                    )
                    if not rows:
                        break
                    await dst.backend.write(copysql.insert_rows, table, columns, rows)
                    offset += len(rows)
                counts[table] = offset
            await dst.backend.write(copysql.reset_counters)
        finally:
            await dst.backend.close()
    return counts

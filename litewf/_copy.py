"""Copy a whole litewf database into an empty one, across backends (SQLite path or
PostgreSQL URL): ``litewf migrate`` and the replay checker's copy of a PostgreSQL
database. The source is only read, in chunks (rows written meanwhile may be missed).
"""

from __future__ import annotations

from . import _copysql as copysql
from ._exceptions import LitewfError
from ._serialization import JsonSerializer
from ._session import Session
from ._types import Durability

__all__ = ["CHUNK", "copy_database"]

#: Rows per read and per write transaction.
CHUNK = 2_000


async def copy_database(
    source: str, target: str, *, durability: Durability = "full"
) -> dict[str, int]:
    """Copy every row of ``source`` into the empty ``target``; rows copied per table."""
    counts: dict[str, int] = {}
    async with Session.connect(source, serializer=JsonSerializer(), poll_interval=1.0) as src:
        dst = Session(
            target,
            serializer=JsonSerializer(),
            durability=durability,
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

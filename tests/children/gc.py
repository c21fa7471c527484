"""Child program for tests/test_gc_chunks.py: garbage collection killed part way.

``python -m tests.children.gc DB OUT``: collect everything older than an hour from a
Client, in chunks of 50 workflows; once 3 chunks have committed it touches
``OUT/chunked`` and goes on collecting (more slowly: the test SIGKILLs it meanwhile).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio

import litewf
from litewf import _management as management
from tests import procs


async def main(db: str, out: Path) -> None:
    management.GC_CHUNK_ROWS = 50
    committed = 0
    pause = management._pause

    async def counted(began: float) -> None:
        nonlocal committed
        committed += 1
        if committed == 3:
            procs.touch(out / "chunked")
        await pause(began) if committed < 3 else anyio.sleep(0.05)

    management._pause = counted
    client: Any = litewf.Client(db)
    async with client:
        await client.garbage_collect(older_than=3600)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], Path(sys.argv[2]))

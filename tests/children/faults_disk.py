"""I/O errors from a file size limit: ``python -m tests.children.faults_disk DB FOLDER``.

Launch a Runtime, start a gated sink workflow, send 10 messages, then lower this process's
``RLIMIT_FSIZE`` to just above the current database and WAL sizes (SIGXFSZ ignored, so a
write past it fails with EFBIG, which SQLite reports as an I/O error). Send 100 kB messages
until one fails, try three more (each must fail too), touch ``failing`` and wait for
``resume``; raise the limit again, send five more, open the gate, and write
``result.json``: what was acknowledged, what the sink received, and the errors seen.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

import anyio

import litewf
from tests.procs import touch, wait_for_file


async def main(db: str, folder: str) -> None:
    here = Path(folder)
    rt = litewf.Runtime(db, poll_interval=0.01)

    @rt.workflow(name="d.sink")
    async def sink() -> list[str]:
        await rt.recv("gate", timeout=120)
        got: list[str] = []
        while (message := await rt.recv("t", timeout=0)) is not None:
            got.append(message[:20])
        return got

    acked: list[str] = []
    errors: list[dict[str, Any]] = []

    async def send(i: int, size: int) -> None:
        tag = f"m{i:04d}"
        await rt.send("sink", tag + "x" * size, topic="t")
        acked.append(tag)

    async with rt:
        handle = await rt.start_workflow(sink, workflow_id="sink")
        for i in range(10):
            await send(i, 10)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        sizes = [os.stat(p).st_size for p in (db, f"{db}-wal") if os.access(p, os.F_OK)]
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max(sizes) + 8192, hard))
        i = 10
        while len(errors) < 4 and i < 200:
            try:
                await send(i, 100_000)
            except Exception as exc:  # noqa: BLE001 - reported to the test
                errors.append({"type": type(exc).__name__, "message": str(exc)})
            i += 1
        touch(here / "failing")
        await wait_for_file(here / "resume", timeout=60)
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        for j in range(5):
            await send(1000 + j, 100_000)
        await rt.send("sink", "open", topic="gate")
        got = await handle.get_result(timeout=60)
    result = {"acked": acked, "got": [g[:5] for g in got], "errors": errors}
    (here / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])

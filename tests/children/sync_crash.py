"""Child for tests/test_sync.py: a ``def`` workflow killed mid-run.

``python -m tests.children.sync_crash DB OUT``: start the ``def`` workflow ``sync-wf``
(``build()``'s), whose step ``a`` appends a line to ``OUT/a.log``; its step ``b`` touches
``OUT/b.started`` and blocks until the test SIGKILLs this process.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import litewf
from tests import procs


def build(srt: litewf.SyncRuntime, out: Path, block: bool) -> litewf.SyncWorkflow[[int], list[int]]:
    """The workflow, under explicit names (shared with the test's runtime)."""

    @srt.step(name="a")
    def a(x: int) -> int:
        with open(out / "a.log", "a", encoding="utf-8") as f:
            f.write("a\n")
        return x + 1

    @srt.step(name="b")
    def b(x: int) -> int:
        if block:
            procs.touch(out / "b.started")
            threading.Event().wait()  # until SIGKILL
        return x * 10

    @srt.workflow(name="sync-wf")
    def flow(x: int) -> list[int]:
        first = a(x)
        return [first, b(first)]

    return flow


def main() -> None:
    db, out = sys.argv[1], Path(sys.argv[2])
    srt = litewf.SyncRuntime(db)
    flow = build(srt, out, block=True)
    srt.launch()
    srt.start_workflow(flow, 1, workflow_id="sync-wf-1")
    threading.Event().wait()


if __name__ == "__main__":
    main()

"""A peer in the contention test: sends to every other peer and receives from all of them.

``python -m tests.children.faults_contention DB FOLDER ME PEERS COUNT PAD``

Launch a Runtime, start this peer's receiver workflow ``rcv-ME`` (it receives
``(PEERS - 1) * COUNT`` messages on topic ``c`` and returns their IDs), touch ``ready-ME``,
wait for ``go``; then send ``COUNT`` messages to each other peer's receiver, interleaved,
from outside workflows (each ``{"id": "ME>PEER#i", "pad": PAD characters}``), touch
``sent-ME``, wait for the receiver's result and write it to ``got-ME`` as JSON. Then wait
for ``finish`` before shutting down, so that the test can watch the WAL of a live file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio

import litewf
from tests.procs import touch, wait_for_file


async def main(db: str, folder: str, me: int, peers: int, count: int, pad: int) -> None:
    rt = litewf.Runtime(db, poll_interval=0.01, recovery_interval=0.5)
    here = Path(folder)

    @rt.workflow(name="c.receiver")
    async def receiver(expected: int) -> list[str]:
        got: list[str] = []
        for _ in range(expected):
            message = await rt.recv("c", timeout=60)
            if message is None:
                break  # the test reports the missing ones
            got.append(message["id"])
        return got

    async with rt:
        handle = await rt.start_workflow(receiver, (peers - 1) * count, workflow_id=f"rcv-{me}")
        touch(here / f"ready-{me}")
        await wait_for_file(here / "go", timeout=60)
        others = [p for p in range(peers) if p != me]
        for i in range(count):
            for peer in others:
                message = {"id": f"{me}>{peer}#{i}", "pad": "x" * pad}
                await rt.send(f"rcv-{peer}", message, topic="c")
        touch(here / f"sent-{me}")
        got = await handle.get_result(timeout=120)
        (here / f"got-{me}.tmp").write_text(json.dumps(got))
        (here / f"got-{me}.tmp").rename(here / f"got-{me}")
        await wait_for_file(here / "finish", timeout=120)
    print("ok", flush=True)


if __name__ == "__main__":
    db, folder, me, peers, count, pad = sys.argv[1:]
    anyio.run(main, db, folder, int(me), int(peers), int(count), int(pad))

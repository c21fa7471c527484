"""The crash-torture workload: a ring of workflows that step, set events, send and recv.

``python -m tests.children.faults_workload DB LOG GEN NODES RING EXT KILL``

Generation ``GEN`` is ``NODES`` workflows ``gGEN-wI``. Each waits for a ``go`` message,
runs a step, publishes event ``v``, sends ``RING`` messages to the next node, receives the
``RING`` messages of the previous node and ``EXT`` messages sent from outside workflows,
reads the next node's event and runs a second step. The driver part (outside workflows)
starts the nodes (idempotent by ID), sends ``go`` and the external messages with
idempotency keys (so resending everything after a crash is safe), reads every node's event
and waits for every result, then prints ``done``.

Everything is logged as JSON lines to ``LOG`` (one ``os.write`` each, ``O_APPEND``) *after*
the call returned, i.e. once litewf acknowledged it: the checker in
``tests/faults/torture.py`` proves the logged facts against the final database.

``KILL`` picks where this process SIGKILLs itself: ``none``; ``commit:before:K`` or
``commit:after:K`` (around this process's K-th ``COMMIT``, seen where aiosqlite receives
it, so it holds for any write path); or ``point:NAME:K`` (the K-th time the workload passes
the named point between a write and its acknowledgement, see ``POINTS``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
from collections.abc import Callable
from typing import Any

import anyio

import litewf
from tests.faults import dbhooks

#: Named kill points: each sits after litewf wrote something and before the caller used it.
POINTS = (
    "step-body",  # the step body ran, its outcome is not recorded yet
    "step-returned",  # the step's record committed, the workflow has not used it
    "event-set",  # set_event returned, not logged
    "send-acked",  # a send from a workflow returned, not logged
    "recv-returned",  # recv returned a message, not logged
    "ext-acked",  # a send from outside workflows returned, not logged
)


class Killer:
    """SIGKILLs this process at the chosen commit or named point."""

    def __init__(self, spec: str) -> None:
        self.kind, self.name, self.target = "none", "", 0
        if spec != "none":
            kind, name, target = spec.split(":")
            self.kind, self.name, self.target = kind, name, int(target)
        self.seen = 0

    def point(self, name: str) -> None:
        if self.kind == "point" and name == self.name:
            self.seen += 1
            if self.seen == self.target:
                os.kill(os.getpid(), signal.SIGKILL)

    def install(self) -> None:
        """Count COMMITs where aiosqlite receives them (SQLite itself is untouched)."""
        if self.kind == "commit":
            dbhooks.install(self._at_commit)

    def _at_commit(self, phase: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if not dbhooks.is_commit(fn, args):
            return
        if phase == "before":
            self.seen += 1
        if self.seen == self.target and phase == self.name:
            os.kill(os.getpid(), signal.SIGKILL)


class Log:
    """Append-only JSON lines; one ``write`` per record, so a SIGKILL never tears one."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.run = f"{os.getpid()}-{random.randrange(1 << 30)}"

    def __call__(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"k": kind, "run": self.run, **fields}, separators=(",", ":"))
        os.write(self.fd, (line + "\n").encode())


def node_id(gen: int, i: int) -> str:
    return f"g{gen}-w{i}"


def ext_id(gen: int, i: int, j: int) -> str:
    return f"g{gen}-x{i}-{j}"


async def main(
    db: str, log_path: str, gen: int, nodes: int, ring: int, ext: int, spec: str
) -> None:
    killer = Killer(spec)
    killer.install()
    log = Log(log_path)
    log("start", spec=spec, gen=gen)
    rt = litewf.Runtime(db, poll_interval=0.01, recovery_interval=0.2)

    @rt.step(name="t.pick")
    async def pick(me: str, label: str) -> int:
        value = random.randrange(10**9)
        log("body", wf=me, label=label, v=value)
        killer.point("step-body")
        return value

    @rt.workflow(name="t.node")
    async def node(gen: int, i: int) -> dict[str, Any]:
        me, peer = node_id(gen, i), node_id(gen, (i + 1) % nodes)
        go = await rt.recv("go", timeout=30)
        log("recv", wf=me, op="go", v=go)
        v = await pick(me, "a")
        killer.point("step-returned")
        log("step", wf=me, op="a", v=v)
        await rt.set_event("v", v)
        killer.point("event-set")
        log("event_set", wf=me, v=v)
        for j in range(ring):
            message = f"{me}>{j}"
            await rt.send(peer, message, topic="ring")
            killer.point("send-acked")
            log("sent", wf=me, to=peer, msg=message)
        got_ring: list[str] = []
        for j in range(ring):
            message = await rt.recv("ring", timeout=30)
            killer.point("recv-returned")
            log("recv", wf=me, op=f"ring{j}", v=message)
            got_ring.append(message)
        got_ext: list[str] = []
        for j in range(ext):
            message = await rt.recv("ext", timeout=30)
            killer.point("recv-returned")
            log("recv", wf=me, op=f"ext{j}", v=message)
            got_ext.append(message)
        peer_v = await rt.get_event(peer, "v", timeout=30)
        log("event_read", wf=me, of=peer, v=peer_v)
        w = await pick(me, "b")
        killer.point("step-returned")
        log("step", wf=me, op="b", v=w)
        return {"v": v, "ring": got_ring, "ext": got_ext, "peer_v": peer_v, "w": w}

    async with rt:
        log("launched")
        ids = [node_id(gen, i) for i in range(nodes)]
        handles = [
            await rt.start_workflow(node, gen, i, workflow_id=wid) for i, wid in enumerate(ids)
        ]
        for wid in ids:
            await rt.send(wid, "go", topic="go", idempotency_key="go")
        for i, wid in enumerate(ids):
            for j in range(ext):
                message = ext_id(gen, i, j)
                await rt.send(wid, message, topic="ext", idempotency_key=message)
                killer.point("ext-acked")
                log("ext_ack", to=wid, msg=message)
        for wid in ids:
            value = await rt.get_event(wid, "v", timeout=30)
            log("ext_event_read", of=wid, v=value)
        for wid, handle in zip(ids, handles, strict=True):
            result = await handle.get_result(timeout=30)
            log("result", wf=wid, v=result)
    log("done", commits=killer.seen)
    print("done", flush=True)


if __name__ == "__main__":
    db, log_path, gen, nodes, ring, ext, spec = sys.argv[1:]
    anyio.run(main, db, log_path, int(gen), int(nodes), int(ring), int(ext), spec)

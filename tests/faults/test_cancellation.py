"""Cancellation at every await (issue 5, part 4).

Each database call litewf makes is an await on aiosqlite's worker thread. A hook
(``tests/faults/dbhooks.py``) cancels the calling task's scope just before the k-th such
call of one operation, for k = 1, 2, ... until the operation completes uncancelled. A
write is one call (its whole group-committed transaction) run under a shield: a cancel
that arrives during it takes effect after it, so the write has happened fully. After
each: SQLite's write lock and litewf's own lock are free, and the operation happened fully
or not at all; relaunching finishes the workflow exactly as if nothing had been cancelled.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

import litewf
from tests.faults import dbhooks
from tests.faults.test_disk_full import another_process_can_write


class Canceller:
    """Cancels ``scope`` just before the ``k``-th database call of the armed task."""

    def __init__(self, k: int) -> None:
        self.k, self.calls = k, 0
        self.scope: anyio.CancelScope | None = None
        self.statements: list[str] = []

    def hook(self, phase: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if phase != "before" or ARMED.get() is not self:
            return
        self.calls += 1
        self.statements.append(dbhooks.statement(fn, args)[:40])
        if self.calls == self.k and self.scope is not None:
            self.scope.cancel()


ARMED: ContextVar[Canceller | None] = ContextVar("ARMED", default=None)


@pytest.fixture
def canceller() -> Iterator[Canceller]:
    c = Canceller(0)
    undo = dbhooks.install(c.hook)
    try:
        yield c
    finally:
        undo()


def rows(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


async def locks_are_free(rt: litewf.Runtime, db: Path) -> None:
    """SQLite's write lock (another connection takes it within 1 s) and litewf's lock."""
    await anyio.to_thread.run_sync(another_process_can_write, db)
    with anyio.fail_after(10):
        await rt.list_workflows(limit=1)


async def test_send_from_outside_cancelled_at_every_await(
    db_path: Path, canceller: Canceller
) -> None:
    """A send with an idempotency key, cancelled before each of its database calls: the
    message and its key are stored together or not at all; resending delivers it once."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="x.sink")
    async def sink() -> None:
        await rt.recv("never", timeout=600)

    async with rt:
        await rt.start_workflow(sink, workflow_id="sink")
        k = 0
        while True:
            k += 1
            canceller.k, canceller.calls = k, 0
            token = ARMED.set(canceller)
            with anyio.CancelScope() as scope:
                canceller.scope = scope
                await rt.send("sink", f"s{k}", topic="t", idempotency_key=f"s{k}")
            ARMED.reset(token)
            stored = rows(db_path, "SELECT count(*) FROM messages WHERE message = ?", f'"s{k}"')
            keys = rows(
                db_path, "SELECT count(*) FROM message_keys WHERE idempotency_key = ?", f"s{k}"
            )
            assert stored == keys and stored[0][0] in (0, 1), (k, canceller.statements)
            await locks_are_free(rt, db_path)
            await rt.send("sink", f"s{k}", topic="t", idempotency_key=f"s{k}")  # the retry
            assert rows(db_path, "SELECT count(*) FROM messages WHERE message = ?", f'"s{k}"') == [
                (1,)
            ]
            if not scope.cancelled_caught:
                break
    print(f"send outside a workflow: cancelled at each of {k - 1} awaits")
    assert k >= 0  # one shielded write: a cancel during it lets it complete (checked above)


# -- operations inside a workflow ---------------------------------------------------------

KINDS = ["recv-queued", "recv-waiting", "set_event", "send", "step"]


def build(db: Path, state: dict[str, Any]) -> tuple[litewf.Runtime, litewf.Workflow[[str], Any]]:
    """A runtime whose workflow ``x.op`` runs operation 1 of the given kind armed (when
    ``state["armed"]``) and stops for good if that operation was cancelled."""
    rt = litewf.Runtime(db, recovery_interval=0.2)

    @rt.step(name="x.body")
    async def body() -> int:
        state["bodies"] += 1
        return 1000 + int(state["bodies"])

    async def operation(kind: str, me: str) -> Any:
        if kind.startswith("recv"):
            return await rt.recv("t", timeout=30)
        if kind == "set_event":
            await rt.set_event("e", "value")
            return "set"
        if kind == "send":
            await rt.send(me, "out", topic="out")
            return "sent"
        return await body()

    @rt.workflow(name="x.op")
    async def op(kind: str) -> Any:
        me = rt.current_workflow_id()
        assert me is not None
        await rt.recv("go", timeout=30)  # operation 0
        c: Canceller | None = state["canceller"] if state["armed"] else None
        token = ARMED.set(c)
        with anyio.CancelScope() as scope:
            if c is not None:
                c.scope = scope
            state["result"] = await operation(kind, me)  # operation 1
        ARMED.reset(token)
        state["cancelled"] = scope.cancelled_caught
        state["reached"].set()
        if scope.cancelled_caught:
            await anyio.sleep_forever()  # this run is over; the next launch resumes it
        return state["result"]

    return rt, op


def check_all_or_nothing(db: Path, kind: str, wid: str) -> None:
    """The armed operation (number 1) is either wholly stored or not at all."""
    record = rows(
        db, "SELECT done, output FROM operations WHERE workflow_id = ? AND op_id = 1", wid
    )
    if kind.startswith("recv"):
        queued = rows(
            db, "SELECT count(*) FROM messages WHERE destination_id = ? AND topic = 't'", wid
        )
        if queued == [(1,)]:  # not taken: nothing recorded, or only a started wait
            assert record in ([], [(0, None)]), record
        else:
            assert queued == [(0,)] and record == [(1, '"payload"')], (queued, record)
    elif kind == "set_event":
        event = rows(db, "SELECT value FROM events WHERE workflow_id = ?", wid)
        assert (event, len(record)) in (([], 0), ([('"value"',)], 1)), (event, record)
    elif kind == "send":
        sent = rows(
            db, "SELECT count(*) FROM messages WHERE destination_id = ? AND topic = 'out'", wid
        )
        assert (sent[0][0], len(record)) in ((0, 0), (1, 1)), (sent, record)
    else:
        assert record in ([], [(1, json.dumps(1001))]), record


async def run_cancelled_at(db: Path, kind: str, k: int, canceller: Canceller) -> bool:
    """Cancel operation 1 at its k-th database call, check, relaunch, check; return
    whether the cancellation hit (False: the operation has fewer than k calls)."""
    wid = f"{kind}-{k}"
    canceller.k, canceller.calls, canceller.statements = k, 0, []
    state: dict[str, Any] = {
        "armed": True,
        "canceller": canceller,
        "bodies": 0,
        "reached": anyio.Event(),
    }
    rt, op = build(db, state)
    async with rt:
        await rt.start_workflow(op, kind, workflow_id=wid)
        if kind == "recv-queued":
            await rt.send(wid, "payload", topic="t")
        await rt.send(wid, "go", topic="go")
        if kind == "recv-waiting":
            with anyio.fail_after(10):
                while not state["reached"].is_set() and not rows(  # noqa: ASYNC110 - polling
                    db, "SELECT 1 FROM operations WHERE workflow_id = ? AND op_id = 1", wid
                ):
                    await anyio.sleep(0.005)  # the wait started: nothing signals it
            await rt.send(wid, "payload", topic="t")
        with anyio.fail_after(20):
            await state["reached"].wait()
        check_all_or_nothing(db, kind, wid)
        await locks_are_free(rt, db)
    hit = bool(state["cancelled"])
    bodies = state["bodies"]
    state.update(armed=False, reached=anyio.Event())
    rt, op = build(db, state)
    async with rt:
        result = await (await rt.retrieve_workflow(wid)).get_result(timeout=20)
    expected = {"set_event": "set", "send": "sent"}.get(kind, "payload")
    if kind == "step":
        assert result in (1001, 1002) and state["bodies"] <= 2
        assert (result == 1001) == (state["bodies"] == bodies)  # recorded: never run again
    else:
        assert result == expected
    queued = rows(
        db, "SELECT topic, count(*) FROM messages WHERE destination_id = ? GROUP BY topic", wid
    )
    assert queued == ([("out", 1)] if kind == "send" else [])  # nothing lost, nothing twice
    if kind == "set_event":
        assert rows(db, "SELECT value FROM events WHERE workflow_id = ?", wid) == [('"value"',)]
    return hit


@pytest.mark.parametrize("kind", KINDS)
async def test_workflow_operation_cancelled_at_every_await(
    db_path: Path, kind: str, canceller: Canceller
) -> None:
    """recv (message queued or arriving later), set_event, send and a step's record, each
    cancelled before every one of its database calls in turn."""
    k = 0
    while await run_cancelled_at(db_path, kind, k + 1, canceller):
        k += 1
    print(f"{kind}: cancelled at each of {k} awaits")
    # A write is one shielded call (group commit): cancelled before it, the write is
    # withdrawn; cancelled while it runs, it completes. Reads before it are cut short.
    # A waiting recv makes two writes (start waiting, then take) and no read between
    # them (its waiter is registered before the first).
    assert k >= (1 if kind == "recv-waiting" else 0), canceller.statements

"""Management API: list_steps, list_messages and garbage_collect on Runtime and Client."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from litewf import _management as management
from litewf import testing
from tests import sqldb
from tests.children.ops import register

#: Tables holding a workflow's data, and the column naming the workflow.
TABLES = {
    "workflows": "workflow_id",
    "operations": "workflow_id",
    "events": "workflow_id",
    "messages": "destination_id",
    "message_keys": "destination_id",
}


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll a database condition another task brings about; fail after ``timeout``."""
    with anyio.fail_after(timeout):
        while True:
            if await check():
                return
            await anyio.sleep(0.005)


async def recv_waiting(rt: litewf.Runtime | litewf.Client, workflow_id: str) -> bool:
    steps = await rt.list_steps(workflow_id)
    return bool(steps) and steps[-1].kind == "recv" and steps[-1].outcome == "waiting"


async def no_waiters(rt: litewf.Runtime) -> bool:
    return testing.waiting(rt) == 0


def rows_of(db_path: Path, workflow_id: str) -> dict[str, int]:
    """How many rows each table holds for ``workflow_id`` (read straight from the file)."""
    with sqldb.connect(db_path) as conn:
        return {
            table: conn.execute(
                f"SELECT count(*) FROM {table} WHERE {column} = ?", (workflow_id,)
            ).fetchone()[0]
            for table, column in TABLES.items()
        }


async def start_shop(rt: litewf.Runtime) -> litewf.WorkflowHandle[Any]:
    """Start the ops workflows: order-1 ends up waiting in recv; fail-1 and quick-1 finish."""
    workflows = register(rt)
    order = await rt.start_workflow(workflows["ops.order"], "o-1", workflow_id="order-1")
    failed = await rt.start_workflow(workflows["ops.fail"], "o-2", workflow_id="fail-1")
    quick = await rt.start_workflow(workflows["ops.quick"], 21, workflow_id="quick-1")
    assert await quick.get_result(timeout=10) == 42
    with pytest.raises(ValueError, match="card declined"):
        await failed.get_result(timeout=10)
    await wait_until(lambda: recv_waiting(rt, "order-1"))
    return order


# -- list_steps ----------------------------------------------------------------------------------


async def test_list_steps_reports_every_kind_of_operation(db_path: Path) -> None:
    """Each recorded operation shows its number, name, kind, outcome and a summary; a waiting
    recv shows its deadline and, once a message came, what it received."""
    rt = litewf.Runtime(db_path)
    async with rt:
        order = await start_shop(rt)
        steps = await rt.list_steps("order-1")
        assert [(s.number, s.kind, s.name, s.outcome) for s in steps] == [
            (0, "step", "ops.reserve", "ok"),
            (1, "sleep", "sleep", "ok"),
            (2, "set_event", "set_event", "ok"),
            (3, "child", "start_workflow ops.notify", "ok"),
            (4, "get_result", "get_result", "ok"),  # awaiting the child is a recorded read
            (5, "send", "send", "ok"),
            (6, "get_event", "get_event", "ok"),
            (7, "recv", "recv", "waiting"),
        ]
        assert steps[0].summary == '"https://pay.example/o-1"'
        assert steps[1].summary.startswith("wakes at ") and steps[1].summary.endswith(" UTC")
        assert steps[3].summary == '"order-1-3"'
        assert steps[4].summary == '"notified o-1"'
        assert steps[7].summary.startswith("waiting until ")
        assert steps[7].deadline is not None and steps[7].deadline > steps[7].created_at
        assert all(s.workflow_id == "order-1" and s.created_at.tzinfo is UTC for s in steps)
        assert all(s.error_type is None and s.error_message is None for s in steps)
        assert steps[0].deadline is None
        with pytest.raises(dataclasses.FrozenInstanceError):
            steps[0].outcome = "changed"  # type: ignore[misc]

        (failed,) = await rt.list_steps("fail-1")
        assert (failed.kind, failed.outcome, failed.error_type, failed.error_message) == (
            "step",
            "error",
            "ValueError",
            "card declined for o-2",
        )
        assert failed.summary == "ValueError: card declined for o-2"
        assert await rt.list_steps("quick-1") == []

        await rt.send("order-1", {"ok": True}, topic="checkout_complete")
        assert await order.get_result(timeout=10) == "paid"
        steps = await rt.list_steps("order-1")
        assert [(s.kind, s.outcome, s.summary) for s in steps[7:]] == [
            ("recv", "ok", '{"ok":true}'),
            ("set_event", "ok", "done"),
        ]
        with pytest.raises(litewf.WorkflowNotFoundError):
            await rt.list_steps("no-such-id")


async def test_list_steps_summarizes_timeouts_and_long_outputs(db_path: Path) -> None:
    """A recv that timed out says so; a long output is cut to one short line."""
    rt = litewf.Runtime(db_path)

    @rt.step()
    async def long_text() -> str:
        return "line\n" * 100

    @rt.workflow()
    async def patient() -> None:
        await long_text()
        await rt.recv("nothing", timeout=0)

    async with rt:
        await (await rt.start_workflow(patient, workflow_id="p")).get_result(timeout=10)
        text, recv = await rt.list_steps("p")
    assert len(text.summary) == management.SUMMARY_LENGTH
    assert text.summary.endswith("...") and "\n" not in text.summary
    assert (recv.outcome, recv.summary) == ("ok", "timed out")


# -- list_messages -------------------------------------------------------------------------------


async def test_list_messages_shows_queues_in_send_order(db_path: Path) -> None:
    """Every queue by default, one topic (None included) when asked; values come decoded."""
    rt = litewf.Runtime(db_path)
    async with rt:
        workflows = register(rt)
        done = await rt.start_workflow(workflows["ops.quick"], 1, workflow_id="q")
        await done.get_result(timeout=10)
        assert await rt.list_messages("q") == []
        for topic, message in (("a", {"n": 1}), ("b", [2]), (None, "three"), ("a", 4)):
            await rt.send("q", message, topic)
        queued = await rt.list_messages("q")
        assert [(m.workflow_id, m.topic, m.message) for m in queued] == [
            ("q", "a", {"n": 1}),
            ("q", "b", [2]),
            ("q", None, "three"),
            ("q", "a", 4),
        ]
        assert all(m.created_at.tzinfo is UTC for m in queued)
        assert [m.message for m in await rt.list_messages("q", topic="a")] == [{"n": 1}, 4]
        assert [m.message for m in await rt.list_messages("q", topic=None)] == ["three"]
        assert await rt.list_messages("q", topic="zzz") == []
        with pytest.raises(litewf.WorkflowNotFoundError):
            await rt.list_messages("no-such-id")
        with pytest.raises(litewf.InvalidValueError, match="topic"):
            await rt.list_messages("q", topic=3)  # type: ignore[arg-type]


async def test_list_messages_drops_what_recv_consumed(db_path: Path) -> None:
    """A received message leaves the list; a message still queued stays."""
    rt = litewf.Runtime(db_path)
    async with rt:
        order = await start_shop(rt)
        await rt.send("order-1", {"ok": False}, topic="checkout_complete")
        assert await order.get_result(timeout=10) == "declined"
        (audit,) = await rt.list_messages("order-1")
        assert (audit.topic, audit.message) == ("audit", {"note": "for the audit queue"})


# -- garbage_collect -----------------------------------------------------------------------------


async def test_gc_deletes_finished_workflows_with_their_rows(db_path: Path) -> None:
    """Finished workflows older than the cutoff go with their operations, events, messages
    and idempotency keys; younger ones and PENDING ones (and a finished child whose parent
    still runs) stay, and the running workflow carries on."""
    rt = litewf.Runtime(db_path)
    async with rt:
        order = await start_shop(rt)
        await rt.send("quick-1", "late", "x", idempotency_key="k1")
        assert await rt.garbage_collect(older_than=3600) == litewf.CollectedCounts()
        before = await rt.list_steps("order-1")

        counts = await rt.garbage_collect(older_than=0)
        assert counts == litewf.CollectedCounts(
            workflows=2, operations=1, events=0, messages=1, message_keys=1, changes=0
        )
        for gone in ("quick-1", "fail-1"):
            assert rows_of(db_path, gone) == dict.fromkeys(TABLES, 0)
        listed = {s.workflow_id: s.status for s in await rt.list_workflows()}
        assert listed == {"order-1": "PENDING", "order-1-3": "SUCCESS"}
        assert await rt.list_steps("order-1") == before
        with pytest.raises(litewf.WorkflowNotFoundError):
            await rt.send("quick-1", "again", "x", idempotency_key="k1")

        await rt.send("order-1", {"ok": True}, topic="checkout_complete")
        assert await order.get_result(timeout=10) == "paid"
        assert rows_of(db_path, "order-1") == {
            "workflows": 1,
            "operations": 9,
            "events": 2,
            "messages": 1,
            "message_keys": 0,
        }
        counts = await rt.garbage_collect(older_than=timedelta(0))
        assert counts == litewf.CollectedCounts(workflows=2, operations=9, events=2, messages=1)
        assert await rt.list_workflows() == []


async def test_gc_keeps_the_child_a_pending_parent_will_replay(db_path: Path) -> None:
    """After a restart the parent re-reads its finished child's result: collecting the
    child in between must not break the parent's replay."""
    rt = litewf.Runtime(db_path)
    async with rt:
        await start_shop(rt)
    async with litewf.Client(db_path) as client:  # the parent is PENDING, nobody runs it
        counts = await client.garbage_collect(older_than=0)
        assert counts.workflows == 2  # fail-1 and quick-1, not the child order-1-3
    rt = litewf.Runtime(db_path)
    register(rt)
    async with rt:  # recovers order-1 at launch
        await wait_until(lambda: recv_waiting(rt, "order-1"))
        await rt.send("order-1", {"ok": True}, topic="checkout_complete")
        order = await rt.retrieve_workflow("order-1")
        assert await order.get_result(timeout=10) == "paid"


async def test_gc_without_keep_pending_stops_a_running_workflow(db_path: Path) -> None:
    """keep_pending=False deletes a PENDING workflow too; its recv stops waiting at once and
    its handle reports it gone."""
    rt = litewf.Runtime(db_path)
    async with rt:
        order = await start_shop(rt)
        assert (await rt.garbage_collect(older_than=0, keep_pending=False)).workflows == 4
        with pytest.raises(litewf.WorkflowNotFoundError):
            await order.get_result(timeout=10)
        await wait_until(lambda: no_waiters(rt))
        assert await rt.list_workflows() == []
        assert rows_of(db_path, "order-1") == dict.fromkeys(TABLES, 0)


async def test_gc_deletes_in_batches(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More finished workflows than one batch holds are all deleted, batch after batch."""
    monkeypatch.setattr(management, "GC_CHUNK_ROWS", 2)
    rt = litewf.Runtime(db_path)
    async with rt:
        quick = register(rt)["ops.quick"]
        for n in range(5):
            await quick(n)
        counts = await rt.garbage_collect(older_than=0)
        assert (counts.workflows, await rt.list_workflows()) == (5, [])


async def test_gc_prunes_the_change_log(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Change rows younger than the retention are kept for pollers; older ones are pruned,
    in batches."""
    rt = litewf.Runtime(db_path)
    async with rt:
        quick = register(rt)["ops.quick"]
        for n in range(4):
            await quick(n)
        with sqldb.connect(db_path) as conn:
            logged = conn.execute("SELECT count(*) FROM changes").fetchone()[0]
        assert logged >= 4
        assert (await rt.garbage_collect(older_than=3600)).changes == 0
        monkeypatch.setattr(management, "CHANGE_RETENTION_S", 0.0)
        monkeypatch.setattr(management, "CHANGES_CHUNK_ROWS", 3)
        assert (await rt.garbage_collect(older_than=3600)).changes == logged
        with sqldb.connect(db_path) as conn:
            assert conn.execute("SELECT count(*) FROM changes").fetchone()[0] == 0
        assert await quick(5) == 10  # waking still works with an empty change log


async def test_gc_while_workflows_run(db_path: Path) -> None:
    """Collecting over and over while 20 workflows take steps and receive messages loses
    none of their records: every one finishes with the right result."""
    rt = litewf.Runtime(db_path)
    results: list[int] = []

    @rt.step()
    async def add(a: int, b: int) -> int:
        return a + b

    @rt.workflow()
    async def worker(n: int) -> None:
        total = 0
        for i in range(3):
            total = await add(total, i)
            bump: int = await rt.recv("bump", timeout=30)
            total = await add(total, bump)
        results.append(n * 100 + total)

    async with rt:
        ids = [(await rt.start_workflow(worker, n)).workflow_id for n in range(20)]
        collected = 0
        for _ in range(3):
            for workflow_id in ids:
                await rt.send(workflow_id, 10, "bump")
            collected += (await rt.garbage_collect(older_than=0)).workflows
        with anyio.fail_after(30):
            while len(results) < 20:
                collected += (await rt.garbage_collect(older_than=0)).workflows
                await anyio.sleep(0.01)
        collected += (await rt.garbage_collect(older_than=0)).workflows
        assert sorted(results) == [n * 100 + 33 for n in range(20)]
        assert collected == 20
        assert await rt.list_workflows() == []


@pytest.mark.parametrize(
    ("older_than", "keep_pending"),
    [(-1, True), (math.nan, True), ("7d", True), (True, True), (0, "no")],
)
async def test_gc_refuses_bad_arguments(db_path: Path, older_than: Any, keep_pending: Any) -> None:
    """A bad age or flag raises InvalidValueError and deletes nothing."""
    rt = litewf.Runtime(db_path)
    async with rt:
        await register(rt)["ops.quick"](1)
        with pytest.raises(litewf.InvalidValueError):
            await rt.garbage_collect(older_than=older_than, keep_pending=keep_pending)
        assert len(await rt.list_workflows()) == 1


async def test_management_calls_need_an_open_runtime_or_client(db_path: Path) -> None:
    """Before launch (or outside ``async with``) the calls say what to do first."""
    rt = litewf.Runtime(db_path)
    client = litewf.Client(db_path)
    for target in (rt, client):
        with pytest.raises(litewf.RuntimeNotLaunchedError):
            await target.list_steps("x")
        with pytest.raises(litewf.RuntimeNotLaunchedError):
            await target.list_messages("x")
        with pytest.raises(litewf.RuntimeNotLaunchedError):
            await target.garbage_collect(older_than=0)

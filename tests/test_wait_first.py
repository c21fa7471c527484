"""rt.wait_first: the first of several messages, events and workflow outcomes, as one
recorded operation; and the absolute forms of waits (deadline=, sleep_until)."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from litewf import testing
from litewf.testing import VirtualClock, crash_at
from tests import procs, sqldb
from tests.children import waitfirst
from tests.children.comms import lines
from tests.conditions import count_reads, wait_until


class Declined(Exception):
    """A child's failure (module level, so it is rebuilt as itself)."""


def kill(child: subprocess.Popen[bytes]) -> None:
    procs.kill(child)
    child.communicate()


def operations(db: Path, workflow_id: str) -> list[tuple[str, int, str | None, str | None]]:
    """(name, done, output, error) of the workflow's recorded operations, in order."""
    con = sqldb.connect(db)
    try:
        found: list[tuple[str, int, str | None, str | None]] = con.execute(
            "SELECT name, done, output, error FROM operations WHERE workflow_id = ? ORDER BY op_id",
            (workflow_id,),
        ).fetchall()
        return found
    finally:
        con.close()


async def queued(rt: litewf.Runtime, workflow_id: str) -> list[tuple[str | None, Any]]:
    return [(m.topic, m.message) for m in await rt.list_messages(workflow_id)]


# -- who wins --------------------------------------------------------------------------------


async def test_first_named_wins_and_the_loser_stays_queued(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def order() -> list[Any]:
        await rt.recv("go", timeout=30)
        got = await rt.wait_first(cancelled=rt.message("cancel"), paid=rt.message("paid"))
        assert isinstance(got, litewf.FirstOf)
        return [got.name, got.value]

    async with rt:
        h = await rt.start_workflow(order, workflow_id="o")
        await rt.send("o", {"amount": 5}, topic="paid")
        await rt.send("o", "changed my mind", topic="cancel")
        await rt.send("o", 1, topic="go")
        assert await h.get_result(timeout=10) == ["cancelled", "changed my mind"]
        assert await queued(rt, "o") == [("paid", {"amount": 5})]
    ops = operations(db_path, "o")
    assert [op[:2] for op in ops] == [("recv", 1), ("wait_first", 1)]
    assert ops[1][2] == '["cancelled","changed my mind"]'


async def test_a_message_sent_while_waiting_wins_and_wakes_it(db_path: Path) -> None:
    """Sent from a Client (its own connection: woken through the change feed) and from
    the runtime (woken at commit); the other waits stay untouched."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def order() -> list[Any]:
        out = []
        for _ in range(2):
            got = await rt.wait_first(
                paid=rt.message("paid"), shipped=rt.event("elsewhere", "shipped"), timeout=30
            )
            assert got is not None
            out.append([got.name, got.value])
        return out

    @rt.workflow()
    async def elsewhere() -> None:
        await rt.recv(timeout=30)

    async with rt, litewf.Client(db_path) as client:
        await rt.start_workflow(elsewhere, workflow_id="elsewhere")
        h = await rt.start_workflow(order, workflow_id="o")
        await wait_until(lambda: testing.waiting(rt) == 2)
        await client.send("o", "p1", topic="paid")
        await wait_until(lambda: len(operations(db_path, "o")) == 2)
        await rt.send("o", "p2", topic="paid")
        assert await h.get_result(timeout=10) == [["paid", "p1"], ["paid", "p2"]]


async def test_an_event_wins_with_its_value(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def shipper() -> None:
        await rt.recv("go", timeout=30)
        await rt.set_event("shipped", {"carrier": "post"})

    @rt.workflow()
    async def order() -> list[Any]:
        got = await rt.wait_first(paid=rt.message("paid"), shipped=rt.event("ship", "shipped"))
        assert got is not None
        return [got.name, got.value]

    async with rt:
        await rt.start_workflow(shipper, workflow_id="ship")
        h = await rt.start_workflow(order, workflow_id="o")
        await wait_until(lambda: testing.waiting(rt) == 2)
        await rt.send("ship", 1, topic="go")
        assert await h.get_result(timeout=10) == ["shipped", {"carrier": "post"}]


async def test_a_handle_wins_with_its_result_or_raises_its_error(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def child(outcome: str) -> str:
        await rt.recv("go", timeout=30)
        if outcome == "fail":
            raise Declined("card declined")
        return f"child {outcome}"

    @rt.workflow()
    async def parent(outcome: str) -> Any:
        handle = await rt.start_workflow(child, outcome, workflow_id=f"child-{outcome}")
        try:
            got = await rt.wait_first(paid=rt.message("paid"), child=handle, timeout=30)
        except (Declined, litewf.WorkflowCancelledError) as exc:
            return f"{type(exc).__name__}: {exc}"
        assert got is not None
        return [got.name, got.value]

    async with rt:
        ok = await rt.start_workflow(parent, "ok", workflow_id="p-ok")
        fail = await rt.start_workflow(parent, "fail", workflow_id="p-fail")
        cancel = await rt.start_workflow(parent, "cancel", workflow_id="p-cancel")
        await wait_until(lambda: testing.waiting(rt) == 6)
        await rt.send("child-ok", 1, topic="go")
        await rt.send("child-fail", 1, topic="go")
        await rt.cancel_workflow("child-cancel")
        assert await ok.get_result(timeout=10) == ["child", "child ok"]
        assert await fail.get_result(timeout=10) == "Declined: card declined"
        assert (await cancel.get_result(timeout=10)).startswith("WorkflowCancelledError")
    # The error is the operation's recorded outcome (a replay raises it too).
    name, done, output, error = operations(db_path, "p-fail")[1]
    assert (name, done, output) == ("wait_first", 1, None) and "card declined" in str(error)


async def test_unknown_workflow_raises_workflow_not_found_recorded(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)
    handles: dict[str, litewf.WorkflowHandle[Any]] = {}

    @rt.workflow()
    async def quick() -> int:
        return 1

    @rt.workflow()
    async def waiter(which: str) -> str:
        waits: dict[str, Any] = {"paid": rt.message("paid")}
        waits[which] = rt.event("ghost", "k") if which == "event" else handles["gone"]
        try:
            await rt.wait_first(**waits, timeout=30)
        except litewf.WorkflowNotFoundError as exc:
            return exc.workflow_id
        return "no error"

    async with rt:
        handles["gone"] = h = await rt.start_workflow(quick, workflow_id="gone")
        await h.get_result(timeout=10)
        await rt.garbage_collect(older_than=0)  # "gone" is deleted
        assert await waiter("event") == "ghost"
        assert await waiter("handle") == "gone"


async def test_resume_retries_a_wait_first_that_found_no_workflow(db_path: Path) -> None:
    """WorkflowNotFoundError is a fact about the database: once the workflow exists,
    resume_workflow makes the call again instead of replaying the error forever."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def publisher() -> None:
        await rt.set_event("ready", "yes")

    @rt.workflow()
    async def early() -> Any:
        got = await rt.wait_first(ready=rt.event("publisher", "ready"), timeout=30)
        assert got is not None
        return got.value

    async with rt:
        h = await rt.start_workflow(early, workflow_id="early")
        with pytest.raises(litewf.WorkflowNotFoundError):
            await h.get_result(timeout=10)
        await rt.start_workflow(publisher, workflow_id="publisher")
        resumed = await rt.resume_workflow("early")
        assert await resumed.get_result(timeout=10) == "yes"


# -- deadlines -------------------------------------------------------------------------------


async def test_deadline_passing_returns_none_and_is_recorded(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def impatient() -> list[Any]:
        past = datetime.now(UTC) - timedelta(days=1)
        return [
            await rt.wait_first(paid=rt.message("paid"), timeout=0.05),
            await rt.wait_first(paid=rt.message("paid"), deadline=past),
            await rt.recv("paid", deadline=past),
        ]

    async with rt:
        assert await impatient() == [None, None, None]
        wid = (await rt.list_workflows())[0].workflow_id
        steps = await rt.list_steps(wid)
    assert [(s.name, s.summary) for s in steps] == [
        ("wait_first", "timed out"),
        ("wait_first", "timed out"),
        ("recv", "timed out"),
    ]


async def test_virtual_clock_runs_out_an_hour_in_no_time(db_path: Path) -> None:
    rt = litewf.Runtime(db_path, clock=VirtualClock(auto_advance=True))

    @rt.workflow()
    async def patient() -> Any:
        return await rt.wait_first(paid=rt.message("paid"), timeout=3600)

    started = time.monotonic()
    async with rt:
        assert await patient() is None
    assert time.monotonic() - started < 30  # not an hour (no timing assertion beyond that)


async def test_deadline_is_recorded_first_and_survives_a_restart(db_path: Path) -> None:
    clock = VirtualClock(start=1_000_000.0)

    def make() -> tuple[litewf.Runtime, litewf.Workflow[[], Any]]:
        rt = litewf.Runtime(db_path, clock=clock)

        @rt.workflow(name="patient")
        async def patient() -> Any:
            return await rt.wait_first(paid=rt.message("paid"), timeout=100)

        return rt, patient

    rt, patient = make()
    async with rt:
        await rt.start_workflow(patient, workflow_id="p")
        await wait_until(lambda: testing.waiting(rt) == 1)
        (step,) = await rt.list_steps("p")
        assert step.outcome == "waiting"
        assert step.deadline == datetime.fromtimestamp(1_000_100.0, UTC)
        clock.advance(60)
    rt, patient = make()
    async with rt:
        h = await rt.retrieve_workflow("p")
        await wait_until(lambda: clock.next_deadline is not None)
        assert clock.next_deadline == 1_000_100.0  # the recorded one, not now + 100
        clock.advance(39)  # 1 s before it
        await clock.wait_idle()
        assert (await rt.list_steps("p"))[0].outcome == "waiting"
        clock.advance(1)
        with anyio.fail_after(10):
            assert await h.get_result() is None


async def test_no_timeout_waits_as_long_as_it_takes(db_path: Path) -> None:
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, clock=clock)

    @rt.workflow()
    async def patient() -> Any:
        got = await rt.wait_first(paid=rt.message("paid"))
        assert got is not None
        return got.value

    async with rt:
        h = await rt.start_workflow(patient, workflow_id="p")
        await wait_until(lambda: testing.waiting(rt) == 1)
        clock.advance(10 * 365 * 86400)
        assert clock.next_deadline is None
        await rt.send("p", "late", topic="paid")
        assert await h.get_result(timeout=10) == "late"


# -- replay, crashes -------------------------------------------------------------------------


async def test_replay_takes_the_recorded_winner_after_a_simulated_crash(
    db_path: Path, tmp_path: Path
) -> None:
    """Crash after the winner was recorded; before recovery the first-named message
    arrives too. The replay still takes the recorded winner and takes nothing more."""
    rt, order = waitfirst.build(db_path, tmp_path)
    crash = crash_at(rt, before_step="waitfirst.note")
    async with rt:
        await rt.start_workflow(order, workflow_id=waitfirst.WORKFLOW_ID)
        await rt.send(waitfirst.WORKFLOW_ID, "changed my mind", topic="cancel")
        await rt.send(waitfirst.WORKFLOW_ID, 1, topic="go")
        await crash.wait()
    rt, order = waitfirst.build(db_path, tmp_path)
    async with rt:
        await rt.send(waitfirst.WORKFLOW_ID, "p1", topic="paid")  # would win a new wait
        h = await rt.retrieve_workflow(waitfirst.WORKFLOW_ID)
        await wait_until(lambda: testing.waiting(rt) == 1)  # replayed, now in recv("done")
        assert await queued(rt, waitfirst.WORKFLOW_ID) == [("paid", "p1")]
        await rt.send(waitfirst.WORKFLOW_ID, 1, topic="done")
        assert await h.get_result(timeout=10) == ["cancelled", "changed my mind"]
    assert lines(tmp_path / "winners") == ["cancelled", "cancelled"]


async def test_crash_before_wait_first_takes_nothing(db_path: Path, tmp_path: Path) -> None:
    rt, order = waitfirst.build(db_path, tmp_path)
    crash = crash_at(rt, before_step="wait_first")
    async with rt:
        await rt.start_workflow(order, workflow_id=waitfirst.WORKFLOW_ID)
        await rt.send(waitfirst.WORKFLOW_ID, "p1", topic="paid")
        await rt.send(waitfirst.WORKFLOW_ID, 1, topic="go")
        await crash.wait()
    assert [op[0] for op in operations(db_path, waitfirst.WORKFLOW_ID)] == ["recv"]
    rt, order = waitfirst.build(db_path, tmp_path)
    async with rt:
        await rt.send(waitfirst.WORKFLOW_ID, "c1", topic="cancel")
        h = await rt.retrieve_workflow(waitfirst.WORKFLOW_ID)
        await wait_until(lambda: testing.waiting(rt) == 1)
        assert await queued(rt, waitfirst.WORKFLOW_ID) == [("cancel", "c1")]
        await rt.send(waitfirst.WORKFLOW_ID, 1, topic="done")
        assert await h.get_result(timeout=10) == ["paid", "p1"]


async def test_sigkill_after_the_winner_was_recorded(db_path: Path, tmp_path: Path) -> None:
    """A real process dies after wait_first returned: recovery replays the same winner
    and the losing message is still queued."""
    child = procs.spawn("waitfirst", db_path, tmp_path)
    try:
        await procs.wait_for_file(tmp_path / "started", child)
        async with litewf.Client(db_path) as client:
            await client.send(waitfirst.WORKFLOW_ID, "c1", topic="cancel")
            await client.send(waitfirst.WORKFLOW_ID, "p1", topic="paid")
            await client.send(waitfirst.WORKFLOW_ID, 1, topic="go")
        await procs.wait_for_file(tmp_path / "won", child)
    finally:
        kill(child)
    rt, _ = waitfirst.build(db_path, tmp_path)
    async with rt:
        h = await rt.retrieve_workflow(waitfirst.WORKFLOW_ID)
        await wait_until(lambda: testing.waiting(rt) == 1)  # replayed, now in recv("done")
        assert await queued(rt, waitfirst.WORKFLOW_ID) == [("cancel", "c1")]
        await rt.send(waitfirst.WORKFLOW_ID, 1, topic="done")
        assert await h.get_result(timeout=10) == ["paid", "p1"]
        assert (await h.get_status()).recovery_attempts == 1
    assert lines(tmp_path / "winners") == ["paid", "paid"]


async def test_a_changed_wait_is_a_nondeterminism_error(db_path: Path) -> None:
    def make(topic: str) -> tuple[litewf.Runtime, litewf.Workflow[[], Any]]:
        rt = litewf.Runtime(db_path)

        @rt.step(name="after")
        async def after() -> None:
            pass

        @rt.workflow(name="changing")
        async def changing() -> Any:
            await rt.wait_first(paid=rt.message(topic), timeout=0)
            await after()

        return rt, changing

    rt, changing = make("paid")
    crash = crash_at(rt, before_step="after")
    async with rt:
        await rt.start_workflow(changing, workflow_id="c")
        await crash.wait()
    rt, changing = make("settled")
    async with rt:
        h = await rt.retrieve_workflow("c")
        with pytest.raises(litewf.NonDeterminismError, match="wait_first"):
            await h.get_result(timeout=10)


# -- deadline= elsewhere, sleep_until --------------------------------------------------------


async def test_deadline_on_get_event_and_get_result_outside_workflows(db_path: Path) -> None:
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, clock=clock)

    @rt.workflow()
    async def idle() -> None:
        await rt.recv(timeout=3600)

    soon = datetime.fromtimestamp(clock.time() + 5, UTC)
    past = datetime.now(UTC) - timedelta(seconds=1)
    async with rt, litewf.Client(db_path) as client:
        h = await rt.start_workflow(idle, workflow_id="i")
        assert await client.get_event("i", "k", deadline=past) is None
        with pytest.raises(TimeoutError, match="did not finish by"):
            await h.get_result(deadline=past)

        async def later() -> None:
            await wait_until(lambda: clock.next_deadline == soon.timestamp())
            clock.advance(6)  # past it (datetime rounds the deadline to microseconds)

        async with anyio.create_task_group() as tg:
            tg.start_soon(later)
            assert await rt.get_event("i", "k", deadline=soon) is None
        with pytest.raises(litewf.InvalidValueError, match="not both"):
            await rt.get_event("i", "k", 5, deadline=soon)
        with pytest.raises(litewf.InvalidValueError, match="not both"):
            await h.get_result(5, deadline=soon)


async def test_sleep_until_is_a_recorded_sleep(db_path: Path) -> None:
    clock = VirtualClock(start=2_000_000.0, auto_advance=True)
    rt = litewf.Runtime(db_path, clock=clock)
    when = datetime.fromtimestamp(2_000_000.0 + 86400, UTC)

    @rt.workflow()
    async def sleeper() -> float:
        await rt.sleep_until(when)
        got = await rt.get_event("s", "never", deadline=when + timedelta(hours=1))
        assert got is None
        with pytest.raises(TimeoutError, match="did not finish by"):  # a recorded read
            await (await rt.retrieve_workflow("s")).get_result(deadline=when)
        return clock.time()

    async with rt:
        h = await rt.start_workflow(sleeper, workflow_id="s")
        with anyio.fail_after(10):
            assert await h.get_result() == 2_000_000.0 + 86400 + 3600
        steps = await rt.list_steps("s")
        await rt.sleep_until(datetime.fromtimestamp(clock.time() + 60, UTC))  # plain sleep
    assert [s.name for s in steps] == ["sleep", "get_event", "retrieve_workflow", "get_result"]
    assert operations(db_path, "s")[0][2] == str(2_000_000.0 + 86400)


async def test_wait_first_reads_nothing_to_wait(db_path: Path) -> None:
    """Registered before its first write (which records the wait): no read follows that
    write, and a notification goes straight to the write that takes the winner."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def first() -> Any:
        won = await rt.wait_first(a=rt.message("a"), b=rt.message("b"), timeout=30)
        assert won is not None
        return [won.name, won.value]

    async with rt:
        reads = count_reads(rt)
        h = await rt.start_workflow(first, workflow_id="wf-quiet")
        await wait_until(lambda: testing.waiting(rt) == 1)
        assert [s.outcome for s in await rt.list_steps("wf-quiet")] == ["waiting"]
        await rt.send("wf-quiet", "B", topic="b")
        assert await h.get_result(timeout=10) == ["b", "B"]
    assert reads.count("_any_ready") == 0, reads

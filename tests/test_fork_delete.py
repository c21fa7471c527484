"""Fork and delete (DESIGN.md Part 2, "Living with code changes; fork; delete").

A workflow that ended on a recorded error cannot be repaired by ``resume_workflow`` (it
replays the error); a fork from that operation runs it with today's code, replaying the
copied operations before it (their steps do not run again). ``delete_workflow`` removes a
workflow and all its data, stops it wherever it runs, and ends the waits on it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from litewf import testing
from tests import procs, sqldb
from tests.children import forks
from tests.conditions import wait_until

WAIT = 30.0
TABLES = ("workflows", "operations", "events", "messages", "message_keys", "streams")


def rows(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    con = sqldb.connect(db)
    try:
        found: list[tuple[Any, ...]] = con.execute(sql, params).fetchall()
        return found
    finally:
        con.close()


def owned_rows(db: Path, workflow_id: str) -> dict[str, int]:
    """How many rows of each table belong to ``workflow_id``."""
    counts = {}
    for table in TABLES:
        column = "destination_id" if table in ("messages", "message_keys") else "workflow_id"
        counts[table] = rows(db, f"SELECT count(*) FROM {table} WHERE {column} = ?", workflow_id)[
            0
        ][0]
    return counts


class Shop:
    """A workflow whose third step fails while ``broken`` is set: the issue's case."""

    def __init__(self, db: Path, *, broken: bool, **options: Any) -> None:
        self.runs: Counter[str] = Counter()
        self.broken = broken
        rt = self.rt = litewf.Runtime(db, **options)

        @rt.step(name="reserve")
        async def reserve(order: str) -> str:
            self.runs["reserve"] += 1
            return f"r-{order}"

        @rt.step(name="charge")
        async def charge(order: str) -> str:
            self.runs["charge"] += 1
            await rt.write_stream("log", f"charged {order}")
            return f"c-{order}"

        @rt.step(name="ship")
        async def ship(order: str) -> str:
            self.runs["ship"] += 1
            if self.broken:
                raise ValueError("the carrier API changed")
            return f"s-{order}"

        @rt.step(name="notify")
        async def notify(order: str) -> str:
            self.runs["notify"] += 1
            return f"n-{order}"

        @rt.workflow(name="shop.order")
        async def order(order: str) -> list[str]:
            done = [await reserve(order)]  # op 0
            await rt.set_event("reserved", done[0])  # op 1
            done.append(await charge(order))  # op 2 (writes stream "log" from the step)
            await rt.write_stream("log", "shipping")  # op 3
            done.append(await ship(order))  # op 4
            await rt.set_event("shipped", done[-1])  # op 5
            done.append(await notify(order))  # op 6
            await rt.close_stream("log")  # op 7
            return done

        self.order = order


SHIP = 4  # the operation number of the failing step


async def failed_order(db: Path, workflow_id: str = "o-1") -> None:
    """Run the order with the broken code to ERROR; resume cannot repair it."""
    shop = Shop(db, broken=True)
    async with shop.rt:
        handle = await shop.rt.start_workflow(shop.order, "A", workflow_id=workflow_id)
        with pytest.raises(ValueError, match="carrier"):
            await handle.get_result(timeout=WAIT)
        shop.broken = False  # "fixed" code, but the error is recorded:
        await shop.rt.resume_workflow(workflow_id)
        with pytest.raises(ValueError, match="carrier"):
            await handle.get_result(timeout=WAIT)
    assert shop.runs == {"reserve": 1, "charge": 1, "ship": 1}  # resume replayed it all


async def test_a_fork_from_the_failed_step_completes_without_running_earlier_steps(
    db_path: Path,
) -> None:
    await failed_order(db_path)
    shop = Shop(db_path, broken=False)
    async with shop.rt:
        fork = await shop.rt.fork_workflow("o-1", from_step=SHIP, workflow_id="o-1-fixed")
        assert fork.workflow_id == "o-1-fixed"
        assert await fork.get_result(timeout=WAIT) == ["r-A", "c-A", "s-A", "n-A"]
        assert shop.runs == {"ship": 1, "notify": 1}  # reserve and charge were replayed
        assert await shop.rt.get_all_events("o-1-fixed") == {"reserved": "r-A", "shipped": "s-A"}
        values = [v async for v in shop.rt.read_stream("o-1-fixed", "log", timeout=WAIT)]
        assert values == ["charged A", "shipping"]
        source = await (await shop.rt.retrieve_workflow("o-1")).get_status()
        assert source.status is litewf.Status.ERROR  # the source is left as it was
        steps = [(s.number, s.name, s.outcome) for s in await shop.rt.list_steps("o-1-fixed")]
        assert (
            steps[:SHIP]
            == [(s.number, s.name, s.outcome) for s in await shop.rt.list_steps("o-1")][:SHIP]
        )
        assert steps[SHIP] == (SHIP, "ship", "ok")


async def test_a_fork_copies_only_the_events_and_stream_values_of_copied_operations(
    db_path: Path,
) -> None:
    """Forked from the op after charge (3): the "reserved" event and the value charge's
    step wrote are copied; "shipped" and "shipping" (later operations) are not."""
    await failed_order(db_path)
    async with litewf.Client(db_path) as client:  # a Client's fork waits for a runtime
        fork = await client.fork_workflow("o-1", 3)
        status = await fork.get_status()
        assert (status.status, status.executor_id, status.name) == (
            litewf.Status.PENDING,
            None,
            "shop.order",
        )
        assert await client.get_all_events(fork.workflow_id) == {"reserved": "r-A"}
        stream = rows(
            db_path,
            "SELECT position, value, writer FROM streams WHERE workflow_id = ? ORDER BY position",
            fork.workflow_id,
        )
        assert stream == [(0, '"charged A"', "2:0")]
        assert [s.number for s in await client.list_steps(fork.workflow_id)] == [0, 1, 2]
        assert rows(
            db_path,
            "SELECT history, parent_id FROM workflows WHERE workflow_id = ?",
            fork.workflow_id,
        ) == [(2, None)]
    shop = Shop(db_path, broken=False)
    async with shop.rt:  # has the function: claims the fork at launch
        handle = await shop.rt.retrieve_workflow(fork.workflow_id)
        assert await handle.get_result(timeout=WAIT) == ["r-A", "c-A", "s-A", "n-A"]
    assert shop.runs == {"ship": 1, "notify": 1}


async def test_a_fork_by_a_client_in_another_process_is_run_by_a_runtime_that_has_it(
    db_path: Path,
) -> None:
    await failed_order(db_path)
    shop = Shop(db_path, broken=False, recovery_interval=0.05)
    async with shop.rt:
        command = [sys.executable, "-m", "litewf", "--db", str(db_path), "fork", "o-1"]
        command += ["--from-step", str(SHIP), "--workflow-id", "o-1-cli"]
        forked = await anyio.to_thread.run_sync(
            lambda: subprocess.run(
                command,
                capture_output=True,
                text=True,
                check=False,
                cwd=procs.ROOT,
            )
        )
        assert forked.returncode == 0, forked.stderr
        assert forked.stdout.startswith("o-1-cli: PENDING")
        handle = await shop.rt.retrieve_workflow("o-1-cli")
        assert await handle.get_result(timeout=WAIT) == ["r-A", "c-A", "s-A", "n-A"]
    assert shop.runs == {"ship": 1, "notify": 1}


async def test_from_step_0_runs_everything_again_and_past_the_end_nothing(db_path: Path) -> None:
    shop = Shop(db_path, broken=False)
    async with shop.rt:
        done = await shop.rt.start_workflow(shop.order, "B", workflow_id="b")
        assert await done.get_result(timeout=WAIT) == ["r-B", "c-B", "s-B", "n-B"]
        fresh = await shop.rt.fork_workflow("b", 0)
        assert len(fresh.workflow_id) == 36  # a new UUID
        assert await fresh.get_result(timeout=WAIT) == ["r-B", "c-B", "s-B", "n-B"]
        assert shop.runs == dict.fromkeys(("reserve", "charge", "ship", "notify"), 2)
        for beyond in (8, 1000, 10**30):
            copy = await shop.rt.fork_workflow("b", beyond)
            assert await copy.get_result(timeout=WAIT) == ["r-B", "c-B", "s-B", "n-B"]
            values = [v async for v in shop.rt.read_stream(copy.workflow_id, "log")]
            assert values == ["charged B", "shipping"]
        assert shop.runs == dict.fromkeys(("reserve", "charge", "ship", "notify"), 2)


async def test_a_forked_workflow_that_crashes_resumes_without_running_copied_steps(
    db_path: Path,
) -> None:
    await failed_order(db_path)
    shop = Shop(db_path, broken=False)
    crash = testing.crash_at(shop.rt, before_step="notify", workflow_id="o-1-fixed")
    async with shop.rt:
        await shop.rt.fork_workflow("o-1", SHIP, workflow_id="o-1-fixed")
        with anyio.fail_after(WAIT):
            await crash.wait()
    assert shop.runs == {"ship": 1}
    again = Shop(db_path, broken=False)
    async with again.rt:  # recovers the fork: replays copied and recorded operations
        handle = await again.rt.retrieve_workflow("o-1-fixed")
        assert await handle.get_result(timeout=WAIT) == ["r-A", "c-A", "s-A", "n-A"]
    assert again.runs == {"notify": 1}


async def test_fork_of_a_pending_workflow_copies_what_it_recorded_so_far(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)
    ran: list[str] = []

    @rt.step(name="one")
    async def one() -> str:
        ran.append("one")
        return "1"

    @rt.workflow(name="waits")
    async def waits() -> str:
        first = await one()
        got = await rt.recv("go", timeout=WAIT)
        return f"{first}{got}"

    async with rt:
        source = await rt.start_workflow(waits, workflow_id="src")
        await wait_until(lambda: testing.waiting(rt) == 1)
        fork = await rt.fork_workflow("src", 5, workflow_id="copy")
        await wait_until(lambda: testing.waiting(rt) == 2)  # the fork waits in recv too
        await rt.send("copy", "!", topic="go")
        assert await fork.get_result(timeout=WAIT) == "1!"
        await rt.send("src", "?", topic="go")
        assert await source.get_result(timeout=WAIT) == "1?"
    assert ran == ["one"]


async def test_fork_refusals(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="noop")
    async def noop() -> int:
        return 1

    async with rt:
        await (await rt.start_workflow(noop, workflow_id="a")).get_result(timeout=WAIT)
        with pytest.raises(litewf.WorkflowNotFoundError, match="'nope'"):
            await rt.fork_workflow("nope", 0)
        with pytest.raises(litewf.WorkflowConflictError, match="'a' is taken"):
            await rt.fork_workflow("a", 0, workflow_id="a")
        assert [w.workflow_id for w in await rt.list_workflows()] == ["a"]


async def test_a_runtime_without_the_function_leaves_the_fork_for_one_that_has_it(
    db_path: Path,
) -> None:
    await failed_order(db_path)
    other = litewf.Runtime(db_path)
    async with other:
        fork = await other.fork_workflow("o-1", SHIP)
        status = await fork.get_status()
        assert (status.status, status.executor_id) == (litewf.Status.PENDING, None)
    shop = Shop(db_path, broken=False)
    async with shop.rt:
        assert (
            len(await (await shop.rt.retrieve_workflow(fork.workflow_id)).get_result(timeout=WAIT))
            == 4
        )


async def test_a_copied_child_start_finds_the_existing_child(db_path: Path) -> None:
    """The child started before ``from_step`` is not copied: the fork's replay gets the
    same child ID and its outcome (it does not run again). Forked at the child's start,
    the fork starts a child of its own."""
    rt = litewf.Runtime(db_path)
    runs: Counter[str] = Counter()

    @rt.workflow(name="child")
    async def child(n: int) -> int:
        runs["child"] += 1
        return n + 1

    @rt.workflow(name="parent")
    async def parent() -> list[Any]:
        handle = await rt.start_workflow(child, 1)  # op 0
        return [await handle.get_result(), handle.workflow_id]  # op 1 (a recorded read)

    async with rt:
        assert await (await rt.start_workflow(parent, workflow_id="p")).get_result() == [2, "p-0"]
        shared = await rt.fork_workflow("p", 1, workflow_id="q")
        assert await shared.get_result(timeout=WAIT) == [2, "p-0"]
        assert runs["child"] == 1
        own = await rt.fork_workflow("p", 0, workflow_id="r")
        assert await own.get_result(timeout=WAIT) == [2, "r-0"]
        assert runs["child"] == 2


def admin_runtime(db: Path, ran: Counter[str]) -> tuple[litewf.Runtime, litewf.Workflow[[], Any]]:
    rt = litewf.Runtime(db)

    @rt.workflow(name="target")
    async def target() -> str:
        ran["target"] += 1
        return "t"

    @rt.workflow(name="admin")
    async def admin() -> list[Any]:
        fork = await rt.fork_workflow("t1", 0)  # op 0: its ID derived from ours
        result = await fork.get_result()  # op 1
        await rt.delete_workflow("t1")  # op 2
        refused = []
        for gone in ("gone", "admin-1"):
            try:
                await rt.delete_workflow(gone)  # ops 3, 4: recorded refusals
            except litewf.LitewfError as exc:
                refused.append(type(exc).__name__)
        await rt.recv("end", timeout=WAIT)  # op 5
        return [fork.workflow_id, result, refused]

    return rt, admin


async def test_fork_and_delete_inside_a_workflow_are_recorded_operations(db_path: Path) -> None:
    ran: Counter[str] = Counter()
    rt, admin = admin_runtime(db_path, ran)
    async with rt:
        await (await rt.start_workflow(rt_target(rt), workflow_id="t1")).get_result()
        await rt.start_workflow(admin, workflow_id="admin-1")
        with anyio.fail_after(WAIT):  # until it waits in recv (op 5), not in get_result
            while len(await rt.list_steps("admin-1")) < 6:  # noqa: ASYNC110
                await anyio.sleep(0.005)
        await wait_until(lambda: testing.waiting(rt) == 1)
        testing.crash_now(rt)
    assert ran["target"] == 2  # t1, then its fork
    again, _ = admin_runtime(db_path, ran)
    async with again:  # recovers admin-1: replays the fork and the deletes
        await again.send("admin-1", "x", topic="end")
        handle = await again.retrieve_workflow("admin-1")
        assert await handle.get_result(timeout=WAIT) == [
            "admin-1-0",
            "t",
            ["WorkflowNotFoundError", "InvalidValueError"],
        ]
        names = [s.name for s in await again.list_steps("admin-1")]
        assert names[:5] == ["fork_workflow", "get_result"] + ["delete_workflow"] * 3
        ids = {w.workflow_id for w in await again.list_workflows()}
        assert ids == {"admin-1", "admin-1-0"}  # t1 deleted once; the fork made once
    assert ran["target"] == 2


def rt_target(rt: litewf.Runtime) -> litewf.Workflow[[], Any]:
    found: litewf.Workflow[[], Any] = rt._executor.workflows["target"]
    return found


# -- delete --------------------------------------------------------------------------------


async def test_delete_removes_all_data_and_leaves_children_as_top_level(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="leaf")
    async def leaf() -> int:
        await rt.set_event("e", 1)
        await rt.write_stream("s", 1)
        return 1

    @rt.workflow(name="mid")
    async def mid() -> int:
        return await leaf()

    @rt.workflow(name="root")
    async def root() -> int:
        me = rt.current_workflow_id()
        assert me is not None
        await rt.send(me, "note", idempotency_key="k")
        await rt.set_event("e", 1)
        await rt.write_stream("s", 1)
        return await mid()

    async with rt:
        for wid in ("keep", "all"):
            assert await (await rt.start_workflow(root, workflow_id=wid)).get_result() == 1
        assert any(owned_rows(db_path, "keep").values())
        await rt.delete_workflow("keep")
        assert owned_rows(db_path, "keep") == dict.fromkeys(TABLES, 0)
        assert rows(db_path, "SELECT parent_id FROM workflows WHERE workflow_id = 'keep-3'") == [
            (None,)
        ]
        assert await (await rt.retrieve_workflow("keep-3-0")).get_result() == 1
        await rt.delete_workflow("all", children=True)
        for wid in ("all", "all-3", "all-3-0"):
            assert owned_rows(db_path, wid) == dict.fromkeys(TABLES, 0)
        assert {w.workflow_id for w in await rt.list_workflows()} == {"keep-3", "keep-3-0"}
        with pytest.raises(litewf.WorkflowNotFoundError, match="'all'"):
            await rt.delete_workflow("all")
        with pytest.raises(litewf.WorkflowNotFoundError):
            await rt.retrieve_workflow("all-3")


async def test_deleting_a_running_workflow_stops_it_and_ends_the_waits_on_it(
    db_path: Path,
) -> None:
    rt = litewf.Runtime(db_path)
    after: list[str] = []

    @rt.step(name="later")
    async def later() -> None:
        after.append("ran")

    @rt.workflow(name="waiter")
    async def waiter() -> None:
        await rt.recv("go", timeout=WAIT)
        await later()

    @rt.workflow(name="watcher")
    async def watcher() -> str:
        try:
            await rt.get_event("victim", "never", timeout=WAIT)
        except litewf.WorkflowNotFoundError:
            return "gone"
        return "timed out"

    @rt.workflow(name="first-of")
    async def first_of() -> str:
        try:
            await rt.wait_first(e=rt.event("victim", "never"), m=rt.message(), timeout=WAIT)
        except litewf.WorkflowNotFoundError:
            return "gone"
        return "timed out"

    async with rt, litewf.Client(db_path) as client:
        await rt.start_workflow(waiter, workflow_id="victim")
        watching = await rt.start_workflow(watcher, workflow_id="watcher")
        first = await rt.start_workflow(first_of, workflow_id="first-of")
        await wait_until(lambda: testing.waiting(rt) == 3)
        results: dict[str, Any] = {}

        async def wait_result() -> None:
            with pytest.raises(litewf.WorkflowNotFoundError):
                await (await client.retrieve_workflow("victim")).get_result(timeout=WAIT)
            results["result"] = "gone"

        async def wait_event() -> None:
            with pytest.raises(litewf.WorkflowNotFoundError):
                await client.get_event("victim", "never", timeout=WAIT)
            results["event"] = "gone"

        async def read_stream() -> None:
            with pytest.raises(litewf.WorkflowNotFoundError):
                async for _ in client.read_stream("victim", "s", timeout=WAIT):
                    pass
            results["stream"] = "gone"

        with anyio.fail_after(5):  # far less than WAIT: the waits end at the delete
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_result)
                tg.start_soon(wait_event)
                tg.start_soon(read_stream)
                await wait_until(lambda: client._session_for("test").notifier.waiting == 3)
                await client.delete_workflow("victim")
            assert await watching.get_result() == "gone"
            assert await first.get_result() == "gone"
        assert results == {"result": "gone", "event": "gone", "stream": "gone"}
        await wait_until(lambda: "victim" not in rt._executor.running)
        with pytest.raises(litewf.WorkflowNotFoundError):
            await rt.send("victim", "go", topic="go")
        assert after == []
        assert owned_rows(db_path, "victim") == dict.fromkeys(TABLES, 0)


async def test_delete_refusals(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="selfish")
    async def selfish() -> str:
        try:
            await rt.delete_workflow("me")
        except litewf.InvalidValueError as exc:
            return str(exc)
        return "deleted"

    async with rt, litewf.Client(db_path) as client:
        with pytest.raises(litewf.WorkflowNotFoundError, match="'nope'"):
            await rt.delete_workflow("nope")
        with pytest.raises(litewf.WorkflowNotFoundError, match="'nope'"):
            await client.delete_workflow("nope", children=True)
        said = await (await rt.start_workflow(selfish, workflow_id="me")).get_result(timeout=WAIT)
        assert "cannot delete 'me'" in said and "itself" in said


async def test_stream_values_of_copied_operations_are_renumbered_without_gaps(
    db_path: Path,
) -> None:
    """Two steps run at once: the later-numbered one writes first. Forked between them,
    the fork's stream holds the earlier step's value at position 0."""
    rt = litewf.Runtime(db_path)
    gate = anyio.Event()

    @rt.step(name="slow")
    async def slow() -> None:
        await gate.wait()
        await rt.write_stream("s", "slow")

    @rt.step(name="fast")
    async def fast() -> None:
        await rt.write_stream("s", "fast")

    async def fast_then_open() -> None:
        await fast()
        gate.set()

    @rt.workflow(name="pair")
    async def pair() -> None:
        await asyncio.gather(slow(), fast_then_open())  # ops 0 (slow), 1 (fast)

    async with rt:
        await (await rt.start_workflow(pair, workflow_id="pair")).get_result(timeout=WAIT)
        source = "SELECT position, value, writer FROM streams WHERE workflow_id = ? ORDER BY 1"
        assert rows(db_path, source, "pair") == [(0, '"fast"', "1:0"), (1, '"slow"', "0:0")]
        async with litewf.Client(db_path) as client:
            fork = await client.fork_workflow("pair", 1, workflow_id="half")
        assert rows(db_path, source, "half") == [(0, '"slow"', "0:0")]
        await rt.recover()  # claims the Client's fork: replays slow, runs fast
        handle = await rt.retrieve_workflow(fork.workflow_id)
        assert await handle.get_result(timeout=WAIT) is None
        assert [v async for v in rt.read_stream("half", "s")] == ["slow", "fast"]


async def test_a_history_recorded_before_event_keys_copies_events_by_time(db_path: Path) -> None:
    """set_event records from before operation identity carry no key: the events set no
    later than the last copied set_event are copied."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="two")
    async def two() -> None:
        await rt.set_event("a", 1)  # op 0
        await rt.set_event("b", 2)  # op 1

    async with rt:
        await (await rt.start_workflow(two, workflow_id="old")).get_result(timeout=WAIT)
    con = sqldb.connect(db_path)
    with con:  # as a database migrated from before operation identity holds it
        con.execute("UPDATE workflows SET history = 1")
        con.execute("UPDATE operations SET target = NULL")
        con.execute("UPDATE events SET created_at = created_at - 10 WHERE key = 'a'")
        con.execute("UPDATE operations SET created_at = created_at - 10 WHERE op_id = 0")
    con.close()
    async with litewf.Client(db_path) as client:
        fork = await client.fork_workflow("old", 1)
        assert await client.get_all_events(fork.workflow_id) == {"a": 1}
        assert rows(
            db_path, "SELECT history FROM workflows WHERE workflow_id = ?", fork.workflow_id
        ) == [(1,)]
        every = await client.fork_workflow("old", 2)
        assert await client.get_all_events(every.workflow_id) == {"a": 1, "b": 2}


async def test_deleting_a_queued_workflow_frees_its_slot_at_once(db_path: Path) -> None:
    rt = litewf.Runtime(db_path, recovery_interval=60)  # no poll: the delete wakes the queue
    queue = rt.queue("q", concurrency=1)

    @rt.workflow(name="held")
    async def held() -> str:
        await rt.recv("go", timeout=WAIT)
        return "done"

    async with rt:
        first = await queue.enqueue(held, workflow_id="first")
        second = await queue.enqueue(held, workflow_id="second")
        await wait_until(lambda: testing.waiting(rt) == 1)
        assert (await second.get_status()).status is litewf.Status.ENQUEUED
        await rt.delete_workflow(first.workflow_id)
        await wait_until(lambda: testing.waiting(rt) == 1 and "second" in rt._executor.running)
        await rt.send("second", "x", topic="go")
        assert await second.get_result(timeout=WAIT) == "done"


async def test_a_fork_whose_process_is_killed_resumes_without_running_copied_steps(
    tmp_path: Path, db_path: Path
) -> None:
    """The fork runs in a child process that is SIGKILLed inside the re-run step; a runtime
    here recovers it: reserve (copied) never runs again, ship runs again (it never
    recorded an outcome), notify once."""
    out = tmp_path / "out"
    out.mkdir()
    rt, order = forks.build(db_path, out, broken=True, block=False)
    async with rt:
        handle = await rt.start_workflow(order, "A", workflow_id="src")
        with pytest.raises(ValueError, match="carrier"):
            await handle.get_result(timeout=WAIT)
    child = procs.spawn("forks", "run", db_path, out, "src", "1", "fixed")
    try:
        await procs.wait_for_file(out / "ship.started", child)
    finally:
        procs.kill(child)
    assert (out / "runs").read_text().split() == ["reserve", "ship", "ship"]
    rt, _ = forks.build(db_path, out, broken=False, block=False)
    async with rt:  # the dead child's lock is gone: the fork is recovered at launch
        fixed = await rt.retrieve_workflow("fixed")
        assert await fixed.get_result(timeout=WAIT) == ["r-A", "s-A", "n-A"]
    assert (out / "runs").read_text().split() == ["reserve", "ship", "ship", "ship", "notify"]


async def test_a_deleted_workflow_drops_the_outcome_of_its_running_sync_step(
    db_path: Path,
) -> None:
    """A sync step body cannot be stopped: it runs to its end, and records nothing."""
    rt = litewf.Runtime(db_path)
    started, release = threading.Event(), threading.Event()

    @rt.step(name="blocking")
    def blocking() -> str:
        started.set()
        release.wait(WAIT)
        return "done"

    @rt.workflow(name="stuck")
    async def stuck() -> str:
        return await blocking()

    async with rt:
        await rt.start_workflow(stuck, workflow_id="stuck")
        await anyio.to_thread.run_sync(started.wait, WAIT)
        await rt.delete_workflow("stuck")
        release.set()
        await wait_until(lambda: "stuck" not in rt._executor.running)
        assert owned_rows(db_path, "stuck") == dict.fromkeys(TABLES, 0)
        assert await rt.list_workflows() == []
    # Shut down: every step thread has ended, and none of it wrote anything.
    assert owned_rows(db_path, "stuck") == dict.fromkeys(TABLES, 0)

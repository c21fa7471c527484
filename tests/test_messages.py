"""Guarantees 4 (messages) and 7 (waking), and litewf.Client from another process."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from litewf import testing
from tests import procs, sqldb
from tests.children.comms import append, lines, register
from tests.conditions import count_reads, wait_until


def kill(child: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child and close its pipes (``procs.kill`` leaves them open)."""
    procs.kill(child)
    child.communicate()


async def finish(child: subprocess.Popen[bytes], timeout: float = 60.0) -> tuple[str, str]:
    """Wait (without blocking the event loop) for a child to exit 0; its stdout and stderr."""
    with anyio.fail_after(timeout):
        out, err = await anyio.to_thread.run_sync(child.communicate)
    assert child.returncode == 0, f"child failed ({child.returncode}):\n{out!r}\n{err.decode()}"
    return out.decode(), err.decode()


# -- waiting ------------------------------------------------------------------------------------


async def test_recv_reads_nothing_to_wait(db_path: Path) -> None:
    """A recv that waits is registered before its first write (which takes a queued message
    or records the wait), so it reads nothing: neither after that write nor when woken."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def echo() -> Any:
        return await rt.recv(timeout=30)

    async with rt:
        reads = count_reads(rt)
        h = await rt.start_workflow(echo, workflow_id="quiet")
        await wait_until(lambda: testing.waiting(rt) == 1)
        # Counted as waiting only once its first look is done: the wait is recorded.
        assert [s.outcome for s in await rt.list_steps("quiet")] == ["waiting"]
        await rt.send("quiet", "hi")
        assert await h.get_result(timeout=10) == "hi"
    assert reads.count("peek_message") == 0, reads


async def test_recv_racing_sends_loses_no_wakeup(db_path: Path) -> None:
    """Each send is made while the receiver's recv is starting (its first write under
    way or just committed): every one is received at once, none waits for the 30 s
    safety re-check."""
    rt = litewf.Runtime(db_path, durability="normal")
    rounds = 40

    @rt.workflow()
    async def ping() -> int:
        for i in range(rounds):
            assert await rt.recv(timeout=30) == i
            await rt.set_event(f"got{i}", i)
        return rounds

    async with rt:
        h = await rt.start_workflow(ping, workflow_id="racer")
        with anyio.fail_after(20):  # far below rounds * 30 s
            for i in range(rounds):
                await rt.send("racer", i)
                assert await rt.get_event("racer", f"got{i}", timeout=10) == i
        assert await h.get_result(timeout=10) == rounds


# -- durability, order, queues -----------------------------------------------------------------


async def test_fifo_1000_messages(db_path: Path) -> None:
    """1,000 messages arrive all and in send order: 500 queued before the workflow starts
    receiving, 500 sent while it receives."""
    rt = litewf.Runtime(db_path, durability="normal")  # FIFO does not depend on fsync
    count = 1000

    @rt.workflow()
    async def drain() -> list[Any]:
        await rt.recv("go", timeout=30)
        return [await rt.recv(timeout=30) for _ in range(count)]

    async with rt:
        h = await rt.start_workflow(drain, workflow_id="fifo")
        for i in range(count // 2):
            await rt.send("fifo", i)
        await rt.send("fifo", "go", topic="go")
        for i in range(count // 2, count):
            await rt.send("fifo", i)
        assert await h.get_result(timeout=60) == list(range(count))


async def test_topic_none_is_its_own_queue(db_path: Path) -> None:
    """topic=None, "t" and the string "None" are three separate queues, each FIFO."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def topics() -> list[Any]:
        await rt.recv("go", timeout=30)
        return [
            await rt.recv("t", timeout=5),
            await rt.recv(None, timeout=5),
            await rt.recv(timeout=5),
            await rt.recv("t", timeout=0.1),
            await rt.recv(timeout=0.1),
            await rt.recv("None", timeout=5),
        ]

    async with rt:
        h = await rt.start_workflow(topics, workflow_id="topics")
        await rt.send("topics", "none-1")
        await rt.send("topics", "t-1", topic="t")
        await rt.send("topics", "none-2", None)
        await rt.send("topics", "str-None", topic="None")
        await rt.send("topics", "go", topic="go")
        assert await h.get_result(timeout=30) == ["t-1", "none-1", "none-2", None, None, "str-None"]


async def test_recv_consumes_exactly_once_across_sigkill(db_path: Path, tmp_path: Path) -> None:
    """A message consumed before SIGKILL is not delivered again after recovery, nor lost."""
    child = procs.spawn("comms", "serve", db_path, tmp_path, "comms.consumer", "consumer")
    try:
        await procs.wait_for_file(tmp_path / "started", child)
        async with litewf.Client(db_path) as client:
            await client.send("consumer", "m1", "q")
        # Touched by the workflow once the step that logs m1 has recorded its outcome.
        await procs.wait_for_file(tmp_path / "consumed-1", child)
    finally:
        kill(child)  # killed while it waits for message 2
    rt = litewf.Runtime(db_path)
    register(rt)
    async with rt:
        h = await rt.retrieve_workflow("consumer")
        await rt.send("consumer", "m2", topic="q")
        assert await h.get_result(timeout=10) == ["m1", "m2"]
        assert (await h.get_status()).recovery_attempts == 1
    assert lines(tmp_path / "runs") == ["run", "run"]  # it was recovered and replayed
    assert lines(tmp_path / "deliveries") == ["m1", "m2"]  # and saw m1 exactly once


async def test_send_survives_sigkill_before_recv(db_path: Path, tmp_path: Path) -> None:
    """A Client whose send returned is SIGKILLed; the recv that comes later still gets it."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def late_reader() -> Any:
        await rt.recv("go", timeout=30)
        return await rt.recv("payload", timeout=5)

    async with rt:
        h = await rt.start_workflow(late_reader, workflow_id="late")
        child = procs.spawn("comms", "client_send", db_path, tmp_path, "late", "payload", "kept")
        try:
            await procs.wait_for_file(tmp_path / "sent", child)
        finally:
            kill(child)
        await rt.send("late", "go", topic="go")
        assert await h.get_result(timeout=10) == "kept"


async def test_recv_deadline_survives_restart(db_path: Path, tmp_path: Path) -> None:
    """A recv(timeout=2.5) interrupted at ~1.2 s returns None at the original deadline."""
    runs = tmp_path / "runs"
    timeout, pause = 2.5, 1.2

    def make() -> tuple[litewf.Runtime, litewf.Workflow[[], list[Any]]]:
        rt = litewf.Runtime(db_path)

        @rt.workflow(name="patient")
        async def patient() -> list[Any]:
            append(runs, "run")
            value = await rt.recv("nothing", timeout=timeout)
            return [value, time.time()]

        return rt, patient

    rt, patient = make()
    started = time.time()
    async with rt:
        await rt.start_workflow(patient, workflow_id="p")
        await wait_until(lambda: testing.waiting(rt) == 1)  # its deadline is recorded
        await anyio.sleep(pause)  # then the runtime goes away mid-wait
    rt, patient = make()
    async with rt:
        value, returned_at = await (await rt.retrieve_workflow("p")).get_result(timeout=10)
    assert value is None
    assert lines(runs) == ["run", "run"]
    # Original deadline: started + 2.5 s; one restarted at relaunch: >= started + 3.7 s.
    assert timeout - 0.05 <= returned_at - started < timeout + 0.9


async def test_send_from_workflow_is_not_repeated_on_replay(db_path: Path, tmp_path: Path) -> None:
    """Sends made by a workflow are operations: replay after relaunch does not send again."""
    runs = tmp_path / "runs"

    def make() -> tuple[litewf.Runtime, dict[str, litewf.Workflow[[], Any]]]:
        rt = litewf.Runtime(db_path)

        @rt.workflow(name="producer")
        async def producer() -> Any:
            append(runs, "run")
            await rt.send("sink", "x", topic="data")
            await rt.send("sink", "y", topic="data")
            await rt.set_event("sent", True)
            return await rt.recv("go", timeout=30)

        @rt.workflow(name="sink")
        async def sink() -> list[Any]:
            await rt.recv("start", timeout=30)
            got = []
            while (message := await rt.recv("data", timeout=0.3)) is not None:
                got.append(message)
            return got

        return rt, {"producer": producer, "sink": sink}

    rt, wfs = make()
    async with rt:
        await rt.start_workflow(wfs["sink"], workflow_id="sink")
        await rt.start_workflow(wfs["producer"], workflow_id="producer")
        assert await rt.get_event("producer", "sent", timeout=10) is True
    rt, wfs = make()
    async with rt:
        await rt.send("producer", "go", topic="go")
        assert await (await rt.retrieve_workflow("producer")).get_result(timeout=10) == "go"
        await rt.send("sink", "start", topic="start")  # drains only after the replay finished
        assert await (await rt.retrieve_workflow("sink")).get_result(timeout=10) == ["x", "y"]
    assert lines(runs) == ["run", "run"]


async def test_idempotency_key_delivers_at_most_once(db_path: Path) -> None:
    """A key admits one message per destination, even after that copy was consumed."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def keyed() -> list[Any]:
        first = await rt.recv("t", timeout=30)
        await rt.set_event("first", first)
        await rt.recv("go", timeout=30)
        return [first, await rt.recv("t", timeout=0.3)]

    async with rt, litewf.Client(db_path) as client:
        a = await rt.start_workflow(keyed, workflow_id="a")
        b = await rt.start_workflow(keyed, workflow_id="b")
        await rt.send("a", "one", topic="t", idempotency_key="k")
        await rt.send("a", "two", topic="t", idempotency_key="k")  # returns normally
        await client.send("a", "three", "t", idempotency_key="k")
        assert await rt.get_event("a", "first", timeout=10) == "one"  # consumed now
        await rt.send("a", "four", topic="t", idempotency_key="k")
        await client.send("b", "for-b", "t", idempotency_key="k")  # another destination
        await rt.send("a", "go", topic="go")
        await rt.send("b", "go", topic="go")
        assert await a.get_result(timeout=10) == ["one", None]
        assert await b.get_result(timeout=10) == ["for-b", None]


def stored_messages(db_path: Path, workflow_id: str) -> list[str]:
    """The queued (unconsumed) messages of a workflow, read straight from the file."""
    uri = f"file:{db_path}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        rows = conn.execute(
            "SELECT message FROM messages WHERE destination_id = ? ORDER BY seq", (workflow_id,)
        ).fetchall()
    return [json.loads(r[0]) for r in rows]


@pytest.mark.sqlite_only
async def test_send_to_finished_workflow_is_stored(db_path: Path) -> None:
    """send to a workflow that already finished returns normally and the message is stored."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def quick() -> str:
        return "done"

    async with rt, litewf.Client(db_path) as client:
        h = await rt.start_workflow(quick, workflow_id="quick")
        assert await h.get_result(timeout=10) == "done"
        await rt.send("quick", "late-1")
        await client.send("quick", {"late": 2}, "t")
        assert stored_messages(db_path, "quick") == ["late-1", {"late": 2}]
        assert (await h.get_status()).status == "SUCCESS"


@pytest.mark.sqlite_only
async def test_send_cancelled_while_database_busy_leaves_runtime_usable(db_path: Path) -> None:
    """A send given up (cancelled) while another connection holds the write lock stores
    nothing and leaves the runtime able to send afterwards (no orphaned BEGIN)."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def quick() -> str:
        return "done"

    async with rt:
        await (await rt.start_workflow(quick, workflow_id="quick")).get_result(timeout=10)
        with contextlib.closing(sqldb.connect(db_path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")  # another writer holds the lock for a while
            with anyio.move_on_after(0.3):  # the caller gives up waiting
                await rt.send("quick", "abandoned")
            other.execute("ROLLBACK")
        await rt.send("quick", "kept")
        assert stored_messages(db_path, "quick") == ["kept"]


async def test_recv_outside_workflow_refused(db_path: Path) -> None:
    """recv belongs to a workflow: outside one it raises NotInWorkflowError."""
    async with litewf.Runtime(db_path) as rt:
        with pytest.raises(litewf.NotInWorkflowError):
            await rt.recv(timeout=0)


# -- waking across processes ----------------------------------------------------------------------


async def test_client_in_child_wakes_recv_here(db_path: Path) -> None:
    """A Client in another process wakes a waiting recv here (and our set_event wakes it)."""
    rt = litewf.Runtime(db_path)
    rounds = 7

    @rt.workflow()
    async def pong() -> None:
        for i in range(rounds):
            ping = await rt.recv("ping", timeout=30)
            await rt.set_event(f"ack-{i}", time.time() - ping["t"])

    async with rt:
        h = await rt.start_workflow(pong, workflow_id="pong")
        child = procs.spawn("comms", "pinger", db_path, "pong", str(rounds))
        try:
            await finish(child)
        finally:
            if child.poll() is None:
                kill(child)
        await h.get_result(timeout=10)
        latencies = list((await rt.get_all_events("pong")).values())
    assert len(latencies) == rounds
    # Far below the 30 s safety re-check: the poller woke the recv. (~0.01-0.05 s typical.)
    assert statistics.median(latencies) < 2.0
    print(f"cross-process send->recv median {statistics.median(latencies) * 1000:.1f} ms")


async def test_three_senders_600_messages(db_path: Path, tmp_path: Path) -> None:
    """Three processes sending 200 messages each at once: all 600 arrive exactly once, in
    each sender's order, and no child ever sees "database is locked"."""
    rt = litewf.Runtime(db_path)
    total = 600

    @rt.workflow()
    async def collect() -> list[str]:
        got = []
        for _ in range(total):
            message = await rt.recv("burst", timeout=30)
            got.append(message["id"])
        return got

    prefixes = ("a", "b", "c")
    async with rt:
        h = await rt.start_workflow(collect, workflow_id="collector")
        children = [
            procs.spawn("comms", "sender", db_path, tmp_path, "collector", p, "200")
            for p in prefixes
        ]
        try:
            for p, child in zip(prefixes, children, strict=True):
                await procs.wait_for_file(tmp_path / f"ready-{p}", child)
            procs.touch(tmp_path / "go")
            errors = [(await finish(child))[1] for child in children]
        finally:
            for child in children:
                if child.poll() is None:
                    kill(child)
        # Generous, yet well under the 30 s safety re-check: the recv was woken each time.
        got = await h.get_result(timeout=15)
    assert not any("locked" in err for err in errors), errors
    assert len(got) == total
    assert set(got) == {f"{p}-{i}" for p in prefixes for i in range(200)}
    for p in prefixes:
        assert [g for g in got if g.startswith(f"{p}-")] == [f"{p}-{i}" for i in range(200)]


@pytest.mark.sqlite_only
async def test_idle_waiters_are_cheap(db_path: Path) -> None:
    """200 workflows waiting in recv cost no per-waiter queries per poll tick, little CPU."""
    rt = litewf.Runtime(db_path, durability="normal")
    waiters = 200

    @rt.workflow()
    async def idle() -> Any:
        return await rt.recv(timeout=60)

    async with rt:
        for i in range(waiters):
            await rt.start_workflow(idle, workflow_id=f"idle-{i}")
        await wait_until(lambda: testing.waiting(rt) == waiters)
        statements: list[str] = []
        await testing.backend(rt).db.trace(statements.append)
        cpu = time.process_time()
        await anyio.sleep(2.0)  # a measurement window, not a wait for a condition
        cpu = time.process_time() - cpu
        await testing.backend(rt).db.trace(None)  # None: tracing off
        # 2 s at poll_interval 0.01 is 200 ticks: even one query per tick would be 200, one
        # per waiter per tick 40,000. The poller stats the WAL and asks data_version rarely.
        assert len(statements) < waiters, statements[:20]
        assert cpu < 1.0  # under half a core
        await rt.send("idle-0", "bye")
        assert await (await rt.retrieve_workflow("idle-0")).get_result(timeout=10) == "bye"


# -- Client ------------------------------------------------------------------------------------


async def test_client_calls_from_another_process(db_path: Path, tmp_path: Path) -> None:
    """send, get_event, get_all_events, retrieve/get_result, get_status, list_workflows and
    cancel_workflow all work from a child process's Client against a serving Runtime."""
    rt = litewf.Runtime(db_path)
    after = tmp_path / "after"

    @rt.workflow()
    async def echo() -> str:
        await rt.set_event("greeting", "hi")
        message: str = await rt.recv("in", timeout=30)
        await rt.set_event("echo", message)
        return message + "!"

    @rt.workflow()
    async def blocker() -> Any:
        message = await rt.recv("never", timeout=30)
        append(after, "ran on")  # must not happen: the child cancels it mid-recv
        return message

    async with rt:
        e = await rt.start_workflow(echo, workflow_id="echo")
        b = await rt.start_workflow(blocker, workflow_id="blocker")
        child = procs.spawn("comms", "client_ops", db_path, "echo", "blocker")
        try:
            seen = json.loads((await finish(child))[0])
        finally:
            if child.poll() is None:
                kill(child)
        assert seen == {
            "greeting": "hi",
            "result": "abc!",
            "status": "SUCCESS",
            "events": {"greeting": "hi", "echo": "abc"},
            "blocker": "CANCELLED",
            "listed": [["blocker", "CANCELLED"], ["echo", "SUCCESS"]],
            "pending": [],
            "missing_retrieve": "WorkflowNotFoundError",
            "missing_send": "WorkflowNotFoundError",
            "missing_event": "WorkflowNotFoundError",
        }
        assert await e.get_result(timeout=10) == "abc!"
        with pytest.raises(litewf.WorkflowCancelledError):
            await b.get_result(timeout=10)
        # The cancel reached the running blocker here: its recv stopped waiting.
        await wait_until(lambda: testing.waiting(rt) == 0)
    assert lines(after) == []


@pytest.mark.sqlite_only
async def test_send_cancelled_while_committing_still_wakes_the_receiver(db_path: Path) -> None:
    """A send whose caller is cancelled while its write commits (in another caller's
    group-commit batch) is stored, and still wakes the workflow waiting for it at once,
    not at the slow safety re-check."""
    from tests.faults import dbhooks

    rt = litewf.Runtime(db_path)

    @rt.workflow(name="m.waiter")
    async def waiter() -> Any:
        return await rt.recv(timeout=60)

    scope = anyio.CancelScope()
    armed = False

    def cancel_at_commit(phase: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if phase == "before" and armed and dbhooks.is_commit(fn, args):
            scope.cancel()

    async def cancelled_send() -> None:
        with scope:
            await rt.send("w", "hello")

    async with rt:
        handle = await rt.start_workflow(waiter, workflow_id="w")
        other = await rt.start_workflow(waiter, workflow_id="other")
        await wait_until(lambda: testing.waiting(rt) == 2)
        undo = dbhooks.install(cancel_at_commit)
        try:
            armed = True
            async with anyio.create_task_group() as tg:
                tg.start_soon(rt.send, "other", "leader")  # runs the batch
                tg.start_soon(cancelled_send)  # queued into the same batch
            armed = False
        finally:
            undo()
        assert scope.cancelled_caught  # the caller saw the cancellation...
        with anyio.fail_after(5):  # ...yet the message is stored and the waiter woken now
            assert await handle.get_result() == "hello"
        assert await other.get_result(timeout=5) == "leader"


async def test_send_tells_whether_the_idempotency_key_was_used(db_path: Path) -> None:
    """send returns True when it enqueued, False when the key was seen (nothing enqueued),
    from a Runtime, a Client and inside a workflow, where a replay returns the same."""
    runs: list[str] = []

    def runtime() -> tuple[litewf.Runtime, litewf.Workflow[[], list[bool]]]:
        rt = litewf.Runtime(db_path)

        @rt.workflow(name="sender")
        async def sender() -> list[bool]:
            own = rt.current_workflow_id()
            assert own is not None
            got = [
                await rt.send(own, 1, "t", idempotency_key="w"),
                await rt.send(own, 2, "t", idempotency_key="w"),
                await rt.send(own, 3, "t"),
            ]
            runs.append("run")
            if len(runs) == 1:
                raise RuntimeError("fail once, then resume_workflow() replays the sends")
            return got

        return rt, sender

    rt, sender = runtime()
    async with rt, litewf.Client(db_path) as client:
        handle = await rt.start_workflow(sender, workflow_id="s")
        with pytest.raises(RuntimeError, match="fail once"):
            await handle.get_result(timeout=10)
        assert await rt.send("s", "x", idempotency_key="k") is True
        assert await rt.send("s", "y", idempotency_key="k") is False
        assert await client.send("s", "z", idempotency_key="k") is False
        assert await client.send("s", "z", idempotency_key="other") is True
    rt, sender = runtime()
    async with rt:
        handle = await rt.resume_workflow("s")
        assert await handle.get_result(timeout=10) == [True, False, True]
        assert runs == ["run", "run"]
        queued = await rt.list_messages("s")
        assert [m.message for m in queued] == [1, 3, "x", "z"]


async def test_a_send_to_no_workflow_writes_nothing_not_even_its_key(db_path: Path) -> None:
    """The destination's existence rides on the inserts: a send to a missing workflow
    raises and leaves no message and no idempotency key (the same key works later)."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def inbox() -> Any:
        return await rt.recv(timeout=30)

    async with rt:
        with pytest.raises(litewf.WorkflowNotFoundError):
            await rt.send("later", "early", idempotency_key="k1")
        with pytest.raises(litewf.WorkflowNotFoundError):
            await rt.send("later", "early")
        with pytest.raises(litewf.WorkflowNotFoundError):
            await rt.get_event("later", "any", timeout=30)  # at once, not after 30 s
        handle = await rt.start_workflow(inbox, workflow_id="later")
        assert await rt.send("later", "on time", idempotency_key="k1") is True
        assert await rt.send("later", "again", idempotency_key="k1") is False
        assert await handle.get_result(timeout=10) == "on time"

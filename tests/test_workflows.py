"""Workflows: identity, handles, status records, errors, serialization, children, sleep.

Restarts here are in-process and clean: a runtime is shut down while its workflow waits
(the workflow stays PENDING, released), and a new Runtime on the same file, with the same
functions registered under the same names, resumes it. Counters prove what never ran twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import threading
import time
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from tests import sqldb

#: Generous bound for anything that should take milliseconds.
WAIT = 10.0


def query(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read stored rows straight from the file, with a short-lived plain sqlite3 connection."""
    with contextlib.closing(sqldb.connect(db_path)) as conn:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]


def stored_row(db_path: Path, workflow_id: str) -> tuple[Any, ...]:
    """(status, executor_id) of one stored workflow."""
    rows = query(
        db_path, "SELECT status, executor_id FROM workflows WHERE workflow_id = ?", (workflow_id,)
    )
    assert len(rows) == 1, rows
    return rows[0]


async def wait_set(event: anyio.Event) -> None:
    """Wait for ``event``, failing the test instead of hanging."""
    with anyio.fail_after(WAIT):
        await event.wait()


def opened() -> anyio.Event:
    """A gate that is already open, for runs that should go straight through."""
    gate = anyio.Event()
    gate.set()
    return gate


class PaymentDeclined(Exception):
    """A user exception whose constructor does not take the message."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"declined {code}: {reason}")
        self.code = code


@dataclasses.dataclass(frozen=True)
class Point:
    """A custom value only pickle can store."""

    x: int
    y: int


# -- identity --------------------------------------------------------------------------------


async def test_existing_id_returns_handle_and_never_runs_twice(db_path: Path) -> None:
    """Starting an existing ID (running, finished, or after a relaunch) never runs it again."""
    runs: list[int] = []
    gate = anyio.Event()

    def build() -> tuple[litewf.Runtime, litewf.Workflow[[int], int]]:
        rt = litewf.Runtime(db_path)

        @rt.workflow(name="once")
        async def once(n: int) -> int:
            runs.append(n)
            await gate.wait()
            return n * 10

        return rt, once

    rt, once = build()
    async with rt:
        first = await rt.start_workflow(once, 1, workflow_id="order-1")
        again = await rt.start_workflow(once, 2, workflow_id="order-1")  # still running
        assert again.workflow_id == first.workflow_id == "order-1"
        gate.set()
        assert await first.get_result(timeout=WAIT) == 10
        assert await again.get_result(timeout=WAIT) == 10
        late = await rt.start_workflow(once, 3, workflow_id="order-1")  # finished
        assert await late.get_result(timeout=WAIT) == 10
    rt2, once2 = build()
    async with rt2:
        h = await rt2.start_workflow(once2, 4, workflow_id="order-1")
        assert await h.get_result(timeout=WAIT) == 10
        assert len(await rt2.list_workflows()) == 1
    assert runs == [1]


async def test_same_id_other_function_is_a_conflict(db_path: Path) -> None:
    """An ID that belongs to another workflow function raises WorkflowConflictError."""
    other_runs: list[str] = []
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="ship")
    async def ship() -> str:
        return "shipped"

    @rt.workflow(name="bill")
    async def bill() -> str:
        other_runs.append("bill")
        return "billed"

    async with rt:
        assert await (await rt.start_workflow(ship, workflow_id="x")).get_result(WAIT) == "shipped"
        with pytest.raises(litewf.WorkflowConflictError) as info:
            await rt.start_workflow(bill, workflow_id="x")
        assert info.value.workflow_id == "x"
        assert info.value.stored_name == "ship"
        assert info.value.requested_name == "bill"
        assert (await (await rt.retrieve_workflow("x")).get_status()).name == "ship"
    assert other_runs == []


async def test_awaiting_a_workflow_starts_it_and_waits(db_path: Path) -> None:
    """`await wf(args)` records the workflow under its default module.qualname name."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def add(a: int, b: int) -> int:
        return a + b

    async with rt:
        assert await add(2, 3) == 5
        [status] = await rt.list_workflows()
    assert status.status == litewf.Status.SUCCESS
    assert status.name == f"{__name__}.{add.fn.__qualname__}"
    assert status.name.endswith("test_awaiting_a_workflow_starts_it_and_waits.<locals>.add")


async def test_retrieve_workflow_and_unknown_ids(db_path: Path) -> None:
    """retrieve_workflow gives a working handle; unknown IDs raise WorkflowNotFoundError."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="hello")
    async def hello(who: str) -> str:
        return f"hello {who}"

    async with rt:
        started = await rt.start_workflow(hello, "ann")
        h = await rt.retrieve_workflow(started.workflow_id)
        assert h.workflow_id == started.workflow_id
        assert await h.get_result(timeout=WAIT) == "hello ann"
        with pytest.raises(litewf.WorkflowNotFoundError) as info:
            await rt.retrieve_workflow("no-such-id")
        assert info.value.workflow_id == "no-such-id"
        for call in (rt.cancel_workflow, rt.resume_workflow):
            with pytest.raises(litewf.WorkflowNotFoundError):
                await call("no-such-id")


# -- status records and results ----------------------------------------------------------------


async def test_status_record_fields(db_path: Path) -> None:
    """WorkflowStatus is frozen, its datetimes are UTC-aware, Status compares to plain str."""
    gate = anyio.Event()
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="waits")
    async def waits() -> None:
        await gate.wait()

    async with rt:
        before = datetime.now(UTC)
        h = await rt.start_workflow(waits, workflow_id="w-1")
        running = await h.get_status()
        after = datetime.now(UTC)
        gate.set()
        await h.get_result(timeout=WAIT)
        done = await h.get_status()

    assert running.workflow_id == "w-1" and running.name == "waits"
    assert running.status == "PENDING" and running.status is litewf.Status.PENDING
    assert running.executor_id == rt.executor_id
    assert (running.recovery_attempts, running.error_type, running.error_message) == (0, None, None)
    for stamp in (running.created_at, running.updated_at, done.created_at, done.updated_at):
        assert stamp.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= running.created_at <= after + timedelta(seconds=1)
    assert done.created_at == running.created_at
    assert done.updated_at >= done.created_at
    assert done.status == "SUCCESS" and isinstance(done.status, str)
    assert done.executor_id is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        done.status = litewf.Status.ERROR  # type: ignore[misc]


async def test_get_result_timeout_is_builtin_and_workflow_keeps_running(db_path: Path) -> None:
    """get_result(timeout) raises the builtin TimeoutError; the workflow still finishes later."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="patient")
    async def patient() -> str:
        note = await rt.recv("go", timeout=60)
        return f"got {note}"

    async with rt:
        h = await rt.start_workflow(patient)
        with pytest.raises(TimeoutError):
            await h.get_result(timeout=0.2)
        assert (await h.get_status()).status == "PENDING"
        await rt.send(h.workflow_id, "ping", topic="go")
        assert await h.get_result(timeout=WAIT) == "got ping"


async def test_builtin_exception_is_recorded_and_reraised(db_path: Path) -> None:
    """A workflow raising ValueError ends ERROR with "ValueError"; get_result raises the same."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="fails")
    async def fails(n: int) -> None:
        raise ValueError(f"bad order {n}")

    async with rt:
        h = await rt.start_workflow(fails, 7)
        with pytest.raises(ValueError, match=r"^bad order 7$") as info:
            await h.get_result(timeout=WAIT)
        assert type(info.value) is ValueError
        status = await h.get_status()
    assert status.status == "ERROR"
    assert (status.error_type, status.error_message) == ("ValueError", "bad order 7")
    assert status.executor_id is None


async def test_custom_exception_type_is_module_qualified(db_path: Path) -> None:
    """A user exception is stored as module.Class and rebuilt as that class with its message."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="declines")
    async def declines() -> None:
        raise PaymentDeclined(402, "no funds")

    async with rt:
        h = await rt.start_workflow(declines)
        with pytest.raises(PaymentDeclined) as info:
            await h.get_result(timeout=WAIT)
        status = await h.get_status()
    assert str(info.value) == "declined 402: no funds"
    assert status.error_type == f"{__name__}.PaymentDeclined"
    assert status.error_message == "declined 402: no funds"


def make_vanishing_error(
    monkeypatch: pytest.MonkeyPatch, module_name: str, probe_dir: Path, marker: Path
) -> type[Exception]:
    """An exception class in a module that exists only in sys.modules, for now.

    A real file of that module name is put on sys.path too: importing it would create
    ``marker``, so a test can prove the stored type was never imported.
    """
    module = types.ModuleType(module_name)
    cls: type[Exception] = type("Vanished", (Exception,), {"__module__": module_name})
    setattr(module, "Vanished", cls)  # noqa: B010 - a module built at run time
    monkeypatch.setitem(sys.modules, module_name, module)
    probe_dir.mkdir()
    (probe_dir / f"{module_name}.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Vanished(Exception):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(probe_dir))
    return cls


async def test_exception_class_not_imported_becomes_workflow_failed_error(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored error whose class is not in sys.modules reads back as WorkflowFailedError.

    Its module is importable from sys.path, yet it is never imported (a tampered database
    must not be able to load code).
    """
    marker = tmp_path / "imported"
    vanished = make_vanishing_error(monkeypatch, "litewf_vanishing_wf", tmp_path / "m", marker)
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="raises_vanished")
    async def raises_vanished() -> None:
        raise vanished("gone away")

    async with rt:
        h = await rt.start_workflow(raises_vanished)
        with pytest.raises(vanished):
            await h.get_result(timeout=WAIT)
        monkeypatch.delitem(sys.modules, "litewf_vanishing_wf")
        with pytest.raises(litewf.WorkflowFailedError) as info:
            await h.get_result(timeout=WAIT)
        status = await h.get_status()
    assert info.value.error_type == "litewf_vanishing_wf.Vanished"
    assert info.value.error_message == "gone away"
    assert status.error_type == "litewf_vanishing_wf.Vanished"
    assert status.error_message == "gone away"
    assert not marker.exists()
    assert "litewf_vanishing_wf" not in sys.modules


# -- serialization ---------------------------------------------------------------------------


async def test_arguments_arrive_decoded_on_first_run_and_replay(db_path: Path) -> None:
    """A tuple argument arrives as a list (int dict keys as str) on the first run and replay."""
    seen: list[list[Any]] = []

    def build(gate: anyio.Event) -> tuple[litewf.Runtime, litewf.Workflow[..., Any]]:
        rt = litewf.Runtime(db_path)

        @rt.workflow(name="echo")
        async def echo(pair: Any, mapping: Any, *, flag: Any) -> Any:
            seen.append([pair, mapping, flag])
            reached.set()
            await gate.wait()  # an in-memory wait: nothing is being written at shutdown
            return [pair, mapping, flag]

        return rt, echo

    reached = anyio.Event()
    rt, echo = build(anyio.Event())  # a gate never opened: the first run stops there
    async with rt:
        await rt.start_workflow(echo, (1, 2), {1: "a"}, flag=(True,), workflow_id="echo-1")
        await wait_set(reached)
    assert stored_row(db_path, "echo-1") == ("PENDING", None)
    rt2, _ = build(opened())
    async with rt2:
        result = await (await rt2.retrieve_workflow("echo-1")).get_result(timeout=WAIT)
    expected = [[1, 2], {"1": "a"}, [True]]
    assert seen == [expected, expected]
    assert type(seen[0][0]) is list
    assert result == expected


async def test_unserializable_arguments_store_nothing(db_path: Path) -> None:
    """Arguments JSON cannot store (objects, NaN) raise SerializationError; no row is written."""
    runs: list[Any] = []
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="takes")
    async def takes(value: Any) -> None:
        runs.append(value)

    async with rt:
        with pytest.raises(litewf.SerializationError):
            await rt.start_workflow(takes, object(), workflow_id="bad-1")
        with pytest.raises(litewf.SerializationError):
            await rt.start_workflow(takes, value=float("nan"), workflow_id="bad-2")
        with pytest.raises(litewf.SerializationError):
            await takes({"point": Point(1, 2)})
        with pytest.raises(litewf.WorkflowNotFoundError):
            await rt.retrieve_workflow("bad-1")
        assert await rt.list_workflows() == []
    assert query(db_path, "SELECT count(*) FROM workflows") == [(0,)]
    assert runs == []


async def test_unserializable_return_value_ends_error(db_path: Path) -> None:
    """A result JSON cannot store (an object, NaN) ends the workflow ERROR, SerializationError."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="returns")
    async def returns(kind: str) -> Any:
        return object() if kind == "object" else float("nan")

    async with rt:
        for kind in ("object", "nan"):
            h = await rt.start_workflow(returns, kind)
            with pytest.raises(litewf.SerializationError):
                await h.get_result(timeout=WAIT)
            status = await h.get_status()
            assert status.status == "ERROR"
            assert status.error_type == "litewf.SerializationError"
            assert status.error_message and "returns" in status.error_message


async def test_pickle_serializer_is_an_opt_in_for_custom_objects(db_path: Path) -> None:
    """With PickleSerializer a custom object is a valid argument, step result and result."""
    rt = litewf.Runtime(db_path, serializer=litewf.PickleSerializer())

    @rt.step(name="shift")
    async def shift(p: Point) -> Point:
        return Point(p.x + 1, p.y + 1)

    @rt.workflow(name="moves")
    async def moves(p: Point) -> list[Point]:
        return [p, await shift(p)]

    async with rt:
        result = await (await rt.start_workflow(moves, Point(1, 2))).get_result(timeout=WAIT)
    assert result == [Point(1, 2), Point(2, 3)]
    assert all(type(p) is Point for p in result)


# -- children ----------------------------------------------------------------------------------


async def test_child_workflow_is_an_operation_with_a_deterministic_id(db_path: Path) -> None:
    """A child started in a workflow keeps its ID on replay and is never started again;
    `await child(...)` inside a workflow returns the child's result."""
    child_runs: list[str | None] = []
    parent_saw: list[list[Any]] = []
    reached = anyio.Event()

    def build(gate: anyio.Event) -> tuple[litewf.Runtime, litewf.Workflow[[int], list[Any]]]:
        rt = litewf.Runtime(db_path)

        @rt.workflow(name="child")
        async def child(n: int) -> int:
            child_runs.append(rt.current_workflow_id())
            return n * 2

        @rt.workflow(name="parent")
        async def parent(n: int) -> list[Any]:
            h = await rt.start_workflow(child, n)
            first = await h.get_result(timeout=WAIT)
            second = await child(n + 1)  # started and awaited from inside the workflow
            parent_saw.append([h.workflow_id, first, second])
            reached.set()
            await gate.wait()
            return [first, second]

        return rt, parent

    rt, parent = build(anyio.Event())
    async with rt:
        await rt.start_workflow(parent, 3, workflow_id="parent-1")
        await wait_set(reached)
    assert stored_row(db_path, "parent-1") == ("PENDING", None)
    assert len(child_runs) == 2 and parent_saw[0][0] == child_runs[0]
    rt2, _ = build(opened())
    async with rt2:
        h = await rt2.retrieve_workflow("parent-1")
        assert await h.get_result(timeout=WAIT) == [6, 8]
        rows = await rt2.list_workflows()
    assert len(child_runs) == 2  # replay returned the recorded children
    assert parent_saw == [parent_saw[0], parent_saw[0]]
    assert {r.workflow_id for r in rows} == {"parent-1", *child_runs}
    assert {r.status for r in rows} == {litewf.Status.SUCCESS}
    # Two child starts and two recorded get_result reads.
    ops = query(
        db_path, "SELECT name FROM operations WHERE workflow_id = 'parent-1' ORDER BY op_id"
    )
    assert ops == [("start_workflow child",), ("get_result",)] * 2


# -- durable sleep -------------------------------------------------------------------------------


async def test_durable_sleep_wakes_at_the_original_time(db_path: Path) -> None:
    """The wake-up time is recorded once; after a relaunch the workflow wakes at that time."""
    woke: list[float] = []

    def build() -> tuple[litewf.Runtime, litewf.Workflow[[float], str]]:
        rt = litewf.Runtime(db_path)

        @rt.workflow(name="sleeper")
        async def sleeper(seconds: float) -> str:
            await rt.sleep(seconds)
            woke.append(time.time())
            return "awake"

        return rt, sleeper

    rt, sleeper = build()
    started = time.time()
    async with rt:
        await rt.start_workflow(sleeper, 4.0, workflow_id="nap")
        await anyio.sleep(2.0)  # real time must pass for this guarantee; nothing to await
    assert woke == []
    assert stored_row(db_path, "nap") == ("PENDING", None)
    [(name, output)] = query(
        db_path, "SELECT name, output FROM operations WHERE workflow_id = ?", ("nap",)
    )
    assert name == "sleep"
    wake_at = float(json.loads(output))
    assert started + 4.0 <= wake_at <= started + 5.0  # (bounds generous for a busy machine)
    rt2, _ = build()
    async with rt2:
        h = await rt2.retrieve_workflow("nap")
        assert await h.get_result(timeout=WAIT) == "awake"
    assert woke[0] >= wake_at - 0.05
    assert woke[0] - started < 5.5  # a sleep started afresh would end 6 s after the start


async def test_sleep_outside_a_workflow_is_plain(db_path: Path) -> None:
    """rt.sleep outside a workflow just sleeps: it records nothing."""
    rt = litewf.Runtime(db_path)
    async with rt:
        t0 = time.monotonic()
        await rt.sleep(0.1)
        assert time.monotonic() - t0 >= 0.09
        with pytest.raises(litewf.InvalidValueError):
            await rt.sleep(-1)
    assert query(db_path, "SELECT count(*) FROM operations") == [(0,)]


# -- context --------------------------------------------------------------------------------


async def test_current_workflow_id_inside_workflows_and_steps_only(db_path: Path) -> None:
    """current_workflow_id is the ID in a workflow and its steps (sync too), None outside."""
    rt = litewf.Runtime(db_path)

    @rt.step(name="async_step")
    async def async_step() -> str | None:
        return rt.current_workflow_id()

    @rt.step(name="sync_step")
    def sync_step() -> list[Any]:
        return [rt.current_workflow_id(), threading.get_ident()]

    @rt.workflow(name="who")
    async def who() -> list[Any]:
        return [rt.current_workflow_id(), await async_step(), (await sync_step())[0]]

    async with rt:
        assert rt.current_workflow_id() is None
        h = await rt.start_workflow(who, workflow_id="me")
        assert await h.get_result(timeout=WAIT) == ["me", "me", "me"]
        assert rt.current_workflow_id() is None
        assert await async_step() is None
        outside, thread = await sync_step()
    assert outside is None
    assert thread != threading.get_ident()


# -- management -----------------------------------------------------------------------------


async def test_cancel_running_workflow_then_resume(db_path: Path) -> None:
    """cancel_workflow stops a running workflow (CANCELLED, WorkflowCancelledError);
    resume_workflow runs it again without re-running its recorded step."""
    ran: list[str] = []
    reached = anyio.Event()
    stopped = anyio.Event()
    gate = anyio.Event()
    rt = litewf.Runtime(db_path)

    @rt.step(name="before")
    async def before() -> str:
        ran.append("before")
        return "b"

    @rt.workflow(name="cancellable")
    async def cancellable() -> str:
        try:
            first = await before()
            reached.set()
            await gate.wait()
            ran.append("after")
            return first
        finally:
            stopped.set()

    async with rt:
        h = await rt.start_workflow(cancellable, workflow_id="c-1")
        await wait_set(reached)
        await rt.cancel_workflow("c-1")
        await wait_set(stopped)
        status = await h.get_status()
        assert (status.status, status.executor_id) == ("CANCELLED", None)
        with pytest.raises(litewf.WorkflowCancelledError):
            await h.get_result(timeout=WAIT)
        assert ran == ["before"]
        gate.set()
        resumed = await rt.resume_workflow("c-1")
        assert await resumed.get_result(timeout=WAIT) == "b"
        assert (await h.get_status()).status == "SUCCESS"
    assert ran == ["before", "after"]


async def test_cancel_and_resume_of_a_finished_workflow_change_nothing(db_path: Path) -> None:
    """On a SUCCESS workflow cancel changes nothing and resume returns a handle, runs nothing."""
    runs: list[int] = []
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="quick")
    async def quick() -> int:
        runs.append(1)
        return len(runs)

    async with rt:
        h = await rt.start_workflow(quick)
        assert await h.get_result(timeout=WAIT) == 1
        done = await h.get_status()
        await rt.cancel_workflow(h.workflow_id)
        assert await h.get_status() == done
        resumed = await rt.resume_workflow(h.workflow_id)
        assert resumed.workflow_id == h.workflow_id
        assert await resumed.get_result(timeout=WAIT) == 1
        assert await h.get_status() == done
    assert runs == [1]


async def test_resume_of_a_running_workflow_leaves_it_running(db_path: Path) -> None:
    """resume_workflow on a PENDING workflow running here leaves it as it is: it finishes."""
    reached = anyio.Event()
    gate = anyio.Event()
    runs: list[int] = []
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="busy")
    async def busy() -> str:
        runs.append(1)
        reached.set()
        await gate.wait()
        return "done"

    async with rt:
        h = await rt.start_workflow(busy, workflow_id="busy-1")
        await wait_set(reached)
        again = await rt.resume_workflow("busy-1")
        assert again.workflow_id == "busy-1"
        gate.set()
        assert await h.get_result(timeout=3) == "done"
    assert runs == [1]


async def test_list_workflows_newest_first_with_filters_and_paging(db_path: Path) -> None:
    """list_workflows orders newest first and filters by status and name, with limit/offset."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="alpha")
    async def alpha(fail: bool) -> None:
        if fail:
            raise ValueError("failed on purpose")

    @rt.workflow(name="beta")
    async def beta() -> None:
        return None

    async with rt:
        for wid, wf, args in (
            ("w1", alpha, (False,)),
            ("w2", beta, ()),
            ("w3", alpha, (True,)),
            ("w4", beta, ()),
            ("w5", alpha, (False,)),
        ):
            h = await rt.start_workflow(wf, *args, workflow_id=wid)
            with contextlib.suppress(ValueError):
                await h.get_result(timeout=WAIT)

        async def ids(**filters: Any) -> list[str]:
            return [s.workflow_id for s in await rt.list_workflows(**filters)]

        assert await ids() == ["w5", "w4", "w3", "w2", "w1"]
        assert await ids(status="ERROR") == ["w3"]
        assert await ids(status=litewf.Status.SUCCESS) == ["w5", "w4", "w2", "w1"]
        assert await ids(name="beta") == ["w4", "w2"]
        assert await ids(name="alpha", status="SUCCESS") == ["w5", "w1"]
        assert await ids(limit=2) == ["w5", "w4"]
        assert await ids(limit=2, offset=1) == ["w4", "w3"]
        assert await ids(offset=4) == ["w1"]
        assert await ids(name="gamma") == []
        with pytest.raises(litewf.InvalidValueError):
            await rt.list_workflows(status="DONE")


@pytest.mark.sqlite_only
async def test_a_cancelled_call_leaves_the_runtime_usable(db_path: Path) -> None:
    """A call cancelled (by a user timeout) while waiting for the write lock stores nothing
    and leaves the runtime working: the next calls and the shutdown succeed."""
    gate = anyio.Event()
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="inbox")
    async def inbox() -> Any:
        await gate.wait()
        return await rt.recv("in", timeout=WAIT)

    async with rt:
        h = await rt.start_workflow(inbox, workflow_id="inbox-1")
        # Another connection holds the write lock, so the send waits inside BEGIN IMMEDIATE.
        with contextlib.closing(sqldb.connect(db_path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            with anyio.move_on_after(0.3) as scope:
                await rt.send("inbox-1", "lost", topic="in")
            other.execute("COMMIT")
        assert scope.cancelled_caught
        await rt.send("inbox-1", "kept", topic="in")
        gate.set()
        assert await h.get_result(timeout=WAIT) == "kept"


# -- misuse -------------------------------------------------------------------------------


async def test_workflow_only_calls_outside_a_workflow(db_path: Path) -> None:
    """set_event and recv outside a workflow raise NotInWorkflowError and store nothing."""
    rt = litewf.Runtime(db_path)
    async with rt:
        with pytest.raises(litewf.NotInWorkflowError):
            await rt.set_event("k", 1)
        with pytest.raises(litewf.NotInWorkflowError):
            await rt.recv("topic", timeout=0)
    assert query(db_path, "SELECT count(*) FROM events") == [(0,)]


async def test_calls_on_a_runtime_not_launched(db_path: Path) -> None:
    """Before launch and after shutdown, database calls raise RuntimeNotLaunchedError."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="noop")
    async def noop() -> None:
        return None

    async def check_all() -> None:
        calls = (
            lambda: rt.start_workflow(noop),
            lambda: noop(),
            lambda: rt.retrieve_workflow("x"),
            lambda: rt.list_workflows(),
            lambda: rt.cancel_workflow("x"),
            lambda: rt.resume_workflow("x"),
            lambda: rt.send("x", 1),
            lambda: rt.get_event("x", "k", timeout=0),
        )
        for call in calls:
            with pytest.raises(litewf.RuntimeNotLaunchedError):
                await call()

    await check_all()
    assert not await anyio.Path(db_path).exists()  # constructing a Runtime opens nothing
    async with rt:
        await noop()
        assert len(await rt.list_workflows()) == 1
    await check_all()


def test_two_workflows_with_one_name_are_refused(db_path: Path) -> None:
    """Registering a second workflow under a taken name raises InvalidValueError."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="dup")
    async def first() -> None:
        return None

    async def second() -> None:
        return None

    with pytest.raises(litewf.InvalidValueError, match="dup"):
        rt.workflow(name="dup")(second)

    def make() -> litewf.Workflow[[], None]:
        async def same() -> None:
            return None

        return rt.workflow()(same)

    make()
    with pytest.raises(litewf.InvalidValueError):
        make()  # same default module.qualname
    assert first.name == "dup"

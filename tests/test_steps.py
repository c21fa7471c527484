"""Steps and replay: recorded outcomes, retries, threads, numbering, non-determinism.

A restart here is in-process: the first runtime is shut down while its workflow waits on
an in-memory gate (so nothing is being written), then a new Runtime on the same file, with
the same functions under the same names, replays it. Body counters prove a recorded step
is never executed again.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import threading
import time
import types
from collections.abc import Awaitable, Callable
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


def operations(db_path: Path, workflow_id: str) -> list[tuple[int, str]]:
    """(op_id, name) of a workflow's recorded operations, in order."""
    rows = query(
        db_path,
        "SELECT op_id, name FROM operations WHERE workflow_id = ? ORDER BY op_id",
        (workflow_id,),
    )
    return [(int(op), str(name)) for op, name in rows]


def opened() -> anyio.Event:
    """A gate that is already open, for runs that should go straight through."""
    gate = anyio.Event()
    gate.set()
    return gate


class Restartable:
    """Runs one workflow in a first runtime up to a gate, then to the end in a second one.

    ``build(rt, gate)`` registers the same functions on each runtime and returns the
    workflow; the first run must call ``reached.set()`` right before ``await gate.wait()``.
    """

    def __init__(
        self,
        db_path: Path,
        build: Callable[[litewf.Runtime, anyio.Event], litewf.Workflow[..., Any]],
    ) -> None:
        self.db_path = db_path
        self.build = build
        self.reached = anyio.Event()

    async def first_run(self, workflow_id: str, *args: Any) -> None:
        rt = litewf.Runtime(self.db_path)
        wf = self.build(rt, anyio.Event())
        async with rt:
            await rt.start_workflow(wf, *args, workflow_id=workflow_id)
            with anyio.fail_after(WAIT):
                await self.reached.wait()
        rows = query(
            self.db_path,
            "SELECT status, executor_id FROM workflows WHERE workflow_id = ?",
            (workflow_id,),
        )
        assert rows == [("PENDING", None)]

    async def replay(self, workflow_id: str) -> Any:
        """Relaunch on the same file and return the workflow's result."""
        rt = litewf.Runtime(self.db_path)
        self.build(rt, opened())
        async with rt:
            h = await rt.retrieve_workflow(workflow_id)
            return await h.get_result(timeout=WAIT)


class Declined(Exception):
    """A user exception whose constructor does not take the message."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"declined {code}: {reason}")


# -- recorded outcomes ---------------------------------------------------------------------


async def test_step_value_is_replayed_never_rerun(db_path: Path) -> None:
    """A recorded step value is returned on replay; the body ran once."""
    calls: list[int] = []
    seen: list[Any] = []

    def build(rt: litewf.Runtime, gate: anyio.Event) -> litewf.Workflow[[int], Any]:
        @rt.step(name="price")
        async def price(n: int) -> dict[str, Any]:
            calls.append(n)
            return {"n": n, "total": n * 3, "at": time.time()}

        @rt.workflow(name="priced")
        async def priced(n: int) -> Any:
            value = await price(n)
            seen.append(value)
            r.reached.set()
            await gate.wait()
            return value

        return priced

    r = Restartable(db_path, build)
    await r.first_run("p-1", 5)
    result = await r.replay("p-1")
    assert calls == [5]
    assert seen == [seen[0], seen[0]]  # "at" would differ had the body run again
    assert result == seen[0] and result["total"] == 15
    assert operations(db_path, "p-1") == [(0, "price")]


async def test_step_exceptions_are_replayed_with_type_and_message(db_path: Path) -> None:
    """A recorded step exception is re-raised on replay, same type and message, body not rerun."""
    calls: list[str] = []
    seen: list[list[Any]] = []

    def build(rt: litewf.Runtime, gate: anyio.Event) -> litewf.Workflow[[], Any]:
        @rt.step(name="validate")
        async def validate() -> None:
            calls.append("validate")
            raise ValueError(f"invalid #{len(calls)}")

        @rt.step(name="charge")
        def charge() -> None:  # sync: runs in a worker thread
            calls.append("charge")
            raise Declined(402, "no funds")

        @rt.workflow(name="checks")
        async def checks() -> Any:
            caught: list[Any] = []
            for step in (validate, charge):
                try:
                    await step()
                except Exception as exc:  # noqa: BLE001 - what was raised is what we check
                    caught.append([type(exc), str(exc)])
            seen.append(caught)
            r.reached.set()
            await gate.wait()
            return [message for _, message in caught]

        return checks

    r = Restartable(db_path, build)
    await r.first_run("chk")
    assert await r.replay("chk") == ["invalid #1", "declined 402: no funds"]
    assert calls == ["validate", "charge"]
    expected = [[ValueError, "invalid #1"], [Declined, "declined 402: no funds"]]
    assert seen == [expected, expected]


async def test_key_error_is_replayed_as_key_error(db_path: Path) -> None:
    """A step's KeyError, the commonest lookup failure, replays as KeyError with its message."""
    seen: list[list[Any]] = []

    def build(rt: litewf.Runtime, gate: anyio.Event) -> litewf.Workflow[[], Any]:
        @rt.step(name="lookup")
        async def lookup() -> int:
            stock: dict[str, int] = {}
            return stock["sku-1"]

        @rt.workflow(name="looks_up")
        async def looks_up() -> str:
            try:
                await lookup()
            except Exception as exc:  # noqa: BLE001
                seen.append([type(exc), str(exc)])
            r.reached.set()
            await gate.wait()
            return "done"

        return looks_up

    r = Restartable(db_path, build)
    await r.first_run("k-1")
    assert await r.replay("k-1") == "done"
    assert seen == [[KeyError, "'sku-1'"], [KeyError, "'sku-1'"]]


async def test_step_exception_of_unimported_class_replays_as_workflow_failed_error(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On replay in a process without the exception's module, the step raises
    WorkflowFailedError carrying the original type name and message."""
    module = types.ModuleType("litewf_vanishing_step")
    vanished: type[Exception] = type("Gone", (Exception,), {"__module__": module.__name__})
    setattr(module, "Gone", vanished)  # noqa: B010 - a module built at run time
    monkeypatch.setitem(sys.modules, module.__name__, module)
    calls: list[int] = []
    seen: list[Any] = []

    def build(rt: litewf.Runtime, gate: anyio.Event) -> litewf.Workflow[[], Any]:
        @rt.step(name="vanishing")
        async def vanishing() -> None:
            calls.append(1)
            raise vanished("left the building")

        @rt.workflow(name="catches")
        async def catches() -> str:
            try:
                await vanishing()
            except litewf.WorkflowFailedError as exc:
                seen.append([exc.error_type, exc.error_message])
            except Exception as exc:  # noqa: BLE001
                seen.append([type(exc), str(exc)])
            r.reached.set()
            await gate.wait()
            return "done"

        return catches

    r = Restartable(db_path, build)
    await r.first_run("v-1")
    monkeypatch.delitem(sys.modules, module.__name__)
    assert await r.replay("v-1") == "done"
    assert calls == [1]
    assert seen == [
        [vanished, "left the building"],
        ["litewf_vanishing_step.Gone", "left the building"],
    ]


# -- retries --------------------------------------------------------------------------------


async def test_retries_are_extra_attempts_and_the_last_error_is_recorded(db_path: Path) -> None:
    """retries=2 runs the body 3 times; the third exception is recorded and replayed."""
    attempts: list[int] = []
    seen: list[str] = []

    def build(rt: litewf.Runtime, gate: anyio.Event) -> litewf.Workflow[[], Any]:
        @rt.step(name="flaky", retries=2, retry_interval=0.01)
        async def flaky() -> None:
            attempts.append(len(attempts) + 1)
            raise RuntimeError(f"attempt {len(attempts)}")

        @rt.workflow(name="tries")
        async def tries() -> str:
            try:
                await flaky()
            except RuntimeError as exc:
                seen.append(str(exc))
            r.reached.set()
            await gate.wait()
            return seen[-1]

        return tries

    r = Restartable(db_path, build)
    await r.first_run("r-1")
    assert await r.replay("r-1") == "attempt 3"
    assert attempts == [1, 2, 3]
    assert seen == ["attempt 3", "attempt 3"]


async def test_retry_waits_grow_by_backoff_until_success(db_path: Path) -> None:
    """A step that fails twice then succeeds: 3 attempts, waits >= interval, interval*backoff."""
    stamps: list[float] = []
    rt = litewf.Runtime(db_path)

    @rt.step(name="third_time", retries=5, retry_interval=0.05, backoff=3.0)
    async def third_time() -> str:
        stamps.append(time.monotonic())
        if len(stamps) < 3:
            raise ConnectionError("try again")
        return f"ok after {len(stamps)}"

    @rt.step(name="never_retried")
    async def never_retried() -> None:
        stamps.append(time.monotonic())
        raise ConnectionError("once only")

    @rt.workflow(name="persists")
    async def persists() -> str:
        return await third_time()

    async with rt:
        assert await persists() == "ok after 3"
        assert len(stamps) == 3
        assert stamps[1] - stamps[0] >= 0.05 - 0.01
        assert stamps[2] - stamps[1] >= 0.15 - 0.01  # no backoff would wait only 0.05
        with pytest.raises(ConnectionError):
            await never_retried()  # retries=0 (the default): exactly one attempt
    assert len(stamps) == 4


# -- how steps run -----------------------------------------------------------------------------


async def test_sync_steps_run_in_a_worker_thread_and_are_awaitable(db_path: Path) -> None:
    """A sync step returns an awaitable and runs off the event loop thread, in or out of
    a workflow; its result is recorded like any other."""
    loop_thread = threading.get_ident()
    rt = litewf.Runtime(db_path)

    @rt.step(name="blocking")
    def blocking(x: int) -> list[Any]:
        return [threading.get_ident(), x + 1]

    @rt.workflow(name="uses_sync")
    async def uses_sync() -> Any:
        call = blocking(1)
        awaitable = inspect.isawaitable(call)
        return [awaitable, *(await call)]

    async with rt:
        h = await rt.start_workflow(uses_sync, workflow_id="sync-1")
        awaitable, thread, value = await h.get_result(timeout=WAIT)
        outside = blocking(2)
        assert inspect.isawaitable(outside)
        outside_thread, outside_value = await outside
    assert awaitable is True and value == 2 and thread != loop_thread
    assert outside_value == 3 and outside_thread != loop_thread
    assert operations(db_path, "sync-1") == [(0, "blocking")]


async def test_step_outside_a_workflow_just_runs(db_path: Path) -> None:
    """Outside a workflow a step runs every time it is called and records nothing,
    launched runtime or not."""
    calls: list[int] = []
    rt = litewf.Runtime(db_path)

    @rt.step(name="plain")
    async def plain(n: int) -> tuple[int, int]:
        calls.append(n)
        return (n, rt.current_workflow_id() is None)

    assert list(await plain(1)) == [1, True]  # not launched: still runs, as a plain call
    assert not await anyio.Path(db_path).exists()
    async with rt:
        assert list(await plain(2)) == [2, True]
        assert list(await plain(2)) == [2, True]
    assert calls == [1, 2, 2]
    assert query(db_path, "SELECT count(*) FROM operations") == [(0,)]


async def test_steps_inside_steps_are_plain_calls(db_path: Path) -> None:
    """A step called by a step is not an operation: only the outer one is recorded, and
    replay runs neither. Workflow-only calls inside a step are refused."""
    inner_calls: list[int] = []
    outer_calls: list[int] = []
    inside: list[Any] = []

    def build(rt: litewf.Runtime, gate: anyio.Event) -> litewf.Workflow[[int], Any]:
        @rt.step(name="inner")
        async def inner(x: int) -> int:
            inner_calls.append(x)
            return x + 1

        @rt.step(name="outer")
        async def outer(x: int) -> int:
            outer_calls.append(x)
            inside.append(rt.current_workflow_id())
            try:
                await rt.recv("anything", timeout=0)
            except litewf.NotInWorkflowError:
                inside.append("recv refused")
            return await inner(await inner(x))

        @rt.workflow(name="nests")
        async def nests(x: int) -> int:
            value = await outer(x)
            r.reached.set()
            await gate.wait()
            return value

        return nests

    r = Restartable(db_path, build)
    await r.first_run("n-1", 1)
    assert await r.replay("n-1") == 3
    assert outer_calls == [1] and inner_calls == [1, 2]
    assert inside == ["n-1", "recv refused"]
    assert operations(db_path, "n-1") == [(0, "outer")]


# -- numbering and non-determinism ---------------------------------------------------------------


async def test_calls_rejected_by_argument_checks_take_no_operation_number(db_path: Path) -> None:
    """None values, bad timeouts, bad IDs and unserializable values fail before taking a
    number: the next step is operation 0 and replays as such."""
    calls: list[int] = []
    rejections: list[list[str]] = []

    async def rejected(call: Awaitable[Any]) -> str:
        try:
            await call
        except (litewf.InvalidValueError, litewf.SerializationError) as exc:
            return type(exc).__name__
        return "accepted"

    def build(rt: litewf.Runtime, gate: anyio.Event) -> litewf.Workflow[[], Any]:
        @rt.workflow(name="other")
        async def other(value: Any) -> None:
            return None

        @rt.step(name="numbered")
        async def numbered() -> int:
            calls.append(1)
            return 42

        @rt.workflow(name="careless")
        async def careless() -> int:
            me = rt.current_workflow_id()
            assert me is not None
            rejections.append(
                [
                    await rejected(rt.send(me, None, topic="t")),
                    await rejected(rt.send(me, object(), topic="t")),
                    await rejected(rt.set_event("k", None)),
                    await rejected(rt.set_event("k", float("nan"))),
                    await rejected(rt.recv("t", timeout=-1)),
                    await rejected(rt.get_event(me, "k", timeout=float("nan"))),
                    await rejected(rt.sleep(-1)),
                    await rejected(rt.start_workflow(other, 1, workflow_id="")),
                    await rejected(rt.start_workflow(other, object())),
                ]
            )
            value = await numbered()
            r.reached.set()
            await gate.wait()
            return value

        return careless

    r = Restartable(db_path, build)
    await r.first_run("num-1")
    assert operations(db_path, "num-1") == [(0, "numbered")]
    assert await r.replay("num-1") == 42
    assert calls == [1]
    expected = [
        "InvalidValueError",
        "SerializationError",
        "InvalidValueError",
        "SerializationError",
        "InvalidValueError",
        "InvalidValueError",
        "InvalidValueError",
        "InvalidValueError",
        "SerializationError",
    ]
    assert rejections == [expected, expected]
    assert query(db_path, "SELECT count(*) FROM workflows") == [(1,)]
    assert query(db_path, "SELECT count(*) FROM messages") == [(0,)]
    assert query(db_path, "SELECT count(*) FROM events") == [(0,)]


async def test_nondeterminism_ends_error_and_resume_after_fix_succeeds(db_path: Path) -> None:
    """Replay meeting another operation name at a number ends the workflow ERROR with
    NonDeterminismError (even if the code swallows it); after the code is fixed,
    resume_workflow replays it to SUCCESS without re-running the recorded step."""
    calls: list[str] = []
    reached = anyio.Event()

    def build(version: str, gate: anyio.Event) -> tuple[litewf.Runtime, litewf.Workflow[[], str]]:
        rt = litewf.Runtime(db_path)

        @rt.step(name="charge")
        async def charge() -> str:
            calls.append("charge")
            return "charged"

        @rt.step(name="refund")
        async def refund() -> str:
            calls.append("refund")
            return "refunded"

        @rt.workflow(name="order")
        async def order() -> str:
            if version == "changed":
                with contextlib.suppress(Exception):
                    await refund()  # operation 0 was recorded as "charge"
                return "swallowed"
            first = await charge()
            reached.set()
            await gate.wait()
            return first

        return rt, order

    rt, order = build("original", anyio.Event())
    async with rt:
        await rt.start_workflow(order, workflow_id="o-1")
        with anyio.fail_after(WAIT):
            await reached.wait()

    async with build("changed", opened())[0] as rt2:
        h = await rt2.retrieve_workflow("o-1")
        with pytest.raises(litewf.NonDeterminismError) as info:
            await h.get_result(timeout=WAIT)
        status = await h.get_status()
    assert status.status == "ERROR"
    assert status.error_type == "litewf.NonDeterminismError"
    assert status.error_message == str(info.value)
    assert "'charge'" in str(info.value) and "'refund'" in str(info.value)
    assert calls == ["charge"]

    async with build("original", opened())[0] as rt3:
        assert (await (await rt3.retrieve_workflow("o-1")).get_status()).status == "ERROR"
        h = await rt3.resume_workflow("o-1")
        assert await h.get_result(timeout=WAIT) == "charged"
        status = await h.get_status()
    assert (status.status, status.error_type, status.error_message) == ("SUCCESS", None, None)
    assert calls == ["charge"]


# -- serialization of step results --------------------------------------------------------------


async def test_step_results_are_decoded_on_first_run_and_replay(db_path: Path) -> None:
    """A step returning a tuple hands back a list (int keys as str) on the first run too."""
    seen: list[Any] = []

    def build(rt: litewf.Runtime, gate: anyio.Event) -> litewf.Workflow[[], Any]:
        @rt.step(name="pair")
        async def pair() -> Any:
            return (1, (2, 3), {4: "four"})

        @rt.workflow(name="pairs")
        async def pairs() -> Any:
            value = await pair()
            seen.append([value, type(value)])
            r.reached.set()
            await gate.wait()
            return value

        return pairs

    r = Restartable(db_path, build)
    await r.first_run("t-1")
    assert await r.replay("t-1") == [1, [2, 3], {"4": "four"}]
    expected = [[1, [2, 3], {"4": "four"}], list]
    assert seen == [expected, expected]


async def test_unserializable_step_result_is_its_recorded_outcome(db_path: Path) -> None:
    """A step returning what JSON cannot store (an object, NaN) fails with SerializationError,
    recorded as its outcome: replay raises it again without running the body."""
    calls: list[str] = []
    seen: list[list[str]] = []

    def build(rt: litewf.Runtime, gate: anyio.Event) -> litewf.Workflow[[], Any]:
        @rt.step(name="opaque")
        async def opaque() -> object:
            calls.append("opaque")
            return object()

        @rt.step(name="not_a_number")
        async def not_a_number() -> float:
            calls.append("nan")
            return float("nan")

        @rt.workflow(name="stores")
        async def stores() -> str:
            caught: list[str] = []
            for step in (opaque, not_a_number):
                try:
                    await step()
                except litewf.SerializationError as exc:
                    caught.append(str(exc))
            seen.append(caught)
            r.reached.set()
            await gate.wait()
            return "done"

        return stores

    r = Restartable(db_path, build)
    await r.first_run("u-1")
    assert operations(db_path, "u-1") == [(0, "opaque"), (1, "not_a_number")]
    assert await r.replay("u-1") == "done"
    assert calls == ["opaque", "nan"]
    assert len(seen) == 2 and len(seen[0]) == 2
    assert seen[1] == seen[0]
    assert "opaque" in seen[0][0] and "not_a_number" in seen[0][1]


def test_builtin_operation_names_are_reserved(db_path: Path) -> None:
    """A step may not take a name litewf records for its own calls (sleep, send, ...)."""
    rt = litewf.Runtime(db_path)
    for name in ("sleep", "send", "recv", "set_event", "get_event", "start_workflow x"):
        with pytest.raises(litewf.InvalidValueError, match="reserved"):

            @rt.step(name=name)
            async def clash() -> None:
                pass

"""Streams (DESIGN.md Part 2): ordered values per (workflow, key), read from any process,
written exactly once by workflows and never repeated by steps that run again."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from litewf import testing
from litewf.testing import VirtualClock, crash_now
from tests import procs, sqldb
from tests.children.streams import register

WAIT = 30.0


async def collect(
    source: litewf.Runtime | litewf.Client,
    workflow_id: str,
    key: str = "tok",
    offset: int = 0,
    timeout: float | None = WAIT,
) -> list[Any]:
    return [v async for v in source.read_stream(workflow_id, key, offset=offset, timeout=timeout)]


async def take(source: litewf.Runtime | litewf.Client, workflow_id: str, n: int) -> list[Any]:
    """The first ``n`` values of stream ``tok`` (waiting for them), then stop reading."""
    got: list[Any] = []
    async for value in source.read_stream(workflow_id, "tok", timeout=WAIT):
        got.append(value)
        if len(got) == n:
            break
    return got


async def test_values_in_order_and_the_end_at_close(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="w")
    async def writer(n: int) -> str:
        for i in range(n):
            await rt.write_stream("tok", {"i": i})
        await rt.close_stream("tok")
        await rt.recv("never", timeout=WAIT)  # still running: the close ends the readers
        return "done"

    async with rt:
        await rt.start_workflow(writer, 5, workflow_id="w")
        assert await collect(rt, "w") == [{"i": i} for i in range(5)]
        assert await collect(rt, "w", offset=3) == [{"i": 3}, {"i": 4}]
        assert await collect(rt, "w", offset=5) == []
        assert await collect(rt, "w", offset=99) == []
        kinds = [step.kind for step in await rt.list_steps("w")]
        assert kinds[:6] == ["write_stream"] * 5 + ["close_stream"]


async def test_a_reader_gets_values_as_they_are_written(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="w")
    async def writer() -> None:
        while (value := await rt.recv("next", timeout=WAIT)) != "stop":
            await rt.write_stream("tok", value)
        await rt.close_stream("tok")

    async with rt:
        await rt.start_workflow(writer, workflow_id="w")
        got: list[Any] = []
        async with anyio.create_task_group() as tg:

            async def read() -> None:
                async for value in rt.read_stream("w", "tok", timeout=WAIT):
                    got.append(value)
                    if len(got) < 3:
                        await rt.send("w", f"v{len(got)}", topic="next")
                await rt.send("w", "never read", topic="next")  # harmless: it has ended

            tg.start_soon(read)
            await rt.send("w", "v0", topic="next")
            with anyio.fail_after(WAIT):
                while len(got) < 3:  # noqa: ASYNC110 - the reader's progress, no event
                    await anyio.sleep(0.005)
            await rt.send("w", "stop", topic="next")
        assert got == ["v0", "v1", "v2"]


async def test_the_stream_ends_when_the_workflow_finishes_unclosed(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="w")
    async def writer() -> str:
        await rt.write_stream("tok", 1)
        await rt.recv("go", timeout=WAIT)
        await rt.write_stream("tok", 2)
        return "done"

    async with rt:
        await rt.start_workflow(writer, workflow_id="w")
        values: list[Any] = []
        async with anyio.create_task_group() as tg:

            async def read() -> None:
                values.extend(await collect(rt, "w"))

            tg.start_soon(read)
            await rt.send("w", "go", topic="go")
        assert values == [1, 2]
        assert await collect(rt, "w", key="other") == []  # finished: no stream is the end


async def test_a_reconnect_at_every_offset_sees_each_value_once(db_path: Path) -> None:
    """Of a 1,000-value stream, a reader that stops after k values (every k) and reconnects
    at the next offset gets every value exactly once, in order."""
    rt = litewf.Runtime(db_path, durability="normal")
    count = 1000

    @rt.step(name="gen")
    async def gen() -> None:
        for i in range(count):
            await rt.write_stream("tok", i)

    @rt.workflow(name="w")
    async def writer() -> None:
        await gen()
        await rt.close_stream("tok")

    async with rt:
        h = await rt.start_workflow(writer, workflow_id="w")
        await h.get_result(timeout=WAIT)
        async with litewf.Client(db_path) as client:
            for k in range(count + 1):
                first: list[Any] = []
                if k:
                    async for value in client.read_stream("w", "tok"):
                        first.append(value)
                        if len(first) == k:
                            break  # the connection drops here
                rest = await collect(client, "w", offset=len(first))
                assert first + rest == list(range(count)), k


async def test_writes_after_close_raise_and_close_twice_is_nothing(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="w")
    async def writer() -> list[str]:
        seen = []
        await rt.write_stream("tok", "a")
        await rt.close_stream("tok")
        await rt.close_stream("tok")
        try:
            await rt.write_stream("tok", "b")
        except litewf.StreamClosedError as exc:
            seen.append(f"{type(exc).__name__}: {exc.workflow_id} {exc.key}")
        try:
            await rt.write_stream("tok", None)
        except litewf.InvalidValueError as exc:
            seen.append(str(exc)[:4])
        return seen

    async with rt:
        h = await rt.start_workflow(writer, workflow_id="w")
        assert await h.get_result(timeout=WAIT) == ["StreamClosedError: w tok", "None"]
        assert await collect(rt, "w") == ["a"]
        with pytest.raises(litewf.NotInWorkflowError):
            await rt.write_stream("tok", 1)
        with pytest.raises(litewf.NotInWorkflowError):
            await rt.close_stream("tok")
        with pytest.raises(litewf.WorkflowNotFoundError):
            await collect(rt, "nobody")


async def test_a_step_streams_many_values_in_order_and_closed_errors_surface(
    db_path: Path,
) -> None:
    """A step's writes are batched but committed in call order, before its result; a
    write to a stream it closed raises StreamClosedError in the step."""
    rt = litewf.Runtime(db_path)
    count = 5000

    @rt.step(name="gen")
    async def gen() -> str:
        for i in range(count):
            await rt.write_stream("tok", i)
        await rt.close_stream("tok")
        await rt.write_stream("tok", "late")
        try:
            await rt.write_stream("tok", "later")  # the error shows at the latest here
        except litewf.StreamClosedError:
            return "refused"
        return "accepted"

    @rt.workflow(name="w")
    async def writer() -> str:
        return await gen()

    async with rt:
        h = await rt.start_workflow(writer, workflow_id="w")
        assert await collect(rt, "w") == list(range(count))
        try:
            outcome = await h.get_result(timeout=WAIT)
        except litewf.StreamClosedError:
            outcome = "raised when the step's body ended"
        assert outcome in ("refused", "raised when the step's body ended")


async def test_step_writes_are_not_repeated_by_a_retry(db_path: Path) -> None:
    """A retried step's new attempt writes past what the failed attempt wrote, no more."""
    rt = litewf.Runtime(db_path)
    attempts: list[int] = []

    @rt.step(name="gen", retries=1, retry_interval=0)
    async def gen() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            await rt.write_stream("tok", "x0")
            await rt.write_stream("tok", "x1")
            raise RuntimeError("first attempt fails after two writes")
        for value in ("y0", "y1", "y2"):
            await rt.write_stream("tok", value)

    @rt.workflow(name="w")
    async def writer() -> None:
        await gen()
        await rt.close_stream("tok")

    async with rt:
        h = await rt.start_workflow(writer, workflow_id="w")
        await h.get_result(timeout=WAIT)
        assert await collect(rt, "w") == ["x0", "x1", "y2"]


async def test_a_step_killed_mid_stream_is_not_repeated(db_path: Path, tmp_path: Path) -> None:
    """A process is SIGKILLed inside a step after two stream writes; recovery runs the step
    again (writing other values): readers, one following the stream across the crash in
    another process, see the first run's two values and then only the new third."""
    child = procs.spawn("streams", "step_writer", db_path, tmp_path)
    await procs.wait_for_file(tmp_path / "wrote", child)
    reader = procs.spawn("streams", "reader", db_path, tmp_path, "w", "tok", "0")
    async with litewf.Client(db_path) as client:
        assert await take(client, "w", 2) == ["a0", "a1"]  # committed
    procs.kill(child)
    child.communicate()
    rt = litewf.Runtime(db_path)
    flow = register(rt, ["b0", "b1", "b2"], None)
    async with rt:
        h = await rt.retrieve_workflow(flow.name and "w")
        assert await h.get_result(timeout=WAIT) == "done"
        assert await collect(rt, "w") == ["a0", "a1", "b2"]
    out = await procs.finish_async(reader)
    assert json.loads(out) == ["a0", "a1", "b2"]


async def test_a_simulated_crash_in_a_step_matches(db_path: Path, tmp_path: Path) -> None:
    """The same with litewf.testing.crash_now while the step waits after its writes."""
    rt = litewf.Runtime(db_path)
    flow = register(rt, ["a0", "a1"], tmp_path / "never")
    async with rt:
        await rt.start_workflow(flow, workflow_id="w")
        await procs.wait_for_file(tmp_path / "wrote")
        assert await take(rt, "w", 2) == ["a0", "a1"]  # committed
        crash_now(rt)
    rt2 = litewf.Runtime(db_path)
    register(rt2, ["b0", "b1", "b2"], None)
    async with rt2:
        h = await rt2.retrieve_workflow("w")
        assert await h.get_result(timeout=WAIT) == "done"
        assert await collect(rt2, "w") == ["a0", "a1", "b2"]


async def test_a_recorded_read_replays_what_it_saw(db_path: Path) -> None:
    """Inside a workflow each value read is recorded: after the writer is garbage
    collected, a replay of the reader still sees the values (and the end) it saw."""

    def build() -> tuple[litewf.Runtime, litewf.Workflow[[], None], litewf.Workflow[[], Any]]:
        rt = litewf.Runtime(db_path)

        @rt.workflow(name="writer")
        async def writer() -> None:
            await rt.write_stream("tok", "one")
            await rt.write_stream("tok", "two")
            await rt.close_stream("tok")

        @rt.workflow(name="reader")
        async def reader() -> Any:
            got = [v async for v in rt.read_stream("src", "tok")]
            await rt.recv("go", timeout=WAIT)
            return got

        return rt, writer, reader

    rt, writer, reader = build()
    async with rt:
        await (await rt.start_workflow(writer, workflow_id="src")).get_result(timeout=WAIT)
        await rt.start_workflow(reader, workflow_id="r")
        with anyio.fail_after(WAIT):
            while testing.waiting(rt) == 0:  # noqa: ASYNC110 - the reader reached recv
                await anyio.sleep(0.005)
        counts = await rt.garbage_collect(older_than=0)
        assert (counts.workflows, counts.streams) == (1, 3)
        crash_now(rt)
    rt2, _, _ = build()
    async with rt2:
        await rt2.send("r", "go", topic="go")
        h = await rt2.retrieve_workflow("r")
        assert await h.get_result(timeout=WAIT) == ["one", "two"]
        steps = await rt2.list_steps("r")
        assert [s.kind for s in steps][:3] == ["read_stream"] * 3


async def test_the_timeout_ends_the_read_quietly_on_a_virtual_clock(db_path: Path) -> None:
    clock = VirtualClock(auto_advance=True)
    rt = litewf.Runtime(db_path, clock=clock)

    @rt.workflow(name="w")
    async def writer() -> None:
        await rt.write_stream("tok", "first")
        await rt.sleep(86400)
        await rt.write_stream("tok", "next day")

    async with rt:
        await rt.start_workflow(writer, workflow_id="w")
        start = clock.time()
        assert await collect(rt, "w", timeout=3600) == ["first"]  # an hour with nothing new
        assert clock.time() - start == 3600
        assert await collect(rt, "w", offset=1, timeout=None) == ["next day"]


async def test_a_client_in_another_process_follows_a_stream(db_path: Path, tmp_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="w")
    async def writer() -> None:
        for i in range(20):
            await rt.write_stream("tok", i)
            await rt.sleep(0.001)
        await rt.close_stream("tok")

    async with rt:
        await rt.start_workflow(writer, workflow_id="w")
        reader = procs.spawn("streams", "reader", db_path, tmp_path, "w", "tok", "0")
        out = await procs.finish_async(reader)
    assert json.loads(out) == list(range(20))


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((1, "tok"), litewf.InvalidValueError),  # workflow ID not a string
        (("w", "a\x00b"), litewf.InvalidValueError),
        (("w", 5), litewf.InvalidValueError),
        (("w", "tok", -1), litewf.InvalidValueError),
        (("w", "tok", True), litewf.InvalidValueError),
        (("w", "tok", 1.5), litewf.InvalidValueError),
        (("w", "tok", 2**63), litewf.InvalidValueError),  # past SQLite's integers
        (("w", "tok", 0, math.nan), litewf.InvalidValueError),
        (("w", "tok", 0, -1), litewf.InvalidValueError),
    ],
)
async def test_bad_read_arguments_are_refused(
    db_path: Path, args: tuple[Any, ...], error: type[Exception]
) -> None:
    async with litewf.Runtime(db_path) as rt:
        with pytest.raises(error):
            async for _ in rt.read_stream(*args):
                pass


@pytest.mark.sqlite_only
async def test_a_tampered_value_is_a_corrupt_database_error(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="w")
    async def writer() -> None:
        await rt.write_stream("tok", "fine")
        await rt.write_stream("tok", "to be damaged")
        await rt.close_stream("tok")

    async with rt:
        await (await rt.start_workflow(writer, workflow_id="w")).get_result(timeout=WAIT)
    con = sqldb.connect(db_path)
    with con:
        con.execute("UPDATE streams SET value = x'00ff' WHERE position = 1")
    con.close()
    async with litewf.Runtime(db_path) as rt2:
        with pytest.raises(litewf.CorruptDatabaseError) as caught:
            await collect(rt2, "w")
        assert (caught.value.workflow_id, caught.value.column) == ("w", "streams.value")

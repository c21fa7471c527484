"""Nesting bound (issue 10, section 6): whatever a write accepts, every reader decodes.

A list nested 978 deep used to be accepted by ``send`` (the encoder ran at a shallow call
depth) and then fail to decode in ``recv`` (deeper, past the recursion limit), ending the
workflow ERROR with the message consumed. Now values nested past ``MAX_VALUE_DEPTH`` are
refused with ``SerializationError`` on every write path before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import litewf
from litewf._serialization import MAX_VALUE_DEPTH, encode_exception, loads_checked
from tests import sqldb

BOUND = MAX_VALUE_DEPTH


def nested(depth: int) -> list[Any]:
    """A list nested ``depth`` lists deep around a string."""
    value: list[Any] = ["core"]
    for _ in range(depth - 1):
        value = [value]
    return value


def depth_of(value: Any) -> int:
    depth = 0
    while isinstance(value, list):
        depth, value = depth + 1, value[0]
    return depth


def rows(db: Path, table: str) -> int:
    ((count,),) = sqldb.query(db, f"SELECT count(*) FROM {table}")
    return int(count)


def test_the_bound_is_well_below_the_recursion_limit() -> None:
    assert nested(BOUND) != nested(BOUND + 1)
    assert depth_of(nested(BOUND)) == BOUND
    assert BOUND <= 200


async def test_a_978_deep_send_is_refused_and_the_bound_is_received(db_path: Path) -> None:
    """The 978-deep list of the issue and BOUND + 1 are refused by ``send`` (Runtime and
    Client) with nothing stored; a list exactly BOUND deep is received whole by ``recv``."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="n.sink")
    async def sink() -> int:
        return depth_of(await rt.recv(timeout=60))

    async with rt:
        handle = await rt.start_workflow(sink, workflow_id="sink")
        for depth in (978, BOUND + 1):
            with pytest.raises(litewf.SerializationError, match=f"more than {BOUND} deep"):
                await rt.send("sink", nested(depth))
        async with litewf.Client(db_path) as client:
            with pytest.raises(litewf.SerializationError, match="flatten it"):
                await client.send("sink", nested(978))
        assert rows(db_path, "messages") == 0
        await rt.send("sink", nested(BOUND))
        assert await handle.get_result(timeout=30) == BOUND


async def test_the_bound_on_events_arguments_results_and_step_outputs(db_path: Path) -> None:
    """BOUND deep is stored and read back; BOUND + 1 is refused, on ``set_event``,
    ``start_workflow`` arguments, a workflow's result, a step's result and a ``send``
    inside a workflow."""
    rt = litewf.Runtime(db_path)

    @rt.step(name="n.make")
    async def make(depth: int) -> list[Any]:
        return nested(depth)

    @rt.workflow(name="n.events")
    async def publish(depth: int) -> None:
        await rt.set_event("value", nested(depth))

    @rt.workflow(name="n.args")
    async def takes(value: list[Any]) -> int:
        return depth_of(value)

    @rt.workflow(name="n.result")
    async def gives(depth: int) -> list[Any]:
        return nested(depth)

    @rt.workflow(name="n.step")
    async def steps(depth: int) -> int:
        return depth_of(await make(depth))

    @rt.workflow(name="n.send")
    async def sends(depth: int) -> None:
        await rt.send("sink", nested(depth))

    @rt.workflow(name="n.sink")
    async def sink() -> int:
        return depth_of(await rt.recv(timeout=60))

    async with rt:
        ok = await rt.start_workflow(publish, BOUND)
        await ok.get_result(timeout=30)
        assert depth_of(await rt.get_event(ok.workflow_id, "value", timeout=5)) == BOUND
        bad = await rt.start_workflow(publish, BOUND + 1)
        with pytest.raises(litewf.SerializationError, match="event 'value'"):
            await bad.get_result(timeout=30)
        assert await rt.get_all_events(bad.workflow_id) == {}

        assert await (await rt.start_workflow(takes, nested(BOUND))).get_result(30) == BOUND
        before = rows(db_path, "workflows")
        with pytest.raises(litewf.SerializationError, match="arguments"):
            await rt.start_workflow(takes, nested(BOUND + 1))
        assert rows(db_path, "workflows") == before

        assert depth_of(await (await rt.start_workflow(gives, BOUND)).get_result(30)) == BOUND
        with pytest.raises(litewf.SerializationError, match="result of workflow"):
            await (await rt.start_workflow(gives, BOUND + 1)).get_result(30)

        assert await (await rt.start_workflow(steps, BOUND)).get_result(30) == BOUND
        with pytest.raises(litewf.SerializationError, match="result of step"):
            await (await rt.start_workflow(steps, BOUND + 1)).get_result(30)

        receiver = await rt.start_workflow(sink, workflow_id="sink")
        with pytest.raises(litewf.SerializationError, match="the message"):
            await (await rt.start_workflow(sends, BOUND + 1)).get_result(30)
        await (await rt.start_workflow(sends, BOUND)).get_result(30)
        assert await receiver.get_result(timeout=30) == BOUND


def test_reading_a_too_deep_stored_value_is_a_litewf_error() -> None:
    """A value nested past the recursion limit (only a tampered file can hold one) reads
    as SerializationError, not a bare RecursionError."""
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(litewf.SerializationError, match="cannot read stored message"):
        loads_checked(litewf.JsonSerializer(), deep, "message")


def test_an_exception_record_leaves_out_data_nested_past_the_bound() -> None:
    """An exception's args and attributes nested past the bound are left out of its
    record (type and message kept), so that every reader can decode the record; shallow
    ones are kept (before: stored whatever the depth, up to what json could not read)."""
    deep: list[Any] = []
    for _ in range(BOUND + 5):
        deep = [deep]
    error = ValueError("deep", deep)
    error.detail = deep  # type: ignore[attr-defined]
    record = json.loads(encode_exception(error))
    assert "args" not in record and "attributes" not in record
    assert record["qualname"] == "ValueError" and record["message"].startswith("('deep'")
    shallow = ValueError("shallow", [[1]])
    assert json.loads(encode_exception(shallow))["args"] == ["shallow", [[1]]]

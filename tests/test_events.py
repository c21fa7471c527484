"""Guarantee 3 (events): durable, immutable, waited on in any process, replayed in workflows."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from litewf import testing
from tests import procs
from tests.children.comms import append, lines, register
from tests.conditions import wait_until


def kill(child: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child and close its pipes (``procs.kill`` leaves them open)."""
    procs.kill(child)
    child.communicate()


async def test_second_set_event_raises_and_value_stays(db_path: Path) -> None:
    """A second set_event of a key raises EventAlreadySetError; the first value is kept."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def twice() -> list[Any]:
        await rt.set_event("k", 1)
        try:
            await rt.set_event("k", 2)
        except litewf.EventAlreadySetError as exc:
            return [type(exc).__name__, "k" in str(exc)]
        return ["no error"]

    async with rt:
        h = await rt.start_workflow(twice, workflow_id="twice")
        assert await h.get_result(timeout=10) == ["EventAlreadySetError", True]
        assert await rt.get_event("twice", "k", timeout=0) == 1
        assert await rt.get_all_events("twice") == {"k": 1}


async def test_replayed_set_event_is_not_a_second(db_path: Path, tmp_path: Path) -> None:
    """After shutdown + relaunch, replaying set_event neither raises nor changes the value."""
    runs = tmp_path / "runs"

    def make() -> tuple[litewf.Runtime, litewf.Workflow[[], str]]:
        rt = litewf.Runtime(db_path)

        @rt.workflow(name="publisher")
        async def publisher() -> str:
            append(runs, "run")
            await rt.set_event("k", "v")
            await rt.set_event("other", [1, 2])
            go: str = await rt.recv("go", timeout=30)
            return go

        return rt, publisher

    rt, publisher = make()
    async with rt:
        await rt.start_workflow(publisher, workflow_id="pub")
        assert await rt.get_event("pub", "other", timeout=10) == [1, 2]
    rt, publisher = make()
    async with rt:
        await rt.send("pub", "go!", topic="go")
        h = await rt.retrieve_workflow("pub")
        assert await h.get_result(timeout=10) == "go!"
        assert await rt.get_all_events("pub") == {"k": "v", "other": [1, 2]}
    assert lines(runs) == ["run", "run"]  # it really was replayed


async def test_get_event_wakes_at_once_in_process(db_path: Path) -> None:
    """A waiter outside the workflow returns as soon as the key is set, long before timeout."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def setter() -> None:
        await rt.set_event("k", await rt.recv("go", timeout=30))

    async with rt:
        await rt.start_workflow(setter, workflow_id="s")
        await wait_until(lambda: testing.waiting(rt) == 1)  # the workflow's recv
        got: list[Any] = []

        async def waiter() -> None:
            got.append(await rt.get_event("s", "k", timeout=30))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await wait_until(lambda: testing.waiting(rt) == 2)  # both are now waiting
            assert not got
            sent = time.monotonic()
            await rt.send("s", {"x": 1}, topic="go")
        assert got == [{"x": 1}]
        assert time.monotonic() - sent < 2.0  # woken, not found by the 30 s safety re-check


async def test_get_event_none_only_after_timeout(db_path: Path) -> None:
    """A missing key gives None, and not before the timeout; a set key is returned at once."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def one_event() -> None:
        await rt.set_event("present", False)

    async with rt:
        await rt.start_workflow(one_event, workflow_id="e")
        assert await rt.get_event("e", "present", timeout=10) is False  # falsy is not None
        assert await rt.get_event("e", "present", timeout=0) is False
        started = time.monotonic()
        assert await rt.get_event("e", "absent", timeout=0.5) is None
        assert time.monotonic() - started >= 0.45


async def test_get_event_woken_by_another_process(db_path: Path, tmp_path: Path) -> None:
    """A key set by a child's runtime wakes a Runtime and a Client waiting here (poller)."""
    child = procs.spawn("comms", "serve", db_path, tmp_path, "comms.set_after_go", "remote")
    try:
        await procs.wait_for_file(tmp_path / "started", child)
        rt = litewf.Runtime(db_path)
        async with rt, litewf.Client(db_path) as client:
            assert await client.get_event("remote", "k", timeout=0) is None
            got: dict[str, Any] = {}

            async def wait_runtime() -> None:
                got["runtime"] = await rt.get_event("remote", "k", timeout=30)

            async def wait_client() -> None:
                got["client"] = await client.get_event("remote", "k", timeout=30)

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_client)
                tg.start_soon(wait_runtime)
                await wait_until(lambda: testing.waiting(rt) == 1)
                sent = time.monotonic()
                await client.send("remote", "from-parent", topic="go")  # child sets k
            assert got == {"runtime": "from-parent", "client": "from-parent"}
            # The safety re-check runs every 30 s: returning this soon means the poller woke us.
            assert time.monotonic() - sent < 5.0
        assert procs.finish(child).strip() == '"from-parent"'
    finally:
        if child.poll() is None:
            kill(child)


async def test_set_event_durable_across_sigkill(db_path: Path, tmp_path: Path) -> None:
    """An event whose set_event returned survives SIGKILL; the recovered replay is no second."""
    child = procs.spawn("comms", "serve", db_path, tmp_path, "comms.set_then_hang", "hang")
    await procs.wait_for_file(tmp_path / "set", child)
    kill(child)
    async with litewf.Client(db_path) as client:
        assert await client.get_all_events("hang") == {"k": "durable"}
    rt = litewf.Runtime(db_path)
    register(rt)
    async with rt:  # recovers the dead child's workflow, replaying its set_event
        h = await rt.retrieve_workflow("hang")
        await rt.send("hang", "wake", topic="never")
        assert await h.get_result(timeout=10) is None
        assert (await h.get_status()).recovery_attempts == 1
        assert await rt.get_all_events("hang") == {"k": "durable"}


async def test_get_event_in_workflow_replays_recorded_none(db_path: Path, tmp_path: Path) -> None:
    """Inside a workflow get_event's None is recorded: replay returns None though k is set now."""
    runs = tmp_path / "runs"

    def make() -> tuple[litewf.Runtime, litewf.Workflow[[], list[Any]]]:
        rt = litewf.Runtime(db_path)

        @rt.workflow(name="self_reader")
        async def self_reader() -> list[Any]:
            append(runs, "run")
            own = rt.current_workflow_id()
            assert own is not None
            before = await rt.get_event(own, "k", timeout=0.1)
            await rt.set_event("k", "late")
            go = await rt.recv("go", timeout=30)
            return [before, go]

        return rt, self_reader

    rt, self_reader = make()
    async with rt:
        await rt.start_workflow(self_reader, workflow_id="r")
        assert await rt.get_event("r", "k", timeout=10) == "late"
    rt, self_reader = make()
    async with rt:
        await rt.send("r", "go", topic="go")
        h = await rt.retrieve_workflow("r")
        assert await h.get_result(timeout=10) == [None, "go"]
    assert lines(runs) == ["run", "run"]


async def test_get_event_deadline_survives_restart(db_path: Path, tmp_path: Path) -> None:
    """A get_event(timeout=2.5) interrupted at ~1.2 s returns None at the original deadline."""
    runs = tmp_path / "runs"
    timeout, pause = 2.5, 1.2

    def make() -> tuple[litewf.Runtime, litewf.Workflow[[], list[Any]]]:
        rt = litewf.Runtime(db_path)

        @rt.workflow(name="deadline_reader")
        async def deadline_reader() -> list[Any]:
            append(runs, "run")
            own = rt.current_workflow_id()
            assert own is not None
            value = await rt.get_event(own, "never", timeout=timeout)
            return [value, time.time()]

        return rt, deadline_reader

    rt, reader = make()
    started = time.time()
    async with rt:
        await rt.start_workflow(reader, workflow_id="d")
        await wait_until(lambda: testing.waiting(rt) == 1)  # its deadline is recorded
        await anyio.sleep(pause)  # then the runtime goes away mid-wait
    rt, reader = make()
    async with rt:
        h = await rt.retrieve_workflow("d")
        value, returned_at = await h.get_result(timeout=10)
    assert value is None
    assert lines(runs) == ["run", "run"]
    # Original deadline: started + 2.5 s. A deadline restarted at relaunch would be at
    # least started + 1.2 + 2.5 = 3.7 s.
    assert timeout - 0.05 <= returned_at - started < timeout + 0.9


async def test_unknown_workflow_raises_at_once_and_stores_nothing(db_path: Path) -> None:
    """get_event/send/get_all_events on an unknown ID fail fast; the failed send left no trace."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def late_arrival() -> list[Any]:
        first = await rt.recv(timeout=0.3)  # the refused send must not be here
        await rt.set_event("first-done", True)
        second = await rt.recv(timeout=30)
        return [first, second]

    async with rt, litewf.Client(db_path) as client:
        started = time.monotonic()
        with pytest.raises(litewf.WorkflowNotFoundError):
            await rt.get_event("ghost", "k", timeout=30)
        with pytest.raises(litewf.WorkflowNotFoundError):
            await client.get_event("ghost", "k", timeout=30)
        with pytest.raises(litewf.WorkflowNotFoundError):
            await rt.send("ghost", "lost", idempotency_key="key-1")
        with pytest.raises(litewf.WorkflowNotFoundError):
            await client.send("ghost", "lost too")
        with pytest.raises(litewf.WorkflowNotFoundError):
            await rt.get_all_events("ghost")
        assert time.monotonic() - started < 5.0  # no waiting for the 30 s timeouts

        h = await rt.start_workflow(late_arrival, workflow_id="ghost")
        assert await rt.get_event("ghost", "first-done", timeout=10) is True
        await rt.send("ghost", "kept", idempotency_key="key-1")  # the key was not used up
        assert await h.get_result(timeout=10) == [None, "kept"]


async def test_unknown_workflow_inside_workflow_is_recorded(db_path: Path) -> None:
    """In a workflow, WorkflowNotFoundError from get_event/send is recorded and replayed.

    The missing workflow is created before the replay: redoing the calls instead of
    replaying them would wait for an event, and deliver a message, that must not happen.
    """

    def make() -> tuple[litewf.Runtime, litewf.Workflow[[], list[Any]], litewf.Workflow[[], Any]]:
        rt = litewf.Runtime(db_path)

        @rt.workflow(name="checker")
        async def checker() -> list[Any]:
            outcomes: list[Any] = []
            calls: list[Callable[[], Awaitable[Any]]] = [
                lambda: rt.get_event("ghost", "k", timeout=30),
                lambda: rt.send("ghost", 1),
            ]
            for call in calls:
                try:
                    await call()
                except litewf.WorkflowNotFoundError as exc:
                    outcomes.append(type(exc).__name__)
            await rt.set_event("checked", True)
            outcomes.append(await rt.recv("go", timeout=30))
            return outcomes

        @rt.workflow(name="ghost")
        async def ghost() -> Any:
            await rt.recv("go", timeout=30)
            return await rt.recv(timeout=0.3)

        return rt, checker, ghost

    rt, checker, ghost = make()
    async with rt:
        await rt.start_workflow(checker, workflow_id="checker")
        assert await rt.get_event("checker", "checked", timeout=10) is True
        await rt.start_workflow(ghost, workflow_id="ghost")
    rt, checker, ghost = make()
    async with rt:
        for wid in ("checker", "ghost"):
            await rt.send(wid, "go", topic="go")
        checked = await (await rt.retrieve_workflow("checker")).get_result(timeout=10)
        assert checked == ["WorkflowNotFoundError", "WorkflowNotFoundError", "go"]
        assert await (await rt.retrieve_workflow("ghost")).get_result(timeout=10) is None


async def test_none_refused_as_event_value_and_message(db_path: Path) -> None:
    """None as event value or message raises InvalidValueError (a ValueError); nothing stored."""
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def refuser() -> list[str]:
        own = rt.current_workflow_id()
        assert own is not None
        refused = []
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: rt.set_event("k", None),
            lambda: rt.send(own, None),
        ]
        for call in calls:
            try:
                await call()
            except litewf.InvalidValueError as exc:
                assert isinstance(exc, ValueError)
                assert "None" in str(exc)
                refused.append(type(exc).__name__)
        await rt.set_event("k", "ok")  # the refused call did not take the key
        return refused

    async with rt, litewf.Client(db_path) as client:
        h = await rt.start_workflow(refuser, workflow_id="n")
        assert await h.get_result(timeout=10) == ["InvalidValueError", "InvalidValueError"]
        assert await rt.get_all_events("n") == {"k": "ok"}
        for send in (rt.send, client.send):
            with pytest.raises(litewf.InvalidValueError) as info:
                await send("n", None)
            assert isinstance(info.value, ValueError)


async def test_get_all_events(db_path: Path) -> None:
    """get_all_events returns every key with its exact value, from a Runtime and a Client."""
    rt = litewf.Runtime(db_path)
    values: dict[str, Any] = {"a": {"n": 1}, "b": [1, "two"], "c": "text", "d": 0, "e": False}

    @rt.workflow()
    async def many() -> None:
        for key, value in values.items():
            await rt.set_event(key, value)

    @rt.workflow()
    async def none_set() -> None:
        pass

    async with rt, litewf.Client(db_path) as client:
        await (await rt.start_workflow(many, workflow_id="many")).get_result(timeout=10)
        await (await rt.start_workflow(none_set, workflow_id="empty")).get_result(timeout=10)
        assert await rt.get_all_events("many") == values
        assert await client.get_all_events("many") == values
        assert await rt.get_all_events("empty") == {}

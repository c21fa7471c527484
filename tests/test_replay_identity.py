"""Replay notices every divergence: operation identity, recorded reads, exception attributes.

A restart here is in-process: the first runtime is shut down while its workflow waits on an
in-memory gate (nothing is being written), then a new Runtime on the same file, with the
code changed or not, replays it.
"""

from __future__ import annotations

import contextlib
import json
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from litewf._schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from litewf.testing import VirtualClock
from tests import sqldb

#: Generous bound for anything that should take milliseconds.
WAIT = 10.0


def query(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read stored rows straight from the file, with a short-lived plain sqlite3 connection."""
    with contextlib.closing(sqldb.connect(db_path)) as conn:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]


def opened() -> anyio.Event:
    """A gate that is already open, for runs that should go straight through."""
    gate = anyio.Event()
    gate.set()
    return gate


async def wait_set(event: anyio.Event) -> None:
    with anyio.fail_after(WAIT):
        await event.wait()


async def wait_until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll a database condition another task brings about; fail after ``WAIT``."""
    with anyio.fail_after(WAIT):
        while True:
            if await check():
                return
            await anyio.sleep(0.005)


async def waiting(rt: litewf.Runtime, workflow_id: str) -> bool:
    return any(s.outcome == "waiting" for s in await rt.list_steps(workflow_id))


# -- operation identity --------------------------------------------------------------------------


@dataclass
class Flows:
    rt: litewf.Runtime
    main: litewf.Workflow[[], str]
    other: litewf.Workflow[[], str]


#: Variant -> the call the main workflow makes at operation 2 (after retrieving other-1 and
#: other-2 at 0 and 1), and how NonDeterminismError describes the "old" and "new" calls.
Call = Callable[[litewf.Runtime, dict[str, Any], str], Awaitable[Any]]


async def _step(rt: litewf.Runtime, fns: dict[str, Any], v: str) -> Any:
    return await fns[f"step-{v}"]()


async def _child(rt: litewf.Runtime, fns: dict[str, Any], v: str) -> Any:
    return await rt.start_workflow(fns[f"child-{v}"])


def _other(v: str) -> str:
    return "other-1" if v == "old" else "other-2"


CASES: dict[str, tuple[Call, str, str]] = {
    "step name": (_step, "step 'old'", "step 'new'"),
    "set_event key": (
        lambda rt, fns, v: rt.set_event(v, 1),
        "set_event(key='old')",
        "set_event(key='new')",
    ),
    "get_event workflow": (
        lambda rt, fns, v: rt.get_event(_other(v), "e", timeout=0),
        "get_event(key='e', workflow_id='other-1')",
        "get_event(key='e', workflow_id='other-2')",
    ),
    "get_event key": (
        lambda rt, fns, v: rt.get_event("other-1", v, timeout=0),
        "get_event(key='old', workflow_id='other-1')",
        "get_event(key='new', workflow_id='other-1')",
    ),
    "send destination": (
        lambda rt, fns, v: rt.send(_other(v), "m"),
        "send(destination_id='other-1', topic=None)",
        "send(destination_id='other-2', topic=None)",
    ),
    "send topic": (
        lambda rt, fns, v: rt.send("other-1", "m", topic=v),
        "send(destination_id='other-1', topic='old')",
        "send(destination_id='other-1', topic='new')",
    ),
    "recv topic": (
        lambda rt, fns, v: rt.recv(v, timeout=0),
        "recv(topic='old')",
        "recv(topic='new')",
    ),
    "child name": (_child, "start_workflow child-old", "start_workflow child-new"),
    "get_all_events": (
        lambda rt, fns, v: rt.get_all_events(_other(v)),
        "get_all_events(workflow_id='other-1')",
        "get_all_events(workflow_id='other-2')",
    ),
    "retrieve_workflow": (
        lambda rt, fns, v: rt.retrieve_workflow(_other(v)),
        "retrieve_workflow(workflow_id='other-1')",
        "retrieve_workflow(workflow_id='other-2')",
    ),
    "get_status": (
        lambda rt, fns, v: fns[_other(v)].get_status(),
        "get_status(workflow_id='other-1')",
        "get_status(workflow_id='other-2')",
    ),
    "get_result": (
        lambda rt, fns, v: fns[_other(v)].get_result(),
        "get_result(workflow_id='other-1')",
        "get_result(workflow_id='other-2')",
    ),
    "list_workflows": (
        lambda rt, fns, v: rt.list_workflows(status="SUCCESS" if v == "old" else "ERROR"),
        "list_workflows(limit=100, name=None, offset=0, status='SUCCESS')",
        "list_workflows(limit=100, name=None, offset=0, status='ERROR')",
    ),
    "list_steps": (
        lambda rt, fns, v: rt.list_steps(_other(v)),
        "list_steps(workflow_id='other-1')",
        "list_steps(workflow_id='other-2')",
    ),
}


def build_case(
    db_path: Path, case: str, variant: str, gate: anyio.Event, reached: anyio.Event
) -> Flows:
    """The main workflow makes the case's call in ``variant``, then waits on ``gate``."""
    rt = litewf.Runtime(db_path)
    call = CASES[case][0]
    fns: dict[str, Any] = {}

    for v in ("old", "new"):

        @rt.step(name=v)
        async def step() -> str:
            return "stepped"

        @rt.workflow(name=f"child-{v}")
        async def child() -> str:
            return "child"

        fns[f"step-{v}"], fns[f"child-{v}"] = step, child

    @rt.workflow(name="other")
    async def other() -> str:
        await rt.set_event("e", "value")
        return "other done"

    @rt.workflow(name="main")
    async def main() -> str:
        fns["other-1"] = await rt.retrieve_workflow("other-1")
        fns["other-2"] = await rt.retrieve_workflow("other-2")
        await call(rt, fns, variant)
        reached.set()
        await gate.wait()
        return "done"

    return Flows(rt, main, other)


@pytest.mark.parametrize("case", list(CASES))
async def test_changed_identity_is_nondeterminism_and_resume_after_revert_succeeds(
    db_path: Path, case: str
) -> None:
    """A recorded call replayed with another identifying argument ends the workflow ERROR
    with NonDeterminismError naming both calls; with the code reverted, resume_workflow
    runs it to SUCCESS. Before, only the kind was compared and the replay went on."""
    reached = anyio.Event()
    flows = build_case(db_path, case, "old", anyio.Event(), reached)
    async with flows.rt as rt:
        for wid in ("other-1", "other-2"):
            h = await rt.start_workflow(flows.other, workflow_id=wid)
            assert await h.get_result(timeout=WAIT) == "other done"
        await rt.start_workflow(flows.main, workflow_id="main-1")
        await wait_set(reached)

    _, old, new = CASES[case]
    async with build_case(db_path, case, "new", opened(), anyio.Event()).rt as rt2:
        h = await rt2.retrieve_workflow("main-1")
        with pytest.raises(litewf.NonDeterminismError) as info:
            await h.get_result(timeout=WAIT)
        status = await h.get_status()
    assert status.status == "ERROR"
    assert info.value.op_id == 2
    assert (info.value.recorded, info.value.called) == (old, new)
    assert f"recorded as {old} but the code now calls {new}" in str(info.value)

    async with build_case(db_path, case, "old", opened(), anyio.Event()).rt as rt3:
        h = await rt3.resume_workflow("main-1")
        assert await h.get_result(timeout=WAIT) == "done"
        assert (await h.get_status()).status == "SUCCESS"


# -- reads are recorded --------------------------------------------------------------------------


async def test_reads_in_a_workflow_replay_what_the_first_run_saw(db_path: Path) -> None:
    """get_all_events, retrieve_workflow, get_status, get_result (of a workflow that is
    not a child), list_workflows and list_steps return on replay what they returned on
    the first run, although the database changed in between. Before, they read live."""
    seen: list[dict[str, Any]] = []
    reached, x_set = anyio.Event(), anyio.Event()

    def build(gate: anyio.Event) -> tuple[litewf.Runtime, Any, Any]:
        rt = litewf.Runtime(db_path)

        @rt.workflow(name="pub")
        async def pub() -> str:
            await rt.set_event("x", 1)
            x_set.set()
            await rt.recv("go", timeout=3600)
            await rt.set_event("y", 2)
            return "published"

        @rt.workflow(name="reader")
        async def reader() -> str:
            view: dict[str, Any] = {"events": await rt.get_all_events("pub-1")}
            h = await rt.retrieve_workflow("pub-1")
            view["status"] = await h.get_status()
            try:
                view["result"] = await h.get_result(timeout=0)
            except TimeoutError as exc:
                view["result"] = f"timeout: {exc}"
            view["listed"] = await rt.list_workflows(name="pub")
            view["steps"] = await rt.list_steps("pub-1")
            try:
                await rt.retrieve_workflow("later-1")
                view["later"] = "found"
            except litewf.WorkflowNotFoundError:
                view["later"] = "missing"
            seen.append(view)
            reached.set()
            await gate.wait()
            return "read"

        return rt, pub, reader

    rt, pub, reader = build(anyio.Event())
    async with rt:
        await rt.start_workflow(pub, workflow_id="pub-1")
        await wait_set(x_set)
        await rt.start_workflow(reader, workflow_id="reader-1")
        await wait_set(reached)
        first = seen[0]
        assert first["events"] == {"x": 1}
        assert first["status"].status == "PENDING"
        assert first["result"].startswith("timeout: ")
        assert [s.status for s in first["listed"]] == ["PENDING"]
        assert first["steps"][0].kind == "set_event"  # then perhaps the recv waiting
        assert first["later"] == "missing"
        # The world moves on: pub finishes with a new event, later-1 appears.
        await rt.send("pub-1", "now", topic="go")
        assert await (await rt.retrieve_workflow("pub-1")).get_result(timeout=WAIT) == "published"
        await rt.start_workflow(pub, workflow_id="later-1")

    rt2, _, _ = build(opened())
    async with rt2:
        h = await rt2.retrieve_workflow("reader-1")
        assert await h.get_result(timeout=WAIT) == "read"
        assert await rt2.get_all_events("pub-1") == {"x": 1, "y": 2}  # outside: live
    assert len(seen) == 2
    assert seen[1] == seen[0]
    kinds = query(
        db_path, "SELECT name FROM operations WHERE workflow_id = 'reader-1' ORDER BY op_id"
    )
    assert [k for (k,) in kinds] == [
        "get_all_events",
        "retrieve_workflow",
        "get_status",
        "get_result",
        "list_workflows",
        "list_steps",
        "retrieve_workflow",
    ]


async def test_read_names_are_reserved_for_litewf(db_path: Path) -> None:
    """A step cannot take the name of a recorded read (list_steps would misreport it)."""
    rt = litewf.Runtime(db_path)
    for name in ("get_all_events", "get_status", "get_result", "list_workflows", "list_steps"):
        with pytest.raises(litewf.InvalidValueError, match="reserved"):

            @rt.step(name=name)
            async def step() -> None:
                pass


# -- exception attributes ------------------------------------------------------------------------


class Declined(Exception):
    """A step's failure with data the workflow branches on."""

    def __init__(self, code: int, reason: str = "", details: Any = None) -> None:
        super().__init__(f"declined with code {code}: {reason}")
        self.code = code
        self.reason = reason
        self.details = details
        self.handle = object()  # not JSON-able: not stored, so not seen on either run


async def test_failed_step_exception_keeps_its_attributes_on_first_run_and_replay(
    db_path: Path,
) -> None:
    """A workflow that catches Declined(51, reason=...) sees the same class and attributes
    (tuples as lists, what JSON cannot hold left out) on the first run and on replay, so
    both take the same branch; the first run keeps the step's traceback. Before, the first
    run saw the original object and the replay lost the attributes."""
    seen: list[tuple[Any, ...]] = []
    reached = anyio.Event()

    def build(gate: anyio.Event) -> tuple[litewf.Runtime, litewf.Workflow[[], str]]:
        rt = litewf.Runtime(db_path)

        @rt.step(name="charge")
        async def charge_card() -> None:
            raise Declined(51, reason="insufficient funds", details=(1, {"k": (2, 3)}))

        @rt.workflow(name="pay")
        async def pay() -> str:
            try:
                await charge_card()
            except Declined as e:
                frames = [f.name for f in traceback.extract_tb(e.__traceback__)]
                seen.append(
                    (
                        type(e),
                        e.code,
                        e.reason,
                        e.details,
                        hasattr(e, "handle"),
                        str(e),
                        "charge_card" in frames,
                    )
                )
                branch = "retry later" if e.code == 51 else "give up"
            reached.set()
            await gate.wait()
            return branch

        return rt, pay

    rt, pay = build(anyio.Event())
    async with rt:
        await rt.start_workflow(pay, workflow_id="pay-1")
        await wait_set(reached)
    rt2, _ = build(opened())
    async with rt2:
        assert (
            await (await rt2.retrieve_workflow("pay-1")).get_result(timeout=WAIT) == "retry later"
        )
    message = "declined with code 51: insufficient funds"
    assert seen[0] == (Declined, 51, "insufficient funds", [1, {"k": [2, 3]}], False, message, True)
    assert seen[1][:-1] == seen[0][:-1]


async def test_workflow_error_attributes_cross_the_database(db_path: Path) -> None:
    """get_result() of a workflow that failed with Declined rebuilds its attributes."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="fails")
    async def fails() -> None:
        raise Declined(7, reason="no")

    async with rt:
        h = await rt.start_workflow(fails, workflow_id="f-1")
        with pytest.raises(Declined) as info:
            await h.get_result(timeout=WAIT)
    assert (info.value.code, info.value.reason) == (7, "no")


# -- resume after a database-dependent failure -----------------------------------------------------


async def test_resume_after_fix_of_event_already_set(db_path: Path) -> None:
    """A workflow that ended ERROR by EventAlreadySetError, fixed (the second call sets
    "b") and resumed, succeeds and sets b; the first event stays recorded. Before, the
    resumed run hit the recorded error forever."""

    def build(fixed: bool) -> tuple[litewf.Runtime, litewf.Workflow[[], str]]:
        rt = litewf.Runtime(db_path)

        @rt.workflow(name="publisher")
        async def publisher() -> str:
            await rt.set_event("a", 1)
            await rt.set_event("b" if fixed else "a", 2)
            return "published"

        return rt, publisher

    rt, publisher = build(fixed=False)
    async with rt:
        h = await rt.start_workflow(publisher, workflow_id="p-1")
        with pytest.raises(litewf.EventAlreadySetError):
            await h.get_result(timeout=WAIT)
        # Resumed unchanged, it fails the same way (the call is made again, not replayed).
        h = await rt.resume_workflow("p-1")
        with pytest.raises(litewf.EventAlreadySetError):
            await h.get_result(timeout=WAIT)
    rt2, _ = build(fixed=True)
    async with rt2:
        h = await rt2.resume_workflow("p-1")
        assert await h.get_result(timeout=WAIT) == "published"
        assert await rt2.get_all_events("p-1") == {"a": 1, "b": 2}
    assert query(db_path, "SELECT op_id, name FROM operations WHERE workflow_id = 'p-1'") == [
        (0, "set_event"),
        (1, "set_event"),
    ]


async def test_resume_after_missing_destination_appears(db_path: Path) -> None:
    """A send to a workflow that did not exist ended the workflow ERROR; once it exists,
    resume_workflow sends again and the workflow succeeds."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="sender")
    async def sender() -> str:
        await rt.send("later-1", "hello")
        return "sent"

    @rt.workflow(name="receiver")
    async def receiver() -> Any:
        return await rt.recv(timeout=WAIT)

    async with rt:
        h = await rt.start_workflow(sender, workflow_id="s-1")
        with pytest.raises(litewf.WorkflowNotFoundError):
            await h.get_result(timeout=WAIT)
        later = await rt.start_workflow(receiver, workflow_id="later-1")
        h = await rt.resume_workflow("s-1")
        assert await h.get_result(timeout=WAIT) == "sent"
        assert await later.get_result(timeout=WAIT) == "hello"


# -- upgrading a database written before operation identity --------------------------------------


def make_v1_database(db_path: Path) -> None:
    """A schema-1 file (as the previous release wrote it) holding a workflow mid-flight: it
    started a child, read its result (not an operation then), set an event, and its
    process died before the step that comes next."""
    conn = sqldb.connect(db_path)
    try:
        conn.executescript(MIGRATIONS[0])
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
        inputs = json.dumps({"args": [], "kwargs": {}})
        workflows = [
            ("legacy-1", "legacy", "PENDING", None, "dead-executor", None),
            ("legacy-1-0", "legacy-child", "SUCCESS", '"from child"', None, "legacy-1"),
        ]
        for wid, name, status, output, executor, parent in workflows:
            conn.execute(
                "INSERT INTO workflows (workflow_id, name, status, inputs, output, executor_id, "
                "parent_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, 1)",
                (wid, name, status, inputs, output, executor, parent),
            )
        for op_id, name, output in (
            (0, "start_workflow legacy-child", '"legacy-1-0"'),
            (1, "set_event", None),
        ):
            conn.execute(
                "INSERT INTO operations (workflow_id, op_id, name, output, created_at) "
                "VALUES ('legacy-1', ?, ?, ?, 1)",
                (op_id, name, output),
            )
        conn.execute(
            "INSERT INTO events VALUES ('legacy-1', 'got', '\"from child\"', 1)",
        )
        conn.commit()
    finally:
        conn.close()


@pytest.mark.sqlite_only
async def test_v1_database_is_migrated_and_its_inflight_workflow_finishes(db_path: Path) -> None:
    """Opening a schema-1 file migrates it (operations gain a target, workflows a history
    version); the workflow recorded under the old rules replays under them (its reads
    are not numbered, its rows are compared by name) and finishes; a workflow started
    after the upgrade records its reads."""
    make_v1_database(db_path)
    ran: list[str] = []
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="legacy-child")
    async def legacy_child() -> str:
        ran.append("child")
        return "from child"

    @rt.step(name="finish")
    async def finish(value: str) -> str:
        ran.append("finish")
        return f"finished with {value}"

    @rt.workflow(name="legacy")
    async def legacy() -> str:
        h = await rt.start_workflow(legacy_child)
        value = await h.get_result()
        await rt.set_event("got", value)
        return await finish(value)

    async with rt:
        h = await rt.retrieve_workflow("legacy-1")
        assert await h.get_result(timeout=WAIT) == "finished with from child"
        fresh = await rt.start_workflow(legacy, workflow_id="new-1")
        assert await fresh.get_result(timeout=WAIT) == "finished with from child"
    assert ran == ["finish", "child", "finish"]
    assert query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert query(db_path, "SELECT workflow_id, history FROM workflows ORDER BY seq") == [
        ("legacy-1", 1),
        ("legacy-1-0", 1),
        ("new-1", 2),
        ("new-1-0", 2),
    ]
    ops = "SELECT name, target FROM operations WHERE workflow_id = ? ORDER BY op_id"
    assert query(db_path, ops, ("legacy-1",)) == [
        ("start_workflow legacy-child", None),
        ("set_event", None),
        ("finish", None),
    ]
    assert query(db_path, ops, ("new-1",)) == [
        ("start_workflow legacy-child", None),
        ("get_result", '{"workflow_id":"new-1-0"}'),
        ("set_event", '{"key":"got"}'),
        ("finish", None),
    ]


async def test_calls_after_a_swallowed_divergence_raise_too(db_path: Path) -> None:
    """Code that catches NonDeterminismError and goes on cannot record anything more: every
    later durable call raises it again, and the workflow still ends ERROR."""
    ran: list[str] = []
    reached = anyio.Event()
    built: dict[str, litewf.Workflow[[], str]] = {}

    def build(changed: bool, gate: anyio.Event) -> litewf.Runtime:
        rt = litewf.Runtime(db_path)

        @rt.step(name="after")
        async def after() -> None:
            ran.append("after")

        @rt.workflow(name="swallower")
        async def swallower() -> str:
            with contextlib.suppress(litewf.NonDeterminismError):
                await rt.set_event("new" if changed else "old", 1)
            if changed:
                with contextlib.suppress(litewf.NonDeterminismError):
                    await after()
            reached.set()
            await gate.wait()
            return "done"

        built["swallower"] = swallower
        return rt

    async with build(False, anyio.Event()) as rt:
        await rt.start_workflow(built["swallower"], workflow_id="w-1")
        await wait_set(reached)
    async with build(True, opened()) as rt2:
        h = await rt2.retrieve_workflow("w-1")
        with pytest.raises(litewf.NonDeterminismError, match=r"set_event\(key='new'\)"):
            await h.get_result(timeout=WAIT)
    assert ran == []
    assert query(db_path, "SELECT op_id, name FROM operations WHERE workflow_id = 'w-1'") == [
        (0, "set_event")
    ]


async def test_get_result_wait_keeps_its_recorded_deadline_across_a_restart(
    db_path: Path,
) -> None:
    """get_result(timeout=...) inside a workflow records its deadline before waiting (like
    get_event); after a restart it waits until that instant, then records the result."""
    reached = anyio.Event()

    def build() -> tuple[litewf.Runtime, Any, Any]:
        rt = litewf.Runtime(db_path)

        @rt.workflow(name="slow")
        async def slow() -> str:
            return str(await rt.recv("go", timeout=3600))

        @rt.workflow(name="waiter")
        async def waiter() -> str:
            h = await rt.retrieve_workflow("slow-1")
            reached.set()
            return f"got {await h.get_result(timeout=600)}"

        return rt, slow, waiter

    rt, slow, waiter = build()
    async with rt:
        await rt.start_workflow(slow, workflow_id="slow-1")
        await rt.start_workflow(waiter, workflow_id="waiter-1")
        await wait_set(reached)
        await wait_until(lambda: waiting(rt, "waiter-1"))
    sql = "SELECT op_id, name, done, deadline FROM operations WHERE workflow_id = 'waiter-1'"
    before = query(db_path, sql)
    assert [row[:3] for row in before] == [(0, "retrieve_workflow", 1), (1, "get_result", 0)]
    rt2, _, _ = build()
    async with rt2:
        await rt2.send("slow-1", "now", topic="go")
        h = await rt2.retrieve_workflow("waiter-1")
        assert await h.get_result(timeout=WAIT) == "got now"
    after = query(db_path, sql)
    assert after[1][:3] == (1, "get_result", 1) and after[1][3] == before[1][3]


async def test_a_get_result_timeout_in_a_workflow_follows_the_virtual_clock(
    db_path: Path,
) -> None:
    """get_result(timeout=3600) inside a workflow ends at the recorded deadline on the
    VirtualClock (no real hour), and its TimeoutError is the recorded outcome."""
    clock = VirtualClock()
    rt = litewf.Runtime(db_path, clock=clock)

    @rt.workflow(name="v.never")
    async def never() -> None:
        await rt.recv("never", timeout=86_400)

    @rt.workflow(name="v.waiter")
    async def waiter() -> str:
        handle = await rt.retrieve_workflow("never-1")
        try:
            await handle.get_result(timeout=3600)
        except TimeoutError:
            return "timed out"
        return "finished"

    async with rt:
        await rt.start_workflow(never, workflow_id="never-1")
        handle = await rt.start_workflow(waiter, workflow_id="waiter-1")
        await clock.wait_idle()
        clock.advance(3599)
        await clock.wait_idle()
        assert (await handle.get_status()).status == "PENDING"
        clock.advance(1)
        with anyio.fail_after(30):
            assert await handle.get_result() == "timed out"
        last = (await rt.list_steps("waiter-1"))[-1]
        assert (last.kind, last.outcome, last.error_type) == ("get_result", "error", "TimeoutError")

"""The replay checker (issue 15): ``litewf.testing.check_replay`` and ``litewf
check-replay`` replay every stored history against today's code, on a copy of the file,
running no step body, and report each divergence with its workflow and operation number.

One database is built once for the module by running the workflows of ``build("same")``
for real: finished, waiting in ``recv`` at shutdown, and stopped by a simulated crash.
Each test then checks it against another version of the code.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from litewf.testing import ReplayReport, check_replay, crash_at
from tests.conditions import wait_until

WAIT = 30.0
REPO = Path(__file__).resolve().parents[1]

#: Step bodies that ran, by name, in any runtime ``build`` made.
LOG: list[str] = []

#: Every variant's expected divergences in the module's database: (workflow ID, op).
#: order-done finished; order-wait recorded ops 0-1 and waits in recv (op 2);
#: order-crash recorded ops 0-4 and died before step "charge" (op 5).
EXPECTED: dict[str, set[tuple[str, int]]] = {
    "same": set(),
    "renamed-step": {("order-done", 5)},  # charge -> bill: only the history that has it
    "event-key": {("order-done", 1), ("order-wait", 1), ("order-crash", 1)},
    "removed-sleep": {("order-done", 3), ("order-crash", 3)},
    "added-step": {("order-done", 3), ("order-crash", 3)},
    "renamed-patch": {("order-done", 4), ("order-crash", 4)},
    "removed-last": {("order-done", 11)},  # the function returns before its wait_first
    "dropped-patch": {("order-done", 4), ("order-crash", 4)},  # marker met by a step
    "deprecated-patch": set(),  # deprecate_patch passes over the marker
    "stream-key": {("order-done", 6)},
    "child-name": {("order-done", 8)},
    "send-topic": {("order-done", 10)},
    "wait-member": {("order-done", 11)},
    "new-parameter": {("order-done", 0), ("order-wait", 0), ("order-crash", 0)},
    "patched-right": set(),  # a new patched() branch keeps the old call: no divergence
    "more-at-end": set(),  # more work after each history's end: no divergence
}


def build(variant: str) -> litewf.Runtime:
    """The application at one version of its code (``variant``; "same": as recorded).

    ``order`` numbers its operations: 0 step reserve, 1 set_event url, 2 recv go,
    3 sleep, 4 patch marker, 5 step charge, 6 write_stream, 7 close_stream, 8 child
    start, 9 its get_result, 10 send, 11 wait_first.
    """
    rt = litewf.Runtime("never-opened.db")

    def step(name: str) -> Any:
        async def body(*args: Any) -> str:
            LOG.append(name)
            return f"{name}-done"

        return rt.step(name=name)(body)

    reserve, charge, bill, audit, pack, extra = map(
        step, ["reserve", "charge", "bill", "audit", "pack", "extra"]
    )

    @rt.workflow(name="ship")
    async def ship(n: int) -> int:
        await pack(n)
        return n

    @rt.workflow(name="ship-v2")
    async def ship_v2(n: int) -> int:
        return n

    @rt.workflow(name="peer")
    async def peer() -> Any:
        return await rt.recv("t", timeout=WAIT)

    @rt.workflow(name="order")
    async def order(n: int) -> str:
        await reserve(n)
        await rt.set_event("link" if variant == "event-key" else "url", f"https://pay/{n}")
        await rt.recv("go", timeout=WAIT)
        if variant == "added-step":
            await audit()
        if variant == "patched-right" and await rt.patched("audit"):
            await audit()
        if variant != "removed-sleep":
            await rt.sleep(0.001)
        if variant == "dropped-patch":
            await charge()
        elif variant == "deprecated-patch":
            await rt.deprecate_patch("fast-path")
            await charge()
        elif await rt.patched("fast-path-v2" if variant == "renamed-patch" else "fast-path"):
            await (bill() if variant == "renamed-step" else charge())
        await rt.write_stream("log2" if variant == "stream-key" else "log", "charged")
        await rt.close_stream("log")
        child = await rt.start_workflow(ship_v2 if variant == "child-name" else ship, n)
        await child.get_result(timeout=WAIT)
        await rt.send("peer", {"from": n}, topic="t2" if variant == "send-topic" else "t")
        if variant == "wait-member":
            await rt.wait_first(fin=rt.message("fin"), stop=rt.message("stop"), timeout=WAIT)
        elif variant != "removed-last":
            await rt.wait_first(fin=rt.message("fin"), timeout=WAIT)
        if variant == "more-at-end":
            await extra()
            await rt.recv("more", timeout=WAIT)
        return "ok"

    @rt.workflow(name="napper")
    async def napper() -> None:
        await rt.sleep(3600)  # recorded: a check must not wait for it
        await pack(0)

    if variant == "new-parameter":  # stored arguments no longer fit: TypeError at once
        original = order.fn

        async def order_in(n: int, currency: str) -> str:
            return await original(n)

        order.fn = order_in  # type: ignore[assignment]

    if variant == "same":

        @rt.workflow(name="legacy")
        async def legacy() -> None:
            await rt.recv("never", timeout=WAIT)

    return rt


async def produce(path: Path) -> None:
    """Run ``build("same")`` on ``path``: a finished order, one waiting in recv at
    shutdown, one stopped by a crash before its step "charge"; a legacy workflow."""
    rt = build("same")
    rt.path = str(path)
    workflows = rt._executor.workflows
    order, peer, legacy = workflows["order"], workflows["peer"], workflows["legacy"]
    crash = crash_at(rt, before_step="charge", workflow_id="order-crash")
    async with rt:
        await rt.start_workflow(peer, workflow_id="peer")
        await rt.start_workflow(legacy, workflow_id="legacy-1")
        await rt.start_workflow(workflows["napper"], workflow_id="napper-1")
        done = await rt.start_workflow(order, 1, workflow_id="order-done")
        await rt.send("order-done", "go", topic="go")
        await rt.send("order-done", "fin", topic="fin")
        assert await done.get_result(timeout=WAIT) == "ok"
        await rt.start_workflow(order, 2, workflow_id="order-wait")
        await wait_until(lambda: litewf.testing.waiting(rt) >= 2)  # legacy's and its recv
        with anyio.fail_after(WAIT):
            while not await rt.list_steps("napper-1"):  # noqa: ASYNC110 - its sleep recorded
                await anyio.sleep(0.005)
        crashing = await rt.start_workflow(order, 3, workflow_id="order-crash")
        await rt.send(crashing.workflow_id, "go", topic="go")
        with anyio.fail_after(WAIT):
            await crash.wait()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("recorded") / "prod.db"
    anyio.run(produce, path, backend="asyncio")
    return path


@pytest.fixture
def db(recorded: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the recorded database (with its side files) for one test."""
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{recorded}{suffix}").exists():
            shutil.copy2(f"{recorded}{suffix}", tmp_path / f"prod.db{suffix}")
    LOG.clear()
    yield tmp_path / "prod.db"


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of a folder: its bytes and its modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}


def damage(source: Path, into: Path) -> Path:
    """A copy of ``source`` with its pages 2 and 3 overwritten."""
    data = bytearray(source.read_bytes())
    data[4096 : 4096 * 3] = b"\xa5" * (4096 * 2)
    into.write_bytes(bytes(data))
    return into


def found(report: ReplayReport) -> set[tuple[str, int]]:
    assert all(d.op_id is not None for d in report.divergences), report
    return {(d.workflow_id, d.op_id) for d in report.divergences if d.op_id is not None}


# -- the API -----------------------------------------------------------------------------


async def test_the_same_code_replays_every_history_and_touches_nothing(db: Path) -> None:
    before = snapshot(db.parent)
    report = await check_replay(build("same"), db)
    assert report.ok, report
    assert report.divergences == ()
    # order x3, its child (ship, for the finished one), peer, napper, legacy: all checked
    assert report.checked == 7
    assert report.unknown == ()
    assert LOG == []  # no step body ran
    assert snapshot(db.parent) == before  # byte for byte, same mtimes, no new side files


async def test_a_launched_runtime_can_check_and_its_own_file_gets_nothing(
    db: Path, tmp_path: Path
) -> None:
    """The runtime's registrations are what count: launched on its own file, it checks
    another one, and neither gets a row (its workflows' calls went to the copy)."""
    rt = build("same")
    rt.path = str(tmp_path / "own.db")
    async with rt:
        report = await check_replay(rt, db)
        assert report.ok and report.checked == 7, report
        assert await rt.list_workflows() == []
    assert LOG == []


async def test_a_live_database_is_read_as_it_is_and_left_alone(db: Path) -> None:
    """With its -wal file present (a process has it open), the check reads committed
    data through a read-only connection, and still writes nothing."""
    keep = sqlite3.connect(db)  # keeps the -wal and -shm files in place
    try:
        keep.execute("SELECT count(*) FROM workflows").fetchall()
        before = snapshot(db.parent)
        assert (db.parent / "prod.db-wal").exists()
        report = await check_replay(build("same"), db)
        assert report.ok and report.checked == 7, report
        assert snapshot(db.parent) == before
    finally:
        keep.close()


@pytest.mark.parametrize("variant", [v for v in EXPECTED if v != "same"])
async def test_each_planted_divergence_is_found_where_it_is(db: Path, variant: str) -> None:
    report = await check_replay(build(variant), db)
    assert found(report) == EXPECTED[variant], report
    assert report.ok == (not EXPECTED[variant])
    assert LOG == []
    for d in report.divergences:
        assert d.name == "order"
        assert d.recorded is not None and d.called is not None
        assert f"#{d.op_id}" in d.message


async def test_a_divergence_names_both_calls(db: Path) -> None:
    (renamed,) = (await check_replay(build("renamed-step"), db)).divergences
    assert (renamed.recorded, renamed.called) == ("step 'charge'", "step 'bill'")
    key = {d.workflow_id: d for d in (await check_replay(build("event-key"), db)).divergences}
    assert key["order-wait"].recorded == "set_event(key='url')"
    assert key["order-wait"].called == "set_event(key='link')"
    typed = (await check_replay(build("new-parameter"), db)).divergences[0]
    assert typed.recorded == "step 'reserve'" and typed.called is not None
    assert typed.called.startswith("TypeError(")
    assert "now raises TypeError(" in typed.message
    (ended,) = (await check_replay(build("removed-last"), db)).divergences
    assert ended.recorded is not None and ended.recorded.startswith("wait_first(")
    assert "returns after 11 operations" in ended.message
    patches = {
        d.workflow_id: d for d in (await check_replay(build("renamed-patch"), db)).divergences
    }
    patch = patches["order-crash"]
    assert (patch.recorded, patch.called) == ("patch fast-path", "patch fast-path-v2")


async def test_unknown_workflows_are_warned_about_not_failed(db: Path) -> None:
    rt = build("same")
    del rt._executor.workflows["legacy"]
    report = await check_replay(rt, db)
    assert report.ok and report.checked == 6
    assert [(s.workflow_id, s.status) for s in report.unknown] == [
        ("legacy-1", litewf.Status.PENDING)
    ]
    assert "1 workflow named 'legacy' not checked" in str(report)
    assert "1 unfinished (legacy-1)" in str(report)


async def test_status_and_limit_choose_what_is_checked(db: Path) -> None:
    pending = await check_replay(build("event-key"), db, status="PENDING")
    assert pending.checked == 3  # order-wait, order-crash, napper-1 (legacy-1: unregistered)
    assert [s.workflow_id for s in pending.unknown] == ["legacy-1"]
    assert found(pending) == {("order-wait", 1), ("order-crash", 1)}
    newest = await check_replay(build("same"), db, limit=2)
    assert newest.checked == 2
    with pytest.raises(litewf.InvalidValueError, match="status must be one of"):
        await check_replay(build("same"), db, status="DONE")
    with pytest.raises(litewf.InvalidValueError, match="limit"):
        await check_replay(build("same"), db, limit=-1)
    with pytest.raises(litewf.InvalidValueError, match=r"needs a litewf\.Runtime"):
        await check_replay(object(), db)  # type: ignore[arg-type]


async def test_a_workflow_waiting_on_what_litewf_does_not_record_times_out(db: Path) -> None:
    rt = build("same")
    order = rt._executor.workflows["order"]
    original = order.fn

    async def stuck(n: int) -> str:
        if n == 2:
            await anyio.sleep_forever()
        result: str = await original(n)
        return result

    order.fn = stuck
    report = await check_replay(rt, db, timeout=0.2)
    assert [d.workflow_id for d in report.divergences] == ["order-wait"]
    assert "still replaying after 0.2 s" in report.divergences[0].message


def fanout_app(width: int) -> litewf.Runtime:
    """A workflow that runs ``width`` steps at once (asyncio.gather), then one more."""
    rt = litewf.Runtime("never-opened.db")

    @rt.step(name="part")
    async def part(i: int) -> int:
        LOG.append(f"part {i}")
        return i

    @rt.workflow(name="fanout")
    async def fanout() -> int:
        done = await asyncio.gather(*(part(i) for i in range(width)))
        await rt.recv("more", timeout=0)
        return sum(done)

    return rt


async def test_concurrent_calls_stop_together_at_the_end_of_the_history(tmp_path: Path) -> None:
    """Steps gathered at once: the history's end stops every one of them, none runs."""
    path = tmp_path / "fan.db"
    rt = fanout_app(2)
    rt.path = str(path)
    crash = crash_at(rt, before_step="recv")  # ops 0 and 1 recorded, then the process died
    async with rt:
        await rt.start_workflow(rt._executor.workflows["fanout"], workflow_id="f")
        with anyio.fail_after(WAIT):
            await crash.wait()
    LOG.clear()
    assert (await check_replay(fanout_app(2), path)).ok
    wider = await check_replay(fanout_app(4), path)  # ops 2, 3: new work, not a divergence
    assert wider.ok and LOG == []
    narrower = await check_replay(fanout_app(1), path)  # op 1 was a part, now a recv
    assert found(narrower) == {("f", 1)}
    assert LOG == []


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", "no litewf schema"),
        (b"hello, not a database" * 50, "not an SQLite database"),
        (None, "no such database"),
    ],
)
async def test_a_file_that_is_not_a_litewf_database_is_refused(
    tmp_path: Path, content: bytes | None, error: str
) -> None:
    path = tmp_path / "x.db"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(litewf.DatabaseError, match=error):
        await check_replay(build("same"), path)
    assert (path.read_bytes() if content is not None else None) == content


async def test_foreign_newer_and_damaged_files_are_refused_untouched(
    db: Path, tmp_path: Path
) -> None:
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(litewf.ForeignDatabaseError):
        await check_replay(build("same"), foreign)
    newer = tmp_path / "newer.db"
    shutil.copy(db, newer)
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 9999")
    with pytest.raises(litewf.SchemaTooNewError):
        await check_replay(build("same"), newer)
    damaged = damage(db, tmp_path / "damaged.db")
    before = damaged.read_bytes()
    try:
        report = await check_replay(build("same"), damaged)
    except litewf.DatabaseError:
        pass  # refused whole: fine
    else:
        assert not report.ok  # else the damage shows as workflows that cannot be replayed
    assert damaged.read_bytes() == before


async def test_tampered_rows_are_findings_naming_the_users_file(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE workflows SET inputs = '{not json' WHERE workflow_id = 'order-wait'")
        conn.execute(
            "UPDATE operations SET error = 'garbage' WHERE workflow_id = 'order-done' "
            "AND op_id = 11"
        )
    report = await check_replay(build("same"), db)
    bad = {d.workflow_id: d for d in report.divergences}
    assert set(bad) == {"order-wait", "order-done"}, report
    assert all(d.op_id is None and "cannot be replayed" in d.message for d in bad.values())
    assert "arguments of 'order-wait'" in bad["order-wait"].message
    assert str(db) in bad["order-done"].message  # the user's file, not the copy
    assert "litewf-check-" not in str(report)


# -- the command line ----------------------------------------------------------------------


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "litewf", "check-replay", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def app(tmp_path: Path, name: str, variant: str) -> None:
    (tmp_path / f"{name}.py").write_text(
        f"from tests.test_check_replay import build\nrt = build({variant!r})\nnot_rt = 42\n"
    )


def test_the_command_exits_0_1_or_2_with_readable_output(db: Path, tmp_path: Path) -> None:
    app(tmp_path, "good_app", "same")
    app(tmp_path, "bad_app", "event-key")
    ok = cli(tmp_path, "--app", "good_app:rt", str(db))
    assert ok.returncode == 0, ok.stderr
    assert "replayed 7 workflows" in ok.stdout and "all match" in ok.stdout
    bad = cli(tmp_path, "--app", "bad_app:rt", "prod.db", "--status", "pending")
    assert bad.returncode == 1, bad.stderr
    assert "DIVERGED order-wait (order): operation #1 was recorded as" in bad.stdout
    assert "set_event(key='url')" in bad.stdout and "set_event(key='link')" in bad.stdout
    as_json = cli(tmp_path, "--app", "bad_app:rt", str(db), "--json")
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert data["ok"] is False and data["checked"] == 6
    assert [u["workflow_id"] for u in data["unknown"]] == ["legacy-1"]
    assert {(d["workflow_id"], d["op_id"]) for d in data["divergences"]} == EXPECTED["event-key"]
    app(tmp_path, "retired_app", "deprecated-patch")  # "legacy" (PENDING) not registered
    retired = cli(tmp_path, "--app", "retired_app:rt", str(db))
    assert retired.returncode == 0, retired.stderr
    assert "1 workflow named 'legacy' not checked" in retired.stdout
    strict = cli(tmp_path, "--app", "retired_app:rt", str(db), "--fail-on-unknown")
    assert strict.returncode == 1, strict.stderr
    for args, message in [
        (["--app", "good_app", str(db)], "module:attribute"),
        (["--app", "no_such_module:rt", str(db)], "cannot import module 'no_such_module'"),
        (["--app", "good_app:nope", str(db)], "has no attribute 'nope'"),
        (["--app", "good_app:not_rt", str(db)], "is not a litewf.Runtime"),
        ([str(db)], "--app"),
        (["--app", "good_app:rt", str(db), "--timeout", "0"], "seconds > 0"),
    ]:
        usage = cli(tmp_path, *args)
        assert usage.returncode == 2, (args, usage.stdout, usage.stderr)
        assert message in usage.stderr, (args, usage.stderr)
        assert "Traceback" not in usage.stderr
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"junk" * 100)
    refused = cli(tmp_path, "--app", "good_app:rt", str(junk))
    assert refused.returncode == 1
    assert "not an SQLite database" in refused.stderr and "Traceback" not in refused.stderr


def scheduled_app(path: Path, step_name: str) -> litewf.Runtime:
    """A scheduled workflow: litewf passes it ``scheduled_at``, which the check must too."""
    rt = litewf.Runtime(path)

    @rt.step(name=step_name)
    async def note(text: str) -> str:
        LOG.append(text)
        return text

    @rt.scheduled(every=timedelta(hours=1))
    @rt.workflow(name="tick")
    async def tick(scheduled_at: datetime) -> str:
        return await note(scheduled_at.isoformat())

    return rt


async def test_a_scheduled_workflow_replays_with_its_scheduled_at(tmp_path: Path) -> None:
    path = tmp_path / "ticks.db"
    rt = scheduled_app(path, "note")
    async with rt:
        handle = await rt.trigger_schedule("tick")
        with anyio.fail_after(WAIT):
            await handle.get_result()
    LOG.clear()
    assert (await check_replay(scheduled_app(path, "note"), path)).ok
    assert found(await check_replay(scheduled_app(path, "other"), path)) == {
        (handle.workflow_id, 0)
    }
    assert LOG == []


def sync_app(path: Path, step_name: str) -> litewf.SyncRuntime:
    srt = litewf.SyncRuntime(path)

    @srt.step(name=step_name)
    def note(text: str) -> str:
        LOG.append(text)
        return text

    @srt.workflow(name="plain")
    def plain(text: str) -> str:
        return note(text) + note(text)

    return srt


async def test_a_def_workflow_replays(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"

    def run() -> None:
        with sync_app(path, "note") as srt:
            srt.start_workflow(srt.runtime._executor.workflows["plain"], "x", workflow_id="p")
            assert srt.retrieve_workflow("p").get_result(timeout=WAIT) == "xx"

    await anyio.to_thread.run_sync(run)
    LOG.clear()
    assert (await check_replay(sync_app(path, "note").runtime, path)).ok
    assert found(await check_replay(sync_app(path, "other").runtime, path)) == {("p", 0)}
    assert LOG == []

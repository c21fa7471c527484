"""Schedules: every tick exactly once (one process on a virtual week, two real processes,
a crash at a tick), missed ticks by policy, daylight-saving days, and run-time
management from a Runtime, a Client and the CLI."""

from __future__ import annotations

import itertools
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import pytest

import litewf
from litewf import ScheduleNotFoundError
from litewf._cli import main
from litewf._schema import SCHEMA_VERSION
from litewf._ticks import tick_id
from litewf.testing import VirtualClock, crash_at
from tests import procs, sqldb
from tests.conditions import wait_until

HOUR = 3600.0
#: A Monday, 00:00 UTC.
MONDAY = datetime(2026, 1, 5, tzinfo=UTC).timestamp()


def column(db: Path, sql: str, *params: Any) -> list[Any]:
    con = sqldb.connect(db)
    try:
        return [row[0] for row in con.execute(sql, params)]
    finally:
        con.close()


def run_ids(db: Path, schedule: str) -> list[str]:
    return column(
        db,
        "SELECT workflow_id FROM workflows WHERE workflow_id LIKE ? ORDER BY workflow_id",
        f"schedule:{schedule}:%",
    )


async def step_to_next_tick(clock: VirtualClock, seen: list[Any]) -> None:
    """Advance the clock to the scheduler's next wake-up; wait for the run it fires."""
    await wait_until(lambda: (clock.next_deadline or 0) > clock.time())
    deadline = clock.next_deadline
    assert deadline is not None
    count = len(seen)
    clock.advance(deadline - clock.time())
    await wait_until(lambda: len(seen) > count)


# -- exactly once ------------------------------------------------------------------------


async def test_a_week_of_quarter_hours_runs_every_tick_once(db_path: Path) -> None:
    """672 ticks of ``*/15 * * * *`` on the virtual clock, each run once, on time."""
    clock = VirtualClock(start=MONDAY)
    rt = litewf.Runtime(db_path, clock=clock)
    seen: list[datetime] = []

    @rt.scheduled(cron="*/15 * * * *")
    @rt.workflow(name="quarter")
    async def quarter(scheduled_at: datetime) -> str:
        seen.append(scheduled_at)
        return scheduled_at.isoformat()

    async with rt:
        for _ in range(7 * 96):
            await step_to_next_tick(clock, seen)
            assert clock.time() == seen[-1].timestamp()  # woken at the tick, not later
    expected = [MONDAY + 900 * k for k in range(1, 7 * 96 + 1)]
    assert [s.timestamp() for s in seen] == expected  # the side effect: each once, in order
    assert all(s.tzinfo is not None and s.utcoffset() == timedelta(0) for s in seen)
    assert run_ids(db_path, "quarter") == sorted(tick_id("quarter", t) for t in expected)


async def test_two_processes_share_a_schedule_each_tick_once(tmp_path: Path) -> None:
    """Two real processes, real clock, ``every=1 s`` for ~5 s: each tick runs once."""
    db = tmp_path / "shared.db"
    async with litewf.Runtime(db):
        pass  # create the file, so both children open an existing database
    children = [procs.spawn("schedules", "share", db, tmp_path, "5") for _ in range(2)]
    for child in children:
        await procs.finish_async(child)
    ids = run_ids(db, "beat")
    lines = []
    for child in children:  # (a process may win no tick: whoever wakes first fires it)
        ran = tmp_path / f"ran-{child.pid}"
        lines += ran.read_text().split() if ran.exists() else []
    done = column(
        db, "SELECT workflow_id FROM workflows WHERE status = 'SUCCESS' ORDER BY workflow_id"
    )
    assert sorted(lines) == done  # the side effect: every finished tick ran once, no more
    # A tick fired as both processes shut down stays PENDING for the next runtime's
    # recovery (shutdown does not wait for it): only the last ones, never one between.
    left = [wid for wid in ids if wid not in done]
    assert left == ids[len(ids) - len(left) :] and len(left) <= 2
    assert set(column(db, "SELECT status FROM workflows WHERE status <> 'SUCCESS'")) <= {"PENDING"}
    ticks = [datetime.fromisoformat(i.split(":", 2)[2]).timestamp() for i in ids]
    assert len(ticks) >= 3
    assert ticks == [ticks[0] + k for k in range(len(ticks))]  # no tick lost between


async def test_a_sigkill_around_a_tick_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """A process SIGKILLed while it fires ticks; a new runtime catches up (``all``)."""
    db = tmp_path / "crash.db"
    async with litewf.Runtime(db):
        pass
    child = procs.spawn("schedules", "share", db, tmp_path, "60")
    mine = tmp_path / f"ran-{child.pid}"
    await wait_until(lambda: mine.exists() and len(mine.read_text().split()) >= 2, 30)
    procs.kill(child)
    rt = litewf.Runtime(db, recovery_interval=0.1)
    ran: list[str] = []

    @rt.scheduled(every=timedelta(seconds=1), missed="all")
    @rt.workflow(name="beat")
    async def beat(scheduled_at: datetime) -> None:
        ran.append(tick_id("beat", scheduled_at.timestamp()))

    async with rt:
        await wait_until(lambda: len(ran) >= 3, 30)
        await wait_until(lambda: set(column(db, "SELECT status FROM workflows")) == {"SUCCESS"}, 30)
    ids = run_ids(db, "beat")
    ticks = [datetime.fromisoformat(i.split(":", 2)[2]).timestamp() for i in ids]
    assert ticks == [ticks[0] + k for k in range(len(ticks))]
    done_there = mine.read_text().split()
    # A run the kill interrupted ran again here (its body may have run in both).
    assert set(done_there) | set(ran) == set(ids)
    assert len(ran) == len(set(ran)) and len(done_there) == len(set(done_there))


async def test_a_crash_after_firing_a_tick_runs_it_once_after_recovery(db_path: Path) -> None:
    """The tick is fired (row and cursor committed), the runtime dies before its step:
    the next runtime runs that workflow, fires no second one for the tick."""
    clock = VirtualClock(start=MONDAY)
    effects: list[str] = []

    def build() -> litewf.Runtime:
        rt = litewf.Runtime(db_path, clock=clock)

        @rt.step("work")
        async def work(at: str) -> None:
            effects.append(at)

        @rt.scheduled(every=timedelta(hours=1))
        @rt.workflow(name="hourly")
        async def hourly(scheduled_at: datetime) -> None:
            await work(scheduled_at.isoformat())

        return rt

    rt = build()
    crash = crash_at(rt, before_step="work")
    async with rt:
        await wait_until(lambda: (clock.next_deadline or 0) > clock.time())
        clock.advance(HOUR)
        await crash.wait()
    assert effects == []
    assert run_ids(db_path, "hourly") == [tick_id("hourly", MONDAY + HOUR)]
    async with build() as rt:
        handle = await rt.retrieve_workflow(tick_id("hourly", MONDAY + HOUR))
        await handle.get_result()
    assert len(effects) == 1
    assert run_ids(db_path, "hourly") == [tick_id("hourly", MONDAY + HOUR)]
    assert column(db_path, "SELECT status FROM workflows") == ["SUCCESS"]


# -- missed ticks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("missed", "hours"), [("skip", [1, 5]), ("latest", [1, 4, 5]), ("all", [1, 2, 3, 4, 5])]
)
async def test_missed_ticks_while_down(db_path: Path, missed: str, hours: list[int]) -> None:
    """Hourly; down from just after tick 1 until half past tick 4; then tick 5."""
    clock = VirtualClock(start=MONDAY)
    seen: list[datetime] = []

    def build() -> litewf.Runtime:
        rt = litewf.Runtime(db_path, clock=clock)

        @rt.scheduled(every=timedelta(hours=1), missed=missed)
        @rt.workflow(name="hourly")
        async def hourly(scheduled_at: datetime) -> None:
            seen.append(scheduled_at)

        return rt

    async with build():
        await step_to_next_tick(clock, seen)
        # Tick 1's run has ended before shutdown (else the next launch resumes it, and a
        # body without steps runs again: allowed, but not what this test counts).
        await wait_until(
            lambda: not column(db_path, "SELECT 1 FROM workflows WHERE status <> ?", "SUCCESS")
        )
    clock.advance(3.5 * HOUR)  # ticks 2, 3 and 4 pass while nothing runs
    async with build() as rt:
        await wait_until(lambda: len(seen) == len(hours) - 1)
        await step_to_next_tick(clock, seen)
        record = await rt.get_schedule("hourly")
        assert record is not None and record.missed == missed
    assert [round((s.timestamp() - MONDAY) / HOUR) for s in seen] == hours
    assert len(run_ids(db_path, "hourly")) == len(hours)


# -- daylight saving ------------------------------------------------------------------------


DST_DAYS = [
    # zone, the day, wall times of "30 2 * * *", of "0 1-3 * * *", count of "*/30 * * * *"
    ("Europe/Paris", (2026, 3, 29), ["03:00+02:00"], ["01:00+01:00", "03:00+02:00"], 46),
    (
        "Europe/Paris",
        (2026, 10, 25),
        ["02:30+02:00"],
        ["01:00+02:00", "02:00+02:00", "03:00+01:00"],
        50,
    ),
    ("America/New_York", (2026, 3, 8), ["03:00-04:00"], ["01:00-05:00", "03:00-04:00"], 46),
    (
        "America/New_York",
        (2026, 11, 1),
        ["02:30-05:00"],
        ["01:00-04:00", "02:00-05:00", "03:00-05:00"],
        50,
    ),
]


@pytest.mark.parametrize(("tz", "day", "at_230", "at_1_to_3", "halves"), DST_DAYS)
async def test_daylight_saving_days(
    db_path: Path,
    tz: str,
    day: tuple[int, int, int],
    at_230: list[str],
    at_1_to_3: list[str],
    halves: int,
) -> None:
    """Fixed times follow the wall clock (a skipped 02:30 runs once at the jump, a
    repeated one once); ``*/30`` follows real time (every 30 minutes through both)."""
    start = datetime(*day, tzinfo=ZoneInfo(tz))
    end = start.timestamp() + 27 * HOUR  # past the day's end, whatever its length
    clock = VirtualClock(start=start.timestamp())
    rt = litewf.Runtime(db_path, clock=clock)
    seen: dict[str, list[datetime]] = {"fixed": [], "range": [], "halves": []}
    every: list[datetime] = []
    for name, cron in (
        ("fixed", "30 2 * * *"),
        ("range", "0 1-3 * * *"),
        ("halves", "*/30 * * * *"),
    ):

        def make(key: str) -> Any:
            async def body(scheduled_at: datetime) -> None:
                seen[key].append(scheduled_at)
                every.append(scheduled_at)

            return body

        rt.scheduled(cron=cron, tz=tz)(rt.workflow(name=name)(make(name)))
    async with rt:
        while clock.time() < end:
            await step_to_next_tick(clock, every)
    on_day = {key: [s for s in values if s.date() == start.date()] for key, values in seen.items()}
    assert [s.isoformat(timespec="minutes")[11:] for s in on_day["fixed"]] == at_230
    assert [s.isoformat(timespec="minutes")[11:] for s in on_day["range"]] == at_1_to_3
    halves_at = [s.timestamp() for s in on_day["halves"]]
    assert len(halves_at) == halves - 1  # (00:00 itself was the start: not a tick after it)
    assert all(b - a == 1800 for a, b in itertools.pairwise(halves_at))
    assert all(s.tzinfo == ZoneInfo(tz) for s in every)


# -- run-time management ---------------------------------------------------------------------


@pytest.mark.sqlite_only
async def test_runtime_manages_schedules(db_path: Path) -> None:
    clock = VirtualClock(start=MONDAY)
    rt = litewf.Runtime(db_path, clock=clock)
    seen: list[datetime] = []

    @rt.workflow(name="report")
    async def report(scheduled_at: datetime) -> float:
        seen.append(scheduled_at)
        return scheduled_at.timestamp()

    async with rt:
        assert await rt.list_schedules() == []
        await rt.create_schedule("daily", report, cron="0 9 * * *", tz="Europe/Paris")
        record = await rt.get_schedule("daily")
        assert record is not None
        assert (record.workflow_name, record.cron, record.every) == ("report", "0 9 * * *", None)
        assert record.next_tick == datetime(2026, 1, 5, 9, tzinfo=ZoneInfo("Europe/Paris"))
        assert not record.paused and record.missed == "latest"
        # trigger: one run now, at once, with scheduled_at = now
        handle = await rt.trigger_schedule("daily")
        assert await handle.get_result() == MONDAY
        # pause: the 09:00 tick passes without a run; resume: the next one runs
        await rt.pause_schedule("daily")
        assert (await rt.get_schedule("daily")).paused  # type: ignore[union-attr]
        clock.advance(24 * HOUR)
        await anyio.sleep(0.05)
        assert len(seen) == 1
        await rt.resume_schedule("daily")
        record = await rt.get_schedule("daily")
        assert record is not None and not record.paused
        assert record.next_tick == datetime(2026, 1, 6, 9, tzinfo=ZoneInfo("Europe/Paris"))
        # backfill the week before: seven runs; again: the same handles, nothing re-run
        week = datetime(2025, 12, 29, tzinfo=UTC), datetime(2026, 1, 5, tzinfo=UTC)
        handles = await rt.backfill_schedule("daily", *week)
        first = datetime(2025, 12, 29, 9, tzinfo=ZoneInfo("Europe/Paris"))
        assert [await h.get_result() for h in handles] == [
            (first + timedelta(days=d)).timestamp() for d in range(7)
        ]
        again = await rt.backfill_schedule("daily", *week)
        assert [h.workflow_id for h in again] == [h.workflow_id for h in handles]
        assert len(seen) == 1 + 7
        # replace: another timing, the pause state kept
        await rt.pause_schedule("daily")
        await rt.create_schedule("daily", report, every=timedelta(hours=6), missed="all")
        record = await rt.get_schedule("daily")
        assert record is not None and record.paused and record.every == timedelta(hours=6)
        assert record.cron is None and record.missed == "all"
        await rt.delete_schedule("daily")
        assert await rt.get_schedule("daily") is None
        assert await rt.list_schedules() == []
        for call in (
            rt.pause_schedule,
            rt.resume_schedule,
            rt.trigger_schedule,
            rt.delete_schedule,
        ):
            with pytest.raises(ScheduleNotFoundError, match="no schedule named 'daily'"):
                await call("daily")
        with pytest.raises(ScheduleNotFoundError):
            await rt.backfill_schedule("daily", *week)
    assert column(db_path, "PRAGMA user_version") == [SCHEMA_VERSION]


async def test_client_manages_schedules_a_runtime_runs(db_path: Path) -> None:
    """A Client creates, triggers and back-fills; the runtime that has the workflow
    runs what the Client stored (PENDING, unowned), and fires the Client's schedule."""
    rt = litewf.Runtime(db_path, recovery_interval=0.05)
    seen: list[datetime] = []

    @rt.workflow(name="job")
    async def job(scheduled_at: datetime) -> str:
        seen.append(scheduled_at)
        return scheduled_at.tzname() or ""

    async with rt, litewf.Client(db_path) as client:
        await client.create_schedule("c", "job", every=timedelta(hours=1), tz="Asia/Tokyo")
        assert [r.name for r in await rt.list_schedules()] == ["c"]
        handle = await client.trigger_schedule("c")
        assert await handle.get_result(timeout=10) == "JST"
        start = datetime(2026, 1, 1, tzinfo=UTC)
        handles = await client.backfill_schedule("c", start, start + timedelta(hours=3))
        assert [await h.get_result(timeout=10) for h in handles] == ["JST"] * 3
        await client.pause_schedule("c")
        assert (await client.get_schedule("c")).paused  # type: ignore[union-attr]
        await client.resume_schedule("c")
        await client.delete_schedule("c")
        assert await client.list_schedules() == []
        # the runtime's loop notices a new schedule at once (a SCHEDULE change)
        await client.create_schedule("d", "job", every=timedelta(seconds=1), missed="all")
        await wait_until(lambda: len(seen) >= 6, 10)
        await client.delete_schedule("d")
    assert len(seen) >= 5


def cli(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--db", str(db), "schedule", *args])
    out, err = capsys.readouterr()
    return code, out, err


async def test_cli_schedule_commands(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rt = litewf.Runtime(db_path, recovery_interval=0.05)
    seen: list[datetime] = []

    @rt.scheduled(cron="0 0 1 1 *", tz="Europe/Paris")
    @rt.workflow(name="yearly")
    async def yearly(scheduled_at: datetime) -> None:
        seen.append(scheduled_at)

    async with rt:
        pass  # the launch stored the schedule

    async def cmd(*args: str) -> tuple[int, str, str]:
        # (in a thread: the CLI runs an event loop of its own)
        return await anyio.to_thread.run_sync(lambda: cli(capsys, db_path, *args))

    code, out, _ = await cmd("list")
    assert code == 0 and "yearly" in out and "0 0 1 1 *" in out and "active" in out
    assert (await cmd("pause", "yearly"))[0] == 0
    code, out, _ = await cmd("list", "--json")
    assert json.loads(out)[0]["paused"] is True
    assert (await cmd("resume", "yearly"))[0] == 0
    code, out, _ = await cmd("trigger", "yearly", "--json")
    (triggered,) = json.loads(out)
    code, out, _ = await cmd("backfill", "yearly", "2020-01-01T00:00+00:00", "2023-01-01T00:00Z")
    backfilled = out.split()
    assert backfilled == [
        tick_id("yearly", datetime(y, 1, 1, tzinfo=ZoneInfo("Europe/Paris")).timestamp())
        for y in (2021, 2022, 2023)  # 2023-01-01 in Paris is before 2023-01-01 UTC
    ]
    # Stored PENDING and unowned: the CLI runs nothing; a runtime with the function does.
    assert column(db_path, "SELECT executor_id FROM workflows") == [None] * 4
    async with rt:
        await wait_until(lambda: len(seen) == 4)
        handle = await rt.retrieve_workflow(triggered)
        await handle.get_result()
    code, out, err = await cmd("backfill", "yearly", "2020-01-01T00:00", "2023-01-01T00:00Z")
    assert code == 1 and "timezone-aware" in err
    code, out, err = await cmd("backfill", "yearly", "soon")
    assert code == 1 and "ISO time" in err
    assert (await cmd("delete", "yearly"))[0] == 0
    code, out, err = await cmd("pause", "yearly")
    assert code == 1 and "no schedule named 'yearly'" in err
    code, out, _ = await cmd("list")
    assert out == "no schedules\n"


def test_cron_without_the_extra_names_it(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without cronsim, cron= says which extra to install; every= still works."""
    monkeypatch.setitem(sys.modules, "cronsim", None)  # "import cronsim" now fails
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="job")
    async def job(scheduled_at: datetime) -> None: ...

    with pytest.raises(litewf.InvalidValueError, match=r"pip install 'litewf\[cron\]'"):
        rt.scheduled(cron="*/5 * * * *")(job)
    rt.scheduled(every=timedelta(minutes=5))(job)


async def test_scheduled_at_is_litewf_input_not_the_users(db_path: Path) -> None:
    """A tick's stored arguments hold litewf's own entry (JSON: no datetime in it); the
    workflow gets an aware datetime in the schedule's zone, rebuilt on every run."""
    clock = VirtualClock(start=MONDAY)
    rt = litewf.Runtime(db_path, clock=clock)

    @rt.workflow(name="job")
    async def job(scheduled_at: datetime) -> str:
        return scheduled_at.isoformat()

    async with rt:
        await rt.create_schedule("s", job, every=timedelta(hours=1), tz="America/New_York")
        (handle,) = await rt.backfill_schedule(
            "s", datetime(2026, 1, 5, 14, tzinfo=UTC), datetime(2026, 1, 5, 15, tzinfo=UTC)
        )
        assert await handle.get_result() == "2026-01-05T09:00:00-05:00"
    (inputs,) = column(db_path, "SELECT inputs FROM workflows")
    assert json.loads(inputs) == {
        "args": [],
        "kwargs": {},
        "schedule": {"name": "s", "at": MONDAY + 14 * HOUR, "tz": "America/New_York"},
    }


async def test_schedule_calls_inside_a_workflow_are_operations(db_path: Path) -> None:
    """Recorded: a crash after them replays their outcomes (no second trigger, the same
    reads, the same refusal), and list_steps shows them."""
    clock = VirtualClock(start=MONDAY)
    runs: list[datetime] = []

    def build() -> tuple[litewf.Runtime, Any]:
        rt = litewf.Runtime(db_path, clock=clock)

        @rt.workflow(name="job")
        async def job(scheduled_at: datetime) -> None:
            runs.append(scheduled_at)

        @rt.workflow(name="admin")
        async def admin() -> list[Any]:
            await rt.create_schedule("s", job, every=timedelta(hours=1))
            handle = await rt.trigger_schedule("s")
            record = await rt.get_schedule("s")
            names = [r.name for r in await rt.list_schedules()]
            await rt.pause_schedule("s")
            try:
                await rt.delete_schedule("nope")
            except ScheduleNotFoundError as exc:
                refused = str(exc)
            assert record is not None
            await rt.sleep(60)  # the crash comes here
            assert record.every == timedelta(hours=1)
            return [handle.workflow_id, record.name, names, refused]

        return rt, admin

    rt, admin = build()
    crash = crash_at(rt, before_step="sleep")
    async with rt:
        await rt.start_workflow(admin, workflow_id="a")
        await crash.wait()
    await_ids = run_ids(db_path, "s")
    assert len(await_ids) == 1
    clock.advance(HOUR / 2)  # a replay at another time must not see another "now"
    rt, admin = build()
    async with rt:
        await rt.resume_schedule("s")  # (only to show a replay does not pause it again)
        handle = await rt.retrieve_workflow("a")
        # Advance only once the recovered run waits in its sleep: a run still replaying
        # would compute its wake-up time from the advanced clock.
        while not [s for s in await rt.list_steps("a") if s.kind == "sleep"]:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        await clock.wait_idle()
        clock.advance(60)
        result = await handle.get_result()
        steps = await rt.list_steps("a")
        assert not (await rt.get_schedule("s")).paused  # type: ignore[union-attr]
    assert result[0] == await_ids[0] and result[2] == ["s"]
    assert "no schedule named 'nope'" in result[3]
    assert run_ids(db_path, "s") == await_ids  # the trigger was not made again
    assert [s.kind for s in steps[:6]] == ["schedule"] * 6


async def test_a_damaged_schedule_row_is_left_out_and_named(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A hand-edited schedule stops only itself: the others still run, the log and
    get_schedule name the damaged one."""
    clock = VirtualClock(start=MONDAY)
    rt = litewf.Runtime(db_path, clock=clock)
    seen: list[datetime] = []

    @rt.workflow(name="job")
    async def job(scheduled_at: datetime) -> None:
        seen.append(scheduled_at)

    async with rt:
        await rt.create_schedule("bad", job, every=timedelta(hours=1))
        await rt.create_schedule("good", job, every=timedelta(hours=1))
    con = sqldb.connect(db_path)
    with con:
        con.execute("UPDATE schedules SET tz = 'Nowhere/Atlantis' WHERE name = 'bad'")
    con.close()
    async with rt:
        await step_to_next_tick(clock, seen)
        with pytest.raises(litewf.CorruptDatabaseError, match=r"schedules\.tz"):
            await rt.get_schedule("bad")
    assert run_ids(db_path, "good") == [tick_id("good", MONDAY + HOUR)]
    assert run_ids(db_path, "bad") == []
    assert "cannot run schedule 'bad'" in caplog.text


async def test_a_schedule_made_elsewhere_wakes_the_scheduler_at_once(db_path: Path) -> None:
    """The loop waits up to recovery_interval (here 60 s) when it has nothing to do; a
    schedule created by a Client in another connection wakes it through the change feed."""
    rt = litewf.Runtime(db_path, recovery_interval=60)
    seen: list[datetime] = []

    @rt.workflow(name="job")
    async def job(scheduled_at: datetime) -> None:
        seen.append(scheduled_at)

    async with rt, litewf.Client(db_path) as client:
        await anyio.sleep(0.1)  # the loop has looked, found nothing, and waits
        await client.create_schedule("soon", "job", every=timedelta(seconds=1))
        await wait_until(lambda: len(seen) >= 1, 5)
        await client.pause_schedule("soon")


@pytest.mark.sqlite_only
async def test_a_database_from_before_schedules_is_migrated(db_path: Path) -> None:
    """The schedules migration keeps every workflow and adds the table (wherever the
    lead numbers it: found by its content)."""
    from litewf._schema import APPLICATION_ID, MIGRATIONS

    index = next(i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE schedules" in m)
    con = sqldb.connect(db_path)
    for script in MIGRATIONS[:index]:
        con.executescript(script)
    con.execute(
        "INSERT INTO workflows (workflow_id, name, status, inputs, output, created_at, "
        "updated_at) VALUES ('old', 'job', 'SUCCESS', '{\"args\":[],\"kwargs\":{}}', '1', 1, 1)"
    )
    con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    con.execute(f"PRAGMA user_version = {index}")
    con.commit()
    con.close()
    clock = VirtualClock(start=MONDAY)
    rt = litewf.Runtime(db_path, clock=clock)
    seen: list[datetime] = []

    @rt.scheduled(every=timedelta(minutes=5))
    @rt.workflow(name="job")
    async def job(scheduled_at: datetime | None = None) -> int:
        if scheduled_at is not None:
            seen.append(scheduled_at)
        return 1

    async with rt:
        assert await (await rt.retrieve_workflow("old")).get_result() == 1
        await step_to_next_tick(clock, seen)
    assert column(db_path, "PRAGMA user_version") == [SCHEMA_VERSION]
    assert seen == [datetime.fromtimestamp(MONDAY + 300, ZoneInfo("UTC"))]


@pytest.mark.parametrize(("late", "runs"), [(30.0, True), (90.0, False)])
async def test_a_tick_reached_within_a_minute_is_on_time(
    db_path: Path, late: float, runs: bool
) -> None:
    """``skip`` passes over missed ticks only: one the scheduler reaches less than 60 s
    after its time (a busy machine, a wake-up from sleep) still runs."""
    clock = VirtualClock(start=MONDAY)
    rt = litewf.Runtime(db_path, clock=clock)
    seen: list[datetime] = []

    @rt.scheduled(every=timedelta(hours=1), missed="skip")
    @rt.workflow(name="job")
    async def job(scheduled_at: datetime) -> None:
        seen.append(scheduled_at)

    async with rt:
        pass
    clock.advance(HOUR + late)  # nothing ran at the tick
    async with rt:
        if runs:
            await wait_until(lambda: len(seen) == 1)
        await step_to_next_tick(clock, seen)  # the tick after: always runs
    expected = [MONDAY + HOUR, MONDAY + 2 * HOUR] if runs else [MONDAY + 2 * HOUR]
    assert [s.timestamp() for s in seen] == expected


async def test_a_backfill_is_bounded(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="job")
    async def job(scheduled_at: datetime) -> None: ...

    async with rt:
        await rt.create_schedule("m", job, every=timedelta(minutes=1))
        start = datetime(2026, 1, 1, tzinfo=UTC)
        with pytest.raises(litewf.InvalidValueError, match="back-fill a shorter range"):
            await rt.backfill_schedule("m", start, start + timedelta(days=7))
        assert await rt.backfill_schedule("m", start, start) == []
        assert await rt.backfill_schedule("m", start + timedelta(days=1), start) == []
    assert column(db_path, "SELECT count(*) FROM workflows") == [0]


WILDCARD_CRONS = ["*/7 * * * *", "5,35 * * * *", "*/20 1-3 * * *", "0 * * * *", "*/45 * * * *"]
DST_ZONES = [
    ("Europe/Paris", (2026, 3, 29)),
    ("Europe/Paris", (2026, 10, 25)),
    ("America/New_York", (2026, 11, 1)),
    ("Australia/Lord_Howe", (2026, 4, 5)),  # a half-hour change
]


@pytest.mark.parametrize("cron", WILDCARD_CRONS)
@pytest.mark.parametrize(("tz", "day"), DST_ZONES)
def test_wildcard_cron_ticks_are_the_instants_whose_wall_time_matches(
    cron: str, tz: str, day: tuple[int, int, int]
) -> None:
    """Against brute force: every minute of two days around a change, kept if its wall
    time in the zone matches the expression (both copies of a repeated hour)."""
    from cronsim import CronSim

    from litewf._ticks import check_spec

    zone = ZoneInfo(tz)
    start = datetime(*day, tzinfo=zone).timestamp() - 86400
    expected = []
    for minute in range(2 * 24 * 60):
        at = start + 60 * minute
        wall = datetime.fromtimestamp(at, zone).replace(tzinfo=None)
        if next(CronSim(cron, wall - timedelta(minutes=1))) == wall:
            expected.append(at)
    spec = check_spec(cron, None, tz, "all")
    found = []
    for tick in spec.after(start - 1):
        if tick >= start + 2 * 86400:
            break
        found.append(tick)
    assert found == expected

"""``litewf migrate``: a whole database copied SQLite -> PostgreSQL -> SQLite, every row
kept; a non-empty target refused."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio

import litewf
from litewf._cli import main
from litewf._copysql import TABLES


async def cli(argv: list[str]) -> int:
    """The command line, run on its own event loop in a thread (as from a shell)."""
    return await anyio.to_thread.run_sync(main, argv)


def dump(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(db)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
            for table, key in TABLES
        }
    finally:
        conn.close()


async def fill(db: Path) -> None:
    """A database with a row in every table."""
    rt = litewf.Runtime(db)

    @rt.step(name="double")
    async def double(x: int) -> int:
        return 2 * x

    @rt.workflow(name="m.flow")
    async def flow(x: int) -> int:
        await rt.set_event("seen", x)
        await rt.write_stream("s", x)
        await rt.close_stream("s")
        return await double(x)

    @rt.workflow(name="m.waiter")
    async def waiter() -> Any:
        return await rt.recv(timeout=3600)

    @rt.scheduled(every=timedelta(hours=1))
    @rt.workflow(name="m.hourly")
    async def hourly(scheduled_at: Any) -> None:
        pass

    async with rt:
        for i in range(5):
            await (await rt.start_workflow(flow, i)).get_result(timeout=10)
        await rt.start_workflow(waiter, workflow_id="waiting")
        await rt.send("waiting", "a", topic="t", idempotency_key="k1")
        await rt.send("waiting", "b", topic="t")


async def test_round_trip_sqlite_postgres_sqlite_keeps_every_row(
    tmp_path: Path, pg_url: str
) -> None:
    source, back = tmp_path / "source.db", tmp_path / "back.db"
    await fill(source)
    assert await cli(["migrate", "--from", str(source), "--to", pg_url]) == 0
    assert await cli(["migrate", "--from", pg_url, "--to", str(back)]) == 0
    before, after = dump(source), dump(back)
    assert all(before[table] for table in ("workflows", "operations", "events", "streams"))
    assert before["messages"] and before["message_keys"] and before["schedules"]
    assert after == before
    async with litewf.Client(pg_url) as client:  # the copy is usable where it landed
        status = await (await client.retrieve_workflow("waiting")).get_status()
        assert status.status == "PENDING"
        assert await client.send("waiting", "c") is True


async def test_a_target_with_rows_is_refused(tmp_path: Path, capsys: Any) -> None:
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    await fill(source)
    await fill(target)
    assert await cli(["migrate", "--from", str(source), "--to", str(target)]) == 1
    assert "empty database" in capsys.readouterr().err

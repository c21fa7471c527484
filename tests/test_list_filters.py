"""list_workflows' filters: created since / until, ID prefix, parent (issue 17)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import anyio

import litewf
from tests import sqldb


async def _tree(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def leaf(n: int) -> int:
        return n

    @rt.workflow()
    async def root() -> int:
        a = await rt.start_workflow(leaf, 1, workflow_id="kid-1")
        b = await rt.start_workflow(leaf, 2, workflow_id="kid-2")
        return int(await a.get_result()) + int(await b.get_result())

    async with rt:
        await (await rt.start_workflow(root, workflow_id="order-1")).get_result()
        await (await rt.start_workflow(leaf, 3, workflow_id="order-2")).get_result()
        await (await rt.start_workflow(leaf, 4, workflow_id="order_%x")).get_result()


async def test_prefix_parent_and_time_range(db_path: Path) -> None:
    await _tree(db_path)
    with sqldb.connect(db_path) as con:  # spread the creation times out
        for wid, ts in [
            ("order-1", 1000),
            ("kid-1", 2000),
            ("kid-2", 3000),
            ("order-2", 4000),
            ("order_%x", 5000),
        ]:
            con.execute("UPDATE workflows SET created_at = ? WHERE workflow_id = ?", (ts, wid))

    def at(ts: float) -> datetime:
        return datetime.fromtimestamp(ts, tz=UTC)

    async with litewf.Client(db_path) as client:

        async def ids(**filters: object) -> list[str]:
            return [w.workflow_id for w in await client.list_workflows(**filters)]  # type: ignore[arg-type]

        assert await ids(prefix="order-") == ["order-2", "order-1"]
        assert await ids(prefix="order_") == ["order_%x"]  # no LIKE wildcards
        assert await ids(prefix="order_%") == ["order_%x"]
        assert await ids(prefix="ORDER") == []  # exact case
        assert await ids(parent="order-1") == ["kid-2", "kid-1"]
        assert await ids(parent="kid-1") == []
        assert await ids(since=at(2000), until=at(4000)) == ["kid-2", "kid-1"]
        assert await ids(since=at(4000)) == ["order_%x", "order-2"]
        assert await ids(until=at(1000)) == []
        # Another zone names the same instant.
        assert await ids(since=at(5000).astimezone(timezone(timedelta(hours=2)))) == ["order_%x"]
        # Filters combine, and page.
        assert await ids(prefix="kid", since=at(2500)) == ["kid-2"]
        assert await ids(prefix="order", limit=1, offset=1) == ["order-2"]


async def test_a_workflow_records_its_filtered_listing(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.workflow()
    async def leaf() -> None:
        return None

    @rt.workflow()
    async def looks() -> list[str]:
        await (await rt.start_workflow(leaf, workflow_id="x-1")).get_result()
        found = await rt.list_workflows(prefix="x-", parent=rt.current_workflow_id())
        return [w.workflow_id for w in found]

    async with rt:
        got = await (await rt.start_workflow(looks, workflow_id="top")).get_result()
        steps = await rt.list_steps("top")
    assert got == ["x-1"]
    assert steps[-1].kind == "list_workflows"


def test_the_sync_client_takes_the_filters(db_path: Path) -> None:
    anyio.run(_tree, db_path, backend="asyncio")
    with litewf.SyncClient(db_path) as client:
        found = client.list_workflows(
            prefix="kid-", parent="order-1", since=datetime(2000, 1, 1, tzinfo=UTC)
        )
    assert [w.workflow_id for w in found] == ["kid-2", "kid-1"]

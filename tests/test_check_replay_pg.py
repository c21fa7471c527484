"""The replay checker on a PostgreSQL database: the same findings as on a SQLite file,
and the server's rows untouched (it reads them into a SQLite copy).

Runs on the server ``LITEWF_TEST_POSTGRES`` names (skipped without it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from litewf import _copysql as copysql
from litewf._session import Session
from litewf.testing import check_replay
from tests.test_check_replay import EXPECTED, LOG, build, found, produce


async def rows(url: Path) -> list[tuple[str, list[tuple[object, ...]]]]:
    """Every row of every table, in key order."""
    from litewf._serialization import JsonSerializer

    async with Session.connect(str(url), serializer=JsonSerializer(), poll_interval=1.0) as s:
        out = []
        for table, key in copysql.TABLES:
            _, chunk = await s.backend.read(copysql.read_chunk, table, key, 0, 100_000)
            out.append((table, [tuple(row) for row in chunk]))
        return out


@pytest.mark.parametrize("variant", ["same", "renamed-step", "event-key", "new-parameter"])
async def test_a_postgresql_database_is_checked_like_a_file_and_left_alone(
    pg_url: Path, variant: str
) -> None:
    await produce(pg_url)
    before = await rows(pg_url)
    LOG.clear()
    report = await check_replay(build(variant), str(pg_url))
    assert found(report) == EXPECTED[variant], report
    assert report.ok == (not EXPECTED[variant])
    assert report.checked >= 4
    assert LOG == []  # no step body ran
    assert "postgresql://" in report.path
    assert await rows(pg_url) == before

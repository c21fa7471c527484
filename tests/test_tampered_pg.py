"""A tampered PostgreSQL database gives the same litewf errors as a tampered file.

The recorded database of ``tests/test_tampered.py`` is copied into a fresh schema (by the
``litewf migrate`` copier) and edited there as an operator with ``psql`` could. The
column types hold on PostgreSQL, so an edit that puts text in a number column cannot
happen there and is skipped, saying so; the others must read back as on SQLite.

Runs on the server ``LITEWF_TEST_POSTGRES`` names (skipped without it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import litewf
from litewf._copy import copy_database
from tests import test_tampered as on_sqlite
from tests.conftest import postgres_database
from tests.tampering import read_everything, tamper
from tests.test_tampered import (
    CASES,
    Read,
    template,  # noqa: F401 - the recorded file (a fixture)
)


@pytest.fixture
async def pg_db(template: Path) -> AsyncIterator[Path]:  # noqa: F811 - the fixture above
    """The recorded database, copied into a fresh schema for one test to edit."""
    for url in postgres_database():
        await copy_database(str(template), str(url))
        yield url


def tamper_or_skip(db: Path, sql: str, *params: Any) -> None:
    import psycopg

    if any(isinstance(p, bytes) for p in params):
        pytest.skip("PostgreSQL keeps the column's type: bytes in a text column are text")
    try:
        tamper(db, sql, *params)
    except (psycopg.errors.DataError, psycopg.errors.DatatypeMismatch) as exc:
        pytest.skip(f"PostgreSQL keeps the column's type: {type(exc).__name__}")


@pytest.mark.parametrize(
    ("sql", "params", "workflow_id", "column", "reads"),
    CASES,
    ids=[f"{c[3]}={c[1][0] if c[1] else None!r}" for c in CASES],
)
async def test_a_bad_value_is_a_corrupt_database_error_naming_workflow_and_column(
    pg_db: Path, sql: str, params: tuple[Any, ...], workflow_id: str, column: str, reads: list[Read]
) -> None:
    tamper_or_skip(pg_db, sql, *params)
    async with litewf.Client(pg_db) as client:
        for read in reads:
            with pytest.raises(litewf.CorruptDatabaseError) as caught:
                await read(client)
            error = caught.value
            assert (error.workflow_id, error.column) == (workflow_id, column)
            assert workflow_id in str(error) and column in str(error)
        raised = await read_everything(client)
        assert raised and all(isinstance(e, litewf.LitewfError) for e in raised), raised


async def test_unreadable_values_name_workflow_and_column(pg_db: Path) -> None:
    await on_sqlite.test_a_value_the_serializer_cannot_read_names_workflow_and_column(pg_db)


async def test_runtime_read_paths_raise_litewf_errors(pg_db: Path) -> None:
    await on_sqlite.test_runtime_read_paths_raise_litewf_errors_too(pg_db)


async def test_a_replayed_bad_error_record_fails_the_workflow(pg_db: Path) -> None:
    await on_sqlite.test_a_replayed_bad_error_record_fails_the_workflow_with_a_litewf_error(pg_db)

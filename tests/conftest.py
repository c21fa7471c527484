"""Shared fixtures: a fresh database per test, asyncio as the only backend.

``db_path`` is a fresh SQLite file; in the modules listed in ``BOTH_BACKENDS`` each test
also runs on PostgreSQL (``[postgres]`` in its ID): ``db_path`` is then a URL naming a
fresh schema on the server ``LITEWF_TEST_POSTGRES`` names, dropped afterwards. Without
that variable those runs are skipped, saying so. A test about SQLite files that such a
module holds is marked ``@pytest.mark.sqlite_only``. ``backend`` is module-scoped: a
module's SQLite tests run before its PostgreSQL ones, and a module-scoped fixture may
build a database on either (``new_database``).

Not in ``BOTH_BACKENDS``: modules with no database (``test_api``, ``test_layering``);
PostgreSQL's own (``test_postgres``, ``test_migrate``; the crash torture has its own
PostgreSQL test); SQLite's mechanisms (``faults/test_busy``, ``test_outage``,
``test_disk_full``: its write lock, SQLITE_FULL, EFBIG; ``faults/test_cancellation``:
hooks on aiosqlite); hand-edited column types (``test_tampered``, ``test_tamper_fuzz``:
PostgreSQL's columns keep their types); a recorded file copied per test
(``test_check_replay``); the pytest plugin's fixtures (``test_testing_plugin``); the
examples, which run on files; ``test_bench``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: The server the PostgreSQL runs use, e.g. postgresql://postgres@127.0.0.1:5432/test.
POSTGRES = os.environ.get("LITEWF_TEST_POSTGRES")

#: Test modules (by name) whose tests run on both backends.
BOTH_BACKENDS = frozenset(
    {
        "test_workflows",
        "test_local_outcome",
        "test_steps",
        "test_events",
        "test_messages",
        "test_recovery",
        "test_streams",
        "test_queues",
        "test_deadlines",
        "test_schedules",
        "test_fork_delete",
        "test_postgres",
        "test_wait_first",
        "test_patching",
        "test_management",
        "test_gc_chunks",
        "test_replay_identity",
        "test_step_timing",
        "test_list_filters",
        "test_lifecycle",
        "test_identity",
        "test_sync",
        "test_clock",
        "test_crash_simulation",
        "test_hostile_input",
        "test_nesting",
        "test_contention",
        "test_ui",
        "test_cli",
        "test_cli_change",
        "test_cli_inspect",
        "test_cli_tail",
        "test_smoke",
        "test_tracing",
        "test_database",
        "test_shutdown_steps",
        "test_hibernation",
    }
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rpartition(".")[2]
    if (
        "backend" in metafunc.fixturenames  # db_path's, or a test's or fixture's own
        and module in BOTH_BACKENDS
        and metafunc.definition.get_closest_marker("sqlite_only") is None
    ):
        # Module scope: a module's SQLite tests run first, then its PostgreSQL ones, and
        # a module-scoped fixture may depend on ``backend``.
        metafunc.parametrize("backend", ["sqlite", "postgres"], indirect=True, scope="module")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiosqlite needs an asyncio event loop


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    """Which database ``db_path`` names: "sqlite" (the default) or "postgres"."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def db_path(tmp_path: Path, backend: str) -> Iterator[Path]:
    with new_database(backend, tmp_path / "test.db") as db:
        yield db


@pytest.fixture
def other_db(tmp_path: Path, backend: str) -> Iterator[Path]:
    """A second fresh database, on the backend ``db_path`` is on."""
    with new_database(backend, tmp_path / "other.db") as db:
        yield db


@contextlib.contextmanager
def new_database(backend: str, path: Path) -> Iterator[Path]:
    """A fresh database on ``backend``: the file ``path`` (not created), or a fresh
    PostgreSQL schema (dropped afterwards): for fixtures of any scope."""
    if backend == "sqlite":
        yield path
        return
    yield from postgres_database()


def postgres_database() -> Iterator[Path]:
    """A URL naming a fresh schema on the test server (typed as a path: the tests pass
    it where a path goes), dropped afterwards."""
    if not POSTGRES:
        pytest.skip("PostgreSQL runs need LITEWF_TEST_POSTGRES=postgresql://... (see README)")

    schema = f"t_{uuid.uuid4().hex[:16]}"
    url = f"{POSTGRES}?schema={schema}"
    yield url  # type: ignore[misc]  # a URL where paths go
    drop_schema(url)


@pytest.fixture
def pg_url() -> Iterator[Path]:
    """A fresh schema on the test server, for the PostgreSQL-only tests."""
    yield from postgres_database()


def admin(url: str | os.PathLike[str]) -> Any:
    """A plain autocommit psycopg connection to the database of ``url`` (no schema set)."""
    import psycopg

    from litewf._pgdialect import split_url

    dsn, _ = split_url(str(url))
    return psycopg.connect(dsn, autocommit=True)


def drop_schema(url: str) -> None:
    """Drop the schema a ``postgres_database()`` URL names, with everything in it."""
    from litewf._pgdialect import split_url

    _, schema = split_url(url)
    with admin(url) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

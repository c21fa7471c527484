"""pytest fixtures for testing code that uses litewf; loaded through the ``pytest11`` entry point.

- ``litewf_db``: a path for a fresh database file in the test's ``tmp_path``.
- ``litewf_runtime``: a factory that launches runtimes and shuts them down at teardown
  (at once: shutdown cancels the poller, it never waits out a poll interval).
  ``await litewf_runtime(rt)`` launches a ``Runtime`` you built (register workflows on it
  first: recovery at launch only runs registered ones); ``await litewf_runtime(**options)``
  launches a new ``Runtime(litewf_db, **options)``.

litewf runs on asyncio only (aiosqlite), so tests that use ``litewf_runtime`` run on
anyio's asyncio backend: when the ``anyio_backend`` fixture they would get is
parametrized (anyio's default runs every installed backend), such a test is pinned to
``"asyncio"``. Other tests and your own ``anyio_backend`` fixture are left alone. An
``async def`` test that uses ``litewf_runtime`` runs under anyio even without
``@pytest.mark.anyio``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._runtime import Runtime
    from ._sync import SyncRuntime

__all__ = [
    "RuntimeFactory",
    "SyncRuntimeFactory",
    "litewf_db",
    "litewf_runtime",
    "litewf_sync_runtime",
]

#: Fixtures that need an event loop, hence anyio's asyncio backend.
_ASYNC_FIXTURES = frozenset({"litewf_runtime"})


class RuntimeFactory:
    """Launches runtimes for one test; the fixture shuts them down, newest first."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self._launched: list[Runtime] = []

    async def __call__(self, runtime: Runtime | None = None, /, **options: Any) -> Runtime:
        """Launch ``runtime``, or a new ``Runtime(litewf_db, **options)``; return it."""
        from ._runtime import Runtime

        if runtime is None:
            runtime = Runtime(self.db, **options)
        elif not isinstance(runtime, Runtime):
            raise TypeError(f"litewf_runtime() takes a litewf.Runtime, got {runtime!r}")
        elif options:
            raise TypeError("pass options either to litewf.Runtime(...) or to litewf_runtime()")
        await runtime.launch()
        self._launched.append(runtime)
        return runtime

    async def _shutdown_all(self) -> None:
        # Newest first, the reverse of launch (as nested "async with" blocks would).
        errors: list[BaseException] = []
        while self._launched:
            try:
                await self._launched.pop().shutdown()
            except Exception as exc:  # noqa: BLE001 - shut the others down, then report
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def litewf_db(tmp_path: Path) -> Path:
    """A path for a fresh litewf database in ``tmp_path`` (the file does not exist yet)."""
    return tmp_path / "litewf.db"


@pytest.fixture
async def litewf_runtime(litewf_db: Path, anyio_backend: Any) -> AsyncIterator[RuntimeFactory]:
    """Launch runtimes with ``await litewf_runtime(rt)``; each is shut down at teardown."""
    name = anyio_backend if isinstance(anyio_backend, str) else anyio_backend[0]
    if name != "asyncio":
        pytest.fail(
            f"litewf runs on asyncio only (aiosqlite), but this test's anyio_backend is "
            f"{anyio_backend!r}; return 'asyncio' from your anyio_backend fixture",
            pytrace=False,
        )
    factory = RuntimeFactory(litewf_db)
    try:
        yield factory
    finally:
        await factory._shutdown_all()


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Pin tests that use litewf's async fixtures to asyncio when their backend varies."""
    if _ASYNC_FIXTURES.isdisjoint(metafunc.fixturenames):
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if "anyio_backend" in names:
            return  # the test chose its backends itself
    defs = metafunc._arg2fixturedefs.get("anyio_backend", ())
    if defs and defs[-1].params is not None:
        metafunc.definition.add_marker(pytest.mark.parametrize("anyio_backend", ["asyncio"]))


class SyncRuntimeFactory:
    """Launches ``SyncRuntime``s for one plain ``def`` test; shut down newest first."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.launched: list[SyncRuntime] = []

    def __call__(self, runtime: SyncRuntime | None = None, /, **options: Any) -> SyncRuntime:
        """Launch ``runtime``, or a new ``SyncRuntime(litewf_db, **options)``; return it."""
        from ._sync import SyncRuntime

        if runtime is None:
            runtime = SyncRuntime(self.db, **options)
        elif not isinstance(runtime, SyncRuntime):
            raise TypeError(f"litewf_sync_runtime() takes a litewf.SyncRuntime, got {runtime!r}")
        elif options:
            raise TypeError("pass options either to litewf.SyncRuntime(...) or here, not both")
        runtime.launch()
        self.launched.append(runtime)
        return runtime


@pytest.fixture
def litewf_sync_runtime(litewf_db: Path) -> Iterator[SyncRuntimeFactory]:
    """Launch sync runtimes with ``litewf_sync_runtime(srt)``; each is shut down at
    teardown. For plain ``def`` tests: no event loop, no anyio backend."""
    factory = SyncRuntimeFactory(litewf_db)
    yield factory
    while factory.launched:
        factory.launched.pop().shutdown()

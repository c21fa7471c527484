"""Waiting in tests for a condition, not for a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

import litewf


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for an in-memory condition (e.g. waiters registered); fail after ``timeout``."""
    with anyio.fail_after(timeout):
        while True:
            if predicate():
                return
            await anyio.sleep(0.005)


def count_reads(rt: litewf.Runtime) -> list[str]:
    """Record the name of every read the runtime's backend runs from now on."""
    backend = rt._session_for("test").backend  # instrumentation, not a mock
    reads: list[str] = []
    real = backend.read

    async def read(fn: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(getattr(fn, "__name__", repr(fn)))
        return await real(fn, *args, **kwargs)

    backend.read = read  # type: ignore[method-assign]
    return reads

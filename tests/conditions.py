"""Waiting in tests for a condition, not for a time."""

from __future__ import annotations

from collections.abc import Callable

import anyio


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for an in-memory condition (e.g. waiters registered); fail after ``timeout``."""
    with anyio.fail_after(timeout):
        while True:
            if predicate():
                return
            await anyio.sleep(0.005)

"""Shared fixtures: a fresh database file per test, asyncio as the only backend."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiosqlite needs an asyncio event loop


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "test.db"

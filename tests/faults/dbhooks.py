"""Hooks on aiosqlite's one funnel to its worker thread, for injecting faults.

Every database call litewf makes (``execute``, cursor reads, ``commit``, ``close``) is an
``await Connection._execute(fn, *args)`` in aiosqlite. Wrapping it lets a test act just
before or just after any of them (SIGKILL at a COMMIT, cancel at the N-th await) without
touching litewf or SQLite.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite

__all__ = ["Hook", "install", "is_commit", "statement"]

#: ``hook(phase, fn, args)`` with phase "before" or "after".
Hook = Callable[[str, Callable[..., Any], tuple[Any, ...]], None]

_ORIGINAL: Callable[..., Awaitable[Any]] = aiosqlite.Connection._execute


def statement(fn: Callable[..., Any], args: tuple[Any, ...]) -> str:
    """The SQL text of a call (or the sqlite3 method's name, such as ``commit``)."""
    name = getattr(fn, "__name__", "")
    if args and isinstance(args[0], str):
        return args[0].strip()
    return name


def is_commit(fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
    """A COMMIT, or litewf's group-commit batch (BEGIN, its units and COMMIT in one call)."""
    if getattr(fn, "__name__", "") == "_run_units":
        return True
    text = statement(fn, args).upper()
    return text == "COMMIT" or text.startswith(("COMMIT ", "COMMIT;", "END"))


def install(hook: Hook) -> Callable[[], None]:
    """Route every aiosqlite call through ``hook``; return a function that undoes it."""

    async def _execute(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        hook("before", fn, args)
        result = await _ORIGINAL(self, fn, *args, **kwargs)
        hook("after", fn, args)
        return result

    aiosqlite.Connection._execute = _execute  # type: ignore[method-assign]

    def undo() -> None:
        aiosqlite.Connection._execute = _ORIGINAL  # type: ignore[method-assign, assignment]

    return undo

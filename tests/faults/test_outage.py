"""The database's failures are not the workflow's (issue 10, section 6).

While another connection holds the write lock past litewf's give-up, or the disk is full,
a workflow recording its own progress stays PENDING and carries on once the database can
be written again; only an outside caller (a ``send``) gets the ``DatabaseError``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

import litewf
from litewf import _db, testing
from tests.faults.test_busy import write_lock
from tests.faults.test_disk_full import NO_LIMIT, cap_pages


class _Seen(logging.Handler):
    """Sets ``event`` when litewf logs a record containing ``text``."""

    def __init__(self, text: str, event: anyio.Event) -> None:
        super().__init__(logging.WARNING)
        self.text, self.event = text, event

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


@contextmanager
def logged(text: str, event: anyio.Event) -> Iterator[None]:
    handler = _Seen(text, event)
    logger = logging.getLogger("litewf")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


async def test_a_step_record_waits_out_a_held_write_lock(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another connection holds the write lock past the give-up while a step records its
    outcome: the workflow stays PENDING (before: it ended ERROR with a raw
    ``sqlite3.OperationalError``), an outside send gets DatabaseBusyError, reads still
    work; once the lock is released the step's outcome is recorded, the body having run
    once, and the workflow ends SUCCESS."""
    monkeypatch.setattr(_db, "BUSY_GIVE_UP_S", 0.2)
    rt = litewf.Runtime(db_path)
    bodies: list[str] = []
    entered, proceed = anyio.Event(), anyio.Event()

    @rt.step(name="o.work")
    async def work() -> str:
        bodies.append("work")
        entered.set()
        await proceed.wait()
        return "done"

    @rt.workflow(name="o.flow")
    async def flow() -> str:
        return await work() + "!"

    waiting = anyio.Event()
    async with rt:
        handle = await rt.start_workflow(flow, workflow_id="flow")
        with anyio.fail_after(30):
            await entered.wait()
        with logged("cannot record its progress", waiting), write_lock(db_path):
            proceed.set()
            with anyio.fail_after(30):
                await waiting.wait()  # the step's record gave up at least once
            with pytest.raises(litewf.DatabaseBusyError):
                await rt.send("flow", "hello")
            assert (await handle.get_status()).status == "PENDING"
        assert await handle.get_result(timeout=30) == "done!"
        assert bodies == ["work"]
        steps = await rt.list_steps("flow")
        assert [(s.name, s.outcome) for s in steps] == [("o.work", "ok")]


async def test_a_step_record_waits_out_a_full_disk(db_path: Path) -> None:
    """SQLITE_FULL while steps record: the workflow stays PENDING (before: it ended ERROR
    with DatabaseWriteError), an outside send gets DatabaseWriteError; once space is back
    it carries on, without running the recorded steps (or the failed one) again."""
    bodies: list[int] = []
    rt = litewf.Runtime(db_path)

    @rt.step(name="d.part")
    async def part(i: int) -> str:
        bodies.append(i)
        return "p" * (30_000 if i == 2 else 10)

    @rt.workflow(name="d.parts")
    async def parts() -> int:
        return sum([len(await part(i)) for i in range(4)])

    @rt.workflow(name="d.sink")
    async def sink() -> None:
        await rt.recv(timeout=60)

    waiting = anyio.Event()
    async with rt:
        await rt.start_workflow(sink, workflow_id="sink")
        with logged("cannot record its progress", waiting):
            await cap_pages(rt, extra=2)
            handle = await rt.start_workflow(parts, workflow_id="parts")
            with anyio.fail_after(30):
                await waiting.wait()
        with pytest.raises(litewf.DatabaseWriteError, match="disk is full"):
            await rt.send("sink", "x" * 50_000)
        assert (await handle.get_status()).status == "PENDING"
        assert bodies == [0, 1, 2]
        await testing.backend(rt).db.fetchone(f"PRAGMA max_page_count = {NO_LIMIT}")
        assert await handle.get_result(timeout=30) == 30_030
        assert bodies == [0, 1, 2, 3]
        await rt.send("sink", "x" * 50_000)
        assert await (await rt.retrieve_workflow("sink")).get_result(timeout=30) is None

"""Helpers for the tampered-database tests: a real database with workflows in every state,
hand edits of its rows, and every public read path run over it."""

from __future__ import annotations

import contextlib
import io
import sqlite3
from pathlib import Path
from typing import Any

import anyio

import litewf
from litewf._cli import main
from litewf._pgdialect import is_postgres_url
from tests import sqldb
from tests.children.ops import register

#: The workflows the built database holds, and their state.
WORKFLOWS = {
    "order-1": "PENDING",  # every kind of operation, waiting in recv
    "order-1-3": "SUCCESS",  # order-1's child
    "fail-1": "ERROR",  # failed in a step: an error record on the workflow and the step
    "quick-1": "SUCCESS",  # holds a queued message (with an idempotency key)
    "stopped-1": "CANCELLED",  # cancelled while waiting in recv
}


async def _build(path: Path) -> None:
    rt = litewf.Runtime(path)
    workflows = register(rt)

    @rt.workflow(name="tamper.waiter")
    async def waiter() -> None:
        await rt.recv("never", timeout=600)

    async with rt:
        order = await rt.start_workflow(workflows["ops.order"], "o-1", workflow_id="order-1")
        failed = await rt.start_workflow(workflows["ops.fail"], "o-2", workflow_id="fail-1")
        quick = await rt.start_workflow(workflows["ops.quick"], 21, workflow_id="quick-1")
        stopped = await rt.start_workflow(waiter, workflow_id="stopped-1")
        assert await quick.get_result(timeout=30) == 42
        with contextlib.suppress(ValueError):
            await failed.get_result(timeout=30)
        for workflow_id in ("order-1", "stopped-1"):
            await _wait_until_waiting(rt, workflow_id)
        await rt.cancel_workflow("stopped-1")
        with contextlib.suppress(litewf.WorkflowCancelledError):
            await stopped.get_result(timeout=30)
        await rt.send("quick-1", {"late": True}, topic="t", idempotency_key="k1")
        await rt.send("quick-1", "plain")
        assert (await order.get_status()).status is litewf.Status.PENDING


async def _wait_until_waiting(rt: litewf.Runtime, workflow_id: str) -> None:
    """Poll (a database condition another task brings about) until it waits in recv."""
    with anyio.fail_after(30):
        while True:
            steps = await rt.list_steps(workflow_id)
            if steps and steps[-1].outcome == "waiting":
                return
            await anyio.sleep(0.005)


def build_database(path: Path) -> None:
    """Create a database at ``path`` holding ``WORKFLOWS``; every runtime has stopped."""
    anyio.run(_build, path, backend="asyncio")
    stored = dict(sqldb.query(path, "SELECT workflow_id, status FROM workflows"))
    assert stored == WORKFLOWS


def tamper(path: Path, sql: str, *params: Any) -> None:
    """Edit the file by hand, as an operator with ``sqlite3`` could (on PostgreSQL, with
    ``psql``: the column types hold there)."""
    if is_postgres_url(path):
        sqldb.query(path, sql, params)
        return
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA ignore_check_constraints = ON")
        conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()


async def read_everything(target: litewf.Client | litewf.Runtime) -> list[BaseException]:
    """Call every public read path for every workflow; the exceptions raised, in order."""
    raised: list[BaseException] = []

    async def attempt(call: Any, *args: Any, **kwargs: Any) -> None:
        try:
            await call(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the caller checks what kind each one is
            raised.append(exc)

    async def result(handle: litewf.WorkflowHandle[Any]) -> None:
        try:
            await handle.get_result(timeout=0)
        except TimeoutError:
            pass  # a PENDING workflow
        except Exception as exc:
            if not _recorded(exc):
                raise

    await attempt(target.list_workflows)
    for status in litewf.Status:
        await attempt(target.list_workflows, status=status)
    for workflow_id in WORKFLOWS:
        try:
            handle = await target.retrieve_workflow(workflow_id)
        except Exception as exc:  # noqa: BLE001 - an edited ID may no longer be found
            raised.append(exc)
            continue
        await attempt(handle.get_status)
        await attempt(result, handle)
        await attempt(target.list_steps, workflow_id)
        await attempt(target.list_messages, workflow_id)
        await attempt(target.get_all_events, workflow_id)
        await attempt(target.get_event, workflow_id, "checkout_url", timeout=0)
    return raised


def _recorded(exc: BaseException) -> bool:
    """Whether ``exc`` is a workflow's recorded failure, rebuilt and raised by get_result
    (its innermost frame is litewf's ``wait_result``), not an error of the reading."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_name == "wait_result"


#: The CLI's read commands, run for each workflow (``{id}``) or once.
CLI_READS = (
    ["list"],
    ["list", "--json"],
    ["list", "--status", "ERROR"],
    ["doctor"],
    ["doctor", "--json"],
    ["show", "{id}"],
    ["show", "{id}", "--json"],
    ["show", "{id}", "--full"],
    ["steps", "{id}"],
    ["steps", "{id}", "--json"],
    ["events", "{id}"],
    ["get-event", "{id}", "checkout_url"],
)


def run_cli(path: Path, *args: str) -> tuple[int, str, str]:
    """``litewf --db PATH ARGS`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--db", str(path), *args])
    return code, out.getvalue(), err.getvalue()


def cli_reads() -> list[list[str]]:
    """Every CLI read command line, for every workflow."""
    lines = []
    for args in CLI_READS:
        if "{id}" in args:
            lines += [[a.replace("{id}", w) for a in args] for w in WORKFLOWS]
        else:
            lines.append(list(args))
    return lines

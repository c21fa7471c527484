"""Recovery: running again the PENDING workflows whose executor is gone.

At launch, and every ``recovery_interval`` after, a runtime looks at who owns PENDING
workflows. An owner whose OS lock can be taken is dead (``_liveness``), so its workflows
are claimed with one conditional UPDATE per owner: the UPDATE decides the single winner
when several runtimes recover at once, so a workflow never runs in two live processes.
Claimed workflows re-run from the top and replay what they recorded. Taking a dead
executor's workflow counts a recovery attempt; a clean shutdown's released workflows are
taken without counting one. A live runtime also runs again its own PENDING workflows
that no task of it runs (their run ended without an outcome).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from . import _store as store
from ._deadlines import expire_overdue
from ._exceptions import LitewfError

if TYPE_CHECKING:
    from ._executor import Executor
    from ._session import Session
    from ._tx import Tx

__all__ = ["keep_recovering", "recover"]

logger = logging.getLogger("litewf")


async def keep_recovering(
    executor: Executor, session: Session, max_attempts: int, interval: float
) -> None:
    """Forever: every ``interval`` seconds, recover and keep the WAL small."""
    while True:
        await anyio.sleep(interval)
        if executor.suspended is not None:
            continue  # the executor lock is being taken again (see _serving._keep_lock)
        try:
            await recover(executor, session, max_attempts, first=False)
            await session.backend.maintain()
        except LitewfError:
            logger.exception("litewf recovery scan failed; retrying")


async def recover(executor: Executor, session: Session, max_attempts: int, *, first: bool) -> None:
    """Claim and run PENDING workflows whose executor is gone (or that were released).

    Liveness is checked inside the write transaction: a runtime that takes over an
    executor ID must lock it before it can write, so it either shows as alive here or
    finds the rows already claimed by us. Our own ID counts as dead only at launch,
    when nothing of ours runs yet (its rows are from a previous life of this ID).
    """
    if not first:
        executor.ended.clear()  # (see _readopt)
    await expire_overdue(session)  # a workflow past its deadline ends, never runs again
    names = list(executor.workflows)
    me = executor.executor_id
    backend = session.backend

    def take_over(
        tx: Tx, owner: str | None
    ) -> tuple[list[store.ClaimedWorkflow], list[tuple[str, str]]]:
        if owner not in (None, me) and backend.alive(owner):
            return [], []
        claimed, _ = store.claim(tx, owner, me, names, max_attempts)
        return claimed, store.unregistered_pending(tx, owner, names)

    for owner in await backend.read(store.pending_owners):
        if owner == me and not first:
            await _readopt(executor, session)
            continue
        if owner not in (None, me) and await anyio.to_thread.run_sync(backend.alive, owner):
            continue  # a pre-check (off the event loop: a round trip on PostgreSQL)
        claimed, skipped = await backend.write(take_over, owner)
        for wf in claimed:
            logger.info("recovering workflow %s (%s)", wf.workflow_id, wf.name)
            executor.spawn(wf.workflow_id, executor.workflows[wf.name], wf.inputs, fresh=False)
        for workflow_id, name in skipped:
            if workflow_id not in executor.warned:
                executor.warned.add(workflow_id)
                logger.warning(
                    "workflow %s is PENDING but its function %r is not registered in "
                    "this runtime; leaving it for a runtime that has it",
                    workflow_id,
                    name,
                )


async def _readopt(executor: Executor, session: Session) -> None:
    """Run again our own PENDING workflows that no task here runs.

    Such a workflow lost its task without storing an outcome (a stale cancellation, a
    run that failed to write). One being started or resumed (row committed, task not yet
    running) is marked ``starting_up``; one whose task ended during the reads is in
    ``ended``, emptied before them by ``recover``: if it stored an outcome, the reads
    may not show it.
    """
    # The cheap check first (an index count): as many of our rows as tasks here means
    # none is idle, so a runtime with many waiting workflows does not list them each tick.
    # (A task whose row just left PENDING may hide an idle one for a tick; not longer.)
    me, read = executor.executor_id, session.backend.read
    held = len(executor.running) + len(executor.hibernation.parked)
    if await read(store.count_owned_pending, me) <= held:
        return
    owned = await read(store.owned_pending_ids, me)
    idle = [workflow_id for workflow_id in owned if executor.idle(workflow_id)]
    if not idle:
        return
    for workflow_id, name, inputs in await read(store.owned_pending, me, idle):
        wf = executor.workflows.get(name)
        if wf is not None and executor.idle(workflow_id):
            logger.info("running workflow %s (%s) again: no task here ran it", workflow_id, name)
            executor.spawn(workflow_id, wf, inputs, fresh=False)

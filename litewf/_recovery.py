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
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import _store as store
from ._liveness import executor_alive
from ._notifier import Key, Notifier, status_key

if TYPE_CHECKING:
    from ._db import Tx
    from ._runtime import Runtime

__all__ = ["recover"]

logger = logging.getLogger("litewf")


async def recover(rt: Runtime, *, first: bool) -> None:
    """Claim and run PENDING workflows whose executor is gone (or that were released).

    Liveness is checked inside the write transaction: a runtime that takes over an
    executor ID must lock it before it can write, so it either shows as alive here or
    finds the rows already claimed by us. Our own ID counts as dead only at launch,
    when nothing of ours runs yet (its rows are from a previous life of this ID).
    """
    if not first:
        rt._ended.clear()  # (see _readopt)
    names = list(rt._workflows)
    db = rt.db
    notifier = rt.notifier

    def take_over(
        tx: Tx, owner: str | None
    ) -> tuple[list[store.ClaimedWorkflow], list[tuple[str, str]]]:
        if owner not in (None, rt.executor_id) and executor_alive(rt.path, owner):
            return [], []
        claimed, exhausted = store.claim(tx, owner, rt.executor_id, names, rt.max_recovery_attempts)
        for workflow_id in exhausted:
            tx.after_commit(_notify(notifier, status_key(workflow_id)))
        return claimed, store.unregistered_pending(tx, owner, names)

    for owner in await db.read(store.pending_owners):
        if owner == rt.executor_id and not first:
            await _readopt(rt)
            continue
        if owner not in (None, rt.executor_id) and executor_alive(rt.path, owner):
            continue  # cheap pre-check; repeated under the write lock in take_over
        claimed, skipped = await db.write(take_over, owner)
        for wf in claimed:
            logger.info("recovering workflow %s (%s)", wf.workflow_id, wf.name)
            rt._spawn(wf.workflow_id, rt._workflows[wf.name], wf.inputs, fresh=False)
        for workflow_id, name in skipped:
            if workflow_id not in rt._warned:
                rt._warned.add(workflow_id)
                logger.warning(
                    "workflow %s is PENDING but its function %r is not registered in "
                    "this runtime; leaving it for a runtime that has it",
                    workflow_id,
                    name,
                )


async def _readopt(rt: Runtime) -> None:
    """Run again our own PENDING workflows that no task here runs.

    Such a workflow lost its task without storing an outcome (a stale cancellation, a
    run that failed to write). One being started or resumed (row committed, task not yet
    running) is marked ``_starting``; one whose task ended during the reads is in
    ``_ended``, emptied before them by ``recover``: if it stored an outcome, the reads
    may not show it.
    """
    # The cheap check first (an index count): as many of our rows as tasks here means
    # none is idle, so a runtime with many waiting workflows does not list them each tick.
    # (A task whose row just left PENDING may hide an idle one for a tick; not longer.)
    if await rt.db.read(store.count_owned_pending, rt.executor_id) <= len(rt._running):
        return
    owned = await rt.db.read(store.owned_pending_ids, rt.executor_id)
    idle = [workflow_id for workflow_id in owned if rt._idle(workflow_id)]
    if not idle:
        return
    for workflow_id, name, inputs in await rt.db.read(store.owned_pending, rt.executor_id, idle):
        wf = rt._workflows.get(name)
        if wf is not None and rt._idle(workflow_id):
            logger.info("running workflow %s (%s) again: no task here ran it", workflow_id, name)
            rt._spawn(workflow_id, wf, inputs, fresh=False)


def _notify(notifier: Notifier, key: Key) -> Callable[[], None]:
    return lambda: notifier.notify(key)

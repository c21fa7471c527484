"""Running workflows in this process: start, spawn, run with replay, store the outcome,
stop on cancel, and run again what recovery hands over.

One ``Executor`` per runtime. It owns the registered workflows and the tasks that run
them; a launch attaches it to a session and a task group, shutdown detaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Collection, Iterator
from types import EllipsisType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from . import _deadlines as deadlines
from . import _deadlinesql as deadlinesql
from . import _journal as journal
from . import _operations as operations
from . import _replay as replay
from . import _store as store
from . import _tracing as tracing
from ._change import Change, ChangeKind
from ._exceptions import (
    DatabaseError,
    InvalidValueError,
    LitewfError,
    _Hibernated,
    _Superseded,
)
from ._hibernation import Hibernation
from ._serialization import (
    dumps_arguments,
    dumps_checked,
    encode_exception,
    exception_type_and_message,
    loads_checked,
)
from ._session import LocalRun, Session
from ._ticks import call_kwargs
from ._tx import Tx
from ._types import Status
from ._validate import check_id
from ._workflow import Workflow, WorkflowHandle

__all__ = ["Executor"]

logger = logging.getLogger("litewf")


class Executor:
    """The workflows one runtime registered, and the tasks running them here."""

    def __init__(self, executor_id: str) -> None:
        self.executor_id = executor_id
        self.workflows: dict[str, Workflow[Any, Any]] = {}
        #: Where ``litewf.testing`` plugs in (see ``Runtime.use_hooks``).
        self.hooks = replay.HookSlot()
        self.session: Session | None = None
        self._tg: TaskGroup | None = None
        #: Why this runtime died (a simulated crash, a lost database); None while alive.
        self.dead: str | None = None
        self.running: dict[str, anyio.CancelScope] = {}
        #: Resumed while their previous run still unwinds: run again when it has ended.
        self._respawn: dict[str, tuple[Workflow[Any, Any], str]] = {}
        #: Being started or resumed here: their row is ours before their task exists.
        self._starting: dict[str, int] = {}
        #: Whose task ended since the recovery loop last looked for idle workflows.
        self.ended: set[str] = set()
        self._finishing: set[str] = set()
        #: PENDING workflows whose function is not registered here, warned about once.
        self.warned: set[str] = set()
        #: Why no run may start here now (the executor lock was lost); None: they may.
        self.suspended: str | None = None
        #: Workflows whose recorded wait left memory (``max_resident_waits``).
        self.hibernation = Hibernation()

    def running_ids(self) -> Collection[str]:
        """The IDs of the workflows whose task runs here now, or is about to."""
        if not self._starting:
            return self.running.keys()
        return self.running.keys() | self._starting.keys()

    # -- attaching to a launch -------------------------------------------------------------

    def attach(self, session: Session, tg: TaskGroup) -> None:
        self.session, self._tg, self.dead, self.suspended = session, tg, None, None
        session.notifier.add_listener(self._on_change)
        self.hibernation.attach(session.notifier, session.clock, tg, self._run_again)

    def detach(self) -> None:
        self.hibernation.detach()
        self.session = self._tg = None
        self.running.clear()
        self._respawn.clear()
        self.ended.clear()

    def halt(self, reason: str) -> None:
        """Stop every run at once, writing nothing more (a crash or a lost database)."""
        self.dead = reason
        for scope in self.running.values():
            scope.cancel()

    @property
    def may_start(self) -> bool:
        """Whether runs may start here now (not dead, not waiting for its lock back)."""
        return self.dead is None and self.suspended is None

    def suspend(self, reason: str) -> None:
        """Stop every run at once and start none until ``suspended`` is None again (the
        executor lock was lost: a peer may take these workflows over)."""
        self.suspended = reason
        for scope in self.running.values():
            scope.cancel()

    # -- starting ----------------------------------------------------------------------------

    def registered(self, fn: Any) -> Workflow[Any, Any]:
        if isinstance(fn, Workflow) and self.workflows.get(fn.name) is fn:
            return fn
        raise InvalidValueError(
            f"{fn!r} is not a workflow of this runtime; decorate it with @rt.workflow()"
        )

    async def start(
        self,
        session: Session,
        fn: Workflow[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        workflow_id: str | None,
        timing: deadlinesql.Timing | None = None,
    ) -> WorkflowHandle[Any]:
        """Record the workflow PENDING (a child: as its parent's operation), then run it;
        a delayed one is recorded ENQUEUED, for a runtime's dequeuer to start on time."""
        wf = self.registered(fn)
        if workflow_id is not None:
            check_id(workflow_id)
        trace = tracing.start_context(wf.name)
        inputs = dumps_arguments(session.serializer, wf.name, args, kwargs, trace)
        ctx = replay.current()
        if ctx is None:
            wid = workflow_id if workflow_id is not None else str(uuid.uuid4())

            def insert(tx: Tx) -> deadlinesql.Placed | None:
                existing = store.insert_workflow(tx, wid, wf.name, inputs, self.executor_id, None)
                operations.check_same(wid, existing, wf.name)
                if existing is not None:
                    return None
                if timing is None:
                    return deadlinesql.Placed(None, delayed=False)
                return deadlinesql.place(tx, wid, None, timing)

            with self.starting_up(wid):
                placed = await session.backend.write(insert)
                if placed is not None and not placed.delayed:
                    self.spawn(wid, wf, inputs, fresh=True, deadline=placed.deadline)
            return WorkflowHandle(session, wid)
        op_id, wid, replayed = operations.reserve_child(ctx, wf.name, workflow_id)
        if not replayed:
            with self.starting_up(wid):
                placed = await operations.record_child(
                    ctx, op_id, wid, wf.name, inputs, self.executor_id, timing
                )
                if placed is not None and not placed.delayed:
                    self.spawn(wid, wf, inputs, fresh=True, deadline=placed.deadline)
        return WorkflowHandle(session, wid)

    async def resume(self, session: Session, workflow_id: str) -> WorkflowHandle[Any]:
        """Make a stopped workflow PENDING again; ours to run if its function is here."""
        registered = self.workflows

        def owner(name: str) -> str | None:
            # Ours if we can run it; else unowned, for a peer that has the function.
            return self.executor_id if name in registered else None

        with self.starting_up(check_id(workflow_id)):
            restarted = await session.resume_workflow(workflow_id, owner)
            if restarted is not None and restarted[0] in registered:
                name, inputs = restarted
                self.spawn(workflow_id, registered[name], inputs, fresh=False)
        return WorkflowHandle(session, workflow_id)

    @contextlib.contextmanager
    def starting_up(self, workflow_id: str) -> Iterator[None]:
        """Mark a workflow whose row becomes ours before its task runs (the recovery
        loop must not take it for an idle one meanwhile)."""
        self._starting[workflow_id] = self._starting.get(workflow_id, 0) + 1
        try:
            yield
        finally:
            left = self._starting.pop(workflow_id) - 1
            if left:
                self._starting[workflow_id] = left

    def idle(self, workflow_id: str) -> bool:
        """Whether no task here runs, starts or just ended the workflow."""
        return not (
            workflow_id in self.running
            or workflow_id in self._starting
            or workflow_id in self.ended
            or workflow_id in self.hibernation.parked
        )

    # -- running -----------------------------------------------------------------------------

    def spawn(
        self,
        workflow_id: str,
        wf: Workflow[Any, Any],
        inputs: str,
        *,
        fresh: bool,
        recheck: bool = False,
        deadline: float | EllipsisType | None = ...,
    ) -> None:
        """Run the workflow in a task of its own; ``deadline``: its deadline if known
        (``...``: read from its row). None starts while suspended: the row stays PENDING
        and ours, run again once the lock is back (see ``_serving``)."""
        if self._tg is None or self.suspended is not None:
            return
        if workflow_id in self.running:
            # Its previous run still unwinds (say, cancelled and resumed at once, while a
            # step's cleanup runs): run it again once that run has ended.
            self._respawn[workflow_id] = (wf, inputs)
            return
        scope = anyio.CancelScope()
        self.running[workflow_id] = scope
        assert self.session is not None
        run = self.session.local_runs[workflow_id] = LocalRun()
        self._tg.start_soon(
            self._run, workflow_id, wf, inputs, fresh, scope, run, recheck, deadline
        )

    async def _run(
        self,
        workflow_id: str,
        wf: Workflow[Any, Any],
        inputs: str,
        fresh: bool,
        scope: anyio.CancelScope,
        run: LocalRun,
        recheck: bool = False,
        deadline: float | EllipsisType | None = ...,
    ) -> None:
        """Run the workflow until its deadline: one already past ends it without running.
        (One coroutine from the task to ``_execute``: each waiting workflow holds its
        frames for as long as it waits.) ``run`` gets its outcome once stored."""
        try:
            with scope:
                if recheck and not await self._still_ours(workflow_id):
                    return
                session, tg = self.session, self._tg
                assert session is not None and tg is not None
                if deadline is ...:
                    load = functools.partial(
                        session.backend.read, deadlinesql.deadline_of, workflow_id
                    )
                    deadline = await replay.retry_storage(workflow_id, load)
                if deadline is not None and deadline <= session.clock.time():
                    await deadlines.expire_now(session, workflow_id)
                    return
                with deadlines.armed(tg, session, workflow_id, deadline, scope):
                    if await self._execute(workflow_id, wf, inputs, fresh, run):
                        self.hibernation.until(workflow_id, deadline)  # its deadline too
        except (replay.Crashed, Exception):
            if self.dead is None:
                raise  # else: the simulated crash stopped it; a dead process reports nothing
        finally:
            self._ended(workflow_id, run)
            self.running.pop(workflow_id, None)
            self._finishing.discard(workflow_id)
            self.ended.add(workflow_id)
            again = self._respawn.pop(workflow_id, None)
            if again is not None and self.dead is None:
                self.spawn(workflow_id, *again, fresh=False, recheck=True)

    def _ended(self, workflow_id: str, run: LocalRun) -> None:
        """The run is over: its waiters here read the row from now on (woken to do so if it
        stored no outcome: whatever stopped it may have changed the row)."""
        run.ended = True
        session = self.session
        if session is None:
            return
        if session.local_runs.get(workflow_id) is run:
            del session.local_runs[workflow_id]
        if run.row is None and workflow_id not in self.hibernation.parked:
            # (Not a hibernated one: nothing changed its row, and its sleeper would wake it.)
            session.notifier.wake(Change.status(workflow_id))

    async def _still_ours(self, workflow_id: str) -> bool:
        """Whether a workflow about to run again is still PENDING and ours (a resume
        that waited for the previous run may have been overtaken by its outcome)."""
        session = self.session
        if session is None:
            return False
        try:
            return await session.backend.read(store.owns, workflow_id, self.executor_id)
        except LitewfError:
            return True  # let the run find out, and handle it, as any run does

    async def _execute(
        self, workflow_id: str, wf: Workflow[Any, Any], inputs: str, fresh: bool, run: LocalRun
    ) -> bool:
        """Run the function with replay, then store its outcome (if still ours); whether
        it hibernated instead (its wait left memory, to be run again with replay)."""
        session = self.session
        assert session is not None
        ctx = replay.WorkflowContext(session, workflow_id, self.executor_id, {}, self.hooks)
        ctx.task = asyncio.current_task()
        output: str | None = None
        error: BaseException | None = None
        with tracing.workflow_run(workflow_id, wf.name, fresh) as span:
            token = replay.enter(ctx)
            try:
                # The arguments first: they carry the trace context the run's span continues.
                decoded = loads_checked(session.serializer, inputs, f"arguments of {workflow_id!r}")
                span.begin(decoded)
                if not fresh:  # a malformed record (CorruptDatabaseError) is the outcome
                    load = functools.partial(
                        session.backend.read, journal.load_history, workflow_id
                    )
                    ctx.history, ctx.recorded = await replay.retry_storage(workflow_id, load)
                running = wf.fn(*decoded["args"], **call_kwargs(decoded))
                del decoded  # (the function holds its arguments: not a second copy here)
                result = await running
                output = dumps_checked(
                    session.serializer, result, f"the result of workflow {wf.name!r}"
                )
            except _Superseded:
                span.outcome("superseded")
                return False  # cancelled or taken over: whoever changed the row decides
            except _Hibernated:
                span.outcome("hibernated")
                return True
            except Exception as exc:  # noqa: BLE001 - the workflow's failure is its outcome
                error = exc
            finally:
                replay.leave(token)
                ctx.task = None
            if ctx.nondeterminism is not None:
                output, error = None, ctx.nondeterminism
            if error is not None:
                logger.info("workflow %s failed: %r", workflow_id, error)
            span.outcome(Status.SUCCESS.value if error is None else Status.ERROR.value, error)
            self.hooks.before_operation(workflow_id, ctx.next_op, None)  # litewf.testing
            self._finishing.add(workflow_id)
            await self._store_outcome(session, workflow_id, output, error, run)
        return False

    def _run_again(self, workflow_id: str) -> None:
        """Wake a hibernated workflow: run it with replay if it is still PENDING and ours."""
        if self._tg is None or not self.may_start:
            return  # (suspended: idle now, so run again once the lock is back)
        self._starting[workflow_id] = self._starting.get(workflow_id, 0) + 1
        self._tg.start_soon(self._wake, workflow_id)

    async def _wake(self, workflow_id: str) -> None:
        try:
            session = self.session
            if session is None:
                return
            try:
                found = await session.backend.read(
                    store.owned_pending, self.executor_id, [workflow_id]
                )
            except LitewfError:  # idle now: the recovery loop runs it again
                logger.exception("cannot wake workflow %s; the recovery loop will", workflow_id)
                return
            for _, name, inputs in found:
                wf = self.workflows.get(name)
                if wf is not None:
                    self.spawn(workflow_id, wf, inputs, fresh=False)
        finally:
            left = self._starting.pop(workflow_id) - 1
            if left:
                self._starting[workflow_id] = left

    async def _store_outcome(
        self,
        session: Session,
        workflow_id: str,
        output: str | None,
        error: BaseException | None,
        run: LocalRun,
    ) -> None:
        encoded = None if error is None else encode_exception(error)
        error_type, error_message = (
            (None, None) if encoded is None else exception_type_and_message(encoded)
        )
        status = Status.SUCCESS if error is None else Status.ERROR
        outcome = store.ResultRow(status, output, encoded, 0)

        def finish(tx: Tx) -> None:
            stored = store.finish_workflow(
                tx,
                workflow_id,
                self.executor_id,
                status,
                output,
                encoded,
                error_type,
                error_message,
            )
            if stored:  # for this process's get_result callers, before they wake
                tx.after_commit(functools.partial(setattr, run, "row", outcome))

        # A full or failing disk must not take the runtime down: the outcome is still in
        # memory and the row still PENDING, so retry; a shutdown meanwhile leaves it
        # PENDING and the next launch runs the workflow again (replaying its records).
        # (Not ``replay.retry_storage``: a damaged row must not end this loop either.)
        delay = 0.1
        while True:
            try:
                await session.backend.write(finish)
                return
            except DatabaseError:
                logger.exception("cannot store the outcome of workflow %s; retrying", workflow_id)
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -- stopping on changes made elsewhere --------------------------------------------------

    def _on_change(self, change: Change) -> None:
        """A status change of a workflow running here, not made by its run: stop the run
        unless the workflow is still PENDING and ours (cancelled, deleted, taken over)."""
        if change.kind is ChangeKind.STATUS and change.workflow_id not in self._finishing:
            scope = self.running.get(change.workflow_id)
            if scope is not None and self._tg is not None:
                self._tg.start_soon(self._stop_unless_ours, change.workflow_id, scope)

    async def _stop_unless_ours(self, workflow_id: str, scope: anyio.CancelScope) -> None:
        # The row decides, not the notification: one read late from the change log may be
        # a change made before this run started (a cancel that a resume undid).
        session = self.session
        try:
            ours = session is not None and await session.backend.read(
                store.owns, workflow_id, self.executor_id
            )
        except LitewfError:
            ours = False
        if not ours:
            scope.cancel()

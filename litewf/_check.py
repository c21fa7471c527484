"""The replay checker: ``litewf.testing.check_replay`` (and ``litewf check-replay``).

Before deploying new code, replay every history a database recorded against it: each
stored workflow whose name the runtime registered runs its function on its stored
arguments in *check mode* (``WorkflowContext.checking``): recorded operations return
their recorded outcomes and are compared as a real replay compares them, and the first
call past the history (new work: a step body, a send, a wait, a write) stops that
workflow there (``EndOfHistory``), successfully. No step body runs, nothing is sent or
written, and a recorded sleep does not wait.

It works on a copy (``_dbfile.copy_read_only``: SQLite's backup API from a read-only
connection; a PostgreSQL database is read in chunks into a SQLite copy, ``_copy``), so
the user's database is never written, and a live application may keep running on it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass

import anyio
import anyio.lowlevel

from . import _journal as journal
from . import _replay as replay
from . import _store as store
from ._clock import Clock
from ._copy import copy_database
from ._dbfile import absolute_path, copy_read_only
from ._exceptions import CorruptDatabaseError, InvalidValueError, LitewfError
from ._history import describe
from ._pgdialect import is_postgres_url, redact
from ._runtime import Runtime
from ._serialization import loads_checked
from ._session import Session, check_list_filters
from ._ticks import call_kwargs
from ._tx import Tx
from ._types import UNFINISHED, Status, WorkflowStatus
from ._validate import check_timeout

__all__ = ["Divergence", "ReplayReport", "check_replay"]

logger = logging.getLogger("litewf")

#: The executor ID of check-mode contexts (nothing is ever recorded under it).
CHECKER_ID = "litewf-check-replay"
#: Workflows listed per read.
_PAGE = 500


@dataclass(frozen=True, slots=True)
class Divergence:
    """A stored workflow that today's code does not replay.

    ``op_id`` is the operation number where they part (None: the workflow could not be
    replayed at all, ``message`` says why); ``recorded`` is the call the history holds
    there and ``called`` what the code does instead (``None`` when there is none), both
    as ``NonDeterminismError`` names them: ``step 'charge'``, ``set_event(key='a')``.
    """

    workflow_id: str
    name: str
    op_id: int | None
    recorded: str | None
    called: str | None
    message: str


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What ``check_replay`` found: ``ok`` unless a history diverged.

    ``checked``: the workflows replayed; ``divergences``: those that did not replay;
    ``unknown``: stored workflows whose name the runtime has not registered (not checked,
    and not a failure: finished ones are old code's; PENDING ones no runtime with this
    code would run).
    """

    path: str
    checked: int
    divergences: tuple[Divergence, ...]
    unknown: tuple[WorkflowStatus, ...]

    @property
    def ok(self) -> bool:
        return not self.divergences

    def __str__(self) -> str:
        """The report as lines for a person (``litewf check-replay`` prints it)."""
        lines = [
            f"replayed {_count(self.checked, 'workflow')} of {self.path}: "
            + ("all match today's code" if self.ok else f"{len(self.divergences)} diverged")
        ]
        for d in self.divergences:
            lines.append(f"DIVERGED {d.workflow_id} ({d.name}): {d.message}")
        by_name: dict[str, list[WorkflowStatus]] = {}
        for s in self.unknown:
            by_name.setdefault(s.name, []).append(s)
        for name, stored in by_name.items():
            waiting = [s.workflow_id for s in stored if s.status in UNFINISHED]
            note = ""
            if waiting:
                shown = ", ".join(waiting[:3]) + (", ..." if len(waiting) > 3 else "")
                note = f"; {len(waiting)} unfinished ({shown}): no runtime with this code runs them"
            lines.append(
                f"warning: {_count(len(stored), 'workflow')} named {name!r} not checked: "
                f"no workflow of that name is registered{note}"
            )
        return "\n".join(lines)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


class _NoWait(Clock):
    """Real time that never waits: a replayed sleep returns at once."""

    async def sleep(self, seconds: float) -> None:
        await anyio.lowlevel.checkpoint()

    async def sleep_until(self, deadline: float) -> None:
        await anyio.lowlevel.checkpoint()


async def check_replay(
    rt: Runtime,
    path: str | os.PathLike[str],
    *,
    status: Status | str | None = None,
    limit: int | None = None,
    timeout: float = 30.0,
) -> ReplayReport:
    """Replay every workflow stored in the database at ``path`` (a SQLite path or a
    PostgreSQL URL) against the workflows ``rt`` registered, without running a step body
    or writing anything (on a copy), and report each divergence (workflow, operation
    number, recorded vs called).

    ``status`` checks only workflows of that status (``"PENDING"``: the ones a deploy
    replays); ``limit`` at most that many, newest first; ``timeout`` bounds each
    workflow's replay (seconds; a workflow still replaying then is a divergence).
    ``rt`` need not be launched: only its registrations count. A file that is not a
    litewf database, is damaged, or is newer than this litewf raises a ``DatabaseError``.
    """
    if not isinstance(rt, Runtime):
        raise InvalidValueError(f"check_replay() needs a litewf.Runtime, got {rt!r}")
    if not isinstance(path, (str, os.PathLike)) or not isinstance(os.fspath(path), str):
        raise InvalidValueError(f"check_replay() needs a database path, got {path!r}")
    if "\x00" in os.fspath(path):
        raise InvalidValueError(f"the database path {path!r} contains a NUL character")
    wanted, _ = check_list_filters(status, None, 0 if limit is None else limit, 0)
    if check_timeout(timeout, "timeout") == 0:
        raise InvalidValueError("timeout must be more than 0 seconds")
    postgres = is_postgres_url(path)
    source = redact(str(path)) if postgres else absolute_path(path)
    with tempfile.TemporaryDirectory(prefix="litewf-check-") as folder:
        copy = os.path.join(folder, "copy.db" if postgres else os.path.basename(source))
        if postgres:  # read in chunks into a SQLite copy (the server's rows untouched)
            await copy_database(str(path), copy, durability="normal")
        else:
            await anyio.to_thread.run_sync(copy_read_only, source, copy)
        session = Session(
            copy,
            serializer=rt.serializer,
            durability="normal",
            poll_interval=rt.poll_interval,
            create=True,  # an older schema is migrated, as a deploy would
            clock=_NoWait(),
        )
        await session.backend.open()
        try:
            checker = _Checker(rt, session, source, timeout)
            await checker.run(wanted, limit)
        finally:
            await session.backend.close()
    return ReplayReport(source, checker.checked, tuple(checker.divergences), tuple(checker.unknown))


def _load(tx: Tx, workflow_id: str) -> tuple[str, int, dict[int, journal.Operation]] | None:
    """A workflow's stored arguments and its history (version, operations)."""
    found = store.get_inputs(tx, workflow_id)
    if found is None:
        return None
    version, recorded = journal.load_history(tx, workflow_id)
    return found[1], version, recorded


class _Checker:
    """One check: the findings so far, and how each workflow is replayed."""

    def __init__(self, rt: Runtime, session: Session, source: str, timeout: float) -> None:
        self.workflows = rt._executor.workflows
        self.session = session
        self.source = source
        self.timeout = timeout
        self.checked = 0
        self.divergences: list[Divergence] = []
        self.unknown: list[WorkflowStatus] = []

    async def run(self, status: Status | None, limit: int | None) -> None:
        offset = 0
        left = -1 if limit is None else limit
        while left != 0:
            size = _PAGE if left < 0 else min(left, _PAGE)
            page = await self.session.list_workflows_marked(
                status=status, name=None, limit=size, offset=offset
            )
            for item in page:
                if isinstance(item, CorruptDatabaseError):
                    wid = item.workflow_id or "?"
                    self._diverged(wid, "?", None, None, None, f"cannot be replayed: {item}")
                elif item.name not in self.workflows:
                    self.unknown.append(item)
                else:
                    await self._check(item)
            if len(page) < size:
                return
            offset += size
            left = -1 if left < 0 else left - size

    def _diverged(
        self,
        workflow_id: str,
        name: str,
        op_id: int | None,
        recorded: str | None,
        called: str | None,
        message: str,
    ) -> None:
        message = message.replace(self.session.path, self.source)  # name the user's file
        self.divergences.append(Divergence(workflow_id, name, op_id, recorded, called, message))

    async def _check(self, status: WorkflowStatus) -> None:
        """Replay one workflow in check mode; note a divergence if it does not replay."""
        wid, name = status.workflow_id, status.name
        self.checked += 1
        try:
            loaded = await self.session.backend.read(_load, wid)
            if loaded is None:
                return  # (not in a copy)
            inputs, version, recorded = loaded
            arguments = loads_checked(self.session.serializer, inputs, f"arguments of {wid!r}")
        except LitewfError as exc:
            self._diverged(wid, name, None, None, None, f"cannot be replayed: {exc}")
            return
        ctx = replay.WorkflowContext(
            self.session, wid, CHECKER_ID, recorded, replay.HookSlot(), history=version
        )
        ctx.checking = True
        raised: BaseException | None = None
        token = replay.enter(ctx)
        try:
            with anyio.move_on_after(self.timeout) as scope:
                await self.workflows[name].fn(*arguments["args"], **call_kwargs(arguments))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - what the code did is the finding
            raised = exc
        finally:
            replay.leave(token)
        self._judge(status, ctx, raised, scope.cancelled_caught)

    def _judge(
        self,
        status: WorkflowStatus,
        ctx: replay.WorkflowContext,
        raised: BaseException | None,
        timed_out: bool,
    ) -> None:
        wid, name = status.workflow_id, status.name
        wrong = ctx.nondeterminism
        if wrong is not None:
            message = (
                f"operation #{wrong.op_id} was recorded as {wrong.recorded} but the code "
                f"now calls {wrong.called}"
            )
            self._diverged(wid, name, wrong.op_id, wrong.recorded, wrong.called, message)
            return
        if ctx.end_of_history is not None:
            return  # replayed up to where new work begins: what a deploy would do next
        if timed_out:
            self._diverged(
                wid,
                name,
                ctx.next_op,
                None,
                None,
                f"still replaying after {self.timeout:g} s (at operation #{ctx.next_op}); "
                f"does the workflow wait on something litewf does not record?",
            )
            return
        if isinstance(raised, CorruptDatabaseError):  # a damaged record: no verdict
            self._diverged(wid, name, None, None, None, f"cannot be replayed: {raised}")
            return
        left = sorted(op for op in ctx.recorded if op >= ctx.next_op)
        if left:  # the function ended before the history did: an operation was removed
            op = ctx.recorded[left[0]]
            recorded = describe(op.name, op.target)
            called = "nothing (the workflow returned)" if raised is None else _raised(raised)
            message = (
                f"operation #{left[0]} was recorded as {recorded} but the code now "
                f"{'returns' if raised is None else 'raises ' + _raised(raised)} after "
                f"{ctx.next_op} operation{'' if ctx.next_op == 1 else 's'}"
            )
            self._diverged(wid, name, left[0], recorded, called, message)


def _raised(exc: BaseException) -> str:
    text = str(exc)
    return type(exc).__name__ + (f"({text!r})" if text else "")

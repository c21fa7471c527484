"""PostgreSQL's batches: writes queued together share one transaction yet fail alone,
statements whose result nobody reads wait for the batch's end yet are seen by later
statements, and reads queued together share one snapshot yet fail alone.

Runs on the server ``LITEWF_TEST_POSTGRES`` names (skipped without it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from litewf import _store as store
from litewf._change import Change
from litewf._exceptions import DatabaseError
from litewf._pgdb import PgDatabase
from litewf._tx import Tx
from litewf._types import Status
from tests.conditions import wait_until
from tests.conftest import admin, postgres_database


@pytest.fixture
async def db() -> AsyncIterator[PgDatabase]:
    for url in postgres_database():
        database = PgDatabase(str(url), durability="full", create=True)
        await database.open()
        try:
            yield database
        finally:
            await database.close()


async def _queued_behind_the_write_lock(
    db: PgDatabase, calls: list[Callable[[], Any]], first: Callable[[], Any]
) -> None:
    """Run ``first`` while another session holds the schema's write lock, then queue
    ``calls`` behind it (so they form one batch) and let the lock go."""
    with admin(db.url) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (db.write_key,))
        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await wait_until(lambda: db.writing)
            for call in calls:
                tg.start_soon(call)
            await wait_until(lambda: db.queued == len(calls))
            other.execute("SELECT pg_advisory_unlock(%s)", (db.write_key,))


def count_apart(db: PgDatabase) -> list[int]:
    """The sizes of the batches run unit by unit from now on (instrumentation)."""
    apart: list[int] = []
    run_apart = db._run_apart

    def counted(conn: Any, batch: list[Any]) -> None:
        apart.append(len(batch))
        run_apart(conn, batch)

    db._run_apart = counted  # type: ignore[method-assign]
    return apart


class Unwind(BaseException):
    """Like litewf's own unwinding signals (a superseded run): not an ``Exception``."""


@pytest.mark.parametrize("error", [RuntimeError, Unwind])
async def test_a_failing_write_rolls_back_alone_in_a_shared_commit(
    db: PgDatabase, error: type[BaseException]
) -> None:
    runs: dict[str, int] = {}
    outcomes: dict[str, object] = {}

    def insert(tx: Tx, workflow_id: str, fail: bool) -> str:
        runs[workflow_id] = runs.get(workflow_id, 0) + 1
        store.insert_workflow(tx, workflow_id, "db.double", "{}", "ex", None)
        store.log_change(tx, Change.status(workflow_id))
        if fail:
            raise error("after the insert")
        return workflow_id

    def write(workflow_id: str, fail: bool = False) -> Callable[[], Any]:
        async def call() -> None:
            try:
                outcomes[workflow_id] = await db.write(insert, workflow_id, fail)
            except error as exc:
                outcomes[workflow_id] = exc

        return call

    await _queued_behind_the_write_lock(
        db, [write("w1"), write("w2", fail=True), write("w3")], write("w0")
    )
    assert [outcomes[f"w{i}"] for i in (0, 1, 3)] == ["w0", "w1", "w3"]
    assert isinstance(outcomes["w2"], error)
    rows = await db.read(lambda tx: tx.fetchall("SELECT workflow_id FROM workflows ORDER BY 1"))
    assert [r[0] for r in rows] == ["w0", "w1", "w3"]
    changes = await db.read(lambda tx: tx.fetchall("SELECT workflow_id FROM changes ORDER BY seq"))
    assert [r[0] for r in changes] == ["w0", "w1", "w3"]
    # The batch ran together first up to w2, then each unit apart.
    assert runs == {"w0": 1, "w1": 2, "w2": 2, "w3": 1}


async def test_a_batch_without_failures_runs_each_unit_once(db: PgDatabase) -> None:
    runs: list[str] = []

    def insert(tx: Tx, workflow_id: str) -> None:
        runs.append(workflow_id)
        store.insert_workflow(tx, workflow_id, "db.double", "{}", "ex", None)
        store.log_change(tx, Change.status(workflow_id))

    def write(workflow_id: str) -> Callable[[], Any]:
        return lambda: db.write(insert, workflow_id)

    await _queued_behind_the_write_lock(db, [write(f"w{i}") for i in range(1, 6)], write("w0"))
    assert sorted(runs) == [f"w{i}" for i in range(6)]
    changes = await db.read(lambda tx: tx.fetchall("SELECT workflow_id FROM changes ORDER BY seq"))
    assert sorted(r[0] for r in changes) == [f"w{i}" for i in range(6)]


async def test_an_answer_taken_for_granted_and_wrong_runs_the_batch_again_answered(
    db: PgDatabase,
) -> None:
    """``apply`` answers True without waiting; a duplicate ID (no row inserted) fails
    the batch on the server, which runs it again together with every answer awaited:
    twice in all, never unit by unit, and each unit gets its exact answer."""
    await db.write(store.insert_workflow, "dup", "db.double", "{}", "ex", None)
    runs: dict[str, int] = {}
    outcomes: dict[str, object] = {}

    def insert(tx: Tx, workflow_id: str) -> str | None:
        runs[workflow_id] = runs.get(workflow_id, 0) + 1
        existing = store.insert_workflow(tx, workflow_id, "db.double", "{}", "ex", None)
        if existing is None:
            store.log_change(tx, Change.status(workflow_id))
        return existing

    def write(workflow_id: str) -> Callable[[], Any]:
        async def call() -> None:
            outcomes[workflow_id] = await db.write(insert, workflow_id)

        return call

    apart = count_apart(db)
    await _queued_behind_the_write_lock(db, [write("w1"), write("dup"), write("w3")], write("w0"))
    assert outcomes == {"w0": None, "w1": None, "dup": "db.double", "w3": None}
    assert runs == {"w0": 1, "w1": 2, "dup": 2, "w3": 2}
    assert apart == []
    rows = await db.read(lambda tx: tx.fetchall("SELECT workflow_id FROM workflows ORDER BY 1"))
    assert [r[0] for r in rows] == ["dup", "w0", "w1", "w3"]
    changes = await db.read(lambda tx: tx.fetchall("SELECT workflow_id FROM changes ORDER BY seq"))
    assert [r[0] for r in changes] == ["w0", "w1", "w3"]


async def test_rows_awaited_to_the_batch_end_reach_their_continuation(db: PgDatabase) -> None:
    """``finish_workflow`` takes its UPDATE for granted and reads the RETURNING row (the
    queue to wake) at the batch's end: a queued workflow's finish logs its queue's change,
    and one no longer ours (no row) makes the batch run again, answered: False."""
    for workflow_id, owner in (("w1", "ex"), ("w2", "someone-else"), ("w3", "ex")):
        await db.write(store.insert_workflow, workflow_id, "db.double", "{}", owner, None)
    await db.write(
        lambda tx: tx.execute("UPDATE workflows SET queue_name = 'q' WHERE workflow_id = 'w3'")
    )
    outcomes: dict[str, object] = {}
    apart = count_apart(db)

    def finish(workflow_id: str) -> Callable[[], Any]:
        async def call() -> None:
            outcomes[workflow_id] = await db.write(
                store.finish_workflow, workflow_id, "ex", Status.SUCCESS, "1", None, None, None
            )

        return call

    async def first() -> None:
        await db.write(lambda tx: None)

    await _queued_behind_the_write_lock(db, [finish("w1"), finish("w2"), finish("w3")], first)
    assert outcomes == {"w1": True, "w2": False, "w3": True}
    assert apart == []
    changes = await db.read(
        lambda tx: tx.fetchall("SELECT kind, workflow_id FROM changes ORDER BY kind, workflow_id")
    )
    assert [tuple(r) for r in changes] == [("queue", "q"), ("status", "w1"), ("status", "w3")]


async def test_statements_prepared_in_a_failed_batch_are_forgotten(db: PgDatabase) -> None:
    """psycopg prepares a statement on its fifth use; when that use is in a batch that
    fails on the server, the preparation never happened: the batch run again (and the
    batches after it) must not use it as prepared ("prepared statement does not exist")."""
    await db.write(store.insert_workflow, "dup", "db.double", "{}", "ex", None)
    outcomes: dict[str, object] = {}

    def write(workflow_id: str) -> Callable[[], Any]:
        async def call() -> None:
            try:
                outcomes[workflow_id] = await db.write(
                    store.insert_workflow, workflow_id, "db.double", "{}", "ex", None
                )
            except DatabaseError as exc:
                outcomes[workflow_id] = exc

        return call

    for round_ in range(4):
        new = [write(f"w{round_}-{i}") for i in range(3)]
        await _queued_behind_the_write_lock(db, [write("dup"), *new], write(f"first{round_}"))
    failed = {k: v for k, v in outcomes.items() if isinstance(v, Exception)}
    assert failed == {}
    assert outcomes["dup"] == "db.double"
    rows = await db.read(lambda tx: tx.fetchone("SELECT count(*) FROM workflows"))
    assert rows is not None and rows[0] == 1 + 4 * 4


async def test_a_unit_swallowing_a_server_error_does_not_pass_for_committed(
    db: PgDatabase,
) -> None:
    """After a server error, PostgreSQL answers COMMIT by rolling back, without an error:
    a unit that caught the error must not see its write reported as committed."""

    def sneaky(tx: Tx) -> str:
        store.insert_workflow(tx, "w5", "db.double", "{}", "ex", None)
        try:
            tx.fetchone("SELECT 1 / 0")
        except Exception:  # noqa: BLE001, S110 - what a careless unit might do
            pass
        return "done"

    with pytest.raises(DatabaseError, match="did not commit"):
        await db.write(sneaky)
    assert await db.read(store.workflow_exists, "w5") is False


async def test_a_statement_on_the_changes_table_sees_the_changes_logged_before_it(
    db: PgDatabase,
) -> None:
    def log_then_count(tx: Tx) -> list[int]:
        counts = []
        for i in range(3):
            store.log_change(tx, Change.status(f"w{i}"))
            counts.append(tx.fetchone("SELECT count(*) FROM changes")[0])  # type: ignore[index]
        return counts

    assert await db.write(log_then_count) == [1, 2, 3]
    assert await db.read(store.last_change) == 3


async def test_reads_queued_together_share_a_snapshot_yet_fail_alone(db: PgDatabase) -> None:
    await db.write(store.insert_workflow, "w0", "db.double", "{}", "ex", None)
    outcomes: dict[str, object] = {}
    release = anyio.Event()

    def blocking(tx: Tx) -> None:
        tx.fetchone("SELECT 1")
        tx.fetchone("SELECT 2")  # two statements: it runs in the read batches' thread
        anyio.from_thread.run(release.wait)

    def read(name: str, sql: str) -> Callable[[], Any]:
        async def call() -> None:
            try:
                outcomes[name] = await db.read(lambda tx: tx.fetchall(sql))
            except DatabaseError as exc:
                outcomes[name] = exc

        return call

    async with anyio.create_task_group() as tg:
        tg.start_soon(db.read, blocking)
        await wait_until(lambda: db._reads.running)
        calls = [
            read("before", "SELECT workflow_id FROM workflows"),
            read("bad", "SELECT no_such_column FROM workflows"),
            read("after", "SELECT count(*) FROM workflows"),
        ]
        for call in calls:
            tg.start_soon(call)
        await wait_until(lambda: db.reads_queued == 3)
        release.set()
    assert [tuple(r) for r in outcomes["before"]] == [("w0",)]  # type: ignore[attr-defined]
    assert isinstance(outcomes["bad"], DatabaseError)
    assert [tuple(r) for r in outcomes["after"]] == [(1,)]  # type: ignore[attr-defined]


async def test_a_lone_read_of_several_statements_still_sees_one_snapshot(
    db: PgDatabase,
) -> None:
    """A lone read runs as one statement outside a transaction; one that needs a second
    statement runs again in a snapshot: a commit between its statements is not seen."""
    with admin(db.url) as other:
        other.execute(f'SET search_path TO "{db.schema}"')

        def count_twice(tx: Tx) -> tuple[int, int]:
            first = tx.fetchone("SELECT count(*) FROM changes")
            other.execute(
                "INSERT INTO changes (kind, workflow_id, key, created_at) "
                "VALUES ('status', 'w', NULL, 0)"
            )
            second = tx.fetchone("SELECT count(*) FROM changes")
            assert first is not None and second is not None
            return first[0], second[0]

        first, second = await db.read(count_twice)
        assert first == second
        assert await db.read(lambda tx: tx.fetchone("SELECT count(*) FROM changes")[0]) == 2  # type: ignore[index]


async def test_a_fork_child_closing_what_it_inherited_leaves_the_parent_connected(
    db: PgDatabase,
) -> None:
    """A fork() child lets go of its parent's connections: its closing them (as its
    interpreter's exit would) says nothing to the server, whose sessions stay the
    parent's (else the server would end them, write lock and all)."""
    import gc
    import os

    import psycopg

    await db.write(store.insert_workflow, "w0", "db.double", "{}", "ex", None)
    await db.read(store.last_change)  # the lone reads' connection (event loop)
    await db.read(lambda tx: (tx.fetchone("SELECT 1"), tx.fetchone("SELECT 2")))  # thread
    pid = os.fork()
    if pid == 0:  # the child: close every inherited connection, then leave at once
        code = 0
        try:
            for obj in gc.get_objects():
                if isinstance(obj, psycopg.Connection):
                    obj.close()
                elif isinstance(obj, psycopg.AsyncConnection):
                    obj.pgconn.finish()  # (its close() needs the parent's event loop)
        except Exception:  # noqa: BLE001 - told by the exit code
            code = 1
        os._exit(code)
    _, status = await anyio.to_thread.run_sync(os.waitpid, pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    await db.write(store.insert_workflow, "w1", "db.double", "{}", "ex", None)
    rows = await db.read(lambda tx: tx.fetchall("SELECT workflow_id FROM workflows ORDER BY 1"))
    assert [r[0] for r in rows] == ["w0", "w1"]
    assert await db.read(store.status_of, "w1") == Status.PENDING  # the lone reads' too
    assert db._reader.conn is not None and db._quick._conn is not None


# -- lone reads on the event loop (``_pgquick``) ------------------------------------------------


async def test_a_lone_read_of_one_statement_never_crosses_to_the_readers_thread(
    db: PgDatabase,
) -> None:
    """Answered on the event loop's own connection: the reader's thread connection is
    never even opened; the answer sees every write committed before it was asked."""
    await db.write(store.insert_workflow, "w0", "db.double", "{}", "ex", None)
    for _ in range(3):
        assert await db.read(store.status_of, "w0") == Status.PENDING
    assert await db.read(store.status_of, "missing") is None
    assert db._reader.conn is None


async def test_a_lone_read_of_two_statements_runs_once_in_a_snapshot(db: PgDatabase) -> None:
    """Its first statement is answered on the event loop, the second sends it to a
    snapshot in the reader's thread, where it runs once (not first alone again)."""
    runs: list[str] = []

    def two(tx: Tx) -> tuple[int, int]:
        runs.append("run")
        first = tx.fetchone("SELECT 1")
        second = tx.fetchone("SELECT 2")
        assert first is not None and second is not None
        return first[0], second[0]

    assert await db.read(two) == (1, 2)
    # The probe (asks its first), the answered run (asks a second), the snapshot.
    assert len(runs) == 3
    assert db._reader.conn is not None


async def test_lone_reads_at_once_share_the_work(db: PgDatabase) -> None:
    """While a lone read is under way, the others go to the read batches: all answer."""
    await db.write(store.insert_workflow, "w0", "db.double", "{}", "ex", None)
    results: list[Any] = []

    async def one() -> None:
        results.append(await db.read(store.status_of, "w0"))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(one)
    assert results == [Status.PENDING] * 20
    assert db._reader.conn is not None  # some went to the batches


async def test_a_lone_reads_connection_terminated_is_replaced(db: PgDatabase) -> None:
    """The server ends the quick reads' connection: the read that finds it broken fails
    with ``DatabaseError``, the next one connects anew."""
    await db.write(store.insert_workflow, "w0", "db.double", "{}", "ex", None)
    assert await db.read(store.status_of, "w0") == Status.PENDING
    pid = db._quick._conn.info.backend_pid
    with admin(db.url) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    with pytest.raises(DatabaseError):
        await db.read(store.status_of, "w0")
    assert await db.read(store.status_of, "w0") == Status.PENDING
    assert db._quick._conn.info.backend_pid != pid


async def test_a_lone_read_cancelled_leaves_its_connection_usable(db: PgDatabase) -> None:
    """A caller cancelled while its read is on the server: the read completes first
    (shielded), and the connection answers the next read."""
    with anyio.move_on_after(0.01):
        await db.read(lambda tx: tx.fetchone("SELECT pg_sleep(0.2)"))
    assert await db.read(lambda tx: tx.fetchone("SELECT 42")[0]) == 42  # type: ignore[index]
    assert db._reader.conn is None


def _batch_of(db: PgDatabase, units: list[Callable[[Tx], Any]]) -> Callable[[], Any]:
    """Run ``units`` in one batch (queued behind the write lock); return their runs."""
    runs = [0] * len(units)

    def counted(i: int) -> Callable[[], Any]:
        def unit(tx: Tx) -> Any:
            runs[i] += 1
            return units[i](tx)

        async def call() -> None:
            await db.write(unit)

        return call

    async def first() -> None:
        await db.write(lambda tx: None)

    async def run() -> list[int]:
        await _queued_behind_the_write_lock(db, [counted(i) for i in range(len(units))], first)
        return runs

    return run


def _insert(workflow_id: str) -> Callable[[Tx], Any]:
    return lambda tx: store.insert_workflow(tx, workflow_id, "db.order", "{}", "ex", None)


def _claim(workflow_id: str) -> Callable[[Tx], Any]:
    return lambda tx: tx.apply(
        "UPDATE workflows SET executor_id = 'mine' WHERE workflow_id = ?", (workflow_id,)
    )


async def test_runs_of_equal_statements_held_back_keep_the_order_of_statements(
    db: PgDatabase,
) -> None:
    """Assumed ``apply``s of one text are held back and sent as one run, yet every other
    statement waits for the run: an UPDATE that needs the row of the INSERT before it
    changes it, a read between sees the rows inserted before it, so no unit runs twice."""
    seen: list[int] = []

    def count(tx: Tx) -> None:
        row = tx.fetchone("SELECT count(*) FROM workflows WHERE name = 'db.order'")
        assert row is not None
        seen.append(row[0])

    units = [
        _insert("a1"),
        _insert("a2"),
        _claim("a2"),
        _insert("a3"),
        count,
        _insert("a4"),
        _claim("a4"),
        _claim("a1"),
    ]
    apart = count_apart(db)
    runs = await _batch_of(db, units)()
    assert runs == [1] * len(units)
    assert apart == []
    assert seen == [3]
    rows = await db.read(
        lambda tx: tx.fetchall(
            "SELECT workflow_id, executor_id FROM workflows WHERE name = 'db.order' ORDER BY 1"
        )
    )
    assert [tuple(r) for r in rows] == [
        ("a1", "mine"),
        ("a2", "mine"),
        ("a3", "ex"),
        ("a4", "mine"),
    ]


async def test_a_run_held_back_reads_each_statements_own_rows(db: PgDatabase) -> None:
    """A run of ``apply(..., then=...)`` statements sent together: each ``then`` gets the
    rows of its own statement, once, and the batch runs once."""
    for workflow_id in ("r1", "r2", "r3"):
        await db.write(store.insert_workflow, workflow_id, "db.rows", "{}", "ex", None)
    got: list[tuple[str, ...]] = []

    def renamed(workflow_id: str) -> Callable[[Tx], Any]:
        return lambda tx: tx.apply(
            "UPDATE workflows SET executor_id = ? WHERE workflow_id = ? "
            "RETURNING workflow_id, executor_id",
            (f"by-{workflow_id}", workflow_id),
            then=lambda rows: got.append(tuple(rows[0])),
        )

    runs = await _batch_of(db, [renamed("r1"), renamed("r2"), renamed("r3")])()
    assert runs == [1, 1, 1]
    assert got == [("r1", "by-r1"), ("r2", "by-r2"), ("r3", "by-r3")]


_TABLES = ("INSERT INTO workflows", "UPDATE workflows", "INSERT INTO changes", "")


async def test_a_batch_of_equal_applies_is_one_executemany(
    db: PgDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N equal assumed ``apply``s in a batch reach psycopg as one ``executemany`` of N
    parameter sets (with ``then``, too), not N ``execute``s."""
    calls: list[tuple[str, int]] = []
    cursor_class = type(db._writer.cursor)
    executemany = cursor_class.executemany

    def counted(self: Any, query: Any, params_seq: Any, **kwargs: Any) -> None:
        params_seq = list(params_seq)
        text = " ".join(str(query).split())
        calls.append((next(t for t in _TABLES if t in text), len(params_seq)))
        executemany(self, query, params_seq, **kwargs)

    monkeypatch.setattr(cursor_class, "executemany", counted)
    ids = [f"m{i}" for i in range(6)]
    runs = await _batch_of(db, [_insert(i) for i in ids])()
    assert runs == [1] * 6
    assert calls == [("INSERT INTO workflows", 6)]
    calls.clear()

    def finish(workflow_id: str) -> Callable[[Tx], Any]:
        return lambda tx: store.finish_workflow(
            tx, workflow_id, "ex", Status.SUCCESS, "1", None, None, None
        )

    runs = await _batch_of(db, [finish(i) for i in ids])()
    assert runs == [1] * 6
    assert calls == [("UPDATE workflows", 6), ("INSERT INTO changes", 6)]
    rows = await db.read(
        lambda tx: tx.fetchall("SELECT status FROM workflows WHERE name = 'db.order'")
    )
    assert [r[0] for r in rows] == ["SUCCESS"] * 6


async def test_a_refusal_surfacing_in_the_unit_that_took_the_answer_runs_it_answered(
    db: PgDatabase,
) -> None:
    """The server's refusal of an answer taken for granted may surface at the same
    unit's next statement: the batch still runs again answered, not unit by unit."""
    await db.write(store.insert_workflow, "taken", "db.double", "{}", "ex", None)

    def insert_then_read(tx: Tx) -> Any:
        existing = store.insert_workflow(tx, "taken", "db.double", "{}", "ex", None)
        tx.fetchone("SELECT 1")
        return existing

    apart = count_apart(db)
    runs = await _batch_of(db, [insert_then_read, _insert("fresh")])()
    assert apart == []
    assert runs == [2, 1]  # the second unit never ran in the refused attempt

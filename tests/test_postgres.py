"""PostgreSQL-only guarantees: takeover across processes by advisory locks, surviving
connections the server terminates, refusing schemas that are not litewf's.

Every test here runs on the server ``LITEWF_TEST_POSTGRES`` names (skipped without it);
the rest of the suite runs on both backends through ``conftest.db_path``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from litewf._cli import main as cli_main
from litewf._pgdialect import split_url
from tests import procs
from tests.conditions import wait_until
from tests.conftest import admin


def lines(out: Path) -> list[list[str]]:
    path = out / "log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


async def test_three_processes_one_killed_mid_step_is_taken_over_within_a_second(
    pg_url: str, tmp_path: Path
) -> None:
    """Three runtimes in three processes share one database; the one SIGKILLed in the
    middle of a step has its workflows taken over by a peer within a second, and their
    recorded first step is not run again."""
    n = 4
    dead = procs.spawn("pg", pg_url, tmp_path, "dead", str(n))
    peers = [procs.spawn("pg", pg_url, tmp_path, name, "0") for name in ("two", "three")]
    try:
        for name, proc in (("dead", dead), ("two", peers[0]), ("three", peers[1])):
            await procs.wait_for_file(tmp_path / f"{name}.running", proc)
        t_kill = time.time()
        procs.kill(dead)
        await wait_until(lambda: len([x for x in lines(tmp_path) if x[0] == "slow"]) >= 2 * n)
        retaken = [x for x in lines(tmp_path) if x[0] == "slow" and int(x[2]) != dead.pid]
        assert {x[1] for x in retaken} == {f"dead-{i}" for i in range(n)}
        lag = max(float(x[3]) for x in retaken) - t_kill
        assert lag <= 1.0, f"takeover took {lag:.3f} s"
        (tmp_path / "release").touch()
        async with litewf.Client(pg_url) as client:
            for i in range(n):
                handle = await client.retrieve_workflow(f"dead-{i}")
                assert await handle.get_result(timeout=30) == f"done dead-{i}"
    finally:
        (tmp_path / "stop").touch()
        for proc in peers:
            await procs.finish_async(proc)
    records = [x[1] for x in lines(tmp_path) if x[0] == "record"]
    assert sorted(records) == sorted(f"dead-{i}" for i in range(n))  # each once


async def test_connections_terminated_by_the_server_are_replaced(pg_url: str) -> None:
    """The server ends every connection of a runtime mid-run (``pg_terminate_backend``):
    calls fail with ``DatabaseError`` or succeed, the runtime recovers by itself, nothing
    acknowledged is lost, and no step runs twice."""
    _, schema = split_url(pg_url)
    rt = litewf.Runtime(pg_url, recovery_interval=0.1)
    runs: list[str] = []

    @rt.step(name="count")
    async def count(wid: str, i: int) -> None:
        runs.append(f"{wid}:{i}")

    @rt.workflow(name="pg.echo")
    async def echo() -> list[Any]:
        got = []
        for i in range(3):
            got.append(await rt.recv(timeout=60))
            await count(rt.current_workflow_id() or "", i)
        return got

    acknowledged: list[int] = []
    async with rt:
        handle = await rt.start_workflow(echo, workflow_id="e")
        with admin(pg_url) as conn:
            mine = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"

            def connected() -> int:
                row = conn.execute(mine, (f"litewf:{schema}",)).fetchone()
                return 0 if row is None else int(row[0])

            await wait_until(lambda: connected() >= 3)  # reads/writes, listener, lock
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (f"litewf:{schema}",),
            ).fetchone()
        assert killed is not None and killed[0] >= 3
        with anyio.fail_after(20):
            for message in range(3):
                while True:
                    try:
                        await rt.send("e", message)
                    except litewf.DatabaseError:
                        await anyio.sleep(0.05)
                        continue
                    acknowledged.append(message)
                    break
            while True:
                try:
                    assert await handle.get_result(timeout=10) == acknowledged
                    break
                except litewf.DatabaseError:
                    await anyio.sleep(0.05)
    assert runs == ["e:0", "e:1", "e:2"]


async def test_a_schema_that_is_not_litewfs_is_refused_untouched(pg_url: str) -> None:
    _, schema = split_url(pg_url)
    with admin(pg_url) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".mine (x int)')
    with pytest.raises(litewf.ForeignDatabaseError):
        async with litewf.Runtime(pg_url):
            pass
    with admin(pg_url) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
    assert tables == [("mine",)]


async def test_a_newer_schema_is_refused_untouched(pg_url: str) -> None:
    async with litewf.Runtime(pg_url):
        pass
    _, schema = split_url(pg_url)
    with admin(pg_url) as conn:
        conn.execute(f'UPDATE "{schema}".litewf_version SET version = 999')
    with pytest.raises(litewf.SchemaTooNewError):
        async with litewf.Client(pg_url):
            pass


async def test_a_client_needs_an_existing_database(pg_url: str) -> None:
    with pytest.raises(litewf.DatabaseError, match="launch a Runtime"):
        async with litewf.Client(pg_url):
            pass


async def test_without_the_driver_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No server needed: psycopg missing is reported with the extra to install."""
    monkeypatch.setitem(__import__("sys").modules, "psycopg", None)  # import fails
    with pytest.raises(litewf.LitewfError, match=r"pip install 'litewf\[postgres\]'"):
        async with litewf.Runtime("postgresql://nobody@127.0.0.1:1/none"):
            pass


def test_a_bad_schema_name_is_refused() -> None:
    with pytest.raises(litewf.InvalidValueError, match="schema"):
        split_url("postgresql://h/db?schema=Bad-Name")


def doctor(url: str) -> tuple[int, dict[str, Any], str]:
    """``litewf --json doctor`` on ``url``: exit status, the facts, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(["--json", "--db", url, "doctor"])
    return code, json.loads(out.getvalue()), err.getvalue()


async def test_doctor_checks_the_schema_in_the_catalog_and_every_row(pg_url: str) -> None:
    """On a sound schema doctor says ok; a hand-edited row is a corrupt row; a dropped
    index and a dropped unique constraint fail the integrity check, each named."""
    rt = litewf.Runtime(pg_url)

    @rt.workflow(name="pg.double")
    async def double(x: int) -> int:
        return 2 * x

    async with rt:
        for i in range(3):
            await (await rt.start_workflow(double, i, workflow_id=f"d-{i}")).get_result(10)
    _, schema = split_url(pg_url)
    code, info, err = await anyio.to_thread.run_sync(doctor, pg_url)
    assert (code, err) == (0, "")
    assert (info["integrity"], info["corrupt_rows"]) == ("ok", 0)
    assert info["workflows"] == {"SUCCESS": 3} and info["schema"] == schema
    with admin(pg_url) as conn:
        conn.execute(f"UPDATE \"{schema}\".workflows SET status = 'DONE' WHERE workflow_id = 'd-1'")
    code, info, err = await anyio.to_thread.run_sync(doctor, pg_url)
    assert (code, info["integrity"], info["corrupt_rows"]) == (1, "ok", 1)
    assert "'d-1'" in info["corrupt_row_problems"][0] and "workflows.status" in err
    with admin(pg_url) as conn:
        conn.execute(f'DROP INDEX "{schema}".workflows_by_status')
        conn.execute(f'ALTER TABLE "{schema}".workflows DROP CONSTRAINT workflows_workflow_id_key')
    code, info, err = await anyio.to_thread.run_sync(doctor, pg_url)
    assert code == 1 and "integrity check failed" in err
    assert "index workflows_by_status is missing" in info["integrity"]
    assert "workflows.workflow_id is not unique" in info["integrity"]


async def test_the_ownership_check_finds_its_row_by_index_whatever_runs(pg_url: str) -> None:
    """Every write for a running workflow checks ``workflow_id = ? AND status = ? AND
    executor_id = ?``. Prepared (a generic plan, as psycopg's repeated statements are),
    that check must look the row up by its ID, not scan the executor's running
    workflows: with a thousand running, that scan made each write a thousand times
    dearer."""
    _, schema = split_url(pg_url)
    rt = litewf.Runtime(pg_url)

    @rt.workflow(name="pg.parked")
    async def parked() -> None:
        await rt.recv(timeout=60)

    async with rt:
        for _ in range(200):
            await rt.start_workflow(parked)
    with admin(pg_url) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute("ANALYZE workflows")
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(
            "PREPARE mine(text, text, text) AS SELECT 1 FROM workflows "
            "WHERE workflow_id = $1 AND status = $2 AND executor_id = $3"
        )
        plan = "\n".join(
            row[0] for row in conn.execute("EXPLAIN EXECUTE mine('w', 'PENDING', 'e')")
        )
    index_cond = [line for line in plan.splitlines() if "Index Cond" in line]
    assert index_cond and "workflow_id" in index_cond[0], plan


def _asked(fn: Any, *args: Any, answer: Any = lambda sql: []) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements ``fn(tx, *args)`` runs, in PostgreSQL's dialect: reads answered by
    ``answer(sql)`` (default: no rows), writes taken as done; nothing reaches a server."""
    from litewf._pgdialect import translate
    from litewf._tx import Tx

    asked: list[tuple[str, tuple[Any, ...]]] = []

    class Asked(Tx):
        def execute(self, sql: str, params: Any = ()) -> int:
            asked.append((translate(sql), tuple(params)))
            return 1

        def fetchone(self, sql: str, params: Any = ()) -> Any:
            rows = self.fetchall(sql, params)
            return rows[0] if rows else None

        def fetchall(self, sql: str, params: Any = ()) -> Any:
            asked.append((translate(sql), tuple(params)))
            return answer(sql)

        def execute_later(self, sql: str, params: Any = ()) -> None:
            self.execute(sql, params)

    fn(Asked(None), *args)  # type: ignore[arg-type]
    return asked


def _generic_plan_nodes(conn: Any, sql: str, params: tuple[Any, ...]) -> list[str]:
    """The plan nodes of ``sql`` as a generic plan (``PREPARE``, then ``EXPLAIN EXECUTE``
    with ``plan_cache_mode = force_generic_plan``): the plan a litewf connection runs a
    statement with once psycopg has prepared it (its sixth run), chosen without the
    parameters' values."""
    from psycopg import sql as pgsql

    numbers = iter(range(1, len(params) + 1))
    numbered = re.sub(r"%s", lambda _: f"${next(numbers)}", sql).replace("%%", "%")
    args = pgsql.SQL(", ").join(map(pgsql.Literal, params)).as_string(conn)
    conn.execute("SET plan_cache_mode = force_generic_plan")
    if conn.execute("SELECT 1 FROM pg_prepared_statements WHERE name = 'generic'").fetchone():
        conn.execute("DEALLOCATE generic")  # (not ALL: psycopg's own would go)
    conn.execute(f"PREPARE generic AS {numbered}")
    rows = conn.execute(f"EXPLAIN EXECUTE generic({args})" if params else "EXPLAIN EXECUTE generic")
    return [row[0].strip().removeprefix("->  ") for row in rows.fetchall()]


@pytest.mark.parametrize("topic", [None, "t"])
async def test_taking_a_message_reads_the_queues_index_however_long(
    pg_url: str, topic: str | None
) -> None:
    """``recv``'s take, prepared (a generic plan), finds the oldest message of its queue
    in the queue's index: with ``topic IS NOT DISTINCT FROM`` it sorted every message of
    the destination, so draining a long queue cost the square of its length. Listing a
    queue's messages reads the same index (it sorted them too)."""
    from litewf import _journal as journal

    _, schema = split_url(pg_url)
    async with litewf.Runtime(pg_url):
        pass  # the schema
    with admin(pg_url) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute(  # the queue, and another destination's
            "INSERT INTO messages (destination_id, topic, message, created_at) "
            "SELECT CASE WHEN i %% 2 = 0 THEN 'dest' ELSE 'other' END, %s, 'm', 0 "
            "FROM generate_series(1, 4000) AS i",
            (topic,),
        )
        conn.execute("ANALYZE messages")
        asked = [
            *_asked(journal.take_message, "dest", topic),
            *_asked(journal.list_queued, "dest", topic, False),  # (show, the dashboard)
        ]
        assert len(asked) == 2
        for sql, params in asked:
            nodes = [node.split("  (")[0] for node in _generic_plan_nodes(conn, sql, params)]
            assert "Sort" not in nodes and "Seq Scan on messages" not in nodes, nodes


async def test_queue_counts_and_owner_scans_read_an_index_however_many_finished(
    pg_url: str,
) -> None:
    """The dequeuer's counts of a queue's running workflows and recovery's list of the
    owners of PENDING workflows read an index, however many finished workflows the table
    holds. With the status bound as a parameter, a generic plan guessed that a third of
    the rows matched and read the whole table (1.5 ms per dequeue at 10,000 rows in one
    queue, growing with every finished workflow); the status is written into the SQL."""
    from litewf import _queuesql as queuesql
    from litewf import _store as store

    _, schema = split_url(pg_url)
    async with litewf.Runtime(pg_url):
        pass  # the schema
    with admin(pg_url) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute(  # one queue: 100 running, 9,900 waiting, 10,000 finished
            "INSERT INTO workflows (workflow_id, name, status, inputs, executor_id, "
            "queue_name, priority, created_at, updated_at) SELECT 'w' || i, 'n', "
            "CASE WHEN i <= 100 THEN 'PENDING' WHEN i <= 10000 THEN 'ENQUEUED' "
            "ELSE 'SUCCESS' END, '{}', CASE WHEN i <= 100 THEN 'e' END, 'q', 0, 0, 0 "
            "FROM generate_series(1, 20000) AS i"
        )
        conn.execute("ANALYZE workflows")
        limits = queuesql.QueueLimits(concurrency=10, worker_concurrency=5, rate_limit=None)
        asked = [
            *_asked(queuesql.dequeue, "q", limits, "e", ["n"], 0.0),
            *_asked(store.pending_owners),
        ]
        assert len(asked) == 4  # (the worker's count, the queue's, the scan; the owners)
        for sql, params in asked:
            plan = _generic_plan_nodes(conn, sql, params)
            assert not any(node.startswith("Seq Scan") for node in plan), (sql, plan)


async def test_lookups_by_id_and_status_read_one_entry_in_plans_of_an_empty_table(
    pg_url: str,
) -> None:
    """A statement is prepared on its sixth run, often in a new database's first
    milliseconds, and its generic plan, made on a table that is still empty (where every
    index costs the same), stays until the table is analyzed. Whichever index such a plan
    takes for the lookups by workflow ID and status (ownership checks, finishing,
    a queued or delayed workflow's claim, a cancel, a timeout), it must bound the ID: with workflows_by_status
    on (status, executor_id, workflow_id), a queued workflow's claim read every ENQUEUED
    entry (10,000 queued: 0.15 ms each)."""
    from litewf import _deadlinesql as deadlinesql
    from litewf import _journal as journal
    from litewf import _queuesql as queuesql
    from litewf import _store as store
    from litewf._types import Status

    def one_due(sql: str) -> list[tuple[Any, ...]]:  # what the scans find
        if "ORDER BY priority, seq" in sql:
            return [(1, "w1", "n", "{}", None, 0, None, None)]
        if "ORDER BY not_before" in sql:
            return [("w1", "n", "{}")]
        if sql.startswith("SELECT deadline"):
            return [(0.0,)]  # (time_out's look, then its tree)
        return [("w1",)] if sql.startswith("WITH RECURSIVE") else []

    _, schema = split_url(pg_url)
    async with litewf.Runtime(pg_url):
        pass  # the schema, its workflows table empty
    limits = queuesql.QueueLimits(concurrency=None, worker_concurrency=None, rate_limit=None)
    done = journal.Operation("step", "1", None)
    asked = [
        *_asked(journal.record_operation, "w1", "e", 1, done),
        *_asked(journal.finish_wait, "w1", "e", 1, "1", None),
        *_asked(store.finish_workflow, "w1", "e", Status.SUCCESS, "1", None, None, None),
        *_asked(queuesql.dequeue, "q", limits, "e", ["n"], 0.0, answer=one_due),
        *_asked(deadlinesql.start_due, "e", ["n"], 0.0, answer=one_due),
        *_asked(store.cancel_workflow, "w1"),
        *_asked(deadlinesql.time_out, "w1", 1.0, answer=one_due),
    ]
    by_id = [(sql, params) for sql, params in asked if "workflow_id = %s" in sql]
    assert len(by_id) >= 6
    with admin(pg_url) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        for sql, params in by_id:
            plan = _generic_plan_nodes(conn, sql, params)
            assert _finds_by_id(conn, plan), (sql, plan)


def _finds_by_id(conn: Any, plan: list[str]) -> bool:
    """Whether ``plan`` reads an index up to ``workflow_id``: every column of it before
    ``workflow_id``, and ``workflow_id``, bound by its Index Cond (one entry)."""
    for node, cond in zip(plan, [*plan[1:], ""], strict=True):
        found = re.match(r"(?:Index|Index Only) Scan using (\w+)", node)
        if found is None or not cond.startswith("Index Cond"):
            continue
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                "WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace "
                "ORDER BY k.n",
                (found[1],),
            )
        ]
        if "workflow_id" not in columns:
            continue
        prefix = columns[: columns.index("workflow_id") + 1]
        if all(f"({column} = " in cond for column in prefix):
            return True
    return False


@pytest.mark.parametrize("owner", [None, "dead-executor"])
async def test_recovery_reads_the_status_index_whoever_owned(
    pg_url: str, owner: str | None
) -> None:
    """Recovery's claim of an executor's (or the released) PENDING workflows, and its
    once-a-second count of this executor's, read the PENDING entries of
    ``workflows_by_status``, not the table: the owner is its third column (after the ID,
    which the hot lookups need bound), tested there, by ``=`` or ``IS NULL`` (``IS ?``
    became ``IS NOT DISTINCT FROM``)."""
    from litewf import _store as store

    _, schema = split_url(pg_url)
    async with litewf.Runtime(pg_url):
        pass  # the schema
    with admin(pg_url) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute(  # a tenth PENDING, owned by 50 executors; the rest finished
            "INSERT INTO workflows (workflow_id, name, status, inputs, executor_id, "
            "created_at, updated_at) SELECT 'w' || i, 'n', CASE WHEN i % 10 = 0 THEN "
            "'PENDING' ELSE 'SUCCESS' END, '{}', 'e' || (i % 50), 0, 0 "
            "FROM generate_series(1, 20000) AS i"
        )
        conn.execute("ANALYZE workflows")
        asked = [
            *_asked(store.claim, owner, "me", ["n"], 3),
            *_asked(store.count_owned_pending, "me"),
            *_asked(store.owned_pending_ids, "me"),
        ]
        assert len(asked) >= 3
        for sql, params in asked:
            plan = _generic_plan_nodes(conn, sql, params)
            assert not any(node.startswith("Seq Scan") for node in plan), (sql, plan)
            assert any("executor_id" in node for node in plan), (sql, plan)

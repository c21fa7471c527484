"""PostgreSQL: a runtime whose executor lock's session ends while it lives on (issue 16).

The server ends only the lock's connection (``pg_terminate_backend`` on the session that
holds the executor's advisory lock): the runtime stops its running workflows at once, a
peer (or the runtime itself, once it holds the lock again) runs them again, and no step
that ended runs twice. Every test runs on the server ``LITEWF_TEST_POSTGRES`` names.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import anyio
import pytest

import litewf
from litewf._pgconn import advisory_key
from litewf._pgdialect import split_url
from litewf._pgliveness import ANSWER_S, HEARTBEAT_S
from tests import procs
from tests.conditions import wait_until
from tests.conftest import admin


def lock_holder(url: str, executor_id: str) -> int | None:
    """The server process whose session holds ``executor_id``'s lock, if one does."""
    _, schema = split_url(url)
    key = advisory_key(schema, f"executor\0{executor_id}") & 0xFFFF_FFFF_FFFF_FFFF
    with admin(url) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = %s AND objid = %s AND objsubid = 1",
            (key >> 32, key & 0xFFFF_FFFF),
        ).fetchone()
    return None if row is None else int(row[0])


def terminate_lock(url: str, executor_id: str) -> int:
    """End the session holding ``executor_id``'s lock (and only it); its pid."""
    pid = lock_holder(url, executor_id)
    assert pid is not None, f"no session holds {executor_id}'s lock"
    with admin(url) as conn:
        row = conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
    assert row is not None and row[0] is True
    return pid


def lines(out: Path) -> list[list[str]]:
    path = out / "log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


async def test_a_peer_takes_over_and_the_old_owner_stops_its_runs(
    pg_url: str, tmp_path: Path
) -> None:
    """Only the lock's session of executor ``old`` is terminated while its 3 workflows
    wait in a step: ``old`` stops them at once (they log ``cancelled``), the peer takes
    them over and runs the step again; released, each step body ends exactly once, in
    the peer; ``record`` (recorded before) never runs again; ``old`` takes its lock back
    (held back until the peer has taken over) and lives on."""
    n = 3
    old = procs.spawn("pg_lockloss", pg_url, tmp_path, "old", str(n), "hold")
    peer = procs.spawn("pg_lockloss", pg_url, tmp_path, "peer", "0")
    try:
        await procs.wait_for_file(tmp_path / "old.running", old)
        await procs.wait_for_file(tmp_path / "peer.running", peer)
        first = terminate_lock(pg_url, "old")

        def cancelled_in_old() -> bool:
            return len([x for x in lines(tmp_path) if x[0] == "cancelled"]) >= n

        def taken_over() -> bool:
            return len([x for x in lines(tmp_path) if x[:3:2] == ["slow", str(peer.pid)]]) >= n

        await wait_until(cancelled_in_old, timeout=20)
        await wait_until(taken_over, timeout=20)
        (tmp_path / "relock").touch()
        await wait_until(lambda: lock_holder(pg_url, "old") not in (None, first))
        (tmp_path / "release").touch()
        async with litewf.Client(pg_url) as client:
            for i in range(n):
                handle = await client.retrieve_workflow(f"old-{i}")
                assert await handle.get_result(timeout=30) == f"done old-{i}"
        assert old.poll() is None and peer.poll() is None
    finally:
        (tmp_path / "stop").touch()
        for proc in (old, peer):
            await procs.finish_async(proc)
    log = lines(tmp_path)
    pids = {"old": old.pid, "peer": peer.pid}
    wids = sorted(f"old-{i}" for i in range(n))
    assert sorted(x[1] for x in log if x[0] == "record") == wids  # each once
    assert {int(x[2]) for x in log if x[0] == "record"} == {pids["old"]}
    assert sorted(x[1] for x in log if x[0] == "cancelled") == wids
    assert {int(x[2]) for x in log if x[0] == "cancelled"} == {pids["old"]}
    after = [x for x in log if x[0] == "after"]
    assert sorted(x[1] for x in after) == wids  # each step body ended once
    assert {int(x[2]) for x in after} == {pids["peer"]}


async def test_alone_it_takes_its_lock_back_and_runs_its_workflows_again(
    pg_url: str, tmp_path: Path
) -> None:
    """With no peer, the runtime whose lock session ended stops its workflow, takes the
    lock back on a new session, and runs the workflow again itself: the recorded step
    is replayed, not run again, and the result is right."""
    rt = litewf.Runtime(pg_url, executor_id="alone", recovery_interval=0.1)
    runs: list[str] = []
    waiting = anyio.Event()
    release = anyio.Event()

    @rt.step(name="first")
    async def first() -> int:
        runs.append("first")
        return 1

    @rt.step(name="wait")
    async def wait() -> int:
        runs.append("wait")
        waiting.set()
        await release.wait()
        return 2

    @rt.workflow(name="pg.alone")
    async def flow() -> int:
        return await first() + await wait()

    async with rt:
        handle = await rt.start_workflow(flow, workflow_id="w")
        await waiting.wait()
        old = await anyio.to_thread.run_sync(terminate_lock, pg_url, "alone")
        waiting = anyio.Event()
        with anyio.fail_after(20):
            await waiting.wait()  # run again from the top, by itself
        release.set()
        assert await handle.get_result(timeout=20) == 3
        status = await handle.get_status()
        assert status.recovery_attempts == 1  # taken back as a dead executor's
        holder = await anyio.to_thread.run_sync(lock_holder, pg_url, "alone")
        assert holder is not None and holder != old
    assert runs == ["first", "wait", "wait"]


async def test_a_silent_lock_session_counts_as_lost_before_the_server_frees_it(
    pg_url: str,
) -> None:
    """The lock's server process is frozen (SIGSTOP: to the runtime, a network cut looks
    the same: no answer, no error). Within the heartbeat's bound the runtime stops its
    workflow, while the server still holds the lock for it (no peer could take over
    yet); once the session ends (SIGCONT: the server process finds its client gone), the
    runtime takes its lock back and runs the workflow again."""
    rt = litewf.Runtime(pg_url, executor_id="frozen", recovery_interval=0.1)
    stopped = anyio.Event()
    waiting = anyio.Event()

    @rt.step(name="wait")
    async def wait() -> str:
        waiting.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            stopped.set()
            raise
        return "never"

    @rt.workflow(name="pg.frozen")
    async def flow() -> str:
        return await wait()

    async with rt:
        await rt.start_workflow(flow, workflow_id="f")
        await waiting.wait()
        pid = await anyio.to_thread.run_sync(lock_holder, pg_url, "frozen")
        assert pid is not None
        try:
            os.kill(pid, signal.SIGSTOP)
        except PermissionError:
            pytest.skip("cannot signal the server's processes (not their user)")
        try:
            with anyio.fail_after(HEARTBEAT_S + ANSWER_S + 5):
                await stopped.wait()
            # The run was stopped while the server's session still holds the lock.
            assert await anyio.to_thread.run_sync(lock_holder, pg_url, "frozen") == pid
            waiting = anyio.Event()
        finally:
            os.kill(pid, signal.SIGCONT)
        with anyio.fail_after(20):
            await waiting.wait()  # the lock back, the workflow runs again
        holder = await anyio.to_thread.run_sync(lock_holder, pg_url, "frozen")
        assert holder is not None and holder != pid


def probe_session(url: str) -> int | None:
    """The server process of the session that asks whether executors are alive."""
    _, schema = split_url(url)
    with admin(url) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND query LIKE %s",
            (f"litewf:{schema}", "%pg_try_advisory_lock%pg_advisory_unlock%"),
        ).fetchone()
    return None if row is None else int(row[0])


async def test_the_liveness_check_of_recovery_does_not_block_the_event_loop(
    pg_url: str,
) -> None:
    """Recovery asks the server whether another executor is alive. While that answer
    hangs (the probe's server process frozen), the event loop goes on serving."""
    other = litewf.Runtime(pg_url, executor_id="other", recovery_interval=600)

    @other.workflow(name="pg.idle")
    async def idle() -> None:
        await other.recv(timeout=600)

    rt = litewf.Runtime(pg_url, executor_id="me", recovery_interval=0.05)
    async with other:
        await other.start_workflow(idle, workflow_id="i")  # an owner alive elsewhere
        async with rt:
            await wait_until(lambda: probe_session(pg_url) is not None)
            pid = probe_session(pg_url)
            assert pid is not None
            try:
                os.kill(pid, signal.SIGSTOP)
            except PermissionError:
                pytest.skip("cannot signal the server's processes (not their user)")
            # A blocked loop cannot fire its own timeout: a thread resumes the process.
            watchdog = threading.Timer(8.0, os.kill, (pid, signal.SIGCONT))
            watchdog.start()
            try:
                with anyio.fail_after(4):
                    for _ in range(10):  # recovery scans (every 0.05 s) hang meanwhile
                        await anyio.sleep(0.05)
                    assert await rt.list_workflows() != []  # and a call still works
            finally:
                watchdog.cancel()
                os.kill(pid, signal.SIGCONT)

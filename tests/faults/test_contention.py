"""Contention (issue 5, part 2): K processes sending and receiving on one file while a
reader holds a long read transaction; and the WAL after that reader ends.

Peers are real processes (``tests/children/faults_contention.py``); the long reader is a
plain ``sqlite3`` connection in this process that holds one snapshot until every peer
has sent everything.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

import litewf
from litewf import _dbfile as dbfile
from litewf._liveness import ExecutorLock, any_executor_alive
from litewf._pgdialect import is_postgres_url
from tests import procs, sqldb

#: SQLite's automatic checkpoint runs at 1,000 pages (4 MiB at litewf's 4 KiB pages); a
#: WAL that shrank back is no larger than that.
WAL_BACK_TO = 4 * 1024 * 1024


def long_reader(db: Path) -> Any:
    """A connection holding one read snapshot of ``db`` until it is committed."""
    if is_postgres_url(db):
        reader = sqldb.connect(db)
        reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    else:
        reader = sqlite3.connect(db, isolation_level=None)
        reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM messages").fetchone()
    return reader


async def communicate(proc: subprocess.Popen[bytes]) -> tuple[str, str]:
    out, err = await anyio.to_thread.run_sync(partial(proc.communicate, timeout=120))
    return out.decode(), err.decode()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("peers", "count"), [(2, 200), (4, 40), (8, 12)], ids=["K=2", "K=4", "K=8"]
)
async def test_k_processes_exactly_once_under_a_long_reader(
    db_path: Path, tmp_path: Path, peers: int, count: int
) -> None:
    """Every message sent by every peer reaches its receiver exactly once, in each
    sender's order; no process ever sees "database is locked"; the long reader's snapshot
    stays unchanged throughout and does not block anyone."""
    db = db_path
    async with litewf.Runtime(db):
        pass  # create the file; simultaneous creation is tested in test_database.py
    children = [
        procs.spawn("faults_contention", db, tmp_path, *map(str, (me, peers, count, 200)))
        for me in range(peers)
    ]
    try:
        for me, child in enumerate(children):
            await procs.wait_for_file(tmp_path / f"ready-{me}", child)
        reader = long_reader(db)
        try:
            procs.touch(tmp_path / "go")
            for me, child in enumerate(children):
                await procs.wait_for_file(tmp_path / f"sent-{me}", child, timeout=120)
            # Everything was sent while the snapshot was held; it still sees none of it.
            assert reader.execute("SELECT count(*) FROM messages").fetchone() == (0,)
        finally:
            reader.commit()
            reader.close()
        for me, child in enumerate(children):
            await procs.wait_for_file(tmp_path / f"got-{me}", child, timeout=120)
        procs.touch(tmp_path / "finish")
        results = [await communicate(child) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()
    for child, (out, err) in zip(children, results, strict=True):
        assert "locked" not in err.lower(), err
        assert child.returncode == 0 and out.split() == ["ok"], err
    delivered: Counter[str] = Counter()
    for me in range(peers):
        got = json.loads((tmp_path / f"got-{me}").read_text())
        delivered.update(got)
        for sender in range(peers):  # FIFO per sender
            mine = [m for m in got if m.startswith(f"{sender}>")]
            assert mine == [f"{sender}>{me}#{i}" for i in range(len(mine))]
    expected = {
        f"{s}>{r}#{i}" for s in range(peers) for r in range(peers) if s != r for i in range(count)
    }
    assert set(delivered) == expected  # none lost
    assert max(delivered.values()) == 1  # none twice
    assert sqldb.query(db, "SELECT count(*) FROM messages") == [(0,)]
    if not is_postgres_url(db):
        assert sqldb.query(db, "PRAGMA integrity_check") == [("ok",)]


def wal_size(db: Path) -> int:
    try:
        return os.path.getsize(f"{db}-wal")
    except FileNotFoundError:
        return 0


@pytest.mark.sqlite_only
async def test_wal_shrinks_back_after_the_long_reader_ends(db_path: Path) -> None:
    """A reader holding a snapshot while 12 MB of messages are written makes the WAL grow
    (SQLite cannot checkpoint past it). Once it ends and the runtime keeps working, the WAL
    goes back to the size of an ordinary checkpoint interval."""
    rt = litewf.Runtime(db_path, recovery_interval=0.2)

    @rt.workflow(name="c.sink")
    async def sink() -> None:
        await rt.recv("never", timeout=600)

    async with rt:
        await rt.start_workflow(sink, workflow_id="sink")
        reader = long_reader(db_path)
        try:
            for _ in range(100):
                await rt.send("sink", "x" * 120_000, topic="t")
            peak = wal_size(db_path)
        finally:
            reader.execute("COMMIT")
            reader.close()
        assert peak > 3 * WAL_BACK_TO  # the reader really held the WAL back
        with anyio.move_on_after(4):
            while wal_size(db_path) > WAL_BACK_TO:
                await rt.send("sink", "small", topic="t")  # the runtime keeps working
                await anyio.sleep(0.1)  # polling a file size: nothing to await
        assert wal_size(db_path) <= WAL_BACK_TO, f"WAL {wal_size(db_path)} B, peak {peak} B"


class Peer:
    """A runtime elsewhere, reduced to what ``check_present`` looks at: a connection (the
    -wal and -shm files exist while it is open) and an executor lock."""

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(db, isolation_level=None)
        self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the WAL
        self.lock = ExecutorLock(str(db), "peer")
        self.lock.acquire()

    def close(self) -> None:
        self.lock.release()  # before the connection, as a runtime does
        self.conn.close()  # the last one: SQLite removes the -wal and -shm files


async def test_a_peer_launching_during_the_check_is_no_deleted_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is closed (no -wal file) when a launch looks; a peer opens and locks it
    before the launch looks at the locks. That is a launch, not a deleted -wal file."""
    db_path = tmp_path / "peers.db"
    async with litewf.Runtime(db_path):
        pass
    assert wal_size(db_path) == 0  # closed: SQLite removed the -wal file
    peers: list[Peer] = []

    def peer_launches_first(path: str) -> bool:
        if not peers:
            peers.append(Peer(db_path))
        return any_executor_alive(path)

    monkeypatch.setattr(dbfile, "any_executor_alive", peer_launches_first)
    try:
        async with litewf.Runtime(db_path):
            pass
    finally:
        for peer in peers:
            peer.close()


async def test_a_peer_closing_during_the_check_is_no_deleted_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer's lock is seen, then the peer shuts down (the last connection removes the
    -wal and -shm files) before the launch looks at the files: no deletion either."""
    db_path = tmp_path / "peers.db"
    async with litewf.Runtime(db_path):
        pass
    calls: list[bool] = []

    def peer_closes_after_the_look(path: str) -> bool:
        if calls:
            calls.append(any_executor_alive(path))
            return calls[-1]
        peer = Peer(db_path)
        try:
            calls.append(any_executor_alive(path))
        finally:
            peer.close()
        return calls[-1]

    monkeypatch.setattr(dbfile, "any_executor_alive", peer_closes_after_the_look)
    async with litewf.Runtime(db_path):
        pass
    assert calls[:2] == [True, False]  # the lock was seen, then gone

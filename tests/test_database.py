"""The database file: creation, refusal of bad files, durability, locking, migrations.

Covers DESIGN.md guarantees 8 (durability settings, BEGIN IMMEDIATE, contention) and 9
(bad files), and the storage rules. Every file is a real SQLite file in ``tmp_path``;
contention uses real child processes (``tests/children/database.py``).
"""

from __future__ import annotations

import hashlib
import inspect
import random
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

import litewf
from litewf import _store as store
from litewf import testing
from litewf._change import Change
from litewf._schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from litewf._tx import Tx
from litewf._types import Durability
from tests import procs, sqldb
from tests.children.database import SINK_TOPIC, register_waiter
from tests.conftest import new_database

SIDE_SUFFIXES = ("-wal", "-shm", "-journal", "-litewf")
PAGE = 4096  # SQLite's default page size, which litewf keeps


# -- helpers ---------------------------------------------------------------------------


def header_bytes(path: Path, size: int = 100) -> bytes:
    """The first ``size`` bytes of the file."""
    with path.open("rb") as f:
        return f.read(size)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def side_files(path: Path) -> list[str]:
    """SQLite and litewf files that exist beside ``path`` (WAL, SHM, journal, locks)."""
    return [s for s in SIDE_SUFFIXES if Path(f"{path}{s}").exists()]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def header_ints(path: Path) -> tuple[int, int]:
    """(user_version, application_id) read straight from the file's 100-byte header."""
    header = header_bytes(path)
    return struct.unpack(">I", header[60:64])[0], struct.unpack(">I", header[68:72])[0]


def schema(path: Path) -> list[tuple[str, str, str | None]]:
    """Every schema object (type, name, sql) of the file, read with the stdlib."""
    con = sqlite3.connect(path)
    try:
        rows = con.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
            "ORDER BY type, name"
        ).fetchall()
    finally:
        con.close()
    return [(str(t), str(n), None if s is None else str(s)) for t, n, s in rows]


Double = litewf.Workflow[[int], int]


def make_runtime(path: Path, durability: Durability = "full") -> tuple[litewf.Runtime, Double]:
    """A runtime with fast polling and one registered workflow, ``db.double``."""
    rt = litewf.Runtime(path, durability=durability, poll_interval=0.01, recovery_interval=0.2)

    @rt.workflow(name="db.double")
    async def double(x: int) -> int:
        return 2 * x

    return rt, double


async def run(rt: litewf.Runtime, double: Double, x: int, workflow_id: str) -> int:
    """Run ``double(x)`` as ``workflow_id`` to completion on ``rt``; return its result."""
    handle = await rt.start_workflow(double, x, workflow_id=workflow_id)
    return await handle.get_result(timeout=10)


async def make_litewf_db(path: Path, workflows: int = 40) -> None:
    """A real litewf database with ``workflows`` finished workflows ``w-0``..."""
    rt, double = make_runtime(path)
    async with rt:
        for i in range(workflows):
            assert await run(rt, double, i, f"w-{i}") == 2 * i


# -- new files -------------------------------------------------------------------------


@pytest.mark.sqlite_only
@pytest.mark.parametrize("start", ["missing", "empty"])
async def test_runtime_creates_and_marks_a_new_database(db_path: Path, start: str) -> None:
    """A missing path or a 0-byte file becomes a WAL-mode litewf database of this version."""
    if start == "empty":
        db_path.touch()  # noqa: ASYNC240 - a local file, instantly
    rt, double = make_runtime(db_path)
    assert listing(db_path.parent) == (["test.db"] if start == "empty" else [])  # opens nothing
    async with rt:
        row = await testing.backend(rt).db.fetchone("PRAGMA application_id")
        assert row is not None and row[0] == APPLICATION_ID
        row = await testing.backend(rt).db.fetchone("PRAGMA user_version")
        assert row is not None and row[0] == SCHEMA_VERSION
        row = await testing.backend(rt).db.fetchone("PRAGMA journal_mode")
        assert row is not None and str(row[0]).lower() == "wal"
        assert await run(rt, double, 21, "first") == 42
    # On disk, independent of litewf: the header carries the marks, WAL is persistent.
    assert header_ints(db_path) == (SCHEMA_VERSION, APPLICATION_ID)
    assert header_bytes(db_path)[18:20] == b"\x02\x02"  # file format 2 = WAL
    # A clean shutdown closes every connection: SQLite removes the WAL and SHM files.
    assert side_files(db_path) == []


# -- refusals ----------------------------------------------------------------------------


def random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(1).randbytes(3 * PAGE))


def sqlite_magic_then_garbage(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + random.Random(2).randbytes(3 * PAGE))


def partial_header(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + bytes(40))


def foreign_sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO customers (name) VALUES ('ada')")
    con.commit()
    con.close()


def foreign_marked(path: Path) -> None:
    """Another application's marked SQLite file that happens to use our user_version."""
    foreign_sqlite(path)
    con = sqlite3.connect(path)
    con.execute("PRAGMA application_id = 1234")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    con.commit()
    con.close()


async def schema_too_new(path: Path) -> None:
    await make_litewf_db(path, workflows=2)
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()


Maker = Callable[[Path], Awaitable[None] | None]

NOT_SQLITE_HINT = "give another path"
REFUSALS = [
    pytest.param(random_bytes, litewf.NotADatabaseError, NOT_SQLITE_HINT, id="random-bytes"),
    pytest.param(partial_header, litewf.NotADatabaseError, NOT_SQLITE_HINT, id="partial-header"),
    pytest.param(
        sqlite_magic_then_garbage,
        litewf.NotADatabaseError,
        NOT_SQLITE_HINT,
        id="magic-then-garbage",
    ),
    pytest.param(foreign_sqlite, litewf.ForeignDatabaseError, "a file of its own", id="foreign"),
    pytest.param(
        foreign_marked, litewf.ForeignDatabaseError, "a file of its own", id="foreign-marked"
    ),
    pytest.param(schema_too_new, litewf.SchemaTooNewError, "upgrade litewf", id="too-new"),
]


async def open_and_use(path: Path, opener: str) -> None:
    """Launch a Runtime (or open a Client) on ``path`` and read from it, bounded in time."""
    with anyio.fail_after(15):
        if opener == "runtime":
            rt, _ = make_runtime(path)
            async with rt:
                await rt.list_workflows(limit=1000)
                await (await rt.retrieve_workflow("w-1")).get_status()
        else:
            async with litewf.Client(path) as client:
                await client.list_workflows(limit=1000)
                await (await client.retrieve_workflow("w-1")).get_status()


@pytest.mark.sqlite_only
@pytest.mark.parametrize("opener", ["runtime", "client"])
@pytest.mark.parametrize(("make", "error", "hint"), REFUSALS)
async def test_bad_file_is_refused_untouched(
    db_path: Path, opener: str, make: Maker, error: type[litewf.DatabaseError], hint: str
) -> None:
    """A file litewf cannot use raises its DatabaseError subclass, saying what to do, and
    neither the file nor its surroundings change."""
    made = make(db_path)
    if made is not None:
        await made
    assert side_files(db_path) == []
    before = sha256(db_path)
    with pytest.raises(error) as info:
        await open_and_use(db_path, opener)
    assert isinstance(info.value, litewf.LitewfError)
    assert str(db_path) in str(info.value)
    assert sha256(db_path) == before
    assert side_files(db_path) == []
    assert hint in str(info.value)


def overwrite_pages(path: Path, first_page: int) -> None:
    """Replace every page from ``first_page`` (1-based) on with garbage; keep the size."""
    data = bytearray(path.read_bytes())
    garbage = random.Random(3)
    for offset in range((first_page - 1) * PAGE, len(data), PAGE):
        data[offset : offset + PAGE] = garbage.randbytes(PAGE)
    path.write_bytes(bytes(data))


def overwrite_after_header(path: Path) -> None:
    """Garbage in page 1 after its 100-byte header (the schema table) and in page 2."""
    data = bytearray(path.read_bytes())
    data[100 : 2 * PAGE] = random.Random(4).randbytes(2 * PAGE - 100)
    path.write_bytes(bytes(data))


def truncate(path: Path, size: int) -> None:
    data = path.read_bytes()
    assert len(data) > size
    path.write_bytes(data[:size])


CORRUPTIONS = [
    pytest.param(lambda p: overwrite_pages(p, first_page=2), id="pages-garbage"),
    pytest.param(overwrite_after_header, id="schema-page-garbage"),
    pytest.param(lambda p: truncate(p, p.stat().st_size // 2 // PAGE * PAGE), id="half"),
    pytest.param(lambda p: truncate(p, PAGE), id="one-page"),
    pytest.param(lambda p: truncate(p, 3 * PAGE + 123), id="mid-page"),
]


@pytest.mark.sqlite_only
@pytest.mark.parametrize("opener", ["runtime", "client"])
@pytest.mark.parametrize("corrupt", CORRUPTIONS)
async def test_corrupt_file_raises_database_error(
    db_path: Path, opener: str, corrupt: Callable[[Path], None]
) -> None:
    """A damaged or truncated litewf file raises CorruptDatabaseError by first use at the
    latest, never hangs nor leaks a raw sqlite3 error, and stays byte-for-byte as it was."""
    await make_litewf_db(db_path)
    assert len(header_bytes(db_path, 9 * PAGE)) > 8 * PAGE  # enough pages to damage
    corrupt(db_path)
    before = sha256(db_path)
    with pytest.raises(litewf.CorruptDatabaseError) as info:
        await open_and_use(db_path, opener)
    assert "restore it from a backup" in str(info.value)
    assert sha256(db_path) == before
    assert side_files(db_path) == []


@pytest.mark.parametrize("opener", ["runtime", "client"])
async def test_directory_path_is_refused(tmp_path: Path, opener: str) -> None:
    """A path naming a directory raises DatabaseError and creates nothing in or beside it."""
    folder = tmp_path / "data.db"
    folder.mkdir()
    with pytest.raises(litewf.DatabaseError, match="is a directory; give the path"):
        await open_and_use(folder, opener)
    assert listing(folder) == []
    assert listing(tmp_path) == ["data.db"]


# -- Client never creates or initializes --------------------------------------------------


@pytest.mark.sqlite_only
async def test_client_refuses_a_missing_path(db_path: Path) -> None:
    """Client(path) on a missing path raises DatabaseError and creates no file at all."""
    with pytest.raises(litewf.DatabaseError, match="no such database; check the path"):
        async with litewf.Client(db_path):
            pass
    assert listing(db_path.parent) == []


def blank_sqlite(path: Path) -> None:
    """A valid SQLite file with no tables and no marks."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.execute("DROP TABLE t")
    con.commit()
    con.close()
    assert path.stat().st_size > 0


def version_zero(path: Path) -> None:
    """A file marked as litewf's at schema version 0 (older than this litewf)."""
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    con.commit()
    con.close()
    assert header_ints(path) == (0, APPLICATION_ID)


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    "make", [Path.touch, blank_sqlite, version_zero], ids=["empty", "blank", "version-0"]
)
async def test_client_does_not_initialize(db_path: Path, make: Callable[[Path], None]) -> None:
    """Client on an empty, blank or old file raises DatabaseError saying to launch a
    Runtime, and leaves the file exactly as it was."""
    make(db_path)
    before = sha256(db_path)
    with pytest.raises(litewf.DatabaseError, match="launch a Runtime"):
        async with litewf.Client(db_path):
            pass
    assert sha256(db_path) == before
    assert side_files(db_path) == []


@pytest.mark.sqlite_only
@pytest.mark.parametrize("make", [blank_sqlite, version_zero], ids=["blank", "version-0"])
async def test_runtime_initializes_blank_and_old_files(
    db_path: Path, make: Callable[[Path], None]
) -> None:
    """A Runtime migrates a blank or version-0 litewf file to the current schema."""
    make(db_path)
    rt, double = make_runtime(db_path)
    async with rt:
        assert await run(rt, double, 4, "after-upgrade") == 8
    assert header_ints(db_path) == (SCHEMA_VERSION, APPLICATION_ID)


# -- migrations --------------------------------------------------------------------------


@pytest.mark.sqlite_only
async def test_schema_is_exactly_the_migrations(db_path: Path, tmp_path: Path) -> None:
    """MIGRATIONS is append-only data: a tuple of SQL scripts whose count is the version,
    and a new database's schema is exactly what running them in order produces."""
    assert isinstance(MIGRATIONS, tuple)
    assert all(isinstance(script, str) for script in MIGRATIONS)
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 1
    reference = tmp_path / "reference.db"
    con = sqlite3.connect(reference)
    for script in MIGRATIONS:
        con.executescript(script)
    con.close()
    rt, _ = make_runtime(db_path)
    async with rt:
        pass
    assert len(schema(reference)) > 0
    assert schema(db_path) == schema(reference)


@pytest.mark.sqlite_only
async def test_reopening_a_current_database_keeps_data_and_schema(db_path: Path) -> None:
    """Opening a database of the current version migrates nothing and keeps every row."""
    await make_litewf_db(db_path, workflows=5)
    before = schema(db_path)
    rt, double = make_runtime(db_path)
    async with rt:
        for i in range(5):
            handle = await rt.retrieve_workflow(f"w-{i}")
            assert await handle.get_result(timeout=5) == 2 * i
        assert len(await rt.list_workflows()) == 5
        assert await run(rt, double, 5, "w-5") == 10
    assert schema(db_path) == before
    assert header_ints(db_path) == (SCHEMA_VERSION, APPLICATION_ID)


async def test_runtime_can_launch_again_after_shutdown(db_path: Path, backend: str) -> None:
    """The same Runtime object launches, shuts down and launches again, keeping its data,
    its settings and the workflow that was still waiting."""
    rt, double = make_runtime(db_path, durability="normal")
    waiter = register_waiter(rt)
    await rt.launch()
    try:
        assert await run(rt, double, 1, "first-launch") == 2
        await rt.start_workflow(waiter, workflow_id="across")
    finally:
        await rt.shutdown()
    with pytest.raises(litewf.RuntimeNotLaunchedError):
        _ = testing.backend(rt).db
    async with rt:
        if backend == "sqlite":
            row = await testing.backend(rt).db.fetchone("PRAGMA synchronous")
            assert row is not None and row[0] == 1
        handle = await rt.retrieve_workflow("first-launch")
        assert await handle.get_result(timeout=5) == 2
        assert await run(rt, double, 2, "second-launch") == 4
        await rt.send("across", "hello", topic="go")
        assert await (await rt.retrieve_workflow("across")).get_result(timeout=10) == "got hello"


# -- durability settings -----------------------------------------------------------------


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("durability", "synchronous"), [(None, 2), ("full", 2), ("normal", 1)], ids=str
)
async def test_durability_sets_synchronous(
    db_path: Path, durability: Durability | None, synchronous: int
) -> None:
    """durability="full" (the default) runs with synchronous=FULL (2), "normal" with NORMAL
    (1), on the connection that every write goes through; WAL and a busy timeout too."""
    if durability is None:
        rt = litewf.Runtime(db_path)
    else:
        rt = litewf.Runtime(db_path, durability=durability)
    async with rt:
        row = await testing.backend(rt).db.fetchone("PRAGMA synchronous")
        assert row is not None and row[0] == synchronous
        row = await testing.backend(rt).db.write(Tx.fetchone, "PRAGMA synchronous")
        assert row is not None and row[0] == synchronous
        row = await testing.backend(rt).db.fetchone("PRAGMA journal_mode")
        assert row is not None and str(row[0]).lower() == "wal"
        row = await testing.backend(rt).db.fetchone("PRAGMA busy_timeout")
        assert row is not None and row[0] >= 1000


@pytest.mark.parametrize("bad", ["off", "FULL", "extra", "", None, 2])
def test_invalid_durability_is_refused(db_path: Path, bad: object) -> None:
    """An unknown durability raises InvalidValueError naming the choices; nothing is created."""
    with pytest.raises(litewf.InvalidValueError, match="'full' or 'normal'"):
        litewf.Runtime(db_path, durability=bad)  # type: ignore[arg-type]
    assert not sqldb.exists(db_path)


# -- locking and contention --------------------------------------------------------------


@pytest.mark.sqlite_only
@pytest.mark.parametrize("busy_timeout_ms", [5000, 50], ids=["sqlite-waits", "litewf-retries"])
async def test_write_waits_for_an_external_write_transaction(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, busy_timeout_ms: int
) -> None:
    """While another connection holds BEGIN IMMEDIATE for ~1 s, a runtime write waits and
    then succeeds; "database is locked" never reaches the caller. With a tiny SQLite busy
    timeout, litewf's own retry loop must do the waiting."""
    monkeypatch.setattr("litewf._db._BUSY_TIMEOUT_MS", busy_timeout_ms)
    rt, double = make_runtime(db_path)
    async with rt:
        row = await testing.backend(rt).db.fetchone("PRAGMA busy_timeout")
        assert row is not None and row[0] == busy_timeout_ms
        external = sqlite3.connect(db_path, isolation_level=None, timeout=0)
        try:
            external.execute("BEGIN IMMEDIATE")
            started = anyio.Event()

            async def write() -> None:
                await rt.start_workflow(double, 5, workflow_id="waited")
                started.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(write)
                with anyio.move_on_after(1.0):  # how long the external transaction lasts
                    await started.wait()
                assert not started.is_set(), "the write went through a held write lock"
                assert external.execute("SELECT count(*) FROM workflows").fetchone() == (0,)
                external.execute("COMMIT")
                with anyio.fail_after(10):
                    await started.wait()
        finally:
            external.close()
        handle = await rt.retrieve_workflow("waited")
        assert await handle.get_result(timeout=10) == 10


@pytest.mark.sqlite_only
async def test_failing_write_rolls_back_alone_in_a_shared_commit(db_path: Path) -> None:
    """Writes queued together share one transaction (group commit), yet a write that fails
    after changing rows rolls back alone: its rows are gone, its neighbours' are stored,
    and both callers learn their own outcome."""
    rt, _ = make_runtime(db_path)
    runs: dict[str, int] = {}

    def insert(tx: Tx, workflow_id: str, fail: bool) -> str:
        runs[workflow_id] = runs.get(workflow_id, 0) + 1
        store.insert_workflow(tx, workflow_id, "db.double", "{}", rt.executor_id, None)
        if fail:
            raise RuntimeError("after the insert")
        return workflow_id

    async with rt:
        external = sqlite3.connect(db_path, isolation_level=None, timeout=0)
        outcomes: dict[str, object] = {}

        async def write(workflow_id: str, fail: bool) -> None:
            try:
                outcomes[workflow_id] = await testing.backend(rt).db.write(
                    insert, workflow_id, fail
                )
            except RuntimeError as exc:
                outcomes[workflow_id] = exc

        try:
            external.execute("BEGIN IMMEDIATE")
            async with anyio.create_task_group() as tg:
                tg.start_soon(write, "w0", False)  # runs alone, waiting for the external lock
                while not testing.backend(rt).db.writing:  # noqa: ASYNC110 - a private flag, no event
                    await anyio.sleep(0.001)
                for i, fail in ((1, False), (2, True), (3, False)):
                    tg.start_soon(write, f"w{i}", fail)
                while testing.backend(rt).db.queued < 3:  # noqa: ASYNC110 - queued behind w0: one batch
                    await anyio.sleep(0.001)
                external.execute("COMMIT")
        finally:
            external.close()
        assert [outcomes[f"w{i}"] for i in (0, 1, 3)] == ["w0", "w1", "w3"]
        assert isinstance(outcomes["w2"], RuntimeError)
        rows = await testing.backend(rt).db.fetchall(
            "SELECT workflow_id FROM workflows ORDER BY workflow_id"
        )
        assert [r[0] for r in rows] == ["w0", "w1", "w3"]
        # One batch (w0's, retried once the lock was free, took the others): together up
        # to w2 (no savepoint a unit), then each unit apart.
        assert runs == {"w0": 2, "w1": 2, "w2": 2, "w3": 1}


@pytest.mark.sqlite_only
async def test_a_batch_without_failures_has_no_savepoint_a_unit(db_path: Path) -> None:
    """Units that all succeed share one savepoint: two statements a batch, not two a unit."""
    rt, _ = make_runtime(db_path)
    statements: list[str] = []
    async with rt:
        db = testing.backend(rt).db
        await db.trace(statements.append)
        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(db.write, store.log_change, Change.status(f"w{i}"))
        await db.trace(None)
    assert not [sql for sql in statements if "SAVEPOINT unit" in sql]
    batches = [sql for sql in statements if sql.startswith("BEGIN IMMEDIATE")]
    assert [sql for sql in statements if sql.startswith("SAVEPOINT")] == ["SAVEPOINT batch"] * len(
        batches
    )


@pytest.mark.sqlite_only
async def test_cancel_while_waiting_for_the_write_lock(db_path: Path) -> None:
    """Cancelling a write that waits for another connection's lock leaves nothing behind:
    once that connection commits, the runtime holds no write lock and its next write
    succeeds."""
    rt, double = make_runtime(db_path)
    async with rt:
        external = sqlite3.connect(db_path, isolation_level=None, timeout=0)
        try:
            external.execute("BEGIN IMMEDIATE")
            with anyio.move_on_after(0.3) as scope:
                await testing.backend(rt).db.write(
                    store.insert_workflow, "ghost", "db.double", "{}", rt.executor_id, None
                )
            assert scope.cancelled_caught
            external.execute("COMMIT")
            with anyio.fail_after(10):
                assert await run(rt, double, 3, "next") == 6
            external.execute("BEGIN IMMEDIATE")  # the runtime holds no write lock
            external.execute("ROLLBACK")
        finally:
            external.close()
        with pytest.raises(litewf.WorkflowNotFoundError):
            await rt.retrieve_workflow("ghost")


async def test_processes_writing_at_once_never_see_database_is_locked(
    db_path: Path, tmp_path: Path
) -> None:
    """Three processes start one-step workflows and send messages to one workflow as fast
    as they can while this process consumes them: every write lands, each step runs once,
    each sender's messages arrive in order, and "database is locked" appears nowhere."""
    children, count = 3, 150
    rt, _ = make_runtime(db_path)

    @rt.workflow(name="db.sink")
    async def sink(expected: int) -> list[str]:
        got: list[str] = []
        for _ in range(expected):
            message = await rt.recv(SINK_TOPIC, timeout=60)
            assert message is not None
            got.append(message)
        return got

    prefixes = [f"p{n}" for n in range(children)]
    async with rt:
        sink_handle = await rt.start_workflow(sink, children * count, workflow_id="sink")
        writers = [
            procs.spawn("database", "writer", db_path, tmp_path, p, str(count), "sink")
            for p in prefixes
        ]
        try:
            for p, proc in zip(prefixes, writers, strict=True):
                await procs.wait_for_file(tmp_path / f"ready-{p}", proc)
            procs.touch(tmp_path / "go")
            outputs = [
                await anyio.to_thread.run_sync(partial(proc.communicate, timeout=90))
                for proc in writers
            ]
        finally:
            for proc in writers:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        for p, proc, (out, err) in zip(prefixes, writers, outputs, strict=True):
            assert "locked" not in err.decode().lower(), err.decode()
            assert proc.returncode == 0, err.decode()
            assert out.decode().split() == ["ok", p]
        received = await sink_handle.get_result(timeout=60)
        done = await rt.list_workflows(status="SUCCESS", name="db.one_step", limit=1000)
    assert len(done) == children * count
    assert sqldb.query(db_path, "SELECT count(*) FROM messages") == [(0,)]
    assert len(received) == children * count
    for p in prefixes:
        expected = [f"{p}-{i}" for i in range(count)]
        assert [m for m in received if m.startswith(f"{p}-")] == expected
        steps = (tmp_path / f"steps-{p}").read_text().splitlines()
        assert sorted(steps) == sorted(expected)


# -- an unclosed runtime -----------------------------------------------------------------


async def test_unclosed_runtime_warns_and_lets_the_process_exit(db_path: Path) -> None:
    """A process that launches a runtime and never shuts it down exits promptly and cleanly
    with a ResourceWarning and a log line; its committed work is recovered next launch."""
    child = procs.spawn("database", "unclosed", db_path)
    out, err = child.communicate(timeout=30)  # a hang at exit fails here
    stderr = err.decode()
    assert child.returncode == 0, stderr
    assert out.decode().split() == ["launched"]
    assert "ResourceWarning" in stderr
    assert stderr.count("was never shut down") == 2, stderr  # the warning and the log line
    rt, _ = make_runtime(db_path)
    register_waiter(rt)
    async with rt:
        handle = await rt.retrieve_workflow("left")
        await rt.send("left", "again", topic="go")
        assert await handle.get_result(timeout=10) == "got again"


def test_simultaneous_first_launches_on_a_new_file(tmp_path: Path, backend: str) -> None:
    """Several processes launching on a path (PostgreSQL: a schema) that does not exist
    yet all succeed: one creates the schema and the others see it whole (never as a
    foreign database)."""
    code = (
        "import anyio, litewf, sys\n"
        "async def main() -> None:\n"
        "    async with litewf.Runtime(sys.argv[1]):\n"
        "        pass\n"
        "anyio.run(main)\n"
    )
    # PostgreSQL creates the schema in one transaction under an advisory lock (DDL is
    # transactional there): fewer rounds show it as well.
    for round_ in range(8 if backend == "sqlite" else 3):
        with new_database(backend, tmp_path / f"new-{round_}.db") as db:
            children = [
                subprocess.Popen([sys.executable, "-c", code, str(db)], stderr=subprocess.PIPE)
                for _ in range(6)
            ]
            for child in children:
                _, err = child.communicate(timeout=60)
                assert child.returncode == 0, err.decode()


@pytest.mark.sqlite_only
async def test_the_aiosqlite_internals_litewf_runs_on_are_still_there(db_path: Path) -> None:
    """litewf runs a whole transaction in aiosqlite's thread in one hop through two private
    names, ``Connection._execute`` and ``Connection._conn`` (``_db._in_thread``);
    pyproject.toml pins aiosqlite below 0.23. This fails the day a release changes them."""
    import aiosqlite

    from litewf._db import _in_thread

    parameters = list(inspect.signature(aiosqlite.Connection._execute).parameters)
    assert parameters[:2] == ["self", "fn"]
    conn = await aiosqlite.connect(db_path)
    try:
        seen: list[object] = []

        def in_thread(raw: sqlite3.Connection, value: int) -> int:
            seen.append(raw)
            return int(raw.execute("SELECT ?", (value,)).fetchone()[0])

        assert await _in_thread(conn, in_thread, 7) == 7
        assert isinstance(seen[0], sqlite3.Connection)
    finally:
        await conn.close()

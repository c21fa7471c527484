"""The ``litewf`` command line against a database that another process is serving.

The application is a real child process (``tests.children.ops serve``) whose workflow
``order-1`` waits in ``recv``. Commands run in-process through ``main([...])`` (fast),
and once as a real ``python -m litewf`` subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from litewf._cli import main
from litewf._cli_args import age
from litewf._pgdialect import is_postgres_url, split_url
from litewf._schema import SCHEMA_VERSION
from tests import procs, sqldb
from tests.conftest import new_database
from tests.tampering import WORKFLOWS, build_database, run_cli

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class App:
    """A child process serving the ops workflows on ``db``."""

    db: Path
    folder: Path
    proc: subprocess.Popen[bytes]

    def finish(self) -> dict[str, Any]:
        """Wait for the child to end (order-1 finished or was cancelled); its report."""
        report: dict[str, Any] = json.loads(procs.finish(self.proc, timeout=60))
        return report


def start_app(folder: Path, db: Path) -> App:
    """Spawn the application on ``db`` and wait until order-1 waits in recv."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = procs.spawn("ops", "serve", db, folder)

    async def ready() -> None:
        await procs.wait_for_file(folder / "started", proc)
        async with litewf.Client(db) as client:
            with anyio.fail_after(30):
                while True:
                    steps = await client.list_steps("order-1")
                    if steps and steps[-1].kind == "recv" and steps[-1].outcome == "waiting":
                        return
                    await anyio.sleep(0.005)

    try:
        anyio.run(ready, backend="asyncio")
    except BaseException:
        procs.kill(proc)
        raise
    return App(db, folder, proc)


def stop(app: App) -> None:
    if app.proc.poll() is None:
        procs.kill(app.proc)
    else:  # exited by itself (a test failed before finish()): close its pipes
        app.proc.communicate()


@pytest.fixture
def app(tmp_path: Path, backend: str) -> Iterator[App]:
    """A fresh application, for tests that change what is stored."""
    with new_database(backend, tmp_path / "app" / "shop.db") as db:
        running = start_app(tmp_path / "app", db)
        yield running
        stop(running)


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[App]:
    """One application for the tests that only read (or fail before writing)."""
    folder = tmp_path_factory.mktemp("shared")
    with new_database(backend, folder / "shop.db") as db:
        running = start_app(folder, db)
        yield running
        stop(running)


def snapshot(db: Path) -> object:
    """What a command must leave as it was: the file's bytes, or (PostgreSQL) every row."""
    if is_postgres_url(db):
        return sqldb.dump(db)
    return hashlib.sha256(db.read_bytes()).hexdigest()


def run(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> tuple[int, str, str]:
    """``litewf --db DB ARGS`` in this process: (exit status, stdout, stderr)."""
    code = main(["--db", str(db), *args])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> Any:
    code, out, err = run(capsys, db, *args, "--json")
    assert (code, err) == (0, ""), err
    return json.loads(out)


def assert_user_error(code: int, out: str, err: str, *needles: str) -> None:
    """Exit 1, nothing on stdout, one line on stderr naming the problem, no traceback."""
    assert code == 1
    assert out == ""
    assert err.startswith("litewf: error: ") and err.endswith("\n")
    assert err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err


def columns(line: str, header: str, *names: str) -> list[str]:
    """The cells of ``line`` under the given column names of a table's ``header``."""
    starts = [header.index(name) for name in names]
    return [line[start:].split("  ")[0].strip() for start in starts]


# -- reading ---------------------------------------------------------------------------------


def test_list(capsys: pytest.CaptureFixture[str], shared_app: App) -> None:
    """An aligned table, newest first; filters; --json parses into the status records."""
    code, out, err = run(capsys, shared_app.db, "list")
    assert (code, err) == (0, "")
    header, *lines = out.splitlines()
    assert header.split() == [
        "ID",
        "NAME",
        "STATUS",
        "CREATED",
        "(UTC)",
        "UPDATED",
        "(UTC)",
        "ERROR",
    ]
    table = {columns(line, header, "ID")[0]: line for line in lines}
    assert set(table) == {"order-1", "order-1-3", "fail-1", "quick-1"}
    assert columns(table["order-1"], header, "NAME", "STATUS") == ["ops.order", "PENDING"]
    assert columns(table["fail-1"], header, "STATUS", "ERROR") == [
        "ERROR",
        "ValueError: card declined for o-2",
    ]

    listed = run_json(capsys, shared_app.db, "list")
    assert [w["workflow_id"] for w in listed][-1] == "order-1"  # the oldest
    by_id = {w["workflow_id"]: w for w in listed}
    assert by_id["quick-1"]["status"] == "SUCCESS"
    assert by_id["order-1"]["executor_id"] == "app-1"
    assert by_id["fail-1"]["error_type"] == "ValueError"
    assert by_id["order-1"]["created_at"].endswith("+00:00")

    pending = run_json(capsys, shared_app.db, "list", "--status", "PENDING")
    assert [w["workflow_id"] for w in pending] == ["order-1"]
    named = run_json(capsys, shared_app.db, "list", "--name", "ops.quick")
    assert [w["workflow_id"] for w in named] == ["quick-1"]
    assert len(run_json(capsys, shared_app.db, "list", "--limit", "2")) == 2
    assert run(capsys, shared_app.db, "list", "--name", "nothing") == (0, "no workflows\n", "")
    assert main(["--json", "--db", str(shared_app.db), "list", "--limit", "1"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1  # global options go either side


def test_show(capsys: pytest.CaptureFixture[str], shared_app: App) -> None:
    """Status, every recorded step, the events and the messages still queued."""
    code, out, err = run(capsys, shared_app.db, "show", "order-1")
    assert (code, err) == (0, "")
    assert "status             PENDING" in out
    sections = out.split("\n\n")
    assert sections[1] == 'inputs\n  [0]  "o-1"'
    assert sections[2] == "output: none yet (PENDING)"
    del sections[1:3]
    assert sections[1].startswith("steps (8)\n")
    header, *steps = sections[1].splitlines()[1:]
    kinds = [columns(line, header, "KIND", "OUTCOME") for line in steps]
    assert kinds == [
        ["step", "ok"],
        ["sleep", "ok"],
        ["set_event", "ok"],
        ["child", "ok"],
        ["get_result", "ok"],
        ["send", "ok"],
        ["get_event", "ok"],
        ["recv", "waiting"],
    ]
    assert sections[2].splitlines()[2].split() == ["checkout_url", '"https://pay.example/o-1"']
    assert sections[3].startswith("waiting messages (1)")
    assert "audit  " in sections[3] and '{"note": "for the audit queue"}' in sections[3]

    shown = run_json(capsys, shared_app.db, "show", "order-1")
    assert shown["workflow"]["status"] == "PENDING"
    assert (shown["inputs"], shown["output"], shown["error"]) == (
        {"args": ["o-1"], "kwargs": {}},
        None,
        None,
    )
    assert [s["kind"] for s in shown["steps"]] == [
        "step",
        "sleep",
        "set_event",
        "child",
        "get_result",
        "send",
        "get_event",
        "recv",
    ]
    assert shown["steps"][7]["deadline"] is not None
    assert shown["events"] == {"checkout_url": "https://pay.example/o-1"}
    assert [(m["topic"], m["message"]) for m in shown["messages"]] == [
        ("audit", {"note": "for the audit queue"})
    ]
    failed = run_json(capsys, shared_app.db, "show", "fail-1")
    assert failed["steps"][0]["error_message"] == "card declined for o-2"
    code, out, _ = run(capsys, shared_app.db, "show", "fail-1")
    assert "error              ValueError: card declined for o-2" in out


def test_events_and_get_event(capsys: pytest.CaptureFixture[str], shared_app: App) -> None:
    """events lists a workflow's events; get-event prints one (strings bare, --json quoted)."""
    code, out, _ = run(capsys, shared_app.db, "events", "order-1")
    assert code == 0
    assert out.splitlines()[1].split() == ["checkout_url", '"https://pay.example/o-1"']
    assert run_json(capsys, shared_app.db, "events", "order-1") == {
        "checkout_url": "https://pay.example/o-1"
    }
    assert run_json(capsys, shared_app.db, "events", "quick-1") == {}
    assert run(capsys, shared_app.db, "get-event", "order-1", "checkout_url") == (
        0,
        "https://pay.example/o-1\n",
        "",
    )
    assert run_json(capsys, shared_app.db, "get-event", "order-1", "checkout_url") == (
        "https://pay.example/o-1"
    )
    assert_user_error(
        *run(capsys, shared_app.db, "get-event", "order-1", "paid", "--timeout", "0.05s"),
        "has not set event 'paid' within 0.05 s",
    )


def test_doctor(capsys: pytest.CaptureFixture[str], shared_app: App) -> None:
    """Schema version, integrity, sizes (SQLite: journal mode and WAL; PostgreSQL: the
    schema) and pending counts."""
    info = run_json(capsys, shared_app.db, "doctor")
    assert info["schema_version"] == SCHEMA_VERSION
    assert info["integrity"] == "ok"
    assert (info["corrupt_rows"], info["corrupt_row_problems"]) == (0, [])
    if is_postgres_url(shared_app.db):
        assert info["schema"] == split_url(str(shared_app.db))[1]
        assert info["schema_bytes"] > 0
    else:
        assert info["journal_mode"] == "wal"
        assert info["wal_bytes"] >= 0 and info["file_bytes"] > 0
    assert info["workflows"] == {"ERROR": 1, "PENDING": 1, "SUCCESS": 2}
    assert (info["queued_messages"], info["waiting_operations"]) == (1, 1)
    code, out, _ = run(capsys, shared_app.db, "doctor")
    assert code == 0
    lines = {line.split("  ")[0]: line.split("  ")[-1].strip() for line in out.splitlines()}
    assert lines["integrity"] == "ok"
    assert lines["workflows"] == "ERROR 1, PENDING 1, SUCCESS 2"


# -- steering --------------------------------------------------------------------------------


def test_send_wakes_a_recv_waiting_in_another_process(
    capsys: pytest.CaptureFixture[str], app: App
) -> None:
    """A real ``python -m litewf send`` reaches the waiting workflow, which finishes; a repeat
    with the same idempotency key enqueues nothing."""
    env = dict(os.environ, LITEWF_DB=str(app.db), PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "litewf", "send", "order-1", '{"ok": true}']
    options = ["--topic", "checkout_complete", "--idempotency-key", "evt-1"]
    done = subprocess.run(
        [*command, *options], env=env, cwd=app.folder, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "sent to order-1 (topic checkout_complete)\n"
    assert app.finish() == {"result": "paid", "idle": True}

    assert run(capsys, app.db, "send", "order-1", '{"ok": false}', *options)[0] == 0
    shown = run_json(capsys, app.db, "show", "order-1")
    assert shown["workflow"]["status"] == "SUCCESS"
    assert [m["topic"] for m in shown["messages"]] == ["audit"]  # no second checkout_complete
    assert run_json(capsys, app.db, "get-event", "order-1", "paid") == {"ok": True}
    sent = run_json(capsys, app.db, "send", "quick-1", '"hello"', "--topic", "t")
    assert sent == {"workflow_id": "quick-1", "topic": "t", "sent": True}


def test_cancel_stops_a_workflow_waiting_in_another_process(
    capsys: pytest.CaptureFixture[str], app: App
) -> None:
    """cancel ends order-1 CANCELLED and its recv (600 s) stops waiting in the app at once;
    resume makes it PENDING again and a new app process runs it to the end."""
    assert run(capsys, app.db, "cancel", "order-1") == (0, "order-1: CANCELLED\n", "")
    assert app.finish() == {"result": "CANCELLED", "idle": True}
    assert run(capsys, app.db, "cancel", "quick-1") == (
        0,
        "quick-1: SUCCESS (already finished; left unchanged)\n",
        "",
    )
    assert run_json(capsys, app.db, "cancel", "order-1")["status"] == "CANCELLED"

    resumed = run_json(capsys, app.db, "resume", "order-1")
    assert (resumed["status"], resumed["executor_id"]) == ("PENDING", None)
    assert run(capsys, app.db, "resume", "quick-1") == (
        0,
        "quick-1: SUCCESS (finished; nothing to resume)\n",
        "",
    )
    (app.folder / "started").unlink()
    again = start_app(app.folder, app.db)  # recovers order-1, replays it up to its recv
    try:
        assert (
            run(capsys, app.db, "send", "order-1", '{"ok": true}', "--topic", "checkout_complete")[
                0
            ]
            == 0
        )
        assert again.finish() == {"result": "paid", "idle": True}
    finally:
        stop(again)


def test_gc_leaves_pending_workflows_intact(capsys: pytest.CaptureFixture[str], app: App) -> None:
    """gc deletes the finished workflows only; the waiting one (and the child it will
    replay) stays and still finishes."""
    code, out, _ = run(capsys, app.db, "gc", "--older-than", "7d")
    assert code == 0
    assert out.splitlines()[1].split() == ["workflows", "0"]
    counts = run_json(capsys, app.db, "gc", "--older-than", "0s")
    assert counts == {
        "workflows": 2,
        "operations": 1,
        "events": 0,
        "messages": 0,
        "message_keys": 0,
        "changes": 0,
        "streams": 0,
    }
    left = {w["workflow_id"]: w["status"] for w in run_json(capsys, app.db, "list")}
    assert left == {"order-1": "PENDING", "order-1-3": "SUCCESS"}
    assert (
        run(capsys, app.db, "send", "order-1", '{"ok": true}', "--topic", "checkout_complete")[0]
        == 0
    )
    assert app.finish() == {"result": "paid", "idle": True}
    assert run_json(capsys, app.db, "gc", "--older-than", "0")["workflows"] == 2
    assert run_json(capsys, app.db, "list") == []


def test_gc_include_pending_stops_the_running_workflow(
    capsys: pytest.CaptureFixture[str], app: App
) -> None:
    """--include-pending deletes the waiting workflow as well; the app stops running it."""
    counts = run_json(capsys, app.db, "gc", "--older-than", "0m", "--include-pending")
    assert counts["workflows"] == 4
    assert app.finish() == {"result": "GONE", "idle": True}


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["show", "nope"], "no workflow with ID 'nope'"),
        (["events", "nope"], "no workflow with ID 'nope'"),
        (["cancel", "nope"], "no workflow with ID 'nope'"),
        (["resume", "nope"], "no workflow with ID 'nope'"),
        (["get-event", "nope", "k"], "no workflow with ID 'nope'"),
        (["send", "nope", "{}"], "no workflow with ID 'nope'"),
        (["send", "order-1", "{ok: true}"], "not valid JSON"),
        (["send", "order-1", "hello"], "not valid JSON"),
        (["send", "order-1", "null"], "cannot be None"),
        (["send", "order-1", "{}", "--topic", "a\x00b"], "NUL"),
        (["get-event", "order-1", "never"], "has not set event 'never'"),
    ],
)
def test_user_errors_are_one_line_with_exit_1(
    capsys: pytest.CaptureFixture[str], shared_app: App, args: list[str], needle: str
) -> None:
    """A bad ID, bad JSON or a missing event: one clear line on stderr, exit status 1."""
    assert_user_error(*run(capsys, shared_app.db, *args), needle)


def test_a_missing_database_is_an_error_and_is_not_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--db, then $LITEWF_DB, then ./litewf.db; a path that does not exist is never created."""
    missing = tmp_path / "typo.db"
    assert_user_error(*run(capsys, missing, "list"), "no such database")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LITEWF_DB", raising=False)
    assert_user_error(main(["doctor"]), *capsys.readouterr(), "litewf.db: no such database")
    monkeypatch.setenv("LITEWF_DB", str(missing))
    assert_user_error(main(["gc", "--older-than", "1d"]), *capsys.readouterr(), "typo.db")
    assert sorted(os.listdir(tmp_path)) == []


def test_a_missing_database_named_by_db_is_an_error_and_is_not_created(
    capsys: pytest.CaptureFixture[str], db_path: Path
) -> None:
    """A file or a PostgreSQL schema that does not exist: one line, exit 1; reads, writes
    and doctor alike leave it not created."""
    for args in (["list"], ["doctor"], ["send", "w", "1"], ["gc", "--older-than", "1d"]):
        code, out, err = run(capsys, db_path, *args)
        assert_user_error(code, out, err)
        assert "no such database" in err or "holds no litewf database" in err, err
    assert not sqldb.exists(db_path)


def test_reads_write_nothing(capsys: pytest.CaptureFixture[str], app: App) -> None:
    """list, show, events, get-event and doctor leave the database file byte for byte
    (PostgreSQL: row for row)."""
    run(capsys, app.db, "cancel", "order-1")
    app.finish()  # the app shut down: its WAL is checkpointed into the file and removed
    before = snapshot(app.db)
    for args in (
        ["list"],
        ["show", "order-1"],
        ["events", "order-1"],
        ["get-event", "order-1", "checkout_url"],
        ["doctor"],
        ["list", "--json"],
    ):
        assert run(capsys, app.db, *args)[0] == 0, args
    assert snapshot(app.db) == before
    assert not Path(f"{app.db}-wal").exists()


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["list", "--limit", "-1"],
        ["list", "--status", "DONE"],
        ["gc"],
        ["gc", "--older-than", "7x"],
        ["send", "order-1"],
        ["show"],
        ["list", "extra"],
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str]
) -> None:
    """Malformed command lines are argparse usage errors: exit 2, usage on stderr."""
    code, out, err = run(capsys, tmp_path / "x.db", *args)
    assert (code, out) == (2, "")
    assert err.startswith("usage: litewf") and "error:" in err and "Traceback" not in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """--help lists every command and exits 0."""
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("list", "show", "events", "send", "get-event", "cancel", "resume", "gc"):
        assert name in out
    assert "doctor" in out and "bench" in out


def test_bench_hands_its_arguments_to_the_benchmark_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``litewf [--db X] bench ARGS`` calls litewf._bench.main(ARGS) and returns its status
    (the bench ships with litewf: there is no "not installed" case)."""
    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        return 3

    monkeypatch.setitem(sys.modules, "litewf._bench", types.SimpleNamespace(main=fake_main))
    assert main(["--db", "x.db", "bench", "--quick", "-n", "5", "--db", "y"]) == 3
    assert seen == [["--quick", "-n", "5", "--db", "y"]]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("1.5m", 90.0),
        ("2h", 7200.0),
        ("7d", 604800.0),
        (".5h", 1800.0),
        ("2w", 1209600.0),
    ],
)
def test_ages_accept_s_m_h_d_w(text: str, seconds: float) -> None:
    """gc --older-than reads a number with its unit."""
    assert age(text) == seconds


# -- the operator's safety (issue 10, section 5) -------------------------------------------------


@pytest.fixture
def built(tmp_path: Path, backend: str) -> Iterator[Path]:
    """A stopped application's database (no process serving it): see tests/tampering.py."""
    with new_database(backend, tmp_path / "built.db") as path:
        build_database(path)
        yield path


def listed(path: Path) -> dict[str, str]:
    code, out, err = run_cli(path, "list", "--json")
    assert (code, err) == (0, "")
    return {w["workflow_id"]: w["status"] for w in json.loads(out)}


@pytest.mark.parametrize("age", ["7", "7.5", " 30 "])
def test_gc_age_without_a_unit_is_a_usage_error(built: Path, age: str) -> None:
    """``gc --older-than 7`` once meant 7 seconds and deleted a week of history: a number
    without a unit is refused (exit 2, nothing deleted) with a hint to add one."""
    code, out, err = run_cli(built, "gc", "--older-than", age)
    assert (code, out) == (2, "")
    assert "no unit" in err or "expected a duration" in err, err
    assert "Traceback" not in err
    assert len(listed(built)) == len(WORKFLOWS)
    if age == "7":
        assert "7d" in err


def test_gc_dry_run_prints_what_would_be_deleted_and_deletes_nothing(built: Path) -> None:
    """--dry-run counts with the same selection as the real run, and changes no byte."""
    before = snapshot(built)
    code, out, err = run_cli(built, "gc", "--older-than", "0s", "--dry-run")
    assert (code, err) == (0, "")
    assert out.splitlines()[0].split() == ["WOULD", "DELETE", "ROWS"]
    assert "nothing was deleted" in out
    code, out, _ = run_cli(built, "gc", "--older-than", "0s", "--dry-run", "--json")
    would = json.loads(out)
    assert would["workflows"] == 3  # not the PENDING order-1, nor its child
    assert would["messages"] == 2 and would["message_keys"] == 1
    assert snapshot(built) == before
    assert len(listed(built)) == len(WORKFLOWS)
    code, out, _ = run_cli(built, "gc", "--older-than", "0s", "--json")
    assert code == 0
    assert {k: v for k, v in json.loads(out).items() if k != "changes"} == {
        k: v for k, v in would.items() if k != "changes"
    }
    kept = {"order-1": "PENDING", "order-1-3": "SUCCESS"}
    assert listed(built) == kept
    code, out, _ = run_cli(built, "gc", "--older-than", "0s", "--include-pending", "--dry-run")
    assert (code, out.splitlines()[1].split()) == (0, ["workflows", "2"])
    assert listed(built) == kept


def test_send_with_a_used_idempotency_key_says_nothing_was_enqueued(built: Path) -> None:
    """The repeat prints "already sent (idempotency key), nothing enqueued", not "sent"."""
    args = ["send", "quick-1", '{"late": true}', "--topic", "t", "--idempotency-key", "k1"]
    code, out, err = run_cli(built, *args)
    assert (code, err) == (0, "")
    assert out.startswith("already sent (idempotency key 'k1'), nothing enqueued")
    code, out, _ = run_cli(built, *args, "--json")
    assert json.loads(out) == {"workflow_id": "quick-1", "topic": "t", "sent": False}
    code, out, _ = run_cli(built, *args[:-1], "k2")
    assert out == "sent to quick-1 (topic t)\n"
    code, out, _ = run_cli(built, "show", "quick-1", "--json")
    assert len(json.loads(out)["messages"]) == 3


@pytest.mark.parametrize("status", ["pending", "Pending", "PENDING"])
def test_list_status_is_case_insensitive(built: Path, status: str) -> None:
    code, out, err = run_cli(built, "list", "--status", status, "--json")
    assert (code, err) == (0, "")
    assert [w["workflow_id"] for w in json.loads(out)] == ["order-1"]


def test_list_limit_0_lists_every_workflow(built: Path) -> None:
    """--limit 0 means no limit (it printed nothing before); --limit 2 cuts the list."""
    code, out, _ = run_cli(built, "list", "--limit", "0")
    assert code == 0 and len(out.splitlines()) == 1 + len(WORKFLOWS)
    code, out, _ = run_cli(built, "list", "--limit", "2", "--json")
    assert code == 0 and len(json.loads(out)) == 2


def test_help_loads_no_runtime() -> None:
    """`litewf --help` builds the parser without the runtime's machinery (asyncio, anyio,
    sqlite3, the session): each command imports what it runs when it runs."""
    probe = (
        "import sys, contextlib, io\n"
        "from litewf._cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--help']) == 0\n"
        "print(sorted(m for m in ('asyncio', 'anyio', 'sqlite3', 'litewf._session') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"

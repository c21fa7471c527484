"""A tampered or damaged database gives a litewf error naming the workflow and the column,
never a raw ValueError / TypeError / OverflowError / JSONDecodeError / KeyError traceback.

Each case edits one row of a real database by hand (as an operator with ``sqlite3``
could) and reads it back through the public API and the ``litewf`` command line.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import litewf
from tests.children.ops import register
from tests.tampering import WORKFLOWS, build_database, read_everything, run_cli, tamper

Read = Callable[[litewf.Client], Coroutine[Any, Any, Any]]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "shop.db"
    build_database(path)
    return path


@pytest.fixture
def db(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the built database for one test to edit."""
    path = tmp_path / "shop.db"
    shutil.copyfile(template, path)
    return path


async def _result(client: litewf.Client, workflow_id: str) -> Any:
    return await (await client.retrieve_workflow(workflow_id)).get_result(timeout=0)


async def _status(client: litewf.Client, workflow_id: str) -> Any:
    return await (await client.retrieve_workflow(workflow_id)).get_status()


WAITING_RECV = "workflow_id = 'order-1' AND name = 'recv'"

#: (edit, params, workflow ID, column, the reads that must raise CorruptDatabaseError)
CASES: list[tuple[str, tuple[Any, ...], str, str, list[Read]]] = [
    (
        "UPDATE workflows SET status = ? WHERE workflow_id = 'quick-1'",
        ("DONE",),
        "quick-1",
        "workflows.status",
        [
            lambda c: c.list_workflows(),
            lambda c: _status(c, "quick-1"),
            lambda c: _result(c, "quick-1"),
        ],
    ),
    (
        "UPDATE workflows SET status = ? WHERE workflow_id = 'quick-1'",
        ("success",),
        "quick-1",
        "workflows.status",
        [lambda c: c.list_workflows(), lambda c: _result(c, "quick-1")],
    ),
    (
        "UPDATE workflows SET created_at = ? WHERE workflow_id = 'quick-1'",
        ("yesterday",),
        "quick-1",
        "workflows.created_at",
        [lambda c: c.list_workflows(), lambda c: _status(c, "quick-1")],
    ),
    (
        "UPDATE workflows SET updated_at = ? WHERE workflow_id = 'fail-1'",
        (1e300,),
        "fail-1",
        "workflows.updated_at",
        [lambda c: c.list_workflows(status="ERROR"), lambda c: _status(c, "fail-1")],
    ),
    (
        "UPDATE workflows SET created_at = ? WHERE workflow_id = 'fail-1'",
        (float("inf"),),
        "fail-1",
        "workflows.created_at",
        [lambda c: _status(c, "fail-1")],
    ),
    (
        "UPDATE workflows SET recovery_attempts = ? WHERE workflow_id = 'order-1'",
        ("many",),
        "order-1",
        "workflows.recovery_attempts",
        [lambda c: _status(c, "order-1"), lambda c: c.list_workflows()],
    ),
    (
        "UPDATE workflows SET error = ? WHERE workflow_id = 'fail-1'",
        ("card declined",),
        "fail-1",
        "workflows.error",
        [lambda c: _result(c, "fail-1")],
    ),
    (
        "UPDATE workflows SET error = ? WHERE workflow_id = 'fail-1'",
        ("{}",),
        "fail-1",
        "workflows.error",
        [lambda c: _result(c, "fail-1")],
    ),
    (
        "UPDATE workflows SET error = ? WHERE workflow_id = 'fail-1'",
        ("[1, 2]",),
        "fail-1",
        "workflows.error",
        [lambda c: _result(c, "fail-1")],
    ),
    (
        "UPDATE workflows SET error = NULL WHERE workflow_id = 'fail-1'",
        (),
        "fail-1",
        "workflows.error",
        [lambda c: _result(c, "fail-1")],
    ),
    (
        "UPDATE operations SET error = ? WHERE workflow_id = 'fail-1'",
        ('{"module": "builtins"}',),
        "fail-1",
        "operations.error",
        [lambda c: c.list_steps("fail-1")],
    ),
    (
        "UPDATE operations SET error = ? WHERE workflow_id = 'fail-1'",
        ("Traceback: boom",),
        "fail-1",
        "operations.error",
        [lambda c: c.list_steps("fail-1")],
    ),
    (
        f"UPDATE operations SET deadline = ? WHERE {WAITING_RECV}",
        (1e300,),
        "order-1",
        "operations.deadline",
        [lambda c: c.list_steps("order-1")],
    ),
    (
        f"UPDATE operations SET deadline = ? WHERE {WAITING_RECV}",
        ("tomorrow",),
        "order-1",
        "operations.deadline",
        [lambda c: c.list_steps("order-1")],
    ),
    (
        "UPDATE operations SET created_at = ? WHERE workflow_id = 'order-1' AND op_id = 0",
        (b"\x00\x01",),
        "order-1",
        "operations.created_at",
        [lambda c: c.list_steps("order-1")],
    ),
    (
        "UPDATE operations SET done = ? WHERE workflow_id = 'order-1' AND op_id = 0",
        ("yes",),
        "order-1",
        "operations.done",
        [lambda c: c.list_steps("order-1")],
    ),
    (
        "UPDATE events SET value = ? WHERE workflow_id = 'order-1'",
        (b"\xff\xfe",),
        "order-1",
        "events.value",
        [
            lambda c: c.get_all_events("order-1"),
            lambda c: c.get_event("order-1", "checkout_url", timeout=0),
        ],
    ),
    (
        "UPDATE messages SET created_at = ? WHERE destination_id = 'quick-1'",
        ("noon",),
        "quick-1",
        "messages.created_at",
        [lambda c: c.list_messages("quick-1")],
    ),
    (
        "UPDATE messages SET topic = ? WHERE destination_id = 'quick-1'",
        (b"t",),
        "quick-1",
        "messages.topic",
        [lambda c: c.list_messages("quick-1")],
    ),
]


@pytest.mark.parametrize(
    ("sql", "params", "workflow_id", "column", "reads"),
    CASES,
    ids=[f"{c[3]}={c[1][0] if c[1] else None!r}" for c in CASES],
)
async def test_a_bad_column_is_a_corrupt_database_error_naming_workflow_and_column(
    db: Path, sql: str, params: tuple[Any, ...], workflow_id: str, column: str, reads: list[Read]
) -> None:
    """Every read of the edited row raises CorruptDatabaseError with the workflow's ID and
    the column, and a message that says what to do; the database file is not changed."""
    tamper(db, sql, *params)
    before = db.read_bytes()  # noqa: ASYNC240 - a small file, read before and after
    async with litewf.Client(db) as client:
        for read in reads:
            with pytest.raises(litewf.CorruptDatabaseError) as caught:
                await read(client)
            error = caught.value
            assert (error.workflow_id, error.column) == (workflow_id, column)
            assert workflow_id in str(error) and column in str(error)
            assert "restore it from a backup" in str(error)
            assert error.path == str(db)
        # Every other read path raises only litewf errors.
        raised = await read_everything(client)
        assert raised and all(isinstance(e, litewf.LitewfError) for e in raised), raised
    assert db.read_bytes() == before  # noqa: ASYNC240


async def test_a_value_the_serializer_cannot_read_names_workflow_and_column(db: Path) -> None:
    """A stored output, event value or message that is not JSON is a SerializationError
    (it may have been written with another serializer) that says where it is stored."""
    tamper(db, "UPDATE workflows SET output = '{oops' WHERE workflow_id = 'quick-1'")
    tamper(db, "UPDATE events SET value = 'not json' WHERE workflow_id = 'order-1'")
    tamper(db, "UPDATE messages SET message = '[1,' WHERE destination_id = 'quick-1'")
    async with litewf.Client(db) as client:
        with pytest.raises(litewf.SerializationError, match=r"workflows\.output.*'quick-1'"):
            await _result(client, "quick-1")
        with pytest.raises(litewf.SerializationError, match=r"events\.value.*'order-1'"):
            await client.get_all_events("order-1")
        with pytest.raises(litewf.SerializationError, match=r"events\.value.*'order-1'"):
            await client.get_event("order-1", "checkout_url", timeout=0)
        with pytest.raises(litewf.SerializationError, match=r"messages\.message.*'quick-1'"):
            await client.list_messages("quick-1")


async def test_runtime_read_paths_raise_litewf_errors_too(db: Path) -> None:
    """A Runtime on the edited file reads through the same checks as a Client."""
    tamper(db, "UPDATE workflows SET status = 'DONE' WHERE workflow_id = 'quick-1'")
    tamper(db, "UPDATE workflows SET error = '{' WHERE workflow_id = 'fail-1'")
    async with litewf.Runtime(db) as rt:
        with pytest.raises(litewf.CorruptDatabaseError, match=r"workflows\.status"):
            await rt.list_workflows()
        with pytest.raises(litewf.CorruptDatabaseError, match=r"workflows\.error"):
            await (await rt.retrieve_workflow("fail-1")).get_result(timeout=0)
        raised = await read_everything(rt)
        assert raised and all(isinstance(e, litewf.LitewfError) for e in raised), raised


async def test_a_replayed_bad_error_record_fails_the_workflow_with_a_litewf_error(
    db: Path,
) -> None:
    """Replaying a step whose recorded error is malformed ends the workflow with a
    CorruptDatabaseError naming the column, not a JSONDecodeError from its step call."""
    tamper(db, "UPDATE operations SET error = '{' WHERE workflow_id = 'fail-1'")
    rt = litewf.Runtime(db)
    register(rt)
    async with rt:
        handle = await rt.resume_workflow("fail-1")
        with pytest.raises(litewf.CorruptDatabaseError, match=r"operations\.error"):
            await handle.get_result(timeout=30)


@pytest.mark.parametrize(
    ("edit", "column"),
    [
        ("UPDATE workflows SET history = 'two' WHERE workflow_id = 'order-1'", "history"),
        ("UPDATE operations SET deadline = 'soon' WHERE " + WAITING_RECV, "deadline"),
        ("UPDATE operations SET target = x'00' WHERE " + WAITING_RECV, "target"),
        (
            "UPDATE operations SET op_id = 'first' WHERE workflow_id = 'order-1' AND op_id = 0",
            "op_id",
        ),
        ("UPDATE operations SET done = 7 WHERE " + WAITING_RECV, "done"),
    ],
)
async def test_a_recovered_workflow_with_a_bad_history_ends_with_a_litewf_error(
    db: Path, edit: str, column: str
) -> None:
    """Loading a tampered history to replay it ends that workflow ERROR with a
    CorruptDatabaseError naming the column; the runtime keeps serving the others
    (before: a raw ValueError or TypeError escaped from the workflow's task)."""
    tamper(db, edit)
    rt = litewf.Runtime(db)
    workflows = register(rt)
    async with rt:  # recovery takes order-1 over and loads its history
        handle = await rt.retrieve_workflow("order-1")
        with pytest.raises(litewf.CorruptDatabaseError, match=rf"\.{column}"):
            await handle.get_result(timeout=30)
        status = await handle.get_status()
        assert status.status == "ERROR" and status.error_type == "litewf.CorruptDatabaseError"
        quick = await rt.start_workflow(workflows["ops.quick"], 1, workflow_id="quick-2")
        assert await quick.get_result(timeout=30) == 2


async def test_a_runtime_launches_beside_a_pending_row_with_a_bad_owner(db: Path) -> None:
    """Recovery leaves a PENDING row whose executor_id is a blob alone (no executor owns
    it); the runtime launches and its listing reports the row."""
    tamper(db, "UPDATE workflows SET executor_id = x'00ff' WHERE workflow_id = 'order-1'")
    rt = litewf.Runtime(db)
    register(rt)
    async with rt:
        with pytest.raises(litewf.CorruptDatabaseError, match=r"workflows\.executor_id"):
            await rt.list_workflows()
        assert (await rt.list_workflows(status="SUCCESS", limit=1))[0].status == "SUCCESS"


async def test_existing_callers_of_corrupt_database_error_still_work() -> None:
    """The (path, problem) constructor still works; workflow_id and column default to None."""
    error = litewf.CorruptDatabaseError("x.db", "is corrupt")
    assert (str(error), error.path, error.workflow_id, error.column) == (
        "x.db: is corrupt",
        "x.db",
        None,
        None,
    )
    assert isinstance(error, litewf.DatabaseError)


# -- the command line --------------------------------------------------------------------------


def test_list_shows_the_good_rows_and_marks_the_bad_one(db: Path) -> None:
    """One bad row no longer makes ``litewf list`` unusable: the others are listed, the bad
    one shows its ID and the bad column, stderr says what is wrong, exit status 1."""
    tamper(db, "UPDATE workflows SET created_at = 'yesterday' WHERE workflow_id = 'quick-1'")
    code, out, err = run_cli(db, "list")
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 1 + len(WORKFLOWS)
    bad = [line for line in lines if line.startswith("quick-1 ")]
    assert len(bad) == 1 and "corrupt: workflows.created_at" in bad[0]
    for workflow_id in WORKFLOWS.keys() - {"quick-1"}:
        assert any(line.startswith(f"{workflow_id} ") for line in lines), workflow_id
    assert err.startswith("litewf: error: ") and err.count("\n") == 1
    assert "quick-1" in err and "workflows.created_at" in err and "Traceback" not in err


def test_list_json_marks_the_bad_row(db: Path) -> None:
    tamper(db, "UPDATE workflows SET status = 'DONE' WHERE workflow_id = 'quick-1'")
    code, out, err = run_cli(db, "list", "--json")
    assert code == 1 and "Traceback" not in err
    listed = {w["workflow_id"]: w for w in json.loads(out)}
    assert listed.keys() == WORKFLOWS.keys()
    assert listed["quick-1"]["corrupt"]["column"] == "workflows.status"
    assert "DONE" in listed["quick-1"]["corrupt"]["problem"]
    assert listed["fail-1"]["status"] == "ERROR" and "corrupt" not in listed["fail-1"]


def test_show_prints_what_it_can_and_the_error(db: Path) -> None:
    """``show`` of a workflow with a bad step prints its status, events and messages, the
    error for the steps, and exits 1."""
    tamper(db, f"UPDATE operations SET deadline = 1e300 WHERE {WAITING_RECV}")
    code, out, err = run_cli(db, "show", "order-1")
    assert code == 1 and "Traceback" not in err
    assert "order-1" in out and "PENDING" in out and "checkout_url" in out
    assert "steps: corrupt" in out and "operations.deadline" in out
    assert err.startswith("litewf: error: ") and "operations.deadline" in err
    code, out, err = run_cli(db, "show", "order-1", "--json")
    assert code == 1
    shown = json.loads(out)
    assert shown["workflow"]["status"] == "PENDING"
    assert shown["steps"]["corrupt"]["column"] == "operations.deadline"
    assert run_cli(db, "show", "quick-1")[0] == 0


@pytest.mark.parametrize(
    "args",
    [["events", "order-1"], ["get-event", "order-1", "checkout_url"], ["cancel", "order-1"]],
)
def test_other_commands_report_one_line(db: Path, args: list[str]) -> None:
    tamper(db, "UPDATE events SET value = x'ff' WHERE workflow_id = 'order-1'")
    tamper(db, "UPDATE workflows SET recovery_attempts = 'x' WHERE workflow_id = 'order-1'")
    code, _, err = run_cli(db, *args)
    assert code == 1 and "Traceback" not in err
    assert err.startswith("litewf: error: ") and err.count("\n") == 1 and "order-1" in err


def test_doctor_reports_a_status_that_does_not_exist(db: Path) -> None:
    """doctor counts a status litewf never writes (even a blob) and exits 1 for it."""
    tamper(db, "UPDATE workflows SET status = x'00ff' WHERE workflow_id = 'quick-1'")
    code, out, err = run_cli(db, "doctor")
    assert code == 1 and "Traceback" not in err
    assert "b'\\x00\\xff' 1" in out
    assert "1 corrupt rows" in err and "workflows.status" in err and "quick-1" in err
    code, out, err = run_cli(db, "doctor", "--json")
    assert code == 1 and json.loads(out)["workflows"]["b'\\x00\\xff'"] == 1


def test_doctor_finds_every_corrupt_row(db: Path) -> None:
    """doctor checks every row as the read paths would, and lists the first problems."""
    assert run_cli(db, "doctor")[0] == 0
    tamper(db, f"UPDATE operations SET deadline = 'soon' WHERE {WAITING_RECV}")
    tamper(db, "UPDATE events SET created_at = 1e300 WHERE workflow_id = 'order-1'")
    tamper(db, "UPDATE messages SET message = x'00' WHERE destination_id = 'quick-1'")
    tamper(db, "UPDATE workflows SET error = '[]' WHERE workflow_id = 'fail-1'")
    code, out, err = run_cli(db, "doctor", "--json")
    assert code == 1 and "Traceback" not in err
    info = json.loads(out)
    assert info["corrupt_rows"] == 5  # two messages to quick-1
    columns = " ".join(info["corrupt_row_problems"])
    for column in ("operations.deadline", "events.created_at", "messages.message"):
        assert column in columns
    assert "workflows.error" in columns
    code, out, err = run_cli(db, "doctor")
    lines = {line.split("  ")[0]: line.split("  ")[-1].strip() for line in out.splitlines()}
    assert code == 1 and lines["corrupt rows"] == "5"
    assert err.startswith("litewf: error: 5 corrupt rows; the first: ")

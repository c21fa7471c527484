"""``litewf show`` (inputs, output, error), ``list``'s filters, ``steps`` and ``start``
(issue 17), and the hostile-input entries for their arguments.

Most commands run in this process over a database built by a runtime that has shut down;
``start`` runs as a real ``python -m litewf`` subprocess while an application process
serves the workflow, which starts it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from litewf._cli_args import moment
from tests.conftest import new_database
from tests.tampering import run_cli, tamper
from tests.test_cli import App, snapshot, start_app, stop

ROOT = Path(__file__).resolve().parent.parent
LONG = "x" * 1000


class Declined(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"declined with code {code}")
        self.code = code


async def _build(path: Path) -> None:
    rt = litewf.Runtime(path)
    queue = rt.queue("ins.q")

    @rt.step(name="ins.length")
    async def length(text: str) -> int:
        return len(text)

    @rt.workflow(name="ins.echo")
    async def echo(text: str, times: int = 1) -> str:
        await length(text)
        return text * times

    @rt.workflow(name="ins.boom")
    async def boom() -> None:
        raise Declined(51)

    @rt.workflow(name="ins.parent")
    async def parent() -> str:
        return await echo("child")

    async with rt:
        await (await rt.start_workflow(echo, LONG, workflow_id="long-1", times=2)).get_result()
        await (await rt.start_workflow(echo, "hi", workflow_id="short-1")).get_result()
        with pytest.raises(Declined):
            await (await rt.start_workflow(boom, workflow_id="boom-1")).get_result()
        await (await rt.start_workflow(parent, workflow_id="parent-1")).get_result()
        await (await queue.enqueue(echo, "queued", workflow_id="q-1")).get_result()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Path]:
    with new_database(backend, tmp_path_factory.mktemp("inspect") / "i.db") as path:
        anyio.run(_build, path, backend="asyncio")
        yield path


@pytest.fixture
def copy(built: Path, tmp_path: Path, backend: str) -> Iterator[Path]:
    """A copy of the built database (on PostgreSQL, built again), for a test that writes."""
    with new_database(backend, tmp_path / "copy.db") as path:
        if backend == "sqlite":
            path.write_bytes(built.read_bytes())
        else:
            anyio.run(_build, path, backend="asyncio")
        yield path


def ok(path: Path, *args: str) -> str:
    code, out, err = run_cli(path, *args)
    assert (code, err) == (0, ""), err
    return out


def ok_json(path: Path, *args: str) -> Any:
    return json.loads(ok(path, *args, "--json"))


# -- show ----------------------------------------------------------------------------------------


def test_show_prints_the_inputs_and_the_output(built: Path) -> None:
    out = ok(built, "show", "short-1")
    sections = out.split("\n\n")
    assert sections[1] == 'inputs\n  [0]  "hi"'
    assert sections[2] == 'output\n  "hi"'


def test_show_shortens_long_values_unless_full(built: Path) -> None:
    """A long value is cut to one line naming how much is left; --full prints it whole;
    --json never cuts."""
    out = ok(built, "show", "long-1")
    inputs, output = out.split("\n\n")[1:3]
    assert inputs.startswith('inputs\n  [0]    "xxx') and "  times  2" in inputs
    assert "x... (705 more characters; --full shows all)" in inputs  # 297 of 1,002 shown
    assert len(output.splitlines()[1]) < 400 and "(1,705 more characters" in output
    full = ok(built, "show", "long-1", "--full")
    assert f'"{LONG}"' in full and f'"{LONG * 2}"' in full
    shown = ok_json(built, "show", "long-1")
    assert shown["inputs"] == {"args": [LONG], "kwargs": {"times": 2}}
    assert shown["output"] == LONG * 2 and shown["error"] is None


def test_show_prints_the_error_with_its_attributes(built: Path) -> None:
    out = ok(built, "show", "boom-1")
    error = out.split("\n\n")[2].splitlines()
    assert error[0] == "error"
    assert error[1].split(None, 1) == ["type", "tests.test_cli_inspect.Declined"]
    assert error[2].split(None, 1) == ["message", "declined with code 51"]
    assert error[3].split() == ["code", "51"]
    shown = ok_json(built, "show", "boom-1")
    assert shown["output"] is None
    assert shown["error"] == {
        "type": "tests.test_cli_inspect.Declined",
        "message": "declined with code 51",
        "attributes": {"code": 51},
    }


def test_show_names_damaged_inputs_and_still_prints_the_rest(copy: Path) -> None:
    tamper(copy, "UPDATE workflows SET inputs = 'not json' WHERE workflow_id = 'short-1'")
    code, out, err = run_cli(copy, "show", "short-1")
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1
    assert "inputs: unreadable" in out and 'output\n  "hi"' in out and "steps (1)" in out


# -- steps ---------------------------------------------------------------------------------------


def test_steps_lists_the_operations_one_per_line(built: Path) -> None:
    header, *lines = ok(built, "steps", "parent-1").splitlines()
    assert header.split()[:5] == ["#", "KIND", "NAME", "OUTCOME", "SUMMARY"]
    assert [line.split()[:2] for line in lines] == [["0", "child"], ["1", "get_result"]]
    steps = ok_json(built, "steps", "parent-1")
    assert [(s["number"], s["kind"], s["outcome"]) for s in steps] == [
        (0, "child", "ok"),
        (1, "get_result", "ok"),
    ]
    assert ok(built, "steps", "q-1").splitlines()[1].split()[:3] == ["0", "step", "ins.length"]


# -- list ----------------------------------------------------------------------------------------


def ids(path: Path, *args: str) -> list[str]:
    return [w["workflow_id"] for w in ok_json(path, "list", *args)]


def test_list_queue_offset_and_status_in_any_case(built: Path) -> None:
    everything = ids(built, "--limit", "0")
    assert len(everything) == 6
    assert ids(built, "--offset", "2", "--limit", "2") == everything[2:4]
    assert ids(built, "--offset", "99") == []
    assert ids(built, "--queue", "ins.q") == ["q-1"]
    assert ids(built, "--status", "error") == ids(built, "--status", "ERROR") == ["boom-1"]


def test_list_since_until_prefix_and_parent(built: Path) -> None:
    everything = ids(built, "--limit", "0")
    assert ids(built, "--since", "1h", "--limit", "0") == everything
    assert ids(built, "--until", "1h") == []
    assert ids(built, "--since", "2000-01-01", "--until", "2999-01-01T00:00+01:00") == everything
    assert ids(built, "--prefix", "s") == ["short-1"]
    children = ids(built, "--parent", "parent-1")
    assert len(children) == 1 and children[0] not in {"parent-1"}


def test_moment_reads_iso_datetimes_and_ages() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert moment("2h", now) == now - timedelta(hours=2)
    assert moment("1.5d", now) == now - timedelta(hours=36)
    assert moment("2026-11-27", now) == datetime(2026, 11, 27, tzinfo=UTC)  # naive: UTC
    plus_one = moment("2026-11-27T09:00+01:00")
    assert plus_one == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


# -- start ---------------------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path, backend: str) -> Iterator[App]:
    with new_database(backend, tmp_path / "app" / "shop.db") as db:
        running = start_app(tmp_path / "app", db)
        yield running
        stop(running)


def cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "litewf", "--db", str(db), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def test_start_runs_in_the_process_that_has_the_workflow(app: App) -> None:
    """``litewf start`` (a real subprocess) stores the workflow for a runtime; the serving
    application process, woken by the change, starts it."""
    done = cli(app.db, "start", "ops.quick", "21", "--workflow-id", "cli-1")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "cli-1: ENQUEUED (a runtime that has workflow 'ops.quick' starts it)\n"

    async def result() -> Any:
        async with litewf.Client(app.db) as client:
            handle = await client.retrieve_workflow("cli-1")
            return await handle.get_result(timeout=10)

    assert anyio.run(result, backend="asyncio") == 42
    again = cli(app.db, "start", "ops.quick", "21", "--workflow-id", "cli-1", "--json")
    assert json.loads(again.stdout)["status"] == "SUCCESS"  # one ID, one run


def test_start_with_kwargs_delay_and_queue_stores_and_waits(copy: Path) -> None:
    out = ok(copy, "start", "ins.echo", '"a"', "--kwargs", '{"times": 3}', "--workflow-id", "s-1")
    assert out == "s-1: ENQUEUED (a runtime that has workflow 'ins.echo' starts it)\n"
    assert ok_json(copy, "show", "s-1")["inputs"] == {"args": ["a"], "kwargs": {"times": 3}}
    status = ok_json(copy, "start", "ins.echo", '"b"', "--queue", "ins.q", "--workflow-id", "s-2")
    assert (status["status"], status["queue"]) == ("ENQUEUED", "ins.q")
    ok(copy, "start", "ins.echo", '"c"', "--delay", "1h", "--workflow-id", "s-3")

    async def run_them() -> list[str]:
        rt = litewf.Runtime(copy)
        queue = rt.queue("ins.q")
        del queue

        @rt.workflow(name="ins.echo")
        async def echo(text: str, times: int = 1) -> str:
            return text * times

        async with rt:
            first = await (await rt.retrieve_workflow("s-1")).get_result(timeout=10)
            second = await (await rt.retrieve_workflow("s-2")).get_result(timeout=10)
            third = (await rt.retrieve_workflow("s-3")).get_status()
            return [first, second, (await third).status.value]

    assert anyio.run(run_them, backend="asyncio") == ["aaa", "b", "ENQUEUED"]


def test_start_of_an_unknown_name_says_so(copy: Path) -> None:
    code, out, err = run_cli(copy, "start", "ins.typo")
    assert code == 0 and out.endswith("(a runtime that has workflow 'ins.typo' starts it)\n")
    assert err.startswith("litewf: note: no workflow named 'ins.typo' was stored before")


# -- hostile input for the new arguments -------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["list", "--since", "yesterday"], "expected an ISO datetime"),
        (["list", "--until", "5x"], "expected an ISO datetime"),
        (["list", "--since", ""], "expected an ISO datetime"),
        (["list", "--since", "2026-13-01"], "expected an ISO datetime"),
        (["list", "--status", "DONE"], "invalid choice"),
        (["list", "--offset", "-1"], "whole number >= 0"),
        (["list", "--offset", "1.5"], "whole number >= 0"),
        (["show"], "required"),
        (["show", "short-1", "--full=yes"], "ignored explicit argument"),
        (["steps"], "required"),
        (["start"], "required"),
        (["start", "ins.echo", "--delay", "soon"], "expected a duration"),
        (["start", "ins.echo", "--delay", "-5s"], "--delay"),
    ],
)
def test_malformed_new_arguments_are_usage_errors(
    built: Path, args: list[str], needle: str
) -> None:
    code, out, err = run_cli(built, *args)
    assert (code, out) == (2, "")
    assert needle in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["start", "ins.echo", "{bad"], "not valid JSON"),
        (["start", "ins.echo", "--kwargs", "[1]"], "must be a JSON object"),
        (["start", "ins.echo", "--kwargs", "{bad"], "not valid JSON"),
        (["start", "ins.echo", "NaN"], "serialize"),
        (["start", ""], "workflow_name must be a non-empty str"),
        (["start", "a\x00b"], "NUL"),
        (["start", "ins.echo", "--workflow-id", "w" * 1025], "at most 1024"),
        (["start", "ins.boom", "--workflow-id", "short-1"], "belongs to workflow 'ins.echo'"),
        (["start", "ins.echo", "--queue", "q\x00"], "NUL"),
        (["steps", "nope"], "nope"),
        (["steps", ""], "non-empty"),
        (["show", "a\x00b"], "NUL"),
        (["list", "--queue", "q\x00"], "NUL"),
        (["list", "--name", "\udfff"], "not valid Unicode"),
    ],
)
def test_bad_values_are_one_line_errors_and_store_nothing(
    copy: Path, args: list[str], needle: str
) -> None:
    before = snapshot(copy)
    code, out, err = run_cli(copy, *args)
    assert (code, out) == (1, ""), err
    assert err.startswith("litewf: error: ") and err.count("\n") == 1, err
    assert needle in err
    assert len(ids(copy, "--limit", "0")) == 6
    assert snapshot(copy) == before


def test_start_waits_for_no_runtime(db_path: Path) -> None:
    """The start command returns at once with nothing serving the database."""
    db = db_path
    anyio.run(_touch_database, db, backend="asyncio")
    result = cli(db, "start", "nobody.has.it", "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["status"] == "ENQUEUED"


async def _touch_database(path: Path) -> None:
    async with litewf.Runtime(path):
        pass


def test_help_lists_the_new_commands(built: Path) -> None:
    code, out, _ = run_cli(built, "--help")
    assert code == 0 and "steps" in out and "start" in out
    code, out, _ = run_cli(built, "start", "--help")
    assert code == 0 and "--kwargs" in out and "--queue" in out and "--delay" in out

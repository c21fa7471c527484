"""``litewf fork`` and ``litewf delete`` (issue 15), against a stopped application's
database (tests/tampering.py) and one that another process serves (tests/test_cli.py)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import sqldb
from tests.conftest import new_database
from tests.tampering import WORKFLOWS, build_database
from tests.test_cli import App, assert_user_error, run, run_json, start_app, stop


@pytest.fixture
def built(tmp_path: Path, backend: str) -> Iterator[Path]:
    with new_database(backend, tmp_path / "built.db") as path:
        build_database(path)
        yield path


@pytest.fixture
def app(tmp_path: Path, backend: str) -> Iterator[App]:
    with new_database(backend, tmp_path / "app" / "shop.db") as db:
        running = start_app(tmp_path / "app", db)
        yield running
        stop(running)


class Terminal(io.StringIO):
    """Standard input as a terminal on which the operator types ``answer``."""

    def isatty(self) -> bool:
        return True


def stored(db: Path) -> dict[str, str]:
    return dict(sqldb.query(db, "SELECT workflow_id, status FROM workflows"))


def test_fork_stores_a_pending_unowned_copy(
    capsys: pytest.CaptureFixture[str], built: Path
) -> None:
    code, out, err = run(capsys, built, "fork", "fail-1", "--from-step", "0", "--workflow-id", "f")
    assert (code, err) == (0, "")
    assert (
        out == "f: PENDING (fork of fail-1 from step 0; a runtime that has its function runs it)\n"
    )
    forked = run_json(capsys, built, "fork", "order-1", "--from-step", "2")
    assert (forked["status"], forked["executor_id"]) == ("PENDING", None)
    assert (forked["forked_from"], forked["from_step"]) == ("order-1", 2)
    steps = run_json(capsys, built, "show", forked["workflow_id"])["steps"]
    assert [s["number"] for s in steps] == [0, 1]
    assert_user_error(
        *run(capsys, built, "fork", "nope", "--from-step", "1"), "no workflow with ID 'nope'"
    )
    assert_user_error(
        *run(capsys, built, "fork", "fail-1", "--from-step", "1", "--workflow-id", "quick-1"),
        "'quick-1' belongs to workflow",
    )


@pytest.mark.parametrize("step", ["-1", "x", "1.5", ""])
def test_fork_needs_a_whole_from_step(
    capsys: pytest.CaptureFixture[str], built: Path, step: str
) -> None:
    code, out, err = run(capsys, built, "fork", "fail-1", "--from-step", step)
    assert (code, out) == (2, "") and "expected a whole number >= 0" in err
    assert run(capsys, built, "fork", "fail-1")[0] == 2  # --from-step is required


def test_delete_asks_first_and_needs_yes_without_a_terminal(
    capsys: pytest.CaptureFixture[str], built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert_user_error(*run(capsys, built, "delete", "quick-1"), "pass --yes")
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert run(capsys, built, "delete", "quick-1")[:2] == (
        1,
        "delete workflow 'quick-1' and all their data? [y/N] nothing deleted\n",
    )
    assert stored(built) == WORKFLOWS
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    code, out, _ = run(capsys, built, "delete", "quick-1")
    assert code == 0 and "deleted workflow 'quick-1'" in out
    assert "quick-1" not in stored(built)
    assert_user_error(*run(capsys, built, "delete", "quick-1", "--yes"), "no workflow with ID")


def test_delete_children(capsys: pytest.CaptureFixture[str], built: Path) -> None:
    """order-1 without --children leaves its child; with, takes it along."""
    assert run(capsys, built, "cancel", "order-1")[0] == 0
    counts = run_json(capsys, built, "delete", "order-1", "--yes")["deleted"]
    assert counts["workflows"] == 1 and counts["operations"] > 0
    assert "order-1-3" in stored(built)
    deleted = run_json(capsys, built, "delete", "stopped-1", "--children", "--yes")
    assert deleted["deleted"]["workflows"] == 1
    assert set(stored(built)) == {"order-1-3", "fail-1", "quick-1"}


def test_delete_stops_a_workflow_running_in_another_process(
    capsys: pytest.CaptureFixture[str], app: App
) -> None:
    """order-1 waits in recv (600 s) in the app; deleting it with its child ends the app's
    wait on it at once (WorkflowNotFoundError) and leaves nothing waiting there."""
    deleted = run_json(capsys, app.db, "delete", "order-1", "--children", "--yes")["deleted"]
    assert deleted["workflows"] == 2
    assert app.finish() == {"result": "GONE", "idle": True}
    assert set(stored(app.db)) == {"fail-1", "quick-1"}

"""Crash torture (issue 5, part 1): SIGKILL a busy workload again and again, then prove
from what each side logged after every acknowledgement that nothing was lost, nothing was
delivered twice, events never changed, step outcomes replayed identically, every workflow
ended SUCCESS and the file is intact. The soak is the same run, longer:
``python -m tests.faults.soak 1000``.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests import procs
from tests.conftest import drop_schema, postgres_database
from tests.faults.torture import Violation, check_generation, read_log, torture

#: Crash points in the default run; the soak takes a count of its own.
QUICK_CRASH_POINTS = 80


@pytest.mark.slow
def test_crash_torture_quick(tmp_path: Path) -> None:
    """80 SIGKILLs (random COMMITs before and after, named points, timers, streaks of three
    inside recovery): zero lost, zero duplicated, every check passed."""
    figures = torture(tmp_path, QUICK_CRASH_POINTS, seed=20240605)
    print(json.dumps(figures.summary(), indent=1))
    assert figures.crash_points == QUICK_CRASH_POINTS
    assert figures.recovery_kills >= 3  # at least one streak inside recovery
    assert figures.lost == figures.duplicated == 0
    assert figures.acknowledged > 0 and figures.delivered >= figures.acknowledged
    assert figures.generations >= 2 and figures.integrity_checks >= figures.generations
    assert {"commit:before", "commit:after", "timer"} <= set(figures.kills)
    assert any(kind.startswith("point:") for kind in figures.kills)


def finished_generation(tmp_path: Path) -> tuple[Path, Path]:
    db, log = tmp_path / "one.db", tmp_path / "one.log"
    child = procs.spawn("faults_workload", db, log, "0", "3", "2", "1", "none")
    assert procs.finish(child).split() == ["done"]
    return db, log


def test_checker_passes_a_clean_run_and_catches_tampering(tmp_path: Path) -> None:
    """The checker is not vacuous: a clean generation passes, and a duplicated message, a
    changed event, a lost message or a replay that saw another value each fail it."""
    db, log = finished_generation(tmp_path)
    records = read_log(log)
    figures = check_generation(db, records, 0, 3, 2, 1)
    assert figures.acknowledged == 3 * 2 + 3 and figures.lost == figures.duplicated == 0

    def tampered(sql: str, params: tuple[object, ...]) -> None:
        copy = tmp_path / "copy.db"
        copy.write_bytes(db.read_bytes())
        con = sqlite3.connect(copy)
        con.execute(sql, params)
        con.commit()
        con.close()
        with pytest.raises(Violation):
            check_generation(copy, records, 0, 3, 2, 1)

    tampered(  # a second copy left on a queue
        "INSERT INTO messages (destination_id, topic, message, created_at) VALUES (?,?,?,0)",
        ("g0-w1", "ring", '"g0-w0>0"'),
    )
    tampered("UPDATE events SET value = '1' WHERE workflow_id = ?", ("g0-w0",))
    tampered(  # a message missing from what the workflow received
        "UPDATE workflows SET output = json_set(output, '$.ext', json('[]')) WHERE workflow_id = ?",
        ("g0-w2",),
    )
    replayed = [*records, {**records[-3], "run": "x"}]
    assert replayed[-1]["k"] == "result"
    replayed[-1]["v"] = {**replayed[-1]["v"], "w": -1}
    with pytest.raises(Violation, match="saw"):
        check_generation(db, replayed, 0, 3, 2, 1)


#: Crash points of the PostgreSQL run (named points and timers: no COMMIT hook there).
PG_CRASH_POINTS = 24


@pytest.mark.slow
def test_crash_torture_quick_on_postgres(tmp_path: Path) -> None:
    """The torture on a shared PostgreSQL database: SIGKILLs at named points, at random
    moments and in streaks inside recovery; zero lost, zero duplicated."""
    url = str(next(postgres_database()))
    try:
        figures = torture(tmp_path, PG_CRASH_POINTS, seed=20261127, url=url)
    finally:
        drop_schema(url)
    print(json.dumps(figures.summary(), indent=1))
    assert figures.crash_points == PG_CRASH_POINTS and figures.recovery_kills >= 3
    assert figures.lost == figures.duplicated == 0
    assert figures.acknowledged > 0 and figures.delivered >= figures.acknowledged
    assert figures.generations >= 2
    assert any(kind.startswith("point:") for kind in figures.kills) and figures.kills["timer"]

"""``litewf bench`` runs from the command line and reports every scenario (no timings
are asserted: figures belong to the benchmark, not to tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from litewf._bench import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent


def test_quick_bench_reports_every_scenario(tmp_path: Path) -> None:
    """`python -m litewf bench --quick --json F` prints a row per scenario and writes them."""
    out_file = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "litewf", "bench", "--quick", "--json", str(out_file)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    table = done.stdout.splitlines()
    assert table[0].startswith("litewf bench, durability=full, quick sizes")
    for scenario in SCENARIOS:
        assert any(line.startswith(scenario + " ") for line in table), scenario
    report = json.loads(out_file.read_text())
    assert {f["scenario"] for f in report["figures"]} == set(SCENARIOS)
    assert all(f["value"] > 0 for f in report["figures"])
    # limits ran: its bounds are in the report, and the other figures' ratios to them
    assert report["bounds"]["two_commit_floor_ms"] > 0
    rated = {f["scenario"] for f in report["figures"] if f["ratio"] is not None}
    assert {"workflows", "send-recv", "scale"} <= rated
    assert report["machine"]["sqlite"]
    assert not list(tmp_path.glob("*.db"))  # each scenario used its own temporary folder


def test_global_json_flag_prints_the_figures_as_json(tmp_path: Path) -> None:
    """`litewf --json bench` (the global flag) prints JSON on stdout instead of the table,
    and `bench --help` shows no reST quotes."""
    done = subprocess.run(
        [sys.executable, "-m", "litewf", "--json", "bench", "--quick", "--scenario", "events"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {f["scenario"] for f in report["figures"]} == {"events"}
    assert report["bounds"] is None  # without limits, no bounds and no ratios
    assert all(f["ratio"] is None for f in report["figures"])
    shown = subprocess.run(
        [sys.executable, "-m", "litewf", "bench", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "``" not in shown.stdout and "litewf bench: throughput" in shown.stdout

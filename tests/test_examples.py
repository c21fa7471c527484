"""The README's example runs, and a second run finds the finished workflow."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("example", ["quickstart.py", "sync_script.py"])
def test_quickstart_runs_twice(tmp_path: Path, example: str) -> None:
    """The quickstart (and its synchronous twin: a plain def workflow and step) prints the
    URL and 'paid'; the rerun does not run the step again."""
    script = tmp_path / example
    shutil.copy(EXAMPLES / example, script)
    outputs = [
        subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        for _ in range(2)
    ]
    for out in outputs:
        assert "checkout URL: https://pay.example/checkout/o-1" in out
        assert "result: paid" in out
    assert "reserving stock" in outputs[0]
    assert "reserving stock" not in outputs[1]

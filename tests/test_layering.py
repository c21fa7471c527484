"""The module layering of ``pyproject.toml`` ([tool.importlinter]) holds, and covers every module.

Imports inside litewf point one way, down the layers (type-checking imports included), so
that a storage backend or a feature is an added module, not an edit of every other one.
"""

from __future__ import annotations

import os
import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import litewf

ROOT = Path(__file__).resolve().parent.parent


def test_the_layers_contract_is_kept() -> None:
    # In a process of its own: import-linter reconfigures logging, which other tests read.
    run = "from importlinter.cli import lint_imports_command as c; c(['--no-cache', '--no-logo'])"
    done = subprocess.run(
        [sys.executable, "-c", run],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_every_module_is_in_a_layer() -> None:
    """A module left out of the layers is unconstrained: list each new one in its place."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = config["tool"]["importlinter"]["contracts"]
    listed = {name for layer in contract["layers"] for name in re.split(r"[|:]", layer)}
    listed = {name.strip() for name in listed}
    modules = {info.name for info in pkgutil.iter_modules([os.path.dirname(litewf.__file__)])}
    assert modules - listed == set()
    assert listed - modules == set()  # no stale names either

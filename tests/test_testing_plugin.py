"""litewf's pytest plugin, used from a separate project run by pytest in a subprocess.

The project has its own conftest files and unrelated tests next to ones that use the
``litewf_*`` fixtures; the records its tests write show which backend each one got.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

RECORD = """
import json, os

def record(**fields):
    with open(os.environ["LITEWF_PLUGIN_RECORD"], "a") as f:
        f.write(json.dumps(fields) + "\\n")
"""

PROJECT = {
    "pytest.ini": """
        [pytest]
        filterwarnings = error
    """,
    "conftest.py": """
        # The user's own conftest: no anyio_backend fixture here (anyio's default applies).
    """,
    "test_plain.py": RECORD
    + """
import pytest

def test_sync_unrelated():
    record(test="sync")

@pytest.mark.anyio
async def test_async_unrelated(anyio_backend):
    record(test="async", backend=anyio_backend)

async def test_runtime(litewf_runtime, litewf_db, anyio_backend):
    # Long intervals: a teardown that waited one out would take 30 s.
    rt = await litewf_runtime(poll_interval=30, recovery_interval=30)

    @rt.workflow(name="echo")
    async def echo(x: str) -> str:
        return x

    @rt.workflow(name="parked")
    async def parked() -> None:
        await rt.recv("never", timeout=3600)

    assert await echo("hi") == "hi"
    await rt.start_workflow(parked, workflow_id="parked")
    record(test="runtime", db=str(litewf_db), backend=anyio_backend)
""",
    "sub/conftest.py": """
        import pytest

        @pytest.fixture(params=[("asyncio", {}), ("asyncio", {"debug": True})], ids=["a", "b"])
        def anyio_backend(request):
            return request.param
    """,
    "sub/test_param.py": RECORD
    + """
import pytest

@pytest.mark.anyio
async def test_async_unrelated(anyio_backend):
    record(test="sub-async", backend=anyio_backend)

@pytest.mark.anyio
async def test_runtime(litewf_runtime, anyio_backend):
    rt = await litewf_runtime()
    assert await rt.list_workflows() == []
    record(test="sub-runtime", backend=anyio_backend)
""",
    "pinned/conftest.py": """
        import pytest

        @pytest.fixture
        def anyio_backend():
            return ("asyncio", {"debug": True})
    """,
    "pinned/test_pinned.py": RECORD
    + """
async def test_runtime(litewf_runtime, anyio_backend):
    import litewf

    rt = litewf.Runtime(litewf_runtime.db, executor_id="mine")
    assert await litewf_runtime(rt) is rt
    record(test="pinned-runtime", backend=anyio_backend)
""",
}


def run_pytest(project: Path, record: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run pytest in ``project`` with this checkout of litewf first on the path."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), LITEWF_PLUGIN_RECORD=str(record))
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args],
        check=False,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_plugin_in_a_separate_project(tmp_path: Path) -> None:
    """Fixtures work, teardown waits out no interval, and unrelated tests are unaffected."""
    project, record = tmp_path / "project", tmp_path / "record.jsonl"
    for name, text in PROJECT.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text) if text.startswith("\n        ") else text)
    result = run_pytest(project, record, "--durations=0", "--durations-min=0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 passed" in result.stdout, result.stdout

    seen: dict[str, list[Any]] = {}
    for line in record.read_text().splitlines():
        fields = json.loads(line)
        seen.setdefault(fields.pop("test"), []).append(fields)
    assert seen["sync"] == [{}]
    assert seen["async"] == [{"backend": "asyncio"}]  # anyio's own default fixture
    assert seen["runtime"][0]["backend"] == "asyncio"
    # The user's parametrized backend still runs the unrelated test twice; the litewf
    # test is pinned to plain asyncio; a user's non-parametrized choice is kept as is.
    assert seen["sub-async"] == [
        {"backend": ["asyncio", {}]},
        {"backend": ["asyncio", {"debug": True}]},
    ]
    assert seen["sub-runtime"] == [{"backend": "asyncio"}]
    assert seen["pinned-runtime"] == [{"backend": ["asyncio", {"debug": True}]}]
    assert "sub/test_param.py::test_runtime[asyncio]" in result.stdout
    assert "sub/test_param.py::test_async_unrelated[b]" in result.stdout

    teardown = re.search(r"([\d.]+)s teardown\s+test_plain.py::test_runtime", result.stdout)
    assert teardown is not None, result.stdout
    assert float(teardown.group(1)) < 10.0  # poll and recovery intervals are 30 s
    # Teardown shut the runtime down cleanly: the waiting workflow was released.
    conn = sqlite3.connect(seen["runtime"][0]["db"])
    try:
        rows = conn.execute("SELECT workflow_id, status, executor_id FROM workflows").fetchall()
    finally:
        conn.close()
    by_id = {r[0]: r[1:] for r in rows}
    assert by_id.pop("parked") == ("PENDING", None)
    assert list(by_id.values()) == [("SUCCESS", None)]


def test_the_readme_example_test_file_passes(tmp_path: Path) -> None:
    """examples/test_example_workflows.py, run as a user would: plain pytest, no config."""
    shutil.copy(ROOT / "examples" / "test_example_workflows.py", tmp_path)
    result = run_pytest(tmp_path, tmp_path / "unused.jsonl")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout, result.stdout

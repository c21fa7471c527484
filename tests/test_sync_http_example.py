"""The synchronous web app example (examples/sync_http): a real server process, requests
from several threads at once, a SIGKILL while orders wait for approval, and a restart
that finishes them without running a step (or writing a log line) twice."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests import procs

#: ``python -m examples.sync_http.app`` with Ctrl-C's KeyboardInterrupt restored: a
#: shell starts background jobs (``pytest &``) with SIGINT ignored, and their children
#: inherit that, which made the app deaf to the SIGINT this test ends it with.
APP = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('examples.sync_http.app', run_name='__main__', alter_sys=True)"
)


def start(db: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Serve the app on a free port; return the process and its port."""
    proc = subprocess.Popen(
        [sys.executable, "-c", APP, "--db", str(db), "--port", "0"],
        cwd=procs.ROOT,
        env=dict(os.environ, PYTHONPATH=str(procs.ROOT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline().decode()
    assert line.startswith("serving on http://127.0.0.1:"), line + proc.stderr.read().decode()
    return proc, int(line.rsplit(":", 1)[1])


def call(port: int, method: str, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def state(port: int, order: int) -> Any:
    return call(port, "GET", f"/orders/{order}")[1].get("events", {}).get("state")


def test_orders_survive_a_kill_and_finish_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "orders.db"
    proc, port = start(db)
    try:
        with ThreadPoolExecutor(8) as pool:  # request threads call the runtime at once
            created = list(pool.map(lambda i: call(port, "POST", f"/orders/{i}"), range(8)))
        assert created == [(201, {"workflow_id": f"order-{i}"}) for i in range(8)]
        deadline = time.monotonic() + 30
        while any(state(port, i) != "awaiting approval" for i in range(8)):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert call(port, "POST", "/orders/0/approve") == (202, {"sent": True})
        assert call(port, "GET", "/orders/0?wait=10")[1]["result"] == "shipped"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    proc, port = start(db)  # the others resume where they waited
    try:
        with ThreadPoolExecutor(8) as pool:
            sent = list(pool.map(lambda i: call(port, "POST", f"/orders/{i}/approve"), range(8)))
            assert sent[0] == (202, {"sent": False})  # approved before: idempotent
            assert sent[1:] == [(202, {"sent": True})] * 7
            done = list(pool.map(lambda i: call(port, "GET", f"/orders/{i}?wait=30"), range(8)))
        assert [d[1]["result"] for d in done] == ["shipped"] * 8
        assert [d[1]["status"] for d in done] == ["SUCCESS"] * 8
        status, body = call(port, "GET", "/orders/5/log")
        assert status == 200
        assert body["log"] == [
            "reserved stock-5",
            "approved by web",
            "shipped parcel-5-stock-5",
        ]
        assert call(port, "GET", "/orders/99")[0] == 404
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()  # reaped and its pipes closed, not left to warn in a later test
            proc.communicate()
            raise
    assert proc.returncode == 0, err.decode()

"""The dashboard's web app (``litewf ui``) over HTTP, without a browser: escaping, CSRF,
hosts, filters, paging, the command's address rules and its missing-extra message."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

pytest.importorskip("starlette", reason="the ui extra (starlette) is not installed")
import httpx

import litewf
from litewf import _cli_ui as cli_ui
from litewf._ui import create_app
from tests.conditions import wait_until
from tests.ui_demo import HOSTILE, fill


@contextlib.asynccontextmanager
async def served(db: Path, host: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(db, host=host)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}:8765") as http:
            yield http


@pytest.fixture
async def demo_db(db_path: Path) -> Path:
    await fill(db_path)
    return db_path


def _csrf(page: str) -> str:
    found = re.search(r'name=csrf value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


async def test_hostile_stored_values_are_escaped_everywhere(demo_db: Path) -> None:
    async with served(demo_db) as http:
        pages = [
            (await http.get("/")).text,
            (await http.get("/workflow", params={"id": "waiter-1"})).text,
            (await http.get("/workflow", params={"id": HOSTILE})).text,
            (await http.get("/", params={"prefix": HOSTILE})).text,
            (await http.get("/", params={"since": HOSTILE})).text,  # in the error message too
        ]
    for text in pages:
        assert "<script>window" not in text and "<img src=x" not in text
        assert 'onerror="window' not in text
    # The values are there, escaped: inputs, event, queued message, the ID itself.
    waiter = pages[1]
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in waiter
    assert waiter.count("&lt;img src=x onerror=") >= 3  # inputs, event "note", message
    assert "&lt;script&gt;" in pages[2] and "&lt;script&gt;" in pages[3]


async def test_the_page_forbids_inline_scripts(demo_db: Path) -> None:
    async with served(demo_db) as http:
        got = await http.get("/")
    assert "script-src 'self'" in got.headers["content-security-policy"]
    assert "<script>" not in got.text and got.headers["x-content-type-options"] == "nosniff"


async def test_a_workflow_page_shows_its_parts(demo_db: Path) -> None:
    async with served(demo_db) as http:
        page = (await http.get("/workflow", params={"id": "order-1"})).text
        child = (await http.get("/workflow", params={"id": "order-1-5"})).text
        failed = (await http.get("/workflow", params={"id": "order-bad"})).text
        missing = await http.get("/workflow", params={"id": "nope"})
    for part in ("Inputs", "Output or error", "Steps", "Events", "Queued messages", "Streams"):
        assert f"<h2>{part}</h2>" in page
    assert "demo.charge" in page and "&quot;charged 105&quot;" in page  # a step, the stream
    assert re.search(r"<td>\d+ ms</td>", page)  # durations
    assert 'href="/workflow?id=order-1-5"' in page  # its child
    assert 'href="/workflow?id=order-1"' in child  # its parent
    assert "ValueError: cannot charge -1 cents" in failed
    assert "/workflow/resume" in failed and "/workflow/cancel" not in failed
    assert missing.status_code == 404


async def test_filters_and_paging(demo_db: Path) -> None:
    async with served(demo_db) as http:

        async def ids(**params: str) -> list[str]:
            got = await http.get("/", params={"partial": "1", **params})
            assert got.status_code == 200, got.text
            return re.findall(r'<a href="/workflow\?id=([^"]+)">', got.text)

        assert await ids(status="ERROR") == ["order-bad"]
        assert await ids(status="PENDING") == ["streamer-1", "waiter-1"]
        assert await ids(prefix="order-1") == ["order-1-5", "order-1"]
        assert await ids(name="demo.ship", queue="") == ["order-2-5", "order-1-5", "order-0-5"]
        assert await ids(since="2999-01-01T00:00") == []
        assert len(await ids(until="2999-01-01T00:00")) == 10
        first = await ids(size="20")
        assert len(first) == 10
        # Pages of 20 are the smallest offered; page 2 of the 10 is empty.
        assert await ids(size="20", page="2") == []
        bad = await http.get("/", params={"since": "yesterday"})
        assert bad.status_code == 400 and "since is not a date and time" in bad.text
        bad = await http.get("/", params={"status": "DONE"})
        assert bad.status_code == 400 and "status must be one of" in bad.text


async def test_paging_links_keep_the_filters(db_path: Path) -> None:
    db = db_path
    rt = litewf.Runtime(db)

    @rt.workflow(name="w")
    async def w(n: int) -> int:
        return n

    async with rt:
        for i in range(45):
            await (await rt.start_workflow(w, i, workflow_id=f"w-{i:02}")).get_result()
    async with served(db) as http:
        one = (await http.get("/", params={"prefix": "w-", "size": "20"})).text
        assert 'rel=next href="/?prefix=w-&amp;page=2&amp;size=20"' in one
        assert "rel=prev" not in one
        three = (await http.get("/", params={"prefix": "w-", "size": "20", "page": "3"})).text
        assert re.findall(r"id=(w-\d+)", three) == [f"w-{i:02}" for i in range(4, -1, -1)]
        assert "rel=next" not in three and "rel=prev" in three


async def test_a_post_without_the_csrf_token_is_refused(demo_db: Path) -> None:
    async with served(demo_db) as http:
        page = (await http.get("/workflow", params={"id": "waiter-1"})).text
        token = _csrf(page)
        for form in ({"id": "waiter-1"}, {"id": "waiter-1", "csrf": "guess"}):
            got = await http.post("/workflow/cancel", data=form)
            assert got.status_code == 403 and "CSRF" in got.text
        # The right token from another site's page: refused too.
        got = await http.post(
            "/workflow/cancel",
            data={"id": "waiter-1", "csrf": token},
            headers={"Origin": "https://evil.example"},
        )
        assert got.status_code == 403
        async with litewf.Client(demo_db) as client:
            status = await (await client.retrieve_workflow("waiter-1")).get_status()
        assert status.status is litewf.Status.PENDING
        # With the token, from this origin: cancelled, then resumed, then forked.
        origin = {"Origin": "http://127.0.0.1:8765"}
        got = await http.post(
            "/workflow/cancel", data={"id": "waiter-1", "csrf": token}, headers=origin
        )
        assert got.status_code == 303 and got.headers["location"] == "/workflow?id=waiter-1"
        got = await http.post(
            "/workflow/fork",
            data={"id": "order-1", "csrf": token, "from_step": "2", "new_id": "order-1-again"},
        )
        assert got.headers["location"] == "/workflow?id=order-1-again"
        bad = await http.post(
            "/workflow/fork", data={"id": "order-1", "csrf": token, "from_step": "-1"}
        )
        assert bad.status_code == 400 and "whole number" in bad.text
    async with litewf.Client(demo_db) as client:
        status = await (await client.retrieve_workflow("waiter-1")).get_status()
        assert status.status is litewf.Status.CANCELLED
        fork = await (await client.retrieve_workflow("order-1-again")).get_status()
        assert fork.status is litewf.Status.PENDING  # waits for a runtime that has it


async def test_another_host_name_is_refused(demo_db: Path) -> None:
    async with served(demo_db) as http:
        got = await http.get("/", headers={"Host": "attacker.example:8765"})
        assert got.status_code == 400
        assert (await http.get("/", headers={"Host": "localhost:8765"})).status_code == 200


def test_the_command_listens_on_loopback_unless_told() -> None:
    assert cli_ui.DEFAULT_HOST == "127.0.0.1"
    assert cli_ui.is_loopback("127.0.0.1") and cli_ui.is_loopback("::1")
    assert cli_ui.is_loopback("localhost")
    assert not cli_ui.is_loopback("0.0.0.0") and not cli_ui.is_loopback("192.168.1.5")


def _ui(db: Path, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    code = "import sys; from litewf._cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, "ui", "--db", str(db), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_another_host_warns_loudly_and_a_missing_db_is_one_line(db_path: Path) -> None:
    got = _ui(db_path, "--host", "0.0.0.0", "--port", "1")  # db_path: not created yet
    assert got.returncode == 1
    assert "WARNING: listening on 0.0.0.0" in got.stderr and "no login" in got.stderr
    assert "litewf: error:" in got.stderr and "Traceback" not in got.stderr
    assert got.stderr.count("\n") == 2, got.stderr  # the warning, then the error
    quiet = _ui(db_path)
    assert "WARNING" not in quiet.stderr and quiet.returncode == 1
    assert quiet.stderr.startswith("litewf: error:") and quiet.stderr.count("\n") == 1


async def test_the_command_serves_the_database(demo_db: Path) -> None:
    """``litewf ui --db DB`` (a file or a PostgreSQL URL), a real process on a real port:
    the list page shows the stored workflows."""
    await anyio.to_thread.run_sync(_serve_and_get, demo_db)


def _serve_and_get(demo_db: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "litewf", "ui", "--db", str(demo_db), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()  # printed once the database opened
        assert f"litewf ui: {demo_db} on http://127.0.0.1:{port}/" in banner, banner
        deadline = time.monotonic() + 20
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
                break
            except httpx.ConnectError:  # uvicorn is not listening yet
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.02)
        assert "waiter-1" in page and "order-1" in page
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "Traceback" not in err, err


def test_without_the_extra_the_command_names_it(tmp_path: Path) -> None:
    # starlette made unimportable in a child process: the message names the extra.
    code = (
        "import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None; "
        "from litewf._cli import main; sys.exit(main(sys.argv[1:]))"
    )
    got = subprocess.run(
        [sys.executable, "-c", code, "ui", "--db", str(tmp_path / "x.db")],
        check=False,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert got.returncode == 1
    assert "pip install 'litewf[ui]'" in got.stderr and "Traceback" not in got.stderr


async def test_the_event_stream_names_what_changed(demo_db: Path) -> None:
    # Served by uvicorn for real (the event stream never ends; a transport that buffers
    # whole responses cannot show it).
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = uvicorn.Config(create_app(demo_db), port=port, log_level="warning")
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            await wait_until(lambda: server.started)
            with anyio.fail_after(20):
                async with http.stream("GET", "/events") as events:
                    assert events.headers["content-type"].startswith("text/event-stream")
                    lines = events.aiter_lines()
                    assert await anext(lines) == "retry: 2000"
                    async with litewf.Client(demo_db) as client:  # another connection
                        await client.send("waiter-1", "hello", topic="later")
                    data = ""
                    while not data.startswith("data: "):
                        data = await anext(lines)
        server.should_exit = True
    assert "waiter-1" in json.loads(data.removeprefix("data: "))["ids"]

"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` package)
driven by Playwright, against ``litewf ui`` served by uvicorn in a child process, while a
runtime in this process runs the workflows it shows.

Skipped, with the reason, when the browser or the Python packages are missing (install:
``apt-get install -y chromium`` and ``pip install -e '.[dev]'``). Set
``LITEWF_SCREENSHOT=docs/dashboard.png`` to refresh the README's screenshot.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"no browser: {CHROMIUM} (apt-get install -y chromium)"
)
playwright_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
pytest.importorskip("starlette", reason="the ui extra is not installed")
import httpx

import litewf
from tests.ui_demo import demo_runtime, fill

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _ui_process(db: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    code = "import sys; from litewf._cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "ui", "--db", str(db), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)  # (closes its pipes)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


async def _until_serving(base: str, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as http:
        with anyio.fail_after(20):
            while True:
                if proc.poll() is not None:
                    raise AssertionError(proc.stderr.read().decode() if proc.stderr else "")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(base + "/")).status_code == 200:
                        return
                await anyio.sleep(0.05)


@contextlib.asynccontextmanager
async def _browser() -> AsyncIterator[object]:
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def test_the_dashboard_in_a_browser(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    await fill(db)
    demo = demo_runtime(db)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    async with demo.rt, _browser() as browser:
        with _ui_process(db, port) as proc:
            await _until_serving(base, proc)
            page = await browser.new_page(viewport={"width": 1360, "height": 900})  # type: ignore[attr-defined]
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            # The list: every workflow, the hostile ID shown as text, no script run.
            await page.goto(base + "/")
            assert await page.locator("#live tbody tr").count() == 10
            assert await page.evaluate("window.__pwned") is None

            # Filter by status, then by ID prefix (the form's GET).
            await page.select_option("select[name=status]", "ERROR")
            await page.click("button[type=submit]")
            await page.wait_for_url("**/?status=ERROR**")
            assert await page.locator("#live tbody tr").all_inner_texts() != []
            assert await page.locator("#live tbody tr a").all_inner_texts() == ["order-bad"]
            await page.select_option("select[name=status]", "")
            await page.fill("input[name=prefix]", "order-1")
            await page.click("button[type=submit]")
            await page.wait_for_url("**prefix=order-1**")
            assert await page.locator("#live tbody tr a").all_inner_texts() == [
                "order-1-5",
                "order-1",
            ]

            # Open a workflow: its timeline with durations, its child, its stream.
            await page.click("text=order-1 >> nth=-1")
            await page.wait_for_url("**/workflow?id=order-1")
            assert await page.inner_text("h1") == "order-1"
            steps = page.locator("section:has(h2:text('Steps')) tbody tr")
            assert await steps.count() == 7
            assert "ms" in await steps.nth(2).inner_text()
            if os.environ.get("LITEWF_SCREENSHOT"):
                await page.screenshot(path=os.environ["LITEWF_SCREENSHOT"], full_page=True)
            shot = tmp_path / "dashboard.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

            # A stream grows on the page, without a reload.
            await page.goto(base + "/workflow?id=streamer-1")
            await page.wait_for_selector("#live-state:text('live')")
            await page.evaluate("window.__same = 1")
            await demo.rt.send("streamer-1", "tick-A", topic="tick")
            await page.wait_for_selector(".stream[data-key=ticks] >> text=tick-A")
            await demo.rt.send("streamer-1", "tick-B", topic="tick")
            await page.wait_for_selector(".stream[data-key=ticks] >> text=tick-B")
            assert await page.evaluate("window.__same") == 1

            # The list shows a workflow started meanwhile, without a reload.
            await page.goto(base + "/?status=PENDING")
            await page.wait_for_selector("#live-state:text('live')")
            await page.evaluate("window.__same = 2")
            await demo.rt.start_workflow(demo.waiter, "late", workflow_id="late-1")
            await page.wait_for_selector("#live tbody a:text('late-1')")
            await demo.rt.send("late-1", "go", topic="go")
            await page.wait_for_selector("#live tbody a:text('late-1')", state="detached")
            assert await page.evaluate("window.__same") == 2  # no reload

            # Cancel a waiting workflow with its button.
            await page.goto(base + "/workflow?id=waiter-1")
            await page.click("button:text('Cancel')")
            await page.wait_for_selector(".summary .status:text('CANCELLED')")
            status = await (await demo.rt.retrieve_workflow("waiter-1")).get_status()
            assert status.status is litewf.Status.CANCELLED
            assert await page.evaluate("window.__pwned") is None
            assert errors == []
            await demo.rt.send("streamer-1", "stop", topic="tick")


def test_chromium_is_the_debian_package() -> None:
    assert shutil.which("chromium") == CHROMIUM or os.path.exists(CHROMIUM)

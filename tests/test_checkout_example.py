"""End to end: the checkout example's shop (ASGI) and its fake provider (another process).

The shop is served over real HTTP on 127.0.0.1 by a minimal HTTP/1.1-to-ASGI bridge below
(no server dependency), so the provider process can POST its webhooks to it; the test talks
to both over HTTP with http.client, from worker threads, and reads the shop's database.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import anyio
import anyio.abc
import anyio.to_thread

from examples.checkout.payment import Config, workflow_id
from examples.checkout.shop import Shop

PROVIDER = Path(__file__).resolve().parent.parent / "examples" / "checkout" / "provider.py"


def request(url: str, method: str = "GET", form: dict[str, str] | None = None) -> Any:
    """(status, Location header, decoded JSON body); redirects are not followed."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        body = None if form is None else urlencode(form)
        headers = {} if form is None else {"Content-Type": "application/x-www-form-urlencoded"}
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body, headers)
        response = conn.getresponse()
        return response.status, response.getheader("Location"), json.loads(response.read())
    finally:
        conn.close()


async def call(url: str, method: str = "GET", form: dict[str, str] | None = None) -> Any:
    return await anyio.to_thread.run_sync(partial(request, url, method, form))


def bridge(app: Shop) -> Callable[[anyio.abc.SocketStream], Awaitable[None]]:
    """A connection handler serving one HTTP/1.1 request per connection with ``app``."""

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            head, _, body = data.partition(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ")
            headers = [line.split(":", 1) for line in lines]
            length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
            while len(body) < length:
                body += await stream.receive()
            path, _, query = target.partition("?")
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": method,
                "path": path,
                "query_string": query.encode(),
                "headers": [(k.strip().lower().encode(), v.strip().encode()) for k, v in headers],
            }
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            await app(scope, receive, send)
            out = [f"HTTP/1.1 {sent[0]['status']} -"]
            out += [f"{k.decode()}: {v.decode()}" for k, v in sent[0]["headers"]]
            out += ["connection: close", "", ""]
            payload = b"".join(m.get("body", b"") for m in sent[1:])
            await stream.send("\r\n".join(out).encode("latin-1") + payload)

    return handle


@dataclass
class Env:
    shop: str  # base URL
    provider: str  # base URL
    app: Shop
    cfg: Config

    def shipments(self, order_id: str) -> int:
        """How many times the fulfil step handed this order to the warehouse."""
        path = Path(self.cfg.shipments_path)
        lines = path.read_text().splitlines() if path.exists() else []
        return sum(json.loads(line)["order_id"] == order_id for line in lines)

    def count(self, sql: str, *params: str) -> int:
        """A count over the shop's litewf database (read with sqlite3, no litewf code)."""
        with contextlib.closing(sqlite3.connect(self.cfg.db_path)) as db:
            return int(db.execute(sql, params).fetchone()[0])

    def ops(self, name: str, order_id: str) -> int:
        """How many operations named ``name`` the order's workflow recorded."""
        sql = "SELECT count(*) FROM operations WHERE workflow_id = ? AND name = ?"
        return self.count(sql, workflow_id(order_id), name)

    def queued(self, order_id: str) -> int:
        """Messages still waiting in the order's workflow queues."""
        sql = "SELECT count(*) FROM messages WHERE destination_id = ?"
        return self.count(sql, workflow_id(order_id))

    async def result(self, order_id: str) -> str:
        handle = await self.app.rt.retrieve_workflow(workflow_id(order_id))
        result: str = await handle.get_result(timeout=30)
        return result


def start_provider(tmp_path: Path, webhook_url: str) -> subprocess.Popen[bytes]:
    """The fake provider in its own process, on a free port, posting webhooks to the shop."""
    with open(tmp_path / "provider.err", "wb") as err:
        return subprocess.Popen(
            [sys.executable, str(PROVIDER), "--port", "0", "--webhook", webhook_url],
            stdout=subprocess.PIPE,
            stderr=err,
        )


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, payment_timeout: float, url_timeout: float = 10
) -> AsyncIterator[Env]:
    """The provider process and the shop (lifespan run as a server would), both on 127.0.0.1."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    provider = start_provider(tmp_path, f"http://127.0.0.1:{port}/payment_webhook")
    try:
        assert provider.stdout is not None
        with anyio.fail_after(30):  # its first line is its URL
            line = await anyio.to_thread.run_sync(provider.stdout.readline, abandon_on_cancel=True)
        provider_url = line.decode().strip()
        assert provider_url.startswith("http://127.0.0.1:"), (tmp_path / "provider.err").read_text()
        cfg = Config(
            db_path=str(tmp_path / "shop.db"),
            provider_url=provider_url,
            shipments_path=str(tmp_path / "shipments.jsonl"),
            payment_timeout=payment_timeout,
            url_timeout=url_timeout,
        )
        app = Shop(cfg)
        to_app, app_inbox = anyio.create_memory_object_stream[dict[str, Any]](1)
        app_outbox, from_app = anyio.create_memory_object_stream[dict[str, Any]](1)
        async with (
            listener,
            to_app,
            app_inbox,
            app_outbox,
            from_app,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(
                app,
                {"type": "lifespan", "asgi": {"version": "3.0"}},
                app_inbox.receive,
                app_outbox.send,
            )
            await to_app.send({"type": "lifespan.startup"})
            assert (await from_app.receive())["type"] == "lifespan.startup.complete"
            tg.start_soon(listener.serve, bridge(app))
            try:
                yield Env(f"http://127.0.0.1:{port}", provider_url, app, cfg)
            finally:
                await to_app.send({"type": "lifespan.shutdown"})
                assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"
                tg.cancel_scope.cancel()
    finally:
        provider.terminate()
        provider.wait(timeout=10)
        assert provider.stdout is not None
        provider.stdout.close()


async def test_paid_checkout_delivers_a_twice_sent_webhook_once(tmp_path: Path) -> None:
    """303 to the pay URL; the provider POSTs the webhook twice and both are accepted, yet
    the workflow consumes one message, none is left queued, and the order ships once."""
    async with running(tmp_path, payment_timeout=30) as env:
        status, location, _ = await call(
            f"{env.shop}/checkout", "POST", {"order_id": "o-1", "item": "mug", "qty": "2"}
        )
        assert status == 303
        assert location.startswith(f"{env.provider}/pay/cs_")
        _, _, session = await call(f"{env.provider}/sessions/{location.rsplit('/', 1)[1]}")
        assert (session["order_id"], session["amount"], session["status"]) == ("o-1", 2400, "open")

        status, _, paid = await call(f"{location}?webhooks=2", "POST")
        assert (status, paid) == (200, {"status": "paid", "webhook_statuses": [200, 200]})
        assert await env.result("o-1") == "paid"

        assert env.ops("recv", "o-1") == 1
        assert env.queued("o-1") == 0
        assert env.ops("fulfil", "o-1") == 1
        assert env.shipments("o-1") == 1
        status, _, page = await call(f"{env.shop}/orders/o-1")
        assert (status, page["status"], page["result"]) == (200, "SUCCESS", "paid")
        assert page["events"] == {"payment_url": location}


async def test_retried_checkout_does_not_start_a_second_payment(tmp_path: Path) -> None:
    """Two concurrent POSTs and a later retry for one order: one workflow, one provider
    session, the same redirect each time."""
    form = {"order_id": "o-7", "item": "poster", "qty": "1"}
    async with running(tmp_path, payment_timeout=30) as env:
        replies: list[Any] = []

        async def post() -> None:
            replies.append(await call(f"{env.shop}/checkout", "POST", form))

        async with anyio.create_task_group() as tg:
            tg.start_soon(post)
            tg.start_soon(post)
        await post()  # a retry after both answered
        assert [status for status, _, _ in replies] == [303, 303, 303]
        assert len({location for _, location, _ in replies}) == 1

        workflows = await env.app.rt.list_workflows(name="checkout")
        assert [w.workflow_id for w in workflows] == ["order-o-7"]
        assert env.ops("create_session", "o-7") == 1
        _, _, sessions = await call(f"{env.provider}/sessions")
        assert [s["order_id"] for s in sessions] == ["o-7"]


async def test_unpaid_checkout_asks_the_provider_and_expires(tmp_path: Path) -> None:
    """No webhook within the timeout: the close_session step asks the provider, which
    expires the session; the workflow ends 'expired', nothing ships, and a late payment
    is refused by the provider."""
    async with running(tmp_path, payment_timeout=1) as env:
        status, location, _ = await call(
            f"{env.shop}/checkout", "POST", {"order_id": "o-2", "item": "mug", "qty": "1"}
        )
        assert status == 303
        assert await env.result("o-2") == "expired"
        assert env.ops("close_session", "o-2") == 1
        _, _, session = await call(f"{env.provider}/sessions/{location.rsplit('/', 1)[1]}")
        assert session["status"] == "expired"
        status, _, late = await call(location, "POST")
        assert (status, late) == (409, {"error": "session is expired"})
        assert env.ops("fulfil", "o-2") == 0
        assert env.shipments("o-2") == 0


async def test_lost_webhook_is_made_up_for_by_asking_the_provider(tmp_path: Path) -> None:
    """Paid, but no webhook arrives: after the timeout the workflow learns 'paid' from the
    provider and ships the order once."""
    async with running(tmp_path, payment_timeout=2) as env:
        _, location, _ = await call(
            f"{env.shop}/checkout", "POST", {"order_id": "o-3", "item": "tshirt", "qty": "1"}
        )
        status, _, paid = await call(f"{location}?webhooks=0", "POST")
        assert (status, paid) == (200, {"status": "paid", "webhook_statuses": []})
        assert await env.result("o-3") == "paid"
        assert (env.ops("recv", "o-3"), env.ops("close_session", "o-3")) == (1, 1)
        assert env.shipments("o-3") == 1


async def test_rejected_order_redirects_to_the_cancel_page(tmp_path: Path) -> None:
    """An order the validate step refuses publishes no pay URL: POST /checkout redirects
    to the cancel page after its wait, the workflow ends 'failed', no session is opened."""
    async with running(tmp_path, payment_timeout=30, url_timeout=0.5) as env:
        form = {"order_id": "o-4", "item": "mug", "qty": "50"}
        status, location, _ = await call(f"{env.shop}/checkout", "POST", form)
        assert (status, location) == (303, "/orders/o-4/cancelled")
        assert await env.result("o-4") == "failed"
        _, _, sessions = await call(f"{env.provider}/sessions")
        assert sessions == []
        status, _, page = await call(f"{env.shop}/orders/o-4")
        assert (status, page["result"], page["events"]) == (200, "failed", {})

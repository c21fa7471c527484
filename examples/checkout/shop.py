"""The shop: a pure ASGI app (no framework) around the checkout workflow.

Run from the repository root (settings come from SHOP_DB, PROVIDER_URL, SHIPMENTS and
PAYMENT_TIMEOUT): ``uvicorn examples.checkout.shop:app --port 8000``

- ``POST /checkout`` (form: order_id, item, qty) starts the order's workflow, waits for its
  pay URL and redirects there (303), or to the cancel page if no URL comes in time.
- ``POST /payment_webhook`` forwards the provider's notification to the workflow.
- ``GET /orders/{order_id}`` shows the workflow's status and result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import litewf

from .payment import Config, build, workflow_id

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Response:
    status: int
    body: Any  # sent as JSON
    location: str | None = None


class Shop:
    """The ASGI application: ``lifespan`` runs the litewf runtime, ``http`` serves requests."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.rt, self.checkout = build(cfg)

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        assert scope["type"] == "http", scope["type"]
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        response = await self.route(scope["method"], scope["path"], body)
        payload = json.dumps(response.body).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
        ]
        if response.location is not None:
            headers.append((b"location", response.location.encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Launch the runtime at startup and shut it down at exit (one task, as litewf needs):
        workflows left unfinished resume at the next start."""
        await receive()  # lifespan.startup
        try:
            await self.rt.launch()
        except Exception as exc:  # noqa: BLE001 - reported to the server, which exits
            await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await self.rt.shutdown()
        await send({"type": "lifespan.shutdown.complete"})

    async def route(self, method: str, path: str, body: bytes) -> Response:
        match method, path.strip("/").split("/"):
            case "POST", ["checkout"]:
                return await self.start_checkout(body)
            case "POST", ["payment_webhook"]:
                return await self.payment_webhook(body)
            case "GET", ["orders", order_id]:
                return await self.order(order_id)
            case "GET", ["orders", order_id, "cancelled"]:
                return Response(200, {"order_id": order_id, "message": "payment not started"})
        return Response(404, {"error": f"no route for {method} {path}"})

    async def start_checkout(self, body: bytes) -> Response:
        form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
        order_id, item, qty = form.get("order_id", ""), form.get("item", ""), form.get("qty", "1")
        if not ORDER_ID.fullmatch(order_id) or not item or not qty.isdigit():
            return Response(400, {"error": "need order_id ([A-Za-z0-9_-]), item and qty"})
        # The workflow ID is derived from the order ID: a retried POST (a double click, a
        # browser retry) gets a handle to the same run and the same pay URL.
        handle = await self.rt.start_workflow(
            self.checkout, order_id, item, int(qty), workflow_id=workflow_id(order_id)
        )
        url = await self.rt.get_event(handle.workflow_id, "payment_url", self.cfg.url_timeout)
        return Response(303, {"location": url}, url or f"/orders/{order_id}/cancelled")

    async def payment_webhook(self, body: bytes) -> Response:
        # A real provider signs its webhooks: verify the signature before trusting the body.
        try:
            event = json.loads(body)
            event_id, order_id, status = event["id"], event["order_id"], event["status"]
        except (ValueError, TypeError, KeyError):
            return Response(400, {"error": "expected JSON with id, order_id and status"})
        note = {"session_id": event.get("session_id"), "status": status}
        try:
            # The provider's event ID as idempotency key: a webhook delivered twice is
            # enqueued once, even if the workflow already consumed the first copy.
            await self.rt.send(
                workflow_id(str(order_id)),
                note,
                topic="checkout_complete",
                idempotency_key=event_id,
            )
        except litewf.WorkflowNotFoundError:
            return Response(404, {"error": f"no checkout for order {order_id!r}"})
        except litewf.InvalidValueError as exc:
            return Response(400, {"error": str(exc)})
        return Response(200, {"received": event_id})

    async def order(self, order_id: str) -> Response:
        try:
            handle = await self.rt.retrieve_workflow(workflow_id(order_id))
        except litewf.WorkflowNotFoundError:
            return Response(404, {"error": f"no order {order_id!r}"})
        status = await handle.get_status()
        done = status.status == litewf.Status.SUCCESS
        page: dict[str, Any] = {"order_id": order_id, "workflow_id": status.workflow_id}
        page["status"] = status.status.value
        page["result"] = await handle.get_result() if done else None
        page["error"] = status.error_message
        page["events"] = await self.rt.get_all_events(status.workflow_id)
        return Response(200, page)


app = Shop(Config.from_env())

"""Orders approved by a human, as a plain threaded HTTP server on ``litewf.SyncRuntime``.

Routes (JSON): ``POST /orders/<id>`` starts the order's workflow; ``POST
/orders/<id>/approve`` sends it the approval; ``GET /orders/<id>[?wait=seconds]`` its
status and events (with ``wait``: after waiting for its result); ``GET /orders/<id>/log``
its progress stream. See README.md.
"""

from __future__ import annotations

import argparse
import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import litewf

APPROVAL_WINDOW_S = 24 * 3600.0


def build(srt: litewf.SyncRuntime) -> litewf.SyncWorkflow[[str], str]:
    """Register the order workflow and its steps on ``srt``."""

    @srt.step(name="orders.reserve")
    def reserve(order_id: str) -> str:
        return f"stock-{order_id}"

    @srt.step(name="orders.ship")
    def ship(order_id: str, reservation: str) -> str:
        return f"parcel-{order_id}-{reservation}"

    @srt.workflow(name="orders.order")
    def order(order_id: str) -> str:
        reservation = reserve(order_id)
        srt.write_stream("log", f"reserved {reservation}")
        srt.set_event("state", "awaiting approval")
        first = srt.wait_first(approved=srt.message("approve"), timeout=APPROVAL_WINDOW_S)
        if first is None:
            srt.write_stream("log", "not approved in time")
            srt.close_stream("log")
            return "expired"
        srt.write_stream("log", f"approved by {first.value['by']}")
        parcel = ship(order_id, reservation)
        srt.write_stream("log", f"shipped {parcel}")
        srt.close_stream("log")
        return "shipped"

    return order


def workflow_id(order_id: str) -> str:
    return f"order-{order_id}"


def make_server(
    srt: litewf.SyncRuntime, order: litewf.SyncWorkflow[[str], str], address: tuple[str, int]
) -> ThreadingHTTPServer:
    """A threaded HTTP server whose request threads call the (launched) ``srt``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            parts = urlsplit(self.path).path.strip("/").split("/")
            if len(parts) == 2 and parts[0] == "orders":
                h = srt.start_workflow(order, parts[1], workflow_id=workflow_id(parts[1]))
                self.reply(HTTPStatus.CREATED, {"workflow_id": h.workflow_id})
            elif len(parts) == 3 and parts[0] == "orders" and parts[2] == "approve":
                wid = workflow_id(parts[1])
                # One approval per order, however often the button is pressed.
                sent = srt.send(wid, {"by": "web"}, "approve", idempotency_key="approve")
                self.reply(HTTPStatus.ACCEPTED, {"sent": sent})
            else:
                self.reply(HTTPStatus.NOT_FOUND, {"error": "no such route"})

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if len(parts) < 2 or parts[0] != "orders":
                self.reply(HTTPStatus.NOT_FOUND, {"error": "no such route"})
                return
            try:
                h = srt.retrieve_workflow(workflow_id(parts[1]))
            except litewf.WorkflowNotFoundError:
                self.reply(HTTPStatus.NOT_FOUND, {"error": "no such order"})
                return
            if parts[2:] == ["log"]:
                self.reply(HTTPStatus.OK, {"log": list(srt.read_stream(h.workflow_id, "log"))})
                return
            wait = parse_qs(url.query).get("wait")
            body: dict[str, Any] = {}
            if wait:
                try:
                    body["result"] = h.get_result(timeout=float(wait[0]))
                except TimeoutError:
                    body["result"] = None
            body["status"] = h.get_status().status.value
            body["events"] = srt.get_all_events(h.workflow_id)
            self.reply(HTTPStatus.OK, body)

        def reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

    return ThreadingHTTPServer(address, Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="orders.db")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    srt = litewf.SyncRuntime(args.db)
    order = build(srt)
    with srt, make_server(srt, order, ("127.0.0.1", args.port)) as server:
        print(f"serving on http://127.0.0.1:{server.server_address[1]}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

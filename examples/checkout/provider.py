"""A fake payment provider: checkout sessions, a pay page and webhooks to the shop.

Run it as its own process (port 0 picks a free port; the first line printed is its URL):

    python examples/checkout/provider.py --port 8001 \
        --webhook http://127.0.0.1:8000/payment_webhook

API (JSON): ``POST /sessions`` {order_id, amount} with an ``Idempotency-Key`` header ->
the session and its pay URL; ``GET /sessions`` and ``GET /sessions/{id}`` -> state;
``POST /sessions/{id}/expire`` -> closes an open session and returns its final state;
``POST /pay/{id}?webhooks=2&outcome=paid|failed`` -> settles the session and POSTs the
webhook that many times (same event id each time, as a provider retrying would).
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Session:
    id: str
    order_id: str
    amount: int
    url: str
    status: str = "open"  # open -> paid | failed | expired


class Provider:
    """The provider's state; every change happens under one lock."""

    def __init__(self, webhook_url: str) -> None:
        self.base_url = ""  # known once the server is bound
        self.webhook_url = webhook_url
        self.sessions: dict[str, Session] = {}
        self.by_key: dict[str, Session] = {}
        self.lock = threading.Lock()
        self.ids = itertools.count(1)

    def create(self, key: str, order_id: str, amount: int) -> Session:
        with self.lock:  # a repeated idempotency key returns the first session
            if key not in self.by_key:
                sid = f"cs_{next(self.ids)}"
                session = Session(sid, order_id, amount, f"{self.base_url}/pay/{sid}")
                self.sessions[sid] = self.by_key[key] = session
            return self.by_key[key]

    def settle(self, sid: str, status: str) -> bool:
        """Move an open session to ``status``; False if it was not open any more."""
        with self.lock:
            if self.sessions[sid].status != "open":
                return False
            self.sessions[sid].status = status
            return True

    def notify(self, session: Session, copies: int) -> list[int]:
        """POST the webhook ``copies`` times; the HTTP status of each delivery."""
        event = {
            "id": f"evt_{session.id}_{session.status}",  # the same for every copy
            "type": "checkout.session.completed",
            "session_id": session.id,
            "order_id": session.order_id,
            "status": session.status,
        }
        statuses = []
        for _ in range(copies):
            request = urllib.request.Request(
                self.webhook_url, json.dumps(event).encode(), {"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
            except OSError:  # shop down: a real provider would retry later
                statuses.append(0)
        return statuses


class Handler(BaseHTTPRequestHandler):
    provider: Provider  # set on the subclass made in main()

    def do_GET(self) -> None:
        parts = urlsplit(self.path).path.strip("/").split("/")
        sessions = self.provider.sessions
        if parts == ["sessions"]:
            self.reply(200, [asdict(s) for s in sessions.values()])
        elif len(parts) == 2 and parts[0] == "sessions" and parts[1] in sessions:
            self.reply(200, asdict(sessions[parts[1]]))
        elif len(parts) == 2 and parts[0] == "pay" and parts[1] in sessions:
            page = f'<form method="post"><button>Pay order {sessions[parts[1]].order_id}</button>'
            self.reply(200, page.encode(), "text/html")
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        parts, query = url.path.strip("/").split("/"), parse_qs(url.query)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        sessions = self.provider.sessions
        if parts == ["sessions"]:
            order = json.loads(body)
            key = self.headers.get("Idempotency-Key") or order["order_id"]
            session = self.provider.create(key, order["order_id"], int(order["amount"]))
            self.reply(200, asdict(session))
        elif parts[0] == "sessions" and parts[2:] == ["expire"] and parts[1] in sessions:
            self.provider.settle(parts[1], "expired")  # a paid session stays paid
            self.reply(200, asdict(sessions[parts[1]]))
        elif len(parts) == 2 and parts[0] == "pay" and parts[1] in sessions:
            outcome = "failed" if query.get("outcome") == ["failed"] else "paid"
            if not self.provider.settle(parts[1], outcome):
                self.reply(409, {"error": f"session is {sessions[parts[1]].status}"})
                return
            copies = int(query.get("webhooks", ["1"])[0])
            statuses = self.provider.notify(sessions[parts[1]], copies)
            self.reply(200, {"status": outcome, "webhook_statuses": statuses})
        else:
            self.reply(404, {"error": "not found"})

    def reply(self, status: int, data: Any, content_type: str = "application/json") -> None:
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet; the JSON replies say what happened


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--webhook", default="http://127.0.0.1:8000/payment_webhook")
    args = parser.parse_args()
    provider = Provider(args.webhook)
    handler = type("BoundHandler", (Handler,), {"provider": provider})
    with ThreadingHTTPServer(("127.0.0.1", args.port), handler) as server:
        provider.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        print(provider.base_url, flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()

"""The checkout workflow: validate, open a payment session, wait for the webhook, fulfil.

Every call to the outside world is a step, so after a crash the workflow replays what it
recorded instead of asking again. Step bodies may still run twice (a crash after the call,
before its record), so each one is safe to repeat: the provider dedups session creation by
idempotency key, and the warehouse would dedup shipments by order ID.
"""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass
from typing import Any

import litewf

#: What the shop sells, in cents. Prices can change, which is why validation is a step.
PRICES = {"mug": 1200, "poster": 800, "tshirt": 2500}


@dataclass(frozen=True)
class Config:
    db_path: str = "shop.db"
    provider_url: str = "http://127.0.0.1:8001"
    shipments_path: str = "shipments.jsonl"  # the warehouse's inbox, one JSON line per order
    payment_timeout: float = 300.0  # how long the customer has to pay
    url_timeout: float = 10.0  # how long POST /checkout waits for the pay URL

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ.get
        return cls(
            db_path=env("SHOP_DB", cls.db_path),
            provider_url=env("PROVIDER_URL", cls.provider_url),
            shipments_path=env("SHIPMENTS", cls.shipments_path),
            payment_timeout=float(env("PAYMENT_TIMEOUT", cls.payment_timeout)),
        )


def workflow_id(order_id: str) -> str:
    """One workflow per order: starting it again returns the same run."""
    return f"order-{order_id}"


def _post(url: str, body: dict[str, Any], idempotency_key: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    request = urllib.request.Request(url, json.dumps(body).encode(), headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def build(cfg: Config) -> tuple[litewf.Runtime, litewf.Workflow[[str, str, int], str]]:
    """The runtime with the checkout workflow and its steps registered on it."""
    rt = litewf.Runtime(cfg.db_path)

    @rt.step("validate_order")
    def validate_order(item: str, qty: int) -> int:
        """The order's total in cents; ValueError for an unknown item or a bad quantity."""
        if item not in PRICES:
            raise ValueError(f"we do not sell {item!r}")
        if not 1 <= qty <= 10:
            raise ValueError(f"quantity must be 1 to 10, got {qty}")
        return PRICES[item] * qty

    @rt.step("create_session", retries=3, retry_interval=0.5)
    def create_session(order_id: str, amount: int) -> dict[str, Any]:
        """Open a payment session; a retry reuses it (same idempotency key)."""
        body = {"order_id": order_id, "amount": amount}
        session: dict[str, Any] = _post(f"{cfg.provider_url}/sessions", body, workflow_id(order_id))
        return session

    @rt.step("close_session", retries=3, retry_interval=0.5)
    def close_session(session_id: str) -> str:
        """Ask the provider for the final state, expiring the session if still unpaid,
        so that a customer cannot pay once we have given up."""
        session = _post(f"{cfg.provider_url}/sessions/{session_id}/expire", {})
        return str(session["status"])

    @rt.step("fulfil")
    def fulfil(order_id: str, item: str, qty: int) -> None:
        """Hand the order to the warehouse (which dedups by order ID)."""
        with open(cfg.shipments_path, "a", encoding="utf-8") as inbox:
            inbox.write(json.dumps({"order_id": order_id, "item": item, "qty": qty}) + "\n")

    @rt.workflow("checkout")
    async def checkout(order_id: str, item: str, qty: int) -> str:
        """'paid', 'expired' or 'failed'. The shop waits for the 'payment_url' event."""
        try:
            amount = await validate_order(item, qty)
        except ValueError:
            return "failed"
        session = await create_session(order_id, amount)
        await rt.set_event("payment_url", session["url"])
        note = await rt.recv("checkout_complete", timeout=cfg.payment_timeout)
        status = note["status"] if note is not None else await close_session(session["id"])
        if status == "paid":
            await fulfil(order_id, item, qty)
            return "paid"
        return "expired" if status == "expired" else "failed"

    return rt, checkout

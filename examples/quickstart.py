"""The README quickstart: a payment workflow that waits for a webhook-style message.

Run it twice: the second run finds the finished workflow by its ID and does not run it
again. Delete quickstart.db to start over.
"""

from __future__ import annotations

import anyio

import litewf

rt = litewf.Runtime("quickstart.db")


@rt.step(retries=3, retry_interval=0.1)
async def reserve(order_id: str) -> str:
    print(f"reserving stock for {order_id} (a checkpointed step: runs once)")
    return f"https://pay.example/checkout/{order_id}"


@rt.workflow()
async def payment(order_id: str) -> str:
    url = await reserve(order_id)
    await rt.set_event("checkout_url", url)
    note = await rt.recv("checkout_complete", timeout=300)
    return "paid" if note else "expired"


async def main() -> None:
    async with rt:
        h = await rt.start_workflow(payment, "o-1", workflow_id="order-o-1")
        url = await rt.get_event(h.workflow_id, "checkout_url", timeout=10)
        print("checkout URL:", url)
        await rt.send(
            h.workflow_id, {"ok": True}, topic="checkout_complete", idempotency_key="evt_123"
        )
        print("result:", await h.get_result())


if __name__ == "__main__":
    anyio.run(main)

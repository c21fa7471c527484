"""The quickstart flow end to end in one process."""

from __future__ import annotations

from pathlib import Path

import litewf


async def test_quickstart_flow(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    @rt.step(retries=1, retry_interval=0.01)
    async def reserve(order_id: str) -> str:
        return f"https://pay.example/{order_id}"

    @rt.workflow()
    async def payment(order_id: str) -> str:
        url = await reserve(order_id)
        await rt.set_event("checkout_url", url)
        note = await rt.recv("checkout_complete", timeout=30)
        return "paid" if note else "expired"

    async with rt:
        h = await rt.start_workflow(payment, "o-1", workflow_id="order-o-1")
        assert await rt.get_event(h.workflow_id, "checkout_url", timeout=10) == (
            "https://pay.example/o-1"
        )
        await rt.send(
            h.workflow_id, {"ok": True}, topic="checkout_complete", idempotency_key="evt_123"
        )
        assert await h.get_result(timeout=30) == "paid"
        status = await h.get_status()
        assert status.status == "SUCCESS"
        assert status.executor_id is None

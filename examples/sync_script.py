"""The quickstart without async: a plain script on ``litewf.SyncRuntime``.

Plain ``def`` workflow and steps; the workflow runs in a worker thread, where
``srt.recv()`` blocks that thread. Run it twice: the second run finds the finished
workflow by its ID and runs nothing again. Delete sync_script.db to start over.
"""

from __future__ import annotations

import litewf

srt = litewf.SyncRuntime("sync_script.db")


@srt.step(retries=3, retry_interval=0.1)
def reserve(order_id: str) -> str:
    print(f"reserving stock for {order_id} (a checkpointed step: runs once)")
    return f"https://pay.example/checkout/{order_id}"


@srt.workflow(name="sync_script.payment")
def payment(order_id: str) -> str:
    url = reserve(order_id)
    srt.set_event("checkout_url", url)
    note = srt.recv("checkout_complete", timeout=300)  # blocks this workflow's thread
    return "paid" if note else "expired"


def main() -> None:
    with srt:  # an event loop in a thread of its own; open, migrate, recover, serve
        h = srt.start_workflow(payment, "o-1", workflow_id="order-o-1")
        print("checkout URL:", srt.get_event(h.workflow_id, "checkout_url", timeout=10))
        srt.send(h.workflow_id, {"ok": True}, topic="checkout_complete", idempotency_key="evt_123")
        print("result:", h.get_result(timeout=30))


if __name__ == "__main__":
    main()

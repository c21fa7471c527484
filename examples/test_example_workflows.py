"""Testing litewf workflows with pytest: fixtures, time skipping and simulated crashes.

litewf's pytest plugin is loaded automatically once litewf is installed; it provides the
``litewf_db`` and ``litewf_runtime`` fixtures used below. Run with ``pytest``.
"""

from __future__ import annotations

from pathlib import Path

import litewf
from litewf.pytest_plugin import RuntimeFactory
from litewf.testing import VirtualClock, crash_at


class Shop:
    """The code under test (in a real project, imported from your application)."""

    def __init__(self, path: Path, clock: VirtualClock | None = None) -> None:
        self.rt = rt = litewf.Runtime(path, clock=clock)
        self.charged: list[str] = []  # what the payment provider saw

        @rt.step(name="charge")
        async def charge(order_id: str) -> str:
            self.charged.append(order_id)
            return f"ch_{order_id}"

        @rt.workflow(name="checkout")
        async def checkout(order_id: str) -> str:
            await rt.set_event("status", "awaiting payment")
            if await rt.recv("paid", timeout=3600) is None:  # an hour to pay
                return "expired"
            receipt = await charge(order_id)
            await rt.sleep(86400)  # ships tomorrow
            return f"shipped {receipt}"

        self.checkout = checkout


async def test_paid_order_ships_the_next_day(
    litewf_db: Path, litewf_runtime: RuntimeFactory
) -> None:
    clock = VirtualClock(auto_advance=True)  # jumps ahead whenever every workflow waits
    shop = Shop(litewf_db, clock)
    rt = await litewf_runtime(shop.rt)  # launched now, shut down at teardown
    h = await rt.start_workflow(shop.checkout, "o-1", workflow_id="o-1")
    assert await rt.get_event("o-1", "status") == "awaiting payment"
    await rt.send("o-1", {"amount": 42}, topic="paid")
    start = clock.time()
    assert await h.get_result() == "shipped ch_o-1"  # a day of sleep, no real time
    assert clock.time() - start == 86400


async def test_unpaid_order_expires_after_an_hour(
    litewf_db: Path, litewf_runtime: RuntimeFactory
) -> None:
    clock = VirtualClock()  # moves only when told
    shop = Shop(litewf_db, clock)
    rt = await litewf_runtime(shop.rt)
    h = await rt.start_workflow(shop.checkout, "o-2", workflow_id="o-2")
    await clock.wait_idle()  # the workflow now waits in recv
    clock.advance(3599)
    await clock.wait_idle()
    assert (await h.get_status()).status == litewf.Status.PENDING  # not yet
    clock.advance(1)
    assert await h.get_result() == "expired"
    assert shop.charged == []


async def test_crash_before_charging_is_recovered_once(
    litewf_db: Path, litewf_runtime: RuntimeFactory
) -> None:
    clock = VirtualClock(auto_advance=True)
    first = Shop(litewf_db, clock)
    crash = crash_at(first.rt, before_step="charge")  # die there as if SIGKILLed
    rt = await litewf_runtime(first.rt)
    await rt.start_workflow(first.checkout, "o-3", workflow_id="o-3")
    await rt.send("o-3", {"amount": 42}, topic="paid")
    await crash.wait()
    assert first.charged == []

    second = Shop(litewf_db, clock)  # the restarted process, on the same file
    rt2 = await litewf_runtime(second.rt)  # its launch recovers o-3
    h = await rt2.retrieve_workflow("o-3")
    assert await h.get_result() == "shipped ch_o-3"
    assert second.charged == ["o-3"]  # charged exactly once
    assert (await h.get_status()).recovery_attempts == 1

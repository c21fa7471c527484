"""PostgreSQL's NOTIFY payload lists a commit's changes: a listener in another process
hands them to its waiters without reading the change log first; the log stays the truth
(a payload too large, or not litewf's, makes the listener read it; a later read of the
log hands over only what the payloads did not)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import litewf
from litewf import _pgnotify as pgnotify
from litewf import testing
from litewf._change import Change
from tests.conditions import wait_until


def test_a_payload_lists_the_changes_and_the_committer() -> None:
    changes = [Change.status("w1"), Change.event("w1", "k"), Change.queue("q")]
    token, decoded = pgnotify.decode(pgnotify.encode("tok", changes))
    assert (token, decoded) == ("tok", changes)


def test_a_payload_too_large_carries_the_token_alone() -> None:
    changes = [Change.message(f"workflow-{i:05d}", "topic") for i in range(500)]
    payload = pgnotify.encode("tok", changes)
    assert payload == "tok"
    assert pgnotify.decode(payload) == ("tok", None)


@pytest.mark.parametrize(
    "payload",
    ["", "tok\n", "tok\nnot json", 'tok\n[["nonsense", "w", null]]', 'tok\n[["status"]]', "tok\n7"],
)
def test_a_payload_litewf_did_not_write_means_read_the_log(payload: str) -> None:
    assert pgnotify.decode(payload)[1] is None


def test_a_read_of_the_log_hands_over_only_what_payloads_did_not() -> None:
    handed = pgnotify.Handed()
    a, b = Change.status("a"), Change.status("b")
    handed.add([a, a])
    assert handed.unseen([a, b, a, a]) == [b, a]
    assert handed.unseen([a]) == [a]  # forgotten after a read: nothing stays suppressed


async def test_a_message_from_another_connection_wakes_without_reading_the_log(
    pg_url: Path,
) -> None:
    """The change log's re-check is a minute away: the recv wakes from the payload."""
    rt = litewf.Runtime(pg_url, poll_interval=60)

    @rt.workflow()
    async def echo() -> str:
        got: str = await rt.recv("t", timeout=30)
        return got

    async with rt:
        backend = rt._session_for("test").backend
        reads: list[str] = []
        real = backend.db.read

        async def read(fn: Any, *args: Any, **kwargs: Any) -> Any:
            reads.append(getattr(fn, "__name__", repr(fn)))
            return await real(fn, *args, **kwargs)

        backend.db.read = read  # type: ignore[method-assign]  # instrumentation
        handle = await rt.start_workflow(echo)
        await wait_until(lambda: testing.waiting(rt) >= 1)  # in recv, not before it
        async with litewf.Client(pg_url) as client:
            await client.send(handle.workflow_id, "hello", topic="t")
        assert await handle.get_result(timeout=30) == "hello"
        assert "changes_since" not in reads


async def test_the_log_does_not_hand_over_our_own_changes_again(pg_url: Path) -> None:
    """Our own commit's changes reach our waiters at commit; the next read of the change
    log (every second) skips them."""
    from litewf import _store as store

    rt = litewf.Runtime(pg_url)
    async with rt:
        session = rt._session_for("test")
        backend = session.backend
        delivered: list[Change] = []
        session.notifier.add_listener(delivered.append)
        reads: list[str] = []
        real = backend.db.read

        async def read(fn: Any, *args: Any, **kwargs: Any) -> Any:
            result = await real(fn, *args, **kwargs)
            reads.append(getattr(fn, "__name__", repr(fn)))
            return result

        backend.db.read = read  # type: ignore[method-assign]  # instrumentation
        await backend.write(store.log_change, Change.status("mine"))
        assert delivered.count(Change.status("mine")) == 1
        await wait_until(lambda: "changes_since" in reads, timeout=10)
        assert delivered.count(Change.status("mine")) == 1

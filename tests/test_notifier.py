"""The notifier's waiter registry: a change watched by one waiter or by several, waiters
leaving in any order, and a notification between the read and the pause."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from litewf._change import Change
from litewf._notifier import Notifier

A, B = Change.message("wf-a", None), Change.message("wf-b", None)


async def until(condition: Callable[[], bool]) -> None:
    """Let the waiting tasks run until ``condition`` holds (they only need the loop)."""
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110 - plain state of the tasks under test
            await anyio.sleep(0.001)


async def test_each_waiter_wakes_on_its_changes_whoever_else_watches_them() -> None:
    """Three waits (two on A, one on A or B): each notification wakes exactly the waits
    watching it, and the registry is empty once every wait has returned."""
    notifier = Notifier()
    ready: dict[str, bool] = {"first": False, "second": False, "either": False}
    calls: dict[str, int] = dict.fromkeys(ready, 0)

    def check(name: str) -> Callable[[], Awaitable[str | None]]:
        async def look() -> str | None:
            calls[name] += 1
            return name if ready[name] else None

        return look

    results: list[str] = []

    async def wait(name: str, change: Change | tuple[Change, ...]) -> None:
        found = await notifier.wait_for(change, check(name), None)
        assert found is not None
        results.append(found)

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait, "first", A)
        tg.start_soon(wait, "second", A)
        tg.start_soon(wait, "either", (A, B))
        await until(lambda: notifier.waiting == 3)
        ready["either"] = True
        notifier.notify(B)  # wakes "either" alone
        await until(lambda: results == ["either"])
        assert calls == {"first": 1, "second": 1, "either": 2}
        assert notifier.waiting == 2
        ready["second"] = True
        notifier.notify(A)  # wakes both waits on A; "first" re-arms and waits again
        await until(lambda: results == ["either", "second"] and calls["first"] == 2)
        assert notifier.waiting == 1
        ready["first"] = True
        notifier.notify(A)  # the one left on A (no set any more) still wakes
        await until(lambda: len(results) == 3)  # (not after the 30 s safety re-check)
    assert results == ["either", "second", "first"]
    assert notifier.waiting == 0 and notifier._waiters == {}


def notifying_on_first_look(
    notifier: Notifier, answer: str
) -> tuple[Callable[[], Awaitable[str | None]], list[int]]:
    """A check that notifies ``A`` during its first look (between the read and the
    pause) and finds nothing, then answers; and the list of its looks."""
    looks: list[int] = []

    async def look() -> str | None:
        looks.append(len(looks) + 1)
        if len(looks) == 1:
            notifier.notify(A)
            return None
        return answer

    return look, looks


async def test_a_notification_during_the_read_ends_the_next_pause_at_once() -> None:
    """The change committed while the check reads: the wait does not sleep past it."""
    notifier = Notifier()
    look, looks = notifying_on_first_look(notifier, "got it")
    with anyio.fail_after(5):  # far below the 30 s safety re-check
        assert await notifier.wait_for(A, look, None) == "got it"
    assert len(looks) == 2


async def test_a_change_listed_twice_in_one_wait_leaves_nothing_behind() -> None:
    notifier = Notifier()
    look, _ = notifying_on_first_look(notifier, "done")
    assert await notifier.wait_for((A, A), look, None) == "done"
    assert notifier._waiters == {}

"""Hostile input (issue 5, part 5): every public entry point tried with bad values.

Each bad call must raise a ``LitewfError`` whose message names the problem, and store
nothing (every table's row count and the change log are unchanged). Files: a byte-flipped
page, a read-only file and a read-only folder (as an unprivileged user, since root ignores
permissions) are refused with a clear ``DatabaseError`` and left byte-for-byte unchanged.
Garbage, truncated, foreign, newer-schema and directory paths are covered in
``tests/test_database.py``; None values and argument checks inside workflows in
``tests/test_events.py`` and ``tests/test_steps.py``.
"""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

import litewf
from litewf import testing
from tests import sqldb
from tests.conftest import postgres_database

TABLES = sqldb.TABLES


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


#: Values no JSON database can hold faithfully, with a word the error must contain.
BAD_VALUES: list[tuple[str, Any, str]] = [
    ("object", object(), "serialize"),
    ("set", {1, 2}, "serialize"),
    ("bytes", b"\x00\xff", "serialize"),
    ("nan", math.nan, "serialize"),
    ("infinity", math.inf, "serialize"),
    ("-infinity", -math.inf, "serialize"),
    ("nested-100000", nested(100_000), "serialize"),
    ("int-5000-digits", 10**5000, "serialize"),
    ("tuple-key", {(1, 2): "x"}, "serialize"),
    ("object-inside", {"a": [1, object()]}, "serialize"),
]

#: Bad identifiers (workflow IDs, destinations) and what the error must say.
BAD_IDS: list[tuple[str, Any, str]] = [
    ("int", 123, "must be a non-empty str"),
    ("none", None, "must be a non-empty str"),
    ("bytes", b"w", "must be a non-empty str"),
    ("empty", "", "must be a non-empty str"),
    ("nul", "a\x00b", "NUL"),
    ("too-long", "w" * 1025, "at most 1024"),
    ("lone-surrogate", "w\ud800", "not valid Unicode"),
    ("list", ["w"], "must be a non-empty str"),
]

#: Bad topic and event-key strings.
BAD_KEYS: list[tuple[str, Any, str]] = [
    ("int", 5, "must be a str"),
    ("bytes", b"t", "must be a str"),
    ("nul", "\x00", "NUL"),
    ("too-long", "t" * 1025, "at most 1024"),
    ("lone-surrogate", "\udfff", "not valid Unicode"),
]

#: Bad timeouts.
BAD_TIMEOUTS: list[tuple[str, Any, str]] = [
    ("negative", -1, "zero or more seconds"),
    ("nan", math.nan, "zero or more seconds"),
    ("-infinity", -math.inf, "zero or more seconds"),
    ("str", "5", "number of seconds"),
    ("bool", True, "number of seconds"),
]

#: Bad deadlines (``deadline=``, ``sleep_until``): naive datetimes name no instant.
BAD_DEADLINES: list[tuple[str, Any, str]] = [
    ("naive", datetime(2030, 1, 1), "pass an aware one"),
    ("naive-now", datetime.now(), "pass an aware one"),
    ("date", date(2030, 1, 1), "timezone-aware datetime"),
    ("epoch-float", 1.9e9, "timezone-aware datetime"),
    ("str", "2030-01-01T00:00:00Z", "timezone-aware datetime"),
]

SOON = datetime.now(UTC) + timedelta(hours=1)

#: Bad workflow and step timeouts (``timeout=``: more than 0 seconds, finite; a
#: ``timedelta`` is fine).
BAD_WORKFLOW_TIMEOUTS: list[tuple[str, Any, str]] = [
    ("zero", 0, "more than 0 seconds and finite"),
    ("negative", -1, "more than 0 seconds and finite"),
    ("nan", math.nan, "more than 0 seconds and finite"),
    ("infinity", math.inf, "more than 0 seconds and finite"),
    ("-infinity", -math.inf, "more than 0 seconds and finite"),
    ("timedelta-zero", timedelta(0), "more than 0 seconds and finite"),
    ("timedelta-negative", timedelta(seconds=-5), "more than 0 seconds and finite"),
    ("str", "5", "number of seconds or a timedelta"),
    ("bool", True, "number of seconds or a timedelta"),
]

#: Bad start delays (``delay=``: 0 or more seconds, finite).
BAD_DELAYS: list[tuple[str, Any, str]] = [
    ("negative", -1, "0 or more seconds and finite"),
    ("nan", math.nan, "0 or more seconds and finite"),
    ("infinity", math.inf, "0 or more seconds and finite"),
    ("str", "5", "number of seconds or a timedelta"),
]

#: Bad queue priorities (an int >= 0; lower runs first).
BAD_PRIORITIES: list[tuple[str, Any, str]] = [
    ("negative", -1, "int >= 0"),
    ("bool", True, "int >= 0"),
    ("float", 1.5, "int >= 0"),
    ("str", "1", "int >= 0"),
    ("huge", 2**63, "below 2**63"),
]

#: Bad queue bounds for ``rt.queue``: (keyword arguments, text the error must contain).
BAD_QUEUE_BOUNDS: list[tuple[str, dict[str, Any], str]] = [
    ("concurrency-0", {"concurrency": 0}, "int >= 1"),
    ("concurrency-negative", {"concurrency": -1}, "int >= 1"),
    ("concurrency-bool", {"concurrency": True}, "int >= 1"),
    ("concurrency-float", {"concurrency": 1.5}, "int >= 1"),
    ("worker-0", {"worker_concurrency": 0}, "int >= 1"),
    ("worker-str", {"worker_concurrency": "2"}, "int >= 1"),
    ("rate-list", {"rate_limit": [10, 1.0]}, "tuple (n, seconds)"),
    ("rate-short", {"rate_limit": (10,)}, "tuple (n, seconds)"),
    ("rate-long", {"rate_limit": (10, 1.0, 2)}, "tuple (n, seconds)"),
    ("rate-str", {"rate_limit": "10/s"}, "tuple (n, seconds)"),
    ("rate-n-0", {"rate_limit": (0, 1.0)}, "int >= 1"),
    ("rate-n-float", {"rate_limit": (1.5, 1.0)}, "int >= 1"),
    ("rate-n-bool", {"rate_limit": (True, 1.0)}, "int >= 1"),
    ("rate-seconds-0", {"rate_limit": (10, 0)}, "more than 0"),
    ("rate-seconds-negative", {"rate_limit": (10, -1.0)}, "zero or more seconds"),
    ("rate-seconds-nan", {"rate_limit": (10, math.nan)}, "zero or more seconds"),
    ("rate-seconds-inf", {"rate_limit": (10, math.inf)}, "finite"),
    ("rate-seconds-bool", {"rate_limit": (10, True)}, "number of seconds"),
]


#: Bad ``from_step`` values for ``fork_workflow`` (a huge one is valid: it copies all).
BAD_STEPS: list[tuple[str, Any, str]] = [
    ("negative", -1, "int >= 0"),
    ("bool", True, "int >= 0"),
    ("float", 1.5, "int >= 0"),
    ("str", "3", "int >= 0"),
    ("none", None, "int >= 0"),
]

#: Bad flags (``children=``).
BAD_FLAGS: list[tuple[str, Any, str]] = [
    ("str", "yes", "True or False"),
    ("int", 1, "True or False"),
    ("none", None, "True or False"),
]

#: Bad schedule timings: (keyword arguments of create_schedule / @rt.scheduled, text).
BAD_SCHEDULES: list[tuple[str, dict[str, Any], str]] = [
    ("both", {"cron": "* * * * *", "every": timedelta(minutes=1)}, "exactly one of cron="),
    ("neither", {}, "exactly one of cron="),
    ("cron-range", {"cron": "61 * * * *"}, "bad cron expression"),
    ("cron-words", {"cron": "every day at nine"}, "bad cron expression"),
    ("cron-fields", {"cron": "* * *"}, "bad cron expression"),
    ("cron-empty", {"cron": ""}, "bad cron expression"),
    ("cron-never", {"cron": "0 0 31 2 *"}, "bad cron expression"),
    ("cron-int", {"cron": 5}, "cron must be a str"),
    ("tz-unknown", {"every": timedelta(hours=1), "tz": "Mars/Olympus_Mons"}, "unknown time zone"),
    ("tz-path", {"every": timedelta(hours=1), "tz": "../../etc/passwd"}, "unknown time zone"),
    ("tz-empty", {"every": timedelta(hours=1), "tz": ""}, "IANA time zone name"),
    ("tz-int", {"every": timedelta(hours=1), "tz": 1}, "IANA time zone name"),
    ("missed-unknown", {"every": timedelta(hours=1), "missed": "sometimes"}, "'skip', 'latest'"),
    ("missed-none", {"every": timedelta(hours=1), "missed": None}, "'skip', 'latest'"),
    ("every-zero", {"every": timedelta(0)}, "at least 1 second"),
    ("every-negative", {"every": timedelta(seconds=-5)}, "at least 1 second"),
    ("every-half-second", {"every": timedelta(milliseconds=500)}, "at least 1 second"),
    ("every-huge", {"every": timedelta(days=999_999_999)}, "at most 100 years"),
    ("every-int", {"every": 60}, "must be a datetime.timedelta"),
    ("every-str", {"every": "5m"}, "must be a datetime.timedelta"),
]


def counts(db: Path) -> dict[str, int]:
    con = sqldb.connect(db)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        con.close()


Call = Callable[[litewf.Runtime, litewf.Client, Any], Awaitable[Any]]


def entry_points() -> Iterator[Any]:
    """(entry point, bad value, expected text) for every public call and argument."""
    calls: dict[str, tuple[Call, list[tuple[str, Any, str]]]] = {
        "rt.send(message)": (lambda rt, c, v: rt.send("w", v, topic="t"), BAD_VALUES),
        "client.send(message)": (lambda rt, c, v: c.send("w", v), BAD_VALUES),
        "rt.start_workflow(args)": (
            lambda rt, c, v: rt.start_workflow(WORKFLOWS[rt], v, workflow_id="new"),
            BAD_VALUES,
        ),
        "rt.send(destination_id)": (lambda rt, c, v: rt.send(v, "m"), BAD_IDS),
        "client.send(destination_id)": (lambda rt, c, v: c.send(v, "m"), BAD_IDS),
        "rt.start_workflow(workflow_id)": (
            lambda rt, c, v: rt.start_workflow(WORKFLOWS[rt], 1, workflow_id=v),
            [b for b in BAD_IDS if b[0] != "none"],  # None means "make one up"
        ),
        "rt.retrieve_workflow": (lambda rt, c, v: rt.retrieve_workflow(v), BAD_IDS),
        "client.retrieve_workflow": (lambda rt, c, v: c.retrieve_workflow(v), BAD_IDS),
        "rt.cancel_workflow": (lambda rt, c, v: rt.cancel_workflow(v), BAD_IDS),
        "client.cancel_workflow": (lambda rt, c, v: c.cancel_workflow(v), BAD_IDS),
        "rt.resume_workflow": (lambda rt, c, v: rt.resume_workflow(v), BAD_IDS),
        "client.resume_workflow": (lambda rt, c, v: c.resume_workflow(v), BAD_IDS),
        "rt.get_event(workflow_id)": (lambda rt, c, v: rt.get_event(v, "k", 0), BAD_IDS),
        "client.get_all_events": (lambda rt, c, v: c.get_all_events(v), BAD_IDS),
        "rt.send(topic)": (lambda rt, c, v: rt.send("w", "m", topic=v), BAD_KEYS),
        "client.send(idempotency_key)": (
            lambda rt, c, v: c.send("w", "m", idempotency_key=v),
            BAD_KEYS,
        ),
        "rt.get_event(key)": (lambda rt, c, v: rt.get_event("w", v, 0), BAD_KEYS),
        "client.get_event(key)": (lambda rt, c, v: c.get_event("w", v, 0), BAD_KEYS),
        "rt.list_workflows(name)": (lambda rt, c, v: rt.list_workflows(name=v), BAD_KEYS),
        "rt.get_event(timeout)": (lambda rt, c, v: rt.get_event("w", "k", v), BAD_TIMEOUTS),
        "client.get_event(timeout)": (lambda rt, c, v: c.get_event("w", "k", v), BAD_TIMEOUTS),
        "handle.get_result(timeout)": (
            lambda rt, c, v: _get_result(rt, v),
            BAD_TIMEOUTS,
        ),
        "rt.sleep(seconds)": (lambda rt, c, v: rt.sleep(v), BAD_TIMEOUTS),
        "rt.get_event(deadline)": (
            lambda rt, c, v: rt.get_event("w", "k", deadline=v),
            BAD_DEADLINES,
        ),
        "client.get_event(deadline)": (
            lambda rt, c, v: c.get_event("w", "k", deadline=v),
            BAD_DEADLINES,
        ),
        "handle.get_result(deadline)": (lambda rt, c, v: _get_result(rt, None, v), BAD_DEADLINES),
        "rt.sleep_until(when)": (lambda rt, c, v: rt.sleep_until(v), BAD_DEADLINES),
        "timeout+deadline": (
            lambda rt, c, v: v(rt, c),
            [
                ("rt.get_event", lambda rt, c: rt.get_event("w", "k", 1, deadline=SOON), "both"),
                ("client.get_event", lambda rt, c: c.get_event("w", "k", 0, deadline=SOON), "both"),
                ("handle.get_result", lambda rt, c: _get_result(rt, 1, SOON), "both"),
            ],
        ),
        "rt.start_workflow(timeout)": (
            lambda rt, c, v: _start(rt, timeout=v),
            BAD_WORKFLOW_TIMEOUTS,
        ),
        "rt.start_workflow(deadline)": (lambda rt, c, v: _start(rt, deadline=v), BAD_DEADLINES),
        "rt.start_workflow(delay)": (lambda rt, c, v: _start(rt, delay=v), BAD_DELAYS),
        "rt.start_workflow(start_at)": (lambda rt, c, v: _start(rt, start_at=v), BAD_DEADLINES),
        "queue.enqueue(timeout)": (
            lambda rt, c, v: _enqueue(rt, 1, timeout=v),
            BAD_WORKFLOW_TIMEOUTS,
        ),
        "queue.enqueue(deadline)": (lambda rt, c, v: _enqueue(rt, 1, deadline=v), BAD_DEADLINES),
        "client.enqueue(timeout)": (
            lambda rt, c, v: c.enqueue("h.q", "h.wait", timeout=v),
            BAD_WORKFLOW_TIMEOUTS,
        ),
        "client.enqueue(deadline)": (
            lambda rt, c, v: c.enqueue("h.q", "h.wait", deadline=v),
            BAD_DEADLINES,
        ),
        "both": (
            lambda rt, c, v: v(rt, c),
            [
                (
                    "start-timeout+deadline",
                    lambda rt, c: _start(rt, timeout=1, deadline=SOON),
                    "not both",
                ),
                (
                    "start-delay+start_at",
                    lambda rt, c: _start(rt, delay=1, start_at=SOON),
                    "not both",
                ),
                (
                    "enqueue-timeout+deadline",
                    lambda rt, c: _enqueue(rt, timeout=1, deadline=SOON),
                    "not both",
                ),
                (
                    "client-enqueue-timeout+deadline",
                    lambda rt, c: c.enqueue("h.q", "h.wait", timeout=1, deadline=SOON),
                    "not both",
                ),
            ],
        ),
        "rt.message(topic)": (lambda rt, c, v: _now(rt.message, v), BAD_KEYS),
        "rt.event(workflow_id)": (lambda rt, c, v: _now(rt.event, v, "k"), BAD_IDS),
        "rt.event(key)": (lambda rt, c, v: _now(rt.event, "w", v), BAD_KEYS),
        "rt.read_stream(workflow_id)": (lambda rt, c, v: _read(rt, v, "k", 0, 0), BAD_IDS),
        "client.read_stream(key)": (lambda rt, c, v: _read(c, "w", v, 0, 0), BAD_KEYS),
        "rt.read_stream(timeout)": (lambda rt, c, v: _read(rt, "w", "k", 0, v), BAD_TIMEOUTS),
        "client.read_stream(offset)": (
            lambda rt, c, v: _read(c, "w", "k", v, 0),
            [("negative", -1, "int >= 0"), ("float", 1.5, "int >= 0"), ("bool", True, "int")],
        ),
        "rt.list_workflows(limit)": (
            lambda rt, c, v: rt.list_workflows(limit=v),
            [("negative", -1, "int >= 0"), ("float", 1.5, "int >= 0"), ("str", "9", "int >= 0")],
        ),
        "rt.garbage_collect(dry_run)": (
            lambda rt, c, v: rt.garbage_collect(older_than=0, dry_run=v),
            [("str", "yes", "True or False"), ("int", 1, "True or False")],
        ),
        "queue.enqueue(args)": (lambda rt, c, v: _enqueue(rt, v), BAD_VALUES),
        "queue.enqueue(workflow_id)": (
            lambda rt, c, v: _enqueue(rt, 1, workflow_id=v),
            [b for b in BAD_IDS if b[0] != "none"],  # None means "make one up"
        ),
        "queue.enqueue(priority)": (lambda rt, c, v: _enqueue(rt, 1, priority=v), BAD_PRIORITIES),
        "client.enqueue(priority)": (
            lambda rt, c, v: c.enqueue("h.q", "h.wait", priority=v),
            BAD_PRIORITIES,
        ),
        "queue.enqueue(delay)": (
            lambda rt, c, v: _enqueue(rt, 1, delay=v),
            [*BAD_TIMEOUTS, ("infinity", math.inf, "finite")],
        ),
        "queue.enqueue(dedup_id)": (lambda rt, c, v: _enqueue(rt, 1, dedup_id=v), BAD_KEYS),
        "client.enqueue(partition_key)": (
            lambda rt, c, v: c.enqueue("h.q", "h.wait", partition_key=v),
            BAD_KEYS,
        ),
        "client.enqueue(queue_name)": (lambda rt, c, v: c.enqueue(v, "h.wait"), BAD_IDS),
        "client.enqueue(workflow_name)": (lambda rt, c, v: c.enqueue("h.q", v), BAD_KEYS),
        "client.enqueue(args)": (lambda rt, c, v: c.enqueue("h.q", "h.wait", v), BAD_VALUES),
        "rt.list_workflows(queue)": (lambda rt, c, v: rt.list_workflows(queue=v), BAD_KEYS),
        "client.list_workflows(queue)": (lambda rt, c, v: c.list_workflows(queue=v), BAD_KEYS),
        "rt.list_workflows(since)": (lambda rt, c, v: rt.list_workflows(since=v), BAD_DEADLINES),
        "client.list_workflows(until)": (
            lambda rt, c, v: c.list_workflows(until=v),
            BAD_DEADLINES,
        ),
        "rt.list_workflows(prefix)": (
            lambda rt, c, v: rt.list_workflows(prefix=v),
            [b for b in BAD_IDS if b[0] != "none"],  # None: no prefix
        ),
        "client.list_workflows(parent)": (
            lambda rt, c, v: c.list_workflows(parent=v),
            [b for b in BAD_IDS if b[0] != "none"],  # None: any parent
        ),
        "rt.fork_workflow(source_id)": (lambda rt, c, v: rt.fork_workflow(v, 0), BAD_IDS),
        "client.fork_workflow(source_id)": (lambda rt, c, v: c.fork_workflow(v, 0), BAD_IDS),
        "rt.fork_workflow(from_step)": (lambda rt, c, v: rt.fork_workflow("w", v), BAD_STEPS),
        "client.fork_workflow(from_step)": (lambda rt, c, v: c.fork_workflow("w", v), BAD_STEPS),
        "rt.fork_workflow(workflow_id)": (
            lambda rt, c, v: rt.fork_workflow("w", 1, workflow_id=v),
            [b for b in BAD_IDS if b[0] != "none"],  # None means "make one up"
        ),
        "client.fork_workflow(workflow_id)": (
            lambda rt, c, v: c.fork_workflow("w", 1, workflow_id=v),
            [b for b in BAD_IDS if b[0] != "none"],
        ),
        "rt.delete_workflow": (lambda rt, c, v: rt.delete_workflow(v), BAD_IDS),
        "client.delete_workflow": (lambda rt, c, v: c.delete_workflow(v), BAD_IDS),
        "rt.delete_workflow(children)": (
            lambda rt, c, v: rt.delete_workflow("w", children=v),
            BAD_FLAGS,
        ),
        "client.delete_workflow(children)": (
            lambda rt, c, v: c.delete_workflow("w", children=v),
            BAD_FLAGS,
        ),
        "rt.create_schedule(timing)": (
            lambda rt, c, v: rt.create_schedule("s", WORKFLOWS[rt], **v),
            BAD_SCHEDULES,
        ),
        "client.create_schedule(timing)": (
            lambda rt, c, v: c.create_schedule("s", "h.wait", **v),
            BAD_SCHEDULES,
        ),
        "client.create_schedule(name)": (
            lambda rt, c, v: c.create_schedule(v, "h.wait", every=timedelta(hours=1)),
            BAD_IDS,
        ),
        "client.create_schedule(workflow)": (
            lambda rt, c, v: c.create_schedule("s", v, every=timedelta(hours=1)),
            BAD_KEYS,
        ),
        "rt.create_schedule(workflow)": (
            lambda rt, c, v: rt.create_schedule("s", v, every=timedelta(hours=1)),
            [
                ("name", "h.wait", "not a workflow of this runtime"),
                ("none", None, "not a workflow"),
            ],
        ),
        "rt.get_schedule": (lambda rt, c, v: rt.get_schedule(v), BAD_IDS),
        "client.pause_schedule": (lambda rt, c, v: c.pause_schedule(v), BAD_IDS),
        "rt.resume_schedule": (lambda rt, c, v: rt.resume_schedule(v), BAD_IDS),
        "client.trigger_schedule": (lambda rt, c, v: c.trigger_schedule(v), BAD_IDS),
        "rt.delete_schedule": (lambda rt, c, v: rt.delete_schedule(v), BAD_IDS),
        "rt.backfill_schedule(start)": (
            lambda rt, c, v: rt.backfill_schedule("s", v, SOON),
            BAD_DEADLINES,
        ),
        "client.backfill_schedule(end)": (
            lambda rt, c, v: c.backfill_schedule("s", SOON, v),
            BAD_DEADLINES,
        ),
        "rt.list_workflows(status)": (
            lambda rt, c, v: rt.list_workflows(status=v),
            [("unknown", "DONE", "status must be one of"), ("int", 3, "status must be one of")],
        ),
        "testing.check_replay(rt)": (
            lambda rt, c, v: testing.check_replay(v, rt.path),
            [("none", None, "needs a litewf.Runtime"), ("client", "rt", "needs a litewf.Runtime")],
        ),
        "testing.check_replay(path)": (
            lambda rt, c, v: testing.check_replay(rt, v),
            [
                ("none", None, "needs a database path"),
                ("int", 5, "needs a database path"),
                ("bytes", b"x.db", "needs a database path"),
                ("nul", "a\x00b.db", "NUL"),
            ],
        ),
        "testing.check_replay(status)": (
            lambda rt, c, v: testing.check_replay(rt, rt.path, status=v),
            [("unknown", "DONE", "status must be one of"), ("int", 3, "status must be one of")],
        ),
        "testing.check_replay(limit)": (
            lambda rt, c, v: testing.check_replay(rt, rt.path, limit=v),
            [("negative", -1, "int >= 0"), ("float", 1.5, "int >= 0"), ("str", "9", "int >= 0")],
        ),
        "testing.check_replay(timeout)": (
            lambda rt, c, v: testing.check_replay(rt, rt.path, timeout=v),
            [*BAD_TIMEOUTS, ("zero", 0, "more than 0")],
        ),
    }
    for name, (call, bad) in calls.items():
        for label, value, text in bad:
            yield pytest.param(call, value, text, id=f"{name}-{label}")


async def _read(
    source: litewf.Runtime | litewf.Client, wid: Any, key: Any, offset: Any, timeout: Any
) -> list[Any]:
    return [v async for v in source.read_stream(wid, key, offset=offset, timeout=timeout)]


async def _get_result(rt: litewf.Runtime, timeout: Any, deadline: Any = None) -> Any:
    return await (await rt.retrieve_workflow("w")).get_result(timeout=timeout, deadline=deadline)


async def _enqueue(rt: litewf.Runtime, *args: Any, **kwargs: Any) -> Any:
    return await QUEUES[rt].enqueue(WORKFLOWS[rt], *args, **kwargs)


async def _start(rt: litewf.Runtime, **kwargs: Any) -> Any:
    return await rt.start_workflow(WORKFLOWS[rt], workflow_id="new", **kwargs)


async def _now(make: Callable[..., Any], *args: Any) -> Any:
    """A synchronous call (a wait descriptor, checked when made) as an entry point."""
    return make(*args)


WORKFLOWS: dict[litewf.Runtime, litewf.Workflow[..., Any]] = {}
QUEUES: dict[litewf.Runtime, litewf.Queue] = {}
ENTRY_POINTS = list(entry_points())


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module scope: ``launched`` serves every entry point's test


@pytest.fixture(scope="module")
def shared_db(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One database for the module's bad calls (they must store nothing anyway)."""
    if backend == "sqlite":
        yield tmp_path_factory.mktemp("hostile") / "test.db"
        return
    yield from postgres_database()


@pytest.fixture(scope="module")
async def launched(shared_db: Path) -> Any:
    """A runtime with one waiting workflow ``w``, and a Client on the same database:
    launched once, every bad call is tried on it (each test checks that its call stored
    nothing)."""
    rt = litewf.Runtime(shared_db)

    @rt.workflow(name="h.wait")
    async def wait(x: Any = None, scheduled_at: Any = None) -> None:
        await anyio.Event().wait()  # writes nothing while the bad calls are tried

    WORKFLOWS[rt] = wait
    QUEUES[rt] = rt.queue("h.q")
    async with rt, litewf.Client(shared_db) as client:
        await rt.start_workflow(wait, workflow_id="w")
        yield rt, client
    del WORKFLOWS[rt], QUEUES[rt]


@pytest.mark.parametrize(("label", "bounds", "text"), BAD_QUEUE_BOUNDS)
def test_bad_queue_bounds_are_refused(
    db_path: Path, label: str, bounds: dict[str, Any], text: str
) -> None:
    """``rt.queue`` checks its bounds when called; nothing is registered."""
    rt = litewf.Runtime(db_path)
    with pytest.raises(litewf.InvalidValueError) as info:
        rt.queue("q", **bounds)
    assert text in str(info.value)
    rt.queue("q")  # the name was not taken by the refused call


@pytest.mark.parametrize(("label", "timing", "text"), BAD_SCHEDULES)
def test_bad_scheduled_decorator_is_refused(
    db_path: Path, label: str, timing: dict[str, Any], text: str
) -> None:
    """``@rt.scheduled`` checks its timing when applied: nothing is declared."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="job")
    async def job(scheduled_at: datetime) -> None: ...

    with pytest.raises(litewf.InvalidValueError) as info:
        rt.scheduled(**timing)(job)
    assert text in str(info.value)


def test_scheduled_goes_above_workflow(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)

    async def plain(scheduled_at: datetime) -> None: ...

    with pytest.raises(litewf.InvalidValueError, match=r"goes above @rt\.workflow"):
        rt.scheduled(every=timedelta(hours=1))(plain)  # type: ignore[arg-type]

    @rt.workflow(name="needs_more")
    async def needs_more(scheduled_at: datetime, region: str) -> None: ...

    @rt.workflow(name="no_tick")
    async def no_tick() -> None: ...

    for wf in (needs_more, no_tick):
        with pytest.raises(litewf.InvalidValueError, match="called with one keyword argument"):
            rt.scheduled(every=timedelta(hours=1))(wf)


@pytest.mark.parametrize(("label", "value", "text"), BAD_IDS)
def test_bad_queue_names_are_refused(db_path: Path, label: str, value: Any, text: str) -> None:
    rt = litewf.Runtime(db_path)
    with pytest.raises(litewf.InvalidValueError, match=text):
        rt.queue(value)


def test_a_queue_name_is_registered_once(db_path: Path) -> None:
    rt = litewf.Runtime(db_path)
    rt.queue("q", concurrency=1)
    with pytest.raises(litewf.InvalidValueError, match="already registered"):
        rt.queue("q")


@pytest.mark.parametrize(("label", "value", "text"), BAD_WORKFLOW_TIMEOUTS)
def test_bad_step_timeout_is_refused(db_path: Path, label: str, value: Any, text: str) -> None:
    """``@rt.step(timeout=...)`` is checked when the decorator is made (sync or async)."""
    rt = litewf.Runtime(db_path)
    with pytest.raises(litewf.InvalidValueError, match=text):
        rt.step(timeout=value)


@pytest.mark.parametrize(("label", "value", "text"), BAD_TIMEOUTS)
def test_bad_shutdown_timeout_is_refused(db_path: Path, label: str, value: Any, text: str) -> None:
    """``Runtime(shutdown_timeout=...)`` is checked like every other duration."""
    with pytest.raises(litewf.InvalidValueError, match=text):
        litewf.Runtime(db_path, shutdown_timeout=value)


@pytest.mark.parametrize(("call", "value", "text"), ENTRY_POINTS)
async def test_bad_argument_is_refused_and_stores_nothing(
    launched: tuple[litewf.Runtime, litewf.Client],
    shared_db: Path,
    call: Call,
    value: Any,
    text: str,
) -> None:
    """A clear LitewfError naming the problem, and not one row written anywhere."""
    rt, client = launched
    before = counts(shared_db)
    with anyio.fail_after(10), pytest.raises(litewf.LitewfError) as info:
        await call(rt, client, value)
    assert text in str(info.value)
    assert isinstance(info.value, (litewf.InvalidValueError, litewf.SerializationError))
    assert counts(shared_db) == before


async def test_bad_arguments_inside_a_workflow(db_path: Path) -> None:
    """set_event, recv, send and get_event called by workflow code with hostile values
    raise the same clear errors there, and the workflow goes on to finish normally."""
    rt = litewf.Runtime(db_path)
    seen: list[str] = []

    async def refused(call: Awaitable[Any]) -> None:
        try:
            await call
        except (litewf.InvalidValueError, litewf.SerializationError) as exc:
            seen.append(type(exc).__name__)
            return
        raise AssertionError("accepted")

    @rt.workflow(name="h.careless")
    async def careless() -> str:
        me = rt.current_workflow_id()
        assert me is not None
        for _, value, _ in BAD_VALUES:
            await refused(rt.set_event("k", value))
            await refused(rt.send(me, value))
        for _, value, _ in [*BAD_VALUES, ("none", None, "")]:
            await refused(rt.write_stream("s", value))
        for _, key, _ in BAD_KEYS:
            await refused(rt.write_stream(key, 1))
            await refused(rt.close_stream(key))
            await refused(rt.patched(key))
            await refused(rt.deprecate_patch(key))
            await refused(rt.set_event(key, 1))
            await refused(rt.recv(key, timeout=0))
            await refused(rt.get_event(me, key, timeout=0))
        for _, timeout, _ in BAD_TIMEOUTS:
            await refused(rt.recv("t", timeout=timeout))
        for _, value, _ in BAD_IDS:
            await refused(rt.fork_workflow(value, 0))
            await refused(rt.delete_workflow(value))
        for _, step, _ in BAD_STEPS:
            await refused(rt.fork_workflow(me, step))
        for _, flag, _ in BAD_FLAGS:
            await refused(rt.delete_workflow(me, children=flag))
        await rt.set_event("k", "fine")
        return "done"

    async with rt:
        assert await careless() == "done"
    expected = 3 * len(BAD_VALUES) + 1 + 7 * len(BAD_KEYS) + len(BAD_TIMEOUTS)
    expected += 2 * len(BAD_IDS) + len(BAD_STEPS) + len(BAD_FLAGS)
    assert len(seen) == expected
    assert counts(db_path)["operations"] == 1 and counts(db_path)["workflows"] == 1
    assert counts(db_path)["events"] == 1 and counts(db_path)["messages"] == 0


async def test_odd_but_valid_strings_round_trip(db_path: Path) -> None:
    """An empty topic is a queue of its own (not None's); a 1024-character key, a lone
    surrogate inside a value, and a 4000-digit integer are stored and read back exactly."""
    rt = litewf.Runtime(db_path)
    odd = {"s": "a\ud800b", "n": 10**4000, "k": "\U0001f600" * 3}

    @rt.workflow(name="h.odd")
    async def odd_one() -> list[Any]:
        await rt.set_event("k" * 1024, odd)
        return [await rt.recv("", timeout=10), await rt.recv(None, timeout=10)]

    async with rt:
        handle = await rt.start_workflow(odd_one, workflow_id="odd")
        await rt.send("odd", "none-topic")
        await rt.send("odd", odd, topic="")
        assert await handle.get_result(timeout=10) == [odd, "none-topic"]
        assert await rt.get_event("odd", "k" * 1024, timeout=1) == odd


async def test_colliding_dict_keys_are_refused(db_path: Path) -> None:
    """``{1: "a", "1": "b"}`` becomes ``{"1": "b"}`` under JSON: one entry is lost
    without a word. It must raise SerializationError and store nothing."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="h.wait")
    async def wait() -> None:
        await rt.recv("never", timeout=600)

    async with rt:
        await rt.start_workflow(wait, workflow_id="w")
        with pytest.raises(litewf.SerializationError):
            await rt.send("w", {1: "a", "1": "b"})


#: The proposed documented maximum for one stored value (serialized), in characters.
PROPOSED_MAX_VALUE = 16 * 1024 * 1024


async def test_oversize_payload_is_refused_with_the_documented_maximum(db_path: Path) -> None:
    """A message larger than the documented maximum raises a SerializationError that
    names the limit, before anything is written."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="h.wait")
    async def wait() -> None:
        await rt.recv("never", timeout=600)

    async with rt:
        await rt.start_workflow(wait, workflow_id="w")
        with pytest.raises(litewf.SerializationError, match="at most"):
            await rt.send("w", "x" * (PROPOSED_MAX_VALUE + 1))
        assert counts(db_path)["messages"] == 0


# -- files --------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def make_db(path: Path) -> None:
    rt = litewf.Runtime(path)

    @rt.workflow(name="h.double")
    async def double(x: int) -> int:
        return 2 * x

    async with rt:
        for i in range(30):
            await (await rt.start_workflow(double, i, workflow_id=f"w-{i}")).get_result(10)


@pytest.mark.sqlite_only
async def test_one_flipped_byte_in_a_page_header_is_refused_untouched(db_path: Path) -> None:
    """One flipped byte (the b-tree page type of the workflows table's root page) makes
    the file corrupt: CorruptDatabaseError by first use, the file left as it was."""
    await make_db(db_path)
    con = sqlite3.connect(db_path)
    root, page_size = (
        con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'workflows'").fetchone()[0],
        con.execute("PRAGMA page_size").fetchone()[0],
    )
    con.close()
    data = bytearray(db_path.read_bytes())  # noqa: ASYNC240 - a small local file
    data[(root - 1) * page_size] ^= 0xFF
    db_path.write_bytes(bytes(data))  # noqa: ASYNC240
    before = sha256(db_path)
    for opener in ("runtime", "client"):
        with anyio.fail_after(15), pytest.raises(litewf.CorruptDatabaseError, match="corrupt"):
            if opener == "runtime":
                async with litewf.Runtime(db_path) as rt:
                    await rt.list_workflows()
            else:
                async with litewf.Client(db_path) as client:
                    await client.list_workflows()
        assert sha256(db_path) == before


def chattr(flag: str, *paths: Path) -> bool:
    """Set or clear the immutable flag (root ignores permission bits, not this flag)."""
    try:
        done = subprocess.run(
            ["chattr", flag, *map(str, paths)], check=False, capture_output=True, timeout=10
        )
    except FileNotFoundError:
        return False
    return done.returncode == 0


@pytest.mark.parametrize("what", ["read-only file", "read-only folder"])
async def test_read_only_file_or_folder_is_refused_untouched(tmp_path: Path, what: str) -> None:
    """A runtime that cannot write the file (or create its WAL beside it) raises a clear
    DatabaseError by first use and changes nothing, file or folder."""
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "ro.db"
    await make_db(db)
    target = db if what == "read-only file" else folder
    if os.geteuid() == 0:
        if not chattr("+i", target):
            pytest.skip("chattr +i is not available here")
    else:
        target.chmod(0o444 if target == db else 0o555)
    try:
        before, listing = sha256(db), sorted(os.listdir(folder))
        rt = litewf.Runtime(db)

        @rt.workflow(name="h.double")
        async def double(x: int) -> int:
            return 2 * x

        with anyio.fail_after(15), pytest.raises(litewf.DatabaseError) as info:
            async with rt:
                await (await rt.start_workflow(double, 1)).get_result(5)
        assert str(db) in str(info.value)
        assert sha256(db) == before
        left = sorted(set(os.listdir(folder)) - set(listing))
        # SQLite itself leaves an empty -wal and the -shm beside a file it could not write
        # (it cannot checkpoint, so it does not delete them); nothing else may appear.
        assert left in ([], ["ro.db-shm", "ro.db-wal"]), left
    finally:
        if os.geteuid() == 0:
            chattr("-i", target)
        else:
            target.chmod(0o755)


async def test_wait_first_hostile_input(db_path: Path) -> None:
    """wait_first refuses what is not a wait, no waits, naive or doubled deadlines and bad
    timeouts, before taking an operation number; outside a workflow it is refused too."""
    rt = litewf.Runtime(db_path)
    seen: list[str] = []

    @rt.workflow(name="h.other")
    async def other() -> None:
        pass

    async def refused(text: str, **waits: Any) -> None:
        try:
            await rt.wait_first(**waits)
        except litewf.InvalidValueError as exc:
            assert text in str(exc), (text, str(exc))
            seen.append(text)
            return
        raise AssertionError(f"accepted {waits!r}")

    @rt.workflow(name="h.waits")
    async def waits() -> str:
        paid = rt.message("paid")
        accepted = "rt.message(topic), rt.event(workflow_id, key) or a WorkflowHandle"
        for bad in ("paid", 5, None, {"topic": "paid"}, other, rt, [paid]):
            await refused(accepted, paid=bad)
        await refused(accepted, paid=paid, shipped="shipped")  # one bad one among good ones
        await refused("at least one wait")
        await refused("at least one wait", timeout=5)
        await refused("pass an aware one", paid=paid, deadline=datetime(2030, 1, 1))
        await refused("timezone-aware datetime", paid=paid, deadline=1.9e9)
        await refused("not both", paid=paid, timeout=5, deadline=SOON)
        for _, timeout, text in BAD_TIMEOUTS:
            await refused(text, paid=paid, timeout=timeout)
        await refused("NUL", **{"a\x00b": paid})
        await rt.set_event("k", "fine")
        return "done"

    async with rt:
        with pytest.raises(litewf.NotInWorkflowError):
            await rt.wait_first(paid=rt.message("paid"), timeout=0)
        assert await waits() == "done"
        wid = (await rt.list_workflows(name="h.waits"))[0].workflow_id
        assert [s.name for s in await rt.list_steps(wid)] == ["set_event"]  # no numbers taken
    assert len(seen) == 8 + 5 + len(BAD_TIMEOUTS) + 1
    assert counts(db_path)["messages"] == 0


def test_sync_api_hostile_input(db_path: Path) -> None:
    """The synchronous API refuses, with messages that say what to do: a def workflow on
    the async decorator (and the reverse), options given to a view of a runtime, calls
    before launch, and a sync call from the runtime's own event loop (which would wait
    for itself forever)."""
    rt = litewf.Runtime(db_path)
    srt = litewf.SyncRuntime(rt)

    def plain() -> None:
        pass

    async def coroutine() -> None:
        pass

    with pytest.raises(litewf.InvalidValueError, match="SyncRuntime"):
        rt.workflow()(plain)  # type: ignore[arg-type]
    with pytest.raises(litewf.InvalidValueError, match=r"plain 'def'.*@rt.workflow\(\)"):
        srt.workflow()(coroutine)
    with pytest.raises(litewf.InvalidValueError, match="plain 'def'"):
        srt.workflow()(42)  # type: ignore[arg-type]
    with pytest.raises(litewf.InvalidValueError, match="no options"):
        litewf.SyncRuntime(rt, durability="normal")
    with pytest.raises(litewf.RuntimeNotLaunchedError, match=r"SyncRuntime\.send.*with srt:"):
        srt.send("w", 1)
    with pytest.raises(litewf.RuntimeNotLaunchedError, match=r"SyncRuntime\.recv"):
        srt.recv()
    threads = set(threading.enumerate())

    @srt.step()
    def sync_step() -> int:
        return 1

    @rt.workflow()
    async def calls_a_sync_step() -> int:
        return sync_step()  # from the event loop's thread: refused, not a deadlock

    async def main() -> None:
        async with rt:
            with pytest.raises(litewf.LitewfError, match="wait for itself forever"):
                srt.list_workflows()
            with pytest.raises(litewf.LitewfError, match="wait for itself forever"):
                await calls_a_sync_step()
            with pytest.raises(litewf.LitewfError, match="already launched"):
                await anyio.to_thread.run_sync(srt.launch)
            with pytest.raises(litewf.InvalidValueError, match="must be a non-empty str"):
                await anyio.to_thread.run_sync(lambda: srt.send(123, "m"))  # type: ignore[arg-type]

    anyio.run(main)
    assert counts(db_path)["messages"] == 0
    no_thread_left(threads)


def test_sync_api_refuses_what_is_not_a_database(
    db_path: Path, other_db: Path, backend: str
) -> None:
    """A SyncRuntime on a database that is not litewf's (a file of garbage, a schema of
    someone else's tables) and a SyncClient on one that does not exist are refused,
    leaving no event loop thread behind."""
    threads = set(threading.enumerate())
    if backend == "sqlite":
        db_path.write_bytes(b"not a database at all" * 100)
    else:
        sqldb.query(db_path, "CREATE TABLE mine (x INTEGER)")
    with pytest.raises(litewf.DatabaseError):
        litewf.SyncRuntime(db_path).launch()
    with pytest.raises(litewf.DatabaseError):
        litewf.SyncClient(other_db).__enter__()
    no_thread_left(threads)  # their event loop threads ended


def no_thread_left(threads: set[threading.Thread]) -> None:
    """No thread but ``threads`` runs (within 10 s). Compared as sets: a thread an
    earlier test left, such as an abandoned sync step past its timeout, may end meanwhile."""
    deadline = time.monotonic() + 10
    while set(threading.enumerate()) - threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not set(threading.enumerate()) - threads

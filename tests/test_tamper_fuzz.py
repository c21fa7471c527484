"""Fuzz: a hostile value in any column of any row never escapes as a raw exception.

A real database with workflows in every state (steps, events, messages, an error, a
waiting recv, a child, a cancelled one) is built once. Each example copies it, sets one
column of one row of one table to a hostile value (text, blob, huge or infinite numbers,
broken or wrong-shaped JSON, deep nesting, NULL...), then reads it through every public
read path of a Client and a Runtime and through the command line. Only ``LitewfError``
subclasses may escape (and the recorded failure a ``get_result`` re-raises); the command
line exits 0 or 1 and never prints a traceback. Derandomized: CI runs the same examples.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import litewf
from tests.tampering import WORKFLOWS, build_database, read_everything, run_cli, tamper

TABLES = ("workflows", "operations", "events", "messages", "message_keys", "changes")


@dataclass(frozen=True)
class Target:
    """One column of one stored row: ``UPDATE table SET column = ? WHERE where``."""

    table: str
    column: str
    where: str
    params: tuple[Any, ...]
    workflow_id: str


@dataclass(frozen=True)
class Built:
    """The built database and every column of it an example may edit."""

    path: Path
    targets: list[Target]

    def __repr__(self) -> str:  # short, for hypothesis's report of a failing example
        return f"Built({self.path}, {len(self.targets)} targets)"


def _targets(path: Path) -> list[Target]:
    """Every (row, column) of the built database, rows named by their primary key."""
    found = []
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for table in TABLES:
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()
            columns = [c[1] for c in info]
            keys = [c[1] for c in sorted(info, key=lambda c: c[5]) if c[5]] or ["rowid"]
            owner = "destination_id" if "destination_id" in columns else "workflow_id"
            for row in conn.execute(f"SELECT {', '.join(keys)}, {owner} FROM {table}"):
                where = " AND ".join(f"{k} = ?" for k in keys)
                for column in columns:
                    found.append(Target(table, column, where, tuple(row[:-1]), str(row[-1])))
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    path = tmp_path_factory.mktemp("fuzz") / "shop.db"
    build_database(path)
    return Built(path, _targets(path))


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


#: Values litewf never writes, chosen to hit each kind of check.
HOSTILE: list[Any] = [
    None,
    "",
    " ",
    "pending",
    "PENDING",
    "SUCCESS",
    "ERROR",
    "DONE",
    "{",
    "[]",
    "{}",
    "null",
    "1e400",
    "9" * 5000,  # longer than int() reads by default
    _nested(500),
    _nested(990),
    _nested(100_000),
    '"text"',
    '{"module": "builtins", "qualname": "KeyError", "message": "x", "args": ["x"]}',
    '{"module": "builtins", "qualname": "ValueError", "message": 1}',
    '{"module": "os", "qualname": "system", "message": "echo owned"}',
    '{"module": "builtins", "qualname": "SystemExit", "message": "0"}',
    '{"module": "builtins", "qualname": "Exception.__init__", "message": "x"}',
    '{"args": [], "kwargs": {}}',
    '{"args": 1}',
    "1e300",
    1e300,
    -1e300,
    float("inf"),
    float("-inf"),
    2**63 - 1,
    -(2**63),
    -1,
    0,
    1,
    1.5,
    b"",
    b"\x00\xff",
    "\x00",
    "\ud7ff\U0010ffff",
]

# The hand-picked values first: shrinking goes towards them, and they are drawn most.
VALUES = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=20),
    st.binary(max_size=12),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),  # NaN is stored as NULL
)


def _apply(path: Path, target: Target, value: Any) -> bool:
    """Write the value; False if SQLite itself refuses it (NOT NULL, a duplicate key)."""
    try:
        tamper(
            path,
            f"UPDATE {target.table} SET {target.column} = ? WHERE {target.where}",
            value,
            *target.params,
        )
    except sqlite3.IntegrityError:
        return False
    return True


def _cli_lines(workflow_id: str) -> list[list[str]]:
    """The command lines worth running after an edit of ``workflow_id``'s data."""
    wid = workflow_id if workflow_id in WORKFLOWS else "order-1"
    return [
        ["list"],
        ["list", "--json"],
        ["list", "--status", "error"],
        ["doctor"],
        ["doctor", "--json"],
        ["show", wid],
        ["show", wid, "--json"],
        ["events", wid],
        ["events", wid, "--json"],
        ["get-event", wid, "checkout_url"],
    ]


@pytest.fixture(scope="module")
def client(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reader]:
    """One Client, kept open in a portal's event loop, on a working copy of the database
    that each example restores (SQLite's backup API) before editing it: opening a client
    per example would make the fuzz slow."""
    path = tmp_path_factory.mktemp("fuzz-work") / "shop.db"
    shutil.copyfile(built.path, path)
    with (
        start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(litewf.Client(path)) as opened,
    ):
        yield Reader(path, portal, opened)


@dataclass(frozen=True, repr=False)
class Reader:
    """The working copy and the open Client reading it."""

    path: Path
    portal: BlockingPortal
    client: litewf.Client

    def restore(self, template: Path) -> None:
        with (
            contextlib.closing(sqlite3.connect(template)) as source,
            contextlib.closing(sqlite3.connect(self.path)) as target,
        ):
            source.backup(target)

    def read_everything(self) -> list[BaseException]:
        return self.portal.call(read_everything, self.client)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_hostile_value_in_any_column_gives_only_litewf_errors(
    built: Built, client: Reader, data: Any
) -> None:
    target = data.draw(st.sampled_from(built.targets), label="target")
    value = data.draw(VALUES, label="value")
    args = data.draw(st.sampled_from(_cli_lines(target.workflow_id)), label="command")
    client.restore(built.path)
    assume(_apply(client.path, target, value))
    for error in client.read_everything():
        assert isinstance(error, litewf.LitewfError), (target, repr(error))
    code, _, err = run_cli(client.path, *args)
    assert code in (0, 1), (code, err)
    assert "Traceback" not in err, err
    assert code == 0 or err.startswith("litewf: error: "), err

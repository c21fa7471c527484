"""End to end: the agent example's server (uvicorn, a real process) streams tokens over SSE.

The test holds the listening socket and hands it to each server process (``uvicorn --fd``),
so a restarted server answers on the same port, and talks HTTP to it with http.client.
The crash test SIGKILLs the server mid-answer, starts it again on the same database and
reconnects with ``Last-Event-ID``: every token arrives exactly once, in order; then kills
it again while the draft waits at the approval gate (``wait_first``), which survives too.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

import litewf
from examples.agent.agent import AWAITING, fake_model, workflow_id

pytest.importorskip(
    "uvicorn",
    reason="the agent example is served by uvicorn: pip install -e '.[dev]' (or '.[examples]')",
)

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Why keep workflow state in SQLite?"
#: Seconds the fake model waits before each token: the answer takes about a second.
DELAY = 0.02


@dataclass
class Server:
    """The agent server in a child process, serving on ``sock`` (held by the test)."""

    db: Path
    sock: socket.socket
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, approval_timeout: float = 600) -> None:
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            AGENT_DB=str(self.db),
            AGENT_DELAY=str(DELAY),
            AGENT_APPROVAL_TIMEOUT=str(approval_timeout),
        )
        fd = self.sock.fileno()
        command = [sys.executable, "-m", "uvicorn", "examples.agent.server:app", "--fd", str(fd)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*command, "--log-level", "warning"],
                pass_fds=[fd],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)  # a clean shutdown, as Ctrl+C
            assert self.proc.wait(timeout=30) == 0, self.log.read_text()
            self.proc = None

    def connection(self) -> http.client.HTTPConnection:
        host, port = self.sock.getsockname()
        return http.client.HTTPConnection(host, port, timeout=30)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, decoded JSON body)."""
        conn = self.connection()
        try:
            conn.request(method, path, None if body is None else json.dumps(body))
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def events(self, answer_id: str, last_event_id: str | None = None) -> Events:
        conn = self.connection()
        headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
        conn.request("GET", f"/answers/{answer_id}/stream", headers=headers)
        response = conn.getresponse()
        assert response.status == 200, response.read()
        assert response.getheader("content-type") == "text/event-stream"
        return Events(conn, response)


@dataclass
class Events:
    """An open SSE response, read event by event."""

    conn: http.client.HTTPConnection
    response: http.client.HTTPResponse

    def next(self) -> tuple[str, str | None, Any] | None:
        """The next event with data: (type, id, decoded data); None when the body ends."""
        fields: dict[str, str] = {}
        while True:
            line = self.response.readline().decode()
            if not line:
                return None
            line = line.rstrip("\n")
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
            elif "data" in fields:
                return fields.get("event", "message"), fields.get("id"), json.loads(fields["data"])
            else:
                fields = {}  # a retry-only event

    def until(self, last: Any) -> list[tuple[str | None, Any]]:
        """(id, value) of each message up to and including the value ``last``."""
        got: list[tuple[str | None, Any]] = []
        while True:
            event = self.next()
            assert event is not None and event[0] == "message", (event, got)
            got.append(event[1:])
            if event[2] == last:
                return got

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    sock = socket.create_server(("127.0.0.1", 0))
    running = Server(tmp_path / "agent.db", sock, tmp_path / "server.log")
    running.start()
    try:
        yield running
    finally:
        if running.proc is not None:
            running.kill()
        sock.close()


def stream_rows(db: Path, answer_id: str) -> list[tuple[int, str | None]]:
    """The answer's stream as stored: (position, value; None is the close)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        sql = "SELECT position, value FROM streams WHERE workflow_id = ? ORDER BY position"
        return [(int(p), v) for p, v in conn.execute(sql, (workflow_id(answer_id),))]


def status(db: Path, answer_id: str) -> litewf.WorkflowStatus:
    async def read() -> litewf.WorkflowStatus:
        async with litewf.Client(db) as client:
            return await (await client.retrieve_workflow(workflow_id(answer_id))).get_status()

    return anyio.run(read, backend="asyncio")


def test_tokens_arrive_once_and_in_order_across_a_server_crash(server: Server) -> None:
    """Read a few tokens, SIGKILL the server mid-answer, start it again on the same
    database and reconnect with Last-Event-ID: the rest follows, with no token missing
    or repeated, the ids are the offsets 0, 1, 2, ... . Kill it again while the draft
    waits for approval: after the restart the gate still waits (its status is not written
    twice), takes the approval, and the stream ends once."""
    expected = [*fake_model(PROMPT), {"status": AWAITING}, {"status": "approved"}]
    assert server.call("POST", "/answers", {"id": "a1", "prompt": PROMPT})[0] == 202
    events = server.events("a1")
    got: list[tuple[str | None, Any]] = []
    for _ in range(5):
        event = events.next()
        assert event is not None and event[0] == "message"
        got.append(event[1:])
    server.kill()
    assert events.next() is None  # the connection died with the server
    events.close()
    written = stream_rows(server.db, "a1")
    assert len(written) < len(expected) - 2 and all(v is not None for _, v in written)

    server.start()  # recovers the answer: the model step runs again
    events = server.events("a1", last_event_id=got[-1][0])
    got += events.until({"status": AWAITING})
    events.close()
    server.kill()  # at the gate

    server.start()
    events = server.events("a1", last_event_id=got[-1][0])
    assert server.call("POST", "/answers/a1/approve") == (202, {"id": "a1", "sent": "approve"})
    got += events.until({"status": "approved"})
    assert events.next() == ("end", None, {})
    events.close()
    assert got == [(str(i), value) for i, value in enumerate(expected)]

    assert [p for p, _ in stream_rows(server.db, "a1")] == list(range(len(expected) + 1))
    assert server.call("GET", "/answers/a1") == (
        200,
        {"id": "a1", "status": "SUCCESS", "result": "approved"},
    )
    assert status(server.db, "a1").recovery_attempts == 2
    server.stop()


def test_reconnects_resume_after_the_last_event_id(server: Server) -> None:
    """Without a crash: a reconnect with Last-Event-ID N gets N + 1 on; after the last id
    only the end; a finished answer's stream can be read again from any offset. A reject
    wins the gate; an approve sent after it stays queued and changes nothing."""
    expected = [*fake_model("hello"), {"status": AWAITING}, {"status": "rejected"}]
    assert server.call("POST", "/answers", {"id": "b1", "prompt": "hello"})[0] == 202
    events = server.events("b1")
    first = events.next()
    events.close()
    assert first == ("message", "0", expected[0])
    events = server.events("b1", last_event_id="0")
    rest = events.until({"status": AWAITING})
    assert server.call("POST", "/answers/b1/reject")[0] == 202
    rest += events.until({"status": "rejected"})
    assert events.next() == ("end", None, {})
    events.close()
    assert rest == [(str(i), v) for i, v in enumerate(expected)][1:]
    assert server.call("POST", "/answers/b1/approve")[0] == 202  # too late: stays queued

    events = server.events("b1", last_event_id=str(len(expected) - 1))
    assert events.next() == ("end", None, {})
    events.close()
    events = server.events("b1", last_event_id="10")
    assert events.next() == ("message", "11", expected[11])
    events.close()

    # The same ID again: the same run, not a second answer.
    assert server.call("POST", "/answers", {"id": "b1", "prompt": "other"}) == (
        202,
        {"id": "b1", "stream": "/answers/b1/stream"},
    )
    assert len(stream_rows(server.db, "b1")) == len(expected) + 1
    assert server.call("GET", "/answers/b1")[1]["result"] == "rejected"
    server.stop()


def test_a_draft_nobody_decides_on_expires(server: Server) -> None:
    """No decision within the approval timeout: the stream says "expired" and ends."""
    server.kill()
    server.start(approval_timeout=0.2)
    assert server.call("POST", "/answers", {"id": "c1", "prompt": "hi"})[0] == 202
    events = server.events("c1")
    got = events.until({"status": "expired"})
    assert events.next() == ("end", None, {})
    events.close()
    assert [v for _, v in got][-2:] == [{"status": AWAITING}, {"status": "expired"}]
    assert server.call("GET", "/answers/c1")[1]["result"] == "expired"
    server.stop()


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "code"),
    [
        ("GET", "/answers/nope/stream", None, {}, 404),
        ("GET", "/answers/nope", None, {}, 404),
        ("POST", "/answers/nope/approve", None, {}, 404),
        ("POST", "/answers/b1/publish", None, {}, 404),
        ("GET", "/answers/b1/stream", None, {"Last-Event-ID": "x"}, 400),
        ("GET", "/answers/b1/stream", None, {"Last-Event-ID": "-1"}, 400),
        ("POST", "/answers", "not json", {}, 400),
        ("POST", "/answers", json.dumps({"id": "a b", "prompt": "p"}), {}, 400),
        ("POST", "/answers", json.dumps({"id": "c", "prompt": ""}), {}, 400),
        ("POST", "/answers", json.dumps({"id": "c", "prompt": None}), {}, 400),
        ("POST", "/answers", json.dumps({"id": ["c"], "prompt": "p"}), {}, 400),
        ("DELETE", "/answers/b1", None, {}, 404),
    ],
)
def test_bad_requests_are_refused(
    server: Server,
    method: str,
    path: str,
    body: str | None,
    headers: dict[str, str],
    code: int,
) -> None:
    if path.startswith("/answers/b1"):
        assert server.call("POST", "/answers", {"id": "b1", "prompt": "p"})[0] == 202
    conn = server.connection()
    try:
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        assert response.status == code
        assert "error" in json.loads(response.read())
    finally:
        conn.close()

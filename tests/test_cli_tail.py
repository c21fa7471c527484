"""``litewf tail``: follow a workflow's stream from the command line.

A runtime in the test writes the stream; ``tail`` runs once as a real ``python -m litewf``
process that follows the stream while it grows, and otherwise in-process through
``main([...])`` on a database the runtime left behind.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import litewf
from litewf import testing
from litewf._cli import main
from tests.test_cli import snapshot

ROOT = Path(__file__).resolve().parent.parent

#: Long enough never to be reached: the tests send the messages these waits are for.
LONG = 600.0
FIRST = ["first line", {"n": 2}, [3, "three"]]


def build(rt: litewf.Runtime) -> dict[str, litewf.Workflow[..., Any]]:
    """``story`` writes FIRST, waits for "more", writes two values (one from a step),
    closes the stream and waits for "finish"; ``short`` writes two values and returns
    without closing its stream."""

    @rt.step(name="tail.later")
    async def later() -> None:
        await rt.write_stream("out", "from a step")

    @rt.workflow(name="tail.story")
    async def story() -> str:
        for value in FIRST:
            await rt.write_stream("out", value)
        await rt.recv("more", timeout=LONG)
        await later()
        await rt.write_stream("out", 4.5)
        await rt.close_stream("out")
        await rt.recv("finish", timeout=LONG)
        return "done"

    @rt.workflow(name="tail.short")
    async def short() -> None:
        await rt.write_stream("out", "a")
        await rt.write_stream("out", "b")

    return {"story": story, "short": short}


def run(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--db", str(db), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def left(db_path: Path) -> Path:
    """A database where ``story-1`` waits in recv("more") with FIRST written (stream open)
    and ``short-1`` has finished."""
    db = db_path

    async def serve() -> None:
        rt = litewf.Runtime(db)
        flows = build(rt)
        async with rt:
            await (await rt.start_workflow(flows["short"], workflow_id="short-1")).get_result()
            await rt.start_workflow(flows["story"], workflow_id="story-1")
            with anyio.fail_after(30):
                while testing.waiting(rt) < 1:  # noqa: ASYNC110 - polling a counter
                    await anyio.sleep(0.005)

    anyio.run(serve, backend="asyncio")
    return db


async def test_tail_follows_a_stream_written_by_another_process(db_path: Path) -> None:
    """A real ``litewf tail`` prints the values written so far, then each value as it is
    written (from the workflow or a step), and exits 0 when the stream is closed, while
    the workflow still runs."""
    db = db_path
    rt = litewf.Runtime(db)
    flows = build(rt)
    async with rt:
        handle = await rt.start_workflow(flows["story"], workflow_id="story-1")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        command = [sys.executable, "-m", "litewf", "--db", str(db), "tail", "story-1", "out"]
        async with await anyio.open_process(command, env=env) as proc:
            assert proc.stdout is not None
            lines = BufferedByteReceiveStream(proc.stdout)

            async def line() -> str:
                return (await lines.receive_until(b"\n", 1 << 16)).decode()

            with anyio.fail_after(60):
                assert [await line() for _ in FIRST] == [
                    "first line",
                    '{"n": 2}',
                    '[3, "three"]',
                ]
                await rt.send("story-1", "go", topic="more")
                assert [await line(), await line()] == ["from a step", "4.5"]
                assert await proc.wait() == 0
        assert (await handle.get_status()).status is litewf.Status.PENDING  # still running
        await rt.send("story-1", "go", topic="finish")
        assert await handle.get_result(timeout=30) == "done"


def test_tail_json_gives_each_value_its_offset(
    capsys: pytest.CaptureFixture[str], left: Path
) -> None:
    """--json: one object per line with the value's offset; --from starts there."""
    code, out, _ = run(capsys, left, "tail", "story-1", "out", "--json", "--timeout", "0")
    assert code == 1
    assert [json.loads(x) for x in out.splitlines()] == [
        {"offset": i, "value": v} for i, v in enumerate(FIRST)
    ]
    code, out, _ = run(
        capsys, left, "tail", "story-1", "out", "--from", "2", "--json", "--timeout", "0"
    )
    assert [json.loads(x) for x in out.splitlines()] == [{"offset": 2, "value": FIRST[2]}]


def test_tail_timeout_names_the_offset_to_continue_from(
    capsys: pytest.CaptureFixture[str], left: Path
) -> None:
    """With --timeout, a stream still open: what is there, then exit 1 with one line
    saying where to continue; continuing from there prints nothing twice."""
    code, out, err = run(capsys, left, "tail", "story-1", "out", "--timeout", "0")
    assert (code, out.splitlines()) == (1, ["first line", '{"n": 2}', '[3, "three"]'])
    assert err == (
        "litewf: error: no new value of stream 'out' within 0 s; it is still open "
        "(continue with --from 3)\n"
    )
    code, out, err = run(capsys, left, "tail", "story-1", "out", "--from", "3", "--timeout", "0.05")
    assert (code, out) == (1, "")
    assert "(continue with --from 3)" in err


def test_tail_ends_with_exit_0_when_the_workflow_finished(
    capsys: pytest.CaptureFixture[str], left: Path
) -> None:
    """A finished workflow's stream ends after its last value even if it was never
    closed, with or without a timeout; reading from the end prints nothing."""
    assert run(capsys, left, "tail", "short-1", "out") == (0, "a\nb\n", "")
    assert run(capsys, left, "tail", "short-1", "out", "--timeout", "5") == (0, "a\nb\n", "")
    assert run(capsys, left, "tail", "short-1", "out", "--from", "1", "--json") == (
        0,
        '{"offset": 1, "value": "b"}\n',
        "",
    )
    assert run(capsys, left, "tail", "short-1", "out", "--from", "2") == (0, "", "")
    assert run(capsys, left, "tail", "short-1", "never-written") == (0, "", "")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["tail", "nope", "out"], "no workflow with ID 'nope'"),
        (["tail", "story-1", "a\x00b"], "NUL"),
        (["tail", "story-1", "k" * 100_000], "characters long"),
    ],
)
def test_tail_user_errors_are_one_line_with_exit_1(
    capsys: pytest.CaptureFixture[str], left: Path, args: list[str], needle: str
) -> None:
    code, out, err = run(capsys, left, *args)
    assert (code, out) == (1, "")
    assert err.startswith("litewf: error: ") and err.count("\n") == 1, err
    assert needle in err, err


@pytest.mark.parametrize(
    "args",
    [
        ["tail", "story-1"],
        ["tail", "story-1", "out", "--from", "-1"],
        ["tail", "story-1", "out", "--from", "x"],
        ["tail", "story-1", "out", "--from", str(2**63)],
        ["tail", "story-1", "out", "--timeout", "nan"],
        ["tail", "story-1", "out", "--timeout", "soon"],
    ],
)
def test_tail_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], left: Path, args: list[str]
) -> None:
    assert run(capsys, left, *args)[0] == 2


def test_tail_writes_nothing(capsys: pytest.CaptureFixture[str], left: Path) -> None:
    """tail only reads: the file is byte for byte the same afterwards (PostgreSQL: row
    for row)."""
    before = snapshot(left)
    assert run(capsys, left, "tail", "short-1", "out")[0] == 0
    assert run(capsys, left, "tail", "story-1", "out", "--timeout", "0")[0] == 1
    assert snapshot(left) == before
    assert not Path(f"{left}-wal").exists()


def test_tail_is_listed_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "tail" in capsys.readouterr().out

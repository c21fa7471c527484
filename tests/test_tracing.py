"""OpenTelemetry spans (``litewf[otel]``): a span per workflow run and per step attempt,
the starter's trace context stored with the workflow so that a run recovered in another
process after a SIGKILL continues the same trace; nothing at all when tracing is off.

The SDK's ``InMemorySpanExporter`` collects the spans. OpenTelemetry lets a process set
its tracer provider once; the fixture resets that private global before and after each
test (as OpenTelemetry's own tests do), so the rest of the suite runs untraced.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.util._once import Once

import litewf
from litewf import _tracing as tracing
from tests import procs, sqldb
from tests.children.tracing import register
from tests.conditions import wait_until

ROOT = Path(__file__).resolve().parent.parent


def _reset_provider() -> None:
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """A tracer provider for this test, exporting to memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset_provider()
    trace.set_tracer_provider(provider)
    yield exporter
    _reset_provider()
    provider.shutdown()


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        found.setdefault(span.name, []).append(span)
    return found


def ids(span: ReadableSpan | trace.Span) -> tuple[int, int]:
    context = span.get_span_context()
    assert context is not None
    return context.trace_id, context.span_id


def attr(span: ReadableSpan, key: str) -> Any:
    return (span.attributes or {})[key]


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def stored_inputs(db: Path, workflow_id: str) -> dict[str, Any]:
    ((text,),) = sqldb.query(
        db, "SELECT inputs FROM workflows WHERE workflow_id = ?", (workflow_id,)
    )
    inputs: dict[str, Any] = json.loads(text)
    return inputs


async def test_a_run_and_its_steps_are_spans_under_the_callers(
    db_path: Path, spans: InMemorySpanExporter
) -> None:
    """The workflow's span is the caller's child, its steps' spans are its children, with
    the workflow ID and name, the operation number, the attempt and the status."""
    rt = litewf.Runtime(db_path)

    @rt.step(name="t.add")
    async def add(a: int, b: int) -> int:
        return a + b

    @rt.step(name="t.double")
    def double(n: int) -> int:  # a sync step: its thread sees the step's span current
        assert trace.get_current_span().is_recording()
        with trace.get_tracer("user").start_as_current_span("inside"):
            return n * 2

    @rt.workflow(name="t.flow")
    async def flow(a: int) -> int:
        return await double(await add(a, 1))

    async with rt:
        with trace.get_tracer("test").start_as_current_span("caller") as caller:
            h = await rt.start_workflow(flow, 2, workflow_id="w-1")
        assert await h.get_result(timeout=10) == 6
    found = by_name(spans)
    (run,) = found["workflow t.flow"]
    trace_id, caller_span = ids(caller)
    assert ids(run)[0] == trace_id and parent_id(run) == caller_span
    assert run.attributes == {
        "litewf.workflow.id": "w-1",
        "litewf.workflow.name": "t.flow",
        "litewf.workflow.resumed": False,
        "litewf.status": "SUCCESS",
    }
    (first,), (second,) = found["step t.add"], found["step t.double"]
    assert {parent_id(first), parent_id(second)} == {ids(run)[1]}
    assert dict(first.attributes or {}) == {
        "litewf.workflow.id": "w-1",
        "litewf.workflow.name": "t.flow",
        "litewf.step.name": "t.add",
        "litewf.operation.id": 0,
        "litewf.step.attempt": 1,
        "litewf.status": "ok",
    }
    assert second.attributes is not None and attr(second, "litewf.operation.id") == 1
    (inside,) = found["inside"]
    assert parent_id(inside) == ids(second)[1]
    traceparent = stored_inputs(db_path, "w-1")["trace"]["traceparent"]
    assert traceparent.startswith(f"00-{trace_id:032x}-{caller_span:016x}-")


async def test_failed_attempts_and_a_failed_workflow_record_their_errors(
    db_path: Path, spans: InMemorySpanExporter
) -> None:
    """A span per attempt (1, 2, 3), each failure recorded on its span; the workflow's
    error on the run's span, status ERROR."""
    rt = litewf.Runtime(db_path)
    calls = [0]

    @rt.step(name="t.flaky", retries=2, retry_interval=0.001)
    async def flaky() -> str:
        calls[0] += 1
        if calls[0] < 3:
            raise ConnectionError(f"attempt {calls[0]} failed")
        return "ok"

    @rt.step(name="t.fail")
    async def fail() -> None:
        raise ValueError("declined")

    @rt.workflow(name="t.flow")
    async def flow() -> None:
        await flaky()
        await fail()

    async with rt:
        h = await rt.start_workflow(flow, workflow_id="w-2")
        with pytest.raises(ValueError, match="declined"):
            await h.get_result(timeout=10)
    found = by_name(spans)
    attempts = sorted(found["step t.flaky"], key=lambda s: int(attr(s, "litewf.step.attempt")))
    assert [attr(s, "litewf.step.attempt") for s in attempts] == [1, 2, 3]
    assert [s.status.status_code for s in attempts] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert attempts[0].events[0].name == "exception"
    assert dict(attempts[0].events[0].attributes or {})["exception.message"] == "attempt 1 failed"
    (run,) = found["workflow t.flow"]
    assert attr(run, "litewf.status") == "ERROR"
    assert run.status.status_code is StatusCode.ERROR
    assert dict(run.events[0].attributes or {})["exception.type"] == "ValueError"


async def test_with_no_current_span_a_start_span_roots_the_trace(
    db_path: Path, spans: InMemorySpanExporter
) -> None:
    """Started with no span current: a short ``start NAME`` span is stored as the parent;
    a child workflow's run is a child of its parent's run, in the same trace."""
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="t.child")
    async def child() -> str:
        return "c"

    @rt.workflow(name="t.parent")
    async def parent() -> str:
        return await child()

    async with rt:
        h = await rt.start_workflow(parent, workflow_id="w-3")
        assert await h.get_result(timeout=10) == "c"
    found = by_name(spans)
    (start,), (run,), (child_run,) = (
        found["start t.parent"],
        found["workflow t.parent"],
        found["workflow t.child"],
    )
    assert start.parent is None and start.kind is trace.SpanKind.PRODUCER
    assert parent_id(run) == ids(start)[1]
    assert parent_id(child_run) == ids(run)[1]
    assert ids(start)[0] == ids(run)[0] == ids(child_run)[0]


async def test_queued_workflows_carry_the_trace_too(
    db_path: Path, spans: InMemorySpanExporter
) -> None:
    rt = litewf.Runtime(db_path)
    queue = rt.queue("t.q")

    @rt.workflow(name="t.queued")
    async def queued() -> str:
        return "q"

    async with rt:
        with trace.get_tracer("test").start_as_current_span("caller") as caller:
            h = await queue.enqueue(queued, workflow_id="w-4")
        assert await h.get_result(timeout=10) == "q"
    (run,) = by_name(spans)["workflow t.queued"]
    assert parent_id(run) == ids(caller)[1]


async def test_a_recovered_run_in_another_process_continues_the_trace(
    db_path: Path, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    """A child process starts the workflow inside a span and is SIGKILLed in its second
    step; a runtime here recovers it: its run's span is the caller's child (same trace
    ID as the child's spans), and only the step that had not finished runs again."""
    db = db_path
    proc = procs.spawn("tracing", "run", db, tmp_path)
    try:
        await procs.wait_for_file(tmp_path / "in-two", proc)
    finally:
        procs.kill(proc)
    caller = json.loads((tmp_path / "caller.json").read_text())
    before = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text().splitlines()]
    assert sorted(s["name"] for s in before) == ["caller", "step tr.one"]  # the run's: killed
    assert {s["trace_id"] for s in before} == {caller["trace_id"]}
    (tmp_path / "block").unlink()

    rt = litewf.Runtime(db, executor_id="here")
    register(rt, tmp_path)
    async with rt:
        h = await rt.retrieve_workflow("traced-1")
        assert await h.get_result(timeout=20) == "one o-1, two o-1"
    found = by_name(spans)
    (run,) = found["workflow tr.flow"]
    assert ids(run)[0] == caller["trace_id"]
    assert parent_id(run) == caller["span_id"]
    assert attr(run, "litewf.workflow.resumed") is True
    assert "step tr.one" not in found  # replayed from its record: nothing ran
    (two,) = found["step tr.two"]
    assert ids(two)[0] == caller["trace_id"] and parent_id(two) == ids(run)[1]
    assert attr(two, "litewf.operation.id") == 1


async def test_without_a_provider_nothing_is_stored_or_traced(db_path: Path) -> None:
    """OpenTelemetry imported but no provider set: the stored arguments are as before."""
    _reset_provider()
    rt = litewf.Runtime(db_path)

    @rt.workflow(name="t.plain")
    async def plain(n: int) -> int:
        return n

    async with rt:
        with trace.get_tracer("test").start_as_current_span("caller"):
            h = await rt.start_workflow(plain, 1, workflow_id="w-5")
        assert await h.get_result(timeout=10) == 1
    assert stored_inputs(db_path, "w-5") == {"args": [1], "kwargs": {}}


def test_litewf_never_imports_opentelemetry(tmp_path: Path) -> None:
    """A process that did not import OpenTelemetry runs workflows without loading it."""
    script = (
        "import sys, anyio, litewf\n"
        f"rt = litewf.Runtime({str(tmp_path / 'x.db')!r})\n"
        "@rt.step()\n"
        "async def s() -> int: return 1\n"
        "@rt.workflow()\n"
        "async def w() -> int: return await s()\n"
        "async def main() -> None:\n"
        "    async with rt:\n"
        "        assert await (await rt.start_workflow(w)).get_result(timeout=10) == 1\n"
        "anyio.run(main)\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')]\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()


async def test_a_cancelled_run_ends_its_span_as_stopped(
    db_path: Path, spans: InMemorySpanExporter
) -> None:
    rt = litewf.Runtime(db_path)
    waiting = anyio.Event()

    @rt.step(name="t.wait")
    async def wait() -> None:
        waiting.set()
        await anyio.sleep(600)

    @rt.workflow(name="t.long")
    async def long() -> None:
        await wait()

    async with rt:
        await rt.start_workflow(long, workflow_id="w-6")
        await waiting.wait()
        await rt.cancel_workflow("w-6")
        await wait_until(lambda: "workflow t.long" in by_name(spans))
    found = by_name(spans)
    (step,) = found["step t.wait"]
    assert attr(step, "litewf.status") == "stopped"
    (run,) = found["workflow t.long"]
    assert attr(run, "litewf.status") in {"superseded", "stopped"}


@pytest.mark.parametrize(
    "stored",
    [{"traceparent": 5}, {"traceparent": "00-zz"}, {"traceparent": ["x"]}, "text", None, [1]],
)
def test_a_damaged_stored_context_gives_a_root_span_and_no_error(
    spans: InMemorySpanExporter, stored: Any
) -> None:
    """The stored context is read leniently: tracing never fails a workflow."""
    with tracing.workflow_run("w", "t.damaged", fresh=False) as run:
        run.begin({"args": [], "kwargs": {}, "trace": stored})
    (span,) = spans.get_finished_spans()
    assert span.parent is None and attr(span, "litewf.status") == "ok"


def test_def_workflows_of_the_sync_api_are_traced_the_same(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    """A ``def`` workflow runs in a thread of its own; its steps' spans are still children
    of its run's span, and the run's of the caller's."""
    with litewf.SyncRuntime(tmp_path / "s.db") as srt:

        @srt.step(name="t.sync_step")
        def step(n: int) -> int:
            return n + 1

        @srt.workflow(name="t.sync_flow")
        def flow(n: int) -> int:
            return step(n)

        with trace.get_tracer("test").start_as_current_span("caller") as caller:
            h = srt.start_workflow(flow, 1, workflow_id="w-7")
        assert h.get_result(timeout=10) == 2
    found = by_name(spans)
    (run,), (step_span,) = found["workflow t.sync_flow"], found["step t.sync_step"]
    assert parent_id(run) == ids(caller)[1] and parent_id(step_span) == ids(run)[1]
    assert attr(step_span, "litewf.workflow.name") == "t.sync_flow"

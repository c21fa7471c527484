"""Child program for tests/test_tracing.py: a traced workflow whose process is SIGKILLed.

``run DB FOLDER``: sets an OpenTelemetry tracer provider that writes each ended span as
a JSON line to ``FOLDER/spans.jsonl``, then, inside a span ``caller`` (its IDs written
to ``FOLDER/caller.json``), starts workflow ``traced-1``: step ``tr.one`` returns, step
``tr.two`` touches ``FOLDER/in-two`` and blocks while ``FOLDER/block`` exists, until the
test kills the process. ``register`` is shared with the test process, which recovers it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import litewf
from tests.procs import touch


def register(rt: litewf.Runtime, folder: Path) -> litewf.Workflow[[str], str]:
    @rt.step(name="tr.one")
    async def one(order: str) -> str:
        return f"one {order}"

    @rt.step(name="tr.two")
    async def two(order: str) -> str:
        touch(folder / "in-two")
        while (folder / "block").exists():  # noqa: ASYNC110 - the test kills us here
            await anyio.sleep(0.01)
        return f"two {order}"

    @rt.workflow(name="tr.flow")
    async def flow(order: str) -> str:
        return f"{await one(order)}, {await two(order)}"

    return flow


class FileExporter(SpanExporter):
    """Each ended span as a JSON line (flushed: a SIGKILL loses nothing written)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._path.open("a", encoding="utf-8") as f:
            for span in spans:
                context = span.get_span_context()
                assert context is not None
                f.write(json.dumps({"name": span.name, "trace_id": context.trace_id}) + "\n")
        return SpanExportResult.SUCCESS


async def run(db: str, folder: Path) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(folder / "spans.jsonl")))
    trace.set_tracer_provider(provider)
    rt = litewf.Runtime(db, executor_id="child")
    flow = register(rt, folder)
    touch(folder / "block")
    async with rt:
        with trace.get_tracer("test").start_as_current_span("caller") as caller:
            context = caller.get_span_context()
            ids: dict[str, Any] = {"trace_id": context.trace_id, "span_id": context.span_id}
            (folder / "caller.json").write_text(json.dumps(ids))
            await rt.start_workflow(flow, "o-1", workflow_id="traced-1")
        await anyio.sleep(600)  # killed meanwhile


if __name__ == "__main__":
    anyio.run(run, sys.argv[2], Path(sys.argv[3]), backend="asyncio")

"""OpenTelemetry spans for workflow runs and step attempts (the ``litewf[otel]`` extra).

litewf never imports OpenTelemetry itself: it traces once the application has imported
``opentelemetry.trace`` and set a tracer provider (a process that never imported it
cannot have configured one). Without the extra, or with no provider set, each hook
below is a dictionary lookup and a shared do-nothing object: nothing is stored, no span
is made.

The trace context travels with the workflow: its stored arguments carry its starter's
W3C ``traceparent`` under the key ``"trace"`` (as a scheduled run's carry ``"schedule"``),
so every run of it, the first one and any recovered one in another process after a
crash, is a child of that context and belongs to the same trace. A workflow started with
no span current gets a short ``start NAME`` span as its trace's root. Starts made with
tracing off carry nothing; their runs are each the root of a trace of their own.
"""

from __future__ import annotations

import os
import sys
from contextvars import ContextVar, Token
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = ["TRACE_KEY", "start_context", "step_attempt", "workflow_run"]

#: The key of the trace context in a workflow's stored arguments.
TRACE_KEY = "trace"

#: Attribute names (``litewf.*``) of the spans.
WORKFLOW_ID = "litewf.workflow.id"
WORKFLOW_NAME = "litewf.workflow.name"
RESUMED = "litewf.workflow.resumed"
STEP_NAME = "litewf.step.name"
OPERATION = "litewf.operation.id"
ATTEMPT = "litewf.step.attempt"
STATUS = "litewf.status"

_cache: list[Any] = [None, None]  # [provider, its litewf tracer]
#: The running workflow's name, for its steps' spans (set only while tracing).
_workflow_name: ContextVar[str | None] = ContextVar("litewf_traced_workflow", default=None)


def _tracer() -> tuple[ModuleType, Tracer] | None:
    """``opentelemetry.trace`` and litewf's tracer, if the application set a provider."""
    api = sys.modules.get("opentelemetry.trace")
    if api is None:
        return None
    # The global that ``set_tracer_provider`` sets, read without ``get_tracer_provider``'s
    # environment lookup on every call (a provider named in the environment is loaded
    # by that call, so it is made when the variable is set).
    provider: Any = getattr(api, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is None and not _provider_in_environment():
        return None
    if provider is None or provider is _UNKNOWN:
        provider = api.get_tracer_provider()
    if isinstance(provider, (api.ProxyTracerProvider, api.NoOpTracerProvider)):
        return None
    if _cache[0] is not provider:
        _cache[:] = [provider, provider.get_tracer("litewf")]
    return api, _cache[1]


_UNKNOWN = object()
_environment: list[bool] = []


def _provider_in_environment() -> bool:
    """Whether ``OTEL_PYTHON_TRACER_PROVIDER`` names a provider (looked up once)."""
    if not _environment:
        _environment.append("OTEL_PYTHON_TRACER_PROVIDER" in os.environ)
    return _environment[0]


def _propagator() -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()


def start_context(workflow_name: str) -> dict[str, str] | None:
    """The trace context to store with a workflow being started (None: tracing is off):
    the current span's, or that of a ``start NAME`` span made here when none is current."""
    traced = _tracer()
    if traced is None:
        return None
    api, tracer = traced
    carrier: dict[str, str] = {}
    if api.get_current_span().get_span_context().is_valid:
        _propagator().inject(carrier)
    else:
        attributes = {WORKFLOW_NAME: workflow_name}
        kind = api.SpanKind.PRODUCER
        with tracer.start_as_current_span(
            f"start {workflow_name}", kind=kind, attributes=attributes
        ):
            _propagator().inject(carrier)
    return carrier or None


class _Off:
    """What the hooks return while tracing is off: does nothing, cheaply."""

    __slots__ = ()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def begin(self, decoded: Any) -> None:
        return None

    def outcome(self, status: str, error: BaseException | None = None) -> None:
        return None


_OFF = _Off()


class _Traced:
    """A span made current from ``begin`` until the ``with`` block ends."""

    def __init__(self, api: ModuleType, tracer: Tracer, name: str, attrs: dict[str, Any]) -> None:
        self._api, self._tracer, self._name, self._attrs = api, tracer, name, attrs
        self._span: Span | None = None
        self._status_set = False
        self._context_token: Any = None
        self._name_token: Token[str | None] | None = None

    def __enter__(self) -> Self:
        return self

    def begin(self, decoded: Any = None) -> None:
        """Start the span and make it current: its parent the trace context stored in
        ``decoded`` (a workflow's arguments), else the current context."""
        if self._span is not None:
            return
        from opentelemetry import context

        stored = decoded.get(TRACE_KEY) if isinstance(decoded, dict) else None
        parent = None
        if isinstance(stored, dict):  # (only strings: a damaged entry is ignored, not raised)
            text = {k: v for k, v in stored.items() if isinstance(k, str) and isinstance(v, str)}
            parent = _propagator().extract(text)
        self._span = self._tracer.start_span(self._name, parent, attributes=self._attrs)
        self._context_token = context.attach(self._api.set_span_in_context(self._span))
        if STEP_NAME not in self._attrs:
            self._name_token = _workflow_name.set(self._attrs[WORKFLOW_NAME])

    def outcome(self, status: str, error: BaseException | None = None) -> None:
        """Set the span's ``litewf.status``; an error is recorded on it."""
        self.begin()
        span = self._span
        assert span is not None
        self._status_set = True
        span.set_attribute(STATUS, status)
        if error is not None:
            span.record_exception(error)
            span.set_status(self._api.Status(self._api.StatusCode.ERROR, str(error)))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._span is None:
            return
        if not self._status_set:
            if exc is None:
                self.outcome("ok")
            else:  # a failed attempt; or cancelled, shut down, crashed: no outcome stored
                self.outcome("error" if isinstance(exc, Exception) else "stopped", exc)
        self._span.end()
        from opentelemetry import context

        context.detach(self._context_token)
        if self._name_token is not None:
            _workflow_name.reset(self._name_token)


def workflow_run(workflow_id: str, name: str, fresh: bool) -> _Traced | _Off:
    """A workflow run's span: ``with`` around the run, ``begin(decoded arguments)`` once
    they are read, ``outcome(status, error)`` when known."""
    traced = _tracer()
    if traced is None:
        return _OFF
    attrs = {WORKFLOW_ID: workflow_id, WORKFLOW_NAME: name, RESUMED: not fresh}
    return _Traced(*traced, f"workflow {name}", attrs)


def step_attempt(operation: tuple[Any, int] | None, step: str, attempt: int) -> _Traced | _Off:
    """The span of one attempt of a step body inside a workflow (``operation``: its
    ``WorkflowContext`` and operation number; None: outside one, no span)."""
    traced = None if operation is None else _tracer()
    if traced is None or operation is None:
        return _OFF
    ctx, op_id = operation
    attrs: dict[str, Any] = {
        WORKFLOW_ID: ctx.workflow_id,
        WORKFLOW_NAME: _workflow_name.get() or "",
        STEP_NAME: step,
        OPERATION: op_id,
        ATTEMPT: attempt,
    }
    span = _Traced(*traced, f"step {step}", attrs)
    span.begin()
    return span

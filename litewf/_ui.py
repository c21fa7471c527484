"""``litewf ui``: a local web page over a database (Starlette; the ``ui`` extra).

The app reads and steers through a ``Client`` (it runs no workflows), opened for the
app's lifetime. Pages are rendered by ``_ui_pages``; they refresh themselves through
``/events``, Server-Sent Events fed by the client's change notifications (this
process's own writes and, through the change feed, every other process's).

Protection: it listens on 127.0.0.1 unless told otherwise (``_cli_ui``); requests
must name this host (``Host``: no DNS rebinding); a POST must carry the page's CSRF
token (a secret made at start) and, when the browser sends one, this origin; every page
has a Content-Security-Policy that allows scripts from the dashboard only.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from . import _inspectsql as inspectsql
from . import _journal as journal
from . import _ui_assets as assets
from . import _ui_pages as pages
from ._change import Change
from ._client import Client
from ._exceptions import InvalidValueError, LitewfError, WorkflowNotFoundError
from ._rows import Columns
from ._session import Session

__all__ = ["create_app"]

#: Values of a stream shown on a workflow's page (the last ones).
STREAM_VALUES = 100
#: Children listed on a workflow's page.
CHILDREN = 200
#: Page sizes the list offers (default the first).
PAGE_SIZES = (50, 20, 100, 500)
#: A comment line keeps an idle event stream open through proxies and tells a dead peer.
KEEPALIVE_S = 15.0
#: Changes gathered before a refresh is announced: a burst of writes is one refresh.
SETTLE_S = 0.1

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class _Changes:
    """Fans the client's change notifications out to the open event streams."""

    def __init__(self) -> None:
        self.seq = 0
        self.recent: deque[tuple[int, str]] = deque(maxlen=1000)
        self._event = anyio.Event()

    def notify(self, change: Change) -> None:
        self.seq += 1
        self.recent.append((self.seq, change.workflow_id))
        self._event.set()
        self._event = anyio.Event()

    async def wait(self, timeout: float) -> None:
        with anyio.move_on_after(timeout):
            await self._event.wait()

    def since(self, seq: int) -> dict[str, Any]:
        """The workflows changed after ``seq`` (``all`` when more changed than remembered)."""
        ids = sorted({wid for s, wid in self.recent if s > seq})
        lost = not self.recent or self.recent[0][0] > seq + 1
        return {"ids": ids[:200], "all": lost or len(ids) > 200}


class _State:
    def __init__(self, path: str, allowed_hosts: set[str]) -> None:
        self.path = path
        self.allowed_hosts = allowed_hosts
        self.csrf = secrets.token_urlsafe(32)
        self.changes = _Changes()
        self.client: Client | None = None

    @property
    def session(self) -> Session:
        assert self.client is not None
        return self.client._session_for("ui")


def create_app(path: str | os.PathLike[str], *, host: str = "127.0.0.1") -> Starlette:
    """The dashboard over the database at ``path`` (never created); ``host``: the
    address it is served on (requests naming another host are refused)."""
    state = _State(os.fspath(path), _LOOPBACK | {host.strip("[]")})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with Client(state.path) as client:
            state.client = client
            state.session.notifier.add_listener(state.changes.notify)
            yield
            state.client = None

    routes = [
        Route("/", _guarded(state, _list)),
        Route("/workflow", _guarded(state, _workflow)),
        Route("/workflow/{action:str}", _guarded(state, _act), methods=["POST"]),
        Route("/events", _guarded(state, _events)),
        Route("/static/ui.js", _guarded(state, _asset(assets.SCRIPT, "text/javascript"))),
        Route("/static/ui.css", _guarded(state, _asset(assets.STYLE, "text/css"))),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


Handler = Callable[[_State, Request], Awaitable[Response]]


def _guarded(state: _State, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` behind the host check, with the security headers on its response."""

    async def endpoint(request: Request) -> Response:
        host = _host_of(request.headers.get("host") or "")
        if host not in state.allowed_hosts:
            return _message(400, "Wrong host", f"this dashboard does not serve {host!r}")
        try:
            response = await handler(state, request)
        except WorkflowNotFoundError as exc:
            response = _message(404, "Not found", str(exc))
        except LitewfError as exc:
            response = _message(400, "Cannot do that", str(exc))
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"  # (no-referrer: Origin null)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return endpoint


def _host_of(header: str) -> str:
    """The host named by a Host header, without its port ("[::1]:80" is "::1")."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0]


def _message(code: int, title: str, text: str) -> HTMLResponse:
    return HTMLResponse(pages.message_page(title, text), status_code=code)


def _asset(text: str, kind: str) -> Handler:
    async def serve(state: _State, request: Request) -> Response:
        return Response(text, media_type=kind)

    return serve


# -- the list ----------------------------------------------------------------------------------


def _moment(text: str, what: str) -> datetime | None:
    """A datetime-local field's text (UTC unless it names a zone); None when empty."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValueError(f"{what} is not a date and time: {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _whole(text: str, what: str, default: int) -> int:
    if not text:
        return default
    if not text.isdigit() or int(text) < 1 or len(text) > 9:
        raise InvalidValueError(f"{what} must be a whole number >= 1, got {text!r}")
    return int(text)


async def _list(state: _State, request: Request) -> Response:
    q = request.query_params
    keys = ("status", "name", "queue", "prefix", "since", "until")
    filters = {k: q.get(k, "").strip() for k in keys}
    page, size, found, more, problem = 1, PAGE_SIZES[0], [], False, None
    try:
        page = _whole(q.get("page", ""), "page", 1)
        size = _whole(q.get("size", ""), "size", PAGE_SIZES[0])
        size = size if size in PAGE_SIZES else PAGE_SIZES[0]
        rows = await state.session.list_workflows_marked(
            status=filters["status"] or None,
            name=filters["name"] or None,
            queue=filters["queue"] or None,
            prefix=filters["prefix"] or None,
            since=_moment(filters["since"], "since"),
            until=_moment(filters["until"], "until"),
            limit=size + 1,
            offset=(page - 1) * size,
        )
        found, more = rows[:size], len(rows) > size
    except LitewfError as exc:
        problem = str(exc)
    view = pages.ListView(filters, page, size, list(found), more, problem)
    code = 200 if problem is None else 400
    if q.get("partial"):
        return HTMLResponse(pages.list_rows(view), status_code=code)
    return HTMLResponse(pages.list_page(view), status_code=code)


# -- one workflow ------------------------------------------------------------------------------


async def _part(read: Callable[[], Awaitable[Any]]) -> Any:
    """What ``read`` returns, or the ``LitewfError`` that kept it from reading (shown)."""
    try:
        return await read()
    except LitewfError as exc:
        return exc


async def _detail(state: _State, workflow_id: str) -> pages.Detail:
    client, session = state.client, state.session
    assert client is not None
    handle = await client.retrieve_workflow(workflow_id)
    detail = pages.Detail(status=await handle.get_status(), csrf=state.csrf)
    stored = await _part(lambda: session.backend.read(inspectsql.stored_detail, workflow_id))
    if isinstance(stored, inspectsql.StoredDetail):
        check = Columns(session.path, "workflows", workflow_id)
        detail.inputs = await _part(
            _now(lambda: check.value(session.serializer, "inputs", stored.inputs))
        )
        detail.parent = stored.parent_id
        if stored.output is not None:
            detail.outcome = await _part(
                _now(lambda: ("output", check.value(session.serializer, "output", stored.output)))
            )
        elif stored.error is not None:
            error = stored.error
            detail.outcome = await _part(_now(lambda: ("error", _error_text(check, error))))
    elif stored is not None:
        detail.inputs = detail.outcome = detail.parent = stored
    detail.steps = await _part(lambda: client.list_steps(workflow_id))
    detail.events = await _part(lambda: client.get_all_events(workflow_id))
    detail.messages = await _part(lambda: client.list_messages(workflow_id))
    detail.streams = await _part(lambda: _streams(session, workflow_id))
    detail.children = await _part(lambda: client.list_workflows(parent=workflow_id, limit=CHILDREN))
    detail.now = datetime.now(UTC)
    return detail


def _now(fn: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        return fn()

    return call


def _error_text(check: Columns, error: str) -> str:
    kind, message = check.error_record("error", error)
    return f"{kind}: {message}"


async def _streams(
    session: Session, workflow_id: str
) -> list[tuple[str, bool, int, list[tuple[int, Any]]]]:
    out = []
    check = Columns(session.path, "streams", workflow_id)
    for key, total, closed in await session.backend.read(inspectsql.stream_keys, workflow_id):
        start = max(total - STREAM_VALUES, 0)
        rows = await session.backend.read(
            journal.read_stream, workflow_id, key, start, STREAM_VALUES
        )
        values = [
            (offset, check.value(session.serializer, f"value of stream {key!r}", data))
            for offset, data in rows
            if data is not None
        ]
        out.append((key, closed, total, values))
    return out


async def _workflow(state: _State, request: Request) -> Response:
    workflow_id = request.query_params.get("id", "")
    if not workflow_id:
        return RedirectResponse("/", status_code=303)
    detail = await _detail(state, workflow_id)
    if request.query_params.get("partial"):
        return HTMLResponse(pages.workflow_live(detail))
    return HTMLResponse(pages.workflow_page(detail))


async def _act(state: _State, request: Request) -> Response:
    """Cancel, resume or fork: a form POST with the page's CSRF token, from this origin."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).hostname not in state.allowed_hosts:
        return _message(403, "Refused", "the request came from another site")
    form = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)

    def field(name: str) -> str:
        values = form.get(name, [""])
        return values[0] if values else ""

    if not hmac.compare_digest(field("csrf").encode(), state.csrf.encode()):
        return _message(
            403, "Refused", "the form's CSRF token is missing or stale: reload the page"
        )
    client = state.client
    assert client is not None
    workflow_id = field("id")
    action = request.path_params["action"]
    if action == "cancel":
        await client.cancel_workflow(workflow_id)
    elif action == "resume":
        await client.resume_workflow(workflow_id)
    elif action == "fork":
        text = field("from_step").strip() or "0"
        if not text.isdigit() or len(text) > 9:
            raise InvalidValueError(f"from step must be a whole number >= 0, got {text!r}")
        from_step = int(text)
        handle = await client.fork_workflow(
            workflow_id, from_step, workflow_id=field("new_id").strip() or None
        )
        workflow_id = handle.workflow_id
    else:
        return _message(404, "Not found", f"no action {action!r}")
    return RedirectResponse(pages.workflow_url(workflow_id), status_code=303)


# -- live updates ------------------------------------------------------------------------------


async def _events(state: _State, request: Request) -> Response:
    """Server-Sent Events: a ``change`` event naming the workflows that changed."""

    async def stream() -> AsyncIterator[str]:
        seen = state.changes.seq
        yield "retry: 2000\n\n"
        while True:
            await state.changes.wait(KEEPALIVE_S)
            if state.changes.seq == seen:
                yield ": keepalive\n\n"
                continue
            await anyio.sleep(SETTLE_S)
            changed = state.changes.since(seen)
            seen = state.changes.seq
            yield f"event: change\ndata: {json.dumps(changed)}\n\n"

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )

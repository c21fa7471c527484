"""The dashboard's HTML: plain pages, every stored value escaped.

Everything a page shows that came from the database (IDs, names, inputs, outputs,
events, messages, stream values, error messages) is user data: it goes through ``esc``
(HTML-escaped, quotes included) or ``link`` (URL-quoted, then escaped) and nowhere else.
The pages carry no inline script; ``_ui_assets.SCRIPT`` is served as a file, and the page's
Content-Security-Policy allows only scripts from the dashboard itself.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from ._exceptions import CorruptDatabaseError, LitewfError
from ._types import QueuedMessage, Status, StepRecord, WorkflowStatus

__all__ = ["Detail", "ListView", "esc", "list_page", "workflow_page"]

#: A part of a page that could be read, or the error that kept it from being read.
Part = Any


def esc(value: object) -> str:
    """Text safe anywhere in HTML: element content and quoted attribute values."""
    return html.escape(str(value), quote=True)


def workflow_url(workflow_id: str) -> str:
    return "/workflow?" + urlencode({"id": workflow_id}, quote_via=quote)


def link(workflow_id: str) -> str:
    return f'<a href="{esc(workflow_url(workflow_id))}">{esc(workflow_id)}</a>'


def when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def duration_text(span: timedelta | None) -> str:
    if span is None:
        return ""
    s = span.total_seconds()
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.2f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def pretty(value: Any) -> str:
    """A decoded value as indented JSON text (repr for what JSON cannot show)."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        return repr(value)


def _value(value: Any) -> str:
    return f"<pre>{esc(pretty(value))}</pre>"


def _unreadable(error: LitewfError) -> str:
    column = error.column if isinstance(error, CorruptDatabaseError) else None
    where = f" ({column})" if column else ""
    return f'<p class="error">unreadable{esc(where)}: {esc(error)}</p>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    """A table of cells that are HTML already (each made with ``esc`` or ``link``)."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="empty">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(title: str, part: Part, render: Callable[[Any], str]) -> str:
    inner = _unreadable(part) if isinstance(part, LitewfError) else render(part)
    return f"<section><h2>{esc(title)}</h2>{inner}</section>"


def _badge(status: Status) -> str:
    return f'<span class="status s-{esc(status.value)}">{esc(status.value)}</span>'


def page(title: str, body: str, *, data: dict[str, str] | None = None) -> str:
    """A whole page; ``data`` becomes ``data-*`` attributes the script reads."""
    attrs = "".join(f' data-{esc(k)}="{esc(v)}"' for k, v in (data or {}).items())
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{esc(title)} · litewf</title>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        '<link rel=stylesheet href="/static/ui.css"><script src="/static/ui.js" defer></script>'
        f"</head><body{attrs}><header><a href='/' class=brand>litewf</a> "
        f'<span id="live-state" class="muted">connecting…</span></header>'
        f"<main>{body}</main></body></html>"
    )


# -- the workflow list -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListView:
    """The list page's filters (as typed), page and what was found."""

    filters: dict[str, str]
    page: int
    size: int
    found: list[WorkflowStatus | CorruptDatabaseError]
    more: bool
    problem: str | None = None


def _filter_form(view: ListView) -> str:
    f = view.filters

    def text(key: str, label: str, placeholder: str = "", kind: str = "text") -> str:
        return (
            f'<label>{esc(label)} <input type={kind} name={key} value="{esc(f.get(key, ""))}"'
            f' placeholder="{esc(placeholder)}"></label>'
        )

    options = "".join(
        f'<option value="{esc(s)}"{" selected" if f.get("status") == s else ""}>'
        f"{esc(s or 'any')}</option>"
        for s in ["", *(s.value for s in Status)]
    )
    return (
        '<form method=get action="/" class=filters id=filters>'
        f"<label>status <select name=status>{options}</select></label>"
        + text("name", "name", "module.function")
        + text("queue", "queue")
        + text("prefix", "ID prefix")
        + text("since", "since (UTC)", "", "datetime-local")
        + text("until", "until (UTC)", "", "datetime-local")
        + f'<input type=hidden name=size value="{esc(view.size)}">'
        + "<button type=submit>filter</button> <a href='/'>clear</a></form>"
    )


def _pager(view: ListView) -> str:
    def to(number: int) -> str:
        query = {k: v for k, v in view.filters.items() if v}
        query.update(page=str(number), size=str(view.size))
        return esc("/?" + urlencode(query))

    prev = f'<a rel=prev href="{to(view.page - 1)}">← newer</a>' if view.page > 1 else ""
    nxt = f'<a rel=next href="{to(view.page + 1)}">older →</a>' if view.more else ""
    return f"<nav class=pager>{prev} <span>page {view.page}</span> {nxt}</nav>"


def list_rows(view: ListView) -> str:
    """The part of the list page that refreshes by itself."""
    if view.problem is not None:
        return f'<p class="error">{esc(view.problem)}</p>'
    rows = []
    for s in view.found:
        if isinstance(s, CorruptDatabaseError):
            rows.append([esc(s.workflow_id or "?"), "", _unreadable(s), "", "", "", ""])
            continue
        error = "" if s.error_type is None else f"{s.error_type}: {s.error_message}"
        rows.append(
            [
                link(s.workflow_id),
                esc(s.name),
                _badge(s.status),
                esc(s.queue or ""),
                esc(when(s.created_at)),
                esc(when(s.updated_at)),
                f'<span class="muted">{esc(error[:120])}</span>',
            ]
        )
    headers = ["ID", "name", "status", "queue", "created (UTC)", "updated (UTC)", "error"]
    return _table(headers, rows, "no workflow matches") + _pager(view)


def list_page(view: ListView) -> str:
    body = (
        "<h1>Workflows</h1>"
        + _filter_form(view)
        + f'<div id=live data-refresh="list">{list_rows(view)}</div>'
    )
    return page("workflows", body, data={"view": "list"})


# -- one workflow ----------------------------------------------------------------------------


@dataclass(slots=True)
class Detail:
    """Everything the workflow page shows; each part read, or its error."""

    status: WorkflowStatus
    csrf: str
    inputs: Part = None
    outcome: Part = None  # ("output", value) or ("error", text), or None while unfinished
    parent: Part = None
    steps: Part = field(default_factory=list)
    events: Part = field(default_factory=dict)
    messages: Part = field(default_factory=list)
    streams: Part = field(default_factory=list)  # [(key, closed, total, [(offset, value)])]
    children: Part = field(default_factory=list)
    now: datetime | None = None


def _timeline(steps: list[StepRecord], now: datetime) -> str:
    timed = [s for s in steps if s.started_at is not None]
    start = min((s.started_at for s in timed if s.started_at), default=now)
    end = max((s.finished_at or now for s in timed), default=now)
    span = max((end - start).total_seconds(), 1e-6)

    def bar(s: StepRecord) -> str:
        if s.started_at is None:
            return '<span class="muted">not timed</span>'
        left = (s.started_at - start).total_seconds() / span * 100
        width = max(((s.finished_at or now) - s.started_at).total_seconds() / span * 100, 0.4)
        kind = "waiting" if s.finished_at is None else s.outcome
        return (
            f'<div class=track><div class="bar o-{esc(kind)}" '
            f'style="margin-left:{left:.2f}%;width:{min(width, 100 - left):.2f}%"></div></div>'
        )

    rows = [
        [
            esc(s.number),
            esc(s.kind),
            esc(s.name),
            f'<span class="outcome o-{esc(s.outcome)}">{esc(s.outcome)}</span>',
            esc(when(s.started_at)),
            esc(duration_text(s.duration) or ("running" if s.outcome == "waiting" else "")),
            bar(s),
            esc(s.summary),
        ]
        for s in steps
    ]
    headers = ["#", "kind", "name", "outcome", "started (UTC)", "took", "timeline", "summary"]
    return _table(headers, rows, "no operation recorded yet")


def _streams(streams: list[tuple[str, bool, int, list[tuple[int, Any]]]]) -> str:
    if not streams:
        return '<p class="empty">no stream</p>'
    out = []
    for key, closed, total, values in streams:
        state = "closed" if closed else "open"
        shown = "" if len(values) == total else f", the last {len(values)} shown"
        items = "".join(
            f"<li value={offset}><pre>{esc(pretty(v))}</pre></li>" for offset, v in values
        )
        out.append(
            f'<div class=stream data-key="{esc(key)}"><h3>{esc(key)} '
            f'<span class="muted">{esc(state)}, {total} value(s){esc(shown)}</span></h3>'
            f"<ol start={values[0][0] if values else 0}>{items}</ol></div>"
        )
    return "".join(out)


def _messages(messages: list[QueuedMessage]) -> str:
    return _table(
        ["topic", "message", "sent (UTC)"],
        (
            [
                esc("(none)" if m.topic is None else m.topic),
                _value(m.message),
                esc(when(m.created_at)),
            ]
            for m in messages
        ),
        "no message waiting",
    )


def _children(children: list[WorkflowStatus]) -> str:
    return _table(
        ["ID", "name", "status", "created (UTC)"],
        (
            [link(c.workflow_id), esc(c.name), _badge(c.status), esc(when(c.created_at))]
            for c in children
        ),
        "no child",
    )


def _form(action: str, label: str, detail: Detail, extra: str = "") -> str:
    wid = detail.status.workflow_id
    return (
        f'<form method=post action="{esc(action)}" class=action>'
        f'<input type=hidden name=csrf value="{esc(detail.csrf)}">'
        f'<input type=hidden name=id value="{esc(wid)}">{extra}'
        f"<button type=submit>{esc(label)}</button></form>"
    )


def _actions(detail: Detail) -> str:
    status = detail.status.status
    forms = []
    if status in (Status.PENDING, Status.ENQUEUED):
        forms.append(_form("/workflow/cancel", "Cancel", detail))
    if status not in (Status.PENDING, Status.SUCCESS):
        forms.append(_form("/workflow/resume", "Resume", detail))
    fork_fields = (
        "<label>from step <input type=number name=from_step min=0 value=0 required></label>"
        '<label>new ID <input type=text name=new_id placeholder="(a new UUID)"></label>'
    )
    forms.append(_form("/workflow/fork", "Fork", detail, fork_fields))
    return "<div class=actions>" + "".join(forms) + "</div>"


def _summary(detail: Detail) -> str:
    s = detail.status
    parent = detail.parent
    rows = [
        ["status", _badge(s.status)],
        ["name", esc(s.name)],
        ["created (UTC)", esc(when(s.created_at))],
        ["updated (UTC)", esc(when(s.updated_at))],
        ["executor", esc(s.executor_id or "")],
        ["recovery attempts", esc(s.recovery_attempts)],
    ]
    if s.queue is not None:
        rows.append(["queue", esc(f"{s.queue} (priority {s.priority})")])
    if isinstance(parent, LitewfError):
        rows.append(["parent", _unreadable(parent)])
    elif parent is not None:
        rows.append(["parent", link(parent)])
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table class=summary>{body}</table>"


def _outcome(outcome: Any, status: Status) -> str:
    if outcome is None:
        unfinished = status in (Status.PENDING, Status.ENQUEUED)
        text = "not finished" if unfinished else f"none stored ({status.value})"
        return f'<p class="empty">{esc(text)}</p>'
    kind, value = outcome
    if kind == "error":
        return f'<pre class="error">{esc(value)}</pre>'
    return _value(value)


def workflow_live(detail: Detail) -> str:
    """The part of the workflow page that refreshes by itself."""
    now = detail.now or datetime.now().astimezone()
    return (
        _summary(detail)
        + _actions(detail)
        + _section("Inputs", detail.inputs, _value)
        + _section("Output or error", detail.outcome, lambda o: _outcome(o, detail.status.status))
        + _section("Steps", detail.steps, lambda steps: _timeline(steps, now))
        + _section("Events", detail.events, _events)
        + _section("Queued messages", detail.messages, _messages)
        + _section("Streams", detail.streams, _streams)
        + _section("Children", detail.children, _children)
    )


def _events(events: dict[str, Any]) -> str:
    return _table(
        ["key", "value"], ([esc(k), _value(v)] for k, v in events.items()), "no event set"
    )


def workflow_page(detail: Detail) -> str:
    wid = detail.status.workflow_id
    body = f"<h1>{esc(wid)}</h1><div id=live data-refresh=workflow>{workflow_live(detail)}</div>"
    return page(wid, body, data={"view": "workflow", "workflow": wid})


def message_page(title: str, text: str) -> str:
    return page(
        title, f'<h1>{esc(title)}</h1><p class="error">{esc(text)}</p><p><a href="/">back</a></p>'
    )

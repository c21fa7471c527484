"""How the command-line tools print: one table printer, JSON, and the cell formats.

Kept apart from ``_cli`` (arguments and commands) so that every table, of the CLI and
of ``litewf bench``, is laid out by the same code.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from ._exceptions import CorruptDatabaseError, LitewfError
from ._types import WorkflowStatus

__all__ = [
    "CELL_WIDTH",
    "WIDE",
    "corrupt_json",
    "doctor_rows",
    "error_text",
    "one_line",
    "part_json",
    "print_json",
    "section",
    "status_json",
    "status_row",
    "status_text",
    "stream_line",
    "table",
    "topic_text",
    "unreadable",
    "value_text",
    "when",
]

#: Widest cell of a human-readable table; ``--json`` shows everything.
CELL_WIDTH = 60
#: Widest cell of a two-column key/value table (status, doctor).
WIDE = 200


# -- tables ------------------------------------------------------------------------------------


def table(
    headers: Sequence[str] | None,
    rows: Sequence[Sequence[str]],
    width: int = CELL_WIDTH,
    rule: bool = False,
) -> str:
    """Left-aligned columns two spaces apart; long or multi-line cells are shortened.

    ``rule`` puts a line of dashes under the headers (the benchmark's style).
    """
    body = [[_cell(c, width) for c in row] for row in rows]
    lines = body if headers is None else [list(headers), *body]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    if rule and headers is not None:
        text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def _cell(text: str, width: int) -> str:
    text = one_line(text)
    return text if len(text) <= width else text[: width - 3] + "..."


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def section(
    title: str, part: Any, headers: list[str], rows: Callable[[Any], list[list[str]]]
) -> None:
    """One part of ``show``: its title and count, then its table; or why it is unreadable."""
    if isinstance(part, LitewfError):
        print(f"\n{title}: {unreadable(part)}")
        return
    print(f"\n{title} ({len(part)})")
    if part:
        print(_indent(table(headers, rows(part))))


def status_text(s: WorkflowStatus) -> str:
    """A workflow's status record as a two-column table (``show``)."""
    rows = [
        ["workflow", s.workflow_id],
        ["name", s.name],
        ["status", s.status.value],
        ["created", f"{when(s.created_at)} UTC"],
        ["updated", f"{when(s.updated_at)} UTC"],
        ["executor", s.executor_id or "-"],
        ["recovery attempts", str(s.recovery_attempts)],
    ]
    if s.queue is not None:
        rows.append(["queue", f"{s.queue} (priority {s.priority})"])
        if s.dedup_id is not None:
            rows.append(["dedup ID", s.dedup_id])
    if s.error_type is not None:
        rows.append(["error", error_text(s)])
    return table(None, rows, width=WIDE)


def status_row(s: WorkflowStatus | CorruptDatabaseError) -> list[str]:
    """One row of ``list``: a workflow, or a corrupt row's ID and what is wrong with it."""
    if isinstance(s, CorruptDatabaseError):
        return [s.workflow_id or "?", "", unreadable(s), "", "", ""]
    return [
        s.workflow_id,
        s.name,
        s.status.value,
        when(s.created_at),
        when(s.updated_at),
        error_text(s),
    ]


def doctor_rows(info: dict[str, Any]) -> list[list[str]]:
    """``doctor``'s checks as rows; the corrupt rows' problems are left to stderr/JSON."""
    rows = []
    for key, value in info.items():
        if key == "corrupt_row_problems":
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in sorted(value.items())) or "none"
        elif key == "application_id" and isinstance(value, int):
            value = f"{value:#x}"
        rows.append([key.replace("_", " "), str(value)])
    return rows


# -- cells -------------------------------------------------------------------------------------


def unreadable(error: LitewfError) -> str:
    """A short cell for a part that could not be read."""
    if isinstance(error, CorruptDatabaseError) and error.column is not None:
        return f"corrupt: {error.column}"
    return f"unreadable: {error}"


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def value_text(value: Any) -> str:
    """A stored value as its JSON text."""
    return json.dumps(value, ensure_ascii=False)


def stream_line(offset: int, value: Any, as_json: bool) -> str:
    """A line of ``tail``: the value (a string bare), or ``{"offset": N, "value": ...}``."""
    if as_json:
        return json.dumps({"offset": offset, "value": value}, ensure_ascii=False)
    return value if isinstance(value, str) else value_text(value)


def topic_text(topic: str | None) -> str:
    return "(none)" if topic is None else topic


def error_text(status: WorkflowStatus) -> str:
    return "" if status.error_type is None else f"{status.error_type}: {status.error_message}"


def one_line(text: str) -> str:
    """Whitespace runs (newlines too) as single spaces."""
    return " ".join(text.split())


# -- JSON --------------------------------------------------------------------------------------


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def status_json(status: WorkflowStatus) -> dict[str, Any]:
    return {**dataclasses.asdict(status), "status": status.status.value}


def corrupt_json(error: LitewfError) -> dict[str, Any]:
    column = error.column if isinstance(error, CorruptDatabaseError) else None
    return {"corrupt": {"column": column, "problem": str(error)}}


def part_json(part: Any, convert: Callable[[Any], Any]) -> Any:
    """A part of ``show --json``: converted, or the error that kept it from being read."""
    return corrupt_json(part) if isinstance(part, LitewfError) else convert(part)

"""Reading stored columns back: every value is checked before it is used.

litewf writes each column with one type and range, but a damaged or hand-edited file can
hold anything SQLite accepts (text in a timestamp, 1e300, a blob, a status that does not
exist, an error record that is not JSON). ``Columns`` is the one place that checks a row's
values and turns a bad one into ``CorruptDatabaseError`` naming the workflow and the
column, instead of a raw ``ValueError``, ``TypeError`` or ``OverflowError`` somewhere later.
Nothing read here is ever executed or imported.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from ._exceptions import CorruptDatabaseError
from ._serialization import (
    MalformedErrorRecord,
    Serializer,
    decode_exception,
    exception_type_and_message,
    loads_checked,
)
from ._tx import Tx
from ._types import Status, utc_datetime

__all__ = ["Columns", "describe"]

#: Longest piece of a bad value quoted in an error message.
_QUOTE = 40


def describe(value: object) -> str:
    """A short account of a stored value for an error message."""
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"a blob of {len(value)} bytes"
    if isinstance(value, str):
        shown = value if len(value) <= _QUOTE else value[: _QUOTE - 3] + "..."
        return f"the text {shown!r}"
    return f"the {type(value).__name__} {value!r}"


def _path_of(where: Tx | str) -> str:
    """The database file's path (asked of SQLite when only a transaction is at hand)."""
    if isinstance(where, str):
        return where
    if where.database is not None:
        return where.database
    rows = where.fetchall("PRAGMA database_list")
    return next((str(row[2]) for row in rows if row[1] == "main"), "the database")


class Columns:
    """Checks the columns of one stored row of ``table`` that belongs to ``workflow_id``.

    ``where`` is the database path, or the transaction reading the row (the path is then
    looked up only if a value is bad).
    """

    __slots__ = ("table", "where", "workflow_id")

    def __init__(self, where: Tx | str, table: str, workflow_id: object) -> None:
        self.where = where
        self.table = table
        # A tampered ID is named by its repr, so that the message still says which row.
        self.workflow_id = workflow_id if isinstance(workflow_id, str) else repr(workflow_id)

    def corrupt(self, column: str, problem: str) -> CorruptDatabaseError:
        """The error for ``column`` of this row, with what to do about it."""
        name = f"{self.table}.{column}"
        return CorruptDatabaseError(
            _path_of(self.where),
            f"workflow {self.workflow_id!r}: column {name} holds {problem}; litewf never "
            f"writes that, so the file was damaged or edited by hand: restore it from a "
            f"backup, or repair or delete that row",
            workflow_id=self.workflow_id,
            column=name,
        )

    def text(self, column: str, value: object) -> str:
        if not isinstance(value, str):
            raise self.corrupt(column, f"{describe(value)}, not text")
        return value

    def optional_text(self, column: str, value: object) -> str | None:
        return None if value is None else self.text(column, value)

    def status(self, column: str, value: object) -> Status:
        if isinstance(value, str):
            try:
                return Status(value)
            except ValueError:
                pass
        choices = ", ".join(s.value for s in Status)
        raise self.corrupt(column, f"{describe(value)}, not a status ({choices})")

    def count(self, column: str, value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.corrupt(column, f"{describe(value)}, not a whole number >= 0")
        return value

    def flag(self, column: str, value: object) -> bool:
        if value not in (0, 1) or not isinstance(value, int):
            raise self.corrupt(column, f"{describe(value)}, not 0 or 1")
        return bool(value)

    def timestamp(self, column: str, value: object) -> float:
        """A time in epoch seconds that a ``datetime`` can hold."""
        self.moment(column, value)
        assert isinstance(value, int | float)
        return float(value)

    def optional_timestamp(self, column: str, value: object) -> float | None:
        return None if value is None else self.timestamp(column, value)

    def moment(self, column: str, value: object) -> datetime:
        problem = f"{describe(value)}, not a time in seconds since 1970"
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.corrupt(column, problem)
        if not math.isfinite(value):
            raise self.corrupt(column, problem)
        try:
            return utc_datetime(value)
        except (OverflowError, ValueError, OSError):
            raise self.corrupt(column, f"{describe(value)}, a time out of range") from None

    def error_record(self, column: str, value: object) -> tuple[str, str]:
        """The type name and message of a stored exception."""
        try:
            return exception_type_and_message(self.text(column, value))
        except MalformedErrorRecord as exc:
            raise self.corrupt(column, f"{exc}, not an error record") from None

    def exception(self, column: str, value: object) -> Exception:
        """A stored exception rebuilt (never by importing or running stored code)."""
        try:
            return decode_exception(self.text(column, value))
        except MalformedErrorRecord as exc:
            raise self.corrupt(column, f"{exc}, not an error record") from None

    def value(self, serializer: Serializer, column: str, data: object) -> Any:
        """A stored serialized value decoded; ``SerializationError`` names the row if the
        serializer cannot read it (another serializer wrote it, or it was edited)."""
        text = self.text(column, data)
        where = f"{self.table}.{column} of workflow {self.workflow_id!r}"
        return loads_checked(serializer, text, where)

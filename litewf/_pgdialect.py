"""SQLite's dialect, as litewf's SQL modules write it, turned into PostgreSQL's.

The SQL modules keep ONE text per query, written for SQLite. The few constructs that
differ are rewritten here, once per distinct text (cached): placeholders, ``IS ?``,
``json_each``, two-argument ``max``/``min``, ``max`` of a condition, ``GLOB`` and
``instr``, integers used as booleans. Anything not listed passes through unchanged, so
a query that both accept needs nothing here. Also: what a PostgreSQL URL looks like, and litewf's own ``schema``
parameter in it.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._exceptions import InvalidValueError

__all__ = ["DEFAULT_SCHEMA", "is_postgres_url", "redact", "split_url", "translate"]

#: The PostgreSQL schema litewf's tables live in unless the URL says ``?schema=``.
DEFAULT_SCHEMA = "litewf"

_SCHEMES = ("postgresql://", "postgres://")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# (pattern, replacement), applied in order after ``%`` is escaped.
_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    # NULL-safe comparison: SQLite's ``IS`` takes any operand, PostgreSQL's does not.
    (re.compile(r"\bIS NOT \?"), "IS DISTINCT FROM ?"),
    (re.compile(r"\bIS \?"), "IS NOT DISTINCT FROM ?"),
    (re.compile(r"\bIS NOT (\d+)\b"), r"IS DISTINCT FROM \1"),
    # A JSON array of strings, as rows.
    (
        re.compile(r"SELECT value FROM json_each\(\?\)"),
        "SELECT json_array_elements_text(?::json)",
    ),
    # The aggregate max of a condition: PostgreSQL has no max(boolean).
    (re.compile(r"\bmax\((\w+ IS (?:NOT )?NULL)\)"), r"bool_or(\1)"),
    # Scalar (two-argument) max and min; the one-argument aggregates stay.
    (re.compile(r"\bmax\(([^(),]+),([^(),]+)\)"), r"greatest(\1,\2)"),
    (re.compile(r"\bmin\(([^(),]+),([^(),]+)\)"), r"least(\1,\2)"),
    # Digits-only tests and substring search.
    (re.compile(r"GLOB '\[0-9\]\*'"), "~ '^[0-9]'"),
    (re.compile(r"GLOB '\*\[\^0-9\]\*'"), "~ '[^0-9]'"),
    (re.compile(r"\binstr\("), "strpos("),
    (re.compile(r"AS INTEGER\)"), "AS BIGINT)"),
    # An integer parameter used as a condition.
    (re.compile(r"\bWHEN \? THEN"), "WHEN ?::int <> 0 THEN"),
    (re.compile(r"\bON \? AND"), "ON ?::int <> 0 AND"),
    (re.compile(r"\(\? OR\b"), "(?::int <> 0 OR"),
    # An empty list (SQLite accepts "IN ()").
    (re.compile(r"\bNOT IN \(\)"), "<> ALL (ARRAY[]::text[])"),
    (re.compile(r"\bIN \(\)"), "= ANY (ARRAY[]::text[])"),
    # A parameter starting a recursive query over bytewise-compared text columns.
    (re.compile(r"AS \(SELECT \? UNION\b"), 'AS (SELECT ?::text COLLATE "C" UNION'),
)


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """``sql`` (SQLite's dialect, ``?`` placeholders) in PostgreSQL's (``%s``)."""
    out = sql.replace("%", "%%")
    for pattern, replacement in _REWRITES:
        out = pattern.sub(replacement, out)
    return out.replace("?", "%s")


def is_postgres_url(target: object) -> bool:
    """Whether ``target`` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(target, str) and target.startswith(_SCHEMES)


def split_url(url: str) -> tuple[str, str]:
    """The URL for the driver and litewf's schema name (its ``?schema=``, else the
    default); ``InvalidValueError`` for a bad schema name."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = DEFAULT_SCHEMA
    kept = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            kept.append((key, value))
    if not _SCHEMA_NAME.fullmatch(schema):
        raise InvalidValueError(
            f"schema must be a lower-case PostgreSQL identifier (letters, digits, _), "
            f"got {schema!r}"
        )
    return urlunsplit(parts._replace(query=urlencode(kept))), schema


def redact(url: str) -> str:
    """``url`` without its password, for messages and reprs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))

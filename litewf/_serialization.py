"""Turning values and exceptions into stored text and back, in one place.

JSON is the default because reading a tampered database must never run code; pickle
is available only as an explicit choice (``serializer=PickleSerializer()``).
"""

from __future__ import annotations

import base64
import builtins
import json
import pickle
import sys
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from ._exceptions import SerializationError, WorkflowFailedError

__all__ = [
    "JsonSerializer",
    "MalformedErrorRecord",
    "PickleSerializer",
    "Serializer",
    "decode_exception",
    "encode_exception",
    "qualified_type_name",
    "replay_form",
]


@runtime_checkable
class Serializer(Protocol):
    """How a runtime turns values into stored text; ``loads(dumps(v))`` must rebuild ``v``."""

    def dumps(self, value: Any) -> str:
        """Encode ``value``; raise any exception if it cannot be stored."""
        ...

    def loads(self, data: str) -> Any:
        """Decode what ``dumps`` produced."""
        ...


class JsonSerializer:
    """Strict JSON: no NaN or Infinity, which other JSON readers reject."""

    def dumps(self, value: Any) -> str:
        _refuse_colliding_keys(value)
        return json.dumps(value, allow_nan=False, separators=(",", ":"))

    def loads(self, data: str) -> Any:
        return json.loads(data)


def _refuse_colliding_keys(value: Any) -> None:
    """JSON turns dict keys into strings, so ``{1: "a", "1": "b"}`` would keep one entry
    without a word; refuse it instead."""
    if type(value) in _SCALARS:
        return
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue  # a cycle: json.dumps reports it
        if isinstance(item, dict | list | tuple):
            seen.add(id(item))
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                texts = {key if isinstance(key, str) else json.dumps(key) for key in item}
                if len(texts) < len(item):
                    raise ValueError(
                        "two dict keys become the same JSON key (such as 1 and '1'); "
                        "make the keys distinct strings"
                    )
            stack.extend(child for child in item.values() if type(child) not in _SCALARS)
        elif isinstance(item, list | tuple):
            stack.extend(child for child in item if type(child) not in _SCALARS)


#: Leaves of a value: nothing to walk into (the walks over values skip them).
_SCALARS = frozenset({str, int, float, bool, type(None)})


class PickleSerializer:
    """Pickle, base64-encoded. Only for databases you trust: loading runs code."""

    def dumps(self, value: Any) -> str:
        return base64.b64encode(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)).decode()

    def loads(self, data: str) -> Any:
        return pickle.loads(base64.b64decode(data))


#: Largest serialized value litewf stores (a message, event, argument list or result).
MAX_VALUE_CHARS = 16 * 1024 * 1024
#: Deepest nesting of lists, dicts, tuples and sets litewf stores: far below Python's
#: recursion limit (1,000), so any reader, however deep its own call stack, decodes it.
MAX_VALUE_DEPTH = 100


def dumps_checked(serializer: Serializer, value: Any, what: str, *, wrapping: int = 0) -> str:
    """Serialize ``value`` or raise ``SerializationError`` naming ``what`` it was.

    ``wrapping``: levels litewf itself wrapped around the user's values (the argument
    list), not counted against ``MAX_VALUE_DEPTH``.
    """
    _refuse_deep_nesting(value, what, MAX_VALUE_DEPTH + wrapping)
    try:
        data = serializer.dumps(value)
    except Exception as exc:  # any failure of a user-chosen serializer means "cannot store"
        raise SerializationError(
            f"cannot serialize {what} ({type(value).__name__}) with "
            f"{type(serializer).__name__}: {exc}; pass values the serializer supports "
            f"(JSON: dict, list, str, int, float, bool, None)"
        ) from exc
    if not isinstance(data, str):
        raise SerializationError(
            f"{type(serializer).__name__}.dumps returned {type(data).__name__}, not str"
        )
    if len(data) > MAX_VALUE_CHARS:
        raise SerializationError(
            f"cannot store {what}: it serializes to {len(data):,} characters, at most "
            f"{MAX_VALUE_CHARS:,} (16 MiB) are stored; keep large data elsewhere (a file, "
            f"an object store) and pass a reference"
        )
    return data


def _refuse_deep_nesting(value: Any, what: str, bound: int) -> None:
    """Refuse a value nested past ``MAX_VALUE_DEPTH``: it might be written (the encoder
    runs at a shallow call depth) but not read back (json.loads recurses too)."""
    if type(value) in _SCALARS:
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = [*item.keys(), *item.values()]
        elif isinstance(item, list | tuple | set | frozenset):
            children = item
        else:
            continue
        if depth > bound:
            raise SerializationError(
                f"cannot serialize {what}: it nests lists, dicts, tuples or sets more than "
                f"{MAX_VALUE_DEPTH} deep (or contains itself); at most {MAX_VALUE_DEPTH} "
                f"levels are stored, so that every reader can decode it; flatten it"
            )
        depth += 1
        stack.extend((child, depth) for child in children if type(child) not in _SCALARS)


def loads_checked(serializer: Serializer, data: str, what: str) -> Any:
    """Deserialize stored ``data`` or raise ``SerializationError``."""
    try:
        return serializer.loads(data)
    except Exception as exc:
        raise SerializationError(
            f"cannot read stored {what} with {type(serializer).__name__}: {exc}; "
            f"was the database written with another serializer?"
        ) from exc


def qualified_type_name(cls: type[BaseException]) -> str:
    """``"ValueError"`` for builtins, ``"module.Class"`` otherwise."""
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def encode_exception(exc: BaseException) -> str:
    """Store an exception as its class's module, qualified name, message and (when JSON can
    hold them) constructor arguments and instance attributes; never pickled."""
    cls = type(exc)
    fields: dict[str, Any] = {
        "module": cls.__module__,
        "qualname": cls.__qualname__,
        "message": str(exc),
    }
    attributes = _json_attributes(exc)
    if attributes and _shallow(attributes):
        fields["attributes"] = attributes
    try:  # KeyError's str is not its argument: keep the arguments to rebuild it faithfully
        if _shallow(exc.args):
            return json.dumps({**fields, "args": list(exc.args)}, allow_nan=False)
    except (TypeError, ValueError):
        pass
    return json.dumps(fields)


def _shallow(value: Any) -> bool:
    """Whether ``value`` is within the nesting bound every reader can decode (an
    exception's arguments or attributes past it are left out of its record)."""
    try:
        _refuse_deep_nesting(value, "an exception's data", MAX_VALUE_DEPTH)
    except SerializationError:
        return False
    return True


def _json_attributes(exc: BaseException) -> dict[str, Any]:
    """The instance's ``__dict__`` entries that JSON can hold (``e.code`` of ``Declined``).

    Dunder entries (``__notes__``) are Python's bookkeeping, not the error's data; an
    entry JSON cannot hold is left out rather than failing the whole record.
    """
    kept: dict[str, Any] = {}
    for name, value in getattr(exc, "__dict__", {}).items():
        if not isinstance(name, str) or name.startswith("__"):
            continue
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        kept[name] = value
    return kept


def replay_form(exc: BaseException) -> Exception:
    """The exception as a replay will see it: encoded, then decoded (same class when it is
    imported, with its JSON-able attributes; JSON's lists for tuples). Raised on the first
    run too so that both runs take the same branch. The original's traceback and cause
    are kept on it for debugging; they are never stored."""
    rebuilt = decode_exception(encode_exception(exc))
    rebuilt.__cause__ = exc.__cause__
    rebuilt.__context__ = exc.__context__
    rebuilt.__suppress_context__ = exc.__suppress_context__
    return rebuilt.with_traceback(exc.__traceback__)


class MalformedErrorRecord(ValueError):
    """A stored exception record that litewf did not write (damaged or edited by hand)."""


def _error_fields(data: str) -> tuple[str, str, str, dict[str, Any]]:
    """Module, qualified name and message of a stored exception, checked, and all fields."""
    try:
        fields = json.loads(data)
    except (ValueError, TypeError, RecursionError) as exc:
        raise MalformedErrorRecord(f"text that is not JSON ({exc})") from None
    if not isinstance(fields, dict):
        raise MalformedErrorRecord(f"JSON {type(fields).__name__}, not an object")
    module, qualname, message = (fields.get(k) for k in ("module", "qualname", "message"))
    if not (isinstance(module, str) and isinstance(qualname, str) and isinstance(message, str)):
        raise MalformedErrorRecord("JSON without the strings module, qualname and message")
    return module, qualname, message, fields


def exception_type_and_message(data: str) -> tuple[str, str]:
    """The ``error_type`` and ``error_message`` of a stored exception.

    Raises ``MalformedErrorRecord`` if ``data`` is not a record that litewf writes.
    """
    module, qualname, message, _ = _error_fields(data)
    name = qualname if module == "builtins" else f"{module}.{qualname}"
    return name, message


def decode_exception(data: str) -> Exception:
    """Rebuild a stored exception as its own class when that class is already imported.

    Only ``sys.modules`` is consulted, never an import, so a tampered database cannot make
    us load code; anything we cannot rebuild faithfully becomes ``WorkflowFailedError``.
    Raises ``MalformedErrorRecord`` if ``data`` is not a record that litewf writes.
    """
    module_name, qualname, message, fields = _error_fields(data)
    error_type, _ = exception_type_and_message(data)
    module = builtins if module_name == "builtins" else sys.modules.get(module_name)
    cls: Any = module
    for part in qualname.split("."):
        cls = getattr(cls, part, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        args = fields.get("args")
        rebuilt = _rebuild(cls, message, args if isinstance(args, list) else None)
        if rebuilt is not None:
            _restore_attributes(rebuilt, fields.get("attributes"))
            return rebuilt
    return WorkflowFailedError(error_type, message)


def _restore_attributes(exc: Exception, attributes: Any) -> None:
    """Set the stored attributes on a rebuilt exception (one a class refuses is skipped)."""
    if not isinstance(attributes, dict):
        return
    for name, value in attributes.items():
        if isinstance(name, str) and not name.startswith("__"):
            try:
                setattr(exc, name, value)
            except Exception:  # noqa: BLE001, S112 - a read-only property keeps its own value
                continue


def _rebuild(cls: type[Exception], message: str, args: list[Any] | None) -> Exception | None:
    """``cls(*args)`` or ``cls(message)``, whichever reproduces the message, else a bare one."""
    makers: tuple[Callable[[], Exception], ...] = (
        lambda: cls(*(args if args is not None else [message])),
        lambda: cls(message),
        lambda: _bare(cls, message),
    )
    for make in makers:
        try:
            exc = make()
            if str(exc) == message:
                return exc
        except Exception:  # noqa: BLE001, S112 - a class we cannot rebuild falls back
            continue
    return None


def _bare(cls: type[Exception], message: str) -> Exception:
    exc = cls.__new__(cls)
    exc.args = (message,)
    return exc


def dumps_arguments(
    serializer: Serializer,
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    trace: dict[str, str] | None = None,
) -> str:
    """A workflow's arguments as stored (``{"args": [...], "kwargs": {...}}``), with its
    starter's trace context under ``"trace"`` when tracing (``_tracing``)."""
    stored: dict[str, Any] = {"args": list(args), "kwargs": kwargs}
    if trace is not None:
        stored["trace"] = trace
    return dumps_checked(
        serializer,
        stored,
        f"the arguments of workflow {name!r}",
        wrapping=2,  # {"args": [...]}: each argument may nest MAX_VALUE_DEPTH deep
    )

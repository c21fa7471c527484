"""What a workflow's recorded history means: operation names, kinds, identities, versions.

Every durable call a workflow makes is recorded as an operation, numbered in call order.
A step or child records under its own name; litewf's own calls under the builtin names
here. A call's identifying arguments (the set_event key, the send destination and topic,
...) are recorded as its ``identity``, so that replay can tell when the code changed.
"""

from __future__ import annotations

import json

from . import _journal as journal
from ._exceptions import (
    EventAlreadySetError,
    InvalidValueError,
    QueueDuplicateError,
    ScheduleNotFoundError,
    StreamClosedError,
    WorkflowConflictError,
    WorkflowNotFoundError,
)
from ._serialization import exception_type_and_message, qualified_type_name
from ._tx import Tx

__all__ = [
    "BUILTIN_OPERATIONS",
    "CHILD_PREFIX",
    "PATCH_PREFIX",
    "HISTORY_VERSION",
    "READ_OPERATIONS",
    "check_step_name",
    "describe",
    "identity",
    "operation_kind",
    "retry_ending_failure",
]

#: The replay rules of workflows recorded now. 1: recorded before operation identity
#: (reads were not operations; rows carry no target). 2: reads are recorded operations.
HISTORY_VERSION = 2

#: Reads of durable state that a workflow records (history version 2 on).
READ_OPERATIONS = frozenset(
    {
        "read_stream",
        "get_all_events",
        "retrieve_workflow",
        "get_status",
        "get_result",
        "list_workflows",
        "list_steps",
    }
)
#: Operation names litewf records for its own calls; user steps may not take them.
BUILTIN_OPERATIONS = (
    frozenset(
        {"sleep", "send", "recv", "set_event", "get_event", "write_stream", "close_stream"}
        | {"wait_first", "enqueue", "fork_workflow", "delete_workflow", "schedule"}
    )
    | READ_OPERATIONS
)
CHILD_PREFIX = "start_workflow "
#: A patch marker's name: ``patch <name>`` (see ``_operations.patched``).
PATCH_PREFIX = "patch "
#: Prefixes of recorded names litewf gives its own operations.
_PREFIXES = (CHILD_PREFIX, PATCH_PREFIX)

#: Operations whose failure is a fact about the database when they ran (a key already
#: set, a workflow not there yet), not about the workflow's own history.
_STATE_DEPENDENT = (
    frozenset({"set_event", "send", "get_event", "write_stream", "wait_first", "enqueue"})
    | {"fork_workflow", "delete_workflow", "schedule"}
    | READ_OPERATIONS
)


def identity(**arguments: object) -> str:
    """The canonical JSON of a call's identifying arguments, as stored and compared."""
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"))


def describe(name: str, target: str | None) -> str:
    """A call as a NonDeterminismError names it: ``set_event(key='a')``, ``step 'charge'``."""
    if target is None:
        builtin = name in BUILTIN_OPERATIONS or name.startswith(_PREFIXES)
        return name if builtin else f"step {name!r}"
    try:
        arguments = json.loads(target)
        shown = ", ".join(f"{key}={value!r}" for key, value in arguments.items())
    except (ValueError, AttributeError):
        shown = target
    return f"{name}({shown})"


def operation_kind(name: str) -> str:
    """What kind of call recorded operation ``name`` was: step, child, or a builtin's name."""
    if name in BUILTIN_OPERATIONS:
        return name
    if name.startswith(CHILD_PREFIX):
        return "child"
    if name.startswith(PATCH_PREFIX):
        return "patch"
    return "step"


def check_step_name(name: str) -> str:
    if name in BUILTIN_OPERATIONS or name.startswith(_PREFIXES):
        raise InvalidValueError(
            f"step name {name!r} is reserved for litewf's own operations; choose another"
        )
    return name


def retry_ending_failure(tx: Tx, workflow_id: str) -> bool:
    """Before ``resume_workflow`` restarts an ERROR workflow: forget its last operation if
    that operation's database-dependent failure (``EventAlreadySetError``,
    ``WorkflowNotFoundError``) is what ended the workflow, so the resumed run makes the
    call again (a fixed workflow calls another key; a missing workflow may exist now).

    Nothing later was recorded, so no other outcome depended on it. True if one was dropped.
    """
    ended = journal.ended_by(tx, workflow_id)
    last = journal.last_operation(tx, workflow_id)
    if ended is None or last is None:
        return False
    op_id, name, error = last
    if error is None or name not in _STATE_DEPENDENT:
        return False
    retryable = {
        qualified_type_name(EventAlreadySetError),
        qualified_type_name(QueueDuplicateError),
        qualified_type_name(ScheduleNotFoundError),
        qualified_type_name(StreamClosedError),
        qualified_type_name(WorkflowConflictError),  # a fork's ID taken (then freed)
        qualified_type_name(WorkflowNotFoundError),
    }
    error_type, error_message = exception_type_and_message(error)
    if error_type not in retryable or (error_type, error_message) != ended:
        return False
    journal.delete_operation(tx, workflow_id, op_id)
    return True

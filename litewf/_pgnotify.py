"""The NOTIFY payload of a PostgreSQL write: who committed, and what changed.

A listener skips its own connection's commits (their changes reached its waiters at
commit), and hands another's changes to its waiters straight from the payload, without
reading the change log first: one round trip less on every wake-up across processes.
The log stays the truth: a payload too large for NOTIFY carries no changes (the listener
reads the log), and the listener still reads the log now and then, skipping what the
payloads already handed over (``Handed``).
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable

from ._change import Change, ChangeKind

__all__ = ["MAX_PAYLOAD_BYTES", "Handed", "encode", "decode"]

#: PostgreSQL refuses a payload of 8,000 bytes or more.
MAX_PAYLOAD_BYTES = 7_900

_KINDS = {kind.value: kind for kind in ChangeKind}


def encode(token: str, changes: Iterable[Change]) -> str:
    """``token``, then the changes if they fit (else the token alone: read the log)."""
    listed = [[change.kind.value, change.workflow_id, change.key] for change in changes]
    if not listed:
        return token
    payload = f"{token}\n{json.dumps(listed, separators=(',', ':'))}"
    return payload if len(payload.encode()) <= MAX_PAYLOAD_BYTES else token


def decode(payload: str) -> tuple[str, list[Change] | None]:
    """The committer's token and its changes (None: read the log, as for a payload that
    carries none or that litewf did not write)."""
    token, _, body = payload.partition("\n")
    if not body:
        return token, None
    try:
        listed = json.loads(body)
        changes = [
            Change(_KINDS[kind], workflow_id, key)
            for kind, workflow_id, key in listed
            if isinstance(workflow_id, str) and (key is None or isinstance(key, str))
        ]
    except (ValueError, TypeError, KeyError):
        return token, None
    return token, changes


class Handed:
    """The changes handed over since the log was last read (from payloads, or made by
    this process's own commits): a read of the log hands over only the others (each of
    those commits is in the next read)."""

    def __init__(self) -> None:
        self._handed: collections.Counter[Change] = collections.Counter()

    def add(self, changes: Iterable[Change]) -> None:
        self._handed.update(changes)

    def forget(self) -> None:
        """Start afresh (the log is followed from its end again)."""
        self._handed.clear()

    def unseen(self, logged: Iterable[Change]) -> list[Change]:
        """``logged`` (a read of the log) less the changes already handed over; forget
        them all (every one was in this read)."""
        handed = self._handed
        fresh = []
        for change in logged:
            if handed[change] > 0:
                handed[change] -= 1
            else:
                fresh.append(change)
        handed.clear()
        return fresh

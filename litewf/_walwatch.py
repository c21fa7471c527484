"""Noticing that another process wrote to the database, without burning CPU while idle.

Every commit in WAL mode writes to the ``-wal`` file. On Linux an inotify watch on that
file wakes us the moment any process writes it, and costs nothing while nobody does.
Elsewhere (or if inotify is unavailable) we fall back to a stat of the file every
``interval``. Either way this is only a hint: the poller confirms with SQLite's
``data_version`` and also checks it on a slow timer, so no commit is ever missed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys

import anyio

__all__ = ["WalWatch"]

_IN_MODIFY = 0x00000002
#: Metadata changed: an unlink lowers the link count, so deleting the file wakes us too.
_IN_ATTRIB = 0x00000004
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000


def _inotify_fd(path: str) -> int | None:
    """An inotify descriptor watching ``path`` for writes, or None where not available."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fd = int(libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    if int(libc.inotify_add_watch(fd, os.fsencode(path), _IN_MODIFY | _IN_ATTRIB)) < 0:
        os.close(fd)
        return None
    return fd


class WalWatch:
    """``await changed(timeout)`` returns when the WAL file may have changed, or at timeout."""

    def __init__(self, wal_path: str, interval: float) -> None:
        self._wal_path = wal_path
        self._interval = interval
        self._fd = _inotify_fd(self._wal_path)
        self._signature = self._stat()

    @property
    def uses_inotify(self) -> bool:
        return self._fd is not None

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._wal_path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    async def changed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a sign of change; True if one was seen."""
        if self._fd is not None:
            with anyio.move_on_after(timeout):
                await anyio.wait_readable(self._fd)
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._fd, 4096):  # drain: one wake-up per burst
                        pass
                return True
            return False
        waited = 0.0
        while waited < timeout:
            await anyio.sleep(self._interval)
            waited += self._interval
            signature = self._stat()
            if signature != self._signature:
                self._signature = signature
                return True
        return False

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

"""Is an executor alive? An OS file lock per executor answers at once.

Each launched runtime holds an exclusive ``flock`` on its own lock file beside the
database for as long as it lives. The OS drops the lock when the process dies, however it
dies, so a peer that can take the lock knows the executor is gone, with no lease to wait
out. Lock files of dead executors are removed by whoever finds them dead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path

from ._exceptions import DatabaseError, ExecutorConflictError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["ExecutorLock", "executor_alive", "lock_dir"]


def lock_dir(db_path: str) -> Path:
    """The folder of lock files that belongs to the database at ``db_path``."""
    return Path(f"{os.path.abspath(db_path)}-litewf")


def _lock_path(directory: Path, executor_id: str) -> Path:
    digest = hashlib.sha256(executor_id.encode()).hexdigest()[:32]
    return directory / f"executor-{digest}.lock"


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock without waiting; False if another holder has it."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    import msvcrt  # pragma: no cover - Windows

    try:  # pragma: no cover - Windows
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:  # pragma: no cover - Windows
        return False
    return True  # pragma: no cover - Windows


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open at ``fd`` (it may have been unlinked)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


class ExecutorLock:
    """The lock a live runtime holds to say "executor ``executor_id`` is alive"."""

    def __init__(self, db_path: str, executor_id: str) -> None:
        self._dir = lock_dir(db_path)
        self._path = _lock_path(self._dir, executor_id)
        self._executor_id = executor_id
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``ExecutorConflictError`` if a live runtime has it."""
        try:
            self._dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise DatabaseError(
                str(self._dir), f"cannot create the executor lock folder: {exc}"
            ) from exc
        # A peer checking whether this ID's previous owner is dead holds the lock for
        # a moment; only a lock held past the grace period means a live twin.
        give_up = time.monotonic() + 0.5
        while True:
            try:
                fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # a peer removed the empty folder just now
                self._dir.mkdir(exist_ok=True)
                continue
            if not _try_lock(fd):
                os.close(fd)
                if time.monotonic() > give_up:
                    raise ExecutorConflictError(self._executor_id)
                time.sleep(0.01)
                continue
            # A peer may have removed the file between our open and our lock: retry on
            # the new file, or two runtimes could each hold a lock on a different inode.
            if _same_file(fd, self._path):
                self._fd = fd
                return
            os.close(fd)

    def abandon(self) -> None:
        """Drop the lock as the OS does when the process dies: the file stays behind."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def release(self) -> None:
        """Drop the lock and remove the file (a clean exit leaves nothing behind)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            if _same_file(fd, self._path):
                self._path.unlink()
        os.close(fd)
        with contextlib.suppress(OSError):
            self._dir.rmdir()  # only succeeds when no other executor's file is left


def executor_alive(db_path: str, executor_id: str) -> bool:
    """Whether a live process holds ``executor_id``'s lock; cleans up a dead one's file."""
    path = _lock_path(lock_dir(db_path), executor_id)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False  # never created, or removed after its owner died
    except OSError:
        return True  # cannot tell: assume alive, never run a workflow twice
    try:
        if not _try_lock(fd):
            return True
        if _same_file(fd, path):
            with contextlib.suppress(OSError):
                path.unlink()
        return False
    finally:
        os.close(fd)

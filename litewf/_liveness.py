"""Is an executor alive? An OS lock per executor, held on the database file itself, answers.

On Linux each launched runtime holds an open-file-description (OFD) write lock on one byte
of the database file, at an offset far past SQLite's own lock bytes that a hash of its
executor ID picks. The OS drops the lock when the process dies, however it dies, so a
peer that finds the byte unlocked knows the executor is gone, with no lease to wait out.
The lock belongs to the file's inode, not to a path: the file reached through a symlink,
a relative path, ``..`` or a bind mount shows the same locks, and there are no lock files
that someone could delete.

Two OS rules shape the code. Closing *any* descriptor of a file drops every POSIX lock
this process holds on it, and SQLite's connections hold such locks: so a descriptor
opened here is never closed (one per database file per process, kept in a pool and
reused; unlocking is ``F_UNLCK``). And locks of one open file description never conflict
with each other, so locks held by this process are tracked in memory and checked first.
After ``fork()`` the child closes its copies (it holds no POSIX locks, so that is safe):
it holds none of its parent's locks.

Elsewhere (macOS, Windows) each executor holds a lock on its own file in
``<resolved path>-litewf/``; removing that folder by hand there can make a live
executor look dead.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import struct
import sys
import threading
import time
from pathlib import Path

from ._exceptions import DatabaseError, ExecutorConflictError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["ExecutorLock", "any_executor_alive", "executor_alive", "lock_dir"]

#: Executor lock bytes lie in [_BASE, _BASE + _SPAN): far past SQLite's lock bytes
#: (around 0x40000000) and past any real file size; locks past the end of a file are fine.
_BASE = 1 << 40
_SPAN = 1 << 40
#: ``struct flock`` on 64-bit Linux: l_type, l_whence, l_start, l_len, l_pid (+ padding).
_FLOCK = "hhqqi4x"
_OFD = (
    sys.platform.startswith("linux")
    and fcntl is not None
    and hasattr(fcntl, "F_OFD_SETLK")
    and struct.calcsize("P") == 8
)


def lock_dir(db_path: str) -> Path:
    """The folder of lock files of the database at ``db_path`` (where OFD locks are missing)."""
    return Path(f"{os.path.realpath(db_path)}-litewf")


def _digest(executor_id: str) -> bytes:
    return hashlib.sha256(executor_id.encode()).digest()


def _offset(executor_id: str) -> int:
    return _BASE + int.from_bytes(_digest(executor_id)[:8], "big") % _SPAN


# -- the per-process pool of descriptors (OFD locks) -------------------------------------

_mutex = threading.Lock()
#: (st_dev, st_ino) -> the one descriptor this process uses to lock and test that file.
_fds: dict[tuple[int, int], int] = {}
#: (st_dev, st_ino) -> executor IDs whose lock this process holds on that file.
_held: dict[tuple[int, int], set[str]] = {}
#: Descriptors opened in a lost race (see ``_file``): never closed, for the reason above.
_spare: list[int] = []
#: Lock-file descriptors of the fallback scheme, closed in a forked child.
_flock_fds: set[int] = set()


def _after_fork_in_child() -> None:
    """The child holds no POSIX locks, so closing is safe; its parent keeps its locks."""
    global _mutex
    _mutex = threading.Lock()  # another thread may have held it at the fork
    for fd in [*_fds.values(), *_spare, *_flock_fds]:
        with contextlib.suppress(OSError):
            os.close(fd)
    _fds.clear()
    _held.clear()
    _spare.clear()
    _flock_fds.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _file(db_path: str) -> tuple[tuple[int, int], int]:
    """The file's identity and this process's descriptor for it (opened once, kept)."""
    st = os.stat(db_path)
    key = (st.st_dev, st.st_ino)
    with _mutex:
        fd = _fds.get(key)
        if fd is not None:
            return key, fd
        fd = os.open(db_path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        own = os.fstat(fd)
        opened = (own.st_dev, own.st_ino)
        if opened != key:  # the path was replaced between stat and open
            if opened in _fds:
                _spare.append(fd)
                fd = _fds[opened]
            key = opened
        _fds[key] = fd
        return key, fd


def _setlk(fd: int, kind: int, start: int) -> bool:
    """Set or clear a one-byte OFD lock; False if another description holds it."""
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack(_FLOCK, kind, os.SEEK_SET, start, 1, 0))
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _locked(fd: int, start: int, length: int) -> bool:
    """Whether another open file description holds a lock within the range."""
    probe = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
    answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, probe)
    return bool(struct.unpack(_FLOCK, answer)[0] != fcntl.F_UNLCK)


# -- the fallback: one lock file per executor (flock) ------------------------------------


def _lock_path(directory: Path, executor_id: str) -> Path:
    return directory / f"executor-{_digest(executor_id).hex()[:32]}.lock"


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


def _file_lock_alive(path: Path) -> bool:
    """Whether a live process holds the lock file at ``path``; removes a dead one's file."""
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


# -- the interface -----------------------------------------------------------------------


class ExecutorLock:
    """The lock a live runtime holds to say "executor ``executor_id`` is alive"."""

    def __init__(self, db_path: str, executor_id: str) -> None:
        self._db_path = db_path
        self._executor_id = executor_id
        self._dir = lock_dir(db_path)
        self._path = _lock_path(self._dir, executor_id)
        self._key: tuple[int, int] | None = None
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``ExecutorConflictError`` if a live runtime has it."""
        if not _OFD:
            self._acquire_file()
            return
        try:
            key, fd = _file(self._db_path)
            with _mutex:
                held = _held.setdefault(key, set())
                if self._executor_id in held or not _setlk(
                    fd, fcntl.F_WRLCK, _offset(self._executor_id)
                ):
                    raise ExecutorConflictError(self._executor_id)
                held.add(self._executor_id)
        except OSError as exc:
            raise DatabaseError(self._db_path, f"cannot lock the executor: {exc}") from exc
        self._key, self._fd = key, fd

    def abandon(self) -> None:
        """Drop the lock as the OS does when the process dies (a lock file stays behind)."""
        if not _OFD:
            fd, self._fd = self._fd, None
            if fd is not None:
                _flock_fds.discard(fd)
                os.close(fd)
            return
        self.release()

    def release(self) -> None:
        """Drop the lock (a clean exit leaves nothing behind)."""
        if not _OFD:
            self._release_file()
            return
        key, fd = self._key, self._fd
        self._key = self._fd = None
        if key is None or fd is None:
            return
        with _mutex:
            if _fds.get(key) == fd:  # else a fork closed it: there is nothing to drop
                with contextlib.suppress(OSError):
                    _setlk(fd, fcntl.F_UNLCK, _offset(self._executor_id))
            _held.get(key, set()).discard(self._executor_id)

    def _acquire_file(self) -> None:
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
                _flock_fds.add(fd)
                return
            os.close(fd)

    def _release_file(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _flock_fds.discard(fd)
        with contextlib.suppress(OSError):
            if _same_file(fd, self._path):
                self._path.unlink()
        os.close(fd)
        with contextlib.suppress(OSError):
            self._dir.rmdir()  # only succeeds when no other executor's file is left


def executor_alive(db_path: str, executor_id: str) -> bool:
    """Whether a live runtime, here or in any process, holds ``executor_id``'s lock."""
    if not _OFD:
        return _file_lock_alive(_lock_path(lock_dir(db_path), executor_id))
    try:
        key, fd = _file(db_path)
        with _mutex:
            if executor_id in _held.get(key, ()):
                return True
        return _locked(fd, _offset(executor_id), 1)
    except OSError:
        return True  # cannot tell: assume alive, never run a workflow twice


def any_executor_alive(db_path: str) -> bool:
    """Whether any live runtime, here or in another process, holds a lock on the file."""
    if not _OFD:
        folder = lock_dir(db_path)
        with contextlib.suppress(OSError):
            return any(_file_lock_alive(path) for path in folder.glob("executor-*.lock"))
        return False
    try:
        key, fd = _file(db_path)
        with _mutex:
            if _held.get(key):
                return True
        return _locked(fd, _BASE, _SPAN)
    except OSError:
        return False  # cannot tell; the caller only uses this to explain a refusal

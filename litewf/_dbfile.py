"""The database file: what litewf checks about it before and while using it.

Before opening: that the path is a plain SQLite file with one name (``precheck``), and
after: that it is litewf's own schema at a version this litewf knows
(``check_identity``). While open: that its -wal and -shm files are still the ones SQLite
opened (``SideFiles``). Also how sqlite3's errors read as litewf's (``translate``), and
a copy made without opening the file for writing (``copy_read_only``, for check_replay).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

from ._exceptions import (
    CorruptDatabaseError,
    DatabaseBusyError,
    DatabaseError,
    DatabaseWriteError,
    ForeignDatabaseError,
    NotADatabaseError,
    SchemaTooNewError,
)
from ._liveness import any_executor_alive
from ._pgdialect import is_postgres_url
from ._schema import APPLICATION_ID, SCHEMA_VERSION

__all__ = [
    "SideFiles",
    "absolute_path",
    "busy_error",
    "check_identity",
    "copy_read_only",
    "error_code",
    "hold_side_files",
    "precheck",
    "translate",
]

_HEADER = b"SQLite format 3\x00"
#: The files SQLite keeps beside a WAL-mode database while a connection is open.
SIDE_SUFFIXES = ("-wal", "-shm")
#: How long litewf keeps retrying a busy database before giving up with DatabaseBusyError.
BUSY_GIVE_UP_S = 120.0
#: ``SideFiles.check_present`` refuses a file only if a live lock and missing side files
#: are seen this many times in a row, this far apart (a deletion stays; a close passes).
_CONFIRM = 3
_CONFIRM_PAUSE_S = 0.02


def absolute_path(path: str | os.PathLike[str]) -> str:
    """``path`` made absolute against the current directory, ``..`` left to the OS.

    Not ``os.path.abspath``: it drops ``dir/..`` by text, which names another file when
    ``dir`` is a symlink.
    """
    path = os.fspath(path)
    if is_postgres_url(path):
        return path  # a PostgreSQL database, not a file
    return path if os.path.isabs(path) else os.path.join(os.getcwd(), path)


def precheck(path: str, side_files: SideFiles, create: bool) -> bool:
    """Refuse what is plainly not ours by reading the header; return whether a db exists."""
    file = Path(path)
    if file.is_dir():
        raise DatabaseError(path, "is a directory; give the path of a database file")
    if not file.exists():
        if not create:
            raise DatabaseError(
                path,
                "no such database; check the path (a Client never creates one, "
                "launch a Runtime to create it)",
            )
        return False
    _check_links(path, file)
    try:
        with file.open("rb") as f:
            header = f.read(100)
    except OSError as exc:
        raise DatabaseError(path, f"cannot read the file: {exc}") from exc
    if header and (not header.startswith(_HEADER) or len(header) < 100):
        raise NotADatabaseError(
            path, "is not an SQLite database; litewf left it untouched, give another path"
        )
    side_files.check_present()
    return bool(header)  # an empty file is a new database


def _check_links(path: str, file: Path) -> None:
    """Refuse a file with several names: each would get its own -wal file."""
    links = file.stat().st_nlink
    if links > 1:
        raise DatabaseError(
            path,
            f"has {links} hard links (names); SQLite keeps a separate -wal file per "
            f"name, so runtimes on two names would lose commits and corrupt the file. "
            f"Remove the extra links (or copy the file) so that it has one name",
        )


def check_identity(path: str, app_id: int, version: int, tables: int, create: bool) -> None:
    """Refuse a file that is not litewf's, or whose schema this litewf cannot use."""
    if app_id == 0 and tables == 0:
        if create:
            return  # a new (or empty) SQLite file: ours to initialize
        raise DatabaseError(
            path, "is not initialized; launch a Runtime on it once to create the schema"
        )
    if app_id != APPLICATION_ID:
        raise ForeignDatabaseError(
            path,
            "is an SQLite database that litewf did not create; litewf left it untouched, "
            "give litewf a file of its own",
        )
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(
            path,
            f"has schema version {version}, newer than this litewf's {SCHEMA_VERSION}; "
            f"upgrade litewf (the file was left untouched)",
        )
    if version < SCHEMA_VERSION and not create:
        raise DatabaseError(
            path,
            f"has schema version {version}, older than {SCHEMA_VERSION}; launch a Runtime "
            f"on it once to upgrade it",
        )


def copy_read_only(source: str, into: str) -> None:
    """Copy the litewf database ``source`` to a new file ``into`` without opening it for
    writing (for ``check_replay``); refuse what is not a litewf database this litewf reads.

    SQLite's backup API reads it in one read transaction (a live application's commits
    are all in or all out) through a read-only connection: ``immutable`` when it has no
    -wal file (no process has it open; SQLite then creates no side files either).
    """
    if os.path.isdir(source):
        raise DatabaseError(source, "is a directory; give the path of a database file")
    if not os.path.exists(source):
        raise DatabaseError(source, "no such database; check the path")
    live = os.path.exists(SideFiles(source).path_of("-wal"))
    uri = f"file:{quote(source)}?{'mode=ro' if live else 'immutable=1'}"
    try:
        src = sqlite3.connect(uri, uri=True)
        try:
            dst = sqlite3.connect(into)
            try:
                src.backup(dst)
                app_id, version, tables = dst.execute(
                    "SELECT (SELECT application_id FROM pragma_application_id), "
                    "(SELECT user_version FROM pragma_user_version), "
                    "(SELECT count(*) FROM sqlite_master)"
                ).fetchone()
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        error = translate(source, exc)
        if isinstance(error, (NotADatabaseError, CorruptDatabaseError)):
            raise error from None
        raise DatabaseError(source, f"cannot be read ({exc}); check the path") from None
    if app_id == 0 and tables == 0:
        raise DatabaseError(source, "holds no litewf schema (an empty file?); nothing to check")
    check_identity(source, app_id, version, tables, create=True)  # foreign, too new: refused


class SideFiles:
    """The -wal and -shm files of one database: where they are, and whether they are
    still the ones seen at open (deleting them under a live runtime loses commits)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._resolved: str | None = None  # the path with symlinks resolved
        #: Identity of the -wal and -shm files seen at open (see ``check``).
        self._seen: dict[str, tuple[int, int] | None] = {}
        #: Why the database can no longer be used (its -wal or -shm file was deleted).
        self.lost: str | None = None

    def path_of(self, suffix: str) -> str:
        # SQLite names the -wal and -shm files after the path with symlinks resolved
        # (resolved once: the poller checks these files on every wake).
        if self._resolved is None:
            self._resolved = os.path.realpath(self.path)
        return self._resolved + suffix

    def _identity(self, suffix: str) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path_of(suffix))
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def check_present(self) -> None:
        """Refuse a file whose -wal or -shm file was deleted under a live runtime.

        A live runtime opens the database (creating the -wal and -shm files) before it
        takes its executor lock, and drops the lock before it closes the database (the
        last close removes them): so a lock seen *first* and the files missing *after*
        means they were deleted. Checked in the other order, a peer that opened and
        locked the file in between would pass for a deletion. One peer closing in
        between still would, so the verdict must hold a few times over.
        """
        missing = self._missing()
        for attempt in range(_CONFIRM):
            if not missing:
                return  # (the usual case: no lock is looked at)
            if attempt:
                time.sleep(_CONFIRM_PAUSE_S)
            if not any_executor_alive(self.path):
                return
            missing = self._missing()
        if not missing:
            return
        # A live runtime keeps its -wal and -shm files open; SQLite removes them only
        # when the last connection closes, so someone deleted them by hand.
        raise DatabaseError(
            self.path,
            f"its {' and '.join(missing)} {'files were' if len(missing) > 1 else 'file was'} "
            f"deleted while a runtime was using "
            f"it (a live runtime still holds this file); opening it now would run on "
            f"the wrong data. Stop every process that uses this database, then launch "
            f"again (commits since the deletion may be lost)",
        )

    def _missing(self) -> list[str]:
        return [s for s in SIDE_SUFFIXES if not os.path.exists(self.path_of(s))]

    def remember(self) -> None:
        """Note the files as opened, for ``check``."""
        self._seen = {suffix: self._identity(suffix) for suffix in SIDE_SUFFIXES}

    def check(self) -> None:
        """Raise ``DatabaseError`` (and stay lost) if the -wal or -shm file seen at open
        was deleted or replaced: commits would go where no other connection looks."""
        if self.lost is None:
            for suffix, seen in self._seen.items():
                if seen is not None and self._identity(suffix) != seen:
                    self.lost = (
                        f"its {suffix} file was deleted (or replaced) while a runtime was "
                        f"using it; litewf stopped using the database so nothing more is "
                        f"written where no one will read it. Stop every process that uses "
                        f"this database, then launch again (commits since the deletion may "
                        f"be lost); never delete a live database's -wal or -shm file"
                    )
                    break
        if self.lost is not None:
            raise DatabaseError(self.path, self.lost)

    def wal_bytes(self) -> int:
        """The size of the WAL file (0 if there is none)."""
        try:
            return os.path.getsize(self.path_of("-wal"))
        except OSError:
            return 0


def hold_side_files(path: str) -> sqlite3.Connection | None:
    """A plain connection that keeps the database's -wal and -shm files in place (SQLite
    removes them when the last connection closes); None if it cannot be opened."""
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()  # opens the WAL
    except sqlite3.Error:
        return None
    return conn


def busy_error(path: str) -> DatabaseBusyError:
    return DatabaseBusyError(
        path,
        f"another process held the write lock for over {BUSY_GIVE_UP_S:g} s; "
        f"find the process that keeps a write transaction open",
    )


def error_code(exc: sqlite3.Error) -> int | None:
    """The primary SQLite result code of ``exc`` (``SQLITE_BUSY``, ...), if it has one."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def translate(path: str, exc: sqlite3.Error) -> Exception:
    """A clear litewf error for what the file or disk did; other errors pass unchanged."""
    code = error_code(exc)
    detail = str(exc)
    if code == sqlite3.SQLITE_NOTADB:
        return NotADatabaseError(
            path, "is not an SQLite database; litewf left it untouched, give another path"
        )
    if code == sqlite3.SQLITE_CORRUPT:
        return CorruptDatabaseError(path, f"is corrupt ({detail}); restore it from a backup")
    if code == sqlite3.SQLITE_BUSY:
        return busy_error(path)
    if code in (
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_AUTH,
    ):
        return DatabaseWriteError(
            path,
            f"the write was refused ({detail}); nothing was stored, free disk space or "
            f"fix permissions and try again",
        )
    return exc

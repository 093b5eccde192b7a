"""Recognising a database that cannot be written for lack of space, and saying so plainly.

SQLite reports a full disk as SQLITE_FULL ("database or disk is full"), or as SQLITE_IOERR when
the write of the WAL itself fails; PostgreSQL as SQLSTATE 53100 (disk_full). Tortoise wraps these
in its own exceptions, so the whole cause chain is searched.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from typing import Any

from tortoise import Tortoise

SQLITE_FULL = 13
SQLITE_IOERR = 10
PG_DISK_FULL = "53100"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    for e in list(seen):  # Tortoise passes the driver's exception as an argument, not a cause
        seen.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException) and a not in seen)
    return seen


def _sqlite_path() -> str | None:
    try:
        conn: Any = Tortoise.get_connection("default")
    except Exception:
        return None
    return getattr(conn, "filename", None)


def where() -> str:
    """The database's location, for messages: the SQLite file or the PostgreSQL database."""
    try:
        conn: Any = Tortoise.get_connection("default")
    except Exception:
        return "database"
    if getattr(conn, "filename", None):
        return str(conn.filename)
    host, name = getattr(conn, "host", None), getattr(conn, "database", None)
    return f"postgres:{host}/{name}" if host or name else "database"


def no_space_left(path: str | None) -> bool:
    """True when the file system holding `path` has (next to) no room left."""
    if not path:
        return False
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)) or ".")
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def sqlite_out_of_space() -> str | None:
    """The disk-full message when the SQLite file's file system has (next to) no room left: a
    write that reuses pages may still pass, but the next that needs a block will not."""
    path = _sqlite_path()
    if path and no_space_left(path):
        return f"database cannot be written: disk full ({where()})"
    return None


def is_disk_full(exc: BaseException) -> bool:
    for e in _chain(exc):
        if isinstance(e, sqlite3.Error):
            code = getattr(e, "sqlite_errorcode", None)
            base = code & 0xFF if isinstance(code, int) else None
            if base == SQLITE_FULL or "database or disk is full" in str(e):
                return True
            # A failed WAL write is an I/O error; it is a full disk when the disk is full.
            if (base == SQLITE_IOERR or "disk I/O error" in str(e)) and no_space_left(_sqlite_path()):
                return True
        elif getattr(e, "sqlstate", None) == PG_DISK_FULL:
            return True
        elif isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return True
        elif "database or disk is full" in str(e):  # Tortoise re-raises with the text only
            return True
    return False


def disk_full_message(exc: BaseException) -> str | None:
    """ "database cannot be written: disk full (<where>)" when `exc` comes from a full disk."""
    if not is_disk_full(exc):
        return None
    return f"database cannot be written: disk full ({where()})"

"""A consistent copy of a SQLite database, taken while the engine keeps writing.

SQLite's online backup API copies every page under one read transaction (pages=-1 copies in a
single step, so a concurrent writer cannot make it restart), which in WAL mode does not block
the engine. The copy is written next to the destination and renamed into place only after
`PRAGMA integrity_check` passed, so a failed backup never leaves a half file at PATH.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from engine.core.domain import InvalidInput
from engine.core.files import is_special
from engine.storage.db import Database


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    incidents: int


def pg_dump_command(db: Database, target: str) -> str:
    """The pg_dump invocation that backs up a PostgreSQL database (password left to PGPASSWORD)."""
    parts = urlsplit(db.url)
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if parts.port:
        netloc += f":{parts.port}"
    url = urlunsplit(("postgresql", netloc, parts.path, "", ""))
    cmd = ["pg_dump", "--format=custom", f"--file={target}"]
    if db.schema:
        cmd.append(f"--schema={db.schema}")
    return " ".join(shlex.quote(c) for c in [*cmd, url])


def backup_sqlite(db: Database, target: Path, *, force: bool = False) -> BackupResult:
    """Copy the database at `db.path` to `target` while others may be writing to it."""
    source = db.path
    assert source is not None
    if not source.is_file():
        raise InvalidInput("--db", f"no database at {source}")
    target = target.expanduser()
    if target.is_dir():
        raise InvalidInput("PATH", f"{target} is a directory (name the backup file)")
    if is_special(target):  # the copy is renamed into place: that would replace a device (as root)
        raise InvalidInput("PATH", f"{target} is not a regular file (name the backup file)")
    if target.exists() and target.resolve() == source.resolve():
        raise InvalidInput("PATH", f"{target} is the database itself")
    if target.exists() and not force:
        raise InvalidInput("PATH", f"{target} already exists (--force replaces it)")
    if not target.parent.is_dir():
        raise InvalidInput("PATH", f"{target.parent} is not a directory")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        try:
            # mode=rw: never create a database that is not there.
            src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
        except sqlite3.Error as exc:
            raise InvalidInput("--db", f"cannot open {source}: {exc}") from None
        try:
            try:
                dst = sqlite3.connect(partial)
            except sqlite3.Error as exc:
                raise InvalidInput("PATH", f"cannot write {target}: {exc}") from None
            try:
                _copy(src, dst, source, target)
                incidents = _count_incidents(dst)
            finally:
                dst.close()
        finally:
            src.close()
        try:
            with open(partial, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(partial, target)
        except OSError as exc:
            raise InvalidInput("PATH", f"cannot write {target}: {exc.strerror or exc}") from None
        _fsync_dir(target.parent)
    finally:
        for leftover in (partial, partial.with_name(partial.name + "-journal")):
            leftover.unlink(missing_ok=True)
    return BackupResult(target, target.stat().st_size, incidents)


def _copy(src: sqlite3.Connection, dst: sqlite3.Connection, source: Path, target: Path) -> None:
    try:
        src.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # reads the header: is it SQLite?
    except sqlite3.DatabaseError as exc:
        raise InvalidInput("--db", f"{source} is not a SQLite database ({exc})") from None
    try:
        src.backup(dst, pages=-1)
        # One self-contained file: no -wal beside the copy to lose when it is moved.
        dst.execute("PRAGMA journal_mode=DELETE")
        check = dst.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as exc:
        raise InvalidInput("PATH", f"cannot write {target}: {exc}") from None
    if check != [("ok",)]:
        raise InvalidInput("backup", f"the copy failed its integrity check: {check[0][0]}")


def _count_incidents(con: sqlite3.Connection) -> int:
    try:
        return int(con.execute("SELECT COUNT(*) FROM incident").fetchone()[0])
    except sqlite3.DatabaseError:
        raise InvalidInput("--db", "is not a PulseGuard database (it has no incident table)") from None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

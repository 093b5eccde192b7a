"""Writing a file the user named, whole or not at all, without replacing what is not a file.

A document is written beside its path and renamed over it, so a reader (or an interrupted run)
never sees half of it. But renaming over a path replaces whatever is there: `-o /dev/stdout`
or `-o /dev/null` run as root replaced the device (or its link) with a regular file, breaking
the machine for every other program. A path that is not a regular file is written in place,
and a link is followed, so the link stays.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def is_special(path: Path) -> bool:
    """Whether `path` (a link followed) exists and is not a regular file or directory: a device,
    a pipe, a socket, /dev/stdout."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def write_text_whole(path: Path, text: str) -> None:
    """Write `text` to `path` (see the module); OSError as `open` raises it."""
    if is_special(path):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    target = path.resolve() if path.is_symlink() else path
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise

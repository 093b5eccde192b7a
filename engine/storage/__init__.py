"""Storage backends and helpers."""

from __future__ import annotations

import sys
from typing import Any


def import_tortoise() -> None:
    """Import Tortoise ORM without the one source read its own import does: defining its base
    `Model`, Tortoise re-reads and tokenizes tortoise/models.py (inspect.getsource) to harvest
    `#:` field comments, and finds none (the base has no fields). That is 40-50 ms of CPU on
    every start that opens a database, the console's incident list waiting behind it. Our own
    models opt out the same way (engine.storage.base). Only that one class's source is refused,
    and only while Tortoise loads; later calls (and other threads' calls) read sources as ever."""
    if "tortoise.models" in sys.modules:
        return
    import inspect

    read = inspect.getsource

    def getsource(obj: Any) -> str:
        if getattr(obj, "__module__", None) == "tortoise.models":
            raise OSError("no field comments to read")  # tortoise.models._get_comments: {}
        return read(obj)

    inspect.getsource = getsource  # type: ignore[assignment]
    try:
        import tortoise.models  # noqa: F401
    finally:
        inspect.getsource = read

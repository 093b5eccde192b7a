"""Errors every engine interface (local or remote) raises the same way."""

from __future__ import annotations


class ReadOnlyError(PermissionError):
    pass

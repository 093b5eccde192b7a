"""Errors every engine interface (local or remote) raises the same way; a front end catches
these (DomainError and its kinds) rather than reaching into engine.core."""

from __future__ import annotations

from engine.core.domain import DomainError, IllegalTransition, InvalidInput, NotFound

__all__ = ["DomainError", "IllegalTransition", "InvalidInput", "NotFound", "ReadOnlyError"]


class ReadOnlyError(PermissionError):
    pass

"""Errors that stop the engine before it starts, with one line that says why."""

from __future__ import annotations


class StartupError(Exception):
    """The engine cannot start as configured (a plugin failed to load, say): printed as one
    line; nothing has started."""

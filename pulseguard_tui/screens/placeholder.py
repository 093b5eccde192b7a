"""A screen that says plainly which feature will fill it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Center, Middle
from textual.widgets import Static

from pulseguard_tui.screens.base import ConsoleScreen


class PlaceholderScreen(ConsoleScreen):
    DEFAULT_CSS = """
    PlaceholderScreen #placeholder { width: 70; max-width: 100%; border: round $panel; padding: 1 2; height: auto; }
    """
    message = ""

    def compose_body(self) -> ComposeResult:
        with Middle():
            with Center():
                yield Static(self.message, id="placeholder")

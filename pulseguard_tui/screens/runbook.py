"""`b`: the selected incident's runbook beside it: a Markdown file rendered, or the URL to open."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Markdown, Static


class RunbookScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    RunbookScreen { align: right middle; background: $background 40%; }
    RunbookScreen > VerticalScroll { width: 70%; min-width: 60; max-width: 100%; height: 100%;
        border: round $primary; background: $surface; padding: 0 1; }
    RunbookScreen #runbook-title { margin-bottom: 1; }
    """
    BINDINGS = [Binding("escape,q,b", "dismiss", "Close", show=True)]

    def __init__(self, key: str, runbook: dict[str, Any]) -> None:
        super().__init__()
        self.key = key
        self.runbook = runbook

    def compose(self) -> ComposeResult:
        rb = self.runbook
        with VerticalScroll():
            where = rb.get("url") or rb.get("runbook") or rb.get("file") or ""  # as configured: short and stable
            yield Static(
                Content.assemble(
                    (f"{self.key} runbook", "bold"), f" from {rb.get('origin', '?')} · Esc closes\n", (str(where), "$text-muted")
                ),
                id="runbook-title",
            )
            if rb.get("markdown") is not None:
                yield Markdown(str(rb["markdown"]), id="runbook-body")
            else:
                yield Static(f"Open it in a browser:\n{where}", id="runbook-body")

    async def action_dismiss(self, result: Any = None) -> None:
        self.dismiss(None)

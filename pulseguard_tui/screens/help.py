"""`?`: every key of the console, from the action registry (with the user's keymap applied)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from textual.markup import escape

from pulseguard_tui.actions import ACTIONS, key_display

SECTIONS = (("app", "Anywhere"), ("incidents", "Incidents (list and detail)"),
            ("postmortem", "Post-mortem tab (7 opens it; Esc returns to the list)"), ("maintenance", "Maintenance"),
            ("targets", "Targets"), ("oncall", "On-call"), ("analytics", "Analytics"))

NAVIGATION = (
    ("↑ ↓ j k", "move in the list"),
    ("PgUp PgDn g G", "page, first, last"),
    ("Tab", "next pane / field"),
    ("ctrl+p", "command palette: every action, screen and theme"),
)


def help_text(app: Any) -> str:
    lines: list[str] = []
    for scope, title in SECTIONS:
        lines.append(f"[b]{title}[/b]")
        for a in ACTIONS:
            if a.scope != scope:
                continue
            keys = app.keys_for(a.id) if app is not None else ""
            keys = keys or key_display(a.key)
            mark = " [dim](changes data)[/dim]" if a.write else ""
            lines.append(f"  [b]{escape(f'{keys:<14}')}[/b] {escape(a.description)}{mark}")
        lines.append("")
    lines.append("[b]Moving around[/b]")
    for keys, what in NAVIGATION:
        lines.append(f"  [b]{escape(f'{keys:<14}')}[/b] {escape(what)}")
    lines.append("")
    lines.append("[b]Command line[/b]  :incidents :targets :maintenance :oncall :analytics :theme NAME :readonly :q")
    lines.append("[b]Filter[/b]  words  sev:critical,high  status:open  svc:api  tag:db  @alice  @none  INC-42")
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; background: $background 60%; }
    HelpScreen > VerticalScroll { width: 84; max-width: 100%; height: 100%; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", show=True)]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("[b]PulseGuard keys[/b]  (Esc closes)\n\n" + help_text(self.app), id="help-text")

    async def action_dismiss(self, result: Any = None) -> None:
        self.dismiss(None)

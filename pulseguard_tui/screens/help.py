"""`?`: every key of the console, from the action registry (with the user's keymap applied)."""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from pulseguard_tui.actions import ACTIONS, key_display

SECTIONS = (
    ("app", "Anywhere"),
    ("incidents", "Incidents (list and detail)"),
    ("postmortem", "Post-mortem tab (7 opens it; Esc returns to the list)"),
    ("maintenance", "Maintenance"),
    ("targets", "Targets"),
    ("oncall", "On-call"),
    ("analytics", "Analytics"),
    ("audit", "Audit log"),
    ("services", "Services"),
    ("silences", "Silences"),
)

NAVIGATION = (
    ("↑ ↓ j k", "move in the list"),
    ("PgUp PgDn g G", "page, first, last"),
    ("Tab", "next pane / field"),
    ("ctrl+p", "command palette: every action, screen and theme"),
)


KEY_CELLS = 17  # "  " + the key in 14 cells + " ": where every description starts


def help_content(app: Any, width: int | None = None) -> Content:
    """The help as styled text (built as Content, never markup: keys like `[` stay keys). With
    `width`, a description too long for it goes on under itself, not from the first column."""
    parts: list[str | tuple[str, str]] = []

    def line(key: str, what: str, mark: str = "") -> None:
        parts.append(("  " + f"{key:<14}", "bold"))
        room = (width or 0) - KEY_CELLS
        if room < 20 or cell_len(what + mark) <= room:
            parts.append(f" {what}")
            if mark:
                parts.append((mark, "dim"))
        else:  # wrapped by hand, the mark dim as ever, each further line indented under the first
            words = what.split(" ") + ([mark.strip()] if mark else [])  # the mark stays whole
            plain = len(what.split(" "))  # the words that are not the mark
            rows: list[list[tuple[int, str]]] = [[]]
            used = 0
            for i, word in enumerate(words):
                if rows[-1] and used + 1 + cell_len(word) > room:
                    rows.append([])
                    used = 0
                used += (1 if rows[-1] else 0) + cell_len(word)
                rows[-1].append((i, word))
            for r, row in enumerate(rows):
                parts.append(" " if r == 0 else "\n" + " " * KEY_CELLS)
                for j, (i, word) in enumerate(row):
                    text = (" " if j else "") + word
                    parts.append((text, "dim") if i >= plain else text)
        parts.append("\n")

    available = getattr(app, "action_available", None)
    for scope, title in SECTIONS:
        actions = [a for a in ACTIONS if a.scope == scope and (available is None or available(a))]
        if not actions:
            continue
        parts.extend([(title, "bold"), "\n"])
        for a in actions:
            keys = (app.keys_for(a.id) if app is not None else "") or key_display(a.key)
            line(keys, a.description, " (changes data)" if a.write else "")
        parts.append("\n")
    parts.extend([("Moving around", "bold"), "\n"])
    for keys, what in NAVIGATION:
        line(keys, what)
    parts.append("\n")
    parts.extend(
        [
            ("Command line", "bold"),
            "  :incidents :targets :maintenance :oncall :analytics :audit :services :silences :theme NAME :readonly :q\n",
        ]
    )
    parts.extend([("Filter", "bold"), "  words  sev:critical,high  status:open  svc:api  tag:db  @alice  @none  INC-42"])
    return Content.assemble(*parts)


def help_text(app: Any) -> str:
    return help_content(app).plain


class HelpText(Static):
    """The help, its long descriptions wrapped under themselves for the width it has."""

    def on_resize(self) -> None:
        screen = self.screen
        if isinstance(screen, HelpScreen):
            self.update(screen._content(self.size.width))


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; background: $background 60%; }
    HelpScreen > VerticalScroll { width: 84; max-width: 100%; height: 100%; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", show=True)]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield HelpText(self._content(None), id="help-text")

    def _content(self, width: int | None) -> Content:
        title = Content.assemble(("PulseGuard keys", "bold"), "  (Esc closes)\n\n")
        return title + help_content(self.app, width)

    async def action_dismiss(self, result: Any = None) -> None:
        self.dismiss(None)

"""What every console screen shares: the header line on top, the footer of keys below, and a
hook for the change feed. A screen is one module, so a feature can replace its screen alone."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.events import Key, Resize
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer
from textual.widgets._footer import FooterKey

from pulseguard_tui.actions import action_for, for_scope, key_display
from pulseguard_tui.formatting import clip
from pulseguard_tui.lifecycle import StopsWorkOnRemoval
from pulseguard_tui.widgets.inputs import typed_on
from pulseguard_tui.widgets.status_line import StatusLine


def bindings_for(scope: str) -> list[BindingType]:
    """Textual bindings for the actions of `scope`, each with its stable id (for the keymap)."""
    out: list[BindingType] = []
    for a in for_scope(scope):
        if a.action == "tab":
            continue  # digit keys are bound one by one by the screen
        out.append(
            Binding(
                a.key,
                a.action,
                a.short or a.description.split(" (")[0],
                show=a.footer,
                id=a.id,
                key_display=key_display(a.key),
                tooltip=a.description,
            )
        )
    return out


def scrollbar(screen: Screen[Any], rows: int) -> int:
    """Cells a full-screen table's vertical scrollbar takes: 1 once its rows (and header) are
    more than the screen's body holds (header line, footer and an info line or two aside)."""
    height = screen.size.height or screen.app.size.height
    return 1 if rows + 1 > height - 4 else 0


def lay_out_table(
    screen: Screen[Any],
    headings: Sequence[str],
    rows: list[tuple[str, ...]],
    fit: Callable[[list[tuple[str, ...]], int], list[int]],
    keys: Sequence[str] | None = None,
) -> int:
    """Fill the screen's full-width table with `rows`, each cell clipped to the column widths
    `fit` gives for the screen's width (less a scrollbar), keeping the cursor's row. Rows are
    keyed by their first cell unless `keys` are given. Returns the width laid out for, so the
    screen lays out again after a resize that changes it."""
    table = screen.query_one(DataTable)
    # The table spans the screen, whose size is known before the table's own layout.
    laid_out_for = screen.size.width or screen.app.size.width
    widths = fit(rows, laid_out_for - scrollbar(screen, len(rows)))
    keep = table.cursor_row
    table.clear(columns=True)
    for heading, width in zip(headings, widths):
        table.add_column(heading, width=width, key=heading)
    for i, row in enumerate(rows):
        table.add_row(*(clip(cell, width) for cell, width in zip(row, widths)), key=keys[i] if keys is not None else row[0])
    if rows:
        table.move_cursor(row=min(keep, len(rows) - 1))
    return laid_out_for


KEEP_IN_FOOTER = {"help"}  # always shown: help lists whatever the footer leaves out
PALETTE_WIDTH = 11  # the command palette key, docked on the right


class ConsoleFooter(Footer):
    """The compact footer, cut to the terminal's width: when the keys do not fit, the last ones
    (the screen's and the app's, after those of the focused widget) are left out, except help,
    rather than running off the edge."""

    _laid_out_for = 0

    def compose(self) -> ComposeResult:
        items = list(super().compose())
        self._laid_out_for = self.size.width or self.app.size.width
        width = self._laid_out_for - PALETTE_WIDTH
        keys = [w for w in items if isinstance(w, FooterKey) and "-command-palette" not in w.classes]

        def cells(widget: Widget) -> int:
            if isinstance(widget, FooterKey):
                return len(widget.key_display) + (len(widget.description) + 1 if widget.description else 0) + 1
            return 0

        used = sum(cells(w) for w in keys)
        dropped: set[int] = set()
        for widget in reversed(keys):
            if used <= width:
                break
            if widget.action.rpartition(".")[2] not in KEEP_IN_FOOTER:
                dropped.add(id(widget))
                used -= cells(widget)
        yield from (w for w in items if id(w) not in dropped)

    def on_resize(self, event: Resize) -> None:
        if event.size.width != self._laid_out_for:
            self.call_after_refresh(self.recompose)


class ConsoleScreen(StopsWorkOnRemoval, Screen[None]):
    """Base screen: subclasses implement `compose_body` and may override `on_feed`. The app
    calls `on_feed` (and `tick`, `refresh_status`) only while the screen is live; the screen's
    workers stop when its removal begins (pulseguard_tui.lifecycle)."""

    screen_title = ""
    scope = ""

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status-line")
        yield from self.compose_body()
        yield ConsoleFooter(compact=True)

    def compose_body(self) -> ComposeResult:
        return iter(())

    def on_mount(self) -> None:
        line = self.query_one(StatusLine)
        line.screen_title = self.screen_title
        self.refresh_status()

    def on_screen_resume(self) -> None:
        self.refresh_status()

    def refresh_status(self) -> None:
        app: Any = self.app
        for line in self.query(StatusLine):
            line.set_data(state=app.engine_state, counts=app.counts, targets=app.targets)

    async def on_feed(self, events: list[dict[str, Any]]) -> None:
        """New events from the change feed (any process); screens refresh what they show."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that cannot work over this connection (or for this identity) are neither shown
        nor run."""
        found = action_for(self.scope, action)
        available = getattr(self.app, "action_available", None)
        return found is None or available is None or available(found)

    def on_key(self, event: Key) -> None:
        """The key is marked as this screen's on its way up to the app's bindings, where it is
        decided in the order typed (PulseGuardApp._on_key): a form opened over this screen
        meanwhile takes it, the field opened by the key before it (the filter) takes it, a
        viewer's write key is refused."""
        typed_on(event, self)

    def refuse_write_key(self, event: Key) -> bool:
        """A viewer's console shows no write keys (check_action); one pressed anyway says why
        instead of doing nothing. True when `event` was one."""
        app: Any = self.app
        if not self.scope:
            return False
        may_write, may_administer = getattr(app, "may_write", True), getattr(app, "may_administer", True)
        if may_write and may_administer:
            return False
        keymap = getattr(app, "_keymap", None) or {}
        scopes = [self.scope, "app"]
        if getattr(self.focused, "id", None) == "pm-timeline":  # the Post-mortem tab's keys are its own
            scopes.insert(0, "postmortem")
        for a in (a for scope in scopes for a in for_scope(scope)):
            if event.key not in (keymap.get(a.id) or a.key).split(","):
                continue
            if a.id == "app.readonly" and not may_write:  # R: why this console stays read-only
                app.set_readonly(False)
                return True
            if a.write and not may_write:
                app.refuse_if_readonly()
                return True
            if a.admin and not may_administer:
                role = app.capabilities.role or "viewer"
                app.notify(f"{a.description.lower()} needs an admin token; this console's is a {role}'s", severity="warning")
                return True
        return False

    def typing_into(self) -> Widget | None:
        """The field of this screen that keys typed are for while focus moves to it (the filter
        just opened), else None."""
        return None

    def action_back(self) -> None:
        app: Any = self.app
        if app.current_mode != "incidents":
            app.switch_mode("incidents")

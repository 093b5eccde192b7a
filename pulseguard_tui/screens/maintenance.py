"""Maintenance windows: list (active, scheduled and, on request, ended), add, end."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.events import Resize
from textual.widgets import DataTable, Static

from pulseguard_tui.formatting import local_time, parse_iso
from pulseguard_tui.forms.maintenance import AddMaintenanceScreen, EndMaintenanceScreen
from pulseguard_tui.lifecycle import run_work
from pulseguard_tui.screens.base import ConsoleScreen, bindings_for, lay_out_table

HEADINGS = ("#", "STATE", "KIND", "TITLE", "COVERS", "STARTS", "ENDS")
SHRINK = ((4, 8), (3, 12), (2, 5))  # (column, narrowest): what gives way when the table is too wide


def fit(rows: list[tuple[str, ...]], width: int) -> list[int]:
    """Column widths for a table `width` cells wide: as wide as the content, then COVERS,
    TITLE and KIND narrowed (cut with an ellipsis) until the table fits; the selected window
    is shown whole below the table."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(HEADINGS)]
    over = sum(widths) + 2 * len(widths) - width  # DataTable pads each cell by one each side
    for column, narrowest in SHRINK:
        if over <= 0:
            break
        give = min(over, max(widths[column] - narrowest, 0))
        widths[column] -= give
        over -= give
    return widths


def window_state(w: dict[str, Any], now: Any) -> str:
    if w.get("ended_at"):
        return "ended"
    starts, ends = parse_iso(w["starts_at"]), parse_iso(w["ends_at"])
    if ends is not None and ends <= now:
        return "over"
    if starts is not None and starts > now:
        return "scheduled"
    return "ACTIVE"


class MaintenanceScreen(ConsoleScreen):
    screen_title = "Maintenance"
    scope = "maintenance"
    BINDINGS = bindings_for("maintenance")
    DEFAULT_CSS = """
    MaintenanceScreen #windows { height: 1fr; }
    MaintenanceScreen #windows-info { height: auto; color: $text-muted; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.show_ended = False
        self.windows: list[dict[str, Any]] = []
        self.rows: list[tuple[str, ...]] = []
        self._laid_out_for = -1

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="windows", cursor_type="row", zebra_stripes=True)
        yield Static("", id="windows-info")

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one(DataTable)
        table.focus()
        run_work(self, self.reload, group="maintenance", exclusive=True)

    async def on_feed(self, events: list[dict[str, Any]]) -> None:
        if any(e.get("kind", "").startswith("maintenance") for e in events):
            run_work(self, self.reload, group="maintenance", exclusive=True)

    async def reload(self) -> None:
        app: Any = self.app
        await app.ready.wait()
        try:
            self.windows = await app.api.list_maintenance(include_ended=self.show_ended)
        except Exception as exc:
            self.query_one("#windows-info", Static).update(f"could not load maintenance windows: {exc}")
            return
        now = app.now()
        self.rows = []
        for w in self.windows:
            covers = ", ".join([*(w.get("services") or []), *(f"target:{t}" for t in w.get("targets") or [])])
            self.rows.append(
                (
                    str(w["id"]),
                    window_state(w, now),
                    w["kind"],
                    " ".join(w["title"].split()),
                    covers,
                    local_time(w["starts_at"], now=now),
                    local_time(w.get("ended_at") or w["ends_at"], now=now),
                )
            )
        self._fill()
        self._update_info()

    def _update_info(self) -> None:
        """The selected window whole (the columns may cut it), then what the list holds."""
        shown = "including ended" if self.show_ended else "active and scheduled"
        info = f"{len(self.windows)} window{'' if len(self.windows) == 1 else 's'} ({shown}) · x shows or hides ended ones"
        table = self.query_one(DataTable)
        if self.rows and table.cursor_row is not None and 0 <= table.cursor_row < len(self.rows):
            number, state, kind, title, covers, starts, ends = self.rows[table.cursor_row]
            info = f"#{number} {title} ({kind}, {state}) · {covers or 'nothing'} · {starts} – {ends}\n{info}"
        self.query_one("#windows-info", Static).update(info)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._update_info()

    def _fill(self) -> None:
        """Lay the rows out for the table's width (again after a resize)."""
        self._laid_out_for = lay_out_table(self, HEADINGS, self.rows, fit)

    def on_resize(self, event: Resize) -> None:
        if event.size.width != self._laid_out_for:
            self._fill()

    @property
    def selected(self) -> dict[str, Any] | None:
        table = self.query_one(DataTable)
        if not self.windows or table.cursor_row is None or table.cursor_row >= len(self.windows):
            return None
        return self.windows[table.cursor_row]

    def _done(self, message: Any) -> None:
        if message:
            self.notify(str(message))
            run_work(self, self.reload, group="maintenance", exclusive=True)

    def action_add(self) -> None:
        app: Any = self.app
        if not app.refuse_if_readonly():
            app.push_screen(AddMaintenanceScreen(), self._done)

    def action_end(self) -> None:
        app: Any = self.app
        if app.refuse_if_readonly():
            return
        window = self.selected
        if window is None:
            self.notify("no maintenance window selected", severity="warning")
        elif window.get("ended_at"):
            self.notify(f"maintenance #{window['id']} has already ended", severity="warning")
        else:
            app.push_screen(EndMaintenanceScreen(window), self._done)

    def action_toggle_ended(self) -> None:
        self.show_ended = not self.show_ended
        run_work(self, self.reload, group="maintenance", exclusive=True)

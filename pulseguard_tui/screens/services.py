"""Services: the catalogue: who owns each service, the policy its incidents follow, who it
pages first and who is on call for it now (read-only: services live in the configuration)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.events import Resize
from textual.widgets import DataTable, Static

from pulseguard_tui.formatting import local_time
from pulseguard_tui.lifecycle import run_work
from pulseguard_tui.screens.base import ConsoleScreen, bindings_for, lay_out_table

HEADINGS = ("SERVICE", "OWNER", "POLICY", "ON CALL NOW", "PAGES FIRST (CRITICAL)")


def fit(rows: list[tuple[str, ...]], width: int) -> list[int]:
    """Every column as wide as its content but the last, which takes the rest (at least 12);
    OWNER and POLICY narrow first. The selected service is shown whole below the table."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(HEADINGS)]
    pad = 2 * len(HEADINGS)
    for column, narrowest in ((1, 8), (2, 8), (3, 12)):
        over = sum(widths[:-1]) + 12 + pad - width
        if over <= 0:
            break
        widths[column] -= min(over, max(widths[column] - narrowest, 0))
    widths[-1] = max(12, width - sum(widths[:-1]) - pad)
    return widths


class ServicesScreen(ConsoleScreen):
    screen_title = "Services"
    scope = "services"
    BINDINGS = bindings_for("services")
    DEFAULT_CSS = """
    ServicesScreen #services { height: 1fr; }
    ServicesScreen #services-info { height: auto; color: $text-muted; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.services: list[dict[str, Any]] = []
        self.rows: list[tuple[str, ...]] = []
        self.error = ""
        self._laid_out_for = -1

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="services", cursor_type="row", zebra_stripes=True)
        yield Static("", id="services-info")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(DataTable).focus()
        run_work(self, self.reload, group="services", exclusive=True)

    def action_refresh(self) -> None:
        run_work(self, self.reload, group="services", exclusive=True)

    async def reload(self) -> None:
        app: Any = self.app
        await app.ready.wait()
        try:
            self.services = await app.api.service_catalogue()
            self.error = ""
        except Exception as exc:
            self.services, self.error = [], f"could not read the services: {exc}"
        now = app.now()
        self.rows = []
        for s in self.services:
            who = s.get("on_call_name") or ("-" if not s.get("schedule") else "nobody")
            if s.get("on_call_until"):
                who += f" until {local_time(s['on_call_until'], now=now)}"
            first = ", ".join((s.get("pages_first") or {}).get("critical") or []) or "nobody"
            self.rows.append((s["name"], s.get("owner") or "-", s.get("escalation_policy") or "default", who, first))
        self._fill()

    def _fill(self) -> None:
        self._laid_out_for = lay_out_table(self, HEADINGS, self.rows, fit)
        self._update_info()

    def _update_info(self) -> None:
        if self.error:
            self.query_one("#services-info", Static).update(self.error)
            return
        info = f"{len(self.services)} service{'' if len(self.services) == 1 else 's'} · from the configuration ([[services]]) · Esc back"
        if not self.services:
            info = "no services: add [[services]] to the configuration · Esc back"
        table = self.query_one(DataTable)
        if self.services and table.cursor_row is not None and 0 <= table.cursor_row < len(self.services):
            s = self.services[table.cursor_row]
            paged = "; ".join(f"{sev}: {', '.join(t) or 'nobody'}" for sev, t in (s.get("pages_first") or {}).items())
            extra = f" · runbook {s['runbook']}" if s.get("runbook") else ""
            info = f"{s['name']} ({s.get('schedule') or 'no schedule'}) pages first: {paged}{extra}\n{info}"
        self.query_one("#services-info", Static).update(info)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._update_info()

    def on_resize(self, event: Resize) -> None:
        if event.size.width != self._laid_out_for:
            self._fill()

"""Silences: active, pending and expired ones (with when they end or ended), and keys to add,
extend and expire one. While a silence is active, firings it matches open nothing and page
nobody; pages for open incidents it matches wait for its end."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.events import Resize
from textual.widgets import DataTable, Static

from pulseguard_tui.formatting import local_time
from pulseguard_tui.forms.silences import AddSilenceScreen, ExpireSilenceScreen, ExtendSilenceScreen
from pulseguard_tui.lifecycle import run_work
from pulseguard_tui.screens.base import ConsoleScreen, bindings_for, lay_out_table

HEADINGS = ("#", "STATE", "MATCHERS", "ENDS", "HITS", "BY", "COMMENT")
SHRINK = ((6, 8), (2, 16), (5, 6))  # (column, narrowest): what gives way when the table is too wide


def fit(rows: list[tuple[str, ...]], width: int) -> list[int]:
    """As wide as the content, then COMMENT, MATCHERS and BY narrowed until the table fits; the
    selected silence is shown whole below the table."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(HEADINGS)]
    over = sum(widths) + 2 * len(widths) - width
    for column, narrowest in SHRINK:
        if over <= 0:
            break
        give = min(over, max(widths[column] - narrowest, 0))
        widths[column] -= give
        over -= give
    return widths


class SilencesScreen(ConsoleScreen):
    screen_title = "Silences"
    scope = "silences"
    BINDINGS = bindings_for("silences")
    DEFAULT_CSS = """
    SilencesScreen #silences { height: 1fr; }
    SilencesScreen #silences-info { height: auto; color: $text-muted; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.show_expired = True
        self.silences: list[dict[str, Any]] = []
        self.rows: list[tuple[str, ...]] = []
        self.error = ""
        self._laid_out_for = -1

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="silences", cursor_type="row", zebra_stripes=True)
        yield Static("", id="silences-info")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(DataTable).focus()
        self.action_refresh()

    def action_refresh(self) -> None:
        run_work(self, self.reload, group="silences", exclusive=True)

    async def on_feed(self, events: list[dict[str, Any]]) -> None:
        if any(str(e.get("kind", "")).startswith(("silence", "silenced")) for e in events):
            self.action_refresh()

    async def reload(self) -> None:
        app: Any = self.app
        await app.ready.wait()
        try:
            self.silences = await app.api.list_silences(expired=self.show_expired)
            self.error = ""
        except Exception as exc:
            self.silences, self.error = [], f"could not read the silences: {exc}"
        now = app.now()
        self.rows = []
        for s in self.silences:
            state = s["state"]
            if state == "pending":
                ends = f"from {local_time(s['starts_at'], now=now)}"
            else:
                ends = local_time(s["ends_at"], now=now)
            self.rows.append(
                (
                    str(s["id"]),
                    state.upper() if state == "active" else state,
                    " ".join(s["matchers"]),
                    ends,
                    str(s.get("silenced") or 0),
                    s.get("created_by") or "",
                    " ".join(str(s.get("comment") or "").split()),
                )
            )
        self._fill()

    def _fill(self) -> None:
        self._laid_out_for = lay_out_table(self, HEADINGS, self.rows, fit)
        self._update_info()

    def _update_info(self) -> None:
        if self.error:
            self.query_one("#silences-info", Static).update(self.error)
            return
        active = sum(1 for s in self.silences if s["state"] == "active")
        shown = "with expired" if self.show_expired else "active and pending"
        info = f"{active} active · {len(self.silences)} shown ({shown}) · n add · e extend · E expire · x expired"
        s = self.selected
        if s is not None:
            app: Any = self.app
            now = app.now()
            if s["state"] == "expired":
                when = f"expired {local_time(s['ends_at'], now=now)}" + (f" by {s['expired_by']}" if s.get("expired_by") else "")
            else:
                when = f"{local_time(s['starts_at'], now=now)} – {local_time(s['ends_at'], now=now)}"
            info = f"#{s['id']} {' '.join(s['matchers'])} · {when} · {s.get('silenced') or 0} silenced · {s['comment']}\n{info}"
        self.query_one("#silences-info", Static).update(info)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._update_info()

    def on_resize(self, event: Resize) -> None:
        if event.size.width != self._laid_out_for:
            self._fill()

    @property
    def selected(self) -> dict[str, Any] | None:
        table = self.query_one(DataTable)
        if not self.silences or table.cursor_row is None or not 0 <= table.cursor_row < len(self.silences):
            return None
        return self.silences[table.cursor_row]

    def _done(self, message: Any) -> None:
        if message:
            self.notify(str(message))
            self.action_refresh()

    def _current(self, doing: str) -> dict[str, Any] | None:
        app: Any = self.app
        if app.refuse_if_readonly():
            return None
        s = self.selected
        if s is None:
            self.notify("no silence selected", severity="warning")
        elif s["state"] == "expired":
            self.notify(f"silence #{s['id']} has expired; add a new one rather than {doing} it", severity="warning")
            return None
        return s

    def action_add(self) -> None:
        app: Any = self.app
        if not app.refuse_if_readonly():
            app.push_screen(AddSilenceScreen(), self._done)

    def action_extend(self) -> None:
        if s := self._current("extend"):
            self.app.push_screen(ExtendSilenceScreen(s), self._done)

    def action_expire(self) -> None:
        if s := self._current("expire"):
            self.app.push_screen(ExpireSilenceScreen(s), self._done)

    def action_toggle_expired(self) -> None:
        self.show_expired = not self.show_expired
        self.action_refresh()

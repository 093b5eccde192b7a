"""The audit log: who changed what, from where, with the values before and after (read-only)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.events import Resize
from textual.widgets import DataTable, Static

from engine.api.display import audit_change
from pulseguard_tui.formatting import local_time
from pulseguard_tui.lifecycle import run_work
from pulseguard_tui.screens.base import ConsoleScreen, bindings_for, lay_out_table

HEADINGS = ("TIME", "ACTOR", "FROM", "ACTION", "SUBJECT", "CHANGE")
PAGE = 200


def fit(rows: list[tuple[str, ...]], width: int) -> list[int]:
    """Column widths: every column as wide as its content but CHANGE, which takes the rest (at
    least 12); ACTION and ACTOR narrow first when even that does not fit. The selected entry is
    shown whole below the table."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(HEADINGS)]
    pad = 2 * len(HEADINGS)  # DataTable pads each cell by one each side
    for column, narrowest in ((3, 10), (1, 8), (4, 8)):
        over = sum(widths[:-1]) + 12 + pad - width
        if over <= 0:
            break
        widths[column] -= min(over, max(widths[column] - narrowest, 0))
    widths[-1] = max(12, width - sum(widths[:-1]) - pad)
    return widths


class AuditScreen(ConsoleScreen):
    screen_title = "Audit log"
    scope = "audit"
    BINDINGS = bindings_for("audit")
    DEFAULT_CSS = """
    AuditScreen #audit { height: 1fr; }
    AuditScreen #audit-info { height: auto; color: $text-muted; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[dict[str, Any]] = []
        self.rows: list[tuple[str, ...]] = []
        self.error = ""
        self._laid_out_for = -1

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="audit", cursor_type="row", zebra_stripes=True)
        yield Static("", id="audit-info")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(DataTable).focus()
        run_work(self, self.reload, group="audit", exclusive=True)

    async def on_feed(self, events: list[dict[str, Any]]) -> None:
        if events and self.is_current:  # every audited change also adds a timeline event
            run_work(self, self.reload, group="audit", exclusive=True)

    def action_refresh(self) -> None:
        run_work(self, self.reload, group="audit", exclusive=True)

    async def reload(self) -> None:
        app: Any = self.app
        await app.ready.wait()
        try:
            page = await app.api.audit_log(limit=PAGE)
        except Exception as exc:  # a remote engine answers 403 to a token below admin
            self.error = f"could not read the audit log: {exc}"
            self.entries, self.rows = [], []
            self._fill()
            return
        self.error = ""
        now = app.now()
        self.entries = page["entries"]
        self.rows = [
            # "incident." goes: the subject (INC-12) already says it, and the change needs the room.
            (
                local_time(e["at"], now=now),
                e["actor"],
                e["source"],
                e["action"].removeprefix("incident."),
                e["subject"],
                " ".join(audit_change(e).split()),
            )
            for e in self.entries
        ]
        self._fill()

    def _fill(self) -> None:
        self._laid_out_for = lay_out_table(self, HEADINGS, self.rows, fit, keys=[str(i) for i in range(len(self.rows))])
        self._update_info()

    def _update_info(self) -> None:
        """The selected entry whole, then what the list holds."""
        if self.error:
            self.query_one("#audit-info", Static).update(self.error)
            return
        count = len(self.entries)
        info = (
            f"{count}{'+' if count == PAGE else ''} change{'' if count == 1 else 's'}, newest first · read-only: "
            "nothing here can be edited · ^r refresh · Esc back"
        )
        if not self.entries:
            info = "no changes recorded yet: changes made through the console, CLI or API are listed here · Esc back"
        table = self.query_one(DataTable)
        if self.rows and table.cursor_row is not None and 0 <= table.cursor_row < len(self.rows):
            when, actor, source, action, subject, change = self.rows[table.cursor_row]
            info = f"{when} {actor} ({source}) {action} {subject}: {change}\n{info}"
        self.query_one("#audit-info", Static).update(info)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._update_info()

    def on_resize(self, event: Resize) -> None:
        if event.size.width != self._laid_out_for:
            self._fill()

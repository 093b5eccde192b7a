"""Targets: each probed target's state, last result, latency sparkline and error."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from pulseguard_tui.formatting import ago, clip, sparkline
from pulseguard_tui.screens.base import ConsoleScreen, bindings_for
from pulseguard_tui.widgets.correlation import series_name

STATE_TEXT = {"up": "▲ UP", "down": "▼ DOWN", "unknown": "? unknown", "paused": "‖ paused"}


class TargetsScreen(ConsoleScreen):
    screen_title = "Targets"
    scope = "targets"
    BINDINGS = bindings_for("targets")
    DEFAULT_CSS = """
    TargetsScreen #targets { height: 1fr; }
    TargetsScreen #targets-info { height: auto; color: $text-muted; padding: 0 1; }
    """
    REFRESH_SECONDS = 5.0

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="targets", cursor_type="row", zebra_stripes=True)
        yield Static("", id="targets-info")

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one(DataTable)
        table.add_columns("TARGET", "KIND", "STATE", "LAST", "LATENCY", "TREND", "ERROR")
        table.focus()
        self.run_worker(self.reload, group="targets", exclusive=True)
        self.set_interval(self.REFRESH_SECONDS, self._tick)

    def _tick(self) -> None:
        if self.is_current:
            self.run_worker(self.reload, group="targets", exclusive=True)

    def action_refresh(self) -> None:
        self.run_worker(self.reload, group="targets", exclusive=True)

    async def on_feed(self, events: list[dict[str, Any]]) -> None:
        if any(e.get("kind", "").startswith("target") for e in events) and self.is_current:
            self.run_worker(self.reload, group="targets", exclusive=True)

    async def reload(self) -> None:
        app: Any = self.app
        await app.ready.wait()
        try:
            targets = await app.api.list_targets()
        except Exception as exc:
            self.query_one("#targets-info", Static).update(f"could not load targets: {exc}")
            return
        now = app.now()
        rows = []
        for t in targets:
            try:
                samples = await app.api.series_samples(series_name(t["name"]), since=now - timedelta(minutes=30))
            except Exception:
                samples = []
            trend = sparkline([s.get("value") for s in samples], 16)
            latency = t.get("last_latency_ms")
            last = "-"
            if t.get("last_at"):
                code = t.get("last_status_code")
                result = "ok" if t.get("last_ok") else "FAIL"
                last = f"{result}{f' {code}' if code else ''} {ago(t['last_at'], now)}"
            rows.append((t["name"], t.get("kind", "-"), STATE_TEXT.get(t.get("state", "unknown"), t.get("state", "?")), last,
                         f"{latency:.0f} ms" if latency is not None else "-", trend or "-", clip(t.get("last_error") or "", 40)))
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        for row in rows:
            table.add_row(*row, key=row[0])
        if rows:
            table.move_cursor(row=min(keep, len(rows) - 1))
        info = self.query_one("#targets-info", Static)
        if not targets:
            info.update("no targets: add [[targets]] to the configuration; the engine probes them and they show here")
        else:
            down = sum(1 for t in targets if t.get("state") == "down")
            info.update(f"{len(targets)} targets, {down} down · refreshed every {self.REFRESH_SECONDS:.0f} s · Esc back")
        app.targets = targets
        self.refresh_status()

"""Targets: each probed target's state, last result, latency sparkline and error."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from textual.app import ComposeResult
from textual.events import Resize
from textual.widgets import DataTable, Static

from pulseguard_tui.formatting import ago, clip, sparkline
from pulseguard_tui.lifecycle import run_work
from pulseguard_tui.screens.base import ConsoleScreen, bindings_for, scrollbar
from pulseguard_tui.widgets.correlation import series_name

STATE_TEXT = {"up": "▲ UP", "down": "▼ DOWN", "unknown": "? unknown", "paused": "‖ paused"}
HEADINGS = ("TARGET", "KIND", "STATE", "LAST", "LATENCY", "TREND", "ERROR")
TREND_WIDTH = 16


def cluster_lines(cluster: dict[str, Any] | None) -> list[str]:
    """The engines sharing the database, one line each: who probes how many buckets and runs
    which modules (the engine panel of `[engine] cluster = true`)."""
    if not cluster:
        return []
    n = cluster.get("running", 0)
    buckets = cluster.get("buckets") or {}
    lines = [
        f"cluster: {n} engine{'s' if n != 1 else ''} running, {buckets.get('claimed', 0)} of {buckets.get('total', 0)} buckets claimed"
    ]
    for e in cluster.get("engines") or []:
        if not e.get("alive"):
            continue
        name = ":".join(str(e.get("engine", "?")).split(":")[:2])  # host:pid
        modules = ", ".join(e.get("modules") or []) or "no module"
        lag = f" · lag p99 {e['lag_p99_ms']:.0f} ms" if e.get("lag_p99_ms") is not None else ""
        lines.append(f"  {name}  {e.get('buckets', 0)} buckets · {modules} · beat {e.get('beat_seconds_ago', 0):.0f} s ago{lag}")
    if n == 0:
        lines.append("  no engine is running: nothing is probed or paged (start `pulseguard engine` on a server)")
    return lines


def layout(rows: list[tuple[str, ...]], width: int) -> tuple[list[tuple[str, int]], list[tuple[str, ...]]]:
    """Columns (heading, width) and the rows cut to them, for a table `width` cells wide.

    Every column but ERROR is as wide as its content; ERROR takes the rest. When the longest
    error does not fit, the trend narrows, then goes, then LAST drops its "ago", so the error
    (what is wrong) is the last thing cut; the selected target's full error is shown below
    the table anyway."""
    rows = [tuple(r) for r in rows]
    longest_error = max((len(r[6]) for r in rows), default=0)
    trend = TREND_WIDTH
    short_last = False

    def widths() -> list[int]:
        out = []
        for i, heading in enumerate(HEADINGS[:6]):
            if i == 5:
                out.append(trend)
                continue
            cells = [r[i].removesuffix(" ago") if i == 3 and short_last else r[i] for r in rows]
            out.append(max([len(heading), *(len(c) for c in cells)]))
        return out

    def error_room(ws: list[int]) -> int:
        shown = [w for w in ws if w > 0]
        return width - sum(shown) - 2 * (len(shown) + 1)  # DataTable pads each cell by one each side

    for step in ("narrow trend", "no trend", "short last"):
        if error_room(widths()) >= max(longest_error, len("ERROR")):
            break
        if step == "narrow trend":
            trend = TREND_WIDTH // 2
        elif step == "no trend":
            trend = 0
        else:
            short_last = True
    ws = widths()
    ws.append(max(error_room(ws), len("ERROR")))
    columns = [(h, w) for h, w in zip(HEADINGS, ws) if w > 0]
    out = []
    for r in rows:
        cells = list(r)
        if short_last:
            cells[3] = cells[3].removesuffix(" ago")
        cells[5] = cells[5][-trend:] if trend else ""
        out.append(tuple(clip(c, w) for c, w in zip(cells, ws) if w > 0))
    return columns, out


def target_rows(targets: list[dict[str, Any]], trends: dict[str, str], now: datetime) -> list[tuple[str, ...]]:
    """One row per target: name, kind, state, last result and its age at `now`, latency, trend, error."""
    rows: list[tuple[str, ...]] = []
    for t in targets:
        latency = t.get("last_latency_ms")
        last = "-"
        if t.get("last_at"):
            code = t.get("last_status_code")
            result = "ok" if t.get("last_ok") else "FAIL"
            last = f"{result}{f' {code}' if code else ''} {ago(t['last_at'], now)}"
        rows.append(
            (
                t["name"],
                t.get("kind", "-"),
                STATE_TEXT.get(t.get("state", "unknown"), t.get("state", "?")),
                last,
                f"{latency:.0f} ms" if latency is not None else "-",
                trends.get(t["name"]) or "-",
                " ".join(str(t.get("last_error") or "").split()),
            )
        )
    return rows


class TargetsScreen(ConsoleScreen):
    screen_title = "Targets"
    scope = "targets"
    BINDINGS = bindings_for("targets")
    DEFAULT_CSS = """
    TargetsScreen #targets { height: 1fr; }
    TargetsScreen #targets-info { height: auto; color: $text-muted; padding: 0 1; }
    TargetsScreen #targets-cluster { height: auto; color: $text-muted; padding: 0 1; display: none; }
    """
    REFRESH_SECONDS = 5.0

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, ...]] = []
        self.errors: dict[str, str] = {}
        self.summary = ""
        self._laid_out_for = -1
        # The targets last read, their trends and when: shown, ageing, while the engine is unreachable.
        self._read: tuple[list[dict[str, Any]], dict[str, str], datetime] | None = None

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="targets", cursor_type="row", zebra_stripes=True)
        yield Static("", id="targets-info")
        yield Static("", id="targets-cluster")

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one(DataTable)
        table.focus()
        run_work(self, self.reload, group="targets", exclusive=True)
        self.set_interval(self.REFRESH_SECONDS, self._tick)

    def _tick(self) -> None:
        if self.is_current:
            run_work(self, self.reload, group="targets", exclusive=True)

    def action_refresh(self) -> None:
        run_work(self, self.reload, group="targets", exclusive=True)

    async def on_feed(self, events: list[dict[str, Any]]) -> None:
        if any(e.get("kind", "").startswith("target") for e in events) and self.is_current:
            run_work(self, self.reload, group="targets", exclusive=True)

    async def reload(self) -> None:
        app: Any = self.app
        await app.ready.wait()
        try:
            targets = await app.api.list_targets()
        except Exception as exc:
            self._unreachable(str(exc))
            return
        now = app.now()
        trends: dict[str, str] = {}
        for t in targets:
            try:
                samples = await app.api.series_samples(series_name(t["name"]), since=now - timedelta(minutes=30))
            except Exception:
                samples = []
            trends[t["name"]] = sparkline([s.get("value") for s in samples], 16)
        self._read = (targets, trends, now)
        rows = target_rows(targets, trends, now)
        try:
            cluster = await app.api.cluster()
        except Exception:  # an engine that predates clusters, a dropped connection: no panel
            cluster = None
        panel = self.query_one("#targets-cluster", Static)
        lines = cluster_lines(cluster)
        panel.update("\n".join(lines))
        panel.display = bool(lines)  # takes no room without a cluster
        self.rows = rows
        self.errors = {r[0]: r[6] for r in rows if r[6]}
        if not targets:
            self.summary = "no targets: add [[targets]] to the configuration; the engine probes them and they show here"
        else:
            down = sum(1 for t in targets if t.get("state") == "down")
            self.summary = f"{len(targets)} targets, {down} down · refreshed every {self.REFRESH_SECONDS:.0f} s · Esc back"
        self._fill()
        app.targets = targets
        self.refresh_status()

    def _unreachable(self, error: str) -> None:
        """The engine did not answer: the last rows stay, their ages counted on (a probe "5 s
        ago" an hour later would say the target was checked just now), and the summary says
        when they were read."""
        if self._read is None:
            self.query_one("#targets-info", Static).update(f"could not load targets: {error}")
            return
        targets, trends, read_at = self._read
        now = self.app.now()  # type: ignore[attr-defined]
        self.rows = target_rows(targets, trends, now)
        self.summary = f"could not load targets: {error} · as read {ago(read_at, now)}; the engine may have probed since"
        self._fill()

    def _fill(self) -> None:
        """Lay the rows out for the table's width (again after a resize)."""
        table = self.query_one(DataTable)
        # The table spans the screen, whose size is known before the table's own layout.
        self._laid_out_for = self.size.width or self.app.size.width
        width = self._laid_out_for - scrollbar(self, len(self.rows))
        keep = table.cursor_row
        columns, rows = layout(self.rows, width)
        table.clear(columns=True)
        for heading, w in columns:
            table.add_column(heading, width=w, key=heading)
        for raw, row in zip(self.rows, rows):
            table.add_row(*row, key=raw[0])
        if rows:
            table.move_cursor(row=min(keep, len(rows) - 1))
        self._update_info()

    def _update_info(self) -> None:
        """The summary, and the selected target's whole error (the column may cut it)."""
        table = self.query_one(DataTable)
        info = self.summary
        if self.rows and table.cursor_row is not None and 0 <= table.cursor_row < len(self.rows):
            name = self.rows[table.cursor_row][0]
            if name in self.errors:
                info = f"{name}: {self.errors[name]}\n{info}"
        self.query_one("#targets-info", Static).update(info)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._update_info()

    def on_resize(self, event: Resize) -> None:
        if self.rows and event.size.width != self._laid_out_for:
            self._fill()

"""Analytics: the report of `pulseguard report` for a month or a year, with its charts
(incidents per week by severity, MTTR per week, root causes).

`[` and `]` step to the previous or next period (`]` no further than the current one: a
future period has no incidents to report), `m` and `y` switch between a month and a calendar
year (the current year up to today, labelled "to date"), ctrl+r reloads. New incidents and
resolutions reload it (at most every few seconds). Below 160 columns the charts sit under the
figures; wider, beside them.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Vertical, VerticalScroll
from textual.widgets import Static
from textual_plotext import PlotextPlot

from pulseguard_tui.charts import draw_mttr_trend, draw_root_causes, draw_weekly_by_severity
from pulseguard_tui.lifecycle import run_work
from pulseguard_tui.screens.base import ConsoleScreen, bindings_for

# Events that change a report's figures.
RELOAD_KINDS = {
    "created",
    "acknowledged",
    "status_changed",
    "status_update",
    "resolved",
    "reopened",
    "false_positive",
    "satisfaction_rated",
    "severity_changed",
}
RELOAD_SECONDS = 5.0
LOAD_SECONDS = 30.0  # a report that takes longer is reported as late, never waited on forever
WIDE = 160

OWN_BINDINGS: list[BindingType] = [
    Binding("left_square_bracket", "previous_period", "Prev", id="analytics.prev", key_display="["),
    Binding("right_square_bracket", "next_period", "Next", id="analytics.next", key_display="]"),
    Binding("m", "month", "Month", id="analytics.month"),
    Binding("y", "year", "Year", id="analytics.year"),
    Binding("ctrl+r", "refresh", "Refresh", id="analytics.refresh", key_display="^r", show=False),
]


def report_zone(api: Any = None) -> str | None:
    """The zone whose days the periods follow: the one the console shows times in when its
    `[engine] timezone` is set; else the engine's own, as its `pulseguard report` counts them:
    over --connect the remote engine's (the API says which), beside a local engine None (the
    engine's default, UTC)."""
    from engine.api.display import display_zone

    key = getattr(display_zone(), "key", None)
    return str(key) if key else getattr(api, "timezone", None)


def _shift_month(month: str, delta: int) -> str:
    year, mon = (int(p) for p in month.split("-"))
    index = year * 12 + (mon - 1) + delta
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


class AnalyticsScreen(ConsoleScreen):
    screen_title = "Analytics"
    scope = "analytics"
    # The console's action table may list these ids; otherwise the screen brings its own.
    BINDINGS = bindings_for("analytics") or OWN_BINDINGS
    DEFAULT_CSS = """
    AnalyticsScreen #analytics-period { height: 1; padding: 0 1; background: $panel; }
    AnalyticsScreen #analytics-scroll { height: 1fr; }
    AnalyticsScreen #analytics-body { height: auto; layout: vertical; }
    AnalyticsScreen #analytics-body.-wide { layout: horizontal; }
    AnalyticsScreen #analytics-summary { width: 100%; height: auto; padding: 0 1; }
    AnalyticsScreen #analytics-body.-wide #analytics-summary { width: 84; }
    AnalyticsScreen #analytics-charts { width: 100%; height: auto; }
    AnalyticsScreen #analytics-body.-wide #analytics-charts { width: 1fr; }
    AnalyticsScreen PlotextPlot { height: 16; }
    AnalyticsScreen #chart-causes { height: 12; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.mode = "month"
        self.month: str | None = None
        self.year: int | None = None
        self.report: dict[str, Any] | None = None
        self.error: str | None = None
        self._last_reload = 0.0

    def compose_body(self) -> ComposeResult:
        yield Static("", id="analytics-period")
        with VerticalScroll(id="analytics-scroll"):
            with Container(id="analytics-body"):
                yield Static("loading…", id="analytics-summary")
                with Vertical(id="analytics-charts"):
                    yield PlotextPlot(id="chart-weekly")
                    yield PlotextPlot(id="chart-mttr")
                    yield PlotextPlot(id="chart-causes")

    def on_mount(self) -> None:
        super().on_mount()
        today = self._today()
        self.month = f"{today:%Y-%m}"
        self.year = today.year
        self.query_one("#analytics-scroll").focus()
        self._layout(self.size.width)
        self.reload_soon()

    def on_resize(self, event: Any) -> None:
        self._layout(event.size.width)

    def _layout(self, width: int) -> None:
        self.query_one("#analytics-body").set_class(width >= WIDE, "-wide")

    # --- periods ------------------------------------------------------------------------------

    def period_args(self) -> dict[str, Any]:
        if self.mode == "year":
            today = self._today()
            last = date(self.year, 12, 31)  # type: ignore[arg-type]
            until = min(last, today) if self.year == today.year else last
            return {"since": date(self.year, 1, 1), "until": until, "tz": report_zone(self.app_api)}  # type: ignore[arg-type]
        return {"month": self.month, "tz": report_zone(self.app_api)}

    def _today(self) -> date:
        """Today in the report's zone (the console's clock is UTC)."""
        from engine.api.display import to_zone

        app: Any = self.app
        now = app.now() if hasattr(app, "now") else datetime.now(UTC)
        return to_zone(now, report_zone(self.app_api) or "UTC").date()

    @property
    def app_api(self) -> Any:
        return getattr(self.app, "api", None)

    def action_previous_period(self) -> None:
        self._step(-1)

    def action_next_period(self) -> None:
        if self.at_current_period():
            self.notify(f"already at the current {self.mode}", severity="information")
            return
        self._step(1)

    def at_current_period(self) -> bool:
        """Whether the period shown is the one today falls in (or a later one)."""
        today = self._today()
        if self.mode == "year":
            return (self.year or 0) >= today.year
        return (self.month or "") >= f"{today:%Y-%m}"

    def period_name(self) -> str:
        """What the period is, as the range reported covers it: a month, a past calendar year,
        or this year up to today (not a whole year: its months to come are not in it)."""
        if self.mode != "year":
            return f"{self.month} (month)"
        return f"{self.year} to date" if self.at_current_period() else f"{self.year} (calendar year)"

    def _step(self, delta: int) -> None:
        if self.mode == "year":
            self.year = (self.year or 0) + delta
        else:
            self.month = _shift_month(self.month or "2000-01", delta)
        self._another_period()

    def action_month(self) -> None:
        self.mode = "month"
        self._another_period()

    def action_year(self) -> None:
        self.mode = "year"
        self._another_period()

    def _another_period(self) -> None:
        """Another period opens at its top: scrolled down the last one's charts, a shorter
        report showed an empty chart box under its headline."""
        self.query_one("#analytics-scroll", VerticalScroll).scroll_home(animate=False)
        self.reload_soon()

    def action_refresh(self) -> None:
        self.reload_soon()

    async def on_feed(self, events: list[dict[str, Any]]) -> None:
        if not any(e.get("kind") in RELOAD_KINDS for e in events):
            return
        if time.monotonic() - self._last_reload >= RELOAD_SECONDS and self.is_current:
            self.reload_soon()

    # --- loading and drawing ------------------------------------------------------------------

    def reload_soon(self) -> None:
        self._last_reload = time.monotonic()
        self.query_one("#analytics-period", Static).update(f"{self.period_name()} · loading…")
        run_work(self, self.reload, group="analytics", exclusive=True, exit_on_error=False)

    def _say(self, headline: str, text: str) -> None:
        """End the wait with words: a headline in the period line, the whole story below (and
        no empty charts)."""
        self.error = text
        self.query_one("#analytics-period", Static).update(headline)
        self.query_one("#analytics-summary", Static).update(text)
        self.query_one("#analytics-charts").display = False

    async def reload(self) -> None:
        import asyncio

        from engine.api.local import learning_api

        app: Any = self.app
        await app.ready.wait()
        if not app.feature("analytics"):
            self._say(
                "not available over this connection",
                "Analytics is not available over this connection: the engine does not serve it. "
                "Run `pulseguard report` where the database is, or connect to an engine that does.",
            )
            return
        try:
            report = await asyncio.wait_for(learning_api(app.api).analytics_report(**self.period_args()), LOAD_SECONDS)
        except TimeoutError:
            late = f"the report did not arrive within {LOAD_SECONDS:.0f} s; ctrl+r tries again"
            self._say(late, late)
            return
        except Exception as exc:  # the database went away or refused: say so, keep the screen
            self._say("could not load the report", f"could not load the report: {exc}")
            return
        self.error = None
        self.show_report(report)

    def show_report(self, report: dict[str, Any]) -> None:
        from engine.api.display import format_report

        self.report = report
        self.query_one("#analytics-charts").display = True
        prev = report.get("previous_period", {}).get("label")
        period = report["period"]["label"] + (f" vs {prev}" if prev else "")
        if self.mode == "year" and self.at_current_period():  # the range alone does not say "this year so far"
            period = f"{self.period_name()}: {period}"
        # The keys are in the footer; this line names the periods compared.
        self.query_one("#analytics-period", Static).update(f"{period} ({report['period']['timezone']})")
        self.query_one("#analytics-summary", Static).update(format_report(report))
        for widget_id, draw in (
            ("#chart-weekly", draw_weekly_by_severity),
            ("#chart-mttr", draw_mttr_trend),
            ("#chart-causes", draw_root_causes),
        ):
            plot = self.query_one(widget_id, PlotextPlot)
            plot.plt.clear_figure()
            draw(plot.plt, report, plot.size.width or 80)
            plot.refresh()
        causes = self.query_one("#chart-causes", PlotextPlot)
        causes.styles.height = max(8, 5 + 2 * len(report["root_causes"]))

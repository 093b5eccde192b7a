"""The Correlation tab reads the engine's stored pattern and correlation analysis."""

from __future__ import annotations

from datetime import UTC

from pulseguard_tui.widgets.correlation import analysis_lines, gather


def test_analysis_lines_show_label_fix_and_changed_series():
    lines = analysis_lines(
        {
            "pattern": {
                "label": "rare",
                "similar_count": 1,
                "period_days": 30,
                "hint": "Last time (INC-1), the fix was: bigger pool",
                "recurring": [],
            },
            "correlation": {
                "series": [
                    {"series": "db_connections", "label": "sudden jump", "onset": "2026-11-27T10:25:00+00:00"},
                    {"series": "cpu", "label": "stable", "onset": None},
                ]
            },
        }
    )
    assert lines[0] == "pattern: rare (1 similar in 30 days)"
    assert "bigger pool" in lines[1]
    assert any("db_connections: sudden jump" in line for line in lines)
    assert not any(line.strip().startswith("cpu") for line in lines)
    assert not any("T10:25" in line for line in lines)  # times by the one rule, not raw ISO


def test_analysis_lines_show_other_sections_times_by_the_rule():
    from engine.core import timefmt

    timefmt.set_display_zone("Europe/Amsterdam")
    try:
        lines = analysis_lines({"anomaly": {"series": "db_connections", "score": 0.97, "at": "2026-11-27T10:25:00+00:00"}})
    finally:
        timefmt.set_display_zone(None)
    assert lines == ["anomaly: series=db_connections, score=0.97, at=2026-11-27 11:25 CET"]


class RecordingAPI:
    """An EngineAPI stand-in that records which series the tab asks for (no engine needed)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def list_targets(self):
        return []

    async def series_samples(self, series, since=None):
        self.asked.append(series)
        return [{"at": "2026-11-27T10:20:00+00:00", "value": 1.0}]

    async def list_incidents(self, **filters):
        return []


async def test_gather_charts_the_top_ranked_series():
    api = RecordingAPI()
    detail = {
        "key": "INC-2",
        "created_at": "2026-11-27T10:30:00+00:00",
        "detected_at": "2026-11-27T10:26:00+00:00",
        "services": [],
        "target": "checkout-api",
        "analysis": {
            "correlation": {
                "series": [
                    {"series": "db_connections", "label": "sudden jump"},
                    {"series": "queue_depth", "label": "steady increase"},
                    {"series": "cpu", "label": "stable"},
                ]
            }
        },
    }
    data = await gather(api, detail)
    assert api.asked == ["db_connections", "queue_depth"]
    assert set(data["series"]) == {"db_connections", "queue_depth"}


async def test_the_tab_charts_the_engines_ranked_series(sqlite_database, migrated_template):
    """An incident analysed by the engine (probe latency of its target and a pushed metric, named
    "checkout-api/response_time" and "db_connections"): the tab draws both as lines."""
    from datetime import datetime, timedelta

    from support.console_app import make_app, seed
    from support.pilot import main, until

    from engine.detection.correlation import SeriesChange
    from engine.incidents import services
    from engine.monitor.metrics import push_sample
    from engine.storage.db import close_database, open_database

    migrated_template.copy_sqlite(sqlite_database.path)
    await open_database(sqlite_database)
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        await seed(probes_until=now)
        for minute in range(40, -1, -1):
            await push_sample("db_connections", 20.0 + (80.0 if minute <= 12 else minute % 3), at=now - timedelta(minutes=minute))
        inc = await services.create_incident(
            title="checkout-api: response_time > 2000",
            severity="high",
            actor="monitor",
            services=["checkout"],
            target="checkout-api",
            source="threshold",
            at=now - timedelta(minutes=10),
        )
        # The correlation analysis as the engine stores it (SeriesChange.to_dict per series).
        onset = (now - timedelta(minutes=12)).isoformat()
        changes = [
            SeriesChange(
                "checkout-api/response_time",
                "gradual_increase",
                "gradual increase",
                now - timedelta(minutes=25),
                6.0,
                300.0,
                2400.0,
                7.0,
                5.0,
            ),
            SeriesChange("db_connections", "sudden_jump", "sudden jump", datetime.fromisoformat(onset), 9.0, 21.0, 100.0, 3.8, 8.0),
            SeriesChange("cpu", "stable", "stable", None, 0.1, 30.0, 30.0, 0.0, 0.0),
        ]
        data = {
            "incident": inc.key,
            "start": inc.created_at.isoformat(),
            "window_seconds": 1800.0,
            "series": [c.to_dict() for c in changes],
            "related_incidents": [],
        }
        await services.set_analysis(inc.key, "correlation", data, "detector")

        app = make_app(sqlite_database, clock=lambda: now)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = main(app)
            await until(pilot, lambda: screen.table.loaded and screen.detail.detail is not None, what="first load")
            rows = [r["key"] for r in screen.table.loaded_rows()]
            screen.table.cursor = rows.index(inc.key)
            await until(pilot, lambda: screen.detail.detail and screen.detail.detail["key"] == inc.key, what=inc.key)
            await pilot.press("5")
            await until(pilot, lambda: screen.query("#corr-plot"), what="plot mounted")
            await pilot.pause(0.3)
            text = screen.query_one("#corr-plot").render().plain
    finally:
        await close_database()
    assert "checkout-api/response_time" in text and "db_connections" in text  # the legend
    braille = sum(1 for ch in text if 0x2801 <= ord(ch) <= 0x28FF)
    assert braille > 40, text  # lines drawn, not an empty frame
    assert "minutes from start" in text


async def test_a_responders_noted_correlation_shows_as_written_brackets_and_all(sqlite_database, migrated_template):
    """The spec's correlation_analysis recorded by a responder (REST): the tab shows who noted it,
    each observation without an empty onset, and its related incidents; text in [brackets] is
    text, not markup (it used to raise, or restyle the tab)."""
    from support.console_app import make_app
    from support.pilot import main, until

    from engine.incidents import services
    from engine.storage.db import close_database, open_database

    migrated_template.copy_sqlite(sqlite_database.path)
    await open_database(sqlite_database)
    try:
        inc = await services.create_incident(title="checkout errors", severity="high", actor="ops")
        data = {
            "incident": inc.key,
            "window_seconds": 3600.0,
            "series": [
                {"series": "cpu_usage", "kind": "noted", "label": "spike at 10:25 [/bold]"},
                {"series": "error_rate", "kind": "noted", "label": "[red]sudden jump"},
            ],
            "related_incidents": [{"key": "INC-45", "title": None}],
            "noted_by": "ops",
        }
        await services.set_analysis(inc.key, "correlation", data, "ops")
        app = make_app(sqlite_database)
        async with app.run_test(size=(100, 36)) as pilot:
            screen = main(app)
            await until(pilot, lambda: screen.table.loaded and screen.detail.detail is not None, what="first load")
            await pilot.press("5")
            summary = screen.query_one("#corr-summary")
            await until(pilot, lambda: "noted by" in str(summary.render()), what="the noted analysis")
            text = str(summary.render())
    finally:
        await close_database()
    assert "correlated metrics (noted by ops):" in text
    assert "cpu_usage: spike at 10:25 [/bold]" in text and "error_rate: [red]sudden jump" in text
    assert "onset" not in text and "related: INC-45" in text
    assert "no related incidents" not in text  # the analysis names one: not contradicted below it

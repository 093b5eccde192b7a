"""The Correlation tab reads the engine's stored pattern and correlation analysis."""

from __future__ import annotations

from pulseguard_tui.widgets.correlation import analysis_lines, gather


def test_analysis_lines_show_label_fix_and_changed_series():
    lines = analysis_lines({
        "pattern": {"label": "rare", "similar_count": 1, "period_days": 30,
                    "hint": "Last time (INC-1), the fix was: bigger pool", "recurring": []},
        "correlation": {"series": [
            {"series": "db_connections", "label": "sudden jump", "onset": "2026-11-27T10:25:00+00:00"},
            {"series": "cpu", "label": "stable", "onset": None},
        ]},
    })
    assert lines[0] == "pattern: rare (1 similar in 30 days)"
    assert "bigger pool" in lines[1]
    assert any("db_connections: sudden jump" in line for line in lines)
    assert not any(line.strip().startswith("cpu") for line in lines)


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
    detail = {"key": "INC-2", "created_at": "2026-11-27T10:30:00+00:00", "detected_at": "2026-11-27T10:26:00+00:00",
              "services": [], "target": "checkout-api",
              "analysis": {"correlation": {"series": [
                  {"series": "db_connections", "label": "sudden jump"},
                  {"series": "queue_depth", "label": "steady increase"},
                  {"series": "cpu", "label": "stable"}]}}}
    data = await gather(api, detail)
    assert api.asked == ["db_connections", "queue_depth"]
    assert set(data["series"]) == {"db_connections", "queue_depth"}

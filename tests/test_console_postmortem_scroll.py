"""The Post-mortem tab at 80x24: once Down had moved into its timeline, Up, PageUp, Home and g
never scrolled back to the summary and impact above it (Up on the first entry wrapped round to
the last one). Up on the first entry, Home, g and PageUp now bring the top back into view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from support.pilot import seeded_console, select_row, until
from textual.containers import VerticalScroll
from textual.widgets import OptionList

from engine.learning.postmortem.entries import add_entry


def top_shown(app: Any) -> bool:
    """Whether the post-mortem's first lines (its title, Summary, Impact) are in view."""
    scroll = app.screen.query_one("#pm-scroll", VerticalScroll)
    summary = app.screen.query_one("#pm-summary")
    return scroll.scroll_y == 0 and summary.region.y == scroll.region.y


def entry_in_sight(app: Any) -> bool:
    scroll = app.screen.query_one("#pm-scroll", VerticalScroll)
    timeline = app.screen.query_one("#pm-timeline", OptionList)
    line = timeline._index_to_line[timeline.highlighted]  # type: ignore[index]
    y = timeline.content_region.y + line - int(timeline.scroll_offset.y)
    return scroll.region.y <= y < scroll.region.bottom


async def test_up_home_g_and_pageup_bring_the_summary_back_at_80x24(sdb: Any) -> None:
    async with seeded_console(sdb, size=(80, 24)) as (app, pilot):
        for i in range(6):
            await add_entry("INC-2", "alice", at_time=datetime.now(UTC) - timedelta(minutes=30 - i), text=f"entry {i}")
        await select_row(pilot, "INC-2")
        await pilot.press("7")
        timeline = app.screen.query_one("#pm-timeline", OptionList)
        await until(pilot, lambda: timeline.option_count >= 6, what="the timeline")
        await pilot.pause()
        assert top_shown(app)
        summary = app.screen.query_one("#pm-summary")
        assert "Summary" in str(summary.render()) and "Impact" in str(summary.render())

        async def into_timeline(n: int = 4) -> None:
            for _ in range(n):
                await pilot.press("down")
            await pilot.pause()
            assert not top_shown(app) and entry_in_sight(app)

        # Up, one entry at a time, up to the first; one more Up shows the top (not the last entry).
        await into_timeline()
        for _ in range(timeline.highlighted or 0):
            await pilot.press("up")
        await pilot.pause()
        assert timeline.highlighted == 0 and entry_in_sight(app)
        await pilot.press("up")
        await pilot.pause()
        assert timeline.highlighted == 0, "Up on the first entry wrapped round"
        assert top_shown(app)
        # Down comes back to the first entry (out of view under the summary) before moving on.
        await pilot.press("down")
        await pilot.pause()
        assert timeline.highlighted == 0 and entry_in_sight(app)
        await pilot.press("down")
        await pilot.pause()
        assert timeline.highlighted == 1 and entry_in_sight(app)

        for keys in (("home",), ("g",), ("pageup",), ("pageup", "pageup")):
            await into_timeline()
            await pilot.press(*keys)
            await pilot.pause()
            assert timeline.highlighted == 0 and top_shown(app), keys

        # Other tabs and back: the keys still reach the top.
        await into_timeline()
        await pilot.press("1")
        await pilot.press("7")
        await pilot.pause()
        await pilot.press("home")
        await pilot.pause()
        assert top_shown(app)

"""Notices (toasts) at 80x24: a few lines at most over the detail pane, not a stack that hides
the timeline. Each is one line per line of text (no blank padding rows), at most three show at
once (the newest; an error outlives older notices), and each still fades after its timeout."""

from __future__ import annotations

from typing import Any

from support.console_app import make_app, seed
from support.pilot import main, until
from textual.widgets._toast import Toast


def toasts(app: Any) -> list[Toast]:
    return [t for t in app.screen.query(Toast) if t.display]


async def test_notices_stay_few_and_compact_over_the_detail(sdb: Any) -> None:
    await seed()
    app = make_app(sdb)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded and screen.detail.detail is not None, what="first load")
        app.notify("INC-9 opened: Checkout API returns 500s", title="New critical incident", severity="error", timeout=15)
        for i in range(1, 6):
            app.notify(f"comment {i} added to INC-{i}")
            await pilot.pause()
        await until(pilot, lambda: len(toasts(app)) and all(t.region.height for t in toasts(app)), what="toasts shown")
        await pilot.pause(0.2)
        shown = toasts(app)
        texts = [str(t.render()) for t in shown]
        assert len(shown) == 3, texts
        assert any("Checkout API" in t for t in texts)  # the error stays
        assert any("comment 5" in t for t in texts) and any("comment 4" in t for t in texts)  # the newest
        # One row per line of text (the titled one has two), with a row between them.
        assert sorted(t.region.height for t in shown) == [1, 1, 2], [t.region for t in shown]
        top = min(t.region.y for t in shown)
        assert app.size.height - top <= 8, [t.region for t in shown]  # the bottom 8 of 24 rows at most, footer included

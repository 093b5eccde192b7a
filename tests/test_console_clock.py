"""The console's ages and countdowns keep time with the clock: under a form (the list and the
detail show through it, dimmed) and on coming back to the incident list from another screen,
they show the time now, not the time the form opened."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from support.console_app import NOW, make_app, seed
from support.pilot import main, open_form, select_row, until

from pulseguard_tui.forms.incident import CommentScreen
from pulseguard_tui.screens.incidents import IncidentsScreen


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> Any:
        return self.now


def header(screen: IncidentsScreen) -> str:
    return str(screen.query_one("#detail-header").render())


def first_row(screen: IncidentsScreen) -> str:
    return screen.table.render_line(1).text


async def test_ages_and_countdowns_keep_time_while_a_form_is_open(sdb: Any) -> None:
    await seed()
    clock = Clock()
    app = make_app(sdb, clock=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded and screen.detail.detail is not None, what="first load")
        assert "opened 12m ago" in header(screen) and "12m" in first_row(screen)

        form = await open_form(pilot, "c", CommentScreen)
        clock.now = NOW + timedelta(minutes=5)
        await until(pilot, lambda: "opened 17m ago" in header(screen), timeout=3, what="the header to keep time under the form")
        assert "17m" in first_row(screen) and "12m" not in first_row(screen)
        # What the terminal shows: the list through the form's dimmed backdrop (repainted a frame
        # after the row changed: on a loaded machine the screenshot could come first).
        await until(pilot, lambda: "17m" in app.export_screenshot(), timeout=3, what="the terminal to show the new age")
        assert app.screen is form
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="form closed")


async def test_coming_back_to_the_list_shows_the_time_now(sdb: Any) -> None:
    await seed()
    clock = Clock()
    app = make_app(sdb, clock=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded and screen.detail.detail is not None, what="first load")
        await select_row(pilot, "INC-1")
        await app.switch_mode("targets")
        await pilot.pause()
        clock.now = NOW + timedelta(minutes=30)
        await pilot.pause(1.2)  # ticks go to the Targets screen; the list is not on the terminal
        assert "opened 12m ago" in header(screen)
        # No clock tick until the list is back and drawn: what it shows then is what it shows
        # on coming back, not what a tick a moment later corrects (the app's timers are not public).
        for timer in list(app._timers):
            timer.pause()
        try:
            await app.switch_mode("incidents")
            await pilot.pause(0.1)
            assert app.screen is screen
            assert "opened 42m ago" in header(screen)  # at once, not at the next tick
        finally:
            for timer in list(app._timers):
                timer.resume()


async def test_a_tick_redraws_only_what_reads_differently(sdb: Any) -> None:
    """The tick runs every second, under a form too (where a redraw costs the whole dimmed
    backdrop): ages of minutes redraw once a minute, not each second."""
    await seed()
    clock = Clock()
    app = make_app(sdb, clock=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded and screen.detail.detail is not None, what="first load")
        redraws: list[str] = []
        table_refresh, header_update = screen.table.refresh, screen.query_one("#detail-header").update
        screen.table.refresh = lambda *a, **k: (redraws.append("table"), table_refresh(*a, **k))[1]  # type: ignore[method-assign]
        screen.query_one("#detail-header").update = lambda *a, **k: (redraws.append("header"), header_update(*a, **k))[1]  # type: ignore[method-assign]
        screen.tick()  # the first tick learns what is shown
        redraws.clear()
        clock.now = NOW + timedelta(seconds=20)
        screen.tick()
        assert redraws == []
        clock.now = NOW + timedelta(minutes=1)
        screen.tick()
        assert sorted(redraws) == ["header", "table"]

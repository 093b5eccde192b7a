"""Driving the console through a Textual pilot: waiting for a condition, typing, selecting rows, opening
forms, and the seeded console fixture."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Select

from pulseguard_tui.app import PulseGuardApp
from pulseguard_tui.forms.base import FormScreen
from pulseguard_tui.screens.incidents import IncidentsScreen
from pulseguard_tui.widgets.command_line import CommandLineScreen
from support.console_app import make_app, seed


async def until(pilot: Pilot, condition: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def type_text(pilot: Pilot, text: str) -> None:
    keys = {
        " ": "space",
        ":": "colon",
        "/": "slash",
        ";": "semicolon",
        ",": "comma",
        ".": "full_stop",
        "-": "minus",
        "+": "plus",
        "@": "at",
        "%": "percent_sign",
    }
    await pilot.press(*[keys.get(ch, ch) for ch in text])


def main(app: PulseGuardApp) -> IncidentsScreen:
    screen = app.screen
    assert isinstance(screen, IncidentsScreen), type(screen).__name__
    return screen


async def select_row(pilot: Pilot, key: str) -> None:
    screen = main(pilot.app)  # type: ignore[arg-type]
    rows = [r["key"] for r in screen.table.loaded_rows()]
    screen.table.cursor = rows.index(key)
    await until(pilot, lambda: screen.detail.detail is not None and screen.detail.detail["key"] == key, what=f"{key} detail")


async def open_form(pilot: Pilot, key: str, form: type) -> FormScreen:
    await pilot.press(key)
    await until(pilot, lambda: isinstance(pilot.app.screen, form), what=form.__name__)
    return pilot.app.screen  # type: ignore[return-value]


async def choose(pilot: Pilot, form: FormScreen, name: str, value: str) -> None:
    """Pick `value` in a Select with the keyboard."""
    select = form.query_one(f"#f-{name}", Select)
    select.focus()
    await pilot.pause()
    values = [v for _, v in select._options if v is not Select.NULL]
    current = values.index(select.value) if select.value in values else -1
    await pilot.press("enter")
    await pilot.pause()
    target = values.index(value)
    steps = target - current if current >= 0 else target + 1
    for _ in range(abs(steps)):
        await pilot.press("down" if steps > 0 else "up")
    await pilot.press("enter")
    await until(pilot, lambda: select.value == value, what=f"{name}={value}")


def detail_text(app: PulseGuardApp, widget_id: str) -> str:
    return str(main(app).query_one(widget_id).render())


@asynccontextmanager
async def seeded_console(db: Any, size: tuple[int, int] = (100, 34)) -> AsyncIterator[tuple[PulseGuardApp, Pilot]]:
    await seed()
    app = make_app(db)
    async with app.run_test(size=size) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded and screen.detail.detail is not None, what="first load")
        yield app, pilot


@pytest.fixture
async def console(sdb: Any) -> AsyncIterator[tuple[PulseGuardApp, Pilot]]:
    """The seeded console on SQLite: its keys and screens do not differ by backend."""
    async with seeded_console(sdb) as running:
        yield running


@pytest.fixture
async def console_on_each_backend(db: Any) -> AsyncIterator[tuple[PulseGuardApp, Pilot]]:
    """The seeded console on SQLite and PostgreSQL, for what the backend's SQL decides (the
    list's order, the feed)."""
    async with seeded_console(db) as running:
        yield running


async def started(app: Any, pilot: Any) -> IncidentsScreen:
    screen = main(app)
    await until(pilot, lambda: screen.table.loaded and screen.detail.detail is not None, what="first load")
    return screen


async def command(pilot: Any, text: str) -> None:
    await pilot.press("colon")
    await until(pilot, lambda: isinstance(pilot.app.screen, CommandLineScreen), what="command line")
    await type_text(pilot, text)
    await pilot.press("enter")


def table_rows(screen: Any, selector: str) -> list[list[str]]:
    from textual.widgets import DataTable

    table = screen.query_one(selector, DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]

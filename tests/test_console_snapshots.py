"""Snapshots of the console's main screens at 80x24 and 160x48 in two themes (dark and
light), plus the monochrome theme, the help screen and a form at 80x24.

Data, clock, time zone and database label are fixed so the pictures are stable. Update them
with `pytest tests/test_console_snapshots.py --snapshot-update` and look at the report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from engine.db import resolve_database
from snapshots.console_app import make_app, seed_file

SIZES = [(80, 24), (160, 48)]
THEMES = ["dark", "light"]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def seeded(tmp_path: Path, migrated_template: Any) -> Any:
    db = resolve_database(str(tmp_path / "pulseguard.db"))
    migrated_template.copy_sqlite(db.path)  # conftest's once-migrated schema
    seed_file(db)
    return db


def app_for(db: Any, theme: str) -> Any:
    return make_app(db, theme=theme, own_database=True, db_label="sqlite:/var/lib/pulseguard/pulseguard.db")


async def settle(pilot: Any) -> None:
    """Wait until the list and the detail are loaded (no sleeps in the picture)."""
    screen = pilot.app.screen
    for _ in range(200):
        table = getattr(screen, "table", None)
        if table is None or (table.loaded and screen.detail.detail is not None):
            break
        await pilot.pause(0.02)
    await pilot.pause(0.1)
    await finished(pilot)


async def finished(pilot: Any) -> None:
    """Animations (the tab underline's slide) over and the resulting layout drawn: on a loaded
    machine a fixed pause can catch them midway."""
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


async def go(pilot: Any, mode: str) -> None:
    await pilot.app.switch_mode(mode)
    for _ in range(200):
        if getattr(pilot.app.screen, "query", None) and pilot.app.screen.query("DataTable"):
            table = pilot.app.screen.query_one("DataTable")
            if table.row_count:
                break
        await pilot.pause(0.02)
    await pilot.pause(0.1)
    await finished(pilot)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_incidents(snap_compare: Any, seeded: Any, theme: str, size: tuple[int, int]) -> None:
    assert snap_compare(app_for(seeded, theme), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_targets(snap_compare: Any, seeded: Any, theme: str, size: tuple[int, int]) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await go(pilot, "targets")

    assert snap_compare(app_for(seeded, theme), terminal_size=size, run_before=before)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_maintenance(snap_compare: Any, seeded: Any, theme: str, size: tuple[int, int]) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await go(pilot, "maintenance")

    assert snap_compare(app_for(seeded, theme), terminal_size=size, run_before=before)


def test_incidents_monochrome_comments_tab(snap_compare: Any, seeded: Any) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("2")
        await pilot.pause(0.1)

    assert snap_compare(app_for(seeded, "monochrome"), terminal_size=(80, 24), run_before=before)


def test_help(snap_compare: Any, seeded: Any) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.1)

    assert snap_compare(app_for(seeded, "dark"), terminal_size=(80, 24), run_before=before)


def test_resolve_form_with_problems(snap_compare: Any, seeded: Any) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("r")
        await pilot.pause(0.1)
        await pilot.press("enter")
        await pilot.pause(0.1)

    assert snap_compare(app_for(seeded, "dark"), terminal_size=(80, 24), run_before=before)

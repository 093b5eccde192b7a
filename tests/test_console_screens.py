"""Screens and global keys: `/` filter, resolved toggle, `?` help, Ctrl+P palette, `:` command
line, themes (remembered), Targets, Maintenance (add, end), On-call and Analytics, Esc, q,
the user's keymap, and 80x24 without a mouse."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.console_app import make_app, seed
from support.pilot import choose, command, open_form, started, type_text, until
from textual.widgets import DataTable, Input

from engine.incidents import queries
from pulseguard_tui.screens.analytics import AnalyticsScreen
from pulseguard_tui.screens.help import HelpScreen
from pulseguard_tui.screens.incidents import IncidentsScreen
from pulseguard_tui.screens.maintenance import MaintenanceScreen
from pulseguard_tui.screens.targets import TargetsScreen
from pulseguard_tui.widgets.command_line import CommandLineScreen


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PULSEGUARD_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


async def test_filter_as_you_type_and_escape_clears(sdb: Any) -> None:
    await seed()
    app = make_app(sdb)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await started(app, pilot)
        everything = screen.table.total
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await type_text(pilot, "sev:high")
        await until(pilot, lambda: screen.table.total == 2, what="high only")
        assert {r["severity"] for r in screen.table.loaded_rows()} == {"high"}
        await type_text(pilot, " @bob")
        await until(pilot, lambda: screen.table.total == 1, what="high and bob")
        assert screen.table.selected_key == "INC-3"
        await pilot.press("enter")  # keep the filter, back to the list
        assert app.focused is screen.table and screen.table.total == 1
        await pilot.press("slash")
        await pilot.press("ctrl+u")
        await type_text(pilot, "svc:storefront tag:cdn")
        await until(pilot, lambda: screen.table.total == 1 and screen.table.selected_key == "INC-6", what="svc+tag")
        await type_text(pilot, " sev:urgent")
        error = screen.query_one("#filter-error")
        await until(pilot, lambda: "unknown sev" in str(error.render()), what="inline filter error")
        await pilot.press("escape")
        await until(pilot, lambda: screen.table.total == everything, what="filter cleared")
        assert not screen.query_one("#filter-bar").has_class("-shown")


async def test_x_toggles_resolved(sdb: Any) -> None:
    await seed()
    app = make_app(sdb)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await started(app, pilot)
        open_count = screen.table.total
        await pilot.press("x")
        await until(pilot, lambda: screen.table.total == open_count + 1, what="resolved shown")
        assert any(r["status"] == "resolved" for r in screen.table.loaded_rows())
        await pilot.press("x")
        await until(pilot, lambda: screen.table.total == open_count, what="resolved hidden")


async def open_help(app: Any, pilot: Any) -> Any:
    """The console started, `?` pressed: the help's text widget."""
    await started(app, pilot)
    await pilot.press("question_mark")
    await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
    return app.screen.query_one("#help-text")


async def test_help_lists_every_key(sdb: Any) -> None:
    await seed()
    app = make_app(sdb)
    async with app.run_test(size=(80, 24)) as pilot:
        text = str((await open_help(app, pilot)).render())
        for key, words in [
            ("a", "Acknowledge"),
            ("s", "Change status"),
            ("v", "Change severity"),
            ("c", "Comment"),
            ("u", "public status update"),
            ("e", "evidence"),
            ("r", "Resolve"),
            ("o", "Reopen"),
            ("P", "Promote"),
            ("n", "New incident"),
            ("A", "Assign"),
            ("t", "tags"),
            ("f", "false positive"),
            ("/", "Filter"),
            ("R", "read-only"),
            ("q", "Quit"),
        ]:
            assert any(line.strip().startswith(key) and words in line for line in text.splitlines()), key
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="help closed")


async def test_a_long_key_description_wraps_under_itself_not_from_the_first_column(sdb: Any) -> None:
    indent = 17  # "  " + a key in 14 cells + " ": where each description starts

    await seed()
    app = make_app(sdb)
    async with app.run_test(size=(60, 24)) as pilot:
        widget = await open_help(app, pilot)
        await until(pilot, lambda: "Snooze paging" in str(widget.render()), what="help text")
        lines = str(widget.render()).splitlines()
        width = widget.size.width
        at = next(i for i, line in enumerate(lines) if line.startswith("  z ") and "Snooze paging" in line)
        assert len(lines[at]) <= width and lines[at + 1].startswith(" " * indent), lines[at : at + 2]
        assert lines[at + 1].strip().endswith("(changes data)")  # the mark stays whole
        keyed = [i for i, line in enumerate(lines) if line.startswith("  ") and not line.startswith(" " * indent)]
        for i in keyed:  # each key's lines fit, the further ones indented under the description
            assert len(lines[i]) <= width, lines[i]
            j = i + 1
            while j < len(lines) and lines[j].startswith(" " * indent):
                assert len(lines[j]) <= width, lines[j]
                j += 1
            assert j == len(lines) or not lines[j] or lines[j].startswith("  ") or lines[j][0] != " ", lines[j]
        promote = "Promote internal comment to public update (changes data)"
        assert not any(promote in line for line in lines)  # wrapped at 60 columns
        await pilot.resize_terminal(100, 24)  # wider: it fits whole again
        await until(pilot, lambda: any(promote in line for line in str(widget.render()).splitlines()), what="rewrap")


async def test_palette_runs_actions_and_switches_screens(sdb: Any) -> None:
    from pulseguard_tui.forms.incident import AcknowledgeScreen

    await seed()
    app = make_app(sdb)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await started(app, pilot)
        await pilot.press("down")
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await type_text(pilot, "acknowledge")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, AcknowledgeScreen), what="ack from palette")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="acked")
        assert (await queries.incident_detail(screen.table.selected_key))["acknowledged_by"] == "alice"
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await type_text(pilot, "go to maintenance")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MaintenanceScreen), what="maintenance from palette")


async def test_command_line_screens_and_errors(sdb: Any) -> None:
    await seed()
    app = make_app(sdb)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await command(pilot, "targets")
        await until(pilot, lambda: isinstance(app.screen, TargetsScreen), what=":targets")
        await command(pilot, "oncall")
        await until(pilot, lambda: type(app.screen).__name__ == "OncallScreen", what=":oncall")
        await command(pilot, "analytics")
        await until(pilot, lambda: isinstance(app.screen, AnalyticsScreen), what=":analytics")
        await pilot.press("escape")  # Esc backs out to the incidents
        await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="escape to incidents")
        await command(pilot, "frobnicate")
        await until(pilot, lambda: "unknown command" in str(app.screen.query_one("#command-error").render()), what="inline command error")
        assert isinstance(app.screen, CommandLineScreen)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="closed")
        await command(pilot, "q")
        await until(pilot, lambda: not app.is_running, what=":q quits")


async def test_theme_by_command_is_applied_and_remembered(sdb: Any, state_dir: Path) -> None:
    await seed()
    app = make_app(sdb)
    app.settings.remember_theme = True
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await command(pilot, "theme light")
        await until(pilot, lambda: app.theme == "light", what="light theme")
        assert json.loads((state_dir / "console.json").read_text())["theme"] == "light"
        await command(pilot, "theme monochrome")
        await until(pilot, lambda: app.theme == "monochrome", what="monochrome")
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await type_text(pilot, "theme: high")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: app.theme == "high-contrast", what="theme from palette")
    assert json.loads((state_dir / "console.json").read_text())["theme"] == "high-contrast"


async def test_q_quits(sdb: Any) -> None:
    await seed()
    app = make_app(sdb)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, what="q quits")


async def test_targets_screen_shows_state_latency_trend_and_error(sdb: Any) -> None:
    now = datetime.now(UTC)
    await seed(probes_until=now)
    app = make_app(sdb, clock=lambda: now)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot)
        await command(pilot, "targets")
        await until(pilot, lambda: isinstance(app.screen, TargetsScreen), what="targets")
        table = app.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 3, what="three targets")
        rows = {table.get_row_at(i)[0]: table.get_row_at(i) for i in range(3)}
        name, kind, state, last, latency, trend, error = rows["checkout-api"]
        assert state == "▼ DOWN" and last.startswith("FAIL 500") and latency == "2400 ms"
        assert error == "HTTP 500 (expected 2xx or 3xx)"
        assert len(trend) == 16 and set(trend) <= set("▁▂▃▄▅▆▇█")
        assert rows["storefront"][2] == "▲ UP"
        assert "1 DOWN" in str(app.screen.query_one("#status-line").render())


async def test_maintenance_add_validates_then_end(sdb: Any) -> None:
    from pulseguard_tui.forms.maintenance import AddMaintenanceScreen, EndMaintenanceScreen

    await seed()
    app = make_app(sdb)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await command(pilot, "maintenance")
        await until(pilot, lambda: isinstance(app.screen, MaintenanceScreen), what="maintenance")
        screen = app.screen
        table = screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 1, what="seeded window")
        form = await open_form(pilot, "n", AddMaintenanceScreen)
        await type_text(pilot, "Network switch swap")
        form.query_one("#f-ends", Input).value = "yesterday"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: len(form.problems_shown) == 2, what="scope and end refused")
        assert any("at least one service or target" in p for p in form.problems_shown)
        assert any("neither a duration" in p for p in form.problems_shown)
        assert len(await app.api.list_maintenance()) == 1
        form.query_one("#f-targets", Input).value = "db-port"
        # A window over by now covers nothing: refused under Ends, the form kept open.
        form.query_one("#f-starts", Input).value = "2020-01-01T10:00:00+00:00"
        form.query_one("#f-ends", Input).value = "2h"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: any("has already passed" in p for p in form.problems_shown), what="past window refused")
        assert "2020-01-01" in str(form.query_one("#err-ends").render()) and len(form.problems_shown) == 1
        assert len(await app.api.list_maintenance()) == 1 and app.screen is form
        # The console's clock is frozen in the past: a start a day ahead of the real one is ahead of both.
        form.query_one("#f-starts", Input).value = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        await choose(pilot, form, "kind", "emergency")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, MaintenanceScreen), what="form closed")
        windows = await app.api.list_maintenance()
        new = next(w for w in windows if w["title"] == "Network switch swap")
        assert new["kind"] == "emergency" and new["targets"] == ["db-port"]
        await until(pilot, lambda: table.row_count == 2, what="listed")
        table.move_cursor(row=[w["id"] for w in screen.windows].index(new["id"]))
        await open_form(pilot, "E", EndMaintenanceScreen)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MaintenanceScreen), what="ended")
        assert all(w["id"] != new["id"] for w in await app.api.list_maintenance())
        await until(pilot, lambda: table.row_count == 1, what="ended window hidden")
        await pilot.press("x")
        await until(pilot, lambda: table.row_count == 2, what="ended shown")


async def test_keymap_from_config_rebinds_and_help_follows(sdb: Any) -> None:
    from pulseguard_tui.forms.incident import AcknowledgeScreen

    await seed()
    app = make_app(sdb, keymap={"incident.ack": "y", "no.such.action": "z"})
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await started(app, pilot)
        assert app.keymap_problems == ["unknown action 'no.such.action'"]
        await pilot.press("down")
        await pilot.press("y")  # rebound
        await until(pilot, lambda: isinstance(app.screen, AcknowledgeScreen), what="ack on y")
        await pilot.press("escape")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        text = str(app.screen.query_one("#help-text").render())
        assert any(line.strip().startswith("y") and "Acknowledge" in line for line in text.splitlines())


async def test_enter_zooms_detail_and_escape_restores(sdb: Any) -> None:
    await seed()
    app = make_app(sdb)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await started(app, pilot)
        detail_height = screen.detail.size.height
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert screen.has_class("-zoomed") and screen.detail.size.height > detail_height
        await pilot.press("right_square_bracket")
        assert screen.detail.active_tab == "comments"
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert not screen.has_class("-zoomed")
        assert screen.detail.size.height == detail_height


async def test_correlation_tab_plots_the_targets_metrics(sdb: Any) -> None:
    from engine.incidents import services

    now = datetime.now(UTC)
    await seed(probes_until=now)
    await services.create_incident(
        title="Checkout probe failing",
        severity="high",
        actor="monitor",
        services=["checkout"],
        target="checkout-api",
        at=now - timedelta(minutes=10),
    )
    await services.create_incident(
        title="Checkout slow", severity="low", actor="monitor", services=["checkout"], at=now - timedelta(minutes=50)
    )
    app = make_app(sdb, clock=lambda: now)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(app, pilot)
        rows = [r["key"] for r in screen.table.loaded_rows()]
        screen.table.cursor = rows.index("INC-9")
        await until(pilot, lambda: screen.detail.detail and screen.detail.detail["key"] == "INC-9", what="INC-9")
        await pilot.press("5")
        await until(pilot, lambda: screen.query("#corr-plot"), what="plot mounted")
        summary = str(screen.query_one("#corr-summary").render())
        assert "INC-10" in summary and "Checkout slow" in summary  # same service, opened within 24 h
        plot = screen.query_one("#corr-plot")
        await pilot.pause(0.2)
        assert "response time" in plot.render().plain

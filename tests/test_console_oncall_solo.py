"""The On-call screen for a one-person weekly rotation: on call since the schedule started, and no
hand-off (not a made-up week or a five-week window)."""

from __future__ import annotations

from typing import Any

from support.console_app import make_app, seed
from support.pilot import table_rows, until

SOLO_CONFIG = """
[engine]
timezone = "Europe/Amsterdam"
[[users]]
id = "alice"
name = "Alice Jansen"
[[schedules]]
name = "solo"
rotation = "weekly"
handoff = "monday 09:00"
start = 2025-03-03
users = ["alice"]
"""


async def test_oncall_screen_one_person_rotation_since_start_no_handoff(db: Any, tmp_path: Any) -> None:
    from engine.config.loading import load_config
    from pulseguard_tui.screens.oncall import OncallScreen, local_text

    path = tmp_path / "pulseguard.toml"
    path.write_text(SOLO_CONFIG)
    await seed(targets=False)
    app = make_app(db)  # the clock is fixed at Monday 2026-03-02 12:00 UTC
    app.config = load_config(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.switch_mode("oncall")
        screen = app.screen
        assert isinstance(screen, OncallScreen)
        await until(pilot, lambda: screen.overview is not None, what="on-call overview")
        row = table_rows(screen, "#oncall-now")[0]
        assert row[0] == "solo" and "alice" in row[1]
        started = local_text("2025-03-03T09:00:00+01:00", "Europe/Amsterdam", compact=True)
        # At 80 columns the shift's start is the shifts table's: since the schedule started
        # (Monday 2025-03-03 09:00 in Amsterdam); the overview keeps who, until and who next whole.
        assert row[2:] == ["no hand-off", "-"]
        assert table_rows(screen, "#oncall-shifts")[0][1] == started

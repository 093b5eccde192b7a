"""The header line's target counts when targets are in no known state (just after the engine
starts, all are "unknown"): at 80 columns it read "targets 0 up 0 down", which reads as all
clear; it says how many are not known ("targets 3 ?", "targets 1 up 0 down 2 ?")."""

from __future__ import annotations

from typing import Any

from support.console_app import make_app, seed
from support.pilot import main, until

from engine.storage.monitor_models import MonitorTarget
from pulseguard_tui.widgets.status_line import StatusLine


async def test_targets_in_no_known_state_are_not_counted_as_all_clear_at_80_columns(sdb: Any) -> None:
    await seed()
    await MonitorTarget.all().update(state="unknown")  # as an engine that has just started writes them
    app = make_app(sdb)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded and app.targets is not None, what="first load")

        def header() -> str:
            return str(screen.query_one(StatusLine).render())

        await until(pilot, lambda: "targets 3 ?" in header(), what="targets not known")
        assert "0 up" not in header() and "0 down" not in header(), header()
        assert len(header()) <= 80 and header().index("open ◆") < header().index("targets")  # alarm-first order kept

        await MonitorTarget.filter(name="storefront").update(state="up")
        await app.refresh_overview()  # what the 5-second tick does
        await until(pilot, lambda: "targets 1 up 0 down 2 ?" in header(), what="one target known")

        await MonitorTarget.filter(name="checkout-api").update(state="down")
        await app.refresh_overview()
        await until(pilot, lambda: "targets 1 up 1 DOWN 1 ?" in header(), what="a target down")
        assert len(header()) <= 80, header()

        await MonitorTarget.filter(name="db-port").update(state="up")
        await app.refresh_overview()
        await until(pilot, lambda: "targets 2 up 1 DOWN" in header() and "?" not in header(), what="all known")

"""A page the engine holds (engine/escalation/holds.py) is said in the detail header: "page held:
inhibited by INC-1", never "escalates in 2:35" to a step that will not page anyone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from support.console_app import make_app
from support.pilot import main, select_row, until

from engine.incidents import services
from engine.storage.models import Incident


def drawn(widget: Any) -> list[str]:
    """The lines the widget draws (as wrapped at its width)."""
    return [strip.text for strip in widget.render_lines(widget.region.reset_offset)]


async def test_a_held_page_is_named_not_counted_down_at_80x24(sdb: Any) -> None:
    """The engine's state for an inhibited incident was {'level': 0, 'held': {'reason':
    'inhibited', 'by': 'INC-1', 'until': …}}: the header counted down "escalates in 2:35" to the
    re-check, then read "not acknowledged", then counted down again; nobody was ever paged."""
    await services.create_incident(title="Checkout down", severity="critical", actor="monitor", source="threshold", services=["checkout"])
    held = await services.create_incident(
        title="Checkout slow", severity="high", actor="monitor", source="threshold", services=["checkout"]
    )
    recheck = datetime.now(UTC) + timedelta(minutes=2, seconds=35)
    await Incident.filter(id=held.id).update(
        escalation={
            "generation": 1,
            "level": 0,
            "next_at": recheck.isoformat(),
            "next_level": 0,
            "holds": 1,
            "held": {"reason": "inhibited", "by": "INC-1", "until": recheck.isoformat()},
        }
    )
    shift = [timedelta(0)]
    app = make_app(sdb, clock=lambda: datetime.now(UTC) + shift[0])
    async with app.run_test(size=(80, 24)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded and screen.detail.detail is not None, what="first load")
        await select_row(pilot, held.key)
        header = screen.query_one("#detail-header")
        await until(pilot, lambda: any("page held: inhibited by INC-1" in line for line in drawn(header)), what="the hold named")
        assert not any("escalates in" in line for line in drawn(header)), drawn(header)
        # Past the re-check time (the engine extends the hold): still held, not "not acknowledged".
        shift[0] = timedelta(minutes=3)
        await pilot.pause(1.2)  # a clock tick
        lines = drawn(header)
        assert any("page held: inhibited by INC-1" in line for line in lines), lines
        assert not any("escalates in" in line or "not acknowledged" in line for line in lines), lines


async def test_a_page_held_by_a_silence_names_the_silence_and_its_end(sdb: Any) -> None:
    from engine.api.display import format_time

    inc = await services.create_incident(title="Disk 90%", severity="medium", actor="monitor", source="threshold", services=["db"])
    ends = datetime.now(UTC) + timedelta(minutes=40)
    await Incident.filter(id=inc.id).update(
        escalation={
            "generation": 1,
            "level": 1,
            "next_at": ends.isoformat(),
            "next_level": 1,
            "held": {"reason": "silenced", "by": "silence #12", "until": ends.isoformat()},
        }
    )
    app = make_app(sdb, clock=lambda: datetime.now(UTC))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.detail.detail is not None, what="detail")
        header = screen.query_one("#detail-header")
        expected = f"page held: silenced by silence #12 until {format_time(ends, now=datetime.now(UTC))}"
        await until(pilot, lambda: any(expected in line for line in drawn(header)), what="the silence named")
        assert not any("escalates in" in line for line in drawn(header)), drawn(header)

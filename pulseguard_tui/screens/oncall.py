"""On-call: who is on call now in each schedule (since, until), the next hand-off, and the
shifts of the highlighted schedule for the next two weeks, in the schedule's time zone.

Schedules come from the configuration (`[[schedules]]`), overrides from the database, both
read by `engine.oncall.overview`. Hand-offs happen with the clock, not on the change feed, so
the screen refreshes itself every half minute (and at once with ctrl+r).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from pulseguard_tui.lifecycle import run_work
from pulseguard_tui.screens.base import ConsoleScreen, bindings_for

DAYS = 14
REFRESH_SECONDS = 30.0
WIDE = 120  # from here each time carries its zone name
NO_SCHEDULES = (
    "no on-call schedules: add [[schedules]] to pulseguard.toml (name, rotation, handoff, users; "
    "see `pulseguard init`) and they show here · Esc back"
)


class OncallUnavailable(Exception):
    """The on-call overview cannot be computed here (why is the message)."""


def person_text(person: dict[str, Any] | None) -> str:
    if not person:
        return "(nobody)"
    return person["id"] if person["name"] == person["id"] else f"{person['name']} ({person['id']})"


def local_text(iso: str | None, tz: str, compact: bool = False) -> str:
    """A shift's edge in the schedule's zone, named (engine.core.timefmt's rule), with the weekday.
    `compact` leaves the zone to the screen's heading and info line ("times in Europe/Amsterdam"),
    so the five columns fit 80 cells."""
    if not iso:
        return "-"
    local = datetime.fromisoformat(iso).astimezone(ZoneInfo(tz))
    if compact:
        return local.strftime("%a %d %b %H:%M")
    from engine.api.display import format_time

    return local.strftime("%a ") + format_time(iso, zone=tz)


def span_text(seconds: float) -> str:
    """'3d 4h', '5h 10m', '12m' (rounded down, never negative)."""
    minutes = max(0, int(seconds // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins}m"
    return f"{mins}m"


async def load_overview(app: Any, now: datetime) -> dict[str, Any] | None:
    """The overview (None: no schedules configured): from the configuration and this process's
    database, or over `--connect` from the engine's (GET /api/oncall)."""
    if app.api.remote:
        if not app.feature("oncall"):  # an engine from before it served on call
            raise OncallUnavailable(
                "this engine does not serve who is on call: run the console where the engine runs, or update the engine"
            )
        overview: dict[str, Any] = await app.api.oncall_overview(now, days=DAYS)
        return overview if overview.get("schedules") else None
    config = getattr(app, "config", None)
    if config is None or not getattr(config, "schedules", None):
        return None
    from engine.api.oncall import load_oncall_overview

    return await load_oncall_overview(config, now, days=DAYS)


class OncallScreen(ConsoleScreen):
    screen_title = "On-call"
    scope = "oncall"
    BINDINGS = bindings_for("oncall")
    DEFAULT_CSS = """
    OncallScreen #oncall-now { height: auto; max-height: 40%; }
    OncallScreen #oncall-shifts-title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    OncallScreen #oncall-shifts { height: 1fr; }
    OncallScreen #oncall-info { height: auto; color: $text-muted; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.overview: dict[str, Any] | None = None
        self.error: str | None = None
        self.selected: str | None = None

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="oncall-now", cursor_type="row", zebra_stripes=True)
        yield Static("", id="oncall-shifts-title")
        yield DataTable(id="oncall-shifts", cursor_type="row", zebra_stripes=True)
        yield Static("loading…", id="oncall-info")

    def on_mount(self) -> None:
        super().on_mount()
        now_table = self.query_one("#oncall-now", DataTable)
        now_table.add_columns(*self._now_columns())
        self.query_one("#oncall-shifts", DataTable).add_columns("WHO", "FROM", "TO", "LAYER / OVERRIDE")
        now_table.focus()
        self.action_refresh()
        self.set_interval(REFRESH_SECONDS, self._tick)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.action_refresh()

    def _tick(self) -> None:
        if self.is_current:
            self.action_refresh()

    def action_refresh(self) -> None:
        # The function, not a coroutine: a worker replaced before it starts leaves nothing behind.
        run_work(self, self.reload, group="oncall", exclusive=True, exit_on_error=False)

    async def reload(self) -> None:
        app: Any = self.app
        await app.ready.wait()
        now = app.now() if hasattr(app, "now") else datetime.now(UTC)
        info = self.query_one("#oncall-info", Static)
        try:
            overview = await load_overview(app, now)
        except OncallUnavailable as exc:
            self.error = str(exc)
            info.update(f"{exc} · Esc back")
            return
        except Exception as exc:  # a bad schedule or the database went away: say so, keep the screen
            self.error = f"could not compute who is on call: {exc}"
            info.update(self.error)
            return
        self.error = None
        self.show_overview(overview, now)

    @property
    def compact(self) -> bool:
        return self.app.size.width < WIDE

    def _now_columns(self) -> tuple[str, ...]:
        """Below WIDE the shift's start is left to the shifts table (its first row), so who is on
        call, until when, and who is next fit 80 columns whole."""
        if self.compact:
            return ("SCHEDULE", "ON CALL", "UNTIL", "NEXT HAND-OFF")
        return ("SCHEDULE", "ON CALL", "SINCE", "UNTIL", "NEXT HAND-OFF")

    def on_resize(self) -> None:
        if self.overview is not None:
            self.show_overview(self.overview, None)

    def show_overview(self, overview: dict[str, Any] | None, now: datetime | None) -> None:
        self.overview = overview
        compact = self.compact
        table = self.query_one("#oncall-now", DataTable)
        info = self.query_one("#oncall-info", Static)
        keep = self.selected
        columns = self._now_columns()
        if tuple(str(c.label) for c in table.columns.values()) != columns:  # resized across WIDE
            table.clear(columns=True)
            table.add_columns(*columns)
        else:
            table.clear()
        if not overview or not overview["schedules"]:
            self.query_one("#oncall-shifts", DataTable).clear()
            self.query_one("#oncall-shifts-title", Static).update("")
            info.update(NO_SCHEDULES)
            return
        for s in overview["schedules"]:
            tz = s["timezone"]
            current, nxt = s.get("on_call"), s.get("next_handoff")
            if current is None:  # taken from an external calendar
                table.add_row(s["name"], s.get("note") or "-", *["-"] * (len(columns) - 2), key=s["name"])
                continue
            who = person_text(current.get("person"))
            if current.get("override"):
                who += " (override)"
            until = local_text(current["end"], tz, compact) if current.get("end") else "no hand-off"
            handoff = "-"
            if nxt:
                # 80 columns: the next person by id (the shifts table below names them in full)
                after = nxt["person"]["id"] if compact and nxt.get("person") else person_text(nxt["person"])
                handoff = f"{after} in {span_text(nxt['in_seconds'])}"
            since = () if compact else (local_text(current["start"], tz, compact),)
            table.add_row(s["name"], who, *since, until, handoff, key=s["name"])
        names = [s["name"] for s in overview["schedules"]]
        index = names.index(keep) if keep in names else 0
        table.move_cursor(row=index)
        self.show_shifts(names[index])
        zones = ", ".join(dict.fromkeys(s["timezone"] for s in overview["schedules"]))
        info.update(f"times in {zones} · ↑↓ schedule · refreshed every {REFRESH_SECONDS:.0f} s · Esc back")

    def show_shifts(self, name: str) -> None:
        self.selected = name
        schedule = next((s for s in (self.overview or {}).get("schedules", []) if s["name"] == name), None)
        shifts = self.query_one("#oncall-shifts", DataTable)
        shifts.clear()
        title = self.query_one("#oncall-shifts-title", Static)
        if schedule is None:
            title.update("")
            return
        tz = schedule["timezone"]
        compact = self.compact
        heading = f"Shifts of {name}, next {DAYS} days ({tz})"
        person = (schedule.get("on_call") or {}).get("person") or {}
        if person.get("paged_by"):
            if compact:  # 80 columns: the time zone is in the footer; who is paged how must fit
                heading = f"Shifts of {name}"
            heading += f" · {person['id']} is paged by {person['paged_by']}"
        title.update(heading)
        if not schedule["shifts"]:
            shifts.add_row(schedule.get("note") or "no shifts", "", "", "")
            return
        for x in schedule["shifts"]:
            shifts.add_row(
                person_text(x["person"]),
                local_text(x["start"], tz, compact),
                local_text(x["end"], tz, compact),
                x.get("override") or x.get("layer") or "-",
            )

    @on(DataTable.RowHighlighted, "#oncall-now")
    def _schedule_highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = event.row_key.value if event.row_key is not None else None
        if name and self.overview and name != self.selected:
            self.show_shifts(name)

"""Adding and ending maintenance windows."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from textual.app import ComposeResult

from pulseguard_tui.forms.base import ConfirmScreen, FormScreen, choice, field_row
from pulseguard_tui.forms.incident import split_names
from pulseguard_tui.widgets.inputs import Input

NOT_A_TIME = "is not a time (now, +30m, or ISO 8601 like 2026-11-27T22:00)"


def entry_zone(api: Any) -> tzinfo | None:
    """The zone a time typed without one is read in, as `pulseguard maintenance add` reads it:
    the console's configured `[engine] timezone`, else the remote engine's (the API names it),
    else the local zone (a local engine with none configured, as the CLI on this machine).
    The machine's own zone put a window hours off over --connect to an engine a zone away."""
    from engine.api.display import display_zone

    name = getattr(api, "timezone", None)
    return display_zone() or (ZoneInfo(name) if name else None)


def zone_name(zone: tzinfo | None, now: datetime) -> str:
    """'Europe/Paris', or the local zone's abbreviation ('CET') when TZ names none."""
    from engine.api.display import to_zone

    key = getattr(zone, "key", None)
    return str(key) if key else (to_zone(now, zone).tzname() or "local time")


def _iso(text: str, value: str, zone: tzinfo | None, field: str, refusal: str) -> datetime:
    from engine.api.inputs import UsageError, in_zone

    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} {refusal}") from None
    try:
        return in_zone(parsed, zone, text, field)
    except UsageError as exc:
        raise ValueError(str(exc).partition(": ")[2] or str(exc)) from None


def parse_start(text: str, now: datetime, zone: tzinfo | None = None) -> datetime:
    """'now', '+30m' (from now) or an ISO time (in `zone` when it has none; None: local)."""
    from engine.api.inputs import UsageError, parse_duration

    value = text.strip() or "now"
    if value == "now":
        return now
    if value.startswith("+"):
        try:
            return now + parse_duration(value[1:], "start")
        except UsageError:
            raise ValueError(f"{text!r} {NOT_A_TIME}") from None
    return _iso(text, value, zone, "starts", NOT_A_TIME)


def parse_end(text: str, start: datetime, zone: tzinfo | None = None) -> datetime:
    """A duration after the start ('2h') or an ISO time (in `zone` when it has none)."""
    from engine.api.inputs import UsageError, parse_duration

    value = text.strip()
    try:
        return start + parse_duration(value, "end")
    except UsageError:
        pass
    return _iso(text, value, zone, "ends", "is neither a duration (2h, 30m) nor an ISO time")


class AddMaintenanceScreen(FormScreen):
    title_text = "Add maintenance window"
    FIELD_MAP = {
        "service": "services",
        "target": "targets",
        "scope": "services",
        "ends": "ends",
        "time": "starts",
        "starts_at": "starts",
        "ends_at": "ends",
    }

    def subtitle(self) -> str:
        return f"times without a zone are read in {zone_name(entry_zone(self.api), self.app.now())}"  # type: ignore[attr-defined]

    def compose_fields(self) -> ComposeResult:
        yield from field_row("title", "Title", Input(placeholder="what is being done", compact=True))
        yield from field_row("kind", "Kind", choice([("scheduled", "scheduled"), ("emergency", "emergency")]))
        yield from field_row("services", "Services", Input(placeholder="services it covers, comma separated", compact=True))
        yield from field_row("targets", "Targets", Input(placeholder="targets it covers, comma separated", compact=True))
        yield from field_row("starts", "Starts", Input(value="now", placeholder="now, +30m or ISO time", compact=True))
        yield from field_row("ends", "Ends", Input(value="1h", placeholder="duration (2h) or ISO time", compact=True))
        yield from field_row("description", "Description", Input(placeholder="optional", compact=True))

    def check(self) -> dict[str, str]:
        problems = self.required({}, "title", "ends")
        if not self.value("services") and not self.value("targets"):
            problems["services"] = "name at least one service or target the window covers"
        now = self.app.now()  # type: ignore[attr-defined]
        zone = entry_zone(self.api)
        try:
            self._starts = parse_start(self.value("starts"), now, zone)
        except ValueError as exc:
            problems["starts"] = str(exc)
            return problems
        if self.value("ends"):
            try:
                self._ends = parse_end(self.value("ends"), self._starts, zone)
            except ValueError as exc:
                problems["ends"] = str(exc)
        return problems

    async def perform(self) -> str:
        row = await self.api.create_maintenance(
            title=self.value("title"),
            kind=self.value("kind"),
            services=split_names(self.value("services")),
            targets=split_names(self.value("targets")),
            starts_at=self._starts,
            ends_at=self._ends,
            description=self.value("description"),
        )
        return f"maintenance #{row['id']} added: {row['title']}"


class EndMaintenanceScreen(ConfirmScreen):
    title_text = "End maintenance"

    def __init__(self, window: dict[str, Any]) -> None:
        super().__init__(None)
        self.window = window

    def question(self) -> str:
        return f"End maintenance #{self.window['id']} “{self.window['title']}” now?"

    async def perform(self) -> str:
        row = await self.api.end_maintenance(int(self.window["id"]))
        return f"maintenance #{row['id']} ended"

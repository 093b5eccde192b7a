"""Follow-ups: the work an incident leaves behind (prevent, detect, mitigate, process).

`F` adds one to the selected incident, `d` marks one of its follow-ups done (or, done already,
open again); both through the EngineAPI, so they work over `--connect` as well.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from textual.app import ComposeResult
from textual.suggester import SuggestFromList

from pulseguard_tui.forms.base import FormScreen, choice, field_row
from pulseguard_tui.widgets.inputs import Input


def team_today(now: datetime, api: Any) -> date:
    """Today as the engine counts days (when a follow-up is overdue): in the console's configured
    zone, else the remote engine's (the API names it), else UTC, a local engine's default. The
    machine's own zone could make "7d" a day off over --connect."""
    from engine.api.display import display_zone

    name = getattr(api, "timezone", None)
    zone = display_zone() or (ZoneInfo(name) if name else UTC)
    return now.astimezone(zone).date()


def group_label(group: str) -> str:
    """'monitoring_improvements' -> 'monitoring improvements'."""
    return group.replace("_", " ")


def parse_due(text: str, today: date) -> date:
    """A due date typed into the form: YYYY-MM-DD, or days/weeks from today (7d, 2w), or ValueError."""
    from engine.api.inputs import UsageError, parse_date, parse_duration

    text = text.strip()
    if text[-1:].lower() == "w" and text[:-1].strip().isdigit():
        text = f"{int(text[:-1]) * 7}d"
    try:
        if text[:1].isdigit() and text[-1:].lower() == "d" and "-" not in text:
            return today + parse_duration(text, "due")
        return parse_date(text, "due")
    except UsageError:
        raise ValueError("not a date (YYYY-MM-DD, or 7d / 2w from today)") from None


class FollowUpScreen(FormScreen):
    """Add a follow-up to the incident: what to do, of which kind, who owns it, by when."""

    title_text = "Add a follow-up"
    FIELD_MAP = {"due_date": "due"}

    def compose_fields(self) -> ComposeResult:
        from engine.api.inputs import FollowUpGroup

        users = list(getattr(getattr(self.app, "settings", None), "users", []) or [])
        yield from field_row("description", "What to do", Input(placeholder="the action item, e.g. alert on p99 latency", compact=True))
        yield from field_row("group", "Kind", choice([(group_label(g.value), g.value) for g in FollowUpGroup]))
        yield from field_row(
            "owner", "Owner", Input(placeholder="optional: who does it", compact=True, suggester=SuggestFromList(users) if users else None)
        )
        yield from field_row("due", "Due", Input(placeholder="optional: YYYY-MM-DD, or 7d / 2w from today", compact=True))

    def check(self) -> dict[str, str]:
        problems = self.required({}, "description")
        self._due: date | None = None
        if self.value("due"):
            app: Any = self.app
            try:
                self._due = parse_due(self.value("due"), team_today(app.now(), self.api))
            except ValueError as exc:
                problems["due"] = str(exc)
        return problems

    async def perform(self) -> str:
        row = await self.api.add_followup(
            self.incident["key"], self.value("group"), self.value("description"), owner=self.value("owner") or None, due_date=self._due
        )
        return f"follow-up #{row['id']} ({group_label(row['group'])}) added to {self.incident['key']}"


class FollowUpDoneScreen(FormScreen):
    """Mark one of the incident's follow-ups done, or a done one open again."""

    title_text = "Follow-up done / open again"
    hint_text = "Ctrl+S save · Enter pick · Esc cancel"

    def __init__(self, incident: dict[str, Any], followups: list[dict[str, Any]]) -> None:
        super().__init__(incident)
        self.followups = followups

    def subtitle(self) -> str:
        return f"{super().subtitle()}\nan open one [ ] is marked done; a done one [x] is open again"

    def compose_fields(self) -> ComposeResult:
        options = [
            (f"[{'x' if f.get('done') else ' '}] {group_label(f['group'])}: {f['description']}"[:58], str(f["id"])) for f in self.followups
        ]
        first_open = next((str(f["id"]) for f in self.followups if not f.get("done")), options[0][1] if options else None)
        yield from field_row("followup", "Follow-up", choice(options, first_open))

    def check(self) -> dict[str, str]:
        return self.required({}, "followup")

    async def perform(self) -> str:
        picked = next(f for f in self.followups if str(f["id"]) == self.value("followup"))
        done = not picked.get("done")
        await self.api.complete_followup(int(picked["id"]), done=done)
        return f"follow-up #{picked['id']} {'done' if done else 'open again'} ({self.incident['key']})"

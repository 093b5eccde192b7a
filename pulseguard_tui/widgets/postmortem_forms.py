"""The forms of the Post-mortem tab; each goes through the engine's LearningAPI."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult

from pulseguard_tui.forms.base import ConfirmScreen, FormScreen, choice, field_row
from pulseguard_tui.widgets.inputs import Input, TextArea

ENTRY_KINDS = (
    "note",
    "deployment",
    "impact_start",
    "impact_end",
    "first_alert",
    "declared",
    "acknowledged",
    "escalated",
    "identified",
    "monitoring",
    "resolved",
)


def parse_when(text: str, field: str) -> Any:
    """A time typed into a form ('15m' = 15 minutes ago, 'now', ISO 8601), or ValueError."""
    from engine.api.inputs import UsageError, parse_time

    try:
        return parse_time(text, field)
    except UsageError as exc:
        raise ValueError(str(exc).split(": ", 1)[-1]) from None


class PostmortemForm(FormScreen):
    """A form about one incident's post-mortem (`doc` is the document being shown)."""

    def __init__(self, doc: dict[str, Any], entry: dict[str, Any] | None = None) -> None:
        super().__init__({"key": doc["key"], "title": doc["incident"]["title"]})
        self.doc = doc
        self.entry = entry

    @property
    def api(self) -> Any:
        from engine.api.local import learning_api

        return learning_api(self.app.api)  # type: ignore[attr-defined]


class SummaryForm(PostmortemForm):
    title_text = "Post-mortem summary"
    hint_text = "ctrl+s save · Tab next field · Esc cancel"

    def compose_fields(self) -> ComposeResult:
        yield from field_row("summary", "Summary", TextArea(self.doc["postmortem"]["summary"], soft_wrap=True))

    async def perform(self) -> str:
        await self.api.update_postmortem(self.doc["key"], summary=self.value("summary"))
        return f"{self.doc['key']} post-mortem summary saved"


class ListsForm(PostmortemForm):
    title_text = "What went well, what went badly, lessons learned"
    hint_text = "one item per line · ctrl+s save · Tab next field · Esc cancel"
    FIELD_MAP = {"went_well": "well", "went_badly": "badly", "lessons_learned": "lessons"}

    def compose_fields(self) -> ComposeResult:
        pm = self.doc["postmortem"]
        yield from field_row("well", "Went well", TextArea("\n".join(pm["went_well"]), soft_wrap=True))
        yield from field_row("badly", "Went badly", TextArea("\n".join(pm["went_badly"]), soft_wrap=True))
        yield from field_row("lessons", "Lessons", TextArea("\n".join(pm["lessons_learned"]), soft_wrap=True))

    def items(self, name: str) -> list[str]:
        return [line.strip() for line in self.value(name).splitlines() if line.strip()]

    async def perform(self) -> str:
        await self.api.update_postmortem(
            self.doc["key"], went_well=self.items("well"), went_badly=self.items("badly"), lessons_learned=self.items("lessons")
        )
        return f"{self.doc['key']} post-mortem lists saved"


class ImpactForm(PostmortemForm):
    title_text = "Impact assessment"
    FIELD_MAP = {
        "affected_users": "users",
        "downtime_minutes": "downtime",
        "financial_impact": "financial",
        "reputational_impact": "reputational",
    }

    def compose_fields(self) -> ComposeResult:
        impact = self.doc["impact"]
        users = impact["affected_users"]
        manual = impact["downtime_source"] == "manual"
        computed = impact["downtime_minutes_computed"]
        hint = f"empty: from the timeline ({computed:g} min)" if computed is not None else "empty: from the timeline"
        yield from field_row(
            "users", "Affected users", Input("" if users is None else str(users), compact=True, placeholder="how many users were affected")
        )
        yield from field_row(
            "downtime", "Downtime min", Input(f"{impact['downtime_minutes']:g}" if manual else "", compact=True, placeholder=hint)
        )
        yield from field_row("financial", "Financial", Input(impact["financial_impact"], compact=True))
        yield from field_row("reputational", "Reputational", Input(impact["reputational_impact"], compact=True))

    def check(self) -> dict[str, str]:
        """Both numbers at once (the engine names only the first it refuses); "1,200" users is
        1200, as people write it."""
        problems: dict[str, str] = {}
        users = self.value("users")
        self._users = "".join(users.replace(",", "").replace("_", "").split())
        if self._users and not self._users.lstrip("-").isdigit():
            problems["users"] = f"{users!r} is not a whole number of users"
        elif self._users.startswith("-"):
            problems["users"] = f"{users} is out of range (0 or more)"
        downtime = self.value("downtime")
        try:
            if downtime and not 0 <= float(downtime) < float("inf"):
                problems["downtime"] = f"{downtime} is out of range (0 or more minutes)"
        except ValueError:
            problems["downtime"] = f"{downtime!r} is not a number of minutes (empty: from the timeline)"
        return problems

    async def perform(self) -> str:
        users = self._users
        downtime = self.value("downtime")
        await self.api.update_postmortem(
            self.doc["key"],
            affected_users=users or None,
            downtime_minutes=downtime or None,
            financial_impact=self.value("financial"),
            reputational_impact=self.value("reputational"),
        )
        return f"{self.doc['key']} impact saved"


class EntryForm(PostmortemForm):
    """Add a timeline entry, or edit the one given."""

    FIELD_MAP = {"at_time": "at", "time": "at"}

    @property
    def title_text(self) -> str:  # type: ignore[override]
        return "Edit timeline entry" if self.entry else "Add timeline entry"

    def compose_fields(self) -> ComposeResult:
        e = self.entry or {}
        kinds = list(ENTRY_KINDS) + ([e["kind"]] if e.get("kind") and e["kind"] not in ENTRY_KINDS else [])
        yield from field_row("at", "Time", Input(e.get("at", ""), compact=True, placeholder="ISO time (2026-03-02T10:05Z) or age (15m)"))
        yield from field_row("kind", "Kind", choice([(k.replace("_", " "), k) for k in kinds], e.get("kind", "note")))
        yield from field_row("text", "What", Input(e.get("text", ""), compact=True))
        yield from field_row(
            "annotation", "Annotation", Input(e.get("annotation", ""), compact=True, placeholder="optional note for the review")
        )

    def check(self) -> dict[str, str]:
        problems = self.required({}, "at", "text")
        if "at" not in problems:
            try:
                self._at = parse_when(self.value("at"), "time")
            except ValueError as exc:
                problems["at"] = str(exc)
        return problems

    async def perform(self) -> str:
        key = self.doc["key"]
        if self.entry:
            await self.api.edit_postmortem_entry(
                key, self.entry["id"], at=self._at, text=self.value("text"), kind=self.value("kind"), annotation=self.value("annotation")
            )
            return f"{key} timeline entry {self.entry['id']} saved"
        await self.api.add_postmortem_entry(key, self._at, self.value("text"), kind=self.value("kind"), annotation=self.value("annotation"))
        return f"{key} timeline entry added"


class RatingForm(PostmortemForm):
    title_text = "Satisfaction (1 to 5)"
    FIELD_MAP = {"customer": "customer", "team": "team"}

    def compose_fields(self) -> ComposeResult:
        sat = self.doc.get("satisfaction") or {}
        yield from field_row("customer", "Customer", Input(str(sat.get("customer") or ""), compact=True, placeholder="1-5"))
        yield from field_row("team", "Team", Input(str(sat.get("team") or ""), compact=True, placeholder="1-5"))

    async def perform(self) -> str:
        result = await self.api.rate_satisfaction(self.doc["key"], customer=self.value("customer") or None, team=self.value("team") or None)
        sat = result["satisfaction"]
        return f"{self.doc['key']} satisfaction: customer {sat.get('customer', '-')}/5, team {sat.get('team', '-')}/5"


class PublishScreen(ConfirmScreen, PostmortemForm):
    @property
    def title_text(self) -> str:  # type: ignore[override]
        return "Back to draft" if self.published else "Publish post-mortem"

    @property
    def published(self) -> bool:
        return self.doc["postmortem"]["status"] == "published"

    def question(self) -> str:
        if self.published:
            return f"Put the post-mortem of {self.doc['key']} back to draft, so it can be edited?"
        return f"Publish the post-mortem of {self.doc['key']}? It cannot be edited until it is back to draft."

    async def perform(self) -> str:
        if self.published:
            await self.api.unpublish_postmortem(self.doc["key"])
            return f"{self.doc['key']} post-mortem back to draft"
        await self.api.publish_postmortem(self.doc["key"])
        return f"{self.doc['key']} post-mortem published"


class RemoveEntryScreen(ConfirmScreen, PostmortemForm):
    title_text = "Remove timeline entry"

    def question(self) -> str:
        return f"Remove the entry '{self.entry['text']}' from the post-mortem of {self.doc['key']}?"  # type: ignore[index]

    async def perform(self) -> str:
        await self.api.remove_postmortem_entry(self.doc["key"], self.entry["id"])  # type: ignore[index]
        return f"{self.doc['key']} timeline entry removed"

"""The incident workflows, one small form each; every one goes through the EngineAPI."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.suggester import SuggestFromList

from engine.api.errors import IllegalTransition
from engine.api.inputs import DEFAULT_ROOT_CAUSE_CATEGORIES, EvidenceKind
from pulseguard_tui.formatting import SEVERITIES, comment_name, severity_label
from pulseguard_tui.forms.base import ConfirmScreen, FormCheckbox, FormScreen, choice, field_row
from pulseguard_tui.widgets.inputs import Input, TextArea

SETTABLE = ("investigating", "identified", "monitoring")


def split_names(text: str) -> list[str]:
    """'api, web db' -> ['api', 'web', 'db']."""
    return [part for part in text.replace(",", " ").split() if part]


def parse_when(text: str, field: str) -> Any:
    """A time typed into a form ('15m' = 15 minutes ago, 'now', ISO 8601), or ValueError."""
    from engine.api.inputs import UsageError, parse_time

    try:
        return parse_time(text, field)
    except UsageError as exc:
        raise ValueError(str(exc).split(": ", 1)[-1]) from None


class AcknowledgeScreen(ConfirmScreen):
    title_text = "Acknowledge"

    def question(self) -> str:
        return f"Acknowledge {self.incident['key']} as {self.api.actor}? Escalation stops."

    async def perform(self) -> str:
        row = await self.api.acknowledge(self.incident["key"])
        return f"{row['key']} acknowledged ({row['status']})"


class StatusScreen(FormScreen):
    title_text = "Change status"

    def compose_fields(self) -> ComposeResult:
        current = self.incident.get("status")
        options = [(s, s) for s in SETTABLE if s != current]
        # Preset: the next stage forward. From monitoring, the last one before resolving, every
        # other status is a step back: nothing is preset, so Enter alone moves nothing back.
        ahead = SETTABLE[SETTABLE.index(current) + 1 :] if current in SETTABLE else SETTABLE
        preset = ahead[0] if ahead else None
        # The message first, as in the update form: it is what a responder types straight after
        # "s" (a burst over SSH), and the choice list would take it as type-to-search.
        yield from field_row("message", "Message", Input(placeholder="what changed (needed if public)", compact=True))
        yield from field_row("status", "Status", choice(options, preset, allow_blank=preset is None))
        yield from field_row("public", "Public", FormCheckbox("publish on the status page", compact=True))

    def check(self) -> dict[str, str]:
        problems: dict[str, str] = {}
        if not self.value("status"):
            current = self.incident.get("status")
            problems["status"] = f"it is {current}: pick the status to go back to (r resolves it, u posts an update)"
        if self.value("public") and not self.value("message"):
            problems["message"] = "a public status change needs a message"
        return problems

    async def perform(self) -> str:
        row = await self.api.change_status(
            self.incident["key"], self.value("status"), message=self.value("message") or None, public=bool(self.value("public"))
        )
        return f"{row['key']} is now {row['status']}"


class SeverityScreen(FormScreen):
    title_text = "Change severity"

    def compose_fields(self) -> ComposeResult:
        current = self.incident.get("severity")
        options = [(severity_label(s) + f"  {s}" + ("  (now)" if s == current else ""), s) for s in SEVERITIES]
        yield from field_row("severity", "Severity", choice(options, current if current in SEVERITIES else None))
        yield from field_row("reason", "Reason", Input(placeholder="optional", compact=True))

    def check(self) -> dict[str, str]:
        current = self.incident.get("severity")
        if self.value("severity") == current:
            return {"severity": f"it is {current} already; pick another severity"}
        return {}

    async def perform(self) -> str:
        row = await self.api.change_severity(self.incident["key"], self.value("severity"), reason=self.value("reason") or None)
        return f"{row['key']} severity is now {row['severity']}"


class CommentScreen(FormScreen):
    title_text = "Comment"
    FIELD_MAP = {"comment": "content"}

    def compose_fields(self) -> ComposeResult:
        yield from field_row("content", "Comment", Input(placeholder="what you found or did", compact=True))
        yield from field_row("internal", "Internal", FormCheckbox("internal only (never published)", compact=True))

    def check(self) -> dict[str, str]:
        return self.required({}, "content")

    async def perform(self) -> str:
        internal = bool(self.value("internal"))
        await self.api.comment(self.incident["key"], self.value("content"), internal_only=internal)
        return f"{'internal ' if internal else ''}comment added to {self.incident['key']}"


class UpdateScreen(FormScreen):
    title_text = "Public status update"

    def compose_fields(self) -> ComposeResult:
        current = self.incident.get("status")
        options = [(f"keep ({current})", "")] + [(s, s) for s in SETTABLE if s != current]
        yield from field_row("message", "Message", Input(placeholder="what customers should know", compact=True))
        yield from field_row("status", "Status", choice(options, ""))
        yield from field_row("public", "Public", FormCheckbox("publish on the status page", value=True, compact=True))

    def check(self) -> dict[str, str]:
        return self.required({}, "message")

    async def perform(self) -> str:
        public = bool(self.value("public"))
        row = await self.api.post_update(self.incident["key"], self.value("message"), public=public, status=self.value("status") or None)
        return f"{'public' if public else 'internal'} update posted ({row['status']})"


class EvidenceScreen(FormScreen):
    title_text = "Attach evidence"
    hint_text = "Ctrl+S save · Tab next field · Esc cancel"
    FIELD_MAP = {"evidence": "url", "range": "range_from", "kind": "kind", "content": "content"}

    def compose_fields(self) -> ComposeResult:
        kinds = [(k.value, k.value) for k in EvidenceKind if k.value != "samples"]
        # What a responder fills most comes first: the URL (typed or pasted straight after "e"),
        # then what it shows; the kind (a link unless changed) goes with the content and range.
        yield from field_row("url", "URL", Input(placeholder="https://… (a link or screenshot)", compact=True))
        yield from field_row("description", "Description", Input(placeholder="what it shows", compact=True))
        yield from field_row("kind", "Kind", choice(kinds, "link"))
        yield from field_row("content", "Content", TextArea(compact=True, soft_wrap=True))
        yield from field_row("range_from", "From", Input(placeholder="log range start: 15m, ISO time", compact=True))
        yield from field_row("range_to", "To", Input(placeholder="log range end: empty for now, 5m, ISO time", compact=True))

    def check(self) -> dict[str, str]:
        problems: dict[str, str] = {}
        if not self.value("url") and not self.value("content"):
            problems["url"] = "give a URL or paste the content"
        self._range: dict[str, Any] = {}
        for name in ("range_from", "range_to"):
            if self.value(name):
                try:
                    self._range[name] = parse_when(self.value(name), name)
                except ValueError as exc:
                    problems[name] = str(exc)
        if "range_from" in self._range and "range_to" not in self._range and not problems:
            self._range["range_to"] = parse_when("now", "range_to")  # a range up to now, as it reads
        elif len(self._range) == 1 and not problems:
            problems["range_from"] = "give where the range starts (15m for 15 minutes ago, an ISO time)"
        return problems

    async def perform(self) -> str:
        fields: dict[str, Any] = {"description": self.value("description")}
        if self.value("url"):
            fields["url"] = self.value("url")
        if self.value("content"):
            fields["content"] = self.value("content")
        fields.update(self._range)
        row = await self.api.add_evidence(self.incident["key"], self.value("kind"), **fields)
        return f"evidence #{row['id']} ({row['kind']}) added to {self.incident['key']}"


class ResolveScreen(FormScreen):
    title_text = "Resolve"
    FIELD_MAP = {"verification step": "steps"}

    def compose_fields(self) -> ComposeResult:
        categories = list(getattr(self.app, "settings", None).categories or DEFAULT_ROOT_CAUSE_CATEGORIES)  # type: ignore[union-attr]
        yield from field_row("root_cause", "Root cause", Input(placeholder="why it happened", compact=True))
        yield from field_row(
            "category", "Category", choice([(c, c) for c in categories], "unknown" if "unknown" in categories else categories[0])
        )
        yield from field_row("solution", "Solution", Input(placeholder="what fixed it", compact=True))
        yield from field_row("steps", "Verify steps", Input(placeholder="optional; separate steps with ;", compact=True))

    def check(self) -> dict[str, str]:
        return self.required({}, "root_cause", "solution")

    # Set once the engine said the incident was resolved meanwhile: the next save records this
    # root cause on it (the engine's own was "recovered without intervention").
    amend = False

    async def perform(self) -> str:
        steps = [s.strip() for s in self.value("steps").split(";") if s.strip()]
        try:
            row = await self.api.resolve(
                self.incident["key"],
                self.value("root_cause"),
                self.value("solution"),
                category=self.value("category"),
                verification_steps=steps,
                amend=self.amend,
            )
        except IllegalTransition as exc:
            if self.amend or "already resolved" not in str(exc):
                raise
            self.amend = True
            # Say what the second save replaces: the engine's "recovered without intervention", or
            # a root cause someone else wrote meanwhile, which a quick second Enter must not erase unseen.
            recorded = ""
            try:
                now = await self.api.incident_detail(self.incident["key"])
            except Exception:  # the refusal stands on its own; the detail only adds to it
                now = {}
            cause = str(now.get("root_cause") or "")
            if cause:
                shown = cause if len(cause) <= 80 else cause[:79] + "…"
                recorded = f" with root cause {shown!r} ({now.get('root_cause_category') or 'unknown'})"
            raise IllegalTransition(f"{exc}{recorded}; save again to replace it with this root cause") from None
        if self.amend:
            return f"{row['key']} root cause recorded ({row['root_cause_category']})"
        return f"{row['key']} resolved ({row['root_cause_category']})"


class ReopenScreen(FormScreen):
    title_text = "Reopen"

    def compose_fields(self) -> ComposeResult:
        yield from field_row("reason", "Reason", Input(placeholder="optional: why it is back", compact=True))

    async def perform(self) -> str:
        row = await self.api.reopen(self.incident["key"], reason=self.value("reason") or None)
        return f"{row['key']} reopened ({row['status']})"


class PromoteScreen(ConfirmScreen):
    title_text = "Promote to public update"

    def __init__(self, incident: dict[str, Any], comment: dict[str, Any]) -> None:
        super().__init__(incident)
        self.comment = comment

    def question(self) -> str:
        return f"Publish {comment_name(self.comment)} as a public update?\n\n“{self.comment['content']}”"

    async def perform(self) -> str:
        try:
            row = await self.api.promote_comment(int(self.comment["id"]))
        except IllegalTransition as exc:
            if "already public" not in str(exc):
                raise
            # Published meanwhile (another console): nothing is left to confirm, and the engine's
            # words name the comment by its database id, which no one here has seen.
            return f"{comment_name(self.comment)} was published already (meanwhile); nothing changed"
        return f"{comment_name(self.comment)} published as a public status update (#{row['id']})"


class NewIncidentScreen(FormScreen):
    title_text = "New incident"
    FIELD_MAP = {"service": "services", "tag": "tags", "detected_at": "detected"}

    def subtitle(self) -> str:
        return ""

    def compose_fields(self) -> ComposeResult:
        settings = getattr(self.app, "settings", None)
        services = list(getattr(settings, "services", []) or [])
        users = list(getattr(settings, "users", []) or [])
        yield from field_row("title", "Title", Input(placeholder="what is wrong, for whom", compact=True))
        yield from field_row("severity", "Severity", choice([(severity_label(s) + f"  {s}", s) for s in SEVERITIES], "high"))
        yield from field_row("description", "Description", Input(placeholder="optional", compact=True))
        yield from field_row(
            "services",
            "Services",
            Input(
                placeholder=", ".join(services[:4]) or "affected services, comma separated",
                compact=True,
                suggester=SuggestFromList(services) if services else None,
            ),
        )
        yield from field_row("tags", "Tags", Input(placeholder="optional, comma separated", compact=True))
        yield from field_row(
            "assignee", "Assignee", Input(placeholder="optional", compact=True, suggester=SuggestFromList(users) if users else None)
        )
        yield from field_row("detected", "Detected", Input(placeholder="optional: 10m (ago), ISO time; default now", compact=True))

    def check(self) -> dict[str, str]:
        problems = self.required({}, "title")
        self._detected = None
        if self.value("detected"):
            try:
                self._detected = parse_when(self.value("detected"), "detected")
            except ValueError as exc:
                problems["detected"] = str(exc)
        return problems

    async def perform(self) -> str:
        fields: dict[str, Any] = dict(
            title=self.value("title"),
            severity=self.value("severity"),
            description=self.value("description"),
            services=split_names(self.value("services")),
            tags=split_names(self.value("tags")),
            assignee=self.value("assignee") or None,
        )
        if self._detected is not None:
            fields["detected_at"] = self._detected
        row = await self.api.create_incident(**fields)
        self.created_key = row["key"]
        return f"{row['key']} opened ({row['severity']})"


class AssignScreen(FormScreen):
    title_text = "Assign"

    def compose_fields(self) -> ComposeResult:
        users = list(getattr(getattr(self.app, "settings", None), "users", []) or [])
        hint = ("known: " + ", ".join(users[:6])) if users else "a user name; empty to unassign"
        yield from field_row(
            "assignee",
            "Assignee",
            Input(
                value=self.incident.get("assignee") or "",
                placeholder=hint,
                compact=True,
                suggester=SuggestFromList(users) if users else None,
            ),
        )

    _unknown_once: str | None = None

    def check(self) -> dict[str, str]:
        """A name that is not one of the configuration's users is most likely a typo (`alcie`):
        said first; the same name saved again is assigned (a team, say `devops-team`)."""
        users = list(getattr(getattr(self.app, "settings", None), "users", []) or [])
        who = self.value("assignee")
        if not who or not users or who in users or who == self._unknown_once:
            return {}
        self._unknown_once = who
        known = ", ".join(users[:6]) + (", …" if len(users) > 6 else "")
        return {"assignee": f"{who!r} is not a user of the configuration ({known}); save again to assign it anyway"}

    async def perform(self) -> str:
        who = self.value("assignee") or None
        row = await self.api.assign(self.incident["key"], who)
        return f"{row['key']} assigned to {row['assignee']}" if row["assignee"] else f"{row['key']} unassigned"


class EditScreen(FormScreen):
    """Correct what the incident is about: its title, description and affected services. A
    description of several lines is kept as it is here (a one-line field would flatten it) and
    changed with `pulseguard incident edit --description`."""

    title_text = "Edit"

    def subtitle(self) -> str:
        return f"{self.incident['key']}  what it is about; the timeline keeps what it said before"

    def compose_fields(self) -> ComposeResult:
        services = list(getattr(getattr(self.app, "settings", None), "services", []) or [])
        yield from field_row("title", "Title", Input(value=self.incident.get("title") or "", compact=True))
        description = self.incident.get("description") or ""
        if "\n" in description:
            field = Input(placeholder="several lines: kept; change them with `pulseguard incident edit`", compact=True, disabled=True)
        else:
            field = Input(value=description, placeholder="what it shows; empty for none", compact=True)
        yield from field_row("description", "Description", field)
        yield from field_row(
            "services",
            "Services",
            Input(
                value=", ".join(self.incident.get("services") or []),
                placeholder="affected services, comma separated; empty for none",
                compact=True,
                suggester=SuggestFromList(services) if services else None,
            ),
        )

    def check(self) -> dict[str, str]:
        return self.required({}, "title")

    async def perform(self) -> str:
        key = self.incident["key"]
        title = self.value("title")
        services = split_names(self.value("services"))
        changes: dict[str, Any] = {}
        if title != (self.incident.get("title") or ""):
            changes["title"] = title
        description = self.query_one("#f-description", Input)
        if not description.disabled and self.value("description") != (self.incident.get("description") or "").strip():
            changes["description"] = self.value("description")
        if services != list(self.incident.get("services") or []):
            changes["services"] = services
        if not changes:
            return f"{key}: nothing changed"
        row = await self.api.edit_incident(key, **changes)
        if set(changes) == {"description"}:
            return f"{row['key']}: description changed"
        return f"{row['key']} now reads: {row['title']}" + (f" ({', '.join(row['services'])})" if row.get("services") else "")


class TagsScreen(FormScreen):
    title_text = "Tags"
    FIELD_MAP = {"tag": "tags"}

    def subtitle(self) -> str:
        return f"{self.incident['key']}  tags now: {', '.join(self.incident.get('tags') or []) or '(none)'}"

    def compose_fields(self) -> ComposeResult:
        yield from field_row("tags", "Change", Input(placeholder="db +network -flaky (name or +name adds, -name removes)", compact=True))

    def check(self) -> dict[str, str]:
        return self.required({}, "tags")

    async def perform(self) -> str:
        words = split_names(self.value("tags"))
        add = [w.lstrip("+") for w in words if not w.startswith("-")]
        remove = [w[1:] for w in words if w.startswith("-")]
        row = await self.api.set_tags(self.incident["key"], add=add, remove=remove)
        return f"{row['key']} tags: {', '.join(row['tags']) or '(none)'}"


class FalsePositiveScreen(FormScreen):
    def __init__(self, incident: dict[str, Any]) -> None:
        super().__init__(incident)
        self.mark = not incident.get("false_positive")
        self.title_text = "Mark as false positive" if self.mark else "No longer a false positive"

    def compose_fields(self) -> ComposeResult:
        yield from field_row("reason", "Reason", Input(placeholder="optional", compact=True))

    async def perform(self) -> str:
        row = await self.api.mark_false_positive(self.incident["key"], value=self.mark, reason=self.value("reason") or None)
        return f"{row['key']} {'marked as' if row['false_positive'] else 'no longer'} a false positive"


class MergeScreen(FormScreen):
    """Merge the selected incident into another open one, picked from a list."""

    title_text = "Merge into…"

    def __init__(self, incident: dict[str, Any], candidates: list[dict[str, Any]]) -> None:
        super().__init__(incident)
        self.candidates = candidates

    def subtitle(self) -> str:
        return f"{self.incident['key']}  {self.incident['title']}\nmoves everything to the incident picked; {self.incident['key']} closes"

    def compose_fields(self) -> ComposeResult:
        options = [(f"{c['key']}  {severity_label(c['severity'])} {c['title']}"[:60], c["key"]) for c in self.candidates]
        yield from field_row("into", "Into", choice(options, options[0][1] if options else None, allow_blank=not options))
        yield from field_row("reason", "Reason", Input(placeholder="optional: why they are one", compact=True))

    def check(self) -> dict[str, str]:
        return self.required({}, "into")

    async def perform(self) -> str:
        row = await self.api.merge(self.incident["key"], self.value("into"), reason=self.value("reason") or None)
        return f"{self.incident['key']} merged into {row['key']} ({row['firing_count']} firings)"


class SplitScreen(FormScreen):
    """Take one alert of a grouped incident out into a new incident."""

    title_text = "Split an alert out"

    def __init__(self, incident: dict[str, Any], alerts: list[tuple[str, str]]) -> None:
        super().__init__(incident)
        self.alerts = alerts  # (fingerprint, what it said)
        self.created_key: str | None = None

    def compose_fields(self) -> ComposeResult:
        options = [(f"{summary}  ({fp})"[:60], fp) for fp, summary in self.alerts]
        yield from field_row("fingerprint", "Alert", choice(options, options[0][1] if options else None))

    def check(self) -> dict[str, str]:
        return self.required({}, "fingerprint")

    async def perform(self) -> str:
        row = await self.api.split(self.incident["key"], self.value("fingerprint"))
        self.created_key = row["key"]
        return f"alert split out of {self.incident['key']} into {row['key']}"

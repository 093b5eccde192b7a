"""The Incidents screen's workflow keys: each checks that changes are allowed and an incident is
selected, then opens its form (pulseguard_tui.forms.incident) and, when the form is done,
reloads the list or selects the incident it created."""

from __future__ import annotations

from typing import Any

from pulseguard_tui.formatting import ago, comment_name, local_time
from pulseguard_tui.forms import incident as forms
from pulseguard_tui.screens.base import ConsoleScreen
from pulseguard_tui.widgets.detail import DetailPane, published_as
from pulseguard_tui.widgets.incident_table import IncidentTable


class IncidentWorkflows(ConsoleScreen):
    """The incident list's screen without its layout and data: what the workflow keys need."""

    @property
    def table(self) -> IncidentTable:
        return self.query_one(IncidentTable)

    @property
    def detail(self) -> DetailPane:
        return self.query_one(DetailPane)

    def request_refresh(self, detail: bool = False) -> None:
        """Reload the list (and the detail) soon; the screen knows how."""
        raise NotImplementedError

    def select(self, key: str) -> None:
        """Reload the list and select `key`; the screen knows how."""
        raise NotImplementedError

    def _target(self, *, write: bool = True) -> dict[str, Any] | None:
        app: Any = self.app
        if write and app.refuse_if_readonly():
            return None
        row = self.table.selected
        if row is None:
            self.notify("no incident selected", severity="warning")
        return row

    def _open(self, screen: Any, select_key: str | None = None) -> None:
        def done(message: Any) -> None:
            if message:
                self.notify(str(message))
                created = getattr(screen, "created_key", None)
                if created:
                    self.select(created)
                else:
                    self.request_refresh(detail=True)

        self.app.push_screen(screen, done)

    def action_ack(self) -> None:
        if row := self._target():
            if row.get("acknowledged_at") and row.get("status") != "resolved":
                # Asking again would only end in a refusal: say who and when instead.
                app: Any = self.app
                when = f"{local_time(row['acknowledged_at'])} ({ago(row['acknowledged_at'], app.now())})"
                self.notify(
                    f"{row['key']} is already acknowledged by {row.get('acknowledged_by') or '?'} at {when}", severity="information"
                )
                return
            self._open(forms.AcknowledgeScreen(row))

    def action_snooze(self) -> None:
        if row := self._target():
            if row.get("acknowledged_at") or row.get("status") == "resolved":
                self.notify(f"{row['key']} pages nobody (acknowledged or resolved): nothing to snooze", severity="information")
                return
            from pulseguard_tui.forms.silences import SnoozeScreen

            self._open(SnoozeScreen(row))

    def action_status(self) -> None:
        if row := self._target():
            self._open(forms.StatusScreen(row))

    def action_severity(self) -> None:
        if row := self._target():
            self._open(forms.SeverityScreen(row))

    def action_comment(self) -> None:
        if row := self._target():
            self._open(forms.CommentScreen(row))

    def action_update(self) -> None:
        if row := self._target():
            self._open(forms.UpdateScreen(row))

    async def action_runbook(self) -> None:
        row = self._target(write=False)  # reading: a read-only console may
        if row is None:
            return
        app: Any = self.app
        try:
            runbook = await app.api.runbook(row["key"])
        except Exception as exc:
            self.notify(f"could not read {row['key']}'s runbook: {exc}", severity="error")
            return
        if runbook is None:
            self.notify(f"{row['key']} has no runbook (set runbook = … on its trigger or service)", severity="information")
            return
        from pulseguard_tui.screens.runbook import RunbookScreen

        app.push_screen(RunbookScreen(row["key"], runbook))

    def action_evidence(self) -> None:
        if row := self._target():
            self._open(forms.EvidenceScreen(row))

    def action_followup(self) -> None:
        if row := self._target():
            from pulseguard_tui.forms.followups import FollowUpScreen

            self._open(FollowUpScreen(row))

    async def action_followup_done(self) -> None:
        row = self._target()
        if row is None:
            return
        app: Any = self.app
        try:  # read afresh: another console may have marked one done meanwhile
            detail = await app.api.incident_detail(row["key"])
        except Exception as exc:
            self.notify(f"could not read {row['key']}'s follow-ups: {exc}", severity="error")
            return
        followups = list(detail.get("followups") or [])
        if not followups:
            keys = app.keys_for("incident.followup") or "F"
            self.notify(f"{row['key']} has no follow-ups ({keys} adds one)", severity="warning")
            return
        from pulseguard_tui.forms.followups import FollowUpDoneScreen

        self._open(FollowUpDoneScreen(row, followups))

    def action_resolve(self) -> None:
        if row := self._target():
            self._open(forms.ResolveScreen(row))

    def action_reopen(self) -> None:
        if row := self._target():
            if row.get("status") != "resolved":  # a form the engine can only refuse: said at once, as `a` and `z` do
                self.notify(f"{row['key']} is not resolved (it is {row.get('status')}): nothing to reopen", severity="information")
                return
            self._open(forms.ReopenScreen(row))

    async def action_merge(self) -> None:
        row = self._target()
        if row is None:
            return
        if row.get("status") == "resolved":
            self.notify(f"{row['key']} is resolved; reopen it before merging it", severity="warning")
            return
        app: Any = self.app
        try:
            rows = await app.api.list_incidents(limit=200)
        except Exception as exc:
            self.notify(f"could not list the open incidents: {exc}", severity="error")
            return
        candidates = [r for r in rows if r["key"] != row["key"] and r.get("status") != "resolved"]
        if not candidates:
            self.notify(f"no other open incident to merge {row['key']} into", severity="warning")
            return
        self._open(forms.MergeScreen(row, candidates))

    async def action_split(self) -> None:
        row = self._target()
        if row is None:
            return
        app: Any = self.app
        detail = await app.api.incident_detail(row["key"])
        alerts: dict[str, str] = {}
        for e in detail.get("timeline") or []:
            fp = (e.get("data") or {}).get("fingerprint")
            if e["kind"] in ("alert_firing", "alert_resolved") and fp:
                alerts.setdefault(str(fp), str(e["summary"]).removeprefix("alert firing: "))
        if len(alerts) < 2:
            self.notify(f"{row['key']} groups {'one alert' if alerts else 'no alerts'}; there is nothing to split out", severity="warning")
            return
        self._open(forms.SplitScreen(row, list(alerts.items())))

    def action_assign(self) -> None:
        if row := self._target():
            self._open(forms.AssignScreen(row))

    async def action_edit(self) -> None:
        row = self._target()
        if row is None:
            return
        # The list's rows carry no description: the form starts from the detail (shown, or read).
        shown = self.detail.detail
        if shown and shown.get("key") == row["key"]:
            self._open(forms.EditScreen({**row, "description": shown.get("description") or ""}))
            return
        app: Any = self.app
        try:
            detail = await app.api.incident_detail(row["key"])
        except Exception as exc:
            self.notify(f"could not read {row['key']}: {exc}", severity="error")
            return
        self._open(forms.EditScreen({**row, "description": detail.get("description") or ""}))

    def action_tags(self) -> None:
        if row := self._target():
            self._open(forms.TagsScreen(row))

    def action_false_positive(self) -> None:
        if row := self._target():
            self._open(forms.FalsePositiveScreen(row))

    def action_new(self) -> None:
        app: Any = self.app
        if not app.refuse_if_readonly():
            self._open(forms.NewIncidentScreen())

    async def action_promote(self) -> None:
        """P: the comment highlighted in the Comments tab, else the newest internal comment not
        yet published. One that cannot be published (public, or published already) is said at
        once, by author and time: a dialog that is refused after Enter only wastes a key."""
        row = self._target()
        if row is None:
            return
        app: Any = self.app
        detail = self.detail.detail
        if detail is None or detail["key"] != row["key"] or "comments" not in detail:
            try:
                detail = await app.api.incident_detail(row["key"])
            except Exception as exc:
                self.notify(f"could not read {row['key']}'s comments: {exc}", severity="error")
                return
        comment = None
        if self.detail.active_tab == "comments":
            comment = self.detail.selected_comment()
            if comment is not None and not comment["internal_only"]:
                self.notify(f"{comment_name(comment)} is public already; pick an internal one", severity="warning")
                return
            if comment is not None and (update := published_as(comment, detail)) is not None:
                when = local_time(update.get("stated_at") or update["created_at"])
                self.notify(f"{comment_name(comment)} is published already (the public update of {when})", severity="warning")
                return
        if comment is None:
            internal = [c for c in detail.get("comments") or [] if c["internal_only"]]
            unpublished = [c for c in internal if published_as(c, detail) is None]
            if not unpublished:
                said = "has no internal comment to publish"
                if internal:
                    said = f"has no internal comment left to publish ({comment_name(internal[-1])} is published already)"
                self.notify(f"{row['key']} {said}", severity="warning")
                return
            comment = unpublished[-1]
        self._open(forms.PromoteScreen(row, comment))

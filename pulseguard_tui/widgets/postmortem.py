"""The Post-mortem tab of an incident: summary, impact, the editable timeline, what went well
and badly, lessons learned and action items, with a key for each edit.

Mount `PostmortemView` in the incident detail and call `show_incident(detail)` whenever the
selected incident (or its data) changes; it loads the document itself. Keys work while the
view (its timeline list) has focus:

  S summary · W went well/badly/lessons · I impact · N new entry · Enter edit entry
  H hide/show entry · D delete entry · G satisfaction · P publish/back to draft · M copy Markdown
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.geometry import Region
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from pulseguard_tui.formatting import local_time
from pulseguard_tui.lifecycle import StopsWorkOnRemoval, run_work

KIND_LABELS = {
    "first_alert": "first alert",
    "public_update": "public update",
    "severity_changed": "severity",
    "false_positive": "false positive",
    "impact_start": "impact start",
    "impact_end": "impact end",
}


def _bullets(items: list[str], empty: str) -> list[tuple[str, str] | str]:
    if not items:
        return [(f"  {empty}\n", "$text-muted")]
    return [f"  • {item}\n" for item in items]


def summary_content(doc: dict[str, Any], hints: bool = True) -> Content:
    """`hints`: name the keys that edit (not for a console that may not edit post-mortems)."""
    pm, impact, inc = doc["postmortem"], doc["impact"], doc["incident"]
    sat = doc.get("satisfaction") or {}
    parts: list[tuple[str, str] | str] = []
    status = pm["status"].upper() if pm["status"] == "published" else "draft"
    parts += [(f"{doc['key']} post-mortem ", "bold"), (status, "bold reverse" if pm["status"] == "published" else "bold")]
    if not pm["stored"]:
        parts.append(("  (preview: the first edit saves it)", "$text-muted"))
    parts.append("\n\n")
    parts.append(("Summary\n", "bold"))
    if pm["summary"]:
        # Every line of a summary of several lines under the first, not at the margin.
        parts.append("".join(f"  {line}\n" for line in pm["summary"].splitlines()))
    else:
        parts.append(("  no summary yet" + (" (S writes one)" if hints else "") + "\n", "$text-muted"))
    parts.append(("Impact\n", "bold"))
    down = impact["downtime_minutes"]
    source = {"manual": "set by hand", "timeline": "from the timeline"}.get(impact["downtime_source"] or "", "")
    parts.append(
        f"  downtime {f'{down:g} min' if down is not None else 'unknown'}"
        f"{f' ({source})' if source else ''} · affected users "
        f"{impact['affected_users'] if impact['affected_users'] is not None else 'unknown'}\n"
    )
    parts.append(f"  financial: {impact['financial_impact'] or '-'} · reputational: {impact['reputational_impact'] or '-'}\n")
    parts.append(f"  satisfaction: customer {sat.get('customer') or '-'}/5, team {sat.get('team') or '-'}/5\n")
    parts.append(("Root cause\n", "bold"))
    if inc.get("root_cause"):
        parts.append(f"  {inc['root_cause']} ({inc.get('root_cause_category') or 'unknown'})\n")
    else:
        parts.append(("  not resolved yet\n", "$text-muted"))
    parts.append(("Timeline", "bold"))
    if hints:
        parts.append(("  (Enter edit · N add · H hide · D delete)", "$text-muted"))
    return Content.assemble(*parts)


def lists_content(doc: dict[str, Any], hints: bool = True) -> Content:
    pm = doc["postmortem"]
    parts: list[tuple[str, str] | str] = []
    for title, items in (
        ("What went well", pm["went_well"]),
        ("What went badly", pm["went_badly"]),
        ("Lessons learned", pm["lessons_learned"]),
    ):
        parts.append((f"{title}\n", "bold"))
        parts += _bullets(items, "nothing yet" + (" (W edits the lists)" if hints else ""))
    parts.append(("Action items\n", "bold"))
    actions = doc["action_items"]
    if not actions:
        parts.append(("  none" + (" (add follow-ups to the incident)" if hints else "") + "\n", "$text-muted"))
    for a in actions:
        state = "x" if a["done"] else " "
        parts.append(f"  [{state}] {a['description']} — {a['owner'] or 'no owner'}, due {a['due_date'] or '-'}")
        if a["ticket_key"]:
            parts.append(f" ({a['ticket_key']})")
        if a["overdue"]:
            parts.append(("  OVERDUE", "bold $error"))
        parts.append("\n")
    return Content.assemble(*parts)


def entry_prompt(e: dict[str, Any]) -> Content:
    parts: list[tuple[str, str] | str] = [(local_time(e["at"]) + "  ", "$text-muted")]
    kind = KIND_LABELS.get(e["kind"], e["kind"])
    parts.append((f"{kind:<14}", "bold" if not e["hidden"] else "strike"))
    parts.append((e["text"], "strike $text-muted") if e["hidden"] else e["text"])
    if e.get("annotation"):
        parts.append((f"  — {e['annotation']}", "italic"))
    if e["hidden"]:
        parts.append(("  [hidden]", "$text-muted"))
    elif e.get("origin") == "person":
        parts.append(("  [added]", "$text-muted"))
    return Content.assemble(*parts)


NOT_HERE = (
    "Post-mortems are not available over this connection: the engine does not serve them. "
    "Open the database directly, or connect to an engine that does."
)


class TimelineList(OptionList):
    """The post-mortem's timeline. It sits in the tab's scroll under the summary: at 80x24 the
    arrow keys moved the highlight below the bottom, and Enter, H and D acted on an entry nobody
    could see. Moved from the keyboard, the tab scrolls to keep it in sight (placed by a reload,
    it does not: the summary stays on top). At its ends the keys go on to what is above and below
    it: Up on the first entry (and Home, g, PageUp to it) brings the summary and impact back into
    view, Down on the last entry the lists under it; neither wraps round. Up or Down with the
    highlighted entry scrolled out of view brings it back first."""

    BINDINGS = [Binding("g", "first", "First", show=False)]

    def _scroll(self) -> VerticalScroll | None:
        scroll = self.parent
        return scroll if isinstance(scroll, VerticalScroll) else None

    def _entry_span(self) -> tuple[VerticalScroll, int, int] | None:
        """The tab's scroll, and the highlighted entry's top and height in it (unscrolled)."""
        scroll = self._scroll()
        index = self.highlighted
        line = self._index_to_line.get(index) if index is not None else None
        if scroll is None or line is None or index is None:
            return None
        top = self.virtual_region.y + (self.content_region.y - self.region.y) + line - int(self.scroll_offset.y)
        return scroll, top, self._heights.get(index, 1)

    def _in_sight(self) -> bool:
        """Whether the highlighted entry is inside the tab's view. From the scroll's offset, set
        at once by the last key, not from what was last drawn: keys come in bursts over SSH."""
        span = self._entry_span()
        if span is None:
            return True
        scroll, top, height = span
        view = int(scroll.scroll_y)
        return view <= top and top + height <= view + scroll.scrollable_content_region.height

    def _keep_in_sight(self) -> None:
        span = self._entry_span()
        if span is not None:
            scroll, top, height = span
            scroll.scroll_to_region(Region(0, top, 1, height), animate=False, immediate=True)

    def _first_index(self) -> int | None:
        return next((i for i, option in enumerate(self.options) if not option.disabled), None)

    def _last_index(self) -> int | None:
        return next((i for i in range(self.option_count - 1, -1, -1) if not self.options[i].disabled), None)

    def _to_top(self) -> None:
        """The summary and impact above the timeline in view (the first entry, as far as it fits)."""
        scroll = self._scroll()
        if scroll is not None:
            scroll.scroll_home(animate=False, immediate=True)

    def _to_bottom(self) -> None:
        """The lists under the timeline in view."""
        scroll = self._scroll()
        if scroll is not None:
            scroll.scroll_end(animate=False, immediate=True)

    def action_cursor_up(self) -> None:
        if self.highlighted is not None and self.highlighted == self._first_index():
            self._to_top()  # not round to the last entry
            return
        if not self._in_sight():  # scrolled away from it: back to it first
            self._keep_in_sight()
            return
        super().action_cursor_up()
        self._keep_in_sight()

    def action_cursor_down(self) -> None:
        if self.highlighted is not None and self.highlighted == self._last_index():
            self._to_bottom()  # not round to the first entry
            return
        if not self._in_sight():
            self._keep_in_sight()
            return
        super().action_cursor_down()
        self._keep_in_sight()

    def action_first(self) -> None:
        super().action_first()
        self._to_top()

    def action_last(self) -> None:
        super().action_last()
        self._keep_in_sight()

    def action_page_up(self) -> None:
        super().action_page_up()
        if self.highlighted == self._first_index():
            self._to_top()
        else:
            self._keep_in_sight()

    def action_page_down(self) -> None:
        super().action_page_down()
        self._keep_in_sight()


class PostmortemView(StopsWorkOnRemoval, Vertical):
    """One incident's post-mortem, editable from the keyboard."""

    DEFAULT_CSS = """
    PostmortemView { height: 1fr; }
    PostmortemView #pm-scroll { height: 1fr; }
    PostmortemView #pm-summary, PostmortemView #pm-lists { height: auto; padding: 0 1; }
    PostmortemView #pm-timeline { height: auto; max-height: 100%; border: none; padding: 0 1; }
    PostmortemView #pm-empty { color: $text-muted; padding: 1 2; }
    """
    BINDINGS = [
        Binding("S", "summary", "Summary", id="postmortem.summary"),
        Binding("W", "lists", "Lists", id="postmortem.lists"),
        Binding("I", "impact", "Impact", id="postmortem.impact"),
        Binding("N", "new_entry", "Add entry", id="postmortem.new_entry"),
        Binding("enter", "edit_entry", "Edit entry", id="postmortem.edit_entry", show=False),
        Binding("H", "hide_entry", "Hide/show", id="postmortem.hide_entry"),
        Binding("D", "delete_entry", "Delete entry", id="postmortem.delete_entry", show=False),
        Binding("G", "rate", "Satisfaction", id="postmortem.rate", show=False),
        Binding("P", "publish", "Publish", id="postmortem.publish"),
        Binding("M", "copy_markdown", "Copy Markdown", id="postmortem.copy", show=False),
    ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Keys that cannot work over this connection (or for this identity): not shown, not run.
        from pulseguard_tui.actions import action_for

        found = action_for("postmortem", action)
        available = getattr(self.app, "action_available", None)
        return found is None or available is None or available(found)

    def __init__(self, *, api: Callable[[], Any] | None = None, id: str | None = None) -> None:
        """`api` returns the EngineAPI to use (default: the app's `api`)."""
        super().__init__(id=id)
        self._api = api
        self.key: str | None = None
        self.doc: dict[str, Any] | None = None
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="pm-scroll"):
            yield Static("select an incident", id="pm-summary")
            yield TimelineList(id="pm-timeline")
            yield Static("", id="pm-lists")

    @property
    def api(self) -> Any:
        from engine.api.local import learning_api

        base = self._api() if self._api else self.app.api  # type: ignore[attr-defined]
        return learning_api(base)

    # --- loading ------------------------------------------------------------------------------

    def show_incident(self, detail: dict[str, Any] | None) -> None:
        """Show the post-mortem of this incident (None: nothing selected); reloads its document."""
        self.key = detail["key"] if detail else None
        if self.key is None:
            self.doc = None
            self.query_one("#pm-summary", Static).update("no incident selected")
            self.query_one("#pm-timeline", OptionList).clear_options()
            self.query_one("#pm-lists", Static).update("")
            return
        feature = getattr(self.app, "feature", None)
        if feature is not None and not feature("postmortems"):
            self.doc = None
            self.query_one("#pm-summary", Static).update(NOT_HERE)
            self.query_one("#pm-timeline", OptionList).clear_options()
            self.query_one("#pm-lists", Static).update("")
            return
        self.reload()

    def reload(self) -> None:
        if self.key is not None:
            run_work(self, partial(self.load, self.key), group="postmortem", exclusive=True)

    async def load(self, key: str) -> None:
        try:
            doc = await self.api.postmortem(key)
        except Exception as exc:  # a vanished incident or database: say so in the tab
            self.error = str(exc)
            self.query_one("#pm-summary", Static).update(f"could not load the post-mortem of {key}: {exc}")
            return
        if key == self.key:
            self.error = None
            self.show_document(doc)

    def show_document(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        hints = self.edit_hints
        self.query_one("#pm-summary", Static).update(summary_content(doc, hints))
        self.query_one("#pm-lists", Static).update(lists_content(doc, hints))
        timeline = self.query_one("#pm-timeline", OptionList)
        keep = timeline.highlighted
        timeline.clear_options()
        entries = doc["timeline"]
        if not entries:
            timeline.add_option(Option("no timeline entries" + (" (N adds one)" if hints else ""), id="none", disabled=True))
            return
        timeline.add_options([Option(entry_prompt(e), id=f"e{i}") for i, e in enumerate(entries)])
        timeline.highlighted = min(keep, len(entries) - 1) if keep is not None else 0

    @property
    def edit_hints(self) -> bool:
        """Whether the tab names the keys that edit: not where they cannot work (a viewer's token,
        an engine that serves post-mortems to read only), as the footer leaves them out."""
        app: Any = self.app
        return bool(getattr(app, "may_write", True)) and (not hasattr(app, "feature") or app.feature("postmortem_edits"))

    def selected_entry(self) -> dict[str, Any] | None:
        if self.doc is None:
            return None
        timeline = self.query_one("#pm-timeline", OptionList)
        if timeline.highlighted is None or not self.doc["timeline"]:
            return None
        return self.doc["timeline"][timeline.highlighted]

    # --- actions ------------------------------------------------------------------------------

    @on(OptionList.OptionSelected, "#pm-timeline")
    async def _entry_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        await self.action_edit_entry()

    async def _may_write(self, edit: bool = True) -> bool:
        """True when an edit may start: from the document of the incident shown, which is loaded
        first when it is still on its way (a key typed as the tab opened, or just after another
        incident was selected: the form started from nothing, or the one shown before). An `edit`
        of a published post-mortem is refused here, before its form is filled in for nothing."""
        app: Any = self.app
        refuse = getattr(app, "refuse_if_readonly", None)
        if refuse is not None and refuse():
            return False
        if self.key is not None and (self.doc is None or self.doc["key"] != self.key):
            await self.load(self.key)
        if self.doc is None or self.doc["key"] != self.key:
            failed = self.error and f"could not load the post-mortem of {self.key}: {self.error}"
            app.notify(failed or "no incident selected", severity="warning")
            return False
        if edit and self.doc["postmortem"]["status"] == "published":
            app.notify(f"the post-mortem of {self.key} is published; unpublish it (P) before you edit it", severity="warning")
            return False
        return True

    def _open(self, screen: Any) -> None:
        self.app.push_screen(screen, self._done)

    def _done(self, message: str | None) -> None:
        if message:
            self.app.notify(message)
            self.reload()

    async def action_summary(self) -> None:
        from pulseguard_tui.widgets.postmortem_forms import SummaryForm

        if await self._may_write():
            self._open(SummaryForm(self.doc))  # type: ignore[arg-type]

    async def action_lists(self) -> None:
        from pulseguard_tui.widgets.postmortem_forms import ListsForm

        if await self._may_write():
            self._open(ListsForm(self.doc))  # type: ignore[arg-type]

    async def action_impact(self) -> None:
        from pulseguard_tui.widgets.postmortem_forms import ImpactForm

        if await self._may_write():
            self._open(ImpactForm(self.doc))  # type: ignore[arg-type]

    async def action_new_entry(self) -> None:
        from pulseguard_tui.widgets.postmortem_forms import EntryForm

        if await self._may_write():
            self._open(EntryForm(self.doc))  # type: ignore[arg-type]

    def _stored_entry(self, doing: str) -> dict[str, Any] | None:
        entry = self.selected_entry()
        if entry is None:
            self.app.notify("no timeline entry selected", severity="warning")
            return None
        if entry["id"] is None:
            # Shown from a recent event, not stored yet: any edit of the post-mortem stores it.
            self.app.notify(f"this entry is new since the last edit; save any change first, then {doing} it", severity="warning")
            return None
        return entry

    async def action_edit_entry(self) -> None:
        from pulseguard_tui.widgets.postmortem_forms import EntryForm

        if await self._may_write() and (entry := self._stored_entry("edit")):
            self._open(EntryForm(self.doc, entry))  # type: ignore[arg-type]

    async def action_delete_entry(self) -> None:
        from pulseguard_tui.widgets.postmortem_forms import RemoveEntryScreen

        if not await self._may_write() or not (entry := self._stored_entry("delete")):
            return
        if entry["origin"] != "person":
            self.app.notify("entries from the incident's timeline can only be hidden (H)", severity="warning")
            return
        self._open(RemoveEntryScreen(self.doc, entry))  # type: ignore[arg-type]

    async def action_hide_entry(self) -> None:
        if not await self._may_write() or not (entry := self._stored_entry("hide")):
            return
        try:
            await self.api.edit_postmortem_entry(self.key, entry["id"], hidden=not entry["hidden"])
        except Exception as exc:
            self.app.notify(str(exc), severity="error")
            return
        self._done(f"entry {'shown' if entry['hidden'] else 'hidden'}")

    async def action_rate(self) -> None:
        from pulseguard_tui.widgets.postmortem_forms import RatingForm

        if await self._may_write():
            self._open(RatingForm(self.doc))  # type: ignore[arg-type]

    async def action_publish(self) -> None:
        from pulseguard_tui.widgets.postmortem_forms import PublishScreen

        if not await self._may_write(edit=False):
            return
        doc: dict[str, Any] = self.doc  # type: ignore[assignment]
        if doc["postmortem"]["status"] != "published":
            # What the engine would refuse, said before the question rather than after the yes.
            status = (doc.get("incident") or {}).get("status")
            if status and status != "resolved":
                self.app.notify(f"{doc['key']} is {status}; resolve it before you publish its post-mortem", severity="warning")
                return
            if not (doc["postmortem"].get("summary") or "").strip():
                self.app.notify(f"the post-mortem of {doc['key']} has no summary yet (S writes one)", severity="warning")
                return
        self._open(PublishScreen(doc))

    async def action_copy_markdown(self) -> None:
        if self.key is None:
            return
        try:
            text = await self.api.postmortem_markdown(self.key)
        except Exception as exc:
            self.app.notify(str(exc), severity="error")
            return
        self.app.copy_to_clipboard(text)
        self.app.notify(f"{self.key} post-mortem copied as Markdown ({len(text.splitlines())} lines)")

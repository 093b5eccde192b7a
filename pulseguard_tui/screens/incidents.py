"""The main screen: the live incident list over the selected incident's detail.

Every workflow key opens a small form (pulseguard_tui.forms.incident, wired in
pulseguard_tui.screens.incident_workflows) that goes through the EngineAPI; the list and the
detail follow the change feed, keeping the selection and scroll.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from functools import partial
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical
from textual.events import DescendantFocus, Resize
from textual.widget import Widget
from textual.widgets import Static, TabbedContent
from textual.worker import Worker, get_current_worker

from pulseguard_tui.filtering import parse_filter
from pulseguard_tui.lifecycle import is_live, run_work
from pulseguard_tui.screens.base import bindings_for
from pulseguard_tui.screens.incident_workflows import IncidentWorkflows
from pulseguard_tui.widgets.correlation import CorrelationView, gather
from pulseguard_tui.widgets.detail import TABS, DetailPane
from pulseguard_tui.widgets.incident_table import IncidentTable
from pulseguard_tui.widgets.inputs import Input
from pulseguard_tui.widgets.status_line import engine_lost

WIDE = 150  # columns from which list and detail sit side by side
# Incidents whose detail as last read is kept, to show (marked as not current) while the engine
# or the database cannot be read: blanking an incident just viewed hid it when it mattered most.
KNOWN_DETAILS = 50


class IncidentsScreen(IncidentWorkflows):
    screen_title = "Incidents"
    scope = "incidents"

    DEFAULT_CSS = """
    IncidentsScreen #filter-bar { height: auto; display: none; }
    IncidentsScreen #filter-bar.-shown { display: block; }
    IncidentsScreen #filter-row { height: 1; }
    IncidentsScreen #filter { height: 1; border: none; width: 1fr; }
    IncidentsScreen #filter-count { width: auto; height: 1; padding: 0 1; background: $accent 30%; text-style: bold; }
    IncidentsScreen #filter-error { color: $error; height: auto; display: none; }
    IncidentsScreen #filter-error.-shown { display: block; }
    IncidentsScreen #list-info { height: 1; color: $text-muted; background: $panel; padding: 0 1; }
    IncidentsScreen #main { layout: vertical; height: 1fr; }
    IncidentsScreen #list-box { height: 40%; min-height: 5; }
    IncidentsScreen #incidents { height: 1fr; }
    IncidentsScreen #detail { height: 1fr; border-top: solid $panel; }
    IncidentsScreen.-zoomed #list-box { height: 5; min-height: 3; }
    IncidentsScreen.-wide #main { layout: horizontal; }
    IncidentsScreen.-wide #list-box { height: 1fr; width: 58%; }
    IncidentsScreen.-wide #detail { width: 1fr; height: 1fr; border-top: none; border-left: solid $panel; }
    IncidentsScreen.-wide.-zoomed #list-box { width: 40%; }
    """

    BINDINGS = [
        *bindings_for("incidents"),
        *(Binding(str(i + 1), f"tab({i})", t.title(), show=False) for i, t in enumerate(TABS)),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter_text = ""
        self.show_resolved = False
        self.filters: dict[str, Any] = {}
        self._dirty = False
        self._refreshing = False
        self._select_key: str | None = None  # the next reload selects this incident
        self._detail_wanted: str | None = None
        self._detail_loading = False
        self._detail_dirty = False
        self._detail_force = False
        self._detail_worker: Worker[None] | None = None
        self._known: OrderedDict[str, tuple[dict[str, Any], datetime]] = OrderedDict()
        self._typing_filter = False  # "/" opened the filter: keys read by the list go into it

    # --- layout --------------------------------------------------------------------------------

    def compose_body(self) -> ComposeResult:
        app: Any = self.app
        with Vertical(id="filter-bar"):
            with Horizontal(id="filter-row"):
                # Disabled while hidden: a hidden field must never take focus (and keys) back.
                yield Input(
                    placeholder="sev: status: svc: tag: @user or words · Enter keeps, Esc clears",
                    id="filter",
                    compact=True,
                    disabled=True,
                )
                yield Static("", id="filter-count", markup=False)
            yield Static("", id="filter-error")
        with Container(id="main"):
            with Vertical(id="list-box"):
                yield IncidentTable(self._load_page, app.now, id="incidents")
                yield Static("", id="list-info")
            yield DetailPane(app.now, id="detail")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(IncidentTable).focus()
        self._update_info()
        self.request_refresh()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if is_live(self):  # back from another screen: the ages as of now, not as of the next tick
            self.tick()
        self.call_after_refresh(self._focus_list_after_modal)

    def _focus_list_after_modal(self) -> None:
        """After any modal the keys belong to the list again: Textual gives focus back to what had
        it before (the filter field, say), or, when that was lost meanwhile, to the first focusable
        widget. Only the Post-mortem tab's list keeps it (its keys are its own)."""
        if self.app.screen is not self:
            return
        focused = self.focused
        if focused is not None and focused.id == "pm-timeline" and focused.display and focused.is_on_screen:
            return
        if focused is not self.table:
            self.table.focus()

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width >= WIDE, "-wide")

    # --- data ----------------------------------------------------------------------------------

    async def _load_page(self, offset: int, limit: int, focus_key: str | None) -> dict[str, Any]:
        app: Any = self.app
        return await app.api.incident_page(self.filters, offset, limit, focus_key)

    def request_refresh(self, detail: bool = False) -> None:
        """Reload the list (and the detail) soon; calls arriving meanwhile fold into one."""
        self._dirty = True
        self._detail_dirty = self._detail_dirty or detail
        if not self._refreshing:
            self._refreshing = True
            run_work(self, self._refresh_loop, group="refresh", exit_on_error=False)

    async def _refresh_loop(self) -> None:
        app: Any = self.app
        await app.ready.wait()
        try:
            while self._dirty:
                self._dirty = False
                select = self._select_key
                try:
                    await self.table.reload(keep_key=select)
                except Exception as exc:  # the database went away: say so, keep what is shown
                    self.notify(f"could not load incidents: {exc}", severity="error")
                    break
                if select is not None and self._select_key == select:
                    self._select_key = None
                if self._detail_dirty:
                    self._detail_dirty = False
                    self.load_detail(self.table.selected_key, force=True)
        finally:
            self._refreshing = False
            app.list_loaded.set()
        self._update_info()

    def _update_info(self) -> None:
        app: Any = self.app
        if not app.ready.is_set():
            self.query_one("#list-info", Static).update(app.starting_text)
            return
        table = self.table
        parts = [f"{table.total} incident{'s' if table.total != 1 else ''}"]
        parts.append("incl. resolved" if self.show_resolved or self.filters.get("include_resolved") else "open")
        matches = ""
        if self.filter_text.strip():
            parts.append(f"filter: {self.filter_text.strip()}")
            matches = f"{table.total} match{'es' if table.total != 1 else ''} · Esc clears"
        self.query_one("#filter-count", Static).update(matches)
        if table.total:
            parts.append(f"row {table.cursor + 1}")
        if app.readonly:
            parts.append("READ-ONLY")
        self.query_one("#list-info", Static).update(" · ".join(parts))

    def load_detail(self, key: str | None, force: bool = False) -> None:
        if key is None:
            self._detail_wanted = None
            self.detail.show(None)
            return
        if key == self._detail_wanted and not force and self.detail.detail and self.detail.detail["key"] == key:
            return
        self._detail_wanted = key
        self._detail_force = force
        app: Any = self.app
        cut_off = engine_lost(app.engine_state)
        if cut_off and not force:
            # The header says the engine (or database) cannot be read: what is known, at once,
            # rather than a request a stopped engine holds for 15 s; read when it answers (engine_back).
            self._show_known(key, cut_off)
            return
        if not self._detail_loading:
            self._start_detail_loop()

    def _start_detail_loop(self) -> None:
        self._detail_loading = True
        self._detail_worker = run_work(self, self._detail_loop, group="detail", exit_on_error=False)

    async def _detail_loop(self) -> None:
        app: Any = self.app
        loaded: str | None = None
        try:
            while self._detail_wanted is not None and (self._detail_wanted != loaded or self._detail_force):
                key = self._detail_wanted
                force, self._detail_force = self._detail_force, False
                cut_off = engine_lost(app.engine_state)
                if cut_off and not force:  # found lost while the previous request was out
                    self._show_known(key, cut_off)
                    loaded = key
                    continue
                try:
                    data = await app.api.incident_detail(key)
                except Exception as exc:  # deleted meanwhile, or the engine or database is away
                    if key == self._detail_wanted:
                        self._show_known(key, engine_lost(app.engine_state) or str(exc))
                    loaded = key
                    continue
                loaded = key
                self._known.pop(key, None)
                self._known[key] = (data, app.now())
                while len(self._known) > KNOWN_DETAILS:
                    self._known.popitem(last=False)
                if key == self._detail_wanted:
                    self.detail.show(data)
                    if self.detail.active_tab == "correlation":
                        run_work(self, partial(self._load_correlation, data), group="correlation", exclusive=True, exit_on_error=False)
        finally:
            if get_current_worker() is self._detail_worker:  # not a loop replaced by engine_back
                self._detail_loading = False

    def _show_known(self, key: str, why: str) -> None:
        """`key`'s detail as last read, marked as not current; never read here, the list's row
        (never "no incident selected" with a row selected)."""
        known = self._known.get(key)
        if known is not None:
            self.detail.show(known[0], not_current=(why, known[1]))
            return
        row = self.table.selected if self.table.selected_key == key else None
        self.detail.show(dict(row) if row is not None else None, not_current=(why, None))

    def capabilities_loaded(self) -> None:
        """What this console may do is known: the detail names only keys that work here."""
        if self.detail.detail is not None:
            self.detail.show(self.detail.detail, not_current=self.detail.not_current)

    def refresh_status(self) -> None:
        super().refresh_status()
        app: Any = self.app
        cut_off = engine_lost(app.engine_state)
        key = self.table.selected_key
        if cut_off and key is not None and self.detail.not_current is None:
            # Found lost: the detail on screen is as of its last read, and may be of the row
            # selected before a request the stopped engine still holds.
            self._show_known(key, cut_off)

    def engine_back(self) -> None:
        """The engine (or the database) answers again: the list and the detail are read at once,
        not when the change feed reconnects (up to 10 s later). A detail request a hung engine
        still holds is given up for a fresh one."""
        if self._detail_loading:
            self.workers.cancel_group(self, "detail")
            self._detail_wanted = self.table.selected_key
            if self._detail_wanted is not None:
                self._detail_force = True
                self._start_detail_loop()
        self.request_refresh(detail=True)

    async def _load_correlation(self, data: dict[str, Any]) -> None:
        app: Any = self.app
        view = self.query_one(CorrelationView)
        try:
            result = await gather(app.api, data)
        except Exception as exc:
            self.query_one("#corr-summary", Static).update(f"could not load correlation: {exc}")
            return
        await view.show(result)

    @on(TabbedContent.TabActivated)
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-correlation" and self.detail.detail is not None:
            run_work(self, partial(self._load_correlation, self.detail.detail), group="correlation", exclusive=True, exit_on_error=False)
        elif event.pane.id == "tab-postmortem":
            self._focus_postmortem()

    def _focus_postmortem(self) -> None:
        """The Post-mortem tab's keys (S, W, N, …) belong to it: it takes the focus, Esc gives it
        back. At once, as its key is handled: over SSH "7SPool too small" comes in one burst,
        and the keys after the 7 were the list's ("o" opened the reopen form)."""
        if self.detail.active_tab == "postmortem":
            self.detail.show_postmortem()
            for timeline in self.query("#pm-timeline"):
                self.set_focus(timeline)

    async def run_widget_action(self, scope: str, action: str) -> None:
        """Run a widget's action from the palette: show the widget's tab, then act."""
        if scope == "postmortem":
            self.detail.show_tab("postmortem")
            self.detail.show_postmortem()
            view = self.detail.postmortem
            if view.key is not None and (view.doc is None or view.doc["key"] != view.key):
                await view.load(view.key)  # the forms need the document
            await view.run_action(action)

    @on(IncidentTable.Highlighted)
    def _highlighted(self, event: IncidentTable.Highlighted) -> None:
        self.load_detail(event.row["key"] if event.row else None)
        self._update_info()

    @on(IncidentTable.Reloaded)
    def _reloaded(self) -> None:
        self._update_info()

    @on(IncidentTable.Left)
    def _selected_left(self, event: IncidentTable.Left) -> None:
        """The incident being worked on left the list (the engine resolved it, another console
        merged it): say so and where the selection went, so the next key does not act on
        another incident unawares."""
        run_work(self, partial(self._say_left, event.key, event.now), group="left", exit_on_error=False)

    async def _say_left(self, key: str, now: str | None) -> None:
        app: Any = self.app
        why = "left the list"
        try:
            gone = await app.api.incident_detail(key)
        except Exception:  # deleted, or the engine is away: the move itself is still worth saying
            gone = None
        if gone is not None:
            if gone.get("merged_into"):
                why = f"was merged into INC-{gone['merged_into']}"
            elif gone.get("status") == "resolved":
                if gone.get("resolved_by") == getattr(app.api, "actor", None):
                    return  # resolved here: the form said so
                why = f"was resolved by {gone.get('resolved_by') or '?'}"
            else:
                return  # still open: the filter typed here left it out, as asked
        self.notify(f"{key} {why}; " + (f"{now} is selected now" if now else "no incident is selected"), severity="warning")

    async def on_feed(self, events: list[dict[str, Any]]) -> None:
        keys = {e.get("incident") for e in events if e.get("incident")}
        if not keys and not any(e.get("kind", "").startswith(("created", "maintenance")) for e in events):
            return
        selected = self.table.selected_key
        self.request_refresh(detail=selected in keys)

    def tick(self) -> None:
        """Ages and countdowns move on with the clock."""
        self.table.refresh_ages()
        self.detail.refresh_header(if_changed=True)

    # --- filter --------------------------------------------------------------------------------

    def _show_filter_bar(self, shown: bool) -> None:
        self.query_one("#filter-bar").set_class(shown, "-shown")
        self.query_one("#filter", Input).disabled = not shown

    def action_filter(self) -> None:
        self._show_filter_bar(True)
        self._typing_filter = True
        self.query_one("#filter", Input).focus()

    def typing_into(self) -> Widget | None:
        return self.query_one("#filter", Input) if self._typing_filter else None

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        if event.widget.id != "filter":  # Enter, Esc or a form: keys act on the list again
            self._typing_filter = False

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.apply_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.table.focus()
        if not event.value.strip():
            self._show_filter_bar(False)

    def apply_filter(self, text: str) -> None:
        self.filter_text = text
        parsed = parse_filter(text, include_resolved=self.show_resolved)
        error = self.query_one("#filter-error", Static)
        error.update("; ".join(parsed.errors))
        error.set_class(bool(parsed.errors), "-shown")
        narrowed = any(k != "include_resolved" for k in parsed.filters)
        self.table.empty_text = (
            "no incidents match the filter" if narrowed else "no incidents" if self.show_resolved else "no open incidents"
        )
        if parsed.filters != self.filters:
            self.filters = parsed.filters
            self.request_refresh()
        else:
            self._update_info()

    def action_toggle_resolved(self) -> None:
        self.show_resolved = not self.show_resolved
        self.apply_filter(self.filter_text)
        self.notify("showing resolved incidents too" if self.show_resolved else "showing open incidents only")

    def action_refresh(self) -> None:
        self.request_refresh(detail=True)

    def action_back(self) -> None:
        filter_input = self.query_one("#filter", Input)
        if self.query_one("#filter-bar").has_class("-shown"):
            filter_input.value = ""
            self.apply_filter("")
            self._show_filter_bar(False)
            self._typing_filter = False
            self.table.focus()
        elif self.has_class("-zoomed"):
            self.remove_class("-zoomed")
            self.table.focus()
        elif self.focused is not self.table:
            self.table.focus()

    def action_zoom(self) -> None:
        self.toggle_class("-zoomed")

    def action_tab(self, index: int) -> None:
        self.detail.show_tab(TABS[index])
        self._focus_postmortem()

    def action_next_tab(self) -> None:
        self.detail.step_tab(1)
        self._focus_postmortem()

    def action_prev_tab(self) -> None:
        self.detail.step_tab(-1)
        self._focus_postmortem()

    def select(self, key: str) -> None:
        """Reload the list and select `key` (a new incident). It goes through the one refresh
        loop, so a reload the feed asks for meanwhile cannot put the old selection back."""
        self._select_key = key
        self.request_refresh(detail=True)

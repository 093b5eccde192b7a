"""The selected incident: a header and tabs (Timeline, Comments, Updates, Evidence,
Correlation, Resolution, Post-mortem). Refreshing keeps the active tab, scroll positions and
the highlighted comment."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from pulseguard_tui.formatting import ago, clip, countdown, followup_group_label, local_range, local_time, parse_iso, severity_label
from pulseguard_tui.widgets.correlation import CorrelationView
from pulseguard_tui.widgets.postmortem import PostmortemView
from pulseguard_tui.widgets.status_line import engine_lost

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Text:
    """A tiny builder of Textual Content, whose styles may name theme variables ($sev-high)."""

    def __init__(self, text: str = "", style: str = "", **_: Any) -> None:
        self.parts: list[str | tuple[str, str]] = []
        if text:
            self.append(text, style)

    def append(self, text: str, style: str = "") -> None:
        self.parts.append((text, style) if style else text)

    def rstrip(self) -> None:
        while self.parts:
            last = self.parts[-1]
            text, style = (last, "") if isinstance(last, str) else last
            if text.endswith("\n"):
                text = text.rstrip("\n")
                self.parts[-1] = (text, style) if style else text
            break

    def content(self) -> Content:
        return Content.assemble(*self.parts)


TABS = ("timeline", "comments", "updates", "evidence", "correlation", "resolution", "postmortem")
TAB_TITLES = ("Timeline", "Comments", "Updates", "Evidence", "Correlation", "Resolution", "Post-mortem")
# Where the tab titles do not fit (the side-by-side layout), tabs lose their right padding
# and these titles are shortened, so that no tab hides behind the pane's edge.
SHORT_TITLES = {"correlation": "Correl."}


def header_text(d: dict[str, Any], now: datetime, *, cut_off: str | None = None) -> Content:
    """Three lines: what, who/where, when (with escalation or acknowledgement). `cut_off` (why
    a remote console cannot read its engine: "offline") replaces the escalation's
    countdown, which only the engine drives: the step's due time is shown, not counted down. A
    step the engine holds (inhibited, silenced) is named, not counted down (`held_text`)."""
    sev = d["severity"]
    t = Text()
    t.append(f"{d['key']} ", style="bold")
    t.append(f"{severity_label(sev)} ", style=f"bold $sev-{sev}")
    t.append(d["status"].upper() if d["status"] == "triggered" else d["status"], style="bold")
    if d.get("false_positive"):
        t.append("  [false positive]", style="bold")
    t.append(f"  {d['title']}\n")
    services = ", ".join(d.get("services") or []) or "-"
    tags = ", ".join(d.get("tags") or []) or "-"
    t.append(
        f"assignee {d.get('assignee') or '-'} · services {services} · tags {tags} · source {d.get('source', '-')}\n", style="$text-muted"
    )
    when = [f"opened {ago(d['created_at'], now)}"]
    if d.get("created_by"):
        when[-1] += f" by {d['created_by']}"
    if d.get("resolved_at"):
        when.append(f"resolved by {d.get('resolved_by')} {ago(d['resolved_at'], now)}")
    elif d.get("acknowledged_at"):
        when.append(f"acknowledged by {d.get('acknowledged_by')} {ago(d['acknowledged_at'], now)}")
    else:
        esc = d.get("escalation") or {}
        due = esc.get("next_at") if isinstance(esc, dict) else None
        left = countdown(due, now)
        snoozed = esc.get("snoozed_until") if isinstance(esc, dict) else None
        held = esc.get("held") if isinstance(esc, dict) else None
        if snoozed and countdown(snoozed, now):  # `z`: nobody is paged until then
            when.append(f"not acknowledged · paging snoozed until {local_time(snoozed, now=now)}")
        elif isinstance(held, dict) and held:  # its `next_at` is a re-check, not a page
            when.append(held_text(held, now))
        elif cut_off and due:
            when.append(f"escalation unknown ({cut_off}; {'due' if left else 'was due'} {local_time(due, now=now)})")
        else:
            when.append(f"escalates in {left}" if left else "not acknowledged")
    if (d.get("firing_count") or 1) > 1:
        when.append(f"{d['firing_count']} firings, last {ago(d.get('last_seen_at') or d['created_at'], now)}")
    if d.get("merged_into"):
        when.append(f"merged into INC-{d['merged_into']}")
    t.append(" · ".join(when))
    return t.content()


def held_text(held: dict[str, Any], now: datetime) -> str:
    """An escalation step the engine holds (engine/escalation/holds.py: `held` in its state, with
    `reason`, `by` and `until`): who or what holds it, never a countdown, since at `until` the
    engine only looks again (an inhibition is re-checked every few minutes and may be extended).
    Short: it shares the header's last line at 80 columns."""
    reason = str(held.get("reason") or "")
    by = str(held.get("by") or "")
    until = held.get("until")
    if reason == "inhibited":  # by a critical incident open on the same service; no known end
        what = f"inhibited by {by}" if by else "inhibited"
    elif reason == "silenced":  # the silence's end is known
        what = f"silenced by {by}" if by else "silenced"
        if until and countdown(until, now):
            what += f" until {local_time(until, now=now)}"
    elif reason == "snoozed":  # a snooze over, not yet re-checked
        what = f"snoozed by {by}" if by else "snoozed"
    elif reason == "maintenance":
        what = f"under maintenance ({by})" if by else "under maintenance"
    else:
        what = " ".join(p for p in (reason or "held", f"by {by}" if by else "") if p)
    return f"page held: {what}"


def not_current_text(why: str, read_at: datetime | None, now: datetime) -> Content:
    """The header's first line while what is shown could not be read afresh (the engine or the
    database away): how old it is, or that only the list's row is known, and why."""
    what = f"NOT CURRENT · read {ago(read_at, now)}" if read_at is not None else "NOT LOADED · the list's row only"
    return Content.assemble((what, "bold $error"), (f" · could not refresh: {clip(why, 48)}", "$text-muted"))


def timeline_text(d: dict[str, Any]) -> Content:
    t = Text()
    # Newest first by time (a backfilled event may carry an earlier time than its id says).
    events = sorted(d.get("timeline") or [], key=lambda e: (parse_iso(e["at"]) or EPOCH, e["id"]), reverse=True)
    description = (d.get("description") or "").strip()
    if description:
        lines = [line for line in description.splitlines() if line.strip()]
        for line in lines[:3]:
            t.append(f"{line}\n", style="italic $text-muted")
        if len(lines) > 3:
            t.append(f"… {len(lines) - 3} more lines (pulseguard incident show {d['key']})\n", style="$text-muted")
    if not events:
        t.append("no events", style="$text-muted")
        return t.content()
    for e in events:
        t.append(local_time(e["at"]) + "  ", style="$text-muted")
        t.append(f"{e['actor']}", style="bold")
        t.append(f"  {e['kind']}  ", style="$text-muted")
        t.append(f"{e['summary']}\n")
    t.rstrip()
    return t.content()


def updates_text(d: dict[str, Any], hints: bool = True) -> Content:
    """`hints`: name the keys that add to an empty tab (not for a console that may not write)."""
    rows = list(reversed(d.get("updates") or []))
    if not rows:
        return Text("no status updates yet" + (" (u posts one)" if hints else ""), style="$text-muted").content()
    t = Text()
    for u in rows:
        # A back-filled update shows when it was said to happen.
        t.append(local_time(u.get("stated_at") or u["created_at"]) + (" (stated)  " if u.get("stated_at") else "  "), style="$text-muted")
        t.append("PUBLIC " if u["public"] else "internal ", style="bold" if u["public"] else "dim")
        t.append(f"{u['status']}  {u['author']}: ", style="bold")
        t.append(f"{u['message']}\n")
    t.rstrip()
    return t.content()


def evidence_text(d: dict[str, Any], hints: bool = True) -> Content:
    rows = d.get("evidence") or []
    if not rows:
        return Text("no evidence yet" + (" (e attaches some)" if hints else ""), style="$text-muted").content()
    t = Text()
    for e in rows:
        t.append(f"#{e['id']} {e['kind']}", style="bold")
        t.append(f"  {local_time(e['created_at'])} {e['added_by']}\n", style="$text-muted")
        if e.get("description"):
            t.append(f"  {e['description']}\n")
        if e.get("url") or e.get("path"):
            t.append(f"  {e.get('url') or e.get('path')}\n")
        if e.get("range_from"):
            t.append(f"  {local_range(e['range_from'], e['range_to'])}\n", style="$text-muted")
        content = e.get("content") or ""
        if content and not content.startswith("base64:"):
            lines = content.splitlines()
            for line in lines[:6]:
                t.append(f"  │ {line[:200]}\n", style="$text-muted")
            if len(lines) > 6:
                t.append(f"  │ … {len(lines) - 6} more lines\n", style="$text-muted")
    t.rstrip()
    return t.content()


def resolution_text(d: dict[str, Any], hints: bool = True) -> Content:
    t = Text()
    if d.get("root_cause"):
        t.append("Root cause  ", style="bold")
        t.append(f"{d['root_cause']} ({d.get('root_cause_category') or 'unknown'})\n")
        t.append("Solution    ", style="bold")
        t.append(f"{d.get('solution') or '-'}\n")
        steps = d.get("verification_steps") or []
        if steps:
            t.append("Verification\n", style="bold")
            for i, s in enumerate(steps, 1):
                t.append(f"  [{'x' if s.get('done') else ' '}] {i}. {s.get('step')}\n")
        if d.get("resolved_at"):
            t.append(f"Resolved {local_time(d['resolved_at'])} by {d.get('resolved_by')}\n", style="$text-muted")
    else:
        t.append("not resolved yet" + (" (r resolves with root cause and solution)" if hints else "") + "\n", style="$text-muted")
    if d.get("false_positive"):
        t.append("Marked as a false positive\n", style="bold")
    followups = d.get("followups") or []
    if not followups:
        t.append("no follow-ups yet" + (" (F adds one)" if hints else "") + "\n", style="$text-muted")
    else:
        t.append("Follow-ups", style="bold")
        t.append("  (d marks one done)\n" if hints else "\n", style="$text-muted")
        for f in followups:
            t.append(
                f"  [{'x' if f.get('done') else ' '}] {followup_group_label(f['group'])}: {f['description']}"
                f" ({f.get('owner') or 'no owner'}, due {f.get('due_date') or '-'})\n"
            )
    t.rstrip()
    return t.content()


def published_as(c: dict[str, Any], d: dict[str, Any]) -> dict[str, Any] | None:
    """The public status update an internal comment was published as (`P`), if it was: the
    engine's own test, the first public update of the incident with the comment's text."""
    if not c.get("internal_only"):
        return None
    return next((u for u in d.get("updates") or [] if u.get("public") and u.get("message") == c["content"]), None)


def comment_prompt(c: dict[str, Any], published: dict[str, Any] | None = None) -> Content:
    t = Text()
    t.append(local_time(c.get("stated_at") or c["created_at"]) + (" (stated) " if c.get("stated_at") else " "), style="$text-muted")
    if published is not None:  # its text is public now: "[internal]" would say it is not
        t.append(f"[→ public update {local_time(published.get('stated_at') or published['created_at'])}] ", style="bold")
    elif c["internal_only"]:
        t.append("[internal] ", style="bold reverse")
    # An integration writing for someone: the person, and the token that vouched for it.
    who = f"{c['on_behalf_of']} via {c['author']}" if c.get("on_behalf_of") else c["author"]
    t.append(f"{who}: ", style="bold")
    t.append(c["content"])
    return t.content()


class DetailPane(Vertical):
    """Header plus tabs for one incident."""

    DEFAULT_CSS = """
    DetailPane { height: 1fr; }
    DetailPane > #detail-header { height: auto; max-height: 4; padding: 0 1; background: $panel; }
    DetailPane TabbedContent { height: 1fr; }
    DetailPane TabPane { padding: 0 1; height: 1fr; }
    DetailPane VerticalScroll { height: 1fr; }
    DetailPane OptionList { height: 1fr; border: none; padding: 0; }
    DetailPane #detail-empty { color: $text-muted; padding: 1 2; }
    DetailPane.-narrow-tabs Tab { padding: 0 0 0 1; }
    """

    def __init__(self, now: Callable[[], datetime], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._now = now
        self.detail: dict[str, Any] | None = None
        # The post-mortem document costs a few queries: it loads only while its tab is shown.
        self._postmortem_stale = True
        self._underline_stale = False
        self._header_plain = ""  # the header's text as last drawn
        # While what is shown could not be read afresh: why, and when it was read (None: only
        # the list's row is known). The header says so on its last line.
        self.not_current: tuple[str, datetime | None] | None = None

    def compose(self) -> ComposeResult:
        yield Static("select an incident", id="detail-header")
        with TabbedContent(*TAB_TITLES, id="detail-tabs"):
            with TabPane("Timeline", id="tab-timeline"):
                with VerticalScroll(id="scroll-timeline"):
                    yield Static("", id="timeline-body")
            with TabPane("Comments", id="tab-comments"):
                yield OptionList(id="comments-list")
            with TabPane("Updates", id="tab-updates"):
                with VerticalScroll(id="scroll-updates"):
                    yield Static("", id="updates-body")
            with TabPane("Evidence", id="tab-evidence"):
                with VerticalScroll(id="scroll-evidence"):
                    yield Static("", id="evidence-body")
            with TabPane("Correlation", id="tab-correlation"):
                yield CorrelationView(id="correlation")
            with TabPane("Resolution", id="tab-resolution"):
                with VerticalScroll(id="scroll-resolution"):
                    yield Static("", id="resolution-body")
            with TabPane("Post-mortem", id="tab-postmortem"):
                yield PostmortemView(id="postmortem")

    def on_resize(self) -> None:
        width = self.size.width
        narrow = width < sum(len(t) + 2 for t in TAB_TITLES)
        if self.has_class("-narrow-tabs") != narrow:
            self._underline_stale = True
        self.set_class(narrow, "-narrow-tabs")
        short = narrow and width < sum(len(t) + 1 for t in TAB_TITLES)
        found = self.query(TabbedContent)
        if not found:  # resized before its children are mounted (or after they are gone)
            return
        tabs = found.first()
        for name, title in zip(TABS, TAB_TITLES):
            if name in SHORT_TITLES:
                tab = tabs.get_tab(f"tab-{name}")
                label = SHORT_TITLES[name] if short else title
                if tab.label_text != label:
                    tab.label = label  # a relabel moves the underline
        if self._underline_stale and tabs.active:
            # Tabs move their underline on a relabel, not when a class changes their padding:
            # relabel the active tab, once the new padding is laid out, so the underline follows.
            self._underline_stale = False
            self.call_after_refresh(self._relabel_active_tab)

    def _relabel_active_tab(self, tries: int = 40) -> None:
        found = self.query(TabbedContent)
        if not found or not found.first().active:
            return
        tab = found.first().get_tab(found.first().active)
        if tab.virtual_region.width != tab.label.cell_length + tab.styles.gutter.width and tries:
            self.set_timer(0.05, lambda: self._relabel_active_tab(tries - 1))  # not laid out yet
            return
        tab.label = tab.label

    @property
    def active_tab(self) -> str:
        active = self.query_one(TabbedContent).active or "tab-timeline"
        return active.removeprefix("tab-")

    def show_tab(self, name: str) -> None:
        self.query_one(TabbedContent).active = f"tab-{name}"

    def step_tab(self, delta: int) -> None:
        index = TABS.index(self.active_tab) if self.active_tab in TABS else 0
        self.show_tab(TABS[(index + delta) % len(TABS)])

    @property
    def postmortem(self) -> PostmortemView:
        return self.query_one(PostmortemView)

    def show(self, detail: dict[str, Any] | None, *, not_current: tuple[str, datetime | None] | None = None) -> None:
        """Show `detail` (None: nothing selected), keeping tab, scroll and comment highlight.
        The screen calls this again when the feed reports a change to the incident, which
        reloads its post-mortem as well. `not_current` (why, when read) marks a detail that
        could not be read afresh: the last one read, or with no read time the list's row alone."""
        if detail is not None and (self.detail or {}).get("key") != detail.get("key"):
            # Another incident opens at the top of each tab (it opened mid-way, where the last one was scrolled to).
            for scroll in self.query(VerticalScroll):
                scroll.scroll_home(animate=False, immediate=True)
        self.detail = detail
        self.not_current = not_current if detail is not None else None
        self._postmortem_stale = True
        if self.active_tab == "postmortem":
            self.show_postmortem()
        header = self.query_one("#detail-header", Static)
        if detail is None:
            header.update("no incident selected")
            for body in ("#timeline-body", "#updates-body", "#evidence-body", "#resolution-body"):
                self.query_one(body, Static).update("")
            self.query_one("#comments-list", OptionList).clear_options()
            return
        self.refresh_header()
        if not_current is not None and not_current[1] is None:  # a list row: nothing more is known
            missing = Text(f"not loaded: {not_current[0]}", style="$text-muted").content()
            for body in ("#timeline-body", "#updates-body", "#evidence-body", "#resolution-body"):
                self.query_one(body, Static).update(missing)
            comments = self.query_one("#comments-list", OptionList)
            comments.clear_options()
            comments.add_option(Option(missing, id="none", disabled=True))
            return
        self.query_one("#timeline-body", Static).update(timeline_text(detail))
        hints = self.write_hints
        self.query_one("#updates-body", Static).update(updates_text(detail, hints))
        self.query_one("#evidence-body", Static).update(evidence_text(detail, hints))
        self.query_one("#resolution-body", Static).update(resolution_text(detail, hints))
        self._fill_comments(detail)

    @property
    def write_hints(self) -> bool:
        """Whether an empty tab names the key that adds to it: not where this console's identity
        may change nothing (a viewer's token), whose keys do not work."""
        return bool(getattr(self.app, "may_write", True))

    def show_postmortem(self) -> None:
        """Load the shown incident's post-mortem into its tab (if not loaded since the last show)."""
        if self._postmortem_stale:
            self._postmortem_stale = False
            self.postmortem.show_incident(self.detail)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-postmortem":
            self.show_postmortem()

    def refresh_header(self, *, if_changed: bool = False) -> None:
        """Redraw the header; with `if_changed` (the clock's tick) only when its text reads
        differently now (an age of minutes changes once a minute; a countdown every second; the
        escalation line when a remote console loses or finds its engine, which the header line
        learns every few seconds)."""
        if self.detail is None:
            return
        now = self._now()
        content = header_text(self.detail, now, cut_off=engine_lost(getattr(self.app, "engine_state", None) or {}))
        if self.not_current is not None:  # on top: the header's last lines are cut at its height
            content = Content.assemble(not_current_text(*self.not_current, now), "\n", content)
        if if_changed and content.plain == self._header_plain:
            return
        self._header_plain = content.plain
        self.query_one("#detail-header", Static).update(content)

    def _fill_comments(self, detail: dict[str, Any]) -> None:
        comments = self.query_one("#comments-list", OptionList)
        keep = None
        if comments.highlighted is not None and comments.option_count and comments.highlighted > 0:
            keep = comments.get_option_at_index(comments.highlighted).id
        rows = list(reversed(detail.get("comments") or []))
        comments.clear_options()
        if not rows:
            empty = "no comments yet" + (" (c adds one)" if self.write_hints else "")
            comments.add_option(Option(Text(empty, style="$text-muted").content(), id="none", disabled=True))
            return
        comments.add_options([Option(comment_prompt(c, published_as(c, detail)), id=str(c["id"])) for c in rows])
        ids = [str(c["id"]) for c in rows]
        # A comment picked further down stays picked; the newest, at the top, gives way to a newer
        # one (P then takes the comment just written, not the one it already published).
        comments.highlighted = ids.index(keep) if keep in ids else 0

    def selected_comment(self) -> dict[str, Any] | None:
        """The highlighted comment in the Comments tab."""
        if self.detail is None:
            return None
        comments = self.query_one("#comments-list", OptionList)
        if comments.highlighted is None or not comments.option_count:
            return None
        option_id = comments.get_option_at_index(comments.highlighted).id
        return next((c for c in self.detail.get("comments") or [] if str(c["id"]) == option_id), None)

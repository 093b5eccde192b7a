"""The live incident list: a virtualised table that holds only the rows near the viewport.

Rows come a page at a time from a loader (the screen asks the engine for one window of the
sorted, filtered list), so 100,000 incidents cost what 100 do. A reload keeps the scroll
position and follows the selected incident to wherever it now sits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from pulseguard_tui.formatting import age, clip, severity_label
from pulseguard_tui.lifecycle import StopsWorkOnRemoval, run_work

Loader = Callable[[int, int, "str | None"], Awaitable[dict[str, Any]]]

STATUS_NARROW = {
    "triggered": "TRIG",
    "investigating": "invest",
    "identified": "ident",
    "monitoring": "monitr",
    "resolved": "rslvd",
}


TITLE_ROOM = 36  # cells the title keeps before optional columns are shown beside it


def title_text(row: dict[str, Any]) -> str:
    """The title cell: marked when merged away, a false positive, or grouping several firings."""
    marks = []
    if row.get("merged_into"):
        marks.append(f"[→INC-{row['merged_into']}]")
    if row.get("false_positive"):
        marks.append("[FP]")
    if (row.get("firing_count") or 1) > 1:
        marks.append(f"×{row['firing_count']}")
    return " ".join([*marks, row["title"]])


def columns_for(width: int, longest_title: int = TITLE_ROOM) -> list[tuple[str, str, int]]:
    """(field, heading, width) for a table `width` cells wide. Key, severity, status, ack and
    age have fixed widths; the title takes what is left. Assignee and services are shown only
    while the title keeps room for the longest title loaded (at most TITLE_ROOM cells), so a
    narrow terminal cuts them rather than the title, and a wide one shows them too."""
    status = 13 if width >= 90 else 6
    cols = [
        ("key", "KEY", 8),
        ("severity", "SEV", 6),
        ("status", "STATUS", status),
        ("ack", "ACK", 3),
        ("age", "AGE", 5),
        ("title", "TITLE", 0),
    ]
    services = 24 if width >= 150 else 14 if width >= 120 else 10
    optional = (
        [("assignee", "ASSIGNEE", 10), ("services", "SERVICES", services)]
        if width >= 90
        else [("assignee", "WHO", 7), ("services", "SERVICES", services)]
    )
    keep = min(max(longest_title, 12), TITLE_ROOM)

    def room(columns: list[tuple[str, str, int]]) -> int:
        return width - sum(w for _, _, w in columns) - (len(columns) - 1)

    for extra in optional:
        if room([*cols, extra]) < keep:
            break
        cols.append(extra)
    title = max(room(cols), 8)
    return [(f, h, w or title) for f, h, w in cols]


class IncidentTable(StopsWorkOnRemoval, ScrollView, can_focus=True):
    """Line-API table over a paged source of incident rows."""

    COMPONENT_CLASSES = {
        "incident-table--header",
        "incident-table--cursor",
        "incident-table--critical",
        "incident-table--high",
        "incident-table--medium",
        "incident-table--low",
        "incident-table--resolved",
        "incident-table--new",
        "incident-table--unacked",
        "incident-table--loading",
    }

    DEFAULT_CSS = """
    IncidentTable {
        background: $surface;
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
        & > .incident-table--header { text-style: bold; color: $text-muted; background: $panel; }
        & > .incident-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus > .incident-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .incident-table--critical { color: $sev-critical; text-style: $sev-critical-style; }
        & > .incident-table--high { color: $sev-high; text-style: $sev-high-style; }
        & > .incident-table--medium { color: $sev-medium; text-style: $sev-medium-style; }
        & > .incident-table--low { color: $sev-low; text-style: $sev-low-style; }
        & > .incident-table--resolved { color: $muted; }
        & > .incident-table--new { background: $row-new; }
        & > .incident-table--unacked { text-style: bold; }
        & > .incident-table--loading { color: $text-muted; }
    }
    """

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "jump(0)", "First", show=False),
        Binding("end,G", "jump(-1)", "Last", show=False),
    ]

    cursor: reactive[int] = reactive(0, always_update=True, init=False)

    class Highlighted(Message):
        """The incident under the cursor changed (None: the list is empty)."""

        def __init__(self, table: IncidentTable, row: dict[str, Any] | None) -> None:
            super().__init__()
            self.table = table
            self.row = row

        @property
        def control(self) -> IncidentTable:
            return self.table

    class Reloaded(Message):
        def __init__(self, total: int) -> None:
            super().__init__()
            self.total = total

    class Left(Message):
        """The selected incident is no longer in the list (resolved, merged, filtered out): the
        selection moved to `now` (None: the list is empty)."""

        def __init__(self, key: str, now: str | None) -> None:
            super().__init__()
            self.key = key
            self.now = now

    def __init__(self, loader: Loader, now: Callable[[], datetime], *, page_size: int = 100, id: str | None = None) -> None:
        super().__init__(id=id)
        self._loader = loader
        self._now = now
        self.page_size = page_size
        self.total = 0
        self.loaded = False
        self._rows: dict[int, dict[str, Any]] = {}
        self._pages_pending: set[int] = set()
        self._generation = 0
        self._highlighted_key: str | None = None
        self.highlights: dict[str, float] = {}  # key -> monotonic time the highlight ends
        self._ages_seen: tuple[str, ...] = ()  # the ages on screen at the last tick
        # What an empty list says (the screen sets it with the filter: "no open incidents").
        self.empty_text = "no open incidents"

    # --- data -------------------------------------------------------------------------------

    @property
    def selected(self) -> dict[str, Any] | None:
        return self._rows.get(self.cursor)

    @property
    def selected_key(self) -> str | None:
        row = self.selected
        return row["key"] if row else self._highlighted_key

    def row_at(self, index: int) -> dict[str, Any] | None:
        return self._rows.get(index)

    def loaded_rows(self) -> list[dict[str, Any]]:
        return [self._rows[i] for i in sorted(self._rows)]

    async def reload(self, keep_key: str | None = None) -> None:
        """Fetch the window around the viewport again, following `keep_key` (default: the
        selected incident) to its new place; the scroll position stays where it is."""
        self._generation += 1
        generation = self._generation
        keep_key = keep_key or self.selected_key
        cursor_before = self.cursor
        height = max(self.scrollable_content_region.height - 1, 1)
        top = int(self.scroll_y)
        offset = max(0, top - top % self.page_size)
        limit = self.page_size * (2 if top + height > offset + self.page_size else 1)
        result = await self._loader(offset, limit, keep_key)
        if generation != self._generation:
            return  # a newer reload superseded this one
        # Over a slow link the user may have moved on while the page was on its way: the row
        # they moved to wins over the one selected when the reload was asked for.
        moved = self.cursor != cursor_before
        moved_to = self.selected_key if moved else None
        self.total = int(result["total"])
        self._rows = {offset + i: row for i, row in enumerate(result["rows"])}
        self._pages_pending.clear()
        self.loaded = True
        self.virtual_size = Size(self.size.width, self.total + 1)
        position = result.get("position")
        if moved:
            found = [i for i, row in self._rows.items() if row["key"] == moved_to]
            new_cursor = found[0] if found else min(self.cursor, max(self.total - 1, 0))
        elif position is not None:
            new_cursor = int(position)
        else:
            new_cursor = min(self.cursor, max(self.total - 1, 0))
        if new_cursor != self.cursor:
            self.set_reactive(IncidentTable.cursor, new_cursor)
        if new_cursor not in self._rows and self.total:
            self._request_page(new_cursor // self.page_size)
        self._scroll_cursor_into_view(only_if_hidden=True)
        self.refresh()
        self._announce()
        if keep_key is not None and not moved and position is None and self.selected_key != keep_key:
            self.post_message(self.Left(keep_key, self.selected_key if self.total else None))
        self.post_message(self.Reloaded(self.total))

    def _request_page(self, page: int) -> None:
        if page in self._pages_pending or page < 0 or page * self.page_size >= max(self.total, 1):
            return
        self._pages_pending.add(page)
        run_work(self, partial(self._load_page, page, self._generation), group="incident-pages", exit_on_error=False)

    async def _load_page(self, page: int, generation: int) -> None:
        offset = page * self.page_size
        try:
            result = await self._loader(offset, self.page_size, None)
        finally:
            self._pages_pending.discard(page)
        if generation != self._generation:
            return
        self.total = int(result["total"])
        self.virtual_size = Size(self.size.width, self.total + 1)
        for i, row in enumerate(result["rows"]):
            self._rows[offset + i] = row
        # Keep memory bounded however far one scrolls: drop pages far from the viewport.
        if len(self._rows) > self.page_size * 8:
            centre = int(self.scroll_y)
            for index in [i for i in self._rows if abs(i - centre) > self.page_size * 3]:
                del self._rows[index]
        self.refresh()
        self._announce()

    def _announce(self) -> None:
        row = self.selected
        key = row["key"] if row else None
        if row is None and self.total and self.cursor not in self._rows:
            return  # still loading the selected row; announce when it arrives
        if key != self._highlighted_key or row is None:
            self._highlighted_key = key
            self.post_message(self.Highlighted(self, row))

    def highlight(self, key: str, until: float) -> None:
        self.highlights[key] = until
        self.refresh()

    def refresh_ages(self) -> None:
        """The clock's tick: redraw when an age on screen reads differently now. Most change once
        a minute ("12m"), so most ticks redraw nothing: a redraw under a form costs the whole
        dimmed backdrop."""
        now = self._now()
        first = int(self.scroll_y)
        rows = (self._rows.get(i) for i in range(first, first + self.size.height))
        ages = tuple(age(row["created_at"], now) if row else "" for row in rows)
        if ages != self._ages_seen:
            self._ages_seen = ages
            self.refresh()

    def expire_highlights(self, now_monotonic: float) -> None:
        expired = [k for k, t in self.highlights.items() if t <= now_monotonic]
        for k in expired:
            del self.highlights[k]
        if expired:
            self.refresh()

    # --- movement ---------------------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        self._scroll_cursor_into_view()
        if new not in self._rows and self.total:
            self._request_page(new // self.page_size)
        self.refresh()
        self._announce()

    def _scroll_cursor_into_view(self, only_if_hidden: bool = False) -> None:
        height = max(self.scrollable_content_region.height - 1, 1)
        top = int(self.scroll_y)
        if only_if_hidden and top <= self.cursor < top + height:
            return
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, force=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, force=True)

    def action_cursor(self, delta: int) -> None:
        if self.total:
            self.cursor = max(0, min(self.total - 1, self.cursor + delta))

    def action_page(self, direction: int) -> None:
        height = max(self.scrollable_content_region.height - 1, 1)
        self.action_cursor(direction * height)

    def action_jump(self, where: int) -> None:
        if self.total:
            self.cursor = 0 if where == 0 else self.total - 1

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        height = self.scrollable_content_region.height
        for index in (int(new), int(new) + height):
            if index < self.total and index not in self._rows:
                self._request_page(index // self.page_size)

    async def _on_click(self, event: events.Click) -> None:
        index = int(self.scroll_y) + event.y - 1
        if event.y >= 1 and 0 <= index < self.total:
            self.cursor = index

    # --- rendering --------------------------------------------------------------------------

    def _longest_title(self) -> int:
        return max((len(title_text(r)) for r in self._rows.values()), default=TITLE_ROOM)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        cols = columns_for(width, self._longest_title())
        if y == 0:
            style = self.get_component_rich_style("incident-table--header")
            text = " ".join(clip(h, w).ljust(w) for _, h, w in cols)
            return Strip([Segment(text.ljust(width)[:width], style)], width)
        index = int(self.scroll_y) + y - 1
        base = self.rich_style
        if index >= self.total:
            if not self.loaded:
                if y == 1:
                    return Strip([Segment("loading…".ljust(width), self.get_component_rich_style("incident-table--loading"))], width)
            elif self.total == 0 and y == 1:
                return Strip([Segment(self.empty_text.ljust(width), self.get_component_rich_style("incident-table--loading"))], width)
            return Strip.blank(width, base)
        row = self._rows.get(index)
        if row is None:
            self._request_page(index // self.page_size)
            return Strip([Segment("…".ljust(width), self.get_component_rich_style("incident-table--loading"))], width)
        return self._render_row(row, cols, width, index == self.cursor)

    def _render_row(self, row: dict[str, Any], cols: list[tuple[str, str, int]], width: int, is_cursor: bool) -> Strip:
        sev = row["severity"]
        resolved = row["status"] == "resolved"
        base = self.rich_style
        if resolved:
            base = base + self.get_component_rich_style("incident-table--resolved")
        if row["key"] in self.highlights:
            base = base + Style(bgcolor=self.get_component_rich_style("incident-table--new").bgcolor)
        unacked = not row.get("acknowledged_at") and not resolved
        segments: list[Segment] = []
        for i, (field, _, w) in enumerate(cols):
            style = base
            if field == "key":
                text = row["key"]
                if unacked:
                    style = style + self.get_component_rich_style("incident-table--unacked")
            elif field == "severity":
                text = severity_label(sev)
                if not resolved:
                    style = style + self.get_component_rich_style(f"incident-table--{sev}", partial=True)
            elif field == "status":
                text = row["status"] if w > 8 else STATUS_NARROW.get(row["status"], row["status"])
                if row["status"] == "triggered":
                    style = style + self.get_component_rich_style("incident-table--unacked")
            elif field == "ack":
                # Resolved ones say it too (they said "-", hiding who had acknowledged); only an
                # open incident nobody acknowledged shouts NO, the one that needs someone now.
                text = "yes" if row.get("acknowledged_at") else ("no" if resolved else "NO")
            elif field == "age":
                text = age(row["created_at"], self._now())
            elif field == "title":
                text = title_text(row)
            elif field == "assignee":
                text = row.get("assignee") or "-"
            else:
                text = ",".join(row.get("services") or []) or "-"
            cell = clip(text, w).ljust(w)
            if i:
                segments.append(Segment(" ", base))
            segments.append(Segment(cell, style))
        used = sum(len(s.text) for s in segments)
        if used < width:
            segments.append(Segment(" " * (width - used), base))
        if is_cursor:
            cursor_style = self.get_component_rich_style("incident-table--cursor")
            segments = [Segment(s.text, (s.style or base) + cursor_style) for s in segments]
        return Strip(segments, width).crop(0, width)

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, self.total + 1)
        self.refresh()

    def region_of_cursor(self) -> Region:
        return Region(0, self.cursor + 1, self.size.width, 1)

"""The header line: engine state, targets up/down, open incidents by severity, database."""

from __future__ import annotations

from typing import Any

from textual.content import Content
from textual.widgets import Static

from pulseguard_tui.formatting import SEVERITY_MARK

ROLE_TEXT = {
    "engine": "engine: running here",
    "standby": "engine: standby",
    "console": "pure console",
    "local": "pure console",
    "cluster": "cluster",
}
REMOTE_ROLE_TEXT = {"engine": "engine running", "standby": "engine standby"}
# The remote engine's state when the console cannot read it (pulseguard_tui.app.overview_problem):
# shown right after the name at any width, since what the console shows may be out of date.
REMOTE_PROBLEMS = {"unreachable": "ENGINE UNREACHABLE", "token refused": "TOKEN REFUSED"}
# Why the detail shows no escalation countdown while attached to an engine it cannot read (short:
# the header line above says ENGINE UNREACHABLE, and the detail's line must fit 80 columns).
LOST_ENGINE = {"unreachable": "offline", "token refused": "token refused"}
# A console over the database that cannot read it (pulseguard_tui.app.overview_problem): what the
# header says, as loudly as a lost engine, and why the detail counts nothing down.
DATABASE_PROBLEM = "database error"
ROLE_SHORT = {"engine": "engine here", "standby": "standby", "console": "pure console", "local": "pure console", "cluster": "cluster"}


def engine_lost(state: dict[str, Any]) -> str | None:
    """Why the console cannot read what drives escalation now, from the state the header line
    shows (pulseguard_tui.app.overview_problem): a remote console its engine ("offline"), a
    console over the database the database ("database error"); None while it can."""
    if not state.get("remote"):
        return DATABASE_PROBLEM if database_lost(state) else None
    return LOST_ENGINE.get(str(state.get("role")))


def database_lost(state: dict[str, Any]) -> bool:
    """Whether a console over the database could not read it at the last look."""
    return not state.get("remote") and str(state.get("role") or "").startswith(DATABASE_PROBLEM)


def status_content(
    state: dict[str, Any], counts: dict[str, int] | None, targets: list[dict[str, Any]] | None, width: int, screen_title: str = ""
) -> Content:
    """Most important first, so a narrow terminal cuts the least useful end: an alarm (engine
    unreachable, token refused, database error, no engine in the cluster), read-only badge, open
    incidents by severity, targets up/down, engine state, database. Counts and targets not read
    yet (None: the engine has not answered) are shown as unknown: zeros read as "all clear"; so
    are targets in no known state (just after the engine starts), "targets 2 ?" at 80 columns."""
    narrow = width < 100
    role = state.get("role", "")
    role_text = (ROLE_SHORT if narrow else ROLE_TEXT).get(role, role)
    if role == "cluster" and "engines" in state:
        n = int(state["engines"])
        role_text = f"cluster: {n} engine{'s' if n != 1 else ''}" if n else "cluster: NO ENGINE"
    remote = str(state.get("remote") or "")
    alarm = role == "cluster" and state.get("engines") == 0
    if remote:  # attached over the API: the engine's state there, and where it is
        alarm = role in REMOTE_PROBLEMS
        if alarm:
            role_text = REMOTE_PROBLEMS[role]
        else:
            role_text = "remote" if narrow else f"remote, {REMOTE_ROLE_TEXT.get(role, role)}"
        remote = remote.split("://", 1)[-1]
    elif database_lost(state):  # what is shown may be out of date, and escalation may not run
        alarm, role_text = True, DATABASE_PROBLEM.upper()
    parts: list[str | tuple[str, str]] = [(" PulseGuard ", "bold reverse $primary")]
    if alarm:
        # Right after the name: behind a READ-ONLY badge, a screen's title and two-digit counts
        # it fell past 80 columns, cut to "ENGINE" or gone, the one thing that must show.
        parts.append((f" {role_text} ", "bold reverse $error"))
    if screen_title and not (narrow and (alarm or screen_title == "Incidents")):
        parts.append((f" {screen_title} ", "bold"))
    if state.get("readonly"):
        parts.append((" READ-ONLY ", "bold reverse $warning"))
    parts.append(" open ")
    for sev in ("critical", "high", "medium", "low"):
        symbol = SEVERITY_MARK[sev][0]
        if counts is None:
            parts.append((f"{symbol}?", "$text-muted"))
        else:
            n = counts.get(sev, 0)
            parts.append((f"{symbol}{n}", f"bold $sev-{sev}" if n else "$text-muted"))
        parts.append(" ")
    parts.append("│ ")
    if targets is None:
        parts.append(("targets ?", "$text-muted"))
    elif targets:
        up = sum(1 for t in targets if t.get("state") == "up")
        down = sum(1 for t in targets if t.get("state") == "down")
        other = len(targets) - up - down  # unknown (an engine just started), paused
        # Not probed yet: "?" (a paused target is known to be paused, and only counted wide).
        unknown = sum(1 for t in targets if t.get("state") not in ("up", "down", "paused"))
        if narrow and not up and not down and unknown:  # "targets 0 up 0 down" read as all clear
            parts.append((f"targets {unknown} ?", "bold"))
        else:
            parts.append(f"targets {up} up ")
            parts.append((f"{down} DOWN", "bold $error") if down else "0 down")
            if narrow and unknown:
                parts.append((f" {unknown} ?", "bold"))
            elif other and not narrow:
                parts.append(f" {other} other")
    else:
        parts.append(("no targets", "$text-muted"))
    if not alarm:
        parts.append(" │ ")
        parts.append((role_text, "$text-muted"))
    used = sum(len(p if isinstance(p, str) else p[0]) for p in parts)
    db = remote or str(state.get("database") or "")
    room = width - used - 3
    if db and room > 8:
        if len(db) > room:
            path, new, _ = db.partition(NEW_DATABASE)
            if new and room - len(NEW_DATABASE) > 8:  # the path cut from the left, the mark kept whole
                db = "…" + path[-(room - len(NEW_DATABASE) - 1) :] + NEW_DATABASE
            elif new:  # too narrow for a path: the mark is what matters (a mistyped --db)
                db = next(mark for mark in (NEW_DATABASE.strip(), "new database", "(new db)") if len(mark) <= room)
            else:
                db = "…" + db[-(room - 1) :]
        parts.append((" │ " + db, "$text-muted"))
    return Content.assemble(*parts)


# What engine.api.local appends to the database while it holds no incident.
NEW_DATABASE = " (new database)"


class StatusLine(Static):
    DEFAULT_CSS = """
    StatusLine { height: 1; width: 100%; background: $panel; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.state: dict[str, Any] = {}
        self.counts: dict[str, int] | None = None  # None until the engine has answered
        self.targets: list[dict[str, Any]] | None = None
        self.screen_title = ""

    def set_data(self, *, state: dict[str, Any], counts: dict[str, int] | None, targets: list[dict[str, Any]] | None) -> None:
        self.state, self.counts, self.targets = state, counts, targets
        self.redraw()

    def redraw(self) -> None:
        self.update(status_content(self.state, self.counts, self.targets, self.size.width or 80, self.screen_title))

    def on_resize(self) -> None:
        self.redraw()

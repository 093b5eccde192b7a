"""Every console action as data: the help screen, the footer, the command palette and the
user's `[console.keymap]` are all built from this one table.

An action id is stable (it is what users remap in the config); `write` marks actions that
change something, refused while the console is read-only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    id: str
    key: str
    action: str  # the Textual action name (on the screen or app)
    description: str
    scope: str  # "app", "incidents", "targets", "maintenance", "audit", …
    write: bool = False
    admin: bool = False  # the API lets only admin tokens do it (maintenance windows)
    footer: bool = False
    palette: bool = True
    short: str = ""  # footer label, where the footer is narrow


ACTIONS: tuple[Action, ...] = (
    # anywhere
    Action("app.help", "question_mark", "help", "Show every key", "app", footer=True, short="Help"),
    Action("app.command", "colon", "command_line", "Command line (:incidents :targets :theme NAME :q)", "app", footer=True, short="Cmd"),
    Action("app.quit", "q", "quit", "Quit", "app", footer=True),
    Action("app.readonly", "R", "toggle_readonly", "Toggle read-only", "app"),
    Action("app.back", "escape", "back", "Back out (close, clear, return to incidents)", "app", palette=False),
    # the incident list and detail
    Action("incident.ack", "a", "ack", "Acknowledge", "incidents", write=True, footer=True, short="Ack"),
    Action("incident.status", "s", "status", "Change status (with public message)", "incidents", write=True),
    Action("incident.severity", "v", "severity", "Change severity", "incidents", write=True),
    Action("incident.comment", "c", "comment", "Comment (internal or not)", "incidents", write=True, footer=True, short="Comment"),
    Action("incident.update", "u", "update", "Post a public status update", "incidents", write=True),
    Action("incident.evidence", "e", "evidence", "Attach evidence", "incidents", write=True),
    Action("incident.resolve", "r", "resolve", "Resolve (root cause, solution)", "incidents", write=True, footer=True, short="Resolve"),
    Action("incident.reopen", "o", "reopen", "Reopen", "incidents", write=True),
    Action("incident.promote", "P", "promote", "Promote internal comment to public update", "incidents", write=True),
    Action("incident.new", "n", "new", "New incident", "incidents", write=True, footer=True, short="New"),
    Action("incident.assign", "A", "assign", "Assign", "incidents", write=True),
    Action("incident.edit", "E", "edit", "Edit title, description, services", "incidents", write=True),
    Action("incident.tags", "t", "tags", "Edit tags", "incidents", write=True),
    Action("incident.false_positive", "f", "false_positive", "Mark / unmark false positive", "incidents", write=True),
    Action("incident.snooze", "z", "snooze", "Snooze paging (re-pages at the end unless acknowledged)", "incidents", write=True),
    Action("incident.merge", "m", "merge", "Merge into another open incident (everything moves there)", "incidents", write=True),
    Action("incident.split", "X", "split", "Split one alert out of a grouped incident", "incidents", write=True),
    Action("incident.followup", "F", "followup", "Add a follow-up (kind, owner, due date)", "incidents", write=True),
    Action("incident.followup_done", "d", "followup_done", "Mark a follow-up done / open again", "incidents", write=True),
    Action("incident.runbook", "b", "runbook", "Show the runbook (the trigger's, else the service's)", "incidents"),
    Action("list.filter", "slash", "filter", "Filter (sev: status: svc: tag: @user)", "incidents", footer=True, short="Filter"),
    Action("list.resolved", "x", "toggle_resolved", "Show / hide resolved incidents", "incidents"),
    Action("list.zoom", "enter", "zoom", "Enlarge / shrink the detail pane", "incidents"),
    Action("list.refresh", "ctrl+r", "refresh", "Refresh now", "incidents"),
    Action("detail.next_tab", "right_square_bracket", "next_tab", "Next detail tab", "incidents"),
    Action("detail.prev_tab", "left_square_bracket", "prev_tab", "Previous detail tab", "incidents"),
    Action(
        "detail.tabs",
        "1,2,3,4,5,6,7",
        "tab",
        "Timeline, Comments, Updates, Evidence, Correlation, Resolution, Post-mortem",
        "incidents",
        palette=False,
    ),
    # the Post-mortem tab (pulseguard_tui/widgets/postmortem.py), while it has focus
    Action("postmortem.summary", "S", "summary", "Post-mortem: edit the summary", "postmortem", write=True),
    Action("postmortem.lists", "W", "lists", "Post-mortem: went well, went badly, lessons learned", "postmortem", write=True),
    Action("postmortem.impact", "I", "impact", "Post-mortem: impact (downtime, users, cost)", "postmortem", write=True),
    Action("postmortem.new_entry", "N", "new_entry", "Post-mortem: add a timeline entry", "postmortem", write=True),
    Action("postmortem.edit_entry", "enter", "edit_entry", "Post-mortem: edit the selected timeline entry", "postmortem", write=True),
    Action("postmortem.hide_entry", "H", "hide_entry", "Post-mortem: hide / show the selected entry", "postmortem", write=True),
    Action("postmortem.delete_entry", "D", "delete_entry", "Post-mortem: delete the selected added entry", "postmortem", write=True),
    Action("postmortem.rate", "G", "rate", "Post-mortem: rate customer and team satisfaction", "postmortem", write=True),
    Action("postmortem.publish", "P", "publish", "Post-mortem: publish / back to draft", "postmortem", write=True),
    Action("postmortem.copy", "M", "copy_markdown", "Post-mortem: copy as Markdown", "postmortem"),
    # other screens
    Action("maintenance.add", "n", "add", "Add a maintenance window", "maintenance", write=True, admin=True, footer=True, short="Add"),
    Action("maintenance.end", "E", "end", "End the selected window now", "maintenance", write=True, admin=True, footer=True, short="End"),
    Action("maintenance.ended", "x", "toggle_ended", "Show / hide ended windows", "maintenance"),
    Action("silences.add", "n", "add", "Add a silence", "silences", write=True, footer=True, short="Add"),
    Action("silences.extend", "e", "extend", "Extend the selected silence", "silences", write=True, footer=True, short="Extend"),
    Action("silences.expire", "E", "expire", "Expire the selected silence now", "silences", write=True, footer=True, short="Expire"),
    Action("silences.expired", "x", "toggle_expired", "Show / hide expired silences", "silences"),
    Action("silences.refresh", "ctrl+r", "refresh", "Refresh now", "silences"),
    Action("targets.refresh", "ctrl+r", "refresh", "Refresh now", "targets"),
    Action("oncall.refresh", "ctrl+r", "refresh", "Refresh now", "oncall"),
    Action("audit.refresh", "ctrl+r", "refresh", "Refresh now", "audit"),
    Action("services.refresh", "ctrl+r", "refresh", "Refresh now", "services"),
    Action("analytics.prev", "left_square_bracket", "previous_period", "Previous period", "analytics", footer=True, short="Prev"),
    Action("analytics.next", "right_square_bracket", "next_period", "Next period (up to now)", "analytics", footer=True, short="Next"),
    Action("analytics.month", "m", "month", "Report a month", "analytics", footer=True, short="Month"),
    Action("analytics.year", "y", "year", "Report a calendar year (this one: up to today)", "analytics", footer=True, short="Year"),
    Action("analytics.refresh", "ctrl+r", "refresh", "Refresh now", "analytics"),
)

# Actions of a widget inside a screen: listed with that screen's actions (palette, help).
WIDGET_SCOPES: dict[str, str] = {"postmortem": "incidents"}

# Screens reachable with `:name`, the palette, and their titles.
SCREENS: dict[str, str] = {
    "incidents": "Incidents",
    "targets": "Targets",
    "maintenance": "Maintenance",
    "oncall": "On-call",
    "analytics": "Analytics",
    "audit": "Audit log",
    "services": "Services",
    "silences": "Silences",
}

KEY_NAMES = {
    "question_mark": "?",
    "colon": ":",
    "slash": "/",
    "escape": "Esc",
    "enter": "Enter",
    "right_square_bracket": "]",
    "left_square_bracket": "[",
    "ctrl+r": "^r",
    "ctrl+p": "^p",
    "1,2,3,4,5,6,7": "1-7",
}


def key_display(key: str) -> str:
    return KEY_NAMES.get(key, key)


def for_scope(scope: str) -> list[Action]:
    return [a for a in ACTIONS if a.scope == scope]


def action_for(scope: str, action: str) -> Action | None:
    """The registry entry behind a Textual action name in `scope` (None: not in the registry)."""
    for a in ACTIONS:
        if a.scope == scope and a.action == action:
            return a
    return None


def by_id(action_id: str) -> Action:
    for a in ACTIONS:
        if a.id == action_id:
            return a
    raise KeyError(action_id)

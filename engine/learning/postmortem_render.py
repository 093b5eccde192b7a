"""A post-mortem document (engine.learning.postmortem.postmortem_document) as Markdown.

The shape teams use: summary, impact, timeline, root cause, resolution, what went well and
badly, lessons learned, action items with owners. Tables are GitHub-flavoured Markdown; every
piece of user text is escaped so it cannot break the table or heading structure.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from engine.core.durations import format_minutes

KIND_LABELS = {
    "first_alert": "First alert",
    "declared": "Declared",
    "paged": "Paged",
    "acknowledged": "Acknowledged",
    "escalated": "Escalated",
    "investigating": "Investigating",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "public_update": "Public update",
    "severity_changed": "Severity changed",
    "resolved": "Resolved",
    "reopened": "Reopened",
    "deployment": "Deployment",
    "false_positive": "False positive",
    "impact_start": "Impact started",
    "impact_end": "Impact ended",
    "note": "Note",
}
GROUP_LABELS = {
    "preventive_measures": "Preventive measure",
    "monitoring_improvements": "Monitoring improvement",
    "documentation_updates": "Documentation update",
    "process_changes": "Process change",
    "technical_changes": "Technical change",
    "team_changes": "Team change",
}


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())


def _inline(text: Any) -> str:
    """One line of user text, safe in a paragraph, a bullet or a table cell."""
    value = " ".join(str(text or "").split())
    for ch in "\\`*_[]<>|#":
        value = value.replace(ch, "\\" + ch)
    # A leading list marker would nest a list inside a bullet.
    if re.match(r"^[-+]( |$)", value):
        value = "\\" + value
    return re.sub(r"^(\d+)([.)])( |$)", r"\1\\\2\3", value)


def _block(text: str) -> str:
    """A multi-line text kept as paragraphs; lines that would start a heading or rule are escaped."""
    out = []
    for line in (text or "").strip().splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("#", "---", "===", "***", "___", "|")):
            line = "\\" + stripped
        # Markdown is welcome in long texts, raw HTML is not.
        out.append(line.rstrip().replace("<", "\\<"))
    return "\n".join(out)


def _time(value: str | None, zone: tzinfo | None, with_date: bool = True) -> str:
    """In `zone` (None: the local zone), named: "2026-03-02 09:50:00 CET"."""
    from engine.core.timefmt import format_time

    return format_time(value, zone=zone, date=with_date, seconds=True)


def render_markdown(doc: dict[str, Any], tz: str | tzinfo | None = None) -> str:
    """`tz`: an IANA name or zone; default the display zone (engine.core.timefmt)."""
    from engine.core.timefmt import display_zone, to_zone, zone_label

    zone = ZoneInfo(tz) if isinstance(tz, str) else (tz or display_zone())
    inc, pm, impact = doc["incident"], doc["postmortem"], doc["impact"]
    # A zone without a name (the process's local zone) is named as it was when the incident
    # opened: a summer incident's post-mortem read in winter is in CEST, not CET.
    opened = datetime.fromisoformat(inc["created_at"]) if inc.get("created_at") else datetime.now().astimezone()
    tz = getattr(zone, "key", None) or zone_label(to_zone(opened, zone))
    lines: list[str] = [f"# Post-mortem: {doc['key']} — {_inline(inc['title'])}", ""]
    facts = [
        (
            "Status",
            pm["status"]
            + (f" (published {_time(pm['published_at'], zone)} by {_inline(pm['published_by'])})" if pm["status"] == "published" else ""),
        ),
        ("Severity", inc["severity"]),
        ("Services", ", ".join(_inline(s) for s in inc["services"]) or "-"),
        ("Detected", _time(inc["detected_at"], zone)),
        ("Declared", f"{_time(inc['created_at'], zone)} by {_inline(inc['created_by'])}"),
        (
            "Acknowledged",
            f"{_time(inc['acknowledged_at'], zone)} by {_inline(inc['acknowledged_by'])}" if inc["acknowledged_at"] else "never",
        ),
        ("Resolved", f"{_time(inc['resolved_at'], zone)} by {_inline(inc['resolved_by'])}" if inc["resolved_at"] else "not yet"),
    ]
    if inc.get("false_positive"):
        facts.append(("False positive", "yes"))
    lines += [f"- **{k}:** {v}" for k, v in facts]
    lines += ["", f"_Times are in {tz}._", "", "## Summary", "", _block(pm["summary"]) or "_No summary written yet._", ""]

    lines += ["## Impact", ""]
    source = {"manual": "set by hand", "timeline": "computed from the timeline"}.get(impact["downtime_source"] or "", "")
    downtime = format_minutes(impact["downtime_minutes"]) + (f", {source}" if source else "")
    if impact["downtime_source"] == "manual" and impact["downtime_minutes_computed"] is not None:
        downtime += f"; the timeline gives {impact['downtime_minutes_computed']:g} minutes"
    users = impact["affected_users"]
    sat = doc.get("satisfaction") or {}
    lines += [
        f"- **Affected users:** {users if users is not None else 'unknown'}",
        f"- **Downtime:** {downtime}",
        f"- **Financial impact:** {_inline(impact['financial_impact']) or 'not assessed'}",
        f"- **Reputational impact:** {_inline(impact['reputational_impact']) or 'not assessed'}",
        f"- **Customer satisfaction:** {str(sat.get('customer')) + '/5' if sat.get('customer') else 'not rated'}",
        f"- **Team satisfaction:** {str(sat.get('team')) + '/5' if sat.get('team') else 'not rated'}",
        "",
    ]

    lines += ["## Timeline", ""]
    visible = [e for e in doc["timeline"] if not e["hidden"]]
    if visible:
        lines += [f"| Time ({tz}) | Event | What happened |", "| --- | --- | --- |"]
        for e in visible:
            what = _inline(e["text"])
            if e.get("annotation"):
                what += f" — _{_inline(e['annotation'])}_"
            lines.append(f"| {_time(e['at'], zone)} | {_inline(kind_label(e['kind']))} | {what} |")
    else:
        lines.append("_No timeline entries._")
    lines.append("")

    lines += ["## Root cause", ""]
    if inc.get("root_cause"):
        lines += [f"**Category:** {_inline(inc['root_cause_category'] or 'unknown')}", "", _block(inc["root_cause"])]
    else:
        lines.append("_Not identified yet._")
    lines += ["", "## Resolution", ""]
    if inc.get("solution"):
        lines.append(_block(inc["solution"]))
        steps = inc.get("verification_steps") or []
        if steps:
            lines += ["", "**Verification:**", ""]
            lines += [f"- [{'x' if s['done'] else ' '}] {_inline(s['step'])}" for s in steps]
    else:
        lines.append("_Not resolved yet._")
    lines.append("")

    for title, items in (
        ("What went well", pm["went_well"]),
        ("What went badly", pm["went_badly"]),
        ("Lessons learned", pm["lessons_learned"]),
    ):
        lines += [f"## {title}", ""]
        lines += [f"- {_inline(i)}" for i in items] if items else ["_Nothing recorded yet._"]
        lines.append("")

    lines += ["## Action items", ""]
    actions = doc["action_items"]
    if actions:
        lines += ["| Action | Type | Owner | Due | Status | Ticket |", "| --- | --- | --- | --- | --- | --- |"]
        for a in actions:
            status = "done" if a["done"] else ("**overdue**" if a["overdue"] else "open")
            lines.append(
                f"| {_inline(a['description'])} | {GROUP_LABELS.get(a['group'], _inline(a['group']))} | "
                f"{_inline(a['owner']) or 'unassigned'} | {a['due_date'] or '-'} | {status} | {_inline(a['ticket_key']) or '-'} |"
            )
    else:
        lines.append("_No action items._")
    lines.append("")
    return "\n".join(lines)

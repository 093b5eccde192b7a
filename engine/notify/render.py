"""Channel-neutral wording of a notification: a headline and body lines.

A notification's payload (stored on its outbox row) is a dict:
  kind         triggered | escalated | reminder | acknowledged | status_update | severity_changed |
               resolved | reopened | digest | shift_notice | override_notice | test
  audience     internal | external (external payloads carry public fields only)
  incident     {key, title, severity, status, services, created_at, ...} or absent
  message      free text of the change (a status update, a root cause) or absent
  public       status updates: whether the update was public (told to customers) or internal
  actor, at, level, round, recipients, items (digest), shift (shift notices)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.core.textclean import public_text

PUBLIC_STATES = {"investigating": "Investigating", "identified": "Identified", "monitoring": "Monitoring", "resolved": "Resolved"}
# Fields of an incident that may leave the organisation. Its title is not one of them: titles are
# written for responders (a trigger's is its condition), so the public reads a neutral name.
PUBLIC_INCIDENT_FIELDS = ("key", "status", "services")


PAGE_KINDS = ("triggered", "escalated", "reminder")


def is_page(p: Mapping[str, Any]) -> bool:
    """Whether the message pages someone (and so offers to acknowledge): a first page, an
    escalation, a reminder, or any step of the escalation (the first level paged again after a
    reopening or a severity change carries its `level`)."""
    return p.get("kind") in PAGE_KINDS or p.get("level") is not None


def public_name(status: str | None, components: Sequence[str]) -> str:
    """The neutral public name of an incident: "Investigating an issue with Checkout" while open,
    "Issue with Checkout" once resolved. `components` are public display names."""
    names = list(dict.fromkeys(c for c in components if c))
    if len(names) > 3:
        names = [*names[:2], f"{len(names) - 2} other services"]
    what = f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else (names[0] if names else "")
    if status == "resolved":
        return f"Issue with {what}" if what else "Resolved issue"
    return f"Investigating an issue with {what}" if what else "Investigating an issue"


def public_incident(incident: dict[str, Any], components: Sequence[str] | None = None) -> dict[str, Any]:
    """What of an incident may go to customers; `components` are the public names of its services
    (default: the service names themselves)."""
    out = {k: incident.get(k) for k in PUBLIC_INCIDENT_FIELDS if k in incident}
    if out.get("status") == "triggered":  # the public knows investigating, identified, monitoring, resolved
        out["status"] = "investigating"
    if components is not None:
        out["services"] = list(components)
    out["title"] = public_name(out.get("status"), out.get("services") or [])
    return out


def _when(text: str | None) -> str:
    from engine.core.timefmt import format_time

    return format_time(text, date=True, empty="")


def headline(p: dict[str, Any]) -> str:
    """One clean line (an e-mail subject, a chat title): no controls, no line breaks."""
    return " ".join(public_text(_headline(p)).split())


def _headline(p: dict[str, Any]) -> str:
    kind = p.get("kind", "")
    inc = p.get("incident") or {}
    key, title, sev = inc.get("key", ""), inc.get("title", ""), str(inc.get("severity", "")).upper()
    if p.get("audience") == "external":
        state = PUBLIC_STATES.get(str(inc.get("status")), str(inc.get("status", "")).capitalize())
        return f"[{state}] {title}"
    if kind == "triggered":
        return f"[{sev}] {key} triggered: {title}"
    if kind == "escalated":
        return f"[{sev}] {key} escalated to level {p.get('level')}: {title}"
    if kind == "reminder":
        return f"[{sev}] Reminder: {key} is still unacknowledged: {title}"
    if kind == "acknowledged":
        return f"[{sev}] {key} acknowledged by {p.get('actor')}: {title}"
    if kind == "status_update":
        return f"[{sev}] {key} {inc.get('status')}: {title}"
    if kind == "severity_changed":
        return f"[{sev}] {key} severity changed to {inc.get('severity')}: {title}"
    if kind == "resolved":
        return f"[RESOLVED] {key}: {title}"
    if kind == "reopened":
        return f"[{sev}] {key} reopened: {title}"
    if kind == "digest":
        n = len(p.get("items") or [])
        return f"PulseGuard digest: {n} incident update{'s' if n != 1 else ''}"
    if kind == "shift_notice":
        s = p.get("shift") or {}
        return f"Your on-call shift on {s.get('schedule')} starts {_when(s.get('start'))}"
    if kind == "override_notice":
        s = p.get("shift") or {}
        return f"On-call change on {s.get('schedule')}: {p.get('message', '')}"
    return p.get("title") or f"PulseGuard: {kind}"


def body_lines(p: dict[str, Any]) -> list[str]:
    return [public_text(line) for line in _body_lines(p)]


def _body_lines(p: dict[str, Any]) -> list[str]:
    inc = p.get("incident") or {}
    lines: list[str] = []
    if p.get("audience") == "external":
        if p.get("message"):
            lines.append(str(p["message"]))
        elif p.get("kind") == "resolved":
            lines.append("This incident has been resolved.")
        elif p.get("kind") == "reopened":
            lines.append("The issue has come back; we are investigating it again.")
        if inc.get("services"):
            lines.append("Affected: " + ", ".join(inc["services"]))
        return lines
    kind = p.get("kind")
    if kind == "digest":
        for item in p.get("items") or []:
            i = item.get("incident") or {}
            lines.append(f"- {i.get('key')} [{i.get('severity')}] {i.get('status')}: {i.get('title')} ({item.get('kind')})")
        return lines
    if kind in ("shift_notice", "override_notice"):
        s = p.get("shift") or {}
        lines.append(f"Schedule {s.get('schedule')}: {s.get('user')} from {_when(s.get('start'))} to {_when(s.get('end'))}")
        if p.get("message") and kind == "shift_notice":
            lines.append(str(p["message"]))
        return lines
    if p.get("message"):
        message = str(p["message"])
        if kind == "status_update" and "public" in p:
            # Responders read both in one channel: one they may quote to customers, one they may not.
            message = f"{'Public update' if p['public'] else 'Internal update'}: {message}"
        lines.append(message)
    if kind in ("escalated", "reminder") and p.get("recipients"):
        lines.append("Notifying: " + ", ".join(p["recipients"]))
    if inc:
        lines.append(f"Severity: {inc.get('severity')} · Status: {inc.get('status')}")
        if inc.get("services"):
            lines.append("Services: " + ", ".join(inc["services"]))
        if inc.get("description") and kind == "triggered":
            lines.append(str(inc["description"]))
        if inc.get("created_at"):
            lines.append(f"Opened: {_when(inc['created_at'])}")
    if is_page(p):
        if p.get("runbook"):
            lines.append(f"Runbook: {p['runbook']}")
        lines.append(f"Acknowledge: pulseguard incident ack {inc.get('key')}")
    return lines


def text(p: dict[str, Any]) -> str:
    return "\n".join([headline(p), "", *body_lines(p)])

"""What a token without the contacts role (`auth.CONTACTS_ROLE`) reads of where notifications went.

/api/users and /api/oncall give a viewer people's names without their e-mail, Slack or phone.
The timeline says the same in other words: "notification to alice@example.com failed: …",
`"destination": "email:alice@example.com"`, the escalation policy's `notify` list. What a viewer
reads of those names the channel alone: "e-mail (hidden)" in text, "email" in data. The rows stay
as stored; responders read them whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from engine.notify.destinations import describe

# The channels of outbox destinations (KIND or KIND:VALUE, engine.notify.channels), as text names them.
CHANNELS = {"email": "e-mail", "slack": "Slack", "webhook": "webhook", "pagerduty": "PagerDuty", "jira": "Jira"}
# A delivery's failure reason may quote an address in the mail server's own words
# ("SMTP refused every recipient: alice@example.com: 550 …").
EMAIL = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+")
HIDDEN_EMAIL = "e-mail (hidden)"


def destination(value: str) -> str:
    """A destination as a viewer reads it in data: its channel ("email:alice@example.com" -> "email")."""
    return value.partition(":")[0]


def label(value: str) -> str:
    """A destination as a viewer reads it in text: "e-mail (hidden)", "Slack (hidden)", "PagerDuty"."""
    kind, _, rest = value.partition(":")
    name = CHANNELS.get(kind, kind)
    return f"{name} (hidden)" if rest else name


def text(value: str, destinations: Iterable[str] = ()) -> str:
    """`value` with each of `destinations` (as stored or as the timeline names it) and any
    e-mail address replaced by what a viewer reads."""
    # Only a destination with an address hides something ("pagerduty" and "jira" name no one).
    labels = {form: label(d) for d in destinations if d.partition(":")[2] for form in (describe(d), d) if form}
    if labels:
        # Longest first, so "email:a@example.com" is replaced whole before "a@example.com" is looked for.
        pattern = re.compile("|".join(re.escape(f) for f in sorted(labels, key=len, reverse=True)))
        value = pattern.sub(lambda m: labels[m.group(0)], value)
    return EMAIL.sub(HIDDEN_EMAIL, value)


def destinations_of(data: Any) -> list[str]:
    """The destinations an event's data names (`destination`, `destinations`)."""
    if not isinstance(data, dict):
        return []
    found = [data["destination"]] if isinstance(data.get("destination"), str) else []
    many = data.get("destinations")
    if isinstance(many, list):
        found += [d for d in many if isinstance(d, str)]
    return found


def _deep(value: Any, destinations: list[str]) -> Any:
    if isinstance(value, str):
        return text(value, destinations)
    if isinstance(value, list):
        return [_deep(v, destinations) for v in value]
    if isinstance(value, dict):
        return {k: _deep(v, destinations) for k, v in value.items()}
    return value


def event(item: dict[str, Any]) -> dict[str, Any]:
    """A timeline event (feed.event_to_dict) as a viewer reads it. Only events about a
    notification carry destinations (`notified`, `notify_failed`, `escalation`, `digested`…);
    the others, whose text people wrote, are left as they are."""
    data = item.get("data")
    dests = destinations_of(data)
    if not dests or not isinstance(data, dict):
        return item
    shown: dict[str, Any] = {}
    for key, value in data.items():
        if key == "destination" and isinstance(value, str):
            shown[key] = destination(value)
        elif key == "destinations" and isinstance(value, list):
            shown[key] = [destination(v) if isinstance(v, str) else v for v in value]
        else:  # recipients' labels, notes, a reason
            shown[key] = _deep(value, dests)
    summary = item.get("summary")
    return {**item, "summary": text(summary, dests) if isinstance(summary, str) else summary, "data": shown}


def events(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event(e) for e in items]


def _notify_entry(entry: Any) -> Any:
    # "schedule:primary" and "user:carol" name who is paged, not where: they stay.
    if isinstance(entry, str) and entry.partition(":")[0] in CHANNELS:
        return destination(entry)
    return entry


def escalation(state: Any) -> Any:
    """An incident's escalation state with its policy's `notify` destinations reduced to their channels."""
    if not isinstance(state, dict) or not isinstance(state.get("policy"), dict):
        return state
    policy = state["policy"]
    levels = policy.get("levels")
    if not isinstance(levels, list):
        return state
    shown = [
        {**lv, "notify": [_notify_entry(e) for e in lv["notify"]]} if isinstance(lv, dict) and isinstance(lv.get("notify"), list) else lv
        for lv in levels
    ]
    return {**state, "policy": {**policy, "levels": shown}}


def incident(item: dict[str, Any]) -> dict[str, Any]:
    """An incident as a viewer reads it: a row of the list, or the detail with its timeline."""
    out = dict(item)
    if "escalation" in out:
        out["escalation"] = escalation(out["escalation"])
    if isinstance(out.get("timeline"), list):
        out["timeline"] = events(out["timeline"])
    return out


def postmortem(doc: dict[str, Any], event_data: dict[int, Any]) -> dict[str, Any]:
    """A post-mortem document as a viewer reads it: lines taken from a notification's event
    (`event_data`: its data by event id) say where it went as the timeline does for a viewer."""
    lines = []
    for line in doc.get("timeline") or []:
        dests = destinations_of(event_data.get(line.get("event_id")))
        if dests:
            line = {**line, **{k: text(line[k], dests) for k in ("text", "annotation") if isinstance(line.get(k), str)}}
        lines.append(line)
    return {**doc, "timeline": lines}

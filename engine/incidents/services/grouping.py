"""Grouping, merging and splitting incidents.

A firing (an alert, a trigger breach) carries a fingerprint: the incident's dedup_key. A firing
whose fingerprint has an open incident joins it (`firing_count` + 1, `last_seen_at` now) unless
more than the grouping window has passed since that incident's last firing; then, or once the
incident is resolved, a new incident opens. Alerts join with `join_alerts`, which stores each
alert's firing and resolution once, deciding under the incident's lock whether its state is new
(highly available Alertmanager sends one group to several engines at once); `raise_severity`
raises an incident for a more severe alert, never lowering it.

Merging moves everything of one incident (timeline, comments, status updates, evidence,
follow-ups, notifications) to another in one transaction; the merged incident is resolved with
`merged_into` naming the survivor, its pending escalation is cancelled and its fingerprint
routes later firings to the survivor. Splitting takes one alert (by its fingerprint) out of a
grouped incident into a new incident, with the alert's timeline events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from engine.core.domain import OPEN_STATUSES, IllegalTransition, InvalidInput, Severity, Status, parse_enum, parse_incident_key
from engine.incidents.services.timeline import RECORD_CHUNK, append_event, change, lock_incident, next_number
from engine.incidents.services.validation import valid_actor, valid_text, valid_time, valid_title
from engine.storage.escalation_models import Notification, Timer, TimerState
from engine.storage.models import Comment, Event, Evidence, FollowUp, Incident, StatusUpdate

OPEN = [s.value for s in OPEN_STATUSES]
# How far a merge chain is followed from a merged incident to its survivor.
MAX_CHAIN = 20
ALERT_KINDS = ("alert_firing", "alert_resolved")


async def find_open_incident(dedup_key: str) -> Incident | None:
    """The open incident of fingerprint `dedup_key`: its own, else the open survivor of the
    newest incident of that fingerprint that was merged away."""
    own = await Incident.filter(dedup_key=dedup_key, status__in=OPEN).order_by("-number").first()
    if own is not None:
        return own
    merged = await Incident.filter(dedup_key=dedup_key, merged_into__isnull=False).order_by("-number").first()
    seen: set[int] = set()
    while merged is not None and merged.merged_into is not None and len(seen) < MAX_CHAIN:
        seen.add(merged.number)
        if merged.merged_into in seen:
            return None
        merged = await Incident.get_or_none(number=merged.merged_into)
        if merged is not None and merged.status in OPEN:
            return merged
    return None


async def survivor_of(key: str | int) -> Incident | None:
    """Incident `key`, or, when it was merged away, the incident it now lives on (None: unknown)."""
    incident = await Incident.get_or_none(number=parse_incident_key(key))
    hops = 0
    while incident is not None and incident.merged_into is not None and hops < MAX_CHAIN:
        incident = await Incident.get_or_none(number=incident.merged_into)
        hops += 1
    return incident


def within_window(incident: Incident, window: float | None, now: datetime) -> bool:
    """Whether a firing at `now` still joins `incident` (no window: always)."""
    if not window:
        return True
    last = incident.last_seen_at or incident.created_at
    return last is None or now - last <= timedelta(seconds=window)


async def find_group(dedup_key: str, *, window: float | None = None, at: datetime | None = None) -> Incident | None:
    """The open incident a firing of `dedup_key` at `at` joins, or None to open a new one."""
    incident = await find_open_incident(dedup_key)
    if incident is None or not within_window(incident, window, valid_time(at)):
        return None
    return incident


async def count_firing(
    key: str | int, *, at: datetime | None = None, event: tuple[str, str, str, dict[str, Any]] | None = None
) -> Incident:
    """One more firing joined incident `key`: count it and stamp last_seen_at. `event` (kind,
    summary, actor, data) is the firing's timeline entry, stored in the same transaction; a
    plain repeat is counted only."""
    now = valid_time(at)
    async with change(key, now) as c:
        c.incident.firing_count = int(c.incident.firing_count or 0) + 1
        c.incident.last_seen_at = now
        await c.save(["firing_count", "last_seen_at"])
        if event is not None:
            kind, summary, actor, data = event
            await c.record(valid_text(kind, "kind", limit=40), valid_actor(actor), summary, data)
    return c.incident


@dataclass
class Joined:
    """What `join_alerts` did: the incident as it stands, the alert entries it stored (their
    data), and each alert fingerprint's last state on the incident."""

    incident: Incident
    recorded: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)


class _NothingNew(IllegalTransition):
    """Rolls back a join that stored nothing (the incident's stamp and version included)."""


async def _alert_states(conn: BaseDBAsyncClient, incident_id: int, after: int, states: dict[str, str]) -> int:
    """Bring `states` (fingerprint → firing/resolved) up to date with the incident's alert
    entries after event id `after`; returns the last id read. Event ids commit in ascending
    order (the feed's lock), so what was read once need not be read again."""
    rows = (
        await Event.filter(incident_id=incident_id, kind__in=ALERT_KINDS, id__gt=after)
        .using_db(conn)
        .order_by("id")
        .values_list("id", "data")
    )
    for event_id, data in rows:
        after = max(after, int(event_id))
        if isinstance(data, dict) and data.get("fingerprint"):
            states[str(data["fingerprint"])] = str(data.get("status"))
    return after


async def join_alerts(
    key: str | int,
    entries: Sequence[tuple[str, str, dict[str, Any]]],
    actor: str,
    *,
    count: bool = True,
    at: datetime | None = None,
) -> Joined:
    """Alerts of a group on incident `key`: each entry (kind, summary, data with `fingerprint`
    and `status`) is stored only when its alert's state is new on the incident; with `count`,
    the delivery counts as one firing (`firing_count` + 1, `last_seen_at` now).

    Whether a state is new is decided under the incident's lock, from its timeline as it
    stands: highly available Alertmanager sends the same group to several engines (or twice to
    one) at once, and each alert's firing and resolution is still stored once. A chunk of
    entries per transaction, as `record_events`, so a storm's group is stored in seconds."""
    actor = valid_actor(actor)
    checked = [(valid_text(kind, "kind", limit=40), summary, data) for kind, summary, data in entries]
    now = valid_time(at)
    joined: Joined | None = None
    states: dict[str, str] = {}
    recorded: list[dict[str, Any]] = []
    read = 0
    for start in range(0, max(len(checked), 1), RECORD_CHUNK):
        counted = count and start == 0
        try:
            async with change(key, now) as c:
                read = await _alert_states(c.conn, c.incident.id, read, states)
                stored = 0
                for kind, summary, data in checked[start : start + RECORD_CHUNK]:
                    fingerprint, status = str(data.get("fingerprint")), str(data.get("status"))
                    if states.get(fingerprint) == status:
                        continue  # a repeat (or another engine's copy) of a state already stored
                    await c.record(kind, actor, summary, data)
                    states[fingerprint] = status
                    recorded.append(data)
                    stored += 1
                if counted:
                    c.incident.firing_count = int(c.incident.firing_count or 0) + 1
                    c.incident.last_seen_at = now
                    await c.save(["firing_count", "last_seen_at"])
                elif not stored:
                    raise _NothingNew("nothing new")
                incident = c.incident
        except _NothingNew:
            incident = await Incident.get(number=parse_incident_key(key))
        joined = Joined(incident)
    assert joined is not None
    joined.recorded, joined.states = recorded, states
    return joined


async def raise_severity(key: str | int, severity: str, actor: str, *, reason: str, at: datetime | None = None) -> Incident | None:
    """Raise open incident `key` to `severity` when it is less severe, as `change_severity`
    does it (a `severity_changed` entry, escalation re-planned by its hook); never lowers it.
    None when nothing changed (already as severe, resolved, merged away)."""
    actor = valid_actor(actor)
    new = Severity(parse_enum(Severity, severity, "severity").value)
    reason = valid_text(reason, "reason")
    now = valid_time(at)
    try:
        async with change(key, now, open_to="change its severity") as c:
            incident = c.incident
            old = incident.severity
            if Severity(old).rank <= new.rank:
                raise _NothingNew(f"{incident.key} is already {old}")
            incident.severity = new.value
            await c.commit(
                "severity_changed", actor, f"severity {old} → {new.value}: {reason}", {"from": old, "to": new.value, "reason": reason}
            )
    except IllegalTransition:
        return None
    return incident


async def merge(source: str | int, into: str | int, actor: str, *, reason: str | None = None, at: datetime | None = None) -> Incident:
    """Merge incident `source` into the open incident `into`; returns the survivor."""
    actor = valid_actor(actor)
    reason = valid_text(reason, "reason", required=False)
    now = valid_time(at)
    a = parse_incident_key(source)
    try:
        b = parse_incident_key(into)
    except InvalidInput as e:
        raise InvalidInput("into", e.message) from None
    async with in_transaction() as conn:
        if a == b:
            raise IllegalTransition(f"INC-{a} cannot be merged into itself")
        # Lock in number order, so two merges of the same pair cannot deadlock. Either may be
        # merged already: the checks below say what to merge instead.
        first = await lock_incident(conn, min(a, b), now, merged=True)
        second = await lock_incident(conn, max(a, b), now, merged=True)
        src, dst = (first, second) if first.number == a else (second, first)
        if src.merged_into is not None:
            raise IllegalTransition(f"{src.key} was already merged into INC-{src.merged_into}")
        if dst.merged_into == src.number:
            raise IllegalTransition(f"{dst.key} was merged into {src.key}; merging back would make a cycle")
        if dst.merged_into is not None:
            raise IllegalTransition(f"{dst.key} was merged into INC-{dst.merged_into}; merge into that one instead")
        if dst.status == Status.RESOLVED.value:
            raise IllegalTransition(f"{dst.key} is resolved; reopen it before merging into it")
        if src.status == Status.RESOLVED.value:
            raise IllegalTransition(f"{src.key} is resolved; reopen it before merging it")
        max_event = await Event.filter(incident_id=src.id).using_db(conn).order_by("-id").first()
        moved: dict[str, int] = {}
        for name, model in (
            ("events", Event),
            ("comments", Comment),
            ("updates", StatusUpdate),
            ("evidence", Evidence),
            ("followups", FollowUp),
            ("notifications", Notification),
        ):
            moved[name] = await model.filter(incident_id=src.id).using_db(conn).update(incident_id=dst.id)
        # The merged incident's escalation stops; the survivor's goes on as planned.
        moved["timers_cancelled"] = (
            await Timer.filter(incident_id=src.id, state=TimerState.PENDING).using_db(conn).update(state=TimerState.CANCELLED, fired_at=now)
        )
        escalation = dict(dst.escalation or {})
        if max_event is not None and int(escalation.get("seen") or 0) < max_event.id:
            # The moved entries were handled on their own incident: never replay them here.
            escalation["seen"] = max_event.id
        dst.escalation = escalation
        dst.firing_count = int(dst.firing_count or 0) + int(src.firing_count or 0)
        dst.last_seen_at = max((t for t in (dst.last_seen_at, src.last_seen_at) if t is not None), default=None)
        dst.services = list(dict.fromkeys([*dst.services, *src.services]))
        dst.tags = list(dict.fromkeys([*dst.tags, *src.tags]))
        dst.related = list(dict.fromkeys([*(dst.related or []), src.key]))
        await dst.save(using_db=conn, update_fields=["escalation", "firing_count", "last_seen_at", "services", "tags", "related"])
        old = src.status
        src.status = Status.RESOLVED.value
        src.resolved_at = now
        src.resolved_by = actor
        src.root_cause = f"Merged into {dst.key}" + (f": {reason}" if reason else "")
        src.root_cause_category = src.root_cause_category or "unknown"
        src.solution = f"Handled as part of {dst.key}"
        src.merged_into = dst.number
        await src.save(
            using_db=conn,
            update_fields=["status", "resolved_at", "resolved_by", "root_cause", "root_cause_category", "solution", "merged_into"],
        )
        counts = dict(moved)
        await append_event(
            conn,
            src,
            "resolved",
            actor,
            f"merged into {dst.key}" + (f": {reason}" if reason else ""),
            {"from": old, "merged_into": dst.key, "reason": reason or None, "moved": counts},
            now,
        )
        await append_event(
            conn,
            dst,
            "merged",
            actor,
            f"merged {src.key} into this incident ({moved['events']} timeline entries, {moved['comments']} comments, "
            f"{moved['updates']} updates, {moved['evidence']} evidence)" + (f": {reason}" if reason else ""),
            {"merged": src.key, "title": src.title, "fingerprint": src.dedup_key, "reason": reason or None, "moved": counts},
            now,
        )
    return dst


async def alert_fingerprints(incident: Incident) -> dict[str, dict[str, Any]]:
    """Each alert fingerprint of an incident: its last state, summary and how many events."""
    found: dict[str, dict[str, Any]] = {}
    for kind, summary, data in (
        await Event.filter(incident_id=incident.id, kind__in=ALERT_KINDS).order_by("id").values_list("kind", "summary", "data")
    ):
        if isinstance(data, dict) and data.get("fingerprint"):
            entry = found.setdefault(str(data["fingerprint"]), {"events": 0, "summary": ""})
            entry["events"] += 1
            entry["status"] = str(data.get("status") or ("firing" if kind == "alert_firing" else "resolved"))
            if kind == "alert_firing":
                entry["summary"] = str(summary).removeprefix("alert firing: ")
    return found


def split_key(dedup_key: str | None, fingerprint: str) -> str:
    """The fingerprint of an alert split out of group `dedup_key`: its later firings go there."""
    return f"{dedup_key or 'split'}#{fingerprint}"[:200]


async def split(key: str | int, fingerprint: str, actor: str, *, at: datetime | None = None) -> Incident:
    """Take the alert `fingerprint` out of incident `key` into a new incident; returns the new one."""
    actor = valid_actor(actor)
    fingerprint = valid_text(fingerprint, "fingerprint", limit=200)
    now = valid_time(at)
    async with in_transaction() as conn:
        parent = await lock_incident(conn, key, now)
        if parent.status == Status.RESOLVED.value:
            raise IllegalTransition(f"{parent.key} is resolved; reopen it before you split an alert out of it")
        rows = await Event.filter(incident_id=parent.id, kind__in=ALERT_KINDS).using_db(conn).order_by("id")
        fingerprints = {str(r.data.get("fingerprint")) for r in rows if isinstance(r.data, dict) and r.data.get("fingerprint")}
        if fingerprint not in fingerprints:
            known = ", ".join(sorted(fingerprints)[:10]) or "none"
            raise InvalidInput("fingerprint", f"{parent.key} has no alert {fingerprint!r} (its alerts: {known})")
        if len(fingerprints) == 1:
            raise IllegalTransition(f"{fingerprint!r} is {parent.key}'s only alert; there is nothing to split it from")
        mine = [r for r in rows if isinstance(r.data, dict) and str(r.data.get("fingerprint")) == fingerprint]
        summary = next((r.summary.removeprefix("alert firing: ") for r in mine if r.kind == "alert_firing"), fingerprint)
        fired = max(1, sum(1 for r in mine if r.kind == "alert_firing"))
        number = await next_number(conn)
        child = await Incident.create(
            number=number,
            title=valid_title(summary, limit=300),
            description=f"Split out of {parent.key} ({parent.title}).",
            severity=parent.severity,
            status=Status.TRIGGERED.value,
            source=parent.source,
            services=list(parent.services),
            tags=list(parent.tags),
            dedup_key=split_key(parent.dedup_key, fingerprint),
            target=parent.target,
            trigger=parent.trigger,
            detected_at=min(r.at for r in mine),
            created_at=now,
            created_by=actor,
            updated_at=now,
            last_seen_at=max(r.at for r in mine),
            # Repeats are counted, not logged, so an alert's own firings are its firing entries.
            firing_count=fired,
            related=[parent.key],
            using_db=conn,
        )
        await append_event(
            conn,
            child,
            "created",
            actor,
            f"opened {child.key} ({child.severity}): {child.title} (split out of {parent.key})",
            {"severity": child.severity, "source": child.source, "services": child.services, "tags": child.tags, "split_from": parent.key},
            now,
        )
        moved = await Event.filter(id__in=[r.id for r in mine]).using_db(conn).update(incident_id=child.id)
        parent.related = list(dict.fromkeys([*(parent.related or []), child.key]))
        parent.firing_count = max(1, int(parent.firing_count or 0) - fired)
        await parent.save(using_db=conn, update_fields=["related", "firing_count"])
        await append_event(
            conn,
            parent,
            "split",
            actor,
            f"alert {fingerprint} split out into {child.key} ({moved} timeline entries moved)",
            {"fingerprint": fingerprint, "into": child.key, "moved": moved},
            now,
        )
    return child

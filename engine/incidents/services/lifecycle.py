"""An incident's life: opening it, acknowledging, status, severity, assignee, tags, resolving,
reopening, false positives, verification steps and stored analysis. Each change is one
transition through `timeline.change`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from engine.core.domain import (
    DEFAULT_ROOT_CAUSE_CATEGORIES,
    SETTABLE_STATUSES,
    IllegalTransition,
    InvalidInput,
    Severity,
    Source,
    Status,
    parse_enum,
)
from engine.core.matchers import labels_of
from engine.incidents.services.silences import FIRING_SOURCES, Silenced, silence_firing
from engine.incidents.services.timeline import Change, Quick, append_event, change, next_number, require_open, run_change
from engine.incidents.services.validation import (
    MAX_TITLE,
    check_services,
    display_name,
    stated_time,
    valid_actor,
    valid_name,
    valid_names,
    valid_tags,
    valid_text,
    valid_time,
    valid_title,
)
from engine.storage.models import Incident, StatusUpdate


async def create_incident(
    *,
    title: str,
    severity: str,
    actor: str,
    description: str = "",
    services: Sequence[str] = (),
    tags: Sequence[str] = (),
    assignee: str | None = None,
    source: str = Source.MANUAL.value,
    dedup_key: str | None = None,
    detected_at: datetime | None = None,
    target: str | None = None,
    trigger: str | None = None,
    analysis: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Incident:
    """Open an incident (status triggered) and return it."""
    actor = valid_actor(actor)
    title = valid_title(title, limit=MAX_TITLE)
    sev = parse_enum(Severity, severity, "severity").value
    src = parse_enum(Source, source, "source").value
    description = valid_text(description, "description", required=False)
    service_names = valid_names(services, "service")
    tag_names = valid_tags(tags, "tag")
    assignee = valid_name(assignee, "assignee")
    # Imported here: its models load pydantic's schemas, which readers (the console's list) never need.
    from engine.core.analysis import validate_analysis

    analysis = validate_analysis(analysis)
    now = valid_time(at)
    if detected_at is not None and detected_at.tzinfo is None:
        raise InvalidInput("detected_at", "must carry a time zone")
    if detected_at is not None and detected_at > now:
        raise InvalidInput("detected_at", "is later than the incident's creation")
    if src in FIRING_SOURCES:
        # A firing an active silence matches opens nothing: it is recorded, and the caller told.
        labels = labels_of(services=service_names, target=target, trigger=trigger, severity=sev, source=src, tags=tag_names)
        silence = await silence_firing(labels, title, now)
        if silence is not None:
            raise Silenced(silence)
    async with in_transaction() as conn:
        number = await next_number(conn)
        incident = await Incident.create(
            number=number,
            title=title,
            description=description,
            severity=sev,
            status=Status.TRIGGERED.value,
            source=src,
            services=service_names,
            tags=tag_names,
            assignee=assignee,
            dedup_key=dedup_key,
            target=target,
            trigger=trigger,
            detected_at=detected_at or now,
            created_at=now,
            created_by=actor,
            updated_at=now,
            last_seen_at=now,
            analysis=analysis or {},
            using_db=conn,
        )
        await append_event(
            conn,
            incident,
            "created",
            actor,
            f"opened {incident.key} ({sev}): {title}",
            {"severity": sev, "source": src, "services": service_names, "tags": tag_names, "assignee": assignee},
            now,
        )
    return incident


async def acknowledge(key: str | int, actor: str, *, at: datetime | None = None) -> Incident:
    """Record who acknowledged; stops escalation. A triggered incident moves to investigating."""
    actor = valid_actor(actor)
    now = valid_time(at)

    async def body(c: Change) -> Incident:
        await acknowledge_in(c, actor)
        return c.incident

    return await run_change(key, now, body, quick=_ACKNOWLEDGE, open_to="acknowledge it")


_ACKNOWLEDGE = Quick("acknowledged", guard=("status", "acknowledged_at"))


async def acknowledge_in(c: Change, actor: str, via: str | None = None) -> None:
    """The acknowledgement inside a change already begun; `via` names where it came from when
    that is not the actor's own interface (an e-mail link, a Slack button)."""
    incident = c.incident
    require_open(incident, "acknowledge it")
    if incident.acknowledged_at is not None:
        raise IllegalTransition(f"{incident.key} was already acknowledged by {incident.acknowledged_by}")
    incident.acknowledged_at = c.now
    incident.acknowledged_by = actor
    old = incident.status
    if old == Status.TRIGGERED.value:
        incident.status = Status.INVESTIGATING.value
    data: dict[str, Any] = {"from": old, "to": incident.status}
    if via:
        data["via"] = via
    summary = f"acknowledged via {via}" if via else "acknowledged"
    await c.commit("acknowledged", actor, summary, data, update_fields=["status", "acknowledged_at", "acknowledged_by"])


async def change_status(
    key: str | int,
    status: str,
    actor: str,
    *,
    message: str | None = None,
    public: bool = False,
    acknowledges: bool = True,
    at: datetime | None = None,
) -> Incident:
    """Move an open incident to investigating, identified or monitoring.

    A person moving an incident out of `triggered` is on it, so that also records the
    acknowledgement; the engine's own moves (recovery to monitoring) pass
    `acknowledges=False` so they neither stop escalation nor count towards MTTA.
    """
    actor = valid_actor(actor)
    new = parse_enum(Status, status, "status", SETTABLE_STATUSES)
    if new == Status.RESOLVED:
        raise IllegalTransition("use resolve to resolve an incident (it needs a root cause and solution)")
    if new not in SETTABLE_STATUSES:
        raise IllegalTransition(f"an incident cannot be moved back to {new.value}")
    text = valid_text(message, "message", required=public)
    now = valid_time(at)
    async with change(key, now, open_to="change its status") as c:
        incident = c.incident
        old = incident.status
        if old == new.value:
            raise IllegalTransition(f"{incident.key} is already {old}")
        incident.status = new.value
        implicit_ack = acknowledges and incident.acknowledged_at is None
        if implicit_ack:
            incident.acknowledged_at = now
            incident.acknowledged_by = actor
        await c.save()
        if text:
            await StatusUpdate.create(
                incident=incident, status=new.value, message=text, public=public, author=actor, created_at=now, using_db=c.conn
            )
        summary = f"status {old} → {new.value}" + (f": {text}" if text else "")
        data = {"from": old, "to": new.value, "message": text or None, "public": public, "acknowledged": implicit_ack}
        await c.record("status_changed", actor, summary, data)
    return incident


async def change_severity(key: str | int, severity: str, actor: str, *, reason: str | None = None, at: datetime | None = None) -> Incident:
    actor = valid_actor(actor)
    new = parse_enum(Severity, severity, "severity").value
    reason = valid_text(reason, "reason", required=False)
    now = valid_time(at)
    async with change(key, now, open_to="change its severity") as c:
        incident = c.incident
        old = incident.severity
        if old == new:
            raise IllegalTransition(f"{incident.key} is already {new}")
        incident.severity = new
        summary = f"severity {old} → {new}" + (f": {reason}" if reason else "")
        await c.commit("severity_changed", actor, summary, {"from": old, "to": new, "reason": reason or None})
    return incident


async def assign(key: str | int, assignee: str | None, actor: str, *, at: datetime | None = None) -> Incident:
    """Assign to someone, or unassign with None/empty."""
    actor = valid_actor(actor)
    who = valid_name(assignee, "assignee")
    now = valid_time(at)
    async with change(key, now, open_to="assign it") as c:
        incident = c.incident
        old = incident.assignee
        if old == who:
            raise IllegalTransition(f"{incident.key} is already {'assigned to ' + who if who else 'unassigned'}")
        incident.assignee = who
        await c.commit("assigned", actor, f"assigned to {who}" if who else "unassigned", {"from": old, "to": who})
    return incident


async def set_tags(
    key: str | int,
    actor: str,
    *,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    at: datetime | None = None,
) -> Incident:
    actor = valid_actor(actor)
    to_add = valid_tags(add, "tag")
    to_remove = valid_tags(remove, "tag")
    if not to_add and not to_remove:
        raise InvalidInput("tags", "name at least one tag to add or remove")
    now = valid_time(at)
    async with change(key, now) as c:
        incident = c.incident
        old = list(incident.tags)
        new = [t for t in old if t not in to_remove] + [t for t in to_add if t not in old]
        if new == old:
            raise IllegalTransition(f"{incident.key}'s tags are already {', '.join(old) or 'empty'}")
        incident.tags = new
        parts = [f"+{t}" for t in to_add if t not in old] + [f"-{t}" for t in to_remove if t in old]
        await c.commit("tags_changed", actor, "tags " + " ".join(parts), {"from": old, "to": new})
    return incident


async def edit_incident(
    key: str | int,
    actor: str,
    *,
    title: str | None = None,
    description: str | None = None,
    services: Sequence[str] | None = None,
    configured: Iterable[str] = (),
    at: datetime | None = None,
) -> Incident:
    """Correct what an incident is about: its title, description and affected services (the
    ones given; None keeps one). A service nobody declared is refused as when opening one."""
    actor = valid_actor(actor)
    wanted: dict[str, Any] = {}
    if title is not None:
        wanted["title"] = valid_title(title, limit=MAX_TITLE)
    if description is not None:
        wanted["description"] = valid_text(description, "description", required=False)
    if services is not None:
        await check_services(services, configured)
        wanted["services"] = valid_names(services, "services")
    if not wanted:
        raise InvalidInput("incident", "name at least one of title, description, services")
    now = valid_time(at)
    async with change(key, now) as c:
        incident = c.incident
        before = {name: getattr(incident, name) for name in wanted}
        changed = {name: value for name, value in wanted.items() if before[name] != value}
        if not changed:
            raise IllegalTransition(f"{incident.key} already reads so")
        for name, value in changed.items():
            setattr(incident, name, value)
        parts = []
        if "title" in changed:
            parts.append(f"title {before['title']!r} → {changed['title']!r}")
        if "description" in changed:
            parts.append("description changed")
        if "services" in changed:
            parts.append(f"services {', '.join(before['services']) or '-'} → {', '.join(changed['services']) or '-'}")
        data = {"from": {k: before[k] for k in changed}, "to": changed}
        await c.commit("edited", actor, "edited: " + "; ".join(parts), data)
    return incident


async def resolve(
    key: str | int,
    actor: str,
    *,
    root_cause: str,
    solution: str,
    category: str | None = None,
    verification_steps: Sequence[str] = (),
    categories: Sequence[str] = DEFAULT_ROOT_CAUSE_CATEGORIES,
    at: datetime | None = None,
    stated_at: datetime | None = None,
    on_behalf_of: str | None = None,
    amend: bool = False,
) -> Incident:
    """Resolve as `actor`. `stated_at` back-fills when it was resolved: the incident's
    resolved_at (and so its MTTR) use it, the event stays at now. `on_behalf_of` names the
    person an integration resolves for: stored as resolved_by, with `actor` on the timeline.
    With `amend`, an incident resolved already (the engine resolved it as recovered while a
    responder wrote the real cause) has its root cause, category, solution and steps replaced;
    when and by whom it was resolved stay, and nobody is notified again."""
    actor = valid_actor(actor)
    resolution = valid_resolution(root_cause, solution, category, verification_steps, categories)
    now = valid_time(at)
    stated = stated_time(stated_at, now, "resolved_at")
    behalf = display_name(on_behalf_of, "resolved_by")
    if behalf is not None and len(behalf) > 64:
        raise InvalidInput("resolved_by", f"is {len(behalf)} characters long (at most 64)")
    if behalf is not None and behalf.lower() == actor.lower():
        behalf = None  # the actor naming itself
    async with change(key, now) as c:
        if amend and c.incident.status == Status.RESOLVED.value:
            await amend_resolution_in(c, actor, resolution)
        else:
            await resolve_in(c, actor, resolution, stated_at=stated, on_behalf_of=behalf)
    return c.incident


async def amend_resolution_in(c: Change, actor: str, resolution: dict[str, Any]) -> None:
    """A resolved incident's root cause, category, solution and steps replaced (see `resolve`)."""
    incident = c.incident
    was = {"root_cause": incident.root_cause, "category": incident.root_cause_category, "solution": incident.solution}
    cat, root_cause = resolution["category"], resolution["root_cause"]
    incident.root_cause = root_cause
    incident.root_cause_category = cat
    incident.solution = resolution["solution"]
    incident.verification_steps = resolution["verification_steps"]
    await c.commit("resolution_amended", actor, f"root cause recorded ({cat}): {root_cause}", {**resolution, "was": was})


def valid_resolution(
    root_cause: str,
    solution: str,
    category: str | None = None,
    verification_steps: Sequence[str] = (),
    categories: Sequence[str] = DEFAULT_ROOT_CAUSE_CATEGORIES,
) -> dict[str, Any]:
    """A resolution's fields, checked before anything is written (InvalidInput naming the field)."""
    root_cause = valid_text(root_cause, "root_cause")
    solution = valid_text(solution, "solution")
    cat = (category or "unknown").strip().lower()
    if cat not in categories:
        raise InvalidInput("category", f"unknown root-cause category {category!r} (expected one of: {', '.join(categories)})")
    steps = [{"step": valid_text(s, "verification step", limit=1000), "done": False} for s in verification_steps]
    return {"root_cause": root_cause, "category": cat, "solution": solution, "verification_steps": steps}


async def resolve_in(
    c: Change,
    actor: str,
    resolution: dict[str, Any],
    via: str | None = None,
    *,
    stated_at: datetime | None = None,
    on_behalf_of: str | None = None,
) -> None:
    """The resolution (from `valid_resolution`) inside a change already begun; `via` as for
    `acknowledge_in`; `stated_at` and `on_behalf_of` as for `resolve` (checked already)."""
    incident = c.incident
    if incident.status == Status.RESOLVED.value:
        raise IllegalTransition(f"{incident.key} is already resolved (by {incident.resolved_by})")
    if stated_at is not None:
        # A resolution before the incident opened or was acknowledged would make negative figures.
        for name, earlier in (("opened", incident.created_at), ("was acknowledged", incident.acknowledged_at)):
            if earlier is not None and stated_at < earlier:
                raise InvalidInput("resolved_at", f"{stated_at.isoformat()} is before {incident.key} {name} ({earlier.isoformat()})")
    old = incident.status
    cat, root_cause = resolution["category"], resolution["root_cause"]
    incident.status = Status.RESOLVED.value
    incident.resolved_at = stated_at or c.now
    incident.resolved_by = on_behalf_of or actor
    incident.root_cause = root_cause
    incident.root_cause_category = cat
    incident.solution = resolution["solution"]
    incident.verification_steps = resolution["verification_steps"]
    data: dict[str, Any] = {"from": old, **resolution}
    if via:
        data["via"] = via
    if stated_at is not None:
        data["stated_at"] = stated_at.isoformat()
    if on_behalf_of is not None:
        data["on_behalf_of"] = on_behalf_of
    behalf = f" for {on_behalf_of}" if on_behalf_of else ""
    await c.commit("resolved", actor, f"resolved ({cat}){behalf}{' via ' + via if via else ''}: {root_cause}", data)


async def reopen(key: str | int, actor: str, *, reason: str | None = None, at: datetime | None = None) -> Incident:
    actor = valid_actor(actor)
    reason = valid_text(reason, "reason", required=False)
    now = valid_time(at)
    async with change(key, now) as c:
        incident = c.incident
        if incident.status != Status.RESOLVED.value:
            raise IllegalTransition(f"{incident.key} is not resolved (it is {incident.status})")
        previous = {"resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None, "resolved_by": incident.resolved_by}
        incident.status = Status.INVESTIGATING.value
        incident.resolved_at = None
        incident.resolved_by = None
        await c.commit("reopened", actor, "reopened" + (f": {reason}" if reason else ""), {"reason": reason or None, **previous})
    return incident


async def mark_false_positive(
    key: str | int, actor: str, *, value: bool = True, reason: str | None = None, at: datetime | None = None
) -> Incident:
    actor = valid_actor(actor)
    reason = valid_text(reason, "reason", required=False)
    now = valid_time(at)
    async with change(key, now) as c:
        incident = c.incident
        if incident.false_positive == value:
            state = "already marked" if value else "not marked"
            raise IllegalTransition(f"{incident.key} is {state} as a false positive")
        incident.false_positive = value
        summary = ("marked as false positive" if value else "no longer a false positive") + (f": {reason}" if reason else "")
        await c.commit("false_positive", actor, summary, {"value": value, "reason": reason or None})
    return incident


async def set_verification_step(key: str | int, index: int, actor: str, *, done: bool = True, at: datetime | None = None) -> Incident:
    actor = valid_actor(actor)
    now = valid_time(at)
    async with change(key, now) as c:
        incident = c.incident
        steps = [dict(s) for s in incident.verification_steps]
        if not 0 <= index < len(steps):
            raise InvalidInput("step", f"{incident.key} has {len(steps)} verification steps; there is no step {index + 1}")
        if steps[index]["done"] == done:
            raise IllegalTransition(f"step {index + 1} is already {'done' if done else 'open'}")
        steps[index]["done"] = done
        incident.verification_steps = steps
        summary = f"verification step {index + 1} {'done' if done else 'reopened'}: {steps[index]['step']}"
        await c.commit("verification_step", actor, summary, {"index": index, "done": done})
    return incident


async def set_analysis(key: str | int, section: str, data: dict[str, Any] | None, actor: str, *, at: datetime | None = None) -> Incident:
    """Store a detector's analysis (pattern recognition, correlation) on the incident, in the
    shape engine.core.analysis defines (InvalidInput naming the field when it does not fit)."""
    from engine.core.analysis import validate_section

    actor = valid_actor(actor)
    data = validate_section(section, data)
    now = valid_time(at)
    async with change(key, now) as c:
        incident = c.incident
        analysis = dict(incident.analysis or {})
        analysis[section] = data
        incident.analysis = analysis
        await c.commit("analysis", actor, analysis_summary(section, data or {}), {"section": section}, update_fields=["analysis"])
    return incident


def analysis_summary(section: str, data: dict[str, Any]) -> str:
    if section == "pattern":
        text = f"pattern: {data.get('label', 'unknown')} ({data.get('similar_count', 0)} similar in {data.get('period_days', '?')} days)"
        return text + (f"; {data['hint']}" if data.get("hint") else "")
    if section == "correlation":
        top = [f"{c['series']} {c['label']}" for c in (data.get("series") or [])[:2] if c.get("label") != "stable"]
        related = len(data.get("related_incidents") or [])
        return "correlation: " + (", ".join(top) or "no metric changed") + (f"; {related} related incident(s)" if related else "")
    return f"{section} analysis updated"

"""An incident's escalation state (`Incident.escalation`) and its steps: planning the timer of
the next step, notifying one level, stopping when someone acknowledges.

Every write here runs inside the transaction of the change (or timer) being handled."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from engine.config.runbooks import page_reference
from engine.core.clock import utcnow
from engine.core.durations import format_words
from engine.core.timefmt import format_time
from engine.escalation import contacts
from engine.escalation.context import Context
from engine.escalation.messages import iso, message_payload, write_notifications
from engine.escalation.policy import Policy
from engine.escalation.recipients import resolve_targets
from engine.incidents.services import append_system_event
from engine.storage import rows
from engine.storage.escalation_models import Timer, TimerState
from engine.storage.models import Event, Incident
from engine.storage.rows import marks

# The id of the event being handled, so saving the escalation state marks it handled too, and
# whether everything before it is handled (the change's own hook: see changes._nothing_missed).
_handling: ContextVar[tuple[int, bool] | None] = ContextVar("escalation_handling", default=None)


@contextmanager
def handling(event_id: int, complete: bool = False) -> Iterator[None]:
    """While handling this event, every save of the escalation state marks it handled."""
    token = _handling.set((event_id, complete))
    try:
        yield
    finally:
        _handling.reset(token)


# In the escalation state: the stakeholders have not heard "triggered" yet (the first step was
# held from the opening); that step tells them, and only that one.
UNTOLD = "stakeholders_untold"


async def save_escalation(conn: BaseDBAsyncClient, incident: Incident, state: dict[str, Any]) -> None:
    # A change to the row bumps its version (the detail's cache validator); the copy in hand
    # follows, so a later save of it never writes an older version back.
    incident.version += 1
    handling = _handling.get()
    if handling is not None:
        # Saved while handling an event: mark it handled in the same write.
        event_id, complete = handling
        state["seen"] = max(int(state.get("seen") or 0), int((incident.escalation or {}).get("seen") or 0), event_id)
        if complete:
            state["seen_version"] = incident.version
        else:
            state.pop("seen_version", None)
    incident.escalation = state
    # Prepared statements: these run in the transaction of every change escalation acts on.
    a, b, c = marks(conn.capabilities.dialect, 3)
    stored = Incident._meta.fields_map["escalation"].to_db_value(state, incident)
    # Held back (rows.deferring), a later save replaces this one and bumps the version for both.
    key = ("escalation", incident.id)
    held = rows.deferred(conn)
    saves = held.held(key) + 1 if held is not None else 1
    await rows.write(
        conn,
        f'UPDATE "incident" SET "escalation" = {a}, "version" = "version" + {b} WHERE "id" = {c}',
        [stored, saves, incident.id],
        key,
    )


async def cancel_pending(conn: BaseDBAsyncClient, incident_id: int, *, count: bool = True) -> int:
    """Cancel the incident's pending steps; returns how many (0 when not `count`: then the write
    may be held back with the others, see rows.deferring)."""
    a, b = marks(conn.capabilities.dialect, 2)
    fired = Timer._meta.fields_map["fired_at"].to_db_value(utcnow(), Timer)
    # A person's later contact rules wait with the escalation's steps and stop with them.
    sql = (
        f'UPDATE "escalation_timer" SET "state" = \'{TimerState.CANCELLED}\', "fired_at" = {a} '
        f"WHERE \"incident_id\" = {b} AND \"kind\" IN ('escalate', 'contact') AND \"state\" = '{TimerState.PENDING}'"
    )
    if not count:
        await rows.write(conn, sql, [fired, incident_id])
        return 0
    changed, _ = await conn.execute_query(sql, [fired, incident_id])
    return changed


async def plan(
    conn: BaseDBAsyncClient, incident: Incident, state: dict[str, Any], generation: int, level: int, round_: int, due: datetime
) -> None:
    """Write the timer of the next step (once: the key is unique) and record it in the state."""
    key = f"esc:{incident.id}:g{generation}:l{level}:r{round_}"
    await Timer.bulk_create(
        [
            Timer(
                key=key,
                kind="escalate",
                incident_id=incident.id,
                due_at=due,
                created_at=utcnow(),
                data={"generation": generation, "level": level, "round": round_},
            )
        ],
        ignore_conflicts=True,
        using_db=conn,
    )
    state["next_at"] = iso(due)
    state["next_level"] = level
    await save_escalation(conn, incident, state)


async def fire_step(
    conn: BaseDBAsyncClient,
    ctx: Context,
    incident: Incident,
    state: dict[str, Any],
    policy: Policy,
    level: int,
    round_: int,
    now: datetime,
    *,
    extra: Sequence[str] = (),
    event: Event | None = None,
    kind: str | None = None,
    message: str | None = None,
) -> list[str]:
    """Notify one level (plus `extra` stakeholders), record it, and plan the next step; or,
    while a snooze, a silence or an inhibition holds the incident's pages, plan the step for
    when the hold ends (engine.escalation.holds). Returns the destinations written to now."""
    from engine.escalation.holds import hold_step, note_released, paging_hold

    hold = await paging_hold(conn, incident, now)
    if hold is not None:
        await hold_step(conn, incident, state, level, round_, hold, now, save=save_escalation)
        return []
    await note_released(conn, incident, state, now)
    state.pop(UNTOLD, None)  # a step goes out: the stakeholders owed "triggered" are among its `extra`
    generation = int(state.get("generation") or 1)
    recipients, notes = await resolve_targets(conn, ctx, policy.levels[level - 1].notify, now, incident.created_at)
    kind = kind or policy.step_kind(level, round_)
    names = [r.label for r in recipients]
    runbook = page_reference(ctx.config, incident.trigger, list(incident.services or []))
    payload = message_payload(incident, kind, event, level=level, round=round_, recipients=names, runbook=runbook, message=message)
    # Digest mode batches the first notification; an escalation or reminder nobody answered
    # must reach its person now.
    digest = policy.digest_interval_minutes if policy.digest_mode and (level, round_) == (1, 1) else None
    key_prefix = f"{incident.key}:g{generation}:l{level}:r{round_}"
    # A person with contact rules is reached through them; everyone else as before.
    ruled: dict[str, list[contacts.Delivery]] = {}
    for r in recipients:
        user = ctx.users.get(r.user) if r.user else None
        plan_ = contacts.deliveries(user) if user is not None else []
        if plan_:
            ruled[r.destination] = plan_
    direct = [r.destination for r in recipients if r.destination not in ruled]
    dests = direct + [d for d in extra if d not in {r.destination for r in recipients}]
    await write_notifications(conn, incident, dests, payload, key_prefix, digest_minutes=digest, now=now)
    contact_notes: list[str] = []
    for r in recipients:
        for d in ruled.get(r.destination, []):
            if d.after <= 0:
                await contacts.send_now(conn, incident, d, payload, key_prefix, now)
                dests.append(d.destination)
            else:
                await contacts.plan_later(conn, incident, d, payload, key_prefix, generation, now)
        if r.destination in ruled:
            contact_notes.append(f"{r.user} by " + ", then ".join(d.describe() for d in ruled[r.destination]))
    nxt = policy.next_step(level, round_)
    state.update({"level": level, "round": round_, "last_at": iso(now)})
    if nxt is None:
        state["next_at"] = None
    what = {
        "triggered": f"level {level} notified",
        "escalated": f"escalated to level {level}",
        "reminder": f"reminder {round_} to level {level}",
    }.get(kind, f"level {level} notified ({kind})")
    summary = f"{what}: {', '.join(names) or 'nobody reachable'}" + (f" ({'; '.join(notes)})" if notes else "")
    if contact_notes:
        summary += f"; {'; '.join(contact_notes)}"
    if nxt is not None:
        due = now + timedelta(minutes=nxt[2])
        summary += f"; next step at {format_time(due, seconds=True, now=now)} unless acknowledged"  # the configured zone
    elif policy.handoff == "pagerduty":
        summary += "; PagerDuty escalates from here by its own policy"
    await append_system_event(
        conn,
        incident,
        "escalation",
        summary,
        {
            "level": level,
            "round": round_,
            "recipients": names,
            "destinations": dests,
            "notes": notes,
            "kind": kind,
            "contact_rules": contact_notes,
        },
        now,
    )
    if nxt is not None:
        await plan(conn, incident, state, generation, nxt[0], nxt[1], now + timedelta(minutes=nxt[2]))
    else:
        await save_escalation(conn, incident, state)
    return dests


async def stop(conn: BaseDBAsyncClient, incident: Incident, now: datetime, why: str, *, cancelled: int | None = None) -> None:
    """Cancel what is pending (acknowledged, or no longer open) and say so on the timeline;
    `cancelled`: the pending steps were cancelled already, this many."""
    state = dict(incident.escalation or {})
    if not state or state.get("stopped_at"):
        if cancelled is None:  # how many is not needed: the write may be held back (rows.deferring)
            await cancel_pending(conn, incident.id, count=False)
        return
    if cancelled is None:
        cancelled = await cancel_pending(conn, incident.id)
    state["next_at"] = None
    state["stopped_at"] = iso(now)
    state.pop("snoozed_until", None)  # acknowledging or resolving ends a snooze
    state.pop("held", None)
    if incident.acknowledged_at is not None and incident.created_at is not None:
        state["time_to_ack_seconds"] = round((incident.acknowledged_at - incident.created_at).total_seconds(), 3)
    reason = f"acknowledged by {incident.acknowledged_by}" if incident.acknowledged_at else f"incident {incident.status}"
    state["stopped"] = reason
    await save_escalation(conn, incident, state)
    if cancelled or state.get("level"):
        took = ""
        if "time_to_ack_seconds" in state:
            took = f" after {format_words(state['time_to_ack_seconds'])}"
        await append_system_event(
            conn,
            incident,
            "escalation_stopped",
            f"escalation stopped: {reason}{took}",
            {"cancelled_steps": cancelled, "reason": reason, "time_to_ack_seconds": state.get("time_to_ack_seconds")},
            now,
        )

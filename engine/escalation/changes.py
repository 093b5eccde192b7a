"""From incident changes to outbox rows and timers, inside the change's own transaction.

`change_handler(ctx)` is the service-layer change hook (see engine.escalation.wiring for who
subscribes it): creating an incident writes its first notifications and the timer of its next
escalation step in the same transaction; an acknowledgement cancels what is pending; a
severity change re-plans; a resolution cancels the escalation and tells everyone who heard of
the incident. `catch_up_feed` handles, from the engine loop, what changed without the hook.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from engine.config.runbooks import page_reference
from engine.core.clock import utcnow
from engine.escalation.context import OPEN, Context
from engine.escalation.destinations import external_destinations, internal_destinations, reached_before
from engine.escalation.holds import hold_step, paging_hold
from engine.escalation.messages import iso, message_payload, snapshot, write_notifications
from engine.escalation.policy import Policy, policy_for
from engine.escalation.steps import UNTOLD, cancel_pending, fire_step, handling, plan, save_escalation, stop
from engine.incidents.hooks import ChangeHook, change_rows
from engine.incidents.services import append_system_event
from engine.incidents.services.silences import release_holds
from engine.notify.render import public_incident
from engine.storage import rows
from engine.storage.escalation_models import Notification, Timer, TimerState
from engine.storage.models import Event, Incident, StatusUpdate
from engine.storage.rows import marks

# --- the change hook --------------------------------------------------------------------------


# The changes escalation reacts to. Each handled one is marked on the incident
# (`escalation.seen`, the last event id handled), so a change made by a process without the
# hook is caught up later: by the next hooked change of that incident, or by the engine.
RELEVANT = (
    "created",
    "acknowledged",
    "status_changed",
    "status_update",
    "severity_changed",
    "resolved",
    "reopened",
    "snoozed",
    "unsnoozed",
)


# The changes every responder makes by the hundred: handled alone (no missed change replayed
# with them), they cancel timers, save the state and write outbox rows and timeline entries, and
# read only before any of it (see _handle), so those writes can be held back and sent together.
_HELD_BACK = frozenset({"acknowledged", "status_update", "status_changed"})

# Changes no hook saw are replayed only this far back: older ones are history (an incident
# imported, or written before escalation ran, is not paged for when someone acknowledges it).
REPLAY_HORIZON = timedelta(days=1)

# Every change escalation acts on looks for the incident's earlier ones it missed: a prepared query.
_RELEVANT_SQL = 'AND "kind" IN (' + ", ".join(f"'{kind}'" for kind in RELEVANT) + ")"


def change_handler(ctx: Context) -> ChangeHook:
    """The service-layer change hook planning escalation with `ctx`; it runs inside each
    change's transaction."""

    async def on_change(incident: Incident | None, event: Event, conn: BaseDBAsyncClient) -> None:
        ready = _taken_ahead(incident, ctx)
        if incident is None or event.kind not in RELEVANT:
            return
        state = incident.escalation or {}
        if int(state.get("seen") or 0) >= event.id:
            return  # handled already: another engine in this process has its own hook
        # `ready`: ahead found nothing missed (and read what the change needs).
        alone = ready is not None or _nothing_missed(incident, event.kind)
        if not alone:
            await _catch_up(conn, ctx, incident, before=event.id)
        # Handled alone, their writes go as one statement (rows.deferring): none reads another's.
        async with rows.deferring(conn) if alone and event.kind in _HELD_BACK else nullcontext():
            await _handle_marked(conn, ctx, incident, event, event.at or utcnow(), complete=True, ready=ready)

    async def ahead(incident: Incident | None, kind: str, data: dict[str, Any], conn: BaseDBAsyncClient) -> None:
        """Before the change's event is written, when no change of the incident was missed
        (nothing to replay; the incident's lock keeps it so): what handling it alone reads, and
        the pending steps it cancels. On PostgreSQL the event takes the change feed's lock until
        commit, so these round trips no longer hold it (see timeline.append_event)."""
        if incident is None or kind not in _HELD_BACK:
            return
        if not _nothing_missed(incident, kind) and await _missed(conn, incident):
            return  # replayed first, by on_change
        reached = await reached_before(conn, incident.id) if _acked_now(kind, data) else None
        # A stopped escalation's leftovers are cancelled with the held-back writes (see stop).
        stopped = bool((incident.escalation or {}).get("stopped_at"))
        cancelled = await cancel_pending(conn, incident.id) if _stopping(incident) and not stopped else None
        ready: dict[int, Ready] = incident.__dict__.setdefault("_escalation_ready", {})
        ready[id(ctx)] = Ready(reached, cancelled)

    on_change.ahead = ahead  # type: ignore[attr-defined]
    return on_change


@dataclass(frozen=True)
class Ready:
    """What `ahead` did for a change: the destinations reached before it (acknowledgements
    only) and how many pending steps it cancelled (when the change stops the escalation)."""

    reached: tuple[list[str], list[dict[str, Any]]] | None
    cancelled: int | None


def _taken_ahead(incident: Incident | None, ctx: Context) -> Ready | None:
    ready = incident.__dict__.get("_escalation_ready") if incident is not None else None
    return ready.pop(id(ctx), None) if ready else None


def _acked_now(kind: str, data: dict[str, Any]) -> bool:
    return bool(
        kind == "acknowledged"
        or (kind == "status_changed" and data.get("acknowledged"))
        or (kind == "status_update" and data.get("from") == "triggered" and data.get("to") != "triggered")
    )


def _stopping(incident: Incident) -> bool:
    """Whether a change of the incident stops its escalation (see _handle)."""
    return incident.acknowledged_at is not None or incident.status not in OPEN


def _nothing_missed(incident: Incident, kind: str) -> bool:
    """Whether the incident cannot have changes no hook saw before this change (of `kind`),
    without reading them: it is new, or the last change before this one was handled by a hook
    (the state was saved at the version this change's lock bumped from; any other change bumps
    it too)."""
    state = incident.escalation or {}
    if not state.get("seen"):
        return kind == "created"
    return state.get("seen_version") == incident.version - 1


async def _missed(conn: BaseDBAsyncClient, incident: Incident, before: int | None = None) -> list[Event]:
    """This incident's changes (before event id `before`) that no hook saw, to replay."""
    seen = int((incident.escalation or {}).get("seen") or 0)
    a, b, c, d = marks(conn.capabilities.dialect, 4)
    since = Event._meta.fields_map["at"].to_db_value(utcnow() - REPLAY_HORIZON, Event)
    found = await conn.execute_query_dict(
        f'SELECT * FROM "event" WHERE "incident_id" = {a} AND "id" > {b} AND "id" < {c} AND "at" >= {d} {_RELEVANT_SQL} ORDER BY "id"',
        [incident.id, seen, before if before is not None else 2**62, since],
    )
    missed = [Event._init_from_db(**row) for row in found]
    if seen == 0 and missed and missed[0].kind != "created":
        return []  # the incident predates escalation tracking: nothing to replay
    return missed


async def _catch_up(conn: BaseDBAsyncClient, ctx: Context, incident: Incident, before: int | None) -> int:
    """Handle this incident's changes that no hook saw (made by a process without one). With no
    `before`, all of them, under the incident's lock: the last one's mark then records the
    version too, so the incident's next hooked change need not look for missed ones again."""
    missed = await _missed(conn, incident, before)
    for i, ev in enumerate(missed):
        await _handle_marked(conn, ctx, incident, ev, utcnow(), complete=before is None and i == len(missed) - 1)
    return len(missed)


async def _mark_seen(conn: BaseDBAsyncClient, incident: Incident, event_id: int, complete: bool) -> None:
    state = dict(incident.escalation or {})
    if int(state.get("seen") or 0) >= event_id and (not complete or state.get("seen_version") == incident.version):
        return  # a handler saved the state, and the mark with it
    state["seen"] = event_id
    await save_escalation(conn, incident, state)


async def _handle_marked(
    conn: BaseDBAsyncClient,
    ctx: Context,
    incident: Incident,
    event: Event,
    now: datetime,
    *,
    complete: bool = False,
    ready: Ready | None = None,
) -> None:
    """Handle `event` and mark it handled. `complete`: every earlier change of the incident is
    handled too, and no later one can exist (the change's own hook, under its lock), so the
    mark also records the version it was saved at (see _nothing_missed). `ready`: what the
    hook's `ahead` read and cancelled for this change before its event."""
    with handling(event.id, complete):
        await _handle(conn, ctx, incident, event, now, ready)
        await _mark_seen(conn, incident, event.id, complete)


async def _handle(
    conn: BaseDBAsyncClient, ctx: Context, incident: Incident, event: Event, now: datetime, ready: Ready | None = None
) -> None:
    kind = event.kind
    data = event.data or {}
    if kind == "created":
        await _on_created(conn, ctx, incident, event, now)
        if _stopping(incident):
            await stop(conn, incident, now, kind)  # replayed late: it was handled by hand meanwhile
        return
    acked_now = _acked_now(kind, data)
    # Read before anything is written: the writes below may be held back (_HELD_BACK).
    if ready is not None:
        reached = ready.reached
    else:
        reached = await reached_before(conn, incident.id) if acked_now else None
    if _stopping(incident):
        await stop(conn, incident, now, kind, cancelled=ready.cancelled if ready is not None else None)
    if acked_now:
        await _fan_out(conn, ctx, incident, event, "acknowledged", now, before=True, reached=reached)
    if incident.severity == "critical" and kind == "resolved" or (kind == "severity_changed" and data.get("from") == "critical"):
        # It may have inhibited others' pages: re-check them now.
        await release_holds(conn, now)
    if kind == "snoozed":
        await _on_snoozed(conn, ctx, incident, event, now)
        return
    if kind == "severity_changed":
        await _on_severity(conn, ctx, incident, event, now)
    elif kind in ("status_changed", "status_update"):
        await _on_status(conn, ctx, incident, event, now)
    elif kind == "resolved":
        await _fan_out(conn, ctx, incident, event, "resolved", now, before=True, stakeholders=True)
        if await Notification.filter(incident_id=incident.id, audience="external").using_db(conn).exists():
            await _external(conn, ctx, incident, event, "resolved", None, now)
    elif kind == "reopened":
        # Nobody owns it (resolved unacknowledged, by a recovery say): it pages again from the
        # first level, which tells the people it reaches; otherwise everyone it reached hears.
        unowned = incident.acknowledged_at is None and incident.status in OPEN
        reason = data.get("reason")
        # The page goes first; a channel that is both paged and a stakeholder hears it once.
        paged = await _replan(conn, ctx, incident, event, now, "reopened", message=reason) if unowned else []
        await _fan_out(conn, ctx, incident, event, "reopened", now, before=not unowned, stakeholders=True, message=reason, skip=paged)
        # Customers told it was resolved hear it is not (the reason is internal text: not sent).
        if await Notification.filter(incident_id=incident.id, audience="external", kind="resolved").using_db(conn).exists():
            await _external(conn, ctx, incident, event, "reopened", None, now)


async def _on_snoozed(conn: BaseDBAsyncClient, ctx: Context, incident: Incident, event: Event, now: datetime) -> None:
    """Pause the escalation: its next step (or, when none is left, the last one again) waits
    for the snooze's end, in a new generation so the re-page is a fresh notification."""
    if incident.acknowledged_at is not None or incident.status not in OPEN:
        return
    state = dict(incident.escalation or {})
    if not state.get("policy"):
        return  # nobody is paged for it: nothing to pause
    if int(state.get("level") or 0) > 0:
        level, round_ = int(state["level"]), max(int(state.get("round") or 1), 1)
    else:
        pending = (
            await Timer.filter(incident_id=incident.id, kind="escalate", state=TimerState.PENDING).using_db(conn).order_by("due_at").first()
        )
        level, round_ = (int(pending.data.get("level") or 1), int(pending.data.get("round") or 1)) if pending else (1, 1)
    await cancel_pending(conn, incident.id)
    state["generation"] = int(state.get("generation") or 0) + 1
    state.pop("stopped", None)
    hold = await paging_hold(conn, incident, now)
    if hold is None:  # the snooze already ended (replayed late): page now
        policy = Policy.from_json(state["policy"])
        if level <= len(policy.levels):
            await fire_step(conn, ctx, incident, state, policy, level, round_, now)
        return
    await hold_step(conn, incident, state, level, round_, hold, now, save=save_escalation)


async def _on_created(conn: BaseDBAsyncClient, ctx: Context, incident: Incident, event: Event, now: datetime) -> None:
    policy = policy_for(ctx.config, incident.severity, incident.services or ())
    state: dict[str, Any] = {
        "generation": 1,
        "policy": policy.to_json() if policy else None,
        "level": 0,
        "round": 0,
        "next_at": None,
        "opened_at": iso(now),
    }
    if policy is not None and policy.levels and incident.acknowledged_at is None and incident.status in OPEN:
        hold = await paging_hold(conn, incident, now)
        if hold is not None:
            # Silenced or inhibited from the start: nobody hears of it until the hold ends,
            # then the first step pages (with the stakeholders) as it would have.
            level, round_, delay = policy.first_step()
            if delay > 0:
                hold = replace(hold, until=max(hold.until, now + timedelta(minutes=delay)))
            state[UNTOLD] = True
            await hold_step(conn, incident, state, level, round_, hold, now, save=save_escalation)
            return
    digest = policy.digest_interval_minutes if policy and policy.digest_mode else None
    stakeholders = internal_destinations(ctx, "triggered")

    async def tell_stakeholders() -> None:
        await write_notifications(
            conn,
            incident,
            stakeholders,
            message_payload(
                incident, "triggered", event, runbook=page_reference(ctx.config, incident.trigger, list(incident.services or []))
            ),
            f"{incident.key}:e{event.id}",
            digest_minutes=digest,
            now=now,
        )

    if policy is None or not policy.levels:
        state["stopped"] = f"no escalation policy for {incident.severity}" if policy is None else "the policy names nobody"
        await save_escalation(conn, incident, state)
        await tell_stakeholders()
        return
    level, round_, delay = policy.first_step()
    if delay > 0 or incident.acknowledged_at is not None or incident.status not in OPEN:
        await tell_stakeholders()
        if incident.acknowledged_at is None and incident.status in OPEN:
            await plan(conn, incident, state, 1, level, round_, now + timedelta(minutes=delay))
        else:
            await save_escalation(conn, incident, state)
        return
    await fire_step(conn, ctx, incident, state, policy, level, round_, now, extra=stakeholders, event=event)


async def _fan_out(
    conn: BaseDBAsyncClient,
    ctx: Context,
    incident: Incident,
    event: Event,
    kind: str,
    now: datetime,
    *,
    before: bool = False,
    stakeholders: bool = False,
    message: str | None = None,
    reached: tuple[list[str], list[dict[str, Any]]] | None = None,
    skip: Sequence[str] = (),
    public: bool | None = None,
) -> None:
    """Tell of `kind`: with `before`, everyone the incident reached (`reached`, when read
    already), with `stakeholders` the stakeholders of that kind; none of `skip` (paged of the
    same change already); `public`: a status update's audience, said in the message."""
    dests: list[str] = []
    people: list[dict[str, Any]] = []
    if before:
        plain, people = reached if reached is not None else await reached_before(conn, incident.id)
        dests += [d for d in plain if kind != "acknowledged" or d != "jira"]
    if stakeholders:
        dests += internal_destinations(ctx, kind)
    if skip:
        dests = [d for d in dests if d not in skip]
        people = [p for p in people if p.get("destination") not in skip]
    if kind == "resolved" and message is None:
        message = (event.data or {}).get("root_cause")
        if message:
            message = f"Root cause: {message}"
    policy = Policy.from_json((incident.escalation or {}).get("policy") or {}) if (incident.escalation or {}).get("policy") else None
    digest = policy.digest_interval_minutes if policy and policy.digest_mode else None
    await write_notifications(
        conn,
        incident,
        dests,
        message_payload(incident, kind, event, message=message, public=public),
        f"{incident.key}:e{event.id}:{kind}",
        digest_minutes=digest,
        now=now,
    )
    # People paged through their contact rules hear the rest the same way, addressed to them.
    for person in people:
        contact = {k: v for k, v in person.items() if k != "destination"}
        await write_notifications(
            conn,
            incident,
            [person["destination"]],
            {**message_payload(incident, kind, event, message=message, public=public), "contact": contact},
            f"{incident.key}:e{event.id}:{kind}:{contact.get('user')}:{contact.get('method')}",
            now=now,
        )


async def _on_severity(conn: BaseDBAsyncClient, ctx: Context, incident: Incident, event: Event, now: datetime) -> None:
    data = event.data or {}
    message = f"Severity {data.get('from')} → {data.get('to')}" + (f": {data['reason']}" if data.get("reason") else "")
    paged: list[str] = []
    if incident.acknowledged_at is None and incident.status in OPEN:
        # Unacknowledged: the new severity's policy takes over from its first level, whose page
        # (with its acknowledge links) is all its people and channels hear of the change.
        paged = await _replan(conn, ctx, incident, event, now, "severity_changed", message=message)
    await _fan_out(conn, ctx, incident, event, "severity_changed", now, before=True, stakeholders=True, message=message, skip=paged)


async def _replan(
    conn: BaseDBAsyncClient, ctx: Context, incident: Incident, event: Event, now: datetime, kind: str, *, message: str | None = None
) -> list[str]:
    """Escalate the unacknowledged incident again from its policy's first level, in a new
    generation (what was pending is cancelled; a stopped escalation starts anew). Returns the
    destinations paged now (none when the first step waits)."""
    await cancel_pending(conn, incident.id)
    old = dict(incident.escalation or {})
    policy = policy_for(ctx.config, incident.severity, incident.services or ())
    state: dict[str, Any] = {
        **old,
        "generation": int(old.get("generation") or 0) + 1,
        "policy": policy.to_json() if policy else None,
        "level": 0,
        "round": 0,
        "next_at": None,
    }
    for done in ("stopped", "stopped_at", "time_to_ack_seconds", UNTOLD):
        state.pop(done, None)
    if policy is None or not policy.levels:
        state["stopped"] = f"no escalation policy for {incident.severity}"
        await save_escalation(conn, incident, state)
        await append_system_event(
            conn,
            incident,
            "escalation_stopped",
            f"escalation stopped: no escalation policy for {incident.severity}",
            {"reason": state["stopped"]},
            now,
        )
        return []
    level, round_, delay = policy.first_step()
    if delay > 0:
        await plan(conn, incident, state, state["generation"], level, round_, now + timedelta(minutes=delay))
        return []
    return await fire_step(conn, ctx, incident, state, policy, level, round_, now, event=event, kind=kind, message=message)


async def _on_status(conn: BaseDBAsyncClient, ctx: Context, incident: Incident, event: Event, now: datetime) -> None:
    data = event.data or {}
    message: str | None = data.get("message")
    public = bool(data.get("public"))
    if event.kind == "status_update" and data.get("update_id"):
        row = next((r for r in change_rows.get() if isinstance(r, StatusUpdate) and r.id == data["update_id"]), None)
        if row is None:  # a change replayed later
            row = await StatusUpdate.filter(id=data["update_id"]).using_db(conn).first()
        if row is not None:
            message, public = row.message, row.public
    if not message and data.get("from") == data.get("to"):
        return
    await _fan_out(conn, ctx, incident, event, "status_update", now, stakeholders=True, message=message, public=public if message else None)
    if public and message:
        await _external(conn, ctx, incident, event, "status_update", message, now)


async def _external(
    conn: BaseDBAsyncClient, ctx: Context, incident: Incident, event: Event, kind: str, message: str | None, now: datetime
) -> None:
    """Customers hear public updates only: public fields of the incident and the public message,
    and only of incidents the status page shows (the same rule as engine.rest.statuspage.visibility)."""
    dests = external_destinations(ctx)
    if not dests:
        return
    private = {s.name for s in ctx.config.services if not s.public}
    if incident.false_positive or incident.merged_into is not None:
        return
    if incident.services and all(n in private for n in incident.services):
        return  # only private services: its public text is written for nobody outside
    shown = {s.name: s.display_name or s.name for s in ctx.config.services if s.public}
    names = [shown.get(n, n) for n in incident.services or [] if n in shown or not any(s.name == n for s in ctx.config.services)]
    payload = {"kind": kind, "incident": public_incident(snapshot(incident), names), "message": message, "at": iso(now)}
    await write_notifications(conn, incident, dests, payload, f"{incident.key}:e{event.id}:ext", audience="external", now=now)


async def has_events_after(cursor: int) -> bool:
    """Whether the change feed holds relevant changes of the last day after `cursor`."""
    since = utcnow() - REPLAY_HORIZON
    return await Event.filter(id__gt=cursor, kind__in=RELEVANT, at__gte=since).exclude(incident_id=None).exists()


async def catch_up_feed(ctx: Context, cursor: int, limit: int = 200) -> tuple[int, int]:
    """Handle relevant changes no hook saw, following the change feed from `cursor`.

    Returns (new cursor, incidents caught up). Only the last day is looked at, so an engine
    starting on an old database does not replay history.
    """
    since = utcnow() - REPLAY_HORIZON
    rows = (
        await Event.filter(id__gt=cursor, kind__in=RELEVANT, at__gte=since)
        .exclude(incident_id=None)
        .order_by("id")
        .limit(limit)
        .values("id", "incident_id")
    )
    if not rows:
        return cursor, 0
    last: dict[int, int] = {}
    for r in rows:
        last[r["incident_id"]] = r["id"]
    states = dict(await Incident.filter(id__in=list(last)).values_list("id", "escalation"))
    done = 0
    for incident_id, event_id in last.items():
        if int((states.get(incident_id) or {}).get("seen") or 0) >= event_id:
            continue
        async with in_transaction() as conn:
            incident = await Incident.filter(id=incident_id).select_for_update().using_db(conn).first()
            if incident is None:
                continue
            if await _catch_up(conn, ctx, incident, before=None):
                done += 1
    return rows[-1]["id"], done

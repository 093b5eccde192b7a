"""From incident changes to outbox rows and timers, inside the change's own transaction.

`install(config)` registers `on_change` as a service-layer change hook: creating an incident
writes its first notifications and the timer of its next escalation step in the same
transaction; an acknowledgement cancels what is pending; a severity change re-plans; a
resolution cancels the escalation and tells everyone who heard of the incident.

`fire_due_timers()` is the engine loop's half: it claims due timer rows and fires each once
(the claim, the notifications it writes and the timer's new state commit together, so a
process killed at any point either fired a step completely or not at all).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from engine.core.clock import utcnow as utcnow  # re-exported: the timer loop reads the planner's clock, which tests move
from engine.core.durations import format_words
from engine.escalation.policy import Policy, policy_for
from engine.incidents.services import SYSTEM_ACTOR, append_system_event
from engine.notify import outbox
from engine.notify.destinations import describe
from engine.notify.render import public_incident
from engine.storage.escalation_models import Notification, NotificationState, Timer, TimerState
from engine.storage.models import Event, Incident, StatusUpdate

log = logging.getLogger(__name__)
ACTOR = SYSTEM_ACTOR
OPEN = {"triggered", "investigating", "identified", "monitoring"}
# The id of the event being handled, so saving the escalation state marks it handled too.
_handling: ContextVar[int | None] = ContextVar("escalation_handling", default=None)


# --- the configuration the hooks work with ---------------------------------------------------


@dataclass
class Context:
    config: Any
    schedules: dict[str, Any] = field(default_factory=dict)
    users: dict[str, Any] = field(default_factory=dict)
    # schedule name -> user ids PagerDuty has on call (refreshed by the engine loop)
    pagerduty_oncall: dict[str, list[str]] = field(default_factory=dict)
    wake: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def build(cls, config: Any) -> Context:
        from engine.core.domain import InvalidInput
        from engine.oncall.schedule import build_schedule

        schedules = {}
        for i, raw in enumerate(config.schedules):
            try:
                s = build_schedule(raw, config.engine.timezone, f"schedules[{i}]")
            except InvalidInput as exc:
                # One unusable schedule must not silence every escalation: skip it, loudly.
                log.error("schedule ignored: %s", exc)
                continue
            schedules[s.name] = s
        return cls(config, schedules, {u.id: u for u in config.users})


_context: Context | None = None


def install(config: Any) -> Context:
    """Use `config` for every incident change in this process (idempotent; call again on reload)."""
    from engine.incidents import services

    global _context
    wake = _context.wake if _context is not None else []
    _context = Context.build(config)
    _context.wake = wake
    services.add_change_hook(on_change)
    return _context


def uninstall() -> None:
    from engine.incidents import services

    global _context
    services.remove_change_hook(on_change)
    _context = None


def context() -> Context | None:
    return _context


def _wake() -> None:
    if _context is not None:
        for fn in list(_context.wake):
            fn()


# --- snapshots and payloads -------------------------------------------------------------------


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def snapshot(incident: Incident) -> dict[str, Any]:
    """What a notification says about the incident (the internal view)."""
    return {
        "key": incident.key,
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "services": list(incident.services or []),
        "created_at": _iso(incident.created_at),
        "acknowledged_at": _iso(incident.acknowledged_at),
        "acknowledged_by": incident.acknowledged_by,
        "resolved_at": _iso(incident.resolved_at),
        "resolved_by": incident.resolved_by,
        "assignee": incident.assignee,
        "description": incident.description or "",
    }


@dataclass
class Recipient:
    destination: str
    label: str  # how the timeline names them: "alice (schedule primary)"
    user: str | None = None  # a person, when the entry reached one
    via: str | None = None  # the schedule they were reached through: "primary", "next on primary"

    @property
    def short(self) -> str:
        """How a chain names them: "alice (primary)", "#incidents"."""
        if self.user is None:
            return self.label
        return f"{self.user} ({self.via})" if self.via else self.user


def _scheduled(notify: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(e.partition(":")[2] for e in notify if e.partition(":")[0] in ("schedule", "next")))


async def overrides_for(conn: BaseDBAsyncClient | None, schedules: Iterable[str], at: datetime) -> dict[str, list[Any]]:
    """Run-time overrides of these schedules that have not ended by `at` (none without a database)."""
    from engine.oncall.schedule import Override
    from engine.storage.oncall_models import OncallOverride

    names = list(schedules)
    if conn is None or not names:
        return {}
    rows = await OncallOverride.filter(schedule__in=names, cancelled_at=None, ends_at__gt=at).using_db(conn).order_by("id")
    out: dict[str, list[Any]] = {}
    for r in rows:
        out.setdefault(r.schedule, []).append(Override(r.user, r.starts_at, r.ends_at, r.covers, r.id, r.reason))
    return out


def resolve_entries(
    ctx: Context, notify: Iterable[str], at: datetime, overrides: dict[str, list[Any]] | None = None, since: datetime | None = None
) -> tuple[list[Recipient], list[str]]:
    """Level entries → concrete destinations at `at` (schedules become whoever is on call then).
    `next:` is whoever takes over after the person on call at `since` (the incident's opening),
    so a hand-off between two levels never pages the first person twice. Returns the
    recipients and notes on anyone who could not be reached. The pages sent and every printed
    chain come from here."""
    overrides = overrides or {}
    since = min(since, at) if since is not None else at
    out: list[Recipient] = []
    notes: list[str] = []

    def add_user(user_id: str, via: str | None) -> None:
        if via is None:
            why = ""
        elif via.startswith("next on "):
            why = f" (next on schedule {via.removeprefix('next on ')})"
        else:
            why = f" (schedule {via})"
        user = ctx.users.get(user_id)
        if user is None or not getattr(user, "email", None):
            notes.append(f"{user_id}{why} has no e-mail address")
            return
        out.append(Recipient(f"email:{user.email}", f"{user_id}{why}", user_id, via))

    for entry in notify:
        kind, _, value = entry.partition(":")
        if kind in ("schedule", "next"):
            sched = ctx.schedules.get(value)
            if sched is None:
                notes.append(f"no schedule {value!r}")
                continue
            if sched.source and sched.source.startswith("pagerduty:"):
                people = ctx.pagerduty_oncall.get(value) or []
                if not people:
                    notes.append(f"schedule {value}: PagerDuty has not said who is on call")
                for uid in people if kind == "schedule" else ():
                    add_user(uid, value)
                continue
            extra = overrides.get(value, [])
            if kind == "schedule":
                who = sched.who(at, extra)[0]
                if who is None:
                    notes.append(f"nobody is on call on {value}")
                else:
                    add_user(who, value)
                continue
            nxt = sched.next_handoff(since, extra)
            if nxt is None or nxt.user is None:
                notes.append(f"nobody takes over after the person on call on {value}")
            else:
                add_user(nxt.user, f"next on {value}")
        elif kind == "user":
            add_user(value, None)
        elif kind in ("slack", "email", "webhook", "pagerduty", "jira"):
            out.append(Recipient(entry, describe(entry)))
        else:
            notes.append(f"unknown recipient {entry!r}")
    seen: set[str] = set()
    unique = [r for r in out if not (r.destination in seen or seen.add(r.destination))]  # type: ignore[func-returns-value]
    return unique, notes


async def resolve_targets(
    conn: BaseDBAsyncClient | None, ctx: Context, notify: Iterable[str], at: datetime, since: datetime | None = None
) -> tuple[list[Recipient], list[str]]:
    """`resolve_entries` with the run-time overrides read from the database."""
    notify = list(notify)
    start = min(since, at) if since is not None else at
    return resolve_entries(ctx, notify, at, await overrides_for(conn, _scheduled(notify), start), since)


async def write_notifications(*args: Any, **kwargs: Any) -> int:
    """The outbox writer (engine.notify.outbox), waking this process's deliverer when a row is
    due at once."""
    kwargs["now"] = kwargs.get("now") or utcnow()
    return await outbox.write_notifications(*args, wake=_wake, **kwargs)


async def _save_escalation(conn: BaseDBAsyncClient, incident: Incident, state: dict[str, Any]) -> None:
    handling = _handling.get()
    if handling is not None:
        # Saved while handling an event: mark it handled in the same write.
        state["seen"] = max(int(state.get("seen") or 0), int((incident.escalation or {}).get("seen") or 0), handling)
    incident.escalation = state
    await Incident.filter(id=incident.id).using_db(conn).update(escalation=state)


async def _cancel_pending(conn: BaseDBAsyncClient, incident_id: int) -> int:
    return (
        await Timer.filter(incident_id=incident_id, kind="escalate", state=TimerState.PENDING)
        .using_db(conn)
        .update(state=TimerState.CANCELLED, fired_at=utcnow())
    )


# --- stakeholders -----------------------------------------------------------------------------


def _internal_destinations(ctx: Context, kind: str) -> list[str]:
    cfg = ctx.config
    out: list[str] = []
    slack = cfg.integrations.slack
    if slack is not None:
        if slack.status_updates or kind in ("triggered", "resolved"):
            out += [f"slack:{c}" for c in slack.incident_channels]
        out += [f"slack:{c}" for c in cfg.notifications.internal.slack_channels]
    if cfg.integrations.email is not None:
        out += [f"email:{a}" for a in cfg.notifications.internal.email_groups]
    jira = cfg.integrations.jira
    if (
        jira is not None
        and jira.configured
        and ((kind == "triggered" and jira.auto_create_tickets) or (kind == "resolved" and jira.sync_status))
    ):
        out.append("jira")
    return out


def _external_destinations(ctx: Context) -> list[str]:
    cfg = ctx.config
    if cfg.integrations.email is None:
        return []
    return [f"email:{a}" for a in cfg.notifications.external.customer_emails]


async def _notified_before(conn: BaseDBAsyncClient, incident_id: int) -> list[str]:
    rows = (
        await Notification.filter(incident_id=incident_id, audience="internal")
        .exclude(state=NotificationState.CANCELLED)
        .using_db(conn)
        .order_by("id")
        .values_list("destination", flat=True)
    )
    return list(dict.fromkeys(cast("list[str]", rows)))  # Tortoise types a flat values_list as tuples


# --- the change hook --------------------------------------------------------------------------


# The changes escalation reacts to. Each handled one is marked on the incident
# (`escalation.seen`, the last event id handled), so a change made by a process without the
# hook is caught up later: by the next hooked change of that incident, or by the engine.
RELEVANT = ("created", "acknowledged", "status_changed", "status_update", "severity_changed", "resolved", "reopened")


async def on_change(incident: Incident | None, event: Event, conn: BaseDBAsyncClient) -> None:
    """Service-layer change hook: runs inside the change's transaction."""
    ctx = _context
    if ctx is None or incident is None or event.kind not in RELEVANT:
        return
    await _catch_up(conn, ctx, incident, before=event.id)
    await _handle_marked(conn, ctx, incident, event, event.at or utcnow())


async def _catch_up(conn: BaseDBAsyncClient, ctx: Context, incident: Incident, before: int) -> int:
    """Handle this incident's changes that no hook saw (made by a process without one)."""
    seen = int((incident.escalation or {}).get("seen") or 0)
    missed = await Event.filter(incident_id=incident.id, id__gt=seen, id__lt=before, kind__in=RELEVANT).using_db(conn).order_by("id")
    if seen == 0 and missed and missed[0].kind != "created":
        missed = []  # the incident predates escalation tracking: nothing to replay
    for ev in missed:
        await _handle_marked(conn, ctx, incident, ev, utcnow())
    return len(missed)


async def _mark_seen(conn: BaseDBAsyncClient, incident: Incident, event_id: int) -> None:
    state = dict(incident.escalation or {})
    if int(state.get("seen") or 0) >= event_id:
        return  # a handler saved the state, and the mark with it
    state["seen"] = event_id
    await _save_escalation(conn, incident, state)


async def _handle_marked(conn: BaseDBAsyncClient, ctx: Context, incident: Incident, event: Event, now: datetime) -> None:
    token = _handling.set(event.id)
    try:
        await _handle(conn, ctx, incident, event, now)
    finally:
        _handling.reset(token)
    await _mark_seen(conn, incident, event.id)


async def _handle(conn: BaseDBAsyncClient, ctx: Context, incident: Incident, event: Event, now: datetime) -> None:
    kind = event.kind
    data = event.data or {}
    if kind == "created":
        await _on_created(conn, ctx, incident, event, now)
        if incident.acknowledged_at is not None or incident.status not in OPEN:
            await _stop(conn, incident, now, kind)  # replayed late: it was handled by hand meanwhile
        return
    if incident.acknowledged_at is not None or incident.status not in OPEN:
        await _stop(conn, incident, now, kind)
    acked_now = (
        kind == "acknowledged"
        or (kind == "status_changed" and data.get("acknowledged"))
        or (kind == "status_update" and data.get("from") == "triggered" and data.get("to") != "triggered")
    )
    if acked_now:
        await _fan_out(conn, ctx, incident, event, "acknowledged", now, before=True)
    if kind == "severity_changed":
        await _on_severity(conn, ctx, incident, event, now)
    elif kind in ("status_changed", "status_update"):
        await _on_status(conn, ctx, incident, event, now)
    elif kind == "resolved":
        await _fan_out(conn, ctx, incident, event, "resolved", now, before=True, stakeholders=True)
        if await Notification.filter(incident_id=incident.id, audience="external").using_db(conn).exists():
            await _external(conn, ctx, incident, event, "resolved", None, now)
    elif kind == "reopened":
        await _fan_out(conn, ctx, incident, event, "reopened", now, before=True, stakeholders=True, message=data.get("reason"))


def _payload(incident: Incident, kind: str, event: Event | None, **extra: Any) -> dict[str, Any]:
    p = {
        "kind": kind,
        "incident": snapshot(incident),
        "actor": event.actor if event else ACTOR,
        "at": _iso(event.at if event else utcnow()),
    }
    p.update({k: v for k, v in extra.items() if v is not None})
    return p


async def _on_created(conn: BaseDBAsyncClient, ctx: Context, incident: Incident, event: Event, now: datetime) -> None:
    policy = policy_for(ctx.config, incident.severity, incident.services or ())
    state: dict[str, Any] = {
        "generation": 1,
        "policy": policy.to_json() if policy else None,
        "level": 0,
        "round": 0,
        "next_at": None,
        "opened_at": _iso(now),
    }
    digest = policy.digest_interval_minutes if policy and policy.digest_mode else None
    stakeholders = _internal_destinations(ctx, "triggered")
    if policy is None or not policy.levels:
        state["stopped"] = f"no escalation policy for {incident.severity}" if policy is None else "the policy names nobody"
        await _save_escalation(conn, incident, state)
        await write_notifications(
            conn,
            incident,
            stakeholders,
            _payload(incident, "triggered", event),
            f"{incident.key}:e{event.id}",
            digest_minutes=digest,
            now=now,
        )
        return
    level, round_, delay = policy.first_step()
    if delay > 0 or incident.acknowledged_at is not None or incident.status not in OPEN:
        await write_notifications(
            conn,
            incident,
            stakeholders,
            _payload(incident, "triggered", event),
            f"{incident.key}:e{event.id}",
            digest_minutes=digest,
            now=now,
        )
        if incident.acknowledged_at is None and incident.status in OPEN:
            await _plan(conn, incident, state, 1, level, round_, now + timedelta(minutes=delay))
        else:
            await _save_escalation(conn, incident, state)
        return
    await _fire_step(conn, ctx, incident, state, policy, level, round_, now, extra=stakeholders, event=event)


async def _plan(
    conn: BaseDBAsyncClient, incident: Incident, state: dict[str, Any], generation: int, level: int, round_: int, due: datetime
) -> None:
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
    state["next_at"] = _iso(due)
    state["next_level"] = level
    await _save_escalation(conn, incident, state)


async def _fire_step(
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
) -> None:
    """Notify one level (plus `extra` stakeholders), record it, and plan the next step."""
    generation = int(state.get("generation") or 1)
    recipients, notes = await resolve_targets(conn, ctx, policy.levels[level - 1].notify, now, incident.created_at)
    kind = kind or policy.step_kind(level, round_)
    names = [r.label for r in recipients]
    payload = _payload(incident, kind, event, level=level, round=round_, recipients=names)
    # Digest mode batches the first notification; an escalation or reminder nobody answered
    # must reach its person now.
    digest = policy.digest_interval_minutes if policy.digest_mode and (level, round_) == (1, 1) else None
    dests = [r.destination for r in recipients] + [d for d in extra if d not in {r.destination for r in recipients}]
    await write_notifications(
        conn, incident, dests, payload, f"{incident.key}:g{generation}:l{level}:r{round_}", digest_minutes=digest, now=now
    )
    nxt = policy.next_step(level, round_)
    state.update({"level": level, "round": round_, "last_at": _iso(now)})
    if nxt is None:
        state["next_at"] = None
    what = {
        "triggered": f"level {level} notified",
        "escalated": f"escalated to level {level}",
        "reminder": f"reminder {round_} to level {level}",
    }.get(kind, f"level {level} notified ({kind})")
    summary = f"{what}: {', '.join(names) or 'nobody reachable'}" + (f" ({'; '.join(notes)})" if notes else "")
    if nxt is not None:
        due = now + timedelta(minutes=nxt[2])
        summary += f"; next step at {due.strftime('%H:%M:%S')} UTC unless acknowledged"
    elif policy.handoff == "pagerduty":
        summary += "; PagerDuty escalates from here by its own policy"
    await append_system_event(
        conn,
        incident,
        "escalation",
        summary,
        {"level": level, "round": round_, "recipients": names, "destinations": dests, "notes": notes, "kind": kind},
        now,
    )
    if nxt is not None:
        await _plan(conn, incident, state, generation, nxt[0], nxt[1], now + timedelta(minutes=nxt[2]))
    else:
        await _save_escalation(conn, incident, state)


async def _stop(conn: BaseDBAsyncClient, incident: Incident, now: datetime, why: str) -> None:
    cancelled = await _cancel_pending(conn, incident.id)
    state = dict(incident.escalation or {})
    if not state or state.get("stopped_at"):
        return
    state["next_at"] = None
    state["stopped_at"] = _iso(now)
    if incident.acknowledged_at is not None and incident.created_at is not None:
        state["time_to_ack_seconds"] = round((incident.acknowledged_at - incident.created_at).total_seconds(), 3)
    reason = f"acknowledged by {incident.acknowledged_by}" if incident.acknowledged_at else f"incident {incident.status}"
    state["stopped"] = reason
    await _save_escalation(conn, incident, state)
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
) -> None:
    dests: list[str] = []
    if before:
        dests += [d for d in await _notified_before(conn, incident.id) if kind != "acknowledged" or d != "jira"]
    if stakeholders:
        dests += _internal_destinations(ctx, kind)
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
        _payload(incident, kind, event, message=message),
        f"{incident.key}:e{event.id}:{kind}",
        digest_minutes=digest,
        now=now,
    )


async def _on_severity(conn: BaseDBAsyncClient, ctx: Context, incident: Incident, event: Event, now: datetime) -> None:
    data = event.data or {}
    await _fan_out(
        conn,
        ctx,
        incident,
        event,
        "severity_changed",
        now,
        before=True,
        stakeholders=True,
        message=f"Severity {data.get('from')} → {data.get('to')}" + (f": {data['reason']}" if data.get("reason") else ""),
    )
    if incident.acknowledged_at is not None or incident.status not in OPEN:
        return
    # Unacknowledged: the new severity's policy takes over from its first level.
    await _cancel_pending(conn, incident.id)
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
    state.pop("stopped", None)
    if policy is None or not policy.levels:
        state["stopped"] = f"no escalation policy for {incident.severity}"
        await _save_escalation(conn, incident, state)
        await append_system_event(
            conn,
            incident,
            "escalation_stopped",
            f"escalation stopped: no escalation policy for {incident.severity}",
            {"reason": state["stopped"]},
            now,
        )
        return
    level, round_, delay = policy.first_step()
    if delay > 0:
        await _plan(conn, incident, state, state["generation"], level, round_, now + timedelta(minutes=delay))
    else:
        await _fire_step(conn, ctx, incident, state, policy, level, round_, now, event=event, kind="severity_changed")


async def _on_status(conn: BaseDBAsyncClient, ctx: Context, incident: Incident, event: Event, now: datetime) -> None:
    data = event.data or {}
    message: str | None = data.get("message")
    public = bool(data.get("public"))
    if event.kind == "status_update" and data.get("update_id"):
        row = await StatusUpdate.filter(id=data["update_id"]).using_db(conn).first()
        if row is not None:
            message, public = row.message, row.public
    if not message and data.get("from") == data.get("to"):
        return
    await _fan_out(conn, ctx, incident, event, "status_update", now, stakeholders=True, message=message)
    if public and message:
        await _external(conn, ctx, incident, event, "status_update", message, now)


async def _external(
    conn: BaseDBAsyncClient, ctx: Context, incident: Incident, event: Event, kind: str, message: str | None, now: datetime
) -> None:
    """Customers hear public updates only: public fields of the incident and the public message."""
    dests = _external_destinations(ctx)
    if not dests:
        return
    shown = {s.name: s.display_name or s.name for s in ctx.config.services if s.public}
    names = [shown.get(n, n) for n in incident.services or [] if n in shown or not any(s.name == n for s in ctx.config.services)]
    payload = {"kind": kind, "incident": public_incident(snapshot(incident), names), "message": message, "at": _iso(now)}
    await write_notifications(conn, incident, dests, payload, f"{incident.key}:e{event.id}:ext", audience="external", now=now)


# --- the engine loop's half: firing due timers --------------------------------------------


async def next_due() -> datetime | None:
    row = await Timer.filter(state=TimerState.PENDING).order_by("due_at").first().values_list("due_at", flat=True)
    return row  # type: ignore[return-value]


async def fire_due_timers(now: datetime | None = None, limit: int = 50, *, fence: Any = None) -> int:
    """Fire every timer due by `now` (each in its own transaction); returns how many fired.

    `fence` (engine.runtime.lease.LeaseFence): each timer is fired only if this process still
    holds the engine lease, checked in the firing transaction once the timer is locked."""
    ctx = _context
    if ctx is None:
        return 0
    now = now or utcnow()
    due = await Timer.filter(state=TimerState.PENDING, due_at__lte=now).order_by("due_at", "id").limit(limit).values("id", "incident_id")
    fired = 0
    for row in due:
        if fence is not None and not fence.held:
            break
        try:
            if await _fire_one(ctx, row["id"], row["incident_id"], fence):
                fired += 1
        except Exception as exc:  # one broken timer must not stop the others
            log.exception("timer %s failed", row["id"])
            await _timer_failed(row["id"], exc)
    return fired


async def _timer_failed(timer_id: int, exc: Exception) -> None:
    async with in_transaction() as conn:
        timer = await Timer.filter(id=timer_id).using_db(conn).first()
        if timer is None:
            return
        timer.attempts += 1
        timer.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        # Back off so a timer that cannot fire does not spin the loop.
        timer.due_at = utcnow() + timedelta(seconds=min(600, 2 ** min(timer.attempts, 10)))
        await timer.save(using_db=conn)


async def _fire_one(ctx: Context, timer_id: int, incident_id: int | None, fence: Any = None) -> bool:
    now = utcnow()
    async with in_transaction() as conn:
        incident = None
        if incident_id is not None:
            # Lock order: the incident first, then the timer, as the service layer does.
            incident = await Incident.filter(id=incident_id).select_for_update().using_db(conn).first()
        timer = await Timer.filter(id=timer_id, state=TimerState.PENDING).select_for_update(skip_locked=True).using_db(conn).first()
        if timer is None:
            return False  # fired or cancelled meanwhile, or another engine has it
        if fence is not None and not await fence.check(conn):
            # The lease was lost, maybe while this process was frozen or waited for the locks:
            # the step is the new leader's to fire, once.
            log.warning("escalation timer %s not fired: this process no longer holds the engine lease", timer.key)
            return False
        timer.state = TimerState.FIRED
        timer.fired_at = now
        timer.attempts += 1
        await timer.save(using_db=conn)
        if timer.kind == "escalate":
            if incident is not None:
                await _fire_escalation(conn, ctx, incident, timer, now)
        elif timer.kind == "digest":
            await fire_digest(conn, timer, now)
        elif timer.kind == "shift_notice":
            from engine.oncall.notices import fire_shift_notice

            await fire_shift_notice(conn, ctx, timer, now, wake=_wake)
    return True


async def _fire_escalation(conn: BaseDBAsyncClient, ctx: Context, incident: Incident, timer: Timer, now: datetime) -> None:
    state = dict(incident.escalation or {})
    if incident.acknowledged_at is not None or incident.status not in OPEN:
        return
    if int(state.get("generation") or 0) != int(timer.data.get("generation") or -1) or not state.get("policy"):
        return  # re-planned since this timer was written
    policy = Policy.from_json(state["policy"])
    level, round_ = int(timer.data["level"]), int(timer.data["round"])
    if level > len(policy.levels):
        return
    extra: list[str] = []
    if level == 1 and round_ == 1:
        extra = _internal_destinations(ctx, "triggered")  # a delayed first notification
    await _fire_step(conn, ctx, incident, state, policy, level, round_, now, extra=extra)


async def fire_digest(conn: BaseDBAsyncClient, timer: Timer, now: datetime) -> int:
    """One message listing everything held for this destination; the held rows are marked digested."""
    dest = str(timer.data.get("destination"))
    held = await Notification.filter(destination=dest, state=NotificationState.HELD, created_at__lte=now).using_db(conn).order_by("id")
    if not held:
        return 0
    items = [
        {"kind": n.kind, "incident": n.payload.get("incident"), "message": n.payload.get("message"), "at": n.payload.get("at")}
        for n in held
    ]
    payload = {"kind": "digest", "items": items, "at": _iso(now)}
    digest = await Notification.create(
        dedup_key=f"{timer.key}:digest"[:255],
        stream=outbox.stream_key(None, f"digest|{dest}"),
        incident_id=None,
        destination=dest,
        kind="digest",
        audience="internal",
        payload=payload,
        state=NotificationState.PENDING,
        next_attempt_at=now,
        created_at=now,
        using_db=conn,
    )
    await Notification.filter(id__in=[n.id for n in held]).using_db(conn).update(state=NotificationState.DIGESTED, digest_id=digest.id)
    by_incident: dict[int, int] = {}
    for n in held:
        if n.incident_id is not None:
            by_incident[n.incident_id] = by_incident.get(n.incident_id, 0) + 1
    if by_incident:
        incidents = await Incident.filter(id__in=list(by_incident)).using_db(conn)
        for inc in incidents:
            await append_system_event(
                conn,
                inc,
                "digested",
                f"included in the digest to {describe(dest)} ({len(items)} updates)",
                {"destination": dest, "digest_id": digest.id},
                now,
            )
    _wake()
    return len(held)


async def sweep_held(now: datetime | None = None) -> int:
    """Held rows whose digest timer is gone (a clock jump, an interrupted upgrade) get a new one."""
    now = now or utcnow()
    old = now - timedelta(minutes=5)
    # Tortoise types a flat values_list as tuples
    dests = set(
        cast(
            "list[str]", await Notification.filter(state=NotificationState.HELD, created_at__lte=old).values_list("destination", flat=True)
        )
    )
    if not dests:
        return 0
    pending = cast(
        "list[dict[str, Any] | None]", await Timer.filter(kind="digest", state=TimerState.PENDING).values_list("data", flat=True)
    )
    covered = {(d or {}).get("destination") for d in pending}
    n = 0
    for dest in sorted(dests - covered):
        async with in_transaction() as conn:
            await outbox.ensure_digest_timer(conn, dest, 1.0, now)
        n += 1
    return n


async def has_events_after(cursor: int) -> bool:
    since = utcnow() - timedelta(days=1)
    return await Event.filter(id__gt=cursor, kind__in=RELEVANT, at__gte=since).exclude(incident_id=None).exists()


async def catch_up_feed(cursor: int, limit: int = 200) -> tuple[int, int]:
    """Handle relevant changes no hook saw, following the change feed from `cursor`.

    Returns (new cursor, incidents caught up). Only the last day is looked at, so an engine
    starting on an old database does not replay history.
    """
    ctx = _context
    if ctx is None:
        return cursor, 0
    since = utcnow() - timedelta(days=1)
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
            if await _catch_up(conn, ctx, incident, before=event_id + 1):
                done += 1
    return rows[-1]["id"], done

"""The engine loop's half of escalation: firing due timers (escalation steps, digests, shift
notices), each once. The claim, the notifications it writes and the timer's new state commit
together, so a process killed at any point either fired a step completely or not at all."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, cast

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from engine.core.clock import utcnow as utcnow  # re-exported: the timer loop reads this clock, which tests move
from engine.escalation.context import OPEN, Context
from engine.escalation.destinations import internal_destinations
from engine.escalation.messages import iso, local_loops, write_notifications
from engine.escalation.policy import Policy
from engine.escalation.steps import UNTOLD, fire_step
from engine.incidents.services import append_system_event
from engine.notify import outbox
from engine.notify.destinations import describe
from engine.storage.escalation_models import Notification, NotificationState, Timer, TimerState
from engine.storage.models import Incident

log = logging.getLogger(__name__)


async def next_due() -> datetime | None:
    """When the first pending timer is due (None: none is pending)."""
    row = await Timer.filter(state=TimerState.PENDING).order_by("due_at").first().values_list("due_at", flat=True)
    return row  # type: ignore[return-value]


async def fire_due_timers(ctx: Context, now: datetime | None = None, limit: int = 50, *, fence: Any = None) -> int:
    """Fire every timer due by `now` (each in its own transaction) with `ctx`'s configuration;
    returns how many fired.

    `fence` (engine.runtime.lease.LeaseFence): each timer is fired only if this process still
    holds the engine lease, checked in the firing transaction once the timer is locked."""
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
        elif timer.kind == "contact":
            if incident is not None:
                await _fire_contact(conn, incident, timer, now)
        elif timer.kind == "digest":
            await fire_digest(conn, timer, now)
        elif timer.kind == "shift_notice":
            from engine.oncall.notices import fire_shift_notice

            await fire_shift_notice(conn, ctx, timer, now, wake=local_loops)
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
    if level == 1 and round_ == 1 and state.get(UNTOLD):
        # The first step held from the opening: the stakeholders hear of it now. Any other first
        # step (delayed, re-planned, after a snooze) follows news they have had already.
        extra = internal_destinations(ctx, "triggered")
    await fire_step(conn, ctx, incident, state, policy, level, round_, now, extra=extra)


async def _fire_contact(conn: BaseDBAsyncClient, incident: Incident, timer: Timer, now: datetime) -> None:
    """A person's later contact rule ("after 2 min by SMS"): sent unless the page was answered."""
    state = dict(incident.escalation or {})
    if incident.acknowledged_at is not None or incident.status not in OPEN:
        return
    if int(state.get("generation") or 0) != int(timer.data.get("generation") or -1):
        return  # re-planned since this rule was due
    data = timer.data
    contact = dict(data.get("contact") or {})
    await write_notifications(
        conn,
        incident,
        [str(data["destination"])],
        {**dict(data.get("payload") or {}), "contact": contact},
        f"{data['key_prefix']}:{data['user']}:c{data['rule']}",
        now=now,
    )
    await append_system_event(
        conn,
        incident,
        "escalation",
        f"contact rule: {data['user']} by {data['method']} (still unacknowledged)",
        {"user": data["user"], "method": data["method"], "destinations": [data["destination"]], "rule": data["rule"]},
        now,
    )


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
    payload = {"kind": "digest", "items": items, "at": iso(now)}
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
    local_loops()
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
    missing = sorted(dests - covered)
    if missing:
        async with in_transaction() as conn:
            await outbox.ensure_digest_timers(conn, missing, 1.0, now)
    return len(missing)

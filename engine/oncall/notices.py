"""Telling people about their shifts: before a shift starts, and when an override moves one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from engine.core.clock import utcnow
from engine.notify.outbox import write_notifications
from engine.oncall.schedule import Override, Schedule
from engine.storage.escalation_models import Timer

# How far ahead the planner writes shift-notice timers each time it runs.
PLAN_AHEAD = timedelta(minutes=30)
# How far a shift's end is looked for; beyond it the notice gives the look-ahead's edge.
SHIFT_LOOKAHEAD = timedelta(days=64)


async def active_overrides(schedule: str, start: datetime, end: datetime, conn: BaseDBAsyncClient | None = None) -> list[Override]:
    """Run-time overrides of `schedule` overlapping [start, end)."""
    from engine.storage.oncall_models import OncallOverride

    q = OncallOverride.filter(schedule=schedule, cancelled_at=None, starts_at__lt=end, ends_at__gt=start).order_by("id")
    if conn is not None:
        q = q.using_db(conn)
    return [Override(r.user, r.starts_at, r.ends_at, r.covers, r.id, r.reason) for r in await q]


def shift_end(sched: Schedule, start: datetime, overrides: Sequence[Override] = ()) -> datetime:
    """When the person on call at `start` hands over: the shift's real end, not the edge of the
    window the planner looked at (a shift running past it would be told it ends there). The
    window grows from an hour, so a short rotation costs a few shifts, not weeks of them."""
    user = sched.who(start, overrides)[0]
    span = timedelta(hours=1)
    while True:
        for shift in sched.shifts(start, start + span, overrides):
            if shift.user != user:
                return shift.start
        if span >= SHIFT_LOOKAHEAD:
            return start + span  # nobody takes over in sight (a one-person rotation)
        span *= 2


async def overrides_from(sched: Schedule, start: datetime, conn: BaseDBAsyncClient | None = None) -> list[Override]:
    """Every run-time override of `sched` still in force at or after `start`."""
    return await active_overrides(sched.name, start, datetime.max.replace(tzinfo=UTC), conn)


async def plan_shift_notices(schedules: dict[str, Schedule], now: datetime | None = None) -> int:
    """Write a timer for every shift starting soon whose person should be told beforehand."""
    now = now or utcnow()
    planned = 0
    for sched in schedules.values():
        if sched.source or sched.notify_before <= timedelta(0):
            continue
        horizon = now + sched.notify_before + PLAN_AHEAD
        overrides = await active_overrides(sched.name, now, horizon)
        later = await overrides_from(sched, now)
        timers = []
        for shift in sched.shifts(now, horizon, overrides):
            if shift.user is None or shift.start <= now:
                continue
            due = shift.start - sched.notify_before
            if due > now + PLAN_AHEAD:
                continue
            key = f"shift:{sched.name}:{shift.user}:{shift.start.isoformat()}"
            end = shift_end(sched, shift.start, later)
            data = {"schedule": sched.name, "user": shift.user, "start": shift.start.isoformat(), "end": end.isoformat()}
            timers.append(Timer(key=key[:255], kind="shift_notice", due_at=max(due, now), data=data, created_at=now))
        if timers:
            async with in_transaction() as conn:
                await Timer.bulk_create(timers, ignore_conflicts=True, using_db=conn)
            planned += len(timers)
    return planned


def _shift_payload(kind: str, data: dict[str, Any], message: str) -> dict[str, Any]:
    return {"kind": kind, "shift": dict(data), "message": message, "at": utcnow().isoformat()}


async def fire_shift_notice(conn: BaseDBAsyncClient, ctx: Any, timer: Timer, now: datetime, wake: Callable[[], None] | None = None) -> None:
    """E-mail the person whose shift starts soon, if they are still the one on call then.
    `ctx` holds the schedules and users by id; `wake` is the outbox's wake-up (see
    engine.notify.outbox.write_notifications)."""
    data = timer.data
    sched: Schedule | None = ctx.schedules.get(data.get("schedule"))
    if sched is None:
        return
    start = datetime.fromisoformat(data["start"])
    overrides = await active_overrides(sched.name, start, start + timedelta(seconds=1), conn)
    if sched.who(start, overrides)[0] != data.get("user"):
        return  # an override moved this shift since it was planned
    user = ctx.users.get(data.get("user"))
    if user is None or not getattr(user, "email", None):
        return
    # An override made since the plan may have moved the end (the start still holds: checked above).
    data = {**data, "end": shift_end(sched, start, await overrides_from(sched, start, conn)).isoformat()}
    from engine.core.timefmt import format_range

    # In the person's own zone when they have one, else the schedule's.
    zone = getattr(user, "timezone", None) or sched.tz
    message = f"You are on call for {sched.name} {format_range(data['start'], data['end'], date=True, zone=zone)}."
    await write_notifications(
        conn, None, [f"email:{user.email}"], _shift_payload("shift_notice", data, message), timer.key, now=now, wake=wake
    )


async def notify_override(
    conn: BaseDBAsyncClient, ctx: Any, sched: Schedule, override: Override, displaced: list[str], actor: str, verb: str = "created"
) -> int:
    """Tell the person taking over and everyone whose shift the override takes."""
    people = [override.user, *[u for u in displaced if u != override.user]]
    covers = f" covers {override.covers}" if override.covers else " is on call"
    from engine.core.timefmt import format_range

    span = format_range(override.start, override.end, date=True, zone=sched.tz)
    message = f"{override.user}{covers} on {sched.name} {span}"
    if verb != "created":
        message = f"cancelled: {message}"
    dests = []
    for uid in people:
        user = ctx.users.get(uid)
        if user is not None and getattr(user, "email", None):
            dests.append(f"email:{user.email}")
    data = {"schedule": sched.name, "user": override.user, "start": override.start.isoformat(), "end": override.end.isoformat()}
    payload = _shift_payload("override_notice", data, message)
    payload["actor"] = actor
    return await write_notifications(conn, None, dests, payload, f"override:{override.id}:{verb}", now=utcnow())

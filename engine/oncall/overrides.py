"""Run-time overrides ("carol covers alice from … to …"), stored so every process sees them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from engine.core.clock import utcnow
from engine.core.domain import IllegalTransition, InvalidInput, NotFound
from engine.core.timefmt import format_time
from engine.incidents import services
from engine.oncall.notices import notify_override
from engine.oncall.schedule import Override, Schedule, schedules_from_config
from engine.storage.oncall_models import OncallOverride


@dataclass
class _Directory:
    """Who to tell: the configured schedules and users by id."""

    schedules: dict[str, Schedule]
    users: dict[str, Any]


def _context(config: Any) -> _Directory:
    return _Directory(schedules_from_config(config), {u.id: u for u in config.users})


def _schedule(config: Any, name: str) -> Schedule:
    schedules = schedules_from_config(config)
    if name not in schedules:
        known = ", ".join(schedules) or "none configured"
        raise NotFound(f"no schedule named {name!r} (schedules: {known})")
    return schedules[name]


def _as_override(row: OncallOverride) -> Override:
    return Override(row.user, row.starts_at, row.ends_at, row.covers, row.id, row.reason)


async def create_override(
    config: Any,
    *,
    schedule: str,
    user: str,
    start: datetime,
    end: datetime,
    actor: str,
    covers: str | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> OncallOverride:
    """Store an override and tell the people whose shifts it moves, in one transaction."""
    now = now or utcnow()
    actor = services.valid_actor(actor)
    sched = _schedule(config, schedule)
    users = {u.id for u in config.users}
    for field_name, who in (("user", user), ("covers", covers)):
        if who is not None and users and who not in users:
            raise InvalidInput(field_name, f"no user with id {who!r} (users: {', '.join(sorted(users))})")
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("start", "must carry a time zone")
    if end <= now:
        # Before "after the start", as maintenance windows and silences: a past end is over.
        raise InvalidInput("end", f"{format_time(end, date=True)} has already passed: an override must end in the future")
    if end <= start:
        raise InvalidInput("end", "must be after the start")
    if covers is not None and covers == user:
        raise InvalidInput("covers", f"{user} cannot cover their own shift")
    ctx = _context(config)
    async with in_transaction() as conn:
        existing = [
            _as_override(r)
            for r in await OncallOverride.filter(schedule=schedule, cancelled_at=None, starts_at__lt=end, ends_at__gt=start)
            .using_db(conn)
            .order_by("id")
        ]
        before = sched.shifts(start, end, existing)
        if covers is not None and not any(s.user == covers for s in before):
            raise InvalidInput("covers", f"{covers} is not on call on {schedule} between those times")
        row = await OncallOverride.create(
            schedule=schedule,
            user=user,
            covers=covers,
            starts_at=start,
            ends_at=end,
            reason=reason or "",
            created_by=actor,
            created_at=now,
            using_db=conn,
        )
        override = _as_override(row)
        displaced = sorted({s.user for s in before if s.user and (covers is None or s.user == covers)})
        await notify_override(conn, ctx, sched, override, displaced, actor)
        await services.append_event(
            conn,
            None,
            "oncall_override",
            actor,
            f"on-call override #{row.id}: {override.describe()} on {schedule}" + (f" ({reason})" if reason else ""),
            {"override_id": row.id, "schedule": schedule, "user": user, "covers": covers, "displaced": displaced},
            now,
        )
    return row


async def cancel_override(config: Any, override_id: int, actor: str, now: datetime | None = None) -> OncallOverride:
    now = now or utcnow()
    actor = services.valid_actor(actor)
    ctx = _context(config)
    async with in_transaction() as conn:
        row = await OncallOverride.filter(id=override_id).using_db(conn).first()
        if row is None:
            raise NotFound(f"no on-call override #{override_id}")
        if row.cancelled_at is not None:
            raise IllegalTransition(f"override #{override_id} was already cancelled by {row.cancelled_by}")
        row.cancelled_at, row.cancelled_by = now, actor
        await row.save(using_db=conn)
        sched = ctx.schedules.get(row.schedule)
        if sched is not None and row.ends_at > now:
            override = _as_override(row)
            others = [
                _as_override(r)
                for r in await OncallOverride.filter(
                    schedule=row.schedule, cancelled_at=None, starts_at__lt=row.ends_at, ends_at__gt=row.starts_at
                ).using_db(conn)
            ]
            back = sorted({s.user for s in sched.shifts(max(row.starts_at, now), row.ends_at, others) if s.user})
            await notify_override(conn, ctx, sched, override, back, actor, verb="cancelled")
        await services.append_event(
            conn,
            None,
            "oncall_override",
            actor,
            f"on-call override #{row.id} cancelled",
            {"override_id": row.id, "schedule": row.schedule, "cancelled": True},
            now,
        )
    return row


async def list_overrides(schedule: str | None = None, *, include_past: bool = False, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or utcnow()
    q = OncallOverride.filter(cancelled_at=None)
    if schedule:
        q = q.filter(schedule=schedule)
    if not include_past:
        q = q.filter(ends_at__gt=now)
    rows = await q.order_by("starts_at", "id")
    return [
        {
            "id": r.id,
            "schedule": r.schedule,
            "user": r.user,
            "covers": r.covers,
            "start": r.starts_at.isoformat(),
            "end": r.ends_at.isoformat(),
            "reason": r.reason,
            "created_by": r.created_by,
        }
        for r in rows
    ]


async def overrides_by_schedule(start: datetime, end: datetime) -> dict[str, list[Override]]:
    """Every live override overlapping [start, end), grouped by schedule (for oncall_overview)."""
    out: dict[str, list[Override]] = {}
    for r in await OncallOverride.filter(cancelled_at=None, starts_at__lt=end, ends_at__gt=start).order_by("id"):
        out.setdefault(r.schedule, []).append(_as_override(r))
    return out

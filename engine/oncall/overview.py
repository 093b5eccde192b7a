"""Who is on call now, the next hand-off and the next two weeks, for the console and the API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.oncall.schedule import Override, Shift, schedules_from_config

HORIZON = timedelta(days=14)


def _person(config: Any, user_id: str | None) -> dict[str, Any] | None:
    if user_id is None:
        return None
    user = config.user(user_id) if hasattr(config, "user") else None
    return {
        "id": user_id,
        "name": (getattr(user, "name", None) or user_id),
        "email": getattr(user, "email", None),
        "slack": getattr(user, "slack", None),
        # How to reach the person by phone, and their own time of day, for whoever pages them.
        "phone": getattr(user, "phone", None),
        "timezone": getattr(user, "timezone", None),
        # How a page reaches them: "slack, then sms after 2m" (None: no contact rules, by e-mail).
        "paged_by": _paged_by(user),
    }


def _paged_by(user: Any) -> str | None:
    rules = list(getattr(user, "rules", None) or [])
    if not rules:
        return None
    from engine.core.durations import format_duration

    steps = sorted(rules, key=lambda r: float(r.after))
    return ", then ".join(r.via + (f" after {format_duration(float(r.after))}" if r.after else "") for r in steps)


def _shift(config: Any, s: Shift) -> dict[str, Any]:
    return {**s.as_dict(), "person": _person(config, s.user)}


def oncall_overview(
    config: Any,
    now: datetime | None = None,
    overrides: Mapping[str, Sequence[Override]] | None = None,
    *,
    days: float = 14,
    schedule: str | None = None,
) -> dict[str, Any]:
    """A plain dict: for each schedule, who is on call at `now` (since/until), the next
    hand-off, and every shift in the next `days` days. `overrides` are the run-time overrides
    per schedule (see `load_oncall_overview` for the database's)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    overrides = overrides or {}
    out: list[dict[str, Any]] = []
    for name, sched in schedules_from_config(config).items():
        if schedule is not None and name != schedule:
            continue
        extra = list(overrides.get(name, ()))
        entry: dict[str, Any] = {"name": name, "timezone": sched.tz.key, "source": sched.source, "users": list(sched.users)}
        if sched.source:
            entry.update({"on_call": None, "next_handoff": None, "shifts": [], "note": f"on call is taken from {sched.source}"})
            out.append(entry)
            continue
        current = sched.on_call(now, extra)
        nxt = sched.next_handoff(now, extra)
        entry["on_call"] = {**_shift(config, current)}
        if nxt is None:  # nobody takes over (a one-person rotation): on call until further notice
            entry["on_call"]["end"] = None
        entry["next_handoff"] = (
            {
                "at": nxt.start.isoformat(),
                "from": current.user,
                "to": nxt.user,
                "person": _person(config, nxt.user),
                "in_seconds": round((nxt.start - now).total_seconds()),
            }
            if nxt
            else None
        )
        # From the start of the current shift, so the list begins with who is on call now.
        until = now + timedelta(days=days)
        shifts = sched.shifts(min(current.start, now), until, extra)
        if shifts and nxt is not None:
            # The last one runs past the window: shown to its real end, not cut where the list
            # stops ("Carol … Mon 21 Dec 09:00 – 16:35" read as a shift ending at 16:35). A
            # one-person rotation (no hand-off) has no end to show.
            last = shifts[-1]
            tail = sched.on_call(last.end - timedelta(microseconds=1), extra)
            if (tail.user, tail.override) == (last.user, last.override) and tail.end > last.end:
                shifts[-1] = replace(last, end=tail.end)
        entry["shifts"] = [_shift(config, s) for s in shifts]
        entry["overrides"] = [
            {"id": o.id, "user": o.user, "covers": o.covers, "start": o.start.isoformat(), "end": o.end.isoformat(), "reason": o.reason}
            for o in (*sched.overrides, *extra)
            if o.end > now
        ]
        out.append(entry)
    return {"now": now.isoformat(), "schedules": out}


async def load_oncall_overview(
    config: Any, now: datetime | None = None, *, days: float = 14, schedule: str | None = None
) -> dict[str, Any]:
    """`oncall_overview` with the run-time overrides read from the database."""
    from engine.oncall.overrides import overrides_by_schedule

    now = now or datetime.now(UTC)
    span = timedelta(days=max(days, 35))
    return oncall_overview(config, now, await overrides_by_schedule(now - span, now + span), days=days, schedule=schedule)

"""Level entries ("schedule:primary", "next:primary", "user:carol", "slack:#incidents", …)
resolved to the concrete destinations of one moment. The pages sent and every printed chain
come from here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from engine.escalation.context import Context
from engine.notify.destinations import describe


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

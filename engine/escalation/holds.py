"""Pages held, not lost: a snooze, a silence or an inhibition holds an incident's next step.

Before a step notifies anyone, `paging_hold` says whether it must wait:
- snoozed: the incident's escalation state has `snoozed_until` in the future;
- silenced: an active silence matches the incident (firing sources only: threshold, anomaly,
  pattern, alert; someone who declares an incident by hand wants it paged);
- inhibited: a critical incident is open for one of its services and this one is a lower
  severity firing (Alertmanager's inhibition: the incident stays open, its pages wait).

A held step becomes a durable timer (the same escalation timer the claimer fires once, under
SKIP LOCKED) due when the hold ends; it re-checks then and pages if nothing holds it any more.
An inhibition has no known end, so its timer re-checks every few minutes, and the critical
incident's resolution (or downgrade) brings every held timer forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from engine.core.domain import OPEN_STATUSES
from engine.core.matchers import labels_of
from engine.core.timefmt import format_time
from engine.escalation.messages import iso
from engine.incidents.services import append_system_event
from engine.incidents.services.silences import FIRING_SOURCES, matching_silence
from engine.storage.escalation_models import Timer
from engine.storage.models import Incident

INHIBITION_RECHECK = timedelta(minutes=5)
_OPEN = [s.value for s in OPEN_STATUSES]


@dataclass(frozen=True)
class Hold:
    reason: str  # snoozed | silenced | inhibited
    until: datetime
    by: str  # "INC-3", "silence #4", the person who snoozed
    summary: str


async def paging_hold(conn: BaseDBAsyncClient, incident: Incident, now: datetime) -> Hold | None:
    state = incident.escalation or {}
    snoozed = state.get("snoozed_until")
    if snoozed:
        until = datetime.fromisoformat(snoozed)
        if until > now:
            who = str(state.get("snoozed_by") or "someone")
            return Hold("snoozed", until, who, f"snoozed by {who} until {format_time(until, seconds=True)}")
    if incident.source not in FIRING_SOURCES:
        return None
    labels = labels_of(
        services=list(incident.services or []),
        target=incident.target,
        trigger=incident.trigger,
        severity=incident.severity,
        source=incident.source,
        tags=list(incident.tags or []),
    )
    silence = await matching_silence(labels, now, conn)
    if silence is not None:
        return Hold(
            "silenced",
            silence.ends_at,
            f"silence #{silence.id}",
            f"silenced by silence #{silence.id} until {format_time(silence.ends_at, date=True, seconds=True)}",
        )
    if incident.severity != "critical" and incident.services:
        mine = set(incident.services)
        critical = (
            await Incident.filter(severity="critical", status__in=_OPEN)
            .exclude(id=incident.id)
            .using_db(conn)
            .order_by("number")
            .values("number", "services")
        )
        for row in critical:
            shared = sorted(mine & set(row["services"] or []))
            if shared:
                by = f"INC-{row['number']}"
                return Hold("inhibited", now + INHIBITION_RECHECK, by, f"inhibited by {by} (critical, open) for service {shared[0]}")
    return None


async def hold_step(
    conn: BaseDBAsyncClient,
    incident: Incident,
    state: dict[str, Any],
    level: int,
    round_: int,
    hold: Hold,
    now: datetime,
    *,
    save: Any,
) -> None:
    """Write the held step's timer (due when the hold ends) and say so on the timeline once per
    hold (a re-check that finds the same hold writes only a new timer)."""
    generation = int(state.get("generation") or 1)
    n = int(state.get("holds") or 0) + 1
    state["holds"] = n
    await Timer.bulk_create(
        [
            Timer(
                key=f"esc:{incident.id}:g{generation}:l{level}:r{round_}:hold{n}",
                kind="escalate",
                incident_id=incident.id,
                due_at=hold.until,
                created_at=now,
                data={"generation": generation, "level": level, "round": round_, "held": hold.reason},
            )
        ],
        ignore_conflicts=True,
        using_db=conn,
    )
    previous = state.get("held") or {}
    state["held"] = {"reason": hold.reason, "by": hold.by, "until": iso(hold.until)}
    state["next_at"] = iso(hold.until)
    state["next_level"] = level
    await save(conn, incident, state)
    if previous.get("reason") != hold.reason or previous.get("by") != hold.by:
        await append_system_event(
            conn,
            incident,
            "page_held",
            f"page to level {level} held: {hold.summary}",
            {"reason": hold.reason, "by": hold.by, "until": iso(hold.until), "level": level, "round": round_},
            now,
        )


async def note_released(conn: BaseDBAsyncClient, incident: Incident, state: dict[str, Any], now: datetime) -> None:
    """A held step is about to page: say what held it."""
    held = state.pop("held", None)
    if held:
        await append_system_event(
            conn,
            incident,
            "page_released",
            f"page no longer held ({held.get('reason')} by {held.get('by')} ended)",
            {"reason": held.get("reason"), "by": held.get("by")},
            now,
        )

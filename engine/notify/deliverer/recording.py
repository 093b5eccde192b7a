"""Recording delivery outcomes and waiting notes on the incidents' timelines.

Recording locks the incidents' rows (as the timeline entries' foreign key does), in id order,
before the timeline's feed lock: the order the service layer and the timer claimer use. On
PostgreSQL the other order deadlocks with an escalation step firing for the same incident, and a
recorder chosen as the victim left a sent message pending, to go out again. An outcome is written
only while the row is still claimed by its sender (`holder`): the row's own claim fences it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from engine.incidents import services
from engine.notify.base import Outcome
from engine.notify.channels import describe
from engine.storage.escalation_models import Notification, NotificationState
from engine.storage.models import Incident

Verdict = tuple[Notification, int, Outcome, dict[str, Any], tuple[str, str, dict[str, Any]] | None]
"""A row, its attempt number, the outcome, the row's new values and its timeline event (if any)."""


async def lock_incidents(conn: Any, incident_ids: Any) -> None:
    """On PostgreSQL, take now, in id order, the lock on these incidents' rows that a timeline
    entry's foreign key takes when it is inserted, so it is taken before the feed lock, never
    after it (see this module's docstring)."""
    ids = sorted({int(i) for i in incident_ids if i is not None})
    if ids and conn.capabilities.dialect == "postgres":
        await conn.execute_query('SELECT "id" FROM "incident" WHERE "id" = ANY($1) ORDER BY "id" FOR KEY SHARE', [ids])


async def record_outcomes(verdicts: list[Verdict], *, holder: str, link_jira: bool, now: datetime) -> None:
    """Write outcomes (of rows `holder` still claims) and their timeline entries in one transaction."""
    incident_ids = {row.incident_id for row, *_ in verdicts if row.incident_id is not None}
    async with in_transaction() as conn:
        await lock_incidents(conn, incident_ids)
        incidents = {i.id: i for i in await Incident.filter(id__in=list(incident_ids)).using_db(conn)} if incident_ids else {}
        updated: set[int] = set()
        for row, _attempt, _outcome, values, _event in verdicts:
            if await Notification.filter(id=row.id, claimed_by=holder).using_db(conn).update(**values):
                updated.add(row.id)
        # Incident rows before timeline entries: the service layer locks in that order too
        # (the incident, then the feed's lock), so the two can never deadlock on PostgreSQL.
        if link_jira:
            for row, _attempt, outcome, _values, _event in verdicts:
                incident = incidents.get(row.incident_id) if row.incident_id is not None else None
                if row.id in updated and incident is not None and outcome.ok and outcome.result.get("jira_issue"):
                    refs = dict(incident.external_refs or {})
                    if refs.get("jira") != outcome.result["jira_issue"]:
                        refs["jira"] = outcome.result["jira_issue"]
                        incident.external_refs = refs
                        await Incident.filter(id=incident.id).using_db(conn).update(external_refs=refs, version=F("version") + 1)
        for row, attempt, _outcome, _values, event in verdicts:
            incident = incidents.get(row.incident_id) if row.incident_id is not None else None
            if row.id in updated and incident is not None and event is not None:
                kind, summary, data = event
                data = {**data, "notification_id": row.id, "destination": row.destination, "attempt": attempt, "kind": row.kind}
                await services.append_system_event(conn, incident, kind, summary, data, now)


async def note_waiting(changed: list[dict[str, Any]], reasons: dict[str, str], noted: set[str], now: datetime) -> None:
    """Write why rows stay pending into `last_error`, and once per stream (not yet in `noted`) on the timeline."""
    async with in_transaction() as conn:
        await lock_incidents(conn, [r["incident_id"] for r in changed if r["incident_id"]])
        incidents = {i.id: i for i in await Incident.filter(id__in=[r["incident_id"] for r in changed if r["incident_id"]]).using_db(conn)}
        for destination in {r["destination"] for r in changed}:
            ids = [r["id"] for r in changed if r["destination"] == destination]
            await Notification.filter(id__in=ids, state=NotificationState.PENDING).using_db(conn).update(last_error=reasons[destination])
        for r in changed:
            incident = incidents.get(r["incident_id"])
            if incident is None or r["stream"] in noted:
                continue
            noted.add(r["stream"])
            why = reasons[r["destination"]]
            await services.append_system_event(
                conn,
                incident,
                "notify_waiting",
                f"notification to {describe(r['destination'])} {why}; it stays pending until an engine with that channel runs",
                {"notification_id": r["id"], "destination": r["destination"]},
                now,
            )

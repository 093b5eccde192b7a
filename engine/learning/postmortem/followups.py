"""Satisfaction ratings and follow-up actions with their tickets."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from tortoise.transactions import in_transaction

from engine.core.clock import utcnow
from engine.core.domain import IllegalTransition, InvalidInput, NotFound
from engine.core.timefmt import display_zone
from engine.incidents.services import append_event, lock_incident, valid_actor, valid_time
from engine.learning.postmortem.rules import TICKET_RE, iso
from engine.storage.models import FollowUp, Incident


def _rating(value: Any, field: str) -> int | None:
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdecimal():  # what int() reads: "²" is a digit, not a decimal
        number = int(value.strip())
    if number is None or not 1 <= number <= 5:
        raise InvalidInput(field, f"{value!r} is not a rating from 1 to 5")
    return number


async def rate_satisfaction(key: str | int, actor: str, *, customer: Any = None, team: Any = None, at: datetime | None = None) -> Incident:
    """Record customer and/or team satisfaction (1–5) for an incident; a new rating replaces the old."""
    actor = valid_actor(actor)
    ratings = {k: v for k, v in (("customer", _rating(customer, "customer")), ("team", _rating(team, "team"))) if v is not None}
    if not ratings:
        raise InvalidInput("satisfaction", "give a customer or team rating (1 to 5)")
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key)
        old = dict(incident.satisfaction or {})
        incident.satisfaction = {**old, **ratings}
        incident.updated_at = now
        await incident.save(using_db=conn)
        text = ", ".join(f"{k} {v}/5" for k, v in ratings.items())
        await append_event(
            conn,
            incident,
            "satisfaction_rated",
            actor,
            f"satisfaction rated: {text}",
            {"ratings": ratings, "previous": {k: old.get(k) for k in ratings}},
            now,
        )
    return incident


async def set_followup_ticket(followup_id: int, ticket_key: str | None, actor: str, *, at: datetime | None = None) -> FollowUp:
    """Link a follow-up action to its ticket (e.g. OPS-123), or unlink it with None."""
    actor = valid_actor(actor)
    ticket = (ticket_key or "").strip() or None
    if ticket is not None and (len(ticket) > 64 or not TICKET_RE.match(ticket)):
        raise InvalidInput("ticket", f"{ticket_key!r} is not a ticket key (expected PROJECT-123)")
    now = valid_time(at)
    row = await FollowUp.get_or_none(id=followup_id).prefetch_related("incident")
    if row is None:
        raise NotFound(f"no follow-up {followup_id}")
    async with in_transaction() as conn:
        incident = await lock_incident(conn, row.incident.number)
        row = await FollowUp.get(id=followup_id, using_db=conn)
        if row.ticket_key == ticket:
            raise IllegalTransition(f"follow-up {followup_id} is already {'linked to ' + ticket if ticket else 'without a ticket'}")
        old = row.ticket_key
        row.ticket_key = ticket
        await row.save(using_db=conn)
        await append_event(
            conn,
            incident,
            "followup_ticket",
            actor,
            f"follow-up {followup_id} " + (f"ticket {ticket}" if ticket else "ticket unlinked") + f": {row.description}",
            {"followup_id": followup_id, "ticket_key": ticket, "previous": old},
            now,
        )
    return row


async def open_followup_ticket(followup_id: int, actor: str, settings: Any, client: Any = None) -> FollowUp:
    """Open a Jira issue for a follow-up through the integration, then record its key.

    The HTTP call happens outside any transaction; `settings` is an engine.notify.jira.JiraSettings.
    """
    import httpx

    from engine.notify import base

    row = await FollowUp.get_or_none(id=followup_id).prefetch_related("incident")
    if row is None:
        raise NotFound(f"no follow-up {followup_id}")
    if row.ticket_key:
        raise IllegalTransition(f"follow-up {followup_id} already has ticket {row.ticket_key}")
    key = row.incident.key
    lines = [row.description, "", f"Follow-up ({row.group.replace('_', ' ')}) of {key}: {row.incident.title}"]
    if row.owner:
        lines.append(f"Owner: {row.owner}")
    body: dict[str, Any] = {
        "project": {"key": settings.project},
        "summary": f"{key} follow-up: {row.description}"[:255],
        "issuetype": {"name": settings.issue_type},
        "labels": ["pulseguard", f"pulseguard-{key.lower()}-followup-{row.id}"],
    }
    text = "\n".join(lines)
    body["description"] = (
        {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": p}]} for p in lines if p]}
        if settings.api_version >= 3
        else text
    )
    if row.due_date:
        body["duedate"] = row.due_date.isoformat()
    own = client is None
    client = client or httpx.AsyncClient()
    try:
        outcome, response = await base.request(
            client,
            "POST",
            settings.url("issue"),
            json_body={"fields": body},
            headers=settings.headers(),
            auth=settings.auth(),
            timeout=settings.timeout,
        )
    finally:
        if own:
            await client.aclose()
    if not outcome.ok or response is None:
        raise IllegalTransition(f"Jira did not open a ticket: {outcome.reason or 'no answer'}")
    try:
        ticket = str(response.json()["key"])
    except (ValueError, KeyError, TypeError):
        raise IllegalTransition("Jira answered without an issue key") from None
    return await set_followup_ticket(followup_id, ticket, actor)


async def list_followups(*, open_only: bool = False, owner: str | None = None, today: date | None = None) -> list[dict[str, Any]]:
    """Follow-up actions across incidents: overdue first, then by due date (none last), then id."""
    query = FollowUp.all()
    if open_only:
        query = query.filter(done=False)
    if owner:
        query = query.filter(owner=owner.strip())
    rows = await query.values(
        "id",
        "group",
        "description",
        "owner",
        "due_date",
        "done",
        "done_at",
        "ticket_key",
        "created_at",
        "incident__number",
        "incident__title",
    )
    today = today or engine_today()
    out = []
    for r in rows:
        number = r.pop("incident__number")
        title = r.pop("incident__title")
        overdue = (not r["done"]) and r["due_date"] is not None and r["due_date"] < today
        out.append(
            {
                **{k: iso(v) for k, v in r.items()},
                "incident": f"INC-{number}",
                "incident_title": title,
                "overdue": overdue,
                "days_overdue": (today - r["due_date"]).days if overdue else 0,
            }
        )
    out.sort(key=lambda r: (not r["overdue"], r["done"], r["due_date"] or "9999-99-99", r["id"]))
    return out


def engine_today() -> date:
    """Today where the team works ([engine] timezone, UTC by default), as the reports count days:
    a follow-up due today is not overdue at 16:00 in California because UTC has moved on."""
    return utcnow().astimezone(display_zone() or UTC).date()

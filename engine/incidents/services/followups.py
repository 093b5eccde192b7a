"""Follow-ups: the work an incident leaves behind (prevent, detect, mitigate, process)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from engine.core.domain import FollowUpGroup, IllegalTransition, InvalidInput, NotFound, parse_enum
from engine.incidents.services.timeline import Change, change
from engine.incidents.services.validation import valid_actor, valid_name, valid_text, valid_time
from engine.storage.models import FollowUp


async def add_followup(
    key: str | int,
    group: str,
    description: str,
    actor: str,
    *,
    owner: str | None = None,
    due_date: date | None = None,
    at: datetime | None = None,
) -> FollowUp:
    actor = valid_actor(actor)
    grp = parse_enum(FollowUpGroup, group, "group").value
    description = valid_text(description, "description", limit=5000)
    owner = valid_name(owner, "owner")
    now = valid_time(at)
    async with change(key, now) as c:
        return await _add(c, grp, description, actor, owner, due_date)


async def _add(c: Change, grp: str, description: str, actor: str, owner: str | None, due_date: date | None) -> FollowUp:
    """One checked follow-up and its timeline entry, in change `c`."""
    row = await FollowUp.create(
        incident=c.incident,
        group=grp,
        description=description,
        owner=owner,
        due_date=due_date,
        created_by=actor,
        created_at=c.now,
        using_db=c.conn,
    )
    await c.record(
        "followup_added",
        actor,
        f"follow-up ({grp}): {description}" + (f" — {owner}" if owner else ""),
        {"followup_id": row.id, "group": grp, "owner": owner, "due_date": due_date.isoformat() if due_date else None},
    )
    return row


async def add_followups(
    key: str | int,
    actions: Sequence[tuple[str, str]],
    actor: str,
    *,
    owner: str | None = None,
    due_date: date | None = None,
    field: str = "follow_up",
    at: datetime | None = None,
) -> list[FollowUp]:
    """Several follow-ups (group, description) in one change: all of them or, when one is
    refused (named `follow_up.GROUP[i]`), none. The spec's follow_up block, whose lists of
    actions by group are written together after a review."""
    actor = valid_actor(actor)
    owner = valid_name(owner, "owner")
    if not actions:
        raise InvalidInput(field, "name at least one follow-up action")
    checked: list[tuple[str, str]] = []
    index: dict[str, int] = {}
    for group, description in actions:
        grp = parse_enum(FollowUpGroup, group, field).value
        i = index[grp] = index.get(grp, -1) + 1
        checked.append((grp, valid_text(description, f"{field}.{grp}[{i}]", limit=5000)))
    now = valid_time(at)
    async with change(key, now) as c:
        return [await _add(c, grp, description, actor, owner, due_date) for grp, description in checked]


async def complete_followup(followup_id: int, actor: str, *, done: bool = True, at: datetime | None = None) -> FollowUp:
    actor = valid_actor(actor)
    now = valid_time(at)
    row = await FollowUp.get_or_none(id=followup_id).prefetch_related("incident")
    if row is None:
        raise NotFound(f"no follow-up {followup_id}")
    async with change(row.incident.number, now) as c:
        row = await FollowUp.get(id=followup_id, using_db=c.conn)
        if row.done == done:
            raise IllegalTransition(f"follow-up {followup_id} is already {'done' if done else 'open'}")
        row.done = done
        row.done_at = now if done else None
        await row.save(using_db=c.conn)
        await c.record(
            "followup_done" if done else "followup_reopened",
            actor,
            f"follow-up {'done' if done else 'reopened'}: {row.description}",
            {"followup_id": row.id, "done": done},
        )
    return row

"""Incident writes: each calls the engine.incidents.services function the CLI and the console call."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from tortoise.transactions import in_transaction

from engine.core.domain import DEFAULT_ROOT_CAUSE_CATEGORIES, InvalidInput, Severity, Status, check_time, parse_enum
from engine.incidents import queries, services
from engine.rest.common import NoBody, Responder, aware, check_id, fields_named, incident_number, rest_state, row_dict
from engine.rest.incidents.bodies import (
    AssignIn,
    CommentIn,
    Communication,
    EvidenceBlock,
    EvidenceIn,
    FalsePositiveIn,
    FollowUpIn,
    IncidentCreate,
    IncidentId,
    IncidentUpdate,
    MergeIn,
    ReasonIn,
    ResolveIn,
    SeverityIn,
    SplitIn,
    StatusIn,
    StepIn,
    TagsIn,
    UpdateIn,
)
from engine.storage.models import Incident

router = APIRouter()


def _incident(incident: Incident) -> dict[str, Any]:
    return queries.incident_dict(incident)


def _categories(state: Any) -> list[str]:
    extra = list(getattr(getattr(state.config, "engine", None), "root_cause_categories", None) or [])
    return list(dict.fromkeys([*DEFAULT_ROOT_CAUSE_CATEGORIES, *extra]))


@router.post("/incidents", status_code=201, summary="Open an incident (source api)")
async def create_incident(body: IncidentCreate, who: Responder, request: Request) -> dict[str, Any]:
    configured = [sv.name for sv in rest_state(request).config.services]
    with body.refusals_named():
        await services.check_services(body.services, configured)
        incident = await services.create_incident(
            title=body.title,
            severity=body.severity,
            actor=who.name,
            description=body.description,
            services=body.services,
            tags=body.tags,
            assignee=body.assignee,
            source="api",
            dedup_key=body.dedup_key,
            detected_at=body.detected_at,
        )
    return _incident(incident)


@router.put("/incidents/{id}", summary="Change title, description, services, status, severity, assignee, tags or the false-positive flag")
async def update_incident(id: IncidentId, body: IncidentUpdate, who: Responder, request: Request) -> dict[str, Any]:
    with body.refusals_named():
        return await _update_incident(incident_number(id), body, who, request)


async def _update_incident(number: int, body: IncidentUpdate, who: Responder, request: Request) -> dict[str, Any]:
    fields = body.model_fields_set
    if not fields - {"message", "public", "reason"}:
        raise InvalidInput("body", "name at least one of title, description, services, status, severity, assignee, tags, false_positive")
    for name in ("title", "description", "services", "affected_services", "status", "severity", "tags", "false_positive"):
        if name in fields and getattr(body, name) is None:
            raise InvalidInput(name, "may not be null (leave it out to keep the current value)")
    current = await queries.get_incident(number)
    # Check every value before changing anything, so a bad field changes nothing.
    if body.status is not None:
        parse_enum(Status, body.status, "status")
    if body.severity is not None:
        parse_enum(Severity, body.severity, "severity")
    if "message" in fields and "status" not in fields:
        raise InvalidInput("message", "goes with status (the status update's text)")
    if "reason" in fields and "severity" not in fields:
        raise InvalidInput("reason", "goes with severity")
    if body.tags is not None:
        services.valid_tags(body.tags, "tags")
    if "assignee" in fields:
        services.valid_name(body.assignee, "assignee")
    named = "affected_services" if "affected_services" in fields else "services"
    configured = [sv.name for sv in rest_state(request).config.services]
    title = body.title if body.title is not None and body.title.strip() != current.title else None
    description = body.description if body.description is not None and body.description != current.description else None
    wanted = [name.strip() for name in body.services] if body.services is not None else None
    affected = wanted if wanted is not None and wanted != current.services else None
    # One transaction: a field refused on the way (a status the incident cannot take) leaves the
    # fields before it unchanged too.
    async with in_transaction():
        with fields_named({"services": named}):
            if affected is not None:
                await services.check_services(affected, configured, field=named)
            if title is not None or description is not None or affected is not None:
                await services.edit_incident(
                    number, who.name, title=title, description=description, services=affected, configured=configured
                )
        if body.status is not None and body.status.strip().lower() != current.status:
            await services.change_status(number, body.status, who.name, message=body.message, public=body.public)
        elif body.message:  # the status stands: its text is still an update, not to be dropped
            await services.post_update(number, body.message, who.name, public=body.public)
        if body.severity is not None and body.severity.strip().lower() != current.severity:
            await services.change_severity(number, body.severity, who.name, reason=body.reason)
        if "assignee" in fields and (body.assignee or None) != current.assignee:
            await services.assign(number, body.assignee, who.name)
        if body.tags is not None:
            wanted = list(dict.fromkeys(t.strip() for t in body.tags))
            add = [t for t in wanted if t not in current.tags]
            remove = [t for t in current.tags if t not in wanted]
            if add or remove:
                await services.set_tags(number, who.name, add=add, remove=remove)
        if body.false_positive is not None and body.false_positive != current.false_positive:
            await services.mark_false_positive(number, who.name, value=body.false_positive)
    return _incident(await queries.get_incident(number))


@router.post("/incidents/{id}/comments", status_code=201, summary="Add a comment (internal_only never leaves the team)")
async def add_comment(id: IncidentId, body: CommentIn, who: Responder) -> dict[str, Any]:
    if body.communication is not None:
        if body.content is not None or body.author is not None or body.timestamp is not None:
            raise InvalidInput("communication", "give content (author, timestamp), or the spec's communication block, not both")
        return await _communication(incident_number(id), body.communication, who.name)
    if body.content is None:
        raise InvalidInput("content", "is required (or send the spec's communication block)")
    row = await services.comment(
        incident_number(id),
        body.content,
        who.name,
        internal_only=body.internal_only,
        stated_at=aware(body.timestamp, "timestamp"),
        on_behalf_of=body.author,
    )
    return row_dict(row)


async def _communication(number: int, block: Communication, actor: str) -> dict[str, Any]:
    """The spec's communication block: its comments, then its status updates, in one transaction."""
    if not block.comments and not block.status_updates:
        raise InvalidInput("communication", "name at least one comment or status update")
    comments = []
    async with in_transaction():
        for i, c in enumerate(block.comments):
            where = f"communication.comments[{i}]"
            with fields_named({name: f"{where}.{name}" for name in ("content", "author", "timestamp", "on_behalf_of", "stated_at")}):
                stated = aware(c.timestamp, "timestamp")
                said = await services.comment(
                    number, c.content, actor, internal_only=c.internal_only, stated_at=stated, on_behalf_of=c.author
                )
            comments.append(row_dict(said))
        updates = await _post_updates(number, block.status_updates, actor, "communication.status_updates")
    return {"comments": comments, "updates": updates}


async def _post_updates(number: int, items: list[Any], actor: str, where: str, *, public: bool | None = None) -> list[dict[str, Any]]:
    """Status updates of a spec block, in order, in the caller's transaction; a refusal names
    the item's field (`where[i].timestamp`). `public` overrides each item's own flag."""
    posted = []
    for i, u in enumerate(items):
        with fields_named({name: f"{where}[{i}].{name}" for name in ("message", "status", "timestamp", "stated_at")}):
            stated = aware(u.timestamp, "timestamp")
            row = await services.post_update(
                number, u.message, actor, public=u.public if public is None else public, status=u.status, stated_at=stated
            )
        posted.append(row_dict(row))
    return posted


@router.post("/incidents/{id}/updates", status_code=201, summary="Post a status update (public unless public is false)")
async def add_update(id: IncidentId, body: UpdateIn, who: Responder) -> dict[str, Any]:
    number = incident_number(id)
    if body.public_updates is not None:
        if body.message is not None or body.status is not None or body.timestamp is not None:
            raise InvalidInput("public_updates", "give message (status, timestamp), or the spec's public_updates block, not both")
        async with in_transaction():  # every update, or none when one is refused
            return {"updates": await _post_updates(number, body.public_updates, who.name, "public_updates", public=True)}
    if body.message is None:
        raise InvalidInput("message", "is required (or send the spec's public_updates block)")
    row = await services.post_update(
        number, body.message, who.name, public=body.public, status=body.status, stated_at=aware(body.timestamp, "timestamp")
    )
    return row_dict(row)


@router.post("/incidents/{id}/acknowledge", summary="Acknowledge (stops escalation)")
async def acknowledge(id: IncidentId, who: Responder, _body: NoBody = None) -> dict[str, Any]:
    return _incident(await services.acknowledge(incident_number(id), who.name))


@router.post("/incidents/{id}/status", summary="Move to investigating, identified or monitoring")
async def change_status(id: IncidentId, body: StatusIn, who: Responder) -> dict[str, Any]:
    return _incident(await services.change_status(incident_number(id), body.status, who.name, message=body.message, public=body.public))


@router.post("/incidents/{id}/severity", summary="Change severity")
async def change_severity(id: IncidentId, body: SeverityIn, who: Responder) -> dict[str, Any]:
    return _incident(await services.change_severity(incident_number(id), body.severity, who.name, reason=body.reason))


@router.post("/incidents/{id}/assign", summary="Assign (null or empty unassigns)")
async def assign(id: IncidentId, body: AssignIn, who: Responder) -> dict[str, Any]:
    return _incident(await services.assign(incident_number(id), body.assignee, who.name))


@router.post("/incidents/{id}/tags", summary="Add and remove tags")
async def tags(id: IncidentId, body: TagsIn, who: Responder) -> dict[str, Any]:
    return _incident(await services.set_tags(incident_number(id), who.name, add=body.add, remove=body.remove))


@router.post("/incidents/{id}/evidence", status_code=201, summary="Attach evidence: a URL, content, a log excerpt")
async def add_evidence(id: IncidentId, body: EvidenceIn, who: Responder) -> dict[str, Any]:
    if body.evidence is not None:
        single = body.model_fields_set - {"evidence"}
        if single:
            raise InvalidInput(
                "evidence", f"give kind (url, content…), or the spec's evidence block, not both (also sent: {', '.join(sorted(single))})"
            )
        return {"evidence": await _evidence_block(incident_number(id), body.evidence, who.name)}
    if body.kind is None:
        raise InvalidInput("kind", "is required (or send the spec's evidence block)")
    row = await services.add_evidence(
        incident_number(id),
        body.kind,
        who.name,
        url=body.url,
        content=body.content,
        path=body.path,
        range_from=aware(body.range_from, "range_from", local=True),
        range_to=aware(body.range_to, "range_to", local=True),
        description=body.description,
    )
    return row_dict(row)


async def _evidence_block(number: int, block: EvidenceBlock, actor: str) -> list[dict[str, Any]]:
    """The spec's evidence block: its screenshots, then a log reference per log path (with the
    block's time range), in one transaction."""
    logs = dict(block.logs)
    span = _time_range(logs.pop("time_range", None), "evidence.logs.time_range")
    if not block.screenshots and not logs:
        raise InvalidInput("evidence", "name at least one screenshot or log path")
    added = []
    async with in_transaction():
        for i, shot in enumerate(block.screenshots):
            where = f"evidence.screenshots[{i}]"
            with fields_named({"url": f"{where}.url", "description": f"{where}.description", "range": f"{where}.timestamp"}):
                taken = aware(shot.timestamp, f"{where}.timestamp")
                row = await services.add_evidence(
                    number, "screenshot", actor, url=shot.url, range_from=taken, range_to=taken, description=shot.description
                )
            added.append(row_dict(row))
        for name, path in logs.items():
            with fields_named({"path": f"evidence.logs.{name}", "range": "evidence.logs.time_range"}):
                row = await services.add_evidence(
                    number, "log", actor, path=path.strip(), range_from=span[0], range_to=span[1], description=name.replace("_", " ")
                )
            added.append(row_dict(row))
    return added


def _time_range(text: str | None, field: str) -> tuple[datetime | None, datetime | None]:
    """The spec's "2024-01-17T10:00:00Z - 2024-01-17T11:00:00Z" (also with " – ", " to " or "/")."""
    if text is None:
        return None, None
    parts = next((text.split(sep, 1) for sep in (" - ", " – ", " — ", " to ", "/") if sep in text), None)
    if parts is None:
        raise InvalidInput(
            field, f'{text!r} is not "START - END" (two ISO 8601 times, as in "2024-01-17T10:00:00Z - 2024-01-17T11:00:00Z")'
        )
    ends = []
    for part, side in zip(parts, ("start", "end"), strict=True):
        try:
            when = datetime.fromisoformat(part.strip())
        except ValueError:
            raise InvalidInput(field, f"its {side} {part.strip()!r} is not an ISO 8601 time (2024-01-17T10:00:00Z)") from None
        ends.append(aware(check_time(when, field), field, local=True))
    if ends[0] > ends[1]:
        raise InvalidInput(field, "starts after it ends")
    return ends[0], ends[1]


@router.post("/incidents/{id}/resolve", summary="Resolve with a root cause and solution")
async def resolve(id: IncidentId, body: ResolveIn, who: Responder, request: Request) -> dict[str, Any]:
    with body.refusals_named():
        incident = await services.resolve(
            incident_number(id),
            who.name,
            root_cause=body.root_cause,
            solution=body.solution,
            category=body.category,
            verification_steps=body.verification_steps,
            categories=_categories(rest_state(request)),
            stated_at=aware(body.resolved_at, "resolved_at"),
            on_behalf_of=body.resolved_by,
            amend=body.amend,
        )
    return _incident(incident)


@router.post("/incidents/{id}/reopen", summary="Reopen a resolved incident")
async def reopen(id: IncidentId, who: Responder, body: ReasonIn | None = None) -> dict[str, Any]:
    return _incident(await services.reopen(incident_number(id), who.name, reason=body.reason if body else None))


@router.post("/incidents/{id}/merge", summary="Merge this incident into another open one (everything moves there); returns the survivor")
async def merge(id: IncidentId, body: MergeIn, who: Responder) -> dict[str, Any]:
    return _incident(await services.merge(incident_number(id), body.into, who.name, reason=body.reason))


@router.post("/incidents/{id}/split", status_code=201, summary="Take one alert (by fingerprint) out into a new incident; returns it")
async def split(id: IncidentId, body: SplitIn, who: Responder) -> dict[str, Any]:
    return _incident(await services.split(incident_number(id), body.fingerprint, who.name))


@router.post("/incidents/{id}/false-positive", summary="Mark (or with value false, unmark) as a false positive")
async def false_positive(id: IncidentId, body: FalsePositiveIn, who: Responder) -> dict[str, Any]:
    return _incident(await services.mark_false_positive(incident_number(id), who.name, value=body.value, reason=body.reason))


@router.post("/incidents/{id}/verification/{step}", summary="Check off verification step N (1-based)")
async def verification_step(id: IncidentId, step: Annotated[int, Path(ge=1, le=1000)], body: StepIn, who: Responder) -> dict[str, Any]:
    return _incident(await services.set_verification_step(incident_number(id), step - 1, who.name, done=body.done))


@router.post("/incidents/{id}/followups", status_code=201, summary="Add a follow-up action")
async def add_followup(id: IncidentId, body: FollowUpIn, who: Responder) -> dict[str, Any]:
    number = incident_number(id)
    if body.follow_up is not None and body.improvements is not None:
        raise InvalidInput("improvements", "give the spec's follow_up block or its improvements block, not both")
    block, name = (body.follow_up, "follow_up") if body.follow_up is not None else (body.improvements, "improvements")
    if block is not None:
        if body.group is not None or body.description is not None:
            raise InvalidInput(name, f"give group and description, or the spec's {name} block, not both")
        actions = [(group, text) for group, texts in block.items() for text in texts]
        rows = await services.add_followups(number, actions, who.name, owner=body.owner, due_date=body.due_date, field=name)
        return {"followups": [row_dict(row) for row in rows]}
    for name in ("group", "description"):
        if getattr(body, name) is None:
            raise InvalidInput(name, "is required (or send the spec's follow_up or improvements block)")
    assert body.group is not None and body.description is not None
    row = await services.add_followup(number, body.group, body.description, who.name, owner=body.owner, due_date=body.due_date)
    return row_dict(row)


@router.post("/followups/{followup_id}/complete", summary="Mark a follow-up done (or with done false, open again)")
async def complete_followup(followup_id: int, who: Responder, body: StepIn | None = None) -> dict[str, Any]:
    # No body marks it done, as the path says (the body only reopens one: {"done": false}).
    done = body.done if body is not None else True
    return row_dict(await services.complete_followup(check_id(followup_id, "follow-up"), who.name, done=done))


@router.post("/comments/{comment_id}/promote", status_code=201, summary="Publish an internal comment as a public update")
async def promote_comment(comment_id: int, who: Responder, _body: NoBody) -> dict[str, Any]:
    return row_dict(await services.promote_comment(check_id(comment_id, "comment"), who.name))

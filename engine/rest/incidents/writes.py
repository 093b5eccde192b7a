"""Incident endpoints: list, read, create, update, and every change the console can make.

Each write calls the same engine.incidents.services function the CLI and the console call, with the
token's name as the actor. `{id}` is the incident key (`INC-42`) or its number.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import Field, model_validator

from engine.core.domain import DEFAULT_ROOT_CAUSE_CATEGORIES, InvalidInput, NotFound, Severity, Status, parse_enum
from engine.incidents import queries, services
from engine.rest.common import Body, DataResponse, Day, Responder, Text, Viewer, When, check_id, incident_number, rest_state, row_dict
from engine.storage.models import Incident

router = APIRouter(prefix="/api", tags=["incidents"])

IncidentId = Annotated[Text, Path(description="Incident key such as INC-42 (or its number)", max_length=40)]
Name = Annotated[Text, Field(pattern=r"^\s*[A-Za-z0-9_.@:#/+-]{1,64}\s*$", description="letters, digits and _.-:@#/+, up to 64")]
Short = Annotated[Text, Field(max_length=300, pattern=r"\S")]
Long = Annotated[Text, Field(max_length=20_000)]
Required = Annotated[Text, Field(max_length=20_000, pattern=r"\S")]
Severity_ = Literal["critical", "high", "medium", "low"]
Settable = Literal["investigating", "identified", "monitoring"]
EvidenceKind_ = Literal["screenshot", "log", "response", "link", "file", "samples"]
FollowUpGroup_ = Literal[
    "preventive_measures", "monitoring_improvements", "documentation_updates", "process_changes", "technical_changes", "team_changes"
]


def _aware(value: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _incident(incident: Incident) -> dict[str, Any]:
    return queries.incident_dict(incident)


# --- bodies ---------------------------------------------------------------------------------


class IncidentCreate(Body):
    """The spec's manual incident: `affected_services` is accepted as another name for
    `services`; the spec's wrapper `{"manual_incident": {...}}` is unwrapped."""

    title: Short
    severity: Severity_
    description: Long = ""
    services: list[Name] = Field(default_factory=list, max_length=100)
    affected_services: list[Name] | None = Field(None, max_length=100, description="the spec's name for services (use one of the two)")
    tags: list[Name] = Field(default_factory=list, max_length=100)
    assignee: Name | None = None
    dedup_key: Annotated[Text, Field(max_length=200)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        if isinstance(data, dict) and set(data) == {"manual_incident"} and isinstance(data["manual_incident"], dict):
            return data["manual_incident"]
        return data

    @model_validator(mode="after")
    def _one_services(self) -> IncidentCreate:
        if self.affected_services is not None:
            if "services" in self.model_fields_set and self.services != self.affected_services:
                raise ValueError("give services or affected_services, not both")
            self.services = self.affected_services
        return self


class IncidentUpdate(Body):
    """Fields to change; each one present is applied through its own service function."""

    status: Settable | None = None
    message: Long | None = Field(None, description="with status: the status update's text")
    public: bool = Field(False, description="with status and message: show the message on the status page")
    severity: Severity_ | None = None
    reason: Long | None = Field(None, description="with severity: why it changed")
    assignee: Name | Literal[""] | None = Field(None, description="who is assigned; null or an empty string unassigns")
    tags: list[Name] | None = Field(None, max_length=100, description="the complete new list of tags")
    false_positive: bool | None = None


Stated = Annotated[
    When | None,
    Field(
        description="when it happened, for back-filling (ISO 8601 with a zone; not in the future). Stored as the "
        "stated time; the record's created_at stays the server's time"
    ),
]


class CommentIn(Body):
    content: Required
    internal_only: bool = False
    author: Annotated[Text, Field(max_length=200)] | None = Field(
        None,
        description=(
            "display author (the spec's field). The token's name is always recorded as who wrote it; a different "
            'author is stored as on_behalf_of and shown as "AUTHOR via TOKEN"'
        ),
    )
    timestamp: Stated = None


class UpdateIn(Body):
    message: Required
    public: bool = True
    status: Settable | None = None
    timestamp: Stated = None


class StatusIn(Body):
    status: Settable
    message: Long | None = None
    public: bool = False


class SeverityIn(Body):
    severity: Severity_
    reason: Long | None = None


class AssignIn(Body):
    assignee: Name | None = None


class TagsIn(Body):
    add: list[Name] = Field(default_factory=list, max_length=100)
    remove: list[Name] = Field(default_factory=list, max_length=100)


class EvidenceIn(Body):
    kind: EvidenceKind_
    url: Annotated[Text, Field(max_length=4000)] | None = None
    content: Annotated[Text, Field(max_length=1_000_000)] | None = None
    path: Annotated[Text, Field(max_length=4000, description="where an attached file came from (informational)")] | None = None
    range_from: When | None = None
    range_to: When | None = None
    description: Long = ""


class ResolveIn(Body):
    root_cause: Required
    solution: Required
    category: Annotated[Text, Field(max_length=64)] | None = None
    verification_steps: list[Annotated[Text, Field(max_length=1000, pattern=r"\S")]] = Field(default_factory=list, max_length=100)


class ReasonIn(Body):
    reason: Long | None = None


class FalsePositiveIn(Body):
    value: bool = True
    reason: Long | None = None


class StepIn(Body):
    done: bool = True


class FollowUpIn(Body):
    group: FollowUpGroup_
    description: Annotated[Text, Field(max_length=5000, pattern=r"\S")]
    owner: Name | None = None
    due_date: Day | None = None


def _categories(state: Any) -> list[str]:
    extra = list(getattr(getattr(state.config, "engine", None), "root_cause_categories", None) or [])
    return list(dict.fromkeys([*DEFAULT_ROOT_CAUSE_CATEGORIES, *extra]))


# --- reads ----------------------------------------------------------------------------------


@router.get("/incidents", summary="List incidents")
async def list_incidents(
    _: Viewer,
    status: Annotated[
        Text | None, Query(max_length=200, description="a status, open, or several separated by commas (investigating,identified)")
    ] = None,
    severity: Severity_ | None = None,
    service: Annotated[Text | None, Query(max_length=64)] = None,
    tag: Annotated[Text | None, Query(max_length=64)] = None,
    since: Annotated[When | None, Query(description="created at or after (ISO 8601)")] = None,
    include_resolved: Annotated[bool, Query(description="without status: include resolved incidents")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    rows = await queries.list_incidents(
        status=queries.status_filter(status),
        severity=severity,
        include_resolved=include_resolved,
        service=service,
        tag=tag,
        since=_aware(since),
        limit=10_000_000,
        offset=0,
    )
    page = rows[offset : offset + limit]
    following = offset + limit if offset + limit < len(rows) else None
    return {"incidents": page, "total": len(rows), "limit": limit, "offset": offset, "next_offset": following}


@router.get("/incidents/counts", summary="Open incidents by severity")
async def incident_counts(_: Viewer) -> dict[str, int]:
    return await queries.incident_counts()


@router.get("/incidents/page", summary="One window of the incident list with the total (for paging consoles)")
async def incident_page(
    _: Viewer,
    status: Annotated[
        list[Annotated[Text, Field(max_length=200)]] | None,
        Query(max_length=20, description="repeatable or comma-separated; open means every open status"),
    ] = None,
    severity: Annotated[list[Severity_] | None, Query(description="repeatable")] = None,
    service: Annotated[list[Annotated[Text, Field(max_length=64)]] | None, Query(max_length=50)] = None,
    tag: Annotated[list[Annotated[Text, Field(max_length=64)]] | None, Query(max_length=50)] = None,
    assignee: Annotated[Text | None, Query(max_length=64, description="an empty value means unassigned")] = None,
    number: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    text: Annotated[
        list[Annotated[Text, Field(max_length=200)]] | None, Query(max_length=20, description="words the title contains")
    ] = None,
    include_resolved: bool = False,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    focus: Annotated[Text | None, Query(max_length=40, description="an incident key: where it sits in this order")] = None,
) -> dict[str, Any]:
    from engine.api.local import incident_page as page

    filters: dict[str, Any] = {
        "statuses": queries.status_filter(status),
        "severities": severity or [],
        "services": service or [],
        "tags": tag or [],
        "text": text or [],
        "include_resolved": include_resolved,
    }
    if assignee is not None:
        filters["assignee"] = assignee
    if number is not None:
        filters["number"] = number
    focus_key = None
    if focus:
        try:
            focus_key = f"INC-{incident_number(focus)}"
        except NotFound:
            focus_key = None
    result = await page(filters, offset, limit, focus_key)
    if focus and focus_key is None:
        result["position"] = None
    return result


@router.get("/incidents/{id}", summary="One incident with its timeline, comments, updates, evidence and follow-ups")
async def get_incident(id: IncidentId, _: Viewer) -> DataResponse:
    # Plain data already: skip re-validating the (large) detail as a response model.
    return DataResponse(await queries.incident_detail(incident_number(id)))


# --- writes ---------------------------------------------------------------------------------


@router.post("/incidents", status_code=201, summary="Open an incident (source api)")
async def create_incident(body: IncidentCreate, who: Responder, request: Request) -> dict[str, Any]:
    configured = [sv.name for sv in rest_state(request).config.services]
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
    )
    return _incident(incident)


@router.put("/incidents/{id}", summary="Change status, severity, assignee, tags or the false-positive flag")
async def update_incident(id: IncidentId, body: IncidentUpdate, who: Responder) -> dict[str, Any]:
    number = incident_number(id)
    fields = body.model_fields_set
    if not fields - {"message", "public", "reason"}:
        raise InvalidInput("body", "name at least one of status, severity, assignee, tags, false_positive")
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
        services.valid_names(body.tags, "tags")
    if "assignee" in fields:
        services.valid_name(body.assignee, "assignee")
    if body.status is not None and body.status.strip().lower() != current.status:
        await services.change_status(number, body.status, who.name, message=body.message, public=body.public)
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
    row = await services.comment(
        incident_number(id),
        body.content,
        who.name,
        internal_only=body.internal_only,
        stated_at=_aware(body.timestamp),
        on_behalf_of=body.author,
    )
    return row_dict(row)


@router.post("/incidents/{id}/updates", status_code=201, summary="Post a status update (public unless public is false)")
async def add_update(id: IncidentId, body: UpdateIn, who: Responder) -> dict[str, Any]:
    row = await services.post_update(
        incident_number(id), body.message, who.name, public=body.public, status=body.status, stated_at=_aware(body.timestamp)
    )
    return row_dict(row)


@router.post("/incidents/{id}/acknowledge", summary="Acknowledge (stops escalation)")
async def acknowledge(id: IncidentId, who: Responder) -> dict[str, Any]:
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
    row = await services.add_evidence(
        incident_number(id),
        body.kind,
        who.name,
        url=body.url,
        content=body.content,
        path=body.path,
        range_from=_aware(body.range_from),
        range_to=_aware(body.range_to),
        description=body.description,
    )
    return row_dict(row)


@router.post("/incidents/{id}/resolve", summary="Resolve with a root cause and solution")
async def resolve(id: IncidentId, body: ResolveIn, who: Responder, request: Request) -> dict[str, Any]:
    incident = await services.resolve(
        incident_number(id),
        who.name,
        root_cause=body.root_cause,
        solution=body.solution,
        category=body.category,
        verification_steps=body.verification_steps,
        categories=_categories(rest_state(request)),
    )
    return _incident(incident)


@router.post("/incidents/{id}/reopen", summary="Reopen a resolved incident")
async def reopen(id: IncidentId, who: Responder, body: ReasonIn | None = None) -> dict[str, Any]:
    return _incident(await services.reopen(incident_number(id), who.name, reason=body.reason if body else None))


@router.post("/incidents/{id}/false-positive", summary="Mark (or with value false, unmark) as a false positive")
async def false_positive(id: IncidentId, body: FalsePositiveIn, who: Responder) -> dict[str, Any]:
    return _incident(await services.mark_false_positive(incident_number(id), who.name, value=body.value, reason=body.reason))


@router.post("/incidents/{id}/verification/{step}", summary="Check off verification step N (1-based)")
async def verification_step(id: IncidentId, step: Annotated[int, Path(ge=1, le=1000)], body: StepIn, who: Responder) -> dict[str, Any]:
    return _incident(await services.set_verification_step(incident_number(id), step - 1, who.name, done=body.done))


@router.post("/incidents/{id}/followups", status_code=201, summary="Add a follow-up action")
async def add_followup(id: IncidentId, body: FollowUpIn, who: Responder) -> dict[str, Any]:
    row = await services.add_followup(incident_number(id), body.group, body.description, who.name, owner=body.owner, due_date=body.due_date)
    return row_dict(row)


@router.post("/followups/{followup_id}/complete", summary="Mark a follow-up done (or with done false, open again)")
async def complete_followup(followup_id: int, body: StepIn, who: Responder) -> dict[str, Any]:
    return row_dict(await services.complete_followup(check_id(followup_id, "follow-up"), who.name, done=body.done))


@router.post("/comments/{comment_id}/promote", status_code=201, summary="Publish an internal comment as a public update")
async def promote_comment(comment_id: int, who: Responder) -> dict[str, Any]:
    return row_dict(await services.promote_comment(check_id(comment_id, "comment"), who.name))

"""After-incident endpoints: post-mortems, analytics, satisfaction ratings and follow-ups.

Viewers read everything here; responders edit post-mortems, rate and link tickets. Each write
calls the same engine.learning.postmortem function the CLI and the console call, with the token's name
as the actor, so a console attached over HTTP has the Post-mortem tab and Analytics screen too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import Field, StrictBool, StrictFloat, StrictInt

from engine.core.domain import InvalidInput
from engine.learning import analytics, postmortem
from engine.learning.postmortem import UNSET
from engine.rest import auth, redaction
from engine.rest.common import (
    Body,
    DataResponse,
    Day,
    NoBody,
    Responder,
    Text,
    Viewer,
    When,
    check_id,
    fields_named,
    incident_number,
    rest_state,
    row_dict,
)
from engine.storage.models import Event

router = APIRouter(prefix="/api", tags=["post-mortems and analytics"])

IncidentId = Annotated[Text, Path(description="Incident key such as INC-42 (or its number)", max_length=40)]
Item = Annotated[Text, Field(max_length=2000)]
Items = Annotated[list[Item], Field(max_length=200)]
Zone = Annotated[
    Text | None, Query(max_length=64, description="IANA time zone for the period's days and the times shown (default: [engine] timezone)")
]


def _zone(tz: str | None, request: Request) -> str:
    """`tz`, checked; unset, the engine's configured zone, so the API counts a month's days as
    `pulseguard report` and the console do."""
    if tz is None:
        tz = str(getattr(getattr(rest_state(request).config, "engine", None), "timezone", None) or "UTC")
    try:
        analytics.zone_named(tz)
    except InvalidInput as exc:
        raise InvalidInput("tz", exc.message) from None
    return tz


# Numbers, or the text a console form holds ("1200", "45"); engine.learning.postmortem checks them.
Users = StrictInt | Annotated[Text, Field(max_length=40)]
Minutes = StrictFloat | Annotated[Text, Field(max_length=40)]
IMPACT_FIELDS = ("affected_users", "downtime_minutes", "financial_impact", "reputational_impact")


class TimelineLine(Body):
    """A line of the spec's post-mortem timeline; it becomes a timeline entry (kind note)."""

    time: Annotated[Text, Field(max_length=64)] = Field(
        description='"HH:MM": that time in the [engine] timezone on the local day the incident opened; or ISO 8601 with a zone'
    )
    event: Annotated[Text, Field(max_length=2000, pattern=r"\S")] = Field(description="the entry's text")
    details: Item = Field("", description="the entry's annotation")


class ImpactAssessment(Body):
    """The spec's `impact_assessment`: the same four fields as the flat ones."""

    affected_users: Users | None = None
    downtime_minutes: Minutes | None = Field(None, description="minutes; null: computed from the timeline")
    financial_impact: Item | None = None
    reputational_impact: Item | None = None


class PostmortemFields(Body):
    """Fields to change; lists given whole replace, `add_*` append. `downtime_minutes` null goes
    back to the downtime computed from the timeline. The spec's `impact_assessment` sets the
    impact fields and its `timeline` adds entries (a line whose time and text an entry already
    has is left as it is, so sending the same block twice adds nothing)."""

    summary: Annotated[Text, Field(max_length=20_000)] | None = None
    lessons_learned: Items | None = None
    went_well: Items | None = None
    went_badly: Items | None = None
    add_lessons: Items = Field(default_factory=list)
    add_went_well: Items = Field(default_factory=list)
    add_went_badly: Items = Field(default_factory=list)
    affected_users: Users | None = None
    downtime_minutes: Minutes | None = Field(None, description="minutes; null: computed from the timeline")
    financial_impact: Item | None = None
    reputational_impact: Item | None = None
    impact_assessment: ImpactAssessment | None = Field(None, description="the spec's name for the four impact fields")
    timeline: Annotated[list[TimelineLine], Field(max_length=200)] | None = Field(None, description="lines to add to the timeline")


class PostmortemPatch(PostmortemFields):
    """The fields, or the spec's block as printed: `{"post_mortem": {...}}` with them inside."""

    post_mortem: PostmortemFields | None = Field(None, description="the spec's wrapper: the fields inside it, none beside it")


class EntryIn(Body):
    at: When = Field(description="when it happened (ISO 8601 with a zone)")
    text: Annotated[Text, Field(max_length=2000, pattern=r"\S")]
    kind: Annotated[Text, Field(max_length=40)] = "note"
    annotation: Item = ""


class EntryPatch(Body):
    at: When | None = None
    text: Annotated[Text, Field(max_length=2000, pattern=r"\S")] | None = None
    kind: Annotated[Text, Field(max_length=40)] | None = None
    annotation: Item | None = None
    hidden: StrictBool | None = None


class RatingIn(Body):
    customer: StrictInt | None = Field(None, ge=1, le=5)
    team: StrictInt | None = Field(None, ge=1, le=5)


class TicketIn(Body):
    ticket_key: Annotated[Text, Field(max_length=64)] | None = Field(None, description="e.g. OPS-123; null unlinks")


# --- reads ----------------------------------------------------------------------------------


async def _document(id: str, who: auth.Principal) -> dict[str, Any]:
    """The post-mortem as `who` reads it: its lines taken from notifications name where they went
    for responders only, as the timeline does (engine.rest.redaction)."""
    doc = await postmortem.postmortem_document(incident_number(id))
    if who.sees_contacts:
        return doc
    ids = [line["event_id"] for line in doc["timeline"] if line.get("event_id") is not None]
    data = dict(await Event.filter(id__in=ids).values_list("id", "data")) if ids else {}
    return redaction.postmortem(doc, data)


@router.get("/incidents/{id}/postmortem", summary="The post-mortem document (a preview until first edited)")
async def get_postmortem(id: IncidentId, who: Viewer) -> DataResponse:
    return DataResponse(await _document(id, who))


@router.get(
    "/incidents/{id}/postmortem/markdown",
    summary="The post-mortem as Markdown",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/markdown": {}}}},
)
async def postmortem_markdown(id: IncidentId, who: Viewer, request: Request, tz: Zone = None) -> PlainTextResponse:
    from engine.learning.postmortem_render import render_markdown

    doc = await _document(id, who)
    return PlainTextResponse(render_markdown(doc, _zone(tz, request)), media_type="text/markdown; charset=utf-8")


@router.get("/analytics", summary="The analytics report of a month, a date range, or this month")
async def analytics_report(
    _: Viewer,
    request: Request,
    month: Annotated[Text | None, Query(max_length=7, description="YYYY-MM")] = None,
    since: Annotated[Day | None, Query(description="first day (with until: a range, both days included)")] = None,
    until: Annotated[Day | None, Query(description="last day (default today)")] = None,
    tz: Zone = None,
    view: Annotated[
        Literal["report", "spec"],
        Query(description='spec: the specification\'s analytics and kpis blocks, durations in words ("2.5 hours")'),
    ] = "report",
) -> DataResponse:
    tz = _zone(tz, request)
    if month and (since or until):
        raise InvalidInput("month", "give month, or since/until, not both")
    if until is not None and since is None:
        raise InvalidInput("since", "is required with until")
    if month:
        period = analytics.month_period(month, tz)
    elif since is not None:
        period = analytics.range_period(since, until or datetime.now(analytics.zone_named(tz)).date(), tz)
    else:
        period = analytics.current_month(tz)
    report = await analytics.build_report(period)
    if view == "spec":
        from engine.learning.analytics.spec import spec_view

        return DataResponse(spec_view(report))
    return DataResponse(report)


@router.get("/followups", summary="Follow-up actions across incidents (overdue first)")
async def list_followups(
    _: Viewer,
    open_only: bool = False,
    owner: Annotated[Text | None, Query(max_length=64)] = None,
) -> DataResponse:
    return DataResponse(await postmortem.list_followups(open_only=open_only, owner=owner))


# --- writes ---------------------------------------------------------------------------------


@router.patch("/incidents/{id}/postmortem", summary="Edit the post-mortem's text and impact, and add timeline lines")
async def update_postmortem(id: IncidentId, body: PostmortemPatch, who: Responder, request: Request) -> dict[str, Any]:
    fields, prefix = _unwrapped(body)
    given = fields.model_fields_set
    values: dict[str, Any] = {
        name: getattr(fields, name) if name in given else UNSET
        for name in ("summary", "lessons_learned", "went_well", "went_badly", *IMPACT_FIELDS)
    }
    if "summary" in given and fields.summary is None:
        values["summary"] = ""
    # The engine names a field as it calls it; the answer names it as the request sent it.
    sent_as = {name: f"{prefix}{name}" for name in given}
    if fields.impact_assessment is not None:
        nested = fields.impact_assessment
        for name in sorted(nested.model_fields_set):
            value = getattr(nested, name)
            if name in given and not _same(values[name], value):
                raise InvalidInput(
                    f"{prefix}impact_assessment.{name}",
                    f"is {value!r} but {prefix}{name} is {values[name]!r}: give one of the two (or the same value)",
                )
            values[name] = value
            sent_as[name] = f"{prefix}impact_assessment.{name}"
    lines = [
        postmortem.GivenEntry(line.time, line.event, line.details, f"{prefix}timeline[{i}]") for i, line in enumerate(fields.timeline or [])
    ]
    try:
        edit = await postmortem.edit_postmortem(
            incident_number(id),
            who.name,
            add_lessons=fields.add_lessons,
            add_went_well=fields.add_went_well,
            add_went_badly=fields.add_went_badly,
            timeline=lines,
            tz=_zone(None, request),
            **values,
        )
    except InvalidInput as exc:
        if sent_as.get(exc.field, exc.field) == exc.field:
            raise
        raise InvalidInput(sent_as[exc.field], exc.message) from None
    out = row_dict(edit.postmortem)
    if fields.timeline is not None:
        out["timeline_added"] = [row_dict(e) for e in edit.added]
        out["timeline_already_there"] = edit.already_there
    return out


def _unwrapped(body: PostmortemPatch) -> tuple[PostmortemFields, str]:
    """The fields to apply and the prefix naming them in errors (`post_mortem.` when wrapped)."""
    if "post_mortem" not in body.model_fields_set:
        return body, ""
    beside = sorted(body.model_fields_set - {"post_mortem"})
    if beside:
        raise InvalidInput("post_mortem", f"send the post_mortem block alone, or its fields without it (also sent: {', '.join(beside)})")
    if body.post_mortem is None:
        raise InvalidInput("post_mortem", "must be an object with the post-mortem's fields")
    return body.post_mortem, "post_mortem."


def _same(flat: Any, nested: Any) -> bool:
    """Whether a flat field and its impact_assessment twin say the same (12500 and "12500" do)."""
    if flat == nested:
        return True
    if flat is None or nested is None or isinstance(flat, bool) or isinstance(nested, bool):
        return False
    try:
        return float(str(flat).strip()) == float(str(nested).strip())
    except ValueError:
        return str(flat).strip() == str(nested).strip()


@router.post("/incidents/{id}/postmortem/entries", status_code=201, summary="Add a post-mortem timeline entry")
async def add_entry(id: IncidentId, body: EntryIn, who: Responder) -> dict[str, Any]:
    row = await postmortem.add_entry(
        incident_number(id), who.name, at_time=body.at, text=body.text, kind=body.kind, annotation=body.annotation
    )
    return row_dict(row)


@router.patch("/incidents/{id}/postmortem/entries/{entry_id}", summary="Edit, annotate, hide or show an entry")
async def edit_entry(id: IncidentId, entry_id: int, body: EntryPatch, who: Responder) -> dict[str, Any]:
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    for name, target in (("at", "at_time"), ("text", "text"), ("kind", "kind"), ("annotation", "annotation"), ("hidden", "hidden")):
        if name in given:
            value = getattr(body, name)
            if value is None:
                raise InvalidInput(name, "must not be null")
            changes[target] = value
    row = await postmortem.edit_entry(incident_number(id), check_id(entry_id, "entry"), who.name, **changes)
    return row_dict(row)


@router.delete(
    "/incidents/{id}/postmortem/entries/{entry_id}",
    status_code=204,
    summary="Remove an entry a person added (entries from events can only be hidden)",
)
async def remove_entry(id: IncidentId, entry_id: int, who: Responder, _body: NoBody) -> None:
    await postmortem.remove_entry(incident_number(id), check_id(entry_id, "entry"), who.name)


@router.post("/incidents/{id}/postmortem/publish", summary="Publish the post-mortem")
async def publish(id: IncidentId, who: Responder, _body: NoBody) -> dict[str, Any]:
    return row_dict(await postmortem.publish(incident_number(id), who.name))


@router.post("/incidents/{id}/postmortem/unpublish", summary="Take the post-mortem back to draft")
async def unpublish(id: IncidentId, who: Responder, _body: NoBody) -> dict[str, Any]:
    return row_dict(await postmortem.unpublish(incident_number(id), who.name))


@router.post("/incidents/{id}/satisfaction", summary="Rate customer and/or team satisfaction (1-5)")
async def rate(id: IncidentId, body: RatingIn, who: Responder) -> dict[str, Any]:
    incident = await postmortem.rate_satisfaction(incident_number(id), who.name, customer=body.customer, team=body.team)
    return {"key": incident.key, "satisfaction": dict(incident.satisfaction)}


@router.post("/followups/{followup_id}/ticket", summary="Link a follow-up to its ticket (null unlinks)")
async def followup_ticket(followup_id: int, body: TicketIn, who: Responder) -> dict[str, Any]:
    with fields_named({"ticket": "ticket_key"}):  # named as the body sends it
        return row_dict(await postmortem.set_followup_ticket(check_id(followup_id, "follow-up"), body.ticket_key, who.name))

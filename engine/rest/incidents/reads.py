"""Incident reads: the list, counts, a page of the list, and one incident in full."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from engine.core.domain import NotFound
from engine.incidents import queries
from engine.rest.common import DataResponse, Text, Viewer, When, incident_number
from engine.rest.incidents.bodies import IncidentId, Severity_, aware

router = APIRouter()


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
    filters: dict[str, Any] = {
        "status": queries.status_filter(status),
        "severity": severity,
        "include_resolved": include_resolved,
        "service": service,
        "tag": tag,
        "since": aware(since),
    }
    total = await queries.count_incidents(**filters)
    page = await queries.list_incidents(**filters, limit=limit, offset=offset)
    following = offset + limit if offset + limit < total else None
    return {"incidents": page, "total": total, "limit": limit, "offset": offset, "next_offset": following}


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
    result: dict[str, Any] = dict(await page(filters, offset, limit, focus_key))
    if focus and focus_key is None:
        result["position"] = None
    return result


@router.get("/incidents/{id}", summary="One incident with its timeline, comments, updates, evidence and follow-ups")
async def get_incident(id: IncidentId, _: Viewer) -> DataResponse:
    # Plain data already: skip re-validating the (large) detail as a response model.
    return DataResponse(await queries.incident_detail(incident_number(id)))

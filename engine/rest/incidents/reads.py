"""Incident reads: the list, counts, a page of the list, and one incident in full."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from engine.core.domain import InvalidInput, NotFound
from engine.incidents import queries
from engine.rest import redaction
from engine.rest.cache import one_build
from engine.rest.common import REVALIDATE, Text, Viewer, When, aware, fields_named, incident_number, not_modified, render_data, rest_state
from engine.rest.fastpath import detail_etag, list_validator
from engine.rest.incidents.bodies import IncidentId, Severity_

router = APIRouter()


# A list query string remembered for the fast path costs its bytes; enough for every dashboard.
LIST_QUERIES = 4096


@router.get(
    "/incidents",
    summary="List incidents",
    description=(
        "Worst severity first, then newest. Page with `next_cursor` (stable while incidents open) or with offset. "
        "Sends an ETag; a poller that sends it back as If-None-Match gets 304 while the list is unchanged."
    ),
    response_model=None,
    responses={304: {"description": "unchanged since the ETag sent in If-None-Match"}},
)
async def list_incidents(
    request: Request,
    who: Viewer,
    # A list, so a repeated `status` adds to the filter instead of the last one winning.
    status: Annotated[
        list[Annotated[Text, Field(max_length=200)]] | None,
        Query(max_length=20, description="a status, open, or several: comma-separated (investigating,identified) or repeated"),
    ] = None,
    severity: Severity_ | None = None,
    service: Annotated[Text | None, Query(max_length=64)] = None,
    tag: Annotated[Text | None, Query(max_length=64)] = None,
    since: Annotated[When | None, Query(description="created at or after (ISO 8601)")] = None,
    include_resolved: Annotated[bool, Query(description="without status: include resolved incidents")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    cursor: Annotated[Text | None, Query(max_length=200, description="the previous page's next_cursor: the page after it")] = None,
) -> Response:
    filters: dict[str, Any] = {
        "status": queries.status_filter(status),
        "severity": severity,
        "include_resolved": include_resolved,
        "service": service,
        "tag": tag,
        "since": aware(since, "since"),
    }
    after = decode_cursor(cursor) if cursor else None
    if after is not None and offset:
        raise InvalidInput("offset", "give a cursor or an offset, not both")
    # Every change to an incident writes a timeline entry, so the feed's cursor says whether any
    # list may have changed; the engine's own bookkeeping (escalation state) shows within fastpath.LIST_MAX_AGE.
    state = rest_state(request)
    validator = list_validator(await state.feed_cursor.get(None))
    key = (*((k, str(v)) for k, v in filters.items()), limit, offset, cursor)
    # A viewer's page is another body (its escalation policies name channels, not addresses).
    redacted = not who.sees_contacts
    cache = state.lists
    entry = cache.get((key, redacted), validator)
    if entry is None:

        async def build() -> tuple[str, bytes]:
            total = await queries.count_incidents(**filters)
            page = await queries.list_incidents(**filters, limit=limit + 1, offset=offset, after=after)
            more, page = len(page) > limit, page[:limit]
            if redacted:
                page = [redaction.incident(row) for row in page]
            body = render_data(
                {
                    "incidents": page,
                    "total": total,
                    "limit": limit,
                    "offset": offset,
                    "next_offset": offset + limit if after is None and offset + limit < total else None,
                    "next_cursor": encode_cursor(queries.position(page[-1])) if more else None,
                }
            )
            return cache.put((key, redacted), validator, body)

        entry = await one_build(state.builds, ("list", key, redacted, validator), build)
    etag, body = entry
    # Validated: the same query string may now be answered before routing (engine.rest.fastpath).
    if len(state.list_queries) >= LIST_QUERIES:
        state.list_queries.clear()
    state.list_queries[request.scope["query_string"]] = key
    headers = {**REVALIDATE, "ETag": etag}
    return not_modified(request, headers) or Response(body, media_type="application/json", headers=headers)


def encode_cursor(pos: queries.ListPosition) -> str:
    rank, created, last_id = pos
    return base64.urlsafe_b64encode(json.dumps([rank, created.isoformat(), last_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> queries.ListPosition:
    try:
        rank, created, last_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        when = datetime.fromisoformat(created)
        if not (isinstance(rank, int) and isinstance(last_id, int)) or when.tzinfo is None:
            raise ValueError
        if encode_cursor((rank, when, last_id)) != cursor:  # base64 skips stray characters: a mangled copy is not ours
            raise ValueError
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise InvalidInput("cursor", "is not a cursor this list gave (pass next_cursor back as it came)") from None
    return rank, when, last_id


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
            with fields_named({"id": "focus"}):
                focus_key = f"INC-{incident_number(focus)}"
        except NotFound:
            focus_key = None
    result: dict[str, Any] = dict(await page(filters, offset, limit, focus_key))
    if focus and focus_key is None:
        result["position"] = None
    return result


@router.get(
    "/incidents/{id}",
    summary="One incident with its timeline, comments, updates, evidence and follow-ups",
    description="Sends an ETag; a poller that sends it back as If-None-Match gets 304 until the incident changes.",
    responses={304: {"description": "unchanged since the ETag sent in If-None-Match"}},
)
async def get_incident(id: IncidentId, request: Request, who: Viewer) -> Response:
    number = incident_number(id)
    state = rest_state(request)
    version = await state.detail_versions.get(number)
    if version is None:
        raise NotFound(f"no incident INC-{number}")
    # Where notifications went is for responders: a viewer's detail is another body, kept apart.
    redacted = not who.sees_contacts
    etag = detail_etag(number, version, redacted)
    headers = {**REVALIDATE, "ETag": etag}
    if (unchanged := not_modified(request, headers)) is not None:
        return unchanged  # without building the detail
    cache = state.details
    entry = cache.get((number, redacted), etag)
    if entry is None:

        async def build() -> tuple[str, bytes]:
            # Read after the validator: the body is at least as new as the ETag it is kept under.
            detail = await queries.incident_detail(number)
            return cache.put((number, redacted), etag, render_data(redaction.incident(detail) if redacted else detail), etag)

        entry = await one_build(state.builds, ("detail", number, redacted, etag), build)
    return Response(entry[1], media_type="application/json", headers=headers)


@router.get("/incidents/{id}/runbook", summary="The incident's runbook: its trigger's, else its first service's (URL or Markdown)")
async def get_runbook(id: IncidentId, request: Request, _: Viewer) -> dict[str, Any]:
    from engine.config.runbooks import runbook_for

    incident = await queries.get_incident(incident_number(id))
    found = runbook_for(rest_state(request).config, incident.trigger, list(incident.services or []))
    return {"incident": incident.key, "runbook": found.as_dict() if found is not None else None}

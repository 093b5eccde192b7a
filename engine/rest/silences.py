"""Silences and snoozes over HTTP: GET/POST /api/silences, PATCH (extend) and DELETE (expire)
/api/silences/{id}; POST/DELETE /api/incidents/{id}/snooze. Reads need a viewer token,
changes a responder (as acknowledging does). Silences are never on the public status page."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import Field

from engine.core.domain import InvalidInput
from engine.core.durations import duration_seconds
from engine.core.matchers import matchers_from
from engine.incidents import queries, services
from engine.incidents.services.silences import as_dict
from engine.rest.common import Body, NoBody, Responder, Text, Viewer, When, aware, check_id, fields_named, incident_number, rest_state
from engine.rest.incidents.bodies import IncidentId

router = APIRouter(prefix="/api", tags=["silences"])

Duration = Annotated[str, Field(max_length=32, description="e.g. 30m, 2h, 1d")]


def _duration(text: str, field: str) -> timedelta:
    seconds = duration_seconds(text.strip())
    if seconds is None or seconds <= 0:
        raise InvalidInput(field, f"{text!r} is not a duration (expected e.g. 30m, 2h, 1d)")
    return timedelta(seconds=seconds)


class MatcherIn(Body):
    field: Annotated[Text, Field(max_length=80)]
    op: Annotated[Text, Field(max_length=2)] = "="
    value: Annotated[Text, Field(max_length=500)]


class SilenceIn(Body):
    matchers: list[Annotated[Text, Field(max_length=600)] | MatcherIn] = Field(
        max_length=50, description='"service=checkout", "severity!=critical", "target=~web-.*", or {field, op, value}'
    )
    comment: Annotated[Text, Field(max_length=2000)]
    starts_at: When | None = None
    ends_at: When | None = None
    duration: Duration | None = Field(default=None, description="instead of ends_at, e.g. 2h")


class SilencePatch(Body):
    extend_by: Duration = Field(description="move the end this much later, e.g. 1h")


class SnoozeIn(Body):
    duration: Duration = Field(description="how long to hold paging, e.g. 30m (at most 7 days)")


@router.get("/silences", summary="Active and pending silences (expired ones too with expired=true)")
async def list_silences(_: Viewer, expired: bool = False) -> list[dict[str, Any]]:
    return [as_dict(s) for s in await services.list_silences(expired=expired)]


@router.post("/silences", status_code=201, summary="Add a silence: matching firings open nothing and page nobody while it is active")
async def add_silence(body: SilenceIn, who: Responder, request: Request) -> dict[str, Any]:
    matchers = [m if isinstance(m, str) else m.model_dump() for m in body.matchers]
    for i, item in enumerate(matchers):
        # Named as the body sent it (matchers[1]), the matcher's words in the message.
        try:
            matchers_from([item])
        except InvalidInput as exc:
            if exc.field.startswith("matcher "):
                raise InvalidInput(f"matchers[{i}]", f"{exc.field.removeprefix('matcher ')}: {exc.message}") from None
    with fields_named({"starts": "starts_at", "ends": "ends_at"}):
        silence = await services.create_silence(
            matchers,
            actor=who.name,
            comment=body.comment,
            starts_at=aware(body.starts_at, "starts_at"),
            ends_at=aware(body.ends_at, "ends_at"),
            duration=_duration(body.duration, "duration") if body.duration is not None else None,
            configured=[sv.name for sv in rest_state(request).config.services],
        )
    return as_dict(silence)


@router.get("/silences/{silence_id}", summary="One silence, with its state and how many firings it silenced")
async def get_silence(silence_id: int, _: Viewer) -> dict[str, Any]:
    return as_dict(await services.get_silence(check_id(silence_id, "silence")))


@router.patch("/silences/{silence_id}", summary="Extend a silence")
async def extend_silence(silence_id: int, body: SilencePatch, who: Responder) -> dict[str, Any]:
    with fields_named({"ends": "extend_by"}):
        silence = await services.extend_silence(check_id(silence_id, "silence"), _duration(body.extend_by, "extend_by"), who.name)
    return as_dict(silence)


@router.delete("/silences/{silence_id}", summary="Expire a silence now (pages it held are sent)")
async def expire_silence(silence_id: int, who: Responder, _body: NoBody) -> dict[str, Any]:
    return as_dict(await services.expire_silence(check_id(silence_id, "silence"), who.name))


@router.post("/incidents/{id}/snooze", summary="Hold an unacknowledged incident's paging; it re-pages at the end unless acknowledged")
async def snooze(id: IncidentId, body: SnoozeIn, who: Responder) -> dict[str, Any]:
    inc = await services.snooze(incident_number(id), _duration(body.duration, "duration"), who.name)
    return {**queries.incident_dict(inc), "snoozed_until": (inc.escalation or {}).get("snoozed_until")}


@router.delete("/incidents/{id}/snooze", summary="End a snooze now: paging resumes")
async def unsnooze(id: IncidentId, who: Responder, _body: NoBody) -> dict[str, Any]:
    inc = await services.unsnooze(incident_number(id), who.name)
    return {**queries.incident_dict(inc), "snoozed_until": None}

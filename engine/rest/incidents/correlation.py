"""An incident's correlation analysis, also in the spec's shape (`correlation_analysis`: its
time window, what each metric did, the related incidents): read it, have the engine work it out
again, or record a responder's own."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Request
from pydantic import Field

from engine.core.domain import InvalidInput, NotFound
from engine.core.durations import format_duration
from engine.core.inputs import UsageError, parse_duration
from engine.incidents import queries, services
from engine.rest.common import Responder, Text, Viewer, incident_number, rest_state
from engine.rest.incidents.bodies import IncidentId, Wrapped

router = APIRouter()

# What a responder's own observation of a metric is stored as (the engine's are spike, step…).
NOTED = "noted"

Metric = Annotated[Text, Field(min_length=1, max_length=200, pattern=r"\S")]
Observation = Annotated[Text, Field(max_length=500, pattern=r"\S")]
Related = Annotated[Text, Field(max_length=40, pattern=r"\S")]


class CorrelationIn(Wrapped):
    """The spec's block `{"correlation_analysis": {...}}` (or its fields unwrapped). With
    metrics or related incidents: a responder's own analysis, stored in place of the engine's.
    Without: the engine works the analysis out again over time_window and stores it."""

    time_window: Annotated[Text, Field(max_length=20)] | None = Field(
        None, description="how far around the start to look: 30m, 1h, 2h (default: ai_detection.correlation_analysis.window)"
    )
    metrics: Annotated[dict[Metric, Observation], Field(max_length=200)] = Field(
        default_factory=dict, description='what each metric did, as a person says it: {"cpu_usage": "spike at 10:25"}'
    )
    related_incidents: Annotated[list[Related], Field(max_length=100)] = Field(
        default_factory=list, description="incidents this one relates to: INC-45, 45 or incident-45"
    )

    wrapper: ClassVar[str] = "correlation_analysis"


def _window(text: str | None, request: Request, *, longest: timedelta | None = None) -> timedelta:
    if text is None:
        section = getattr(getattr(rest_state(request).config, "ai_detection", None), "correlation_analysis", None)
        return timedelta(seconds=float(getattr(section, "window", 3600.0) or 3600.0))
    try:
        span = parse_duration(text, "time_window", positive=True)
    except UsageError as exc:
        raise InvalidInput("time_window", str(exc).removeprefix("time_window: ")) from None
    if longest is not None and span > longest:
        raise InvalidInput("time_window", f"{text!r} is longer than the engine looks ({format_duration(longest.total_seconds())})")
    return span


def spec_shape(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored analysis as the spec writes it."""
    if not data:
        return None
    seconds = data.get("window_seconds")
    return {
        "time_window": format_duration(float(seconds)) if seconds else None,
        "metrics": {c["series"]: c.get("label") or c.get("kind") or "" for c in data.get("series") or []},
        "related_incidents": [r["key"] for r in data.get("related_incidents") or []],
    }


def _named(body: CorrelationIn, name: str) -> str:
    """A field as the body sent it (inside the spec's wrapper, or not)."""
    return f"{body.wrapper}.{name}" if body._wrapped else name


def _answer(data: dict[str, Any] | None, *, stored: bool) -> dict[str, Any]:
    return {"correlation_analysis": spec_shape(data), "analysis": data, "stored": stored}


async def _related(keys: list[str], own: str, field: str) -> list[dict[str, Any]]:
    """The spec's references as incident keys ("incident-45" is INC-45). One that names no
    incident number, or the incident itself, is refused; a number this database lacks (an
    incident of another system, say) is kept as given."""
    out: list[dict[str, Any]] = []
    for i, text in enumerate(k.strip() for k in keys):
        found = re.fullmatch(r"(?i)(?:inc(?:ident)?[-_ #]?)?(\d{1,12})", text)
        if found is None:
            raise InvalidInput(f"{field}[{i}]", f"{text!r} names no incident (expected INC-45, 45 or incident-45)")
        key = f"INC-{int(found.group(1))}"
        if key == own:
            raise InvalidInput(f"{field}[{i}]", f"{text!r} is this incident itself")
        if any(r["key"] == key for r in out):
            continue
        title = None
        try:
            title = (await queries.get_incident(key)).title
        except NotFound:
            pass
        out.append({"key": key, "title": title})
    return out


@router.get(
    "/incidents/{id}/correlation",
    summary="Correlation analysis (the spec's correlation_analysis): the stored one, else worked out now without storing it",
)
async def read_correlation(id: IncidentId, _: Viewer, request: Request) -> dict[str, Any]:
    incident = await queries.get_incident(incident_number(id))
    stored = (incident.analysis or {}).get("correlation")
    if stored:
        return _answer(stored, stored=True)
    from engine.detection.gather import correlate_incident

    return _answer(await correlate_incident(incident.key, rest_state(request).config, _window(None, request)), stored=False)


@router.post(
    "/incidents/{id}/correlation",
    summary="Record a responder's correlation analysis (the spec's block), or with neither metrics nor related incidents, "
    "have the engine work it out again; either is stored on the incident",
)
async def write_correlation(id: IncidentId, who: Responder, request: Request, body: CorrelationIn | None = None) -> dict[str, Any]:
    body = body or CorrelationIn()
    number = incident_number(id)
    incident = await queries.get_incident(number)
    with body.refusals_named():
        if body.metrics or body.related_incidents:
            window = _window(body.time_window, request) if body.time_window is not None else None
            data: dict[str, Any] = {
                "incident": incident.key,
                "window_seconds": window.total_seconds() if window is not None else None,
                "series": [{"series": name.strip(), "kind": NOTED, "label": text.strip()} for name, text in body.metrics.items()],
                "related_incidents": await _related(body.related_incidents, incident.key, _named(body, "related_incidents")),
                "noted_by": who.name,
            }
        else:
            from engine.detection.gather import LONGEST_WINDOW, correlate_incident

            window = _window(body.time_window, request, longest=LONGEST_WINDOW)
            data = await correlate_incident(incident.key, rest_state(request).config, window)
        changed = await services.set_analysis(number, "correlation", data, who.name)
    return _answer((changed.analysis or {}).get("correlation"), stored=True)

"""Prometheus Alertmanager's webhook (version 4): one incident per alert group."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field, ValidationError

from engine.core.domain import InvalidInput
from engine.core.matchers import LABEL_PREFIX, labels_of
from engine.incidents import audit
from engine.rest.common import Body, Text, rest_state
from engine.rest.webhooks.alerts import (
    Sender,
    alert_time,
    apply_alerts,
    clean_names,
    clip,
    group_fingerprint,
    severity_word,
    worst,
)

router = APIRouter()

# Label and annotation names are stored too (in titles and the timeline): the same rules as values.
Labels = dict[Text, Text]


class AmAlert(Body):
    model_config = {"extra": "allow"}
    status: Literal["firing", "resolved"]
    labels: Labels = Field(default_factory=dict)
    annotations: Labels = Field(default_factory=dict)
    startsAt: Text | None = None
    endsAt: Text | None = None
    generatorURL: Text | None = None
    fingerprint: Annotated[Text, Field(max_length=200)] | None = None


class AmPayload(Body):
    """Alertmanager's webhook body (version 4)."""

    model_config = {"extra": "allow"}
    version: Text = "4"
    groupKey: Annotated[Text, Field(min_length=1, max_length=10_000)]
    status: Literal["firing", "resolved"]
    receiver: Text = ""
    groupLabels: Labels = Field(default_factory=dict)
    commonLabels: Labels = Field(default_factory=dict)
    commonAnnotations: Labels = Field(default_factory=dict)
    externalURL: Text = ""
    alerts: list[AmAlert] = Field(min_length=1, max_length=100_000)


def _fingerprint(alert: AmAlert) -> str:
    if alert.fingerprint:
        return alert.fingerprint
    raw = json.dumps(sorted(alert.labels.items()))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


# The route's full path: its body limit is its own (integrations.alertmanager.body_limit).
PATH = "/api/webhooks/alertmanager"


async def _payload(request: Request) -> AmPayload:
    """The body, read and validated by the route once its Sender dependency has authenticated
    the sender, so only Alertmanager or a responder can make the engine read a storm's worth."""
    raw = await request.body()
    # Refused as FastAPI refuses a body it reads itself, so the 422s read the same.
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", e.pos), "msg": "JSON decode error", "input": {}, "ctx": {"error": e.msg}}]
        ) from None
    except (UnicodeDecodeError, RecursionError) as e:
        raise HTTPException(400, "There was an error parsing the body") from e
    try:
        return AmPayload.model_validate(data)
    except ValidationError as e:
        raise RequestValidationError([{**err, "loc": ("body", *err["loc"])} for err in e.errors()]) from None


def schemas() -> dict[str, Any]:
    """The body's schemas, for the OpenAPI document's components (the route reads its body
    itself, so FastAPI does not list them)."""
    schema = AmPayload.model_json_schema(ref_template="#/components/schemas/{model}")
    return {**schema.pop("$defs", {}), "AmPayload": schema}


@router.post(
    "/alertmanager",
    summary="Prometheus Alertmanager webhook (version 4): one incident per alert group",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AmPayload"}}}}
    },
    responses={
        422: {
            "description": "Validation Error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
        }
    },
)
async def alertmanager(request: Request, actor: Sender) -> dict[str, Any]:
    body = await _payload(request)
    audit.set_source("webhook")  # the audit log says where the change came from
    state = rest_state(request)
    if body.version != "4":
        raise InvalidInput("version", f"expected Alertmanager webhook version 4, got {body.version!r}")
    am = state.config.integrations.alertmanager
    default = str(getattr(am.default_severity, "value", am.default_severity)) if am is not None else "high"
    label = am.severity_label if am is not None else "severity"
    common, annotations = body.commonLabels, body.commonAnnotations
    first = body.alerts[0]
    if body.status == "resolved":
        # Alertmanager calls a group resolved only once every alert of it is: a firing alert
        # in a resolved group would move the incident to monitoring while it fires.
        still = next((i for i, a in enumerate(body.alerts) if a.status == "firing"), None)
        if still is not None:
            raise InvalidInput("status", f"is resolved, but alerts[{still}] is firing (a resolved group has only resolved alerts)")
    named = (common.get("alertname"), body.groupLabels.get("alertname"), first.labels.get("alertname"))
    name = next((n.strip() for n in named if n and n.strip()), "alert")
    summary = annotations.get("summary") or (first.annotations.get("summary") if len(body.alerts) == 1 else None)
    if not summary:
        # Name the group by its labels: "HighLatency (cluster=eu, job=api)".
        grouping = ", ".join(f"{k}={v}" for k, v in sorted(body.groupLabels.items()) if k != "alertname")
        summary = f"{name} ({grouping})" if grouping else name
    title = clip(summary, 300) or name
    # Each alert's own severity (commonLabels' when the group shares one): the group's
    # incident takes the worst of its firing alerts, whatever their order.
    severities = [severity_word(a.labels.get(label) or common.get(label), default) for a in body.alerts]
    firing_severities = [s for a, s in zip(body.alerts, severities, strict=True) if a.status == "firing"]
    severity = worst(firing_severities) or worst(severities) or default
    description = clip(annotations.get("description") or first.annotations.get("description") or "", 5000)
    if body.externalURL:
        description = (description + "\n\n" if description else "") + f"Alertmanager: {clip(body.externalURL, 500)}"
    svc = common.get("service") or first.labels.get("service")
    tags = clean_names(["alertmanager", name])
    alerts = [
        {
            "fingerprint": _fingerprint(a),
            "status": a.status,
            "starts_at": alert_time(a.startsAt, f"alerts[{i}].startsAt"),
            "summary": clip(a.annotations.get("summary") or a.labels.get("alertname") or name, 300) + _label_text(a.labels),
            "url": clip(a.generatorURL, 2000) or None,
            "severity": severities[i],
            "name": _alert_name(a.labels, name),
            "labels": _matcher_labels(a.labels, name=name, service=svc, severity=severities[i], tags=tags),
        }
        for i, a in enumerate(body.alerts)
    ]
    parts = {
        "service": svc,
        "trigger": name,
        "target": common.get("instance") or first.labels.get("instance"),
        "labels": {k: v for k, v in sorted(common.items()) if k != label},
    }
    dedup = group_fingerprint("alertmanager", body.groupKey, parts, state.config.grouping.fingerprint)
    return await apply_alerts(
        state,
        dedup=dedup,
        actor=actor,
        title=title,
        severity=severity,
        description=description,
        services_=clean_names([svc]) if svc else [],
        tags=tags,
        alerts=alerts,
        group_resolved=body.status == "resolved",
    )


def _alert_name(labels: dict[str, str], group: str) -> str:
    """How a timeline line names one alert: `HighLatency (instance=web-2)`."""
    name = clip(labels.get("alertname") or group, 100)
    instance = labels.get("instance")
    return f"{name} (instance={clip(instance, 100)})" if instance else name


def _matcher_labels(labels: dict[str, str], *, name: str, service: str | None, severity: str, tags: list[str]) -> dict[str, list[str]]:
    """What silence matchers see of one alert: each of its labels as `label.NAME` (as
    Alertmanager users write them: label.alertname, label.instance, label.job), its service,
    target (`instance`), trigger (`alertname`), severity (the mapped word), source `alert`, and
    the incident's tags (label.alertmanager=true), as before."""
    own = labels.get("service") or service
    seen = labels_of(
        services=[own] if own else [],
        target=labels.get("instance") or None,
        trigger=labels.get("alertname") or name,
        severity=severity,
        source="alert",
        tags=tags,
    )
    for key, value in labels.items():
        seen.setdefault(LABEL_PREFIX + key, []).append(value)
    return seen


def _label_text(labels: dict[str, str]) -> str:
    # A timeline line, not a dump: a label of a few hundred kilobytes (a stack trace put in a
    # label) would otherwise be repeated in every alert event and page.
    shown = [f"{clip(k, 60)}={clip(v, 100)}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity")][:6]
    return f" [{', '.join(shown)}]" if shown else ""

"""A generic JSON alert: firing opens (or updates) an incident, resolved settles it."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field

from engine.core.domain import InvalidInput
from engine.core.matchers import TAG_FIELD_PATTERN, TAG_RE, TAG_RULE
from engine.incidents import audit
from engine.rest.common import Body, Text, rest_state
from engine.rest.webhooks.alerts import NAME_OK, NAME_PATTERN, SEVERITY_WORDS, Sender, apply_alerts, group_fingerprint

router = APIRouter()


class GenericAlert(Body):
    title: Annotated[Text, Field(max_length=300, pattern=r"\S")]
    status: Literal["firing", "resolved"] = "firing"
    severity: Annotated[Text, Field(max_length=32, description="critical, high, medium, low (or warning, error, info, page…)")] = "high"
    dedup_key: Annotated[Text, Field(min_length=1, max_length=150)] | None = Field(
        None, description="alerts with the same key share one incident (default: the title)"
    )
    description: Annotated[Text, Field(max_length=20_000)] = ""
    services: list[Annotated[Text, Field(pattern=NAME_PATTERN)]] = Field(default_factory=list, max_length=50)
    tags: list[Annotated[Text, Field(pattern=TAG_FIELD_PATTERN)]] = Field(default_factory=list, max_length=50)
    url: Annotated[Text, Field(max_length=2000)] | None = None


@router.post("/alert", summary="Generic JSON alert: firing opens (or updates) an incident, resolved settles it")
async def generic_alert(body: GenericAlert, request: Request, actor: Sender) -> dict[str, Any]:
    audit.set_source("webhook")  # the audit log says where the change came from
    severity = SEVERITY_WORDS.get(body.severity.strip().lower())
    if severity is None:
        raise InvalidInput("severity", f"unknown severity {body.severity!r} (expected critical, high, medium or low)")
    # Spaces around a key or title are no part of it: " disk-db1 " is disk-db1's incident.
    key = (body.dedup_key or "").strip() or body.title.strip()
    parts = {
        "service": sorted(s.strip() for s in body.services),
        "trigger": key,
        "target": None,
        "labels": sorted(t.strip() for t in body.tags),
    }
    dedup = group_fingerprint("alert", key, parts, rest_state(request).config.grouping.fingerprint)
    bad = [s for s in body.services if not NAME_OK.match(s.strip())]
    if bad:
        raise InvalidInput("services", f"{bad[0]!r} is not a valid name")
    bad = [t for t in body.tags if not TAG_RE.match(t.strip())]
    if bad:
        raise InvalidInput("tags", f"{bad[0]!r} is not a valid tag ({TAG_RULE})")
    # Each alert is told apart by its own key: when [grouping] fingerprint puts several keys in
    # one incident, each is on the timeline, resolves on its own and can be split out.
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
    alerts = [{"fingerprint": fingerprint, "status": body.status, "summary": body.title, "url": body.url, "starts_at": None}]
    return await apply_alerts(
        rest_state(request),
        dedup=dedup,
        actor=actor,
        title=body.title,
        severity=severity,
        description=body.description,
        services_=[s.strip() for s in body.services],
        tags=[t.strip() for t in body.tags],
        alerts=alerts,
        # Grouped by its key alone, the alert is its group; grouped wider, the others may still fire.
        group_resolved=body.status == "resolved" and not rest_state(request).config.grouping.fingerprint,
    )

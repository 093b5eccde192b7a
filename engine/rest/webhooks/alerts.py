"""Inbound webhooks: Prometheus Alertmanager (v4), a generic JSON alert, Slack slash commands
and PagerDuty v3 webhooks (incident_sync).

Alerts open incidents with source `alert`, one per alert group (dedup key), so a group that
keeps firing adds timeline events to its open incident rather than opening more. When every
alert of the group is resolved the incident moves to monitoring; a new firing brings it back
to investigating.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import Field

from engine.config.model import secret_from_env
from engine.core.clock import utcnow
from engine.core.domain import DomainError, IllegalTransition, InvalidInput
from engine.incidents import queries, services
from engine.rest.auth import Principal, secure_equal
from engine.rest.common import Body, RestState, Text, _bearer, authenticate_request, rest_state
from engine.storage.models import Event, Incident

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])

SEVERITY_WORDS = {
    "critical": "critical",
    "page": "critical",
    "p1": "critical",
    "fatal": "critical",
    "emergency": "critical",
    "high": "high",
    "error": "high",
    "major": "high",
    "p2": "high",
    "medium": "medium",
    "warning": "medium",
    "warn": "medium",
    "p3": "medium",
    "minor": "medium",
    "low": "low",
    "info": "low",
    "informational": "low",
    "p4": "low",
    "p5": "low",
    "none": "low",
}
NAME_PATTERN = r"^\s*[A-Za-z0-9_.@:#/+-]{1,64}\s*$"
NAME_OK = re.compile(r"^[A-Za-z0-9_.@:#/+-]{1,64}$")
# Slack refuses requests older than this, and so do we (replayed requests).
SLACK_MAX_AGE = 300


def _lock(state: RestState, key: str) -> asyncio.Lock:
    lock = state.alert_locks.get(key)
    if lock is None:
        if len(state.alert_locks) > 10_000:
            state.alert_locks.clear()
        lock = state.alert_locks[key] = asyncio.Lock()
    return lock


# --- shared: from an alert group to an incident --------------------------------------------------


async def _open_for(dedup: str) -> Incident | None:
    return await services.find_open_incident(dedup)


async def _fired_before(incident: Incident) -> dict[str, str]:
    """Each alert fingerprint's last known state (firing/resolved) from the incident's timeline."""
    states: dict[str, str] = {}
    for data in (
        await Event.filter(incident_id=incident.id, kind__in=["alert_firing", "alert_resolved"])
        .order_by("id")
        .values_list("data", flat=True)
    ):
        if isinstance(data, dict) and data.get("fingerprint"):
            states[str(data["fingerprint"])] = str(data.get("status"))
    return states


async def apply_alerts(
    state: RestState,
    *,
    dedup: str,
    actor: str,
    title: str,
    severity: str,
    description: str,
    services_: list[str],
    tags: list[str],
    alerts: list[dict[str, Any]],
    group_resolved: bool,
) -> dict[str, Any]:
    """Open, update or settle the incident of one alert group. `alerts` items carry
    fingerprint, status (firing|resolved), summary and optional url."""
    async with _lock(state, dedup):
        incident = await _open_for(dedup)
        firing = [a for a in alerts if a["status"] == "firing"]
        if incident is None:
            if not firing:
                return {"action": "ignored", "reason": "no open incident for this group and nothing is firing"}
            incident = await services.create_incident(
                title=title,
                severity=severity,
                actor=actor,
                description=description,
                services=services_,
                tags=tags,
                source="alert",
                dedup_key=dedup,
                detected_at=min((a["starts_at"] for a in firing if a.get("starts_at")), default=None),
            )
            for a in firing:
                await services.record_event(
                    incident.number,
                    "alert_firing",
                    f"alert firing: {a['summary']}",
                    actor,
                    data={"fingerprint": a["fingerprint"], "status": "firing", "url": a.get("url")},
                )
            return {"action": "created", "incident": incident.key}
        known = await _fired_before(incident)
        changed = 0
        for a in alerts:
            if known.get(a["fingerprint"]) == a["status"]:
                continue
            kind = "alert_firing" if a["status"] == "firing" else "alert_resolved"
            await services.record_event(
                incident.number,
                kind,
                f"alert {a['status']}: {a['summary']}",
                actor,
                data={"fingerprint": a["fingerprint"], "status": a["status"], "url": a.get("url")},
            )
            known[a["fingerprint"]] = a["status"]
            changed += 1
        action = "updated" if changed else "unchanged"
        all_resolved = group_resolved or (known and all(s == "resolved" for s in known.values()))
        incident = await queries.get_incident(incident.number)
        try:
            if all_resolved and incident.status != "monitoring":
                await services.change_status(incident.number, "monitoring", actor, message="all alerts of the group resolved")
                action = "monitoring"
            elif not all_resolved and firing and incident.status == "monitoring":
                await services.change_status(incident.number, "investigating", actor, message="alerts firing again")
                action = "investigating"
        except IllegalTransition:
            pass  # someone moved it meanwhile: their word stands
        return {"action": action, "incident": incident.key}


def _severity(value: Any, default: str) -> str:
    return SEVERITY_WORDS.get(str(value or "").strip().lower(), default)


def _names(values: list[Any]) -> list[str]:
    return [str(v).strip() for v in values if isinstance(v, str) and NAME_OK.match(str(v).strip())]


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return min(parsed, utcnow())


def _clip(text: Any, limit: int) -> str:
    value = str(text or "").replace("\x00", "").strip()
    value = value.encode("utf-8", "replace").decode("utf-8")
    return value if len(value) <= limit else value[: limit - 1] + "…"


# --- authentication of alert senders ----------------------------------------------------------


async def alert_sender(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> str:
    """Alertmanager may present the token named by integrations.alertmanager.token_env;
    otherwise a responder API token is needed. Returns the actor."""
    state = rest_state(request)
    am = state.config.integrations.alertmanager
    secret = secret_from_env(am.token_env) if am is not None else None
    token = creds.credentials if creds else None
    if secret and token and secure_equal(token, secret):
        return "alertmanager"
    principal: Principal = await authenticate_request(request, token)
    if not principal.can("responder"):
        raise HTTPException(403, f"this needs the responder role; token {principal.name!r} is a {principal.role}")
    return principal.name


Sender = Annotated[str, Depends(alert_sender)]


# --- Alertmanager --------------------------------------------------------------------------------


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
    alerts: list[AmAlert] = Field(min_length=1, max_length=10_000)


def _fingerprint(alert: AmAlert) -> str:
    if alert.fingerprint:
        return alert.fingerprint
    raw = json.dumps(sorted(alert.labels.items()))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@router.post("/alertmanager", summary="Prometheus Alertmanager webhook (version 4): one incident per alert group")
async def alertmanager(body: AmPayload, request: Request, actor: Sender) -> dict[str, Any]:
    state = rest_state(request)
    if body.version != "4":
        raise InvalidInput("version", f"expected Alertmanager webhook version 4, got {body.version!r}")
    am = state.config.integrations.alertmanager
    default = str(getattr(am.default_severity, "value", am.default_severity)) if am is not None else "high"
    label = am.severity_label if am is not None else "severity"
    common, annotations = body.commonLabels, body.commonAnnotations
    first = body.alerts[0]
    name = common.get("alertname") or body.groupLabels.get("alertname") or first.labels.get("alertname") or "alert"
    summary = annotations.get("summary") or (first.annotations.get("summary") if len(body.alerts) == 1 else None)
    if not summary:
        # Name the group by its labels: "HighLatency (cluster=eu, job=api)".
        grouping = ", ".join(f"{k}={v}" for k, v in sorted(body.groupLabels.items()) if k != "alertname")
        summary = f"{name} ({grouping})" if grouping else name
    title = _clip(summary, 300) or name
    severity = _severity(common.get(label) or first.labels.get(label), default)
    description = _clip(annotations.get("description") or first.annotations.get("description") or "", 5000)
    if body.externalURL:
        description = (description + "\n\n" if description else "") + f"Alertmanager: {_clip(body.externalURL, 500)}"
    svc = common.get("service") or first.labels.get("service")
    alerts = [
        {
            "fingerprint": _fingerprint(a),
            "status": a.status,
            "starts_at": _time(a.startsAt),
            "summary": _clip(a.annotations.get("summary") or a.labels.get("alertname") or name, 300) + _label_text(a.labels),
            "url": _clip(a.generatorURL, 2000) or None,
        }
        for a in body.alerts
    ]
    dedup = "alertmanager:" + hashlib.sha256(body.groupKey.encode()).hexdigest()[:40]
    return await apply_alerts(
        state,
        dedup=dedup,
        actor=actor,
        title=title,
        severity=severity,
        description=description,
        services_=_names([svc]) if svc else [],
        tags=_names(["alertmanager", name]),
        alerts=alerts,
        group_resolved=body.status == "resolved",
    )


def _label_text(labels: dict[str, str]) -> str:
    shown = [f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity")][:6]
    return f" [{', '.join(shown)}]" if shown else ""


# --- generic JSON alert --------------------------------------------------------------------------


class GenericAlert(Body):
    title: Annotated[Text, Field(max_length=300, pattern=r"\S")]
    status: Literal["firing", "resolved"] = "firing"
    severity: Annotated[Text, Field(max_length=32, description="critical, high, medium, low (or warning, error, info, page…)")] = "high"
    dedup_key: Annotated[Text, Field(min_length=1, max_length=150)] | None = Field(
        None, description="alerts with the same key share one incident (default: the title)"
    )
    description: Annotated[Text, Field(max_length=20_000)] = ""
    services: list[Annotated[Text, Field(pattern=NAME_PATTERN)]] = Field(default_factory=list, max_length=50)
    tags: list[Annotated[Text, Field(pattern=NAME_PATTERN)]] = Field(default_factory=list, max_length=50)
    url: Annotated[Text, Field(max_length=2000)] | None = None


@router.post("/alert", summary="Generic JSON alert: firing opens (or updates) an incident, resolved settles it")
async def generic_alert(body: GenericAlert, request: Request, actor: Sender) -> dict[str, Any]:
    severity = SEVERITY_WORDS.get(body.severity.strip().lower())
    if severity is None:
        raise InvalidInput("severity", f"unknown severity {body.severity!r} (expected critical, high, medium or low)")
    key = body.dedup_key or body.title
    dedup = "alert:" + hashlib.sha256(key.encode()).hexdigest()[:40]
    bad = [s for s in body.services + body.tags if not NAME_OK.match(s.strip())]
    if bad:
        raise InvalidInput("services" if bad[0] in body.services else "tags", f"{bad[0]!r} is not a valid name")
    alerts = [{"fingerprint": "alert", "status": body.status, "summary": body.title, "url": body.url, "starts_at": None}]
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
        group_resolved=body.status == "resolved",
    )


# --- Slack slash commands ------------------------------------------------------------------------

SLACK_HELP = (
    "Usage: /pulseguard list | ack KEY | status KEY STATUS MESSAGE | comment KEY TEXT\nSTATUS is investigating, identified or monitoring."
)


def verify_slack(secret: str, body: bytes, timestamp: str | None, signature: str | None, now: float | None = None) -> str | None:
    """None when the request is Slack's; otherwise why not."""
    if not timestamp or not signature:
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature"
    if not timestamp.isascii() or not timestamp.isdigit():
        return "bad X-Slack-Request-Timestamp"
    if abs((time.time() if now is None else now) - int(timestamp)) > SLACK_MAX_AGE:
        return "request timestamp is more than 5 minutes away (replayed or clock skew)"
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().encode("utf-8", "replace")):
        return "signature does not match"
    return None


def slack_actor(config: Any, user_id: str, user_name: str) -> str:
    """The configured user with this Slack id or @handle, else slack:NAME."""
    for user in config.users:
        handle = (user.slack or "").strip()
        if handle and (handle == user_id or handle.lstrip("@") == user_name):
            found: str = user.id
            return found
    return f"slack:{user_name or user_id or 'unknown'}"[:64]


def _reply(text: str, public: bool = False) -> dict[str, Any]:
    return {"response_type": "in_channel" if public else "ephemeral", "text": text}


async def run_slash_command(text: str, actor: str) -> dict[str, Any]:
    words = text.split()
    if not words or words[0].lower() in ("help", "?"):
        return _reply(SLACK_HELP)
    cmd, args = words[0].lower(), words[1:]
    try:
        if cmd == "list":
            rows = await queries.list_incidents(limit=20)
            if not rows:
                return _reply("No open incidents.")
            lines = [f"*{r['key']}* [{r['severity']}] {r['status']}: {r['title']}" for r in rows]
            return _reply("\n".join(lines))
        if cmd == "ack" and len(args) == 1:
            inc = await services.acknowledge(args[0], actor)
            return _reply(f"{inc.key} acknowledged by {actor} ({inc.status})", public=True)
        if cmd == "status" and len(args) >= 3:
            message = text.split(None, 3)[3]
            inc = await services.change_status(args[0], args[1], actor, message=message)
            return _reply(f"{inc.key} is now {inc.status}: {message}", public=True)
        if cmd == "comment" and len(args) >= 2:
            content = text.split(None, 2)[2]
            await services.comment(args[0], content, actor)
            return _reply(f"comment added to {args[0].upper()}")
    except DomainError as exc:
        return _reply(f"Could not do that: {exc}")
    return _reply(f"I did not understand {text!r}.\n{SLACK_HELP}")


@router.post(
    "/slack",
    summary="Slack slash command /pulseguard (signed with the Slack signing secret)",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "command": {"type": "string"},
                            "text": {"type": "string"},
                            "user_id": {"type": "string"},
                            "user_name": {"type": "string"},
                        },
                    }
                }
            }
        }
    },
)
async def slack_command(request: Request) -> dict[str, Any]:
    state = rest_state(request)
    slack = state.config.integrations.slack
    secret = secret_from_env(slack.signing_secret_env) if slack is not None else None
    if slack is None or not slack.command_integration or not secret:
        raise HTTPException(404, "Slack commands are not enabled (integrations.slack: command_integration and signing_secret_env)")
    body = await request.body()
    if len(body) > 20_000:
        raise HTTPException(413, "request too large")
    why = verify_slack(secret, body, request.headers.get("x-slack-request-timestamp"), request.headers.get("x-slack-signature"))
    if why:
        state.auth_failures += 1
        raise HTTPException(401, f"not a verified Slack request: {why}")
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return _reply("That request was not UTF-8.")

    def field(name: str) -> str:
        return (form.get(name) or [""])[0].replace("\x00", "")

    actor = slack_actor(state.config, field("user_id"), field("user_name"))
    return await run_slash_command(field("text").strip(), actor)


# --- PagerDuty v3 webhooks (incident_sync) ------------------------------------------------------


@router.post(
    "/pagerduty",
    summary="PagerDuty v3 webhook: acknowledgements and resolutions flow back (incident_sync)",
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def pagerduty_webhook(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> dict[str, Any]:
    from engine.notify.pagerduty import apply_webhook, parse_webhook

    state = rest_state(request)
    pd = state.config.integrations.pagerduty
    if pd is None or not pd.incident_sync:
        raise HTTPException(404, "PagerDuty incident sync is not enabled (integrations.pagerduty.incident_sync)")
    secret = secret_from_env(pd.webhook_secret_env)
    body = await request.body()
    if len(body) > 1_000_000:
        raise HTTPException(413, "request too large")
    if not secret:
        # Without a signing secret the sender must carry an API token (a custom header in PagerDuty).
        principal = await authenticate_request(request, creds.credentials if creds else None)
        if not principal.can("responder"):
            raise HTTPException(403, f"this needs the responder role; token {principal.name!r} is a {principal.role}")
    try:
        action = parse_webhook(body, dict(request.headers), secret)
    except ValueError as exc:
        if "signature" in str(exc):
            state.auth_failures += 1
            raise HTTPException(401, str(exc)) from None
        raise InvalidInput("body", str(exc)) from None
    if action is None:
        return {"result": "ignored: not an acknowledgement or resolution of a PulseGuard incident"}
    return {"result": await apply_webhook(action)}

"""PagerDuty v3 webhooks (incident_sync): acknowledgements and resolutions flow back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials

from engine.config.model import secret_from_env
from engine.core.domain import InvalidInput
from engine.incidents import audit
from engine.rest.common import authenticate_request, bearer_scheme, rest_state

router = APIRouter()


@router.post(
    "/pagerduty",
    summary="PagerDuty v3 webhook: acknowledgements and resolutions flow back (incident_sync)",
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def pagerduty_webhook(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)) -> dict[str, Any]:
    audit.set_source("pagerduty")  # the audit log says where the change came from
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

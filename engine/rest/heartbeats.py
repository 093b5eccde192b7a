"""Heartbeat pings: a job says it ran with `POST /api/heartbeats/TOKEN` (or GET, for a cron
`curl -fsS URL` one-liner). The token in the path is the credential (the value of the target's
`token_env`), so no Authorization header is needed; an unknown token changes nothing and counts
as a failed authentication (guesses are slowed down like wrong API tokens)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from engine.core.domain import NotFound
from engine.monitor.heartbeats import record_ping, target_for_token
from engine.rest.common import client_id, failed_authentication, rest_state

router = APIRouter(prefix="/api", tags=["heartbeats"])


async def _ping(token: str, request: Request) -> dict[str, Any]:
    target = target_for_token(rest_state(request).config.targets, token)
    if target is None:
        failed_authentication(request, (f"ip:{client_id(request)}",))
        raise NotFound("no heartbeat target has this token (check the URL, and that the target's token_env is set where the API runs)")
    at = await record_ping(target.name, client_id(request))
    due = at + timedelta(seconds=float(target.interval) + float(target.grace))
    return {"target": target.name, "at": at.isoformat(), "missed_after": due.isoformat()}


Token = Annotated[str, Path(min_length=1, max_length=200, description="the value of the heartbeat target's token_env")]


@router.post("/heartbeats/{token}", summary="A heartbeat target's ping (the token in the path is the credential: no Authorization header)")
async def ping(token: Token, request: Request) -> dict[str, Any]:
    return await _ping(token, request)


@router.get("/heartbeats/{token}", summary="The same ping as a GET, for a cron job's `curl -fsS URL`")
async def ping_get(token: Token, request: Request) -> dict[str, Any]:
    return await _ping(token, request)

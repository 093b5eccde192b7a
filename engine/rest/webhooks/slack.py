"""Slack slash commands (/pulseguard), verified with the Slack signing secret."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request

from engine.config.model import secret_from_env
from engine.core.domain import DomainError
from engine.incidents import audit, queries, services
from engine.rest.common import rest_state

router = APIRouter()

# Slack refuses requests older than this, and so do we (replayed requests).
SLACK_MAX_AGE = 300
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
    audit.set_source("slack")  # the audit log says where the change came from
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

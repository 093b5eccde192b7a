"""Slack slash commands (/pulseguard) and the buttons of pages posted to Slack (Acknowledge,
Resolve), both verified with the Slack signing secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request

from engine.config.model import secret_from_env
from engine.core.domain import DomainError
from engine.incidents import audit, queries, services
from engine.rest.common import rest_state

log = logging.getLogger("pulseguard.api")
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
    # At most 15 digits: int() refuses more than 4300, and no Unix time has more than 11.
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 15:
        return "bad X-Slack-Request-Timestamp"
    if abs((time.time() if now is None else now) - int(timestamp)) > SLACK_MAX_AGE:
        return "request timestamp is more than 5 minutes away (replayed or clock skew)"
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().encode("utf-8", "replace")):
        return "signature does not match"
    return None


def slack_user(config: Any, user_id: str, user_name: str) -> str | None:
    """The [[users]] id whose `slack` is this Slack member id or @handle, or None."""
    for user in config.users:
        handle = (user.slack or "").strip()
        if handle and ((user_id and handle == user_id) or (user_name and handle.lstrip("@") == user_name)):
            found: str = user.id
            return found
    return None


async def verified_body(request: Request, secret: str, *, limit: int) -> bytes:
    """The request's body once it is known to be Slack's: 413 over `limit`, 401 (counted as a
    failed authentication) when the signature or its timestamp does not hold."""
    body = await request.body()
    if len(body) > limit:
        raise HTTPException(413, "request too large")
    why = verify_slack(secret, body, request.headers.get("x-slack-request-timestamp"), request.headers.get("x-slack-signature"))
    if why:
        rest_state(request).auth_failures += 1
        raise HTTPException(401, f"not a verified Slack request: {why}")
    return body


def slack_actor(config: Any, user_id: str, user_name: str) -> str:
    """The configured user with this Slack id or @handle, else slack:NAME."""
    return slack_user(config, user_id, user_name) or f"slack:{user_name or user_id or 'unknown'}"[:64]


def _reply(text: str, public: bool = False) -> dict[str, Any]:
    return {"response_type": "in_channel" if public else "ephemeral", "text": text}


# What stops or moves an incident's paging (an acknowledgement stops escalation; a status may
# resolve it): only people PulseGuard knows, as for the buttons. Anyone in the workspace may list
# and comment (a comment is signed slack:NAME and changes nothing else).
_KNOWN_ONLY = ("ack", "status")


def not_a_user(who: str, verb: str) -> dict[str, Any]:
    """The reply to a Slack member with no [[users]] entry who asked for a change only users make."""
    return _reply(
        f"Your Slack account ({who}) is not a PulseGuard user, so nothing was changed. "
        f'Add slack = "{who}" to your [[users]] entry, then {verb} again.'
    )


async def run_slash_command(text: str, actor: str, *, known: bool = True, who: str = "") -> dict[str, Any]:
    """Run `/pulseguard TEXT` as `actor`; `known`: the actor is a [[users]] entry (`who`: the
    Slack id or @handle to name when it is not)."""
    words = text.split()
    if not words or words[0].lower() in ("help", "?"):
        return _reply(SLACK_HELP)
    cmd, args = words[0].lower(), words[1:]
    if cmd in _KNOWN_ONLY and not known:
        return not_a_user(who or actor, "run the command")
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
    body = await verified_body(request, secret, limit=20_000)
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return _reply("That request was not UTF-8.")

    def field(name: str) -> str:
        return (form.get(name) or [""])[0].replace("\x00", "")

    user_id, user_name = field("user_id"), field("user_name")
    known = slack_user(state.config, user_id, user_name)
    actor = known or slack_actor(state.config, user_id, user_name)
    who = user_id or ("@" + user_name if user_name else "unknown")
    return await run_slash_command(field("text").strip(), actor, known=known is not None, who=who)


# The buttons of a page (engine.notify.slack.buttons): action_id → what it does.
BUTTONS = {"pulseguard.acknowledge": "acknowledge", "pulseguard.resolve": "resolve"}


def slack_nonce(signature: str) -> str:
    """The nonce of one signed Slack request: the same request sent again is the same use."""
    return "slack:" + hashlib.sha256(signature.strip().encode()).hexdigest()[:40]


async def reply_to_slack(response_url: str, reply: dict[str, Any]) -> None:
    """Post the reply where Slack said to (after the 200 Slack needs within 3 seconds)."""
    import httpx

    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            response = await client.post(response_url, json={**reply, "replace_original": False})
        if response.status_code >= 300:
            log.warning("Slack refused the reply to a button press: HTTP %s", response.status_code)
    except httpx.HTTPError as exc:
        log.warning("could not reply to a Slack button press: %s", exc)


async def press(config: Any, payload: dict[str, Any], nonce: str) -> dict[str, Any] | None:
    """Carry out one button press; the reply for the person who pressed, or None for a press
    that is not ours to answer (the Open button is a plain link)."""
    from engine.incidents.services import act_once

    actions = payload.get("actions")
    actions = actions if isinstance(actions, list) else []
    pressed = next((a for a in actions if isinstance(a, dict) and str(a.get("action_id")) in BUTTONS), None)
    if pressed is None:
        return None
    action, key = BUTTONS[str(pressed["action_id"])], str(pressed.get("value") or "")
    who = payload.get("user")
    who = who if isinstance(who, dict) else {}
    user_id, user_name = str(who.get("id") or ""), str(who.get("username") or who.get("name") or "")
    actor = slack_user(config, user_id, user_name)
    if actor is None:
        return not_a_user(user_id or ("@" + user_name if user_name else "unknown"), "press the button")
    try:
        incident = await act_once(key, action, actor, nonce=nonce, via="slack", categories=config.root_cause_categories)
    except DomainError as exc:
        return _reply(f"Could not {action} {key}: {exc}. Nothing was changed.")
    return _reply(f"{incident.key} {action}d by {actor}" + (" (escalation stopped)" if action == "acknowledge" else ""), public=True)


@router.post(
    "/slack/actions",
    summary="Slack interactivity: the Acknowledge and Resolve buttons of pages (signed with the Slack signing secret)",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "properties": {"payload": {"type": "string", "description": "block_actions JSON"}}}
                }
            }
        }
    },
)
async def slack_actions(request: Request, background: BackgroundTasks) -> dict[str, Any]:
    audit.set_source("slack")  # the audit log says where the change came from
    state = rest_state(request)
    slack = state.config.integrations.slack
    secret = secret_from_env(slack.signing_secret_env) if slack is not None else None
    if slack is None or not slack.interactive or not secret:
        raise HTTPException(404, "Slack buttons are not enabled (integrations.slack: interactive and signing_secret_env)")
    signature = request.headers.get("x-slack-signature")
    body = await verified_body(request, secret, limit=100_000)
    try:
        raw = (parse_qs(body.decode("utf-8")).get("payload") or [""])[0]
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise HTTPException(400, "expected a form with a `payload` field holding Slack's interaction JSON") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return {}  # other interactions (shortcuts, modals) are not PulseGuard's
    reply = await press(state.config, payload, slack_nonce(signature or ""))
    if reply is None:
        return {}
    response_url = payload.get("response_url")
    if isinstance(response_url, str) and response_url.startswith(("https://", "http://")):
        background.add_task(reply_to_slack, response_url, reply)
    return reply

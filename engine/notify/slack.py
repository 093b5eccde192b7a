"""Slack incoming webhooks: Block Kit messages for create, updates, escalation and resolve.

With `[integrations.slack] interactive = true` a page carries Acknowledge and Resolve buttons
(their clicks come back to /api/webhooks/slack/actions, engine.rest.webhooks.slack) and, when
the engine has a public URL, an Open button to the incident's signed page."""

from __future__ import annotations

import json
from typing import Any

import httpx

from engine.notify import render
from engine.notify.base import DEFAULT_TIMEOUT, Outcome, post

SEVERITY_EMOJI = {"critical": ":red_circle:", "high": ":large_orange_circle:", "medium": ":large_yellow_circle:", "low": ":white_circle:"}
KIND_EMOJI = {"resolved": ":white_check_mark:", "acknowledged": ":eyes:", "escalated": ":rotating_light:", "reminder": ":alarm_clock:"}


def _mrkdwn(text: str) -> str:
    # Slack's three control characters; everything else is shown as written.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# The action ids of the buttons; the incident key is each button's value.
ACTION_PREFIX = "pulseguard."


def buttons(payload: dict[str, Any], open_url: str | None) -> dict[str, Any] | None:
    """The actions block of a page about an open incident, or None."""
    inc = payload.get("incident") or {}
    if not render.is_page(payload) or payload.get("audience") == "external" or not inc.get("key"):
        return None
    if inc.get("status") == "resolved":
        return None
    key = str(inc["key"])
    elements: list[dict[str, Any]] = [
        {
            "type": "button",
            "action_id": f"{ACTION_PREFIX}acknowledge",
            "text": {"type": "plain_text", "text": "Acknowledge"},
            "style": "primary",
            "value": key,
        },
        {
            "type": "button",
            "action_id": f"{ACTION_PREFIX}resolve",
            "text": {"type": "plain_text", "text": "Resolve"},
            "style": "danger",
            "value": key,
            "confirm": {
                "title": {"type": "plain_text", "text": f"Resolve {key}?"},
                "text": {"type": "plain_text", "text": "Escalation stops; the root cause and solution can be added afterwards."},
                "confirm": {"type": "plain_text", "text": "Resolve"},
                "deny": {"type": "plain_text", "text": "Cancel"},
            },
        },
    ]
    if open_url:
        elements.append(
            {"type": "button", "action_id": f"{ACTION_PREFIX}open", "text": {"type": "plain_text", "text": "Open"}, "url": open_url}
        )
    return {"type": "actions", "block_id": f"{ACTION_PREFIX}{key}", "elements": elements}


def build_message(
    payload: dict[str, Any], channel: str | None = None, *, interactive: bool = False, open_url: str | None = None
) -> dict[str, Any]:
    """The JSON body for an incoming webhook: `text` is the notification fallback, `blocks` the
    layout; `interactive` adds the buttons of a page."""
    head = render.headline(payload)
    lines = render.body_lines(payload)
    inc = payload.get("incident") or {}
    emoji = KIND_EMOJI.get(str(payload.get("kind")), SEVERITY_EMOJI.get(str(inc.get("severity")), ":bell:"))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{head}"[:150], "emoji": True}},
    ]
    if lines:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn("\n".join(lines))[:3000]}})
    if inc and payload.get("audience") != "external" and payload.get("kind") != "digest":
        fields = [
            {"type": "mrkdwn", "text": f"*Incident*\n{_mrkdwn(str(inc.get('key')))}"},
            {"type": "mrkdwn", "text": f"*Severity*\n{emoji} {_mrkdwn(str(inc.get('severity')))}"},
            {"type": "mrkdwn", "text": f"*Status*\n{_mrkdwn(str(inc.get('status')))}"},
        ]
        if payload.get("level"):
            fields.append({"type": "mrkdwn", "text": f"*Escalation level*\n{payload['level']}"})
        blocks.append({"type": "section", "fields": fields})
    context = f"PulseGuard · {payload.get('kind')}"
    if payload.get("actor"):
        context += f" · by {payload['actor']}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn(context)}]})
    actions = buttons(payload, open_url) if interactive else None
    if actions is not None:
        blocks.append(actions)
    body: dict[str, Any] = {"text": f"{emoji} {head}", "blocks": blocks}
    if channel:
        body["channel"] = channel  # honoured by legacy webhooks; app webhooks post to their own channel
    return body


async def send(
    client: httpx.AsyncClient,
    webhook_url: str,
    payload: dict[str, Any],
    *,
    channel: str | None = None,
    dedup_key: str = "",
    timeout: float = DEFAULT_TIMEOUT,
    interactive: bool = False,
    open_url: str | None = None,
) -> Outcome:
    body = json.dumps(build_message(payload, channel, interactive=interactive, open_url=open_url)).encode()
    headers = {"Content-Type": "application/json"}
    if dedup_key:
        headers["X-PulseGuard-Delivery"] = dedup_key
    outcome, _ = await post(client, webhook_url, content=body, headers=headers, timeout=timeout)
    return outcome

"""PagerDuty: Events API v2 (trigger / acknowledge / resolve), v3 webhooks back, on-call lookups.

Every event of one incident carries the same `dedup_key`, so PagerDuty folds a retried or
repeated trigger into the alert it already has, and an acknowledge or resolve finds it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from engine.notify import render
from engine.notify.base import DEFAULT_TIMEOUT, Outcome, post, request

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
API_URL = "https://api.pagerduty.com"
SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}
# Which PagerDuty action a notification kind becomes; kinds not listed are not sent.
ACTIONS = {
    "triggered": "trigger",
    "escalated": "trigger",
    "reopened": "trigger",
    "severity_changed": "trigger",
    "acknowledged": "acknowledge",
    "resolved": "resolve",
}
# The summary our events give an incident ("INC-7: API down"): a title only begins so when it is ours.
_TITLE_RE = re.compile(r"INC-(\d+):")


def dedup_key(incident_key: str) -> str:
    return f"pulseguard-{incident_key}"


def build_event(payload: dict[str, Any], routing_key: str, *, source: str = "pulseguard") -> dict[str, Any] | None:
    """The Events API v2 body for this notification, or None when its kind means nothing to PagerDuty."""
    action = ACTIONS.get(str(payload.get("kind")))
    inc = payload.get("incident") or {}
    if action is None or not inc.get("key"):
        return None
    body: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key(inc["key"])}
    if action == "trigger":
        body["payload"] = {
            "summary": f"{inc['key']}: {inc.get('title', '')}"[:1024],
            "source": source,
            "severity": SEVERITY.get(str(inc.get("severity")), "error"),
            "timestamp": inc.get("created_at") or datetime.now(UTC).isoformat(),
            "component": ", ".join(inc.get("services") or []) or None,
            "class": str(inc.get("severity")),
            "custom_details": {"status": inc.get("status"), "text": "\n".join(render.body_lines(payload))},
        }
        body["payload"] = {k: v for k, v in body["payload"].items() if v is not None}
        body["client"] = "PulseGuard"
        runbook = str(payload.get("runbook") or "")
        if runbook.startswith(("https://", "http://")):
            body["links"] = [{"href": runbook, "text": "Runbook"}]
    return body


async def send(
    client: httpx.AsyncClient,
    events_url: str,
    routing_key: str,
    payload: dict[str, Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> Outcome:
    event = build_event(payload, routing_key)
    if event is None:
        return Outcome.success("nothing to send to PagerDuty")
    events = [event]
    inc = payload.get("incident") or {}
    if event["event_action"] == "trigger" and inc.get("acknowledged_at") and inc.get("status") != "resolved":
        # Someone here already acknowledged (a reopened incident, a severity change): a trigger
        # alone would leave PagerDuty's alert triggered, paging its own escalation policy, so it
        # is followed by the acknowledgement PagerDuty would otherwise never hear again.
        events.append({"routing_key": routing_key, "event_action": "acknowledge", "dedup_key": event["dedup_key"]})
    outcome = Outcome.success()
    for body in events:
        outcome, _ = await post(
            client,
            events_url or EVENTS_URL,
            content=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            timeout=timeout,
        )
        if not outcome.ok:
            return outcome  # retried whole: PagerDuty folds the repeated trigger into its alert
    outcome.result = {"pagerduty_dedup_key": event["dedup_key"]}
    return outcome


# --- incident_sync: PagerDuty v3 webhooks flowing back ---------------------------------------


@dataclass(frozen=True)
class SyncAction:
    """An acknowledgement or resolution made in PagerDuty, for the incident `number`."""

    number: int
    action: str  # acknowledge | resolve
    actor: str
    pagerduty_id: str = ""


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """`X-PagerDuty-Signature: v1=<hex>[,v1=<hex>]` (several while a secret is being rotated)."""
    if not header:
        return False
    expected = ("v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()).encode()
    # As bytes: compare_digest refuses str with non-ASCII characters, which a header may carry.
    return any(hmac.compare_digest(expected, part.strip().encode("utf-8", "replace")) for part in header.split(","))


def parse_webhook(body: bytes, headers: Mapping[str, str], secret: str | None = None) -> SyncAction | None:
    """A v3 webhook's acknowledge/resolve for one of our incidents; None for anything else.

    Raises ValueError with a reason for a bad signature or a body that is not a v3 event.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    if secret and not verify_signature(secret, body, lowered.get("x-pagerduty-signature")):
        raise ValueError("signature does not match (X-PagerDuty-Signature)")
    try:
        doc = json.loads(body)
        event = doc["event"]
        kind = str(event["event_type"])
        data = event.get("data") or {}
    except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise ValueError('not a PagerDuty v3 webhook event (expected {"event": {"event_type": …}})') from None
    action = {"incident.acknowledged": "acknowledge", "incident.resolved": "resolve"}.get(kind)
    if action is None:
        return None
    agent_doc = event.get("agent") or {}
    for name, part in (("data", data), ("agent", agent_doc)):
        if not isinstance(part, dict):
            got = {str: "a string", list: "an array", bool: "a boolean"}.get(type(part), "a number")
            raise ValueError(f"event.{name} must be an object, not {got}")
    number = None
    key = str(data.get("incident_key") or data.get("dedup_key") or "")
    digits = key[len("pulseguard-INC-") :]
    # isascii: str.isdigit() also accepts characters such as '²' that int() refuses.
    if key.startswith("pulseguard-INC-") and digits.isascii() and digits.isdigit():
        number = int(digits)
    elif not key:
        # No key to go by: only a title our own event wrote. Another service's incident (a key
        # of its own, or a title that merely mentions "see INC-7") must not act on ours.
        m = _TITLE_RE.match(str(data.get("title") or data.get("summary") or ""))
        number = int(m.group(1)) if m else None
    if number is None:
        return None
    agent = agent_doc.get("summary") or "PagerDuty"
    return SyncAction(number, action, f"pagerduty:{agent}"[:64], str(data.get("id") or ""))


async def apply_webhook(action: SyncAction) -> str:
    """Carry a PagerDuty acknowledgement/resolution over to the incident; says what happened."""
    from engine.core.domain import DomainError
    from engine.incidents import services

    try:
        if action.action == "acknowledge":
            await services.acknowledge(action.number, action.actor)
        else:
            await services.resolve(action.number, action.actor, root_cause="resolved in PagerDuty", solution="resolved in PagerDuty")
    except DomainError as exc:  # already acknowledged/resolved here: nothing to carry over
        return f"ignored: {exc}"
    return f"INC-{action.number} {action.action}d from PagerDuty"


# --- on_call_schedule: PagerDuty as the source of a schedule ---------------------------------


async def fetch_oncall(
    client: httpx.AsyncClient,
    api_token: str,
    schedule_id: str,
    at: datetime,
    *,
    api_url: str = API_URL,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[Outcome, list[dict[str, str]]]:
    """Who PagerDuty has on call for `schedule_id` at `at`: [{"id", "name", "email"}] (REST API `oncalls`)."""
    params = [
        ("schedule_ids[]", schedule_id),
        ("since", at.isoformat()),
        ("until", (at + timedelta(seconds=1)).isoformat()),
        ("include[]", "users"),
    ]
    headers = {"Authorization": f"Token token={api_token}", "Accept": "application/vnd.pagerduty+json;version=2"}
    outcome, response = await request(client, "GET", f"{api_url.rstrip('/')}/oncalls", headers=headers, params=params, timeout=timeout)
    if not outcome.ok or response is None:
        return outcome, []
    try:
        oncalls = response.json().get("oncalls") or []
    except ValueError:
        return Outcome.failed("PagerDuty answered with something that is not JSON"), []
    people = []
    for entry in sorted(oncalls, key=lambda o: o.get("escalation_level", 1)):
        user = entry.get("user") or {}
        # The id lets a [[users]] entry be matched by pagerduty_user_id when e-mails differ.
        people.append(
            {
                "id": str(user.get("id") or ""),
                "name": str(user.get("summary") or user.get("name") or ""),
                "email": str(user.get("email") or ""),
            }
        )
    return outcome, people

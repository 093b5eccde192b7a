"""Generic webhooks: a JSON body signed with HMAC-SHA256 in `X-PulseGuard-Signature`.

Receivers verify with the shared secret: `sha256=` + hex(HMAC-SHA256(secret, raw body)).
`X-PulseGuard-Delivery` (also sent as `Idempotency-Key`) is the same on every retry of one
message, so a receiver that remembers it shows each message once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import httpx

from engine.notify import render
from engine.notify.base import DEFAULT_TIMEOUT, Outcome, post

SIGNATURE_HEADER = "X-PulseGuard-Signature"


def sign(secret: str | bytes, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, body: bytes, signature: str | None) -> bool:
    return bool(signature) and hmac.compare_digest(sign(secret, body), signature.strip())  # type: ignore[union-attr]


def build_body(payload: dict[str, Any], dedup_key: str, *, sent_at: datetime | None = None) -> bytes:
    doc = {
        "event": f"incident.{payload.get('kind')}" if payload.get("incident") else str(payload.get("kind")),
        "delivery": dedup_key,
        "summary": render.headline(payload),
        "sent_at": (sent_at or datetime.now(UTC)).isoformat(),
        **{k: v for k, v in payload.items() if k != "kind"},
        "kind": payload.get("kind"),
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, default=str).encode()


async def send(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    *,
    secret: str | None,
    dedup_key: str,
    headers: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Outcome:
    body = build_body(payload, dedup_key)
    all_headers = {
        "Content-Type": "application/json",
        "User-Agent": "PulseGuard",
        "X-PulseGuard-Event": str(payload.get("kind")),
        "X-PulseGuard-Delivery": dedup_key,
        "Idempotency-Key": dedup_key,
        **(headers or {}),
    }
    if secret:
        all_headers[SIGNATURE_HEADER] = sign(secret, body)
    outcome, _ = await post(client, url, content=body, headers=all_headers, timeout=timeout)
    return outcome

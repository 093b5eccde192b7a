"""Signed page links: acknowledge, resolve or open an incident from the page itself.

A link's token is `BODY.SIGNATURE`, both base64url: BODY is the JSON list
[version, action, incident number, channel, recipient, expiry (Unix seconds), nonce] and
SIGNATURE is HMAC-SHA256 over BODY with a key derived from the link secret. Nothing about a
link is stored until it is used; then its nonce is (engine.incidents.services.page_actions),
so a link works once.

channel  what the link is for               recipient
email    /act/TOKEN, a page with a button    the PulseGuard user the e-mail went to
webhook  POST /api/callbacks/TOKEN           the [[webhooks]] entry it went to
slack    /act/TOKEN (open only)              "" (a channel, not a person)

The secret is `engine.page_link_secret_env` when set, else a random key made once and kept in
the database (monitor_state), so every engine on one database signs and verifies alike and a
restart breaks no link.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.notify import render

log = logging.getLogger(__name__)

VERSION = 1
ACTIONS = ("acknowledge", "resolve", "open")
CHANNELS = ("email", "webhook", "slack")
# The messages that page someone (engine.notify.render.is_page) carry acknowledge and resolve;
# other messages about an incident carry only the link that opens it.
SECRET_STATE = "page_link_secret"
MAX_TOKEN = 600


class LinkRefused(Exception):
    """A link that does not verify; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Claim:
    """What a verified token says."""

    action: str
    number: int
    channel: str
    recipient: str
    expires: int
    nonce: str

    @property
    def key(self) -> str:
        return f"INC-{self.number}"

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expires, UTC)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and verifies tokens with one key."""

    def __init__(self, secret: str | bytes) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        # A key of its own, so the secret signs nothing else by accident.
        self._key = hmac.new(raw, b"pulseguard page links v1", hashlib.sha256).digest()

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())

    def sign(self, action: str, number: int, channel: str, recipient: str, expires: int, nonce: str | None = None) -> str:
        if action not in ACTIONS or channel not in CHANNELS:
            raise ValueError(f"cannot sign a {action!r} link for {channel!r}")
        nonce = nonce or _b64(secrets.token_bytes(16))
        doc = [VERSION, action, int(number), channel, recipient, int(expires), nonce]
        body = _b64(json.dumps(doc, separators=(",", ":")).encode())
        return f"{body}.{self._mac(body)}"

    def verify(self, token: str, now: float | None = None) -> Claim:
        """The claim of a genuine, unexpired token; LinkRefused saying why not."""
        if not token or len(token) > MAX_TOKEN or token.count(".") != 1 or not token.isascii():
            raise LinkRefused("This is not a PulseGuard link (it may have been cut short when copied).", 404)
        body, mac = token.split(".")
        if not hmac.compare_digest(self._mac(body).encode(), mac.encode("ascii", "replace")):
            raise LinkRefused("This link is not genuine: its signature does not match, so it was changed or not made here.", 403)
        try:
            version, action, number, channel, recipient, expires, nonce = json.loads(_unb64(body))
            if version != VERSION or action not in ACTIONS or channel not in CHANNELS:
                raise LinkRefused("This link is from another version of PulseGuard and no longer works.", 400)
            claim = Claim(str(action), int(number), str(channel), str(recipient), int(expires), str(nonce))
        except (ValueError, TypeError, binascii.Error):
            raise LinkRefused("This link cannot be read.", 400) from None
        if (time.time() if now is None else now) > claim.expires:
            raise LinkRefused(f"This link expired at {claim.expires_at:%Y-%m-%d %H:%M} UTC.", 410)
        return claim


def base_url(config: Any) -> str | None:
    """Where links lead: engine.public_url, else status_page_integration.public_url."""
    url = config.engine.public_url or config.status_page_integration.public_url
    return url.rstrip("/") if url else None


async def stored_secret() -> str:
    """The database's link secret, made by whichever engine asks first."""
    from engine.storage.monitor_models import MonitorState

    row = MonitorState(name=SECRET_STATE, value={"key": secrets.token_hex(32)}, updated_at=datetime.now(UTC))
    await MonitorState.bulk_create([row], ignore_conflicts=True)  # the first one made stays
    stored = await MonitorState.get(name=SECRET_STATE)
    return str(stored.value["key"])


@dataclass
class PageLinks:
    """The links a process puts in pages and checks when they come back. `users_by_email` maps
    an address to the [[users]] id it belongs to (a page to someone else carries no actions)."""

    base: str | None
    ttl: float = 86400.0
    secret_env: str | None = None
    users_by_email: dict[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    _signer: Signer | None = None

    @classmethod
    def from_config(cls, config: Any, env: Mapping[str, str] | None = None) -> PageLinks:
        users = {str(u.email).lower(): u.id for u in config.users if getattr(u, "email", None)}
        return cls(
            base_url(config),
            float(config.engine.page_link_ttl),
            config.engine.page_link_secret_env,
            users,
            os.environ if env is None else env,
        )

    async def signer(self) -> Signer | None:
        """The signer, or None (logged) when the named secret variable is not set."""
        if self._signer is None:
            if self.secret_env:
                value = self.env.get(self.secret_env)
                if not value:
                    log.error("engine.page_link_secret_env: environment variable %s is not set: pages carry no links", self.secret_env)
                    return None
                self._signer = Signer(value)
            else:
                self._signer = Signer(await stored_secret())
        return self._signer

    def url(self, token: str, channel: str, action: str) -> str:
        if channel == "webhook" and action != "open":
            return f"{self.base}/api/callbacks/{token}"
        return f"{self.base}/act/{token}"

    async def links(self, payload: Mapping[str, Any], channel: str, recipient: str) -> dict[str, Any] | None:
        """{"acknowledge", "resolve", "open": URL, "expires_at", "as"} for one message, only what
        fits it: none without a base URL or incident, or for customers; acknowledge and resolve
        only on a page to someone who may act while the incident is open."""
        inc = payload.get("incident") or {}
        key = str(inc.get("key") or "")
        if not self.base or payload.get("audience") != "internal" or not key.startswith("INC-") or payload.get("kind") == "digest":
            return None
        signer = await self.signer()
        if signer is None:
            return None
        number = int(key.removeprefix("INC-"))
        expires = math.ceil(time.time() + self.ttl)
        actions = ["open"]
        if recipient and channel != "slack" and render.is_page(payload) and inc.get("status") != "resolved":
            actions = ["acknowledge", "resolve", "open"]
        out: dict[str, Any] = {a: self.url(signer.sign(a, number, channel, recipient, expires), channel, a) for a in actions}
        out["expires_at"] = datetime.fromtimestamp(expires, UTC).isoformat()
        if len(actions) > 1:
            out["as"] = recipient
        return out

    async def for_email(self, payload: Mapping[str, Any], addresses: list[str]) -> dict[str, Any] | None:
        """Links for an e-mail: acting as the [[users]] entry it went to (one address only)."""
        user = self.users_by_email.get(addresses[0].lower(), "") if len(addresses) == 1 else ""
        return await self.links(payload, "email", user)

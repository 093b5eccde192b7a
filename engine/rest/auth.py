"""API tokens, roles, and the slow-down for clients that keep failing to authenticate.

A token is `pg_` plus 32 random bytes (URL-safe base64). Only its SHA-256 is stored: tokens are
long random secrets, so a fast hash is enough and a database leak reveals no usable token.
Roles are ordered: a viewer reads, a responder also changes incidents, an admin also manages
services, targets, maintenance windows and tokens.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from engine.core.clock import utcnow
from engine.core.domain import IllegalTransition, InvalidInput, NotFound
from engine.incidents import audit
from engine.storage.rest_models import ApiToken

ROLES = ("viewer", "responder", "admin")
# People's addresses (e-mail, Slack, phone) and where notifications went are for those who may
# have to reach them; a viewer token reads names and channels only (engine.rest.redaction).
CONTACTS_ROLE = "responder"
TOKEN_PREFIX = "pg_"
# How long a looked-up token is trusted without asking the database again; a revocation made
# by another process takes effect within this many seconds.
CACHE_SECONDS = 5.0
# last_used_at is written at most this often per token, so reads stay reads.
TOUCH_SECONDS = 60.0


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def check_role(role: str) -> str:
    value = (role or "").strip().lower()
    if value not in ROLES:
        raise InvalidInput("role", f"unknown role {role!r} (expected viewer, responder or admin)")
    return value


def check_name(name: str) -> str:
    from engine.incidents.services import NAME_RE

    value = (name or "").strip()
    if not NAME_RE.match(value):
        raise InvalidInput("name", f"{name!r} is not a valid token name (letters, digits and _.-:@#/+, up to 64)")
    if "/" in value:  # DELETE /api/tokens/{name} could not name it
        raise InvalidInput("name", f"{name!r} must not contain '/'")
    if value.isdigit():  # revoke_token reads digits as an id: `token revoke 5` would revoke token #5
        raise InvalidInput("name", f"{name!r} is only digits, which `token revoke` reads as a token id (add a letter)")
    return value


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name acts as the actor of every change it makes."""

    token_id: int
    name: str
    role: str

    def can(self, needed: str) -> bool:
        return role_at_least(self.role, needed)

    @property
    def sees_contacts(self) -> bool:
        return self.can(CONTACTS_ROLE)


async def create_token(name: str, role: str, created_by: str) -> tuple[ApiToken, str]:
    """A new token row and the token itself (shown once, never stored)."""
    name = check_name(name)
    role = check_role(role)
    if await ApiToken.filter(name=name, revoked_at=None).exists():
        raise IllegalTransition(f"a token named {name!r} already exists (revoke it first, or pick another name)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with in_transaction() as conn:
        row = await ApiToken.create(
            name=name, role=role, token_hash=hash_token(token), prefix=token[:10], created_at=utcnow(), created_by=created_by, using_db=conn
        )
        await audit.record(
            conn,
            created_by,
            "token.create",
            f"token:{name}",
            summary=f"created {role} token {name}",
            after={"role": role, "prefix": row.prefix},
        )
    return row, token


async def list_tokens(include_revoked: bool = False) -> list[dict[str, Any]]:
    query = ApiToken.all() if include_revoked else ApiToken.filter(revoked_at=None)
    rows = await query.order_by("id").values("id", "name", "role", "prefix", "created_at", "created_by", "last_used_at", "revoked_at")
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()} for r in rows]


async def revoke_token(name_or_id: str | int, actor: str = "unknown") -> ApiToken:
    """Revoke the active token with this name (or id); `actor` is who did it (the audit log)."""
    text = str(name_or_id).strip()
    query = ApiToken.filter(revoked_at=None)
    if text.isascii() and text.isdigit():
        # An id beyond the column's range names no token (the databases would overflow on it).
        row = await query.filter(id=int(text)).first() if int(text) <= 2**31 - 1 else None
    else:  # "²".isdigit() is true too, and int() refuses it: a name
        row = await query.filter(name=text).first()
    if row is None:
        raise NotFound(f"no active token {text!r}")
    row.revoked_at = utcnow()
    async with in_transaction() as conn:
        await row.save(update_fields=["revoked_at"], using_db=conn)
        await audit.record(
            conn,
            actor,
            "token.revoke",
            f"token:{row.name}",
            summary=f"revoked {row.role} token {row.name}",
            before={"revoked_at": None},
            after={"revoked_at": row.revoked_at},
        )
    _cache.clear()
    return row


_cache: dict[str, tuple[float, Principal | None]] = {}
_touched: dict[int, float] = {}


async def authenticate(token: str) -> Principal | None:
    """The principal for a presented token, or None when it is unknown or revoked."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    now = time.monotonic()
    hit = _cache.get(digest)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        principal = hit[1]
    else:
        row = await ApiToken.filter(token_hash=digest, revoked_at=None).first().values("id", "name", "role")
        principal = Principal(row["id"], row["name"], row["role"]) if row else None
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[digest] = (now, principal)
    if principal is not None and now - _touched.get(principal.token_id, -TOUCH_SECONDS) >= TOUCH_SECONDS:
        _touched[principal.token_id] = now
        await ApiToken.filter(id=principal.token_id).update(last_used_at=utcnow())
    return principal


def forget_cache() -> None:
    _cache.clear()
    _touched.clear()


@dataclass
class _Failures:
    count: int = 0
    first: float = 0.0
    blocked_until: float = 0.0


@dataclass
class FailureThrottle:
    """Slows down a client that keeps presenting wrong credentials.

    After `free` failures within `window` seconds, the client must wait before its next
    attempt is even looked at: 1 s, then doubling per further failure, up to `cap`. A success
    clears the record. Missing credentials are not failures (a browser, a health check).
    """

    free: int = 5
    window: float = 600.0
    cap: float = 60.0
    _clients: dict[str, _Failures] = field(default_factory=dict)

    def retry_after(self, client: str, now: float | None = None) -> float:
        """Seconds this client must still wait, 0 when it may try."""
        rec = self._clients.get(client)
        if rec is None:
            return 0.0
        now = time.monotonic() if now is None else now
        return max(0.0, rec.blocked_until - now)

    def failed(self, client: str, now: float | None = None) -> float:
        """Record a failure; returns how long the client must now wait."""
        now = time.monotonic() if now is None else now
        rec = self._clients.get(client)
        if rec is None or now - rec.first > self.window:
            rec = self._clients[client] = _Failures(0, now)
        rec.count += 1
        if rec.count > self.free:
            wait = min(self.cap, 2.0 ** (rec.count - self.free - 1))
            rec.blocked_until = now + wait
            return wait
        self._prune(now)
        return 0.0

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)

    def failures(self, client: str) -> int:
        rec = self._clients.get(client)
        return rec.count if rec else 0

    def _prune(self, now: float) -> None:
        if len(self._clients) < 10_000:
            return
        for key in [k for k, r in self._clients.items() if now - r.first > self.window and r.blocked_until < now]:
            del self._clients[key]


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def secure_equal(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())

"""`Idempotency-Key`: a write sent again gets the first answer instead of making the change twice.

A client whose answer was lost (a timeout, a dropped connection, an engine restarted behind a
load balancer) cannot tell whether its change was stored. Sending the write again with the same
`Idempotency-Key` header is safe: the first request with a key claims it (a row in
`idempotent_request`, unique per token and key) before it is served, and its answer is kept
before it is sent. The same request sent again gets that answer, marked `Idempotent-Replayed:
true`; the same key with another request is refused (422); while the first is still being served
the key answers 409 with `Retry-After`. A request whose outcome nobody knows (the engine stopped,
or its database connection was lost, before the answer was kept) keeps its claim: the key then
answers 409 saying so, never making the change a second time. Keys are kept a day.

Without the header nothing changes; the header on a read is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tortoise.exceptions import IntegrityError

from engine.core.clock import utcnow
from engine.rest import auth
from engine.rest.common import UNREACHABLE, database_errors, header_values
from engine.rest.limits import read_body, replaying
from engine.storage.rest_models import IdempotentRequest

log = logging.getLogger("pulseguard.api")

HEADER = "Idempotency-Key"
# How long a key is kept, and how long a claim may be in progress before its outcome is unknown.
KEPT = timedelta(hours=24)
SERVING = timedelta(seconds=60)
# A request marks its scope with this when its 5xx answer is known to have changed nothing
# (the database could not be reached, a full disk): its claim is released, so a retry runs.
UNCHANGED = "pulseguard.unchanged"
# The status kept for a request that failed with its outcome unknown (any other 5xx).
UNKNOWN = 0

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PURGE_EVERY = 600.0


def mark_unchanged(scope: Any) -> None:
    """Say that the request's error answer comes with nothing stored (see UNCHANGED)."""
    scope[UNCHANGED] = True


def check_key(value: str) -> str | None:
    """Why `value` cannot be an idempotency key, or None."""
    if not value:
        return "must not be empty"
    if len(value) > 255:
        return f"is {len(value)} characters long; at most 255"
    if not all("!" <= ch <= "~" for ch in value):
        return "may hold only visible ASCII characters (a UUID is the usual choice)"
    return None


def _answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[Message, Message]:
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    out = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    out += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {"type": "http.response.start", "status": status, "headers": out}, {"type": "http.response.body", "body": raw}


def _at(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%SZ")


class Idempotency:
    """ASGI middleware, outside the fast writes (engine.rest.fastwrites) and the routes: see the
    module's docstring. A request without the header, or with a token that does not
    authenticate (the routes answer it), passes through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._purged = 0.0
        self._unavailable: tuple[type[BaseException], ...] = tuple(database_errors())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WRITES:
            await self.app(scope, receive, send)
            return
        key, authorization = header_values(scope, b"idempotency-key", b"authorization")
        if key is None:
            await self.app(scope, receive, send)
            return
        token = auth.bearer(authorization)
        try:
            principal = await auth.authenticate(token) if token else None
        except self._unavailable:
            principal = None  # the routes meet the same database and answer for it
        if principal is None:
            await self.app(scope, receive, send)
            return
        why = check_key(key.strip())
        if why is not None:
            await self._send(send, 422, {"error": "invalid", "message": f"{HEADER}: {why}", "field": HEADER})
            return
        key = key.strip()
        body = await read_body(receive)
        if body is None:
            return  # the client went away before its request was whole: nothing to serve
        path = scope["path"] + (f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else "")
        fingerprint = hashlib.sha256(b"\n".join((scope["method"].encode(), path.encode("utf-8", "replace"), body))).hexdigest()
        try:
            claim, earlier = await self._claim(principal.token_id, key, fingerprint, scope["method"], path)
        except self._unavailable as exc:
            log.warning("%s %s: could not claim its %s: %s", scope["method"], scope["path"], HEADER, exc)
            await self._send(
                send,
                503,
                {"error": "unavailable", "message": UNREACHABLE},
                {"Retry-After": "5"},
            )
            return
        if earlier is not None:
            await self._earlier(send, earlier, fingerprint, key)
            return
        assert claim is not None
        await self._serve(scope, receive, send, body, claim)

    async def _claim(
        self, token_id: int, key: str, fingerprint: str, method: str, path: str
    ) -> tuple[int | None, IdempotentRequest | None]:
        """Claim the key: (its row's id, None), or (None, the row of the request that has it)."""
        now = utcnow()
        if time.monotonic() - self._purged >= _PURGE_EVERY:
            self._purged = time.monotonic()
            await IdempotentRequest.filter(created_at__lt=now - KEPT).delete()
        for _ in range(2):
            try:
                row = await IdempotentRequest.create(
                    token_id=token_id, key=key, fingerprint=fingerprint, method=method, path=path[:255], created_at=now
                )
                return row.id, None
            except IntegrityError:
                earlier = await IdempotentRequest.filter(token_id=token_id, key=key).first()
                if earlier is None:
                    continue  # purged meanwhile: claim it again
                if earlier.created_at < now - KEPT:  # expired, not yet purged: the key is free again
                    await IdempotentRequest.filter(id=earlier.id).delete()
                    continue
                return None, earlier
        raise IntegrityError(f"{HEADER} {key!r} could not be claimed")

    async def _earlier(self, send: Send, earlier: IdempotentRequest, fingerprint: str, key: str) -> None:
        if earlier.fingerprint != fingerprint:
            message = (
                f"{HEADER}: {key!r} was used at {_at(earlier.created_at)} for another request ({earlier.method} {earlier.path}); "
                "send a new request with a new key"
            )
            await self._send(send, 422, {"error": "invalid", "message": message, "field": HEADER})
            return
        if earlier.status == UNKNOWN:
            message = (
                f"{HEADER}: the request sent with this key at {_at(earlier.created_at)} failed with its outcome unknown "
                "(its database connection was lost, or the engine failed), so its change may have been stored: "
                "read it back, and send it again with a new key if it was not"
            )
            await self._send(send, 409, {"error": "conflict", "message": message})
            return
        if earlier.status is not None:
            headers = [(b"content-type", (earlier.content_type or "application/json").encode("latin-1"))]
            raw = (earlier.body or "").encode()
            headers += [(b"content-length", str(len(raw)).encode()), (b"idempotent-replayed", b"true")]
            await send({"type": "http.response.start", "status": earlier.status, "headers": headers})
            await send({"type": "http.response.body", "body": raw})
            return
        if utcnow() - earlier.created_at < SERVING:
            message = f"{HEADER}: the request sent with this key at {_at(earlier.created_at)} is still being served; ask again in a moment"
            await self._send(send, 409, {"error": "conflict", "message": message}, {"Retry-After": "1"})
            return
        message = (
            f"{HEADER}: the request sent with this key at {_at(earlier.created_at)} did not finish (the engine stopped or lost its "
            "database meanwhile), so its change may have been stored: read it back, and send it again with a new key if it was not"
        )
        await self._send(send, 409, {"error": "conflict", "message": message})

    async def _serve(self, scope: Scope, receive: Receive, send: Send, body: bytes, claim: int) -> None:
        replay = replaying(body, receive)
        start: Message | None = None
        chunks: list[bytes] = []
        kept = False

        async def keeping(message: Message) -> None:
            nonlocal start, kept
            if message["type"] == "http.response.start":
                start = message  # sent with the body, once the answer is kept
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            kept = await self._keep(scope, claim, start, b"".join(chunks))
            await send(start)
            await send({"type": "http.response.body", "body": b"".join(chunks)})

        try:
            await self.app(scope, replay, keeping)
        finally:
            if not kept and start is None:  # no answer at all: the server's 500
                if scope.get(UNCHANGED):
                    await self._release(claim)
                else:
                    with contextlib.suppress(*self._unavailable):
                        await IdempotentRequest.filter(id=claim).update(status=UNKNOWN)

    async def _keep(self, scope: Scope, claim: int, start: Message, body: bytes) -> bool:
        """Keep the answer for the key's next use: a 2xx or 4xx answer as it is; a 5xx one known to
        have changed nothing (and a 429) releases the claim; any other 5xx is kept as an outcome
        nobody knows (UNKNOWN). Returns whether the claim was settled."""
        status = int(start["status"])
        try:
            if status == 429 or (status >= 500 and scope.get(UNCHANGED)):
                await self._release(claim)
            elif status >= 500:
                await IdempotentRequest.filter(id=claim).update(status=UNKNOWN)
            else:
                media = next((v.decode("latin-1") for k, v in start.get("headers", ()) if k.lower() == b"content-type"), None)
                text = body.decode("utf-8", "replace")
                await IdempotentRequest.filter(id=claim).update(status=status, content_type=media and media[:100], body=text)
            return True
        except self._unavailable as exc:  # the change is stored all the same: answer it
            log.warning("%s %s: its answer could not be kept for its %s: %s", scope["method"], scope["path"], HEADER, exc)
            return False

    async def _release(self, claim: int) -> None:
        try:
            await IdempotentRequest.filter(id=claim, status=None).delete()
        except self._unavailable as exc:
            log.warning("could not release an %s claim: %s", HEADER, exc)

    async def _send(self, send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        for message in _answer(status, body, headers):
            await send(message)

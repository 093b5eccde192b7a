"""Repeat reads answered from the rendered caches before FastAPI's routing: incident details,
list pages and the public status page.

When an incident breaks, dozens of consoles, bots and dashboards poll its detail and the first
page of the list. Their bodies are already rendered and kept under a validator
(`engine.rest.cache`); what such a read still cost was the framework around it: matching the
path against a hundred routes, solving the auth dependencies, validating parameters. This
middleware answers a GET from the cache when everything about it is already known: a valid token
of at least the viewer role, an incident key or a list query string FastAPI has validated before,
and a cached body whose validator the database confirms (read for this request, so a write by
any process shows at once). Everything else (a miss, an unknown query string, a missing or wrong
token, any error) goes on to FastAPI unchanged, which answers it and fills the cache.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.rest import auth
from engine.rest.common import REVALIDATE, RestState, admit, etag_matches, incident_number
from engine.rest.public import cached_public

DETAIL_PREFIX = "/api/incidents/"
LIST_PATH = "/api/incidents"
PUBLIC_PREFIXES = ("/status", "/api/v2/", "/history.atom")
# The list's validator changes at least this often, for the engine's bookkeeping writes (which
# write no timeline event); engine.rest.incidents.reads uses the same.
LIST_MAX_AGE = 5.0


def list_validator(cursor: int) -> str:
    return f"{cursor}.{int(time.monotonic() // LIST_MAX_AGE)}"


def detail_etag(number: int, version: tuple[int, int]) -> str:
    return f'"{number}.{version[0]}.{version[1]}"'


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class CachedReads:
    """ASGI middleware: serves cached incident details and list pages to authenticated viewers."""

    def __init__(self, app: ASGIApp, state: RestState, public: bool = False) -> None:
        self.app = app
        self.state = state
        self.public = public  # the status page is served (notifications.external.status_page)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            try:
                if path.startswith(LIST_PATH):
                    response = await self._cached(scope)
                elif self.public and path.startswith(PUBLIC_PREFIXES):
                    response = await cached_public(self.state, path, _header(scope, b"if-none-match"))
                else:
                    response = None
            except Exception:  # FastAPI answers it again, with the API's own error handling
                response = None
            if response is not None:
                self.state.fast_reads += 1
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _cached(self, scope: Scope) -> Response | None:
        path: str = scope["path"]
        if path == LIST_PATH:
            key = self.state.list_queries.get(scope["query_string"])
            if key is None:
                return None
        elif path.startswith(DETAIL_PREFIX) and "/" not in path[len(DETAIL_PREFIX) :]:
            key = None
        else:
            return None
        authorization = if_none_match = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"if-none-match":
                if_none_match = value.decode("latin-1")
        token = auth.bearer(authorization)
        if token is None:
            return None
        principal = await auth.authenticate(token)
        if principal is None or not principal.can("viewer"):
            return None  # FastAPI answers 401/403/429 and counts the failure
        if key is None:
            number = incident_number(path[len(DETAIL_PREFIX) :])
            version = await self.state.detail_versions.get(number)
            if version is None:
                return None
            etag = detail_etag(number, version)
            entry = None if etag_matches(if_none_match, etag) else self.state.details.get(number, etag)
        else:
            validator = list_validator(await self.state.feed_cursor.get(None))
            entry = self.state.lists.get(key, validator)
            if entry is None:
                return None
            etag = entry[0]
        headers = {**REVALIDATE, "ETag": etag}
        if etag_matches(if_none_match, etag):
            response = Response(status_code=304, headers=headers)
        elif entry is None:
            return None
        else:
            response = Response(entry[1], media_type="application/json", headers=headers)
        admit(self.state, scope, token, principal)
        return response


# The writes a busy incident draws by the hundred (responders' and bots' comments, status
# updates, acknowledgements) and the endpoint function FastAPI would call for each.
_WRITES = {"comments": ("add_comment", "CommentIn"), "updates": ("add_update", "UpdateIn"), "acknowledge": ("acknowledge", None)}


class FastWrites:
    """ASGI middleware, innermost (inside the body limit): POST comment, status update and
    acknowledge, when everything about the request is ordinary, go straight to the endpoint
    function FastAPI would call, with the same token check, body model and service call, skipping
    the routing and dependency solving that cost as much as the write itself.

    Anything else goes to FastAPI unchanged, the body replayed: another path or method, a query
    string, a body that is not JSON or does not validate, a missing, wrong or too weak token. A
    DomainError or a database error from the service means its transaction was rolled back
    (the services write nothing after it commits), so FastAPI serves the request again and
    answers with the API's own error (404, 409, 422, 503) while nothing was stored twice.
    """

    def __init__(self, app: ASGIApp, state: RestState) -> None:
        self.app = app
        self.state = state
        self._endpoints: dict[str, tuple[Any, Any]] | None = None
        self._database_errors: tuple[type[BaseException], ...] = ()

    def _resolve(self) -> dict[str, tuple[Any, Any]]:
        if self._endpoints is None:
            import sqlite3

            from tortoise.exceptions import BaseORMException

            from engine.rest.incidents import bodies, writes

            errors: list[type[BaseException]] = [BaseORMException, sqlite3.Error]
            try:
                from asyncpg.exceptions import PostgresError

                errors.append(PostgresError)
            except ImportError:
                pass
            self._database_errors = tuple(errors)
            self._endpoints = {
                name: (getattr(writes, function), getattr(bodies, model) if model else None)
                for name, (function, model) in _WRITES.items()
            }
        return self._endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope["query_string"]:
            path: str = scope["path"]
            if path.startswith(DETAIL_PREFIX):
                key, _, action = path[len(DETAIL_PREFIX) :].partition("/")
                if action in _WRITES and key and len(key) <= 40:
                    await self._write(scope, receive, send, key, action)
                    return
        await self.app(scope, receive, send)

    async def _write(self, scope: Scope, receive: Receive, send: Send, key: str, action: str) -> None:
        from fastapi.encoders import jsonable_encoder
        from pydantic import ValidationError
        from starlette.responses import JSONResponse

        from engine.core.domain import DomainError

        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        endpoint, model = self._resolve()[action]
        content_type = authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
        token = auth.bearer(authorization)
        principal = await auth.authenticate(token) if token else None
        args: tuple[Any, ...] | None = None
        if principal is not None and principal.can("responder"):
            try:
                incident_number(key)
                if model is None:
                    args = (key, principal) if not body else None
                elif content_type is not None and content_type.split(";")[0].strip().lower() == "application/json":
                    args = (key, model.model_validate_json(body), principal)
            except (ValidationError, ValueError, DomainError):
                args = None
        if args is None:
            await self.app(scope, replay, send)
            return
        assert token is not None and principal is not None
        try:
            result = await endpoint(*args)
        except (DomainError, *self._database_errors):
            await self.app(scope, replay, send)
            return
        admit(self.state, scope, token, principal)
        self.state.fast_writes += 1
        response = JSONResponse(jsonable_encoder(result), status_code=201 if model is not None else 200)
        await response(scope, receive, send)

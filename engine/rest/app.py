"""The FastAPI application of the headless engine: REST API, status page, webhooks, operations.

The process that serves it has already opened the database (`engine.storage.db.open_database`, which
sets Tortoise's global fallback so request handlers can use it); the app never opens one.
Errors have one JSON shape, `{"error", "message", "field"?}`: 401, 403, 404, 409 for an illegal
transition, 422 naming the field at fault; bad input never becomes a 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.config.notifications import ALERTMANAGER_BODY_LIMIT
from engine.core.domain import DomainError, IllegalTransition, InvalidInput, NotFound
from engine.core.matchers import TAG_FIELD_PATTERN, TAG_RULE
from engine.core.textclean import brief
from engine.incidents import audit
from engine.rest.common import LOST_MID_CHANGE, NAME_PATTERN, UNREACHABLE, RestState, database_errors, not_a_field, serve_in_zone
from engine.rest.fastpath import CachedReads
from engine.rest.fastwrites import FastWrites
from engine.rest.idempotency import Idempotency, mark_unchanged
from engine.rest.limits import BodyLimit
from engine.rest.metrics import LABEL_PATTERN, SERIES_PATTERN
from engine.rest.webhooks.alertmanager import PATH as ALERTMANAGER_PATH
from engine.rest.webhooks.alertmanager import schemas as alertmanager_schemas

log = logging.getLogger("pulseguard.api")
access_log = logging.getLogger("pulseguard.api.access")

ERROR_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    503: "unavailable",
}


def _error(status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": ERROR_NAMES.get(status, "error"), "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers)


def _field(loc: Sequence[Any]) -> str:
    """Pydantic's location as the engine's own checks and config errors name a field:
    `timeline[0].event`, not `timeline.0.event`; without the member of a union it tried
    (`assignee`, not `assignee.chain[function-after[_storable(), str],…]`)."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie") and len(parts) > 1:
        parts = parts[1:]
    out = ""
    for part in parts:
        if not out:
            out = str(part)
        elif isinstance(part, int):  # a list index (a dict key is always a str)
            out += f"[{part}]"
        elif _UNION_MEMBER.match(str(part)) or part == "[key]":  # "[key]": an object's key, named by the key itself
            continue
        else:
            out += f".{part}"
    return out or "body"


# A union member in pydantic's location: a type's name, or a validator's (`function-after[…]`).
_UNION_MEMBER = re.compile(r"^(?:int|float|str|bool|none|list\[.*|dict\[.*|[a-z-]+\[.*\]|.*\(.*\).*)$")

# Values a body's text must take, by the pattern that checks them: what a refusal says of them.
_PATTERN_RULES = {
    TAG_FIELD_PATTERN: f"is not a valid tag ({TAG_RULE})",
    NAME_PATTERN: "is not a valid name (letters, digits and _.-:@#/+, up to 64)",
    SERIES_PATTERN: "is not a valid series name (letters, digits, _ and :, not starting with a digit)",
    LABEL_PATTERN: "is not a valid label name (letters, digits and _, not starting with a digit)",
}
_TYPES = {
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def _problem(err: dict[str, Any]) -> str | None:
    """What is wrong with a value, as the CLI says it; None: pydantic's own words will do."""
    kind = err.get("type")
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind in _TYPES:
        return f"must be {_TYPES[kind]}"
    if kind == "missing":
        return "is required"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == r"\S":
            return "must not be empty"  # the text fields' "something that shows", as the CLI says it
        return f"{brief(repr(value))} " + _PATTERN_RULES.get(str(ctx.get("pattern")), "is not in the form this field takes")
    if kind == "too_long" and isinstance(value, str):
        return f"is {len(value)} characters long (at most {ctx.get('max_length')})"
    if kind == "too_long" and isinstance(value, (list, dict)):
        return f"has {len(value)} items (at most {ctx.get('max_length')})"
    if kind == "value_error":
        return str(err.get("msg", "")).removeprefix("Value error, ")
    bound = _BOUNDS.get(str(kind))
    if bound is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        # "Input should be less than or equal to 5": the value and the bound, as the CLI says it.
        return f"{brief(repr(value))} is {bound[0]} {ctx.get(bound[1])}"
    return None


# pydantic's range refusals: what the value is, and the bound it crossed.
_BOUNDS = {
    "less_than_equal": ("more than", "le"),
    "less_than": ("not less than", "lt"),
    "greater_than_equal": ("less than", "ge"),
    "greater_than": ("not more than", "gt"),
}


def _joined(problems: list[dict[str, str]]) -> list[dict[str, str]]:
    """One problem per field: a union's members each refused the value ("must be a whole
    number", "must be a string"): "must be a whole number or a string"."""
    by_field: dict[str, list[str]] = {}
    for p in problems:
        said = by_field.setdefault(p["field"], [])
        if p["message"] not in said:
            said.append(p["message"])
    out = []
    for field, said in by_field.items():
        kinds = [m.removeprefix("must be ") for m in said if m.startswith("must be ")]
        if len(said) > 1 and kinds:  # a literal's "Input should be ''" says nothing the types do not
            message = "must be " + " or ".join(kinds)
        else:
            message = said[0]
        out.append({"field": field, "message": message})
    return out


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, NotFound):
        return _error(404, str(exc))
    if isinstance(exc, IllegalTransition):
        return _error(409, str(exc))
    if isinstance(exc, InvalidInput):
        return _error(422, str(exc), exc.field)
    return _error(422, str(exc))


def _body_fields(request: Request, loc: tuple[Any, ...]) -> list[str]:
    """The names the body of the request's route takes, as the API spells them, when `loc`
    is a field of the body itself (or of its spec wrapper, `resolution.bogus`)."""
    body = getattr(request.scope.get("route"), "body_field", None)
    model = getattr(getattr(body, "field_info", None), "annotation", None)
    if loc[:1] != ("body",) or len(loc) != 2 and not (len(loc) == 3 and loc[1] == getattr(model, "wrapper", None)):
        return []
    fields = getattr(model, "model_fields", None) or {}
    return [info.alias or name for name, info in fields.items()]


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    sent = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    json_body = media == "application/json" or media.endswith("+json")
    if sent and not json_body and any(e.get("loc", ())[:1] == ("body",) for e in exc.errors()):
        # The body was not read as JSON at all: say why, rather than what it then lacked.
        got = f"got {media!r}" if media else "none was sent"
        return _error(415, f"Content-Type: send the body as application/json ({got})", "Content-Type")
    problems = []
    for err in exc.errors():
        field = _field(err.get("loc", ()))
        msg = _problem(err) or str(err.get("msg", "is not valid"))
        if err.get("type") == "json_invalid":
            where = err.get("loc", ())[1:2]
            why = str((err.get("ctx") or {}).get("error") or "").lower()
            field = "body"
            msg = f"is not valid JSON ({why} at character {where[0]})" if why and where else "is not valid JSON"
        elif err.get("type") == "extra_forbidden":
            known = _body_fields(request, tuple(err.get("loc", ())))
            msg = not_a_field(known)
        problems.append({"field": field, "message": msg})
    problems = _joined(problems)
    first = problems[0] if problems else {"field": "body", "message": "is not valid"}
    return _error(422, f"{first['field']}: {first['message']}", first["field"], errors=problems)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    cause = exc.__cause__
    if exc.status_code == 400 and cause is not None:  # FastAPI could not read the body: say why
        why = None
        if isinstance(cause, UnicodeDecodeError):
            why = f"is not valid UTF-8 (byte 0x{cause.object[cause.start : cause.start + 1].hex()} at byte {cause.start})"
        elif isinstance(cause, RecursionError):
            why = "its JSON is nested too deeply to read"
        if why is not None:
            return _error(422, f"body: {why}", "body", errors=[{"field": "body", "message": why}])
    return _error(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    from engine.storage.diskfull import disk_full_message

    full = disk_full_message(exc)
    if full is not None:  # nothing was stored (the transaction rolled back): the client may retry
        mark_unchanged(request.scope)
        log.error("%s %s: %s", request.method, request.url.path, full)
        return _error(503, full, headers={"Retry-After": "30"})
    from engine.storage.outcome import connection_problem

    problem = connection_problem(exc)
    if problem is not None:  # PostgreSQL restarting, failing over, or ending connections: one line, 503
        how, _, reason = problem.partition(": ")
        log.warning("%s %s: database connection %s: %s", request.method, request.url.path, how, reason)
        if how == "unreachable" or request.method in ("GET", "HEAD", "OPTIONS"):
            mark_unchanged(request.scope)
            message = UNREACHABLE
        else:
            message = LOST_MID_CHANGE
        return _error(503, message, headers={"Retry-After": "5"})
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected failure serving %s %s", request.method, request.url.path)
    return _error(500, "internal error; the engine's log has the details")


class HeadAsGet:
    """HEAD is answered as GET without the body (its headers, Content-Length and ETag included),
    as HTTP asks: uptime monitors and `curl -I` check a status page or /healthz that way, and a
    405 reads as the page being down. Inside RequestLog, so the log says HEAD."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class RequestLog:
    """Counts responses by status for /metrics and writes one structured log line per request."""

    def __init__(self, app: ASGIApp, state: RestState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0  # no response sent
        gone = False  # the client went away before it had one
        # Changes made by this request are the API's in the audit log (webhooks name themselves).
        audit.set_source("api")
        serve_in_zone(self.state.zone)

        writes = scope["method"] not in ("GET", "HEAD", "OPTIONS")

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if writes:  # done and stored: the status page must not hide it from the writer
                    self.state.public.forget_check()
            await send(message)

        async def receiving() -> Message:
            nonlocal gone
            message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
            return message

        try:
            await self.app(scope, receiving, sending)
        finally:
            if not status:
                # nginx's 499: the client closed the request; anything else unanswered is ours
                status = 499 if gone else 500
            key = (scope["method"], status)
            self.state.requests[key] = self.state.requests.get(key, 0) + 1
            if access_log.isEnabledFor(logging.INFO):
                principal = getattr(scope.get("state", {}).get("principal"), "name", None) if isinstance(scope.get("state"), dict) else None
                client = scope.get("client")
                ms = round((time.perf_counter() - started) * 1000, 2)
                path = scope["path"]
                for prefix in ("/api/heartbeats/", "/act/", "/api/callbacks/"):
                    if path.startswith(prefix):
                        path = f"{prefix}[token]"  # the path is the credential, right or nearly right
                access_log.info(
                    "%s %s %s %.1fms",
                    scope["method"],
                    path,
                    status,
                    ms,
                    extra={
                        "fields": {
                            "method": scope["method"],
                            "path": path,
                            "status": status,
                            "ms": ms,
                            "client": client[0] if client else None,
                            "token": principal,
                        }
                    },
                )


def create_app(
    config: Any = None,
    *,
    db_label: str = "",
    base_url: str | None = None,
    role: str = "engine",
    relay: bool = False,
    metrics_sources: Sequence[Callable[[], Any]] = (),
) -> FastAPI:
    """The ASGI app. `relay` runs the subscriber relay (status-page e-mails) while it serves."""
    from engine.config.loading import default_config
    from engine.notify.links import PageLinks
    from engine.rest import (
        heartbeats,
        incidents,
        learning,
        manage,
        metrics,
        ops,
        pagelinks,
        public,
        silences,
        subscribers,
        timeline,
        webhooks,
    )

    config = config if config is not None else default_config()
    # notifications.external.status_page = false: no public page, feeds or subscriptions at all.
    publish = config.notifications.external.status_page
    state = RestState(
        config=config,
        db_label=db_label,
        base_url=base_url.rstrip("/") if base_url else None,
        role=role,
        metrics_sources=list(metrics_sources),
        links=PageLinks.from_config(config),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        relay_task: asyncio.Task[None] | None = None
        relay_obj = None
        try:
            # The page-link key is made (or read) now, not by the first request that needs it,
            # so a refused request never writes it.
            await state.links.signer()
        except Exception:  # the database is not there yet: the first link made or checked reads it
            log.warning("could not read the page-link key at start; it is read when first needed", exc_info=True)
        if relay and publish:
            from engine.rest.statuspage import Settings

            relay_obj = subscribers.SubscriberRelay(lambda: Settings.from_config(state.config, state.base_url))
            relay_task = asyncio.create_task(relay_obj.run(), name="pulseguard-subscriber-relay")
        try:
            yield
        finally:
            state.draining.set()
            if relay_obj is not None and relay_task is not None:
                relay_obj.stop()
                try:
                    await asyncio.wait_for(relay_task, 5.0)
                except (TimeoutError, asyncio.CancelledError):
                    relay_task.cancel()
            w = getattr(state, "_feed_watcher", None)
            if w is not None:
                await w.stop()

    app = FastAPI(
        title="PulseGuard",
        version="1",
        description="Incidents, timeline, services, targets, maintenance, metrics, status page and webhooks "
        "of a PulseGuard engine. Authenticate with `Authorization: Bearer <token>` "
        "(`pulseguard token create NAME --role viewer|responder|admin`).",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.rest = state
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for error in database_errors():
        app.add_exception_handler(error, _database_error)
    app.add_exception_handler(Exception, _unexpected)
    routers = (
        incidents,
        learning,
        timeline,
        manage,
        metrics,
        webhooks,
        heartbeats,
        ops,
        silences,
        pagelinks,
        *((public, subscribers) if publish else ()),
    )
    for module in routers:
        app.include_router(module.router)
    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain_openapi()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(alertmanager_schemas())
            _error_responses(schema)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(FastWrites, state=state)  # innermost: inside the body limit
    # Outside the fast writes, so a write sent again with its key is answered before it is made.
    app.add_middleware(Idempotency)
    am = config.integrations.alertmanager
    am_limit = am.body_limit if am is not None else ALERTMANAGER_BODY_LIMIT
    # Alertmanager's route reads its body only once the sender is authenticated.
    paths = {ALERTMANAGER_PATH: (am_limit, "integrations.alertmanager.body_limit")}
    app.add_middleware(BodyLimit, limit=config.engine.api_body_limit, paths=paths)
    app.add_middleware(CachedReads, state=state, public=publish)  # inside RequestLog: fast reads are logged and counted too
    app.add_middleware(HeadAsGet)
    app.add_middleware(RequestLog, state=state)
    return app


# The errors the API answers with, as the OpenAPI document lists them (FastAPI's default says a
# 422 is {"detail": [{"loc", "msg", "type"}]}, a body this API never sends).
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "not_found, conflict, invalid, unauthorized, forbidden, …"},
        "message": {"type": "string", "description": "what is wrong, in words; with a field, it begins with its name"},
        "field": {"type": "string", "description": "the field at fault (422), as the body names it: post_mortem.timeline[1].time"},
        "errors": {
            "type": "array",
            "description": "every field at fault (422)",
            "items": {"type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}},
        },
    },
}
_ERRORS = {
    "401": "No token, or one that is unknown or revoked",
    "403": "The token's role may not do this",
    "404": "No such incident (or other thing the path names)",
    "409": "Not in this state (resolved already, published, …), or an Idempotency-Key in use",
    "413": "The body is over the limit ([engine] api_body_limit)",
    "415": "The body was not sent as application/json",
    "422": "Invalid input: `field` names what is wrong",
    "429": "Too many failed authentications from this client or token prefix (Retry-After)",
    "503": "The database cannot be reached just now (Retry-After)",
}


def _error_responses(schema: dict[str, Any]) -> None:
    """Every operation's error answers, in the API's own shape (`Error`)."""
    schemas = schema["components"]["schemas"]
    schemas["Error"] = _ERROR_SCHEMA
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            codes = {"422", "503"}
            if op.get("security"):
                codes |= {"401", "403", "429"}
            if "{" in path:
                codes.add("404")
            if method != "get":
                codes.add("413")
                if op.get("security"):
                    codes.add("409")
                if "requestBody" in op:
                    codes.add("415")
            responses = op.setdefault("responses", {})
            for code in codes:
                responses[code] = {"description": _ERRORS[code], "content": ref}
            op["responses"] = dict(sorted(responses.items()))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # already formatted (and stripped of secrets) by a filter
            data["exception"] = record.exc_text
        return json.dumps(data, default=str, ensure_ascii=False)

"""Plumbing every router shares: the app's state, authentication dependencies, request-body
base classes and text types that refuse what the database cannot store."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Annotated, Any, overload
from zoneinfo import ZoneInfo

import orjson
from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

from engine.core.domain import InvalidInput, NotFound, check_time
from engine.core.inputs import UsageError, in_zone
from engine.incidents import feed, queries
from engine.rest import auth
from engine.rest.cache import PublicCache, RenderedCache, SingleFlight

MAX_INT = 2**31 - 1


@dataclass
class RestState:
    """Everything the routers need, kept on `app.state.rest`."""

    config: Any
    db_label: str = ""
    base_url: str | None = None
    role: str = "engine"
    throttle: auth.FailureThrottle = field(default_factory=auth.FailureThrottle)
    # Public endpoints (subscribe) get their own, stricter budget per client.
    public_throttle: auth.FailureThrottle = field(default_factory=lambda: auth.FailureThrottle(free=10, window=3600.0, cap=600.0))
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    # Per-status-code request counts and auth failures, for /metrics.
    requests: dict[tuple[str, int], int] = field(default_factory=dict)
    auth_failures: int = 0
    # Extra /metrics sources, each returning Prometheus text lines (the monitoring engine adds
    # probes per second and scheduling lag).
    metrics_sources: list[Callable[[], Any]] = field(default_factory=list)
    # The engine runtime's `state()` when the API runs inside `pulseguard engine`.
    engine_info: Callable[[], dict[str, Any]] | None = None
    # Its current role alone (leader or standby), for /healthz: state() also gathers probe statistics.
    engine_role: Callable[[], str] | None = None
    # Serialises inbound alerts of one group within this process.
    alert_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # The status page last built and its rendered bodies (engine.rest.public).
    public: PublicCache = field(default_factory=PublicCache)
    # Incident details as sent, by incident number, under their ETag.
    details: RenderedCache = field(default_factory=RenderedCache)
    # Pages of the incident list, by their query, while the change feed stands still.
    lists: RenderedCache = field(default_factory=RenderedCache)
    # Details and list pages being built, by what they are and their validator: pollers whose
    # copy expired together (a write to a busy incident, a list every LIST_MAX_AGE) wait for
    # one build instead of each running the same queries.
    builds: dict[object, asyncio.Future[tuple[str, bytes]]] = field(default_factory=dict)
    # The raw query strings the list has answered, and the cache key each was validated into.
    list_queries: dict[bytes, object] = field(default_factory=dict)
    # The validators every cached read asks for, one database read for a crowd of requests.
    detail_versions: SingleFlight[int, tuple[int, int] | None] = field(default_factory=lambda: SingleFlight(queries.detail_version))
    feed_cursor: SingleFlight[None, int] = field(default_factory=lambda: SingleFlight(lambda _: feed.latest_cursor()))
    # Reads answered from the rendered caches before routing (engine.rest.fastpath), for /metrics.
    fast_reads: int = 0
    # Comments, updates and acknowledgements served before routing (engine.rest.fastwrites.FastWrites).
    fast_writes: int = 0
    # Signs and verifies the links pages carry (engine.notify.links); set by create_app.
    links: Any = None

    @property
    def zone(self) -> tzinfo:
        """`[engine] timezone` (UTC when the configuration has none): what /api/me names."""
        return _zone_named(str(getattr(getattr(self.config, "engine", None), "timezone", None) or "UTC"))

    @property
    def public_url(self) -> str | None:
        spi = self.config.status_page_integration
        url = spi.public_url or self.base_url
        return url.rstrip("/") if url else None


@contextmanager
def fields_named(names: dict[str, str]) -> Iterator[None]:
    """A service's refusal naming a field as the services and the CLI do ("ends"), named as this
    request's body names it ("ends_at")."""
    try:
        yield
    except InvalidInput as exc:
        if exc.field not in names:
            raise
        raise InvalidInput(names[exc.field], exc.message) from None


@functools.lru_cache(maxsize=16)
def _zone_named(name: str) -> tzinfo:
    return ZoneInfo(name)


def rest_state(request: Request) -> RestState:
    state: RestState = request.app.state.rest  # Starlette's State holds Any
    return state


def client_id(request: Request) -> str:
    return request.client.host if request.client else "unknown"


bearer_scheme = HTTPBearer(auto_error=False, description="An API token: `pulseguard token create NAME --role ROLE`")


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


async def authenticate_request(request: Request, token: str | None) -> auth.Principal:
    """The principal for a request's token; 401 without one, 429 while wrong tokens are slowed down.

    A valid token is always let in: everyone behind one proxy shares an address, and one
    client's mistakes must not lock the others out. Wrong tokens are limited per client address
    and per token prefix (guessing from many addresses at one prefix is slowed down too)."""
    state = rest_state(request)
    if not token:
        raise _unauthorized("authentication required: send Authorization: Bearer <token>")
    principal = await auth.authenticate(token)
    if principal is not None:
        admit(state, request.scope, token, principal)
        return principal
    failed_authentication(request, (f"ip:{client_id(request)}", _prefix_key(token)))
    raise _unauthorized("unknown or revoked token")


def failed_authentication(request: Request, keys: tuple[str, ...]) -> None:
    """Count a wrong credential against `keys` (client address, token prefix); 429 while they
    are slowed down. Returns when the caller may give its own refusal (401, 404)."""
    state = rest_state(request)
    state.auth_failures += 1
    wait = max(state.throttle.retry_after(key) for key in keys)
    if wait <= 0:  # attempts made while slowed down are not counted again
        wait = max(state.throttle.failed(key) for key in keys)
    if wait > 0:
        raise HTTPException(
            429, f"too many failed authentication attempts; retry in {wait:.0f} s", headers={"Retry-After": str(max(1, round(wait)))}
        )


def _prefix_key(token: str) -> str:
    return f"prefix:{token[: len(auth.TOKEN_PREFIX) + 7]}"


def header_values(scope: MutableMapping[str, Any], *names: bytes) -> list[str | None]:
    """The raw ASGI headers `names` (lower-case), in that order; None for one not sent; of a
    header sent twice, the first, as the routes (Starlette) read it. For the middlewares that
    answer before routing, where building a Request would cost more."""
    found: list[str | None] = [None] * len(names)
    for name, value in scope["headers"]:
        if name in names:
            i = names.index(name)
            if found[i] is None:
                found[i] = value.decode("latin-1")
    return found


def admit(state: RestState, scope: MutableMapping[str, Any], token: str, principal: auth.Principal) -> None:
    """What a request with a valid token does before it is served: clear the slow-down of its
    token's prefix and name the token in the access log."""
    state.throttle.succeeded(_prefix_key(token))
    scope.setdefault("state", {})["principal"] = principal


def require(role: str) -> Callable[..., Any]:
    async def dependency(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)) -> auth.Principal:
        principal = await authenticate_request(request, creds.credentials if creds else None)
        if not principal.can(role):
            raise HTTPException(403, f"this needs the {role} role; token {principal.name!r} is a {principal.role}")
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


Viewer = Annotated[auth.Principal, Depends(require("viewer"))]
Responder = Annotated[auth.Principal, Depends(require("responder"))]
Admin = Annotated[auth.Principal, Depends(require("admin"))]


async def no_body(request: Request) -> None:
    """An endpoint that reads no body refuses one with fields in it, as every body refuses an
    unknown field: `{"message": "on it"}` sent with an acknowledgement would otherwise vanish.
    Nothing, whitespace, `{}` and `null` (what clients send by default) pass."""
    raw = (await request.body()).strip()
    if not raw or raw in (b"{}", b"null"):
        return
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidInput("body", "this endpoint takes no body, and what was sent is not JSON") from None
    if isinstance(data, dict) and not data:
        return
    got = f"fields {', '.join(sorted(map(str, data)))[:200]}" if isinstance(data, dict) else f"a JSON {type(data).__name__}"
    raise InvalidInput("body", f"this endpoint takes no body; it was sent {got}, which would be ignored")


# Last among an endpoint's parameters: the token is checked first (401/403 before 422).
NoBody = Annotated[None, Depends(no_body)]


def _storable(value: str) -> str:
    # PostgreSQL refuses NUL in text and lone surrogates cannot be encoded: refuse them here,
    # with the field named, rather than fail in the database.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode text") from None
    return value


Text = Annotated[str, AfterValidator(_storable)]
# What a 503 says when the database failed under a request: nothing was stored (it could not be
# reached), or the connection went while a change was being stored (it may have been).
UNREACHABLE = "the database cannot be reached just now; nothing was changed: try again in a few seconds"
LOST_MID_CHANGE = (
    "the database connection was lost while the change was being stored: it may have been; read it back before sending it again"
)

# A service, user or token name as bodies take it (the spaces around it are stripped after).
NAME_PATTERN = r"^\s*[A-Za-z0-9_.@:#/+-]{1,64}\s*$"


def _bounded_time(value: datetime) -> datetime:
    # Years 1 and 9999 parse, but a zone offset pushes them outside what Python and the
    # databases hold: refuse them here, with the field named, rather than fail later.
    try:
        return check_time(value, "")
    except InvalidInput as exc:
        raise PydanticCustomError("time_range", exc.message) from None


def _bounded_day(value: date) -> date:
    _bounded_time(datetime(value.year, value.month, value.day))
    return value


_DIGITS = re.compile(r"\s*[+-]?\d+(?:\.\d*)?\s*")


def _not_digits(value: Any) -> Any:
    # Pydantic reads a string of digits as Unix time: "20240117" would be 1970-08-23, stored
    # without a word. A time in text is ISO 8601 (a JSON number is still Unix seconds).
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        raise PydanticCustomError(
            "time_digits",
            f"'{value.strip()}' is digits only: write a time as ISO 8601 (2024-01-17T10:30:00Z)",
        )
    return value


# Every time and day a request gives (bodies and query parameters).
When = Annotated[datetime, BeforeValidator(_not_digits), AfterValidator(_bounded_time)]

# The engine's `[engine] timezone`, for the request being served (RequestLog sets it).
_ZONE: ContextVar[tzinfo] = ContextVar("rest_zone", default=UTC)


def serve_in_zone(zone: tzinfo) -> None:
    """Read the times the current request gives without a zone in `zone` (see `aware`)."""
    _ZONE.set(zone)


@overload
def aware(value: datetime, field: str, *, local: bool = False) -> datetime: ...
@overload
def aware(value: datetime | None, field: str, *, local: bool = False) -> datetime | None: ...
def aware(value: datetime | None, field: str, *, local: bool = False) -> datetime | None:
    """A time a request gave (`field`), in UTC: one without a zone is a wall time in the engine's
    `[engine] timezone`, as the CLI and the console read one, so a window planned for 22:00 is
    at 22:00 there; one the clocks skip that day is refused, naming the field. `local`: in the
    engine process's TZ instead (a log file's time stamps, as the CLI reads them)."""
    if value is None or value.tzinfo is not None:
        return value
    try:
        return in_zone(value, None if local else _ZONE.get(), value.isoformat(), field)
    except UsageError as exc:
        raise InvalidInput(field, str(exc).removeprefix(f"{field}: ")) from None


Day = Annotated[date, AfterValidator(_bounded_day)]


class Body(BaseModel):
    """Request bodies: unknown fields are refused, so a typo is an error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid")


def not_a_field(known: Sequence[str]) -> str:
    """What a 422 says of a body's unknown field, for `Body` models and bodies read by hand alike."""
    return "is not a field of this request" + (f" (its fields: {', '.join(known)})" if known else "")


def incident_number(key: str) -> int:
    """`INC-42`, `inc-42` or `42`; a number beyond any stored incident is simply not found."""
    text = key.strip()
    digits = text[4:] if text.upper().startswith("INC-") else text
    # isascii: str.isdigit() also accepts characters such as '²' that int() refuses.
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidInput("id", f"{key!r} is not an incident key (expected INC-<number>)")
    number = int(digits)
    if number > MAX_INT:
        raise NotFound(f"no incident {text}")
    return number


def check_id(value: int, what: str) -> int:
    if not 0 < value <= MAX_INT:
        raise NotFound(f"no {what} {value}")
    return value


def render_data(content: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Plain data as compact UTF-8 JSON, by orjson (dates as ISO 8601, NaN as null; `default`
    for any other type, else a TypeError naming it): a busy incident's detail (36 kB) takes it
    47 µs where json.dumps takes 350."""
    return orjson.dumps(content, default=default, option=orjson.OPT_NON_STR_KEYS)


class DataResponse(JSONResponse):
    """JSON of plain data, without re-validating it as a response model."""

    def render(self, content: Any) -> bytes:
        return render_data(content)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (weak comparison, lists and * allowed)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def not_modified(request: Request, headers: dict[str, str]) -> Response | None:
    """A 304 carrying `headers` when the request's If-None-Match names `headers["ETag"]`."""
    if etag_matches(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return None


# Authenticated reads: a client may keep them, but asks again (with its ETag) before each use.
REVALIDATE = {"Cache-Control": "private, no-cache"}


def iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def row_dict(obj: Any) -> dict[str, Any]:
    """A model row as JSON-ready data (its own columns only)."""
    data = {name: iso(getattr(obj, name)) for name in obj._meta.db_fields}
    if hasattr(obj, "number"):
        data["key"] = f"INC-{obj.number}"
    return data


def database_errors() -> list[type[Exception]]:
    """Driver and ORM exceptions. The app answers them with its own handler (not the catch-all,
    which re-raises to the server's log) so a full disk is one clear log line and a 503; the fast
    writes (engine.rest.fastwrites) hand them to that handler."""
    import sqlite3

    from tortoise.exceptions import BaseORMException

    out: list[type[Exception]] = [BaseORMException, sqlite3.Error]
    try:
        from asyncpg.exceptions import InterfaceError, InternalClientError, PostgresError

        out.extend((PostgresError, InterfaceError, InternalClientError))  # a closed or cut connection
    except ImportError:
        pass
    out.append(ConnectionError)  # PostgreSQL refusing connections (restarting, failing over)
    return out

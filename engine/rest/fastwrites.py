"""POST comment, status update and acknowledge served before FastAPI's routing.

When an incident breaks, responders, bots and integrations comment on it, post updates and
acknowledge by the hundred. Matching the path against a hundred routes and solving the
dependencies cost as much as the write itself; this middleware calls the endpoint function
FastAPI would call, with the same token check and body model, when the request is ordinary.
"""

from __future__ import annotations

from typing import Any

from fastapi.encoders import jsonable_encoder
from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.core.domain import DomainError
from engine.rest import auth
from engine.rest.common import LOST_MID_CHANGE, RestState, admit, database_errors, header_values, incident_number, render_data
from engine.rest.fastpath import DETAIL_PREFIX
from engine.rest.incidents import bodies, writes
from engine.rest.limits import read_body, replaying
from engine.storage.outcome import may_be_stored

# The writes a busy incident draws by the hundred (responders' and bots' comments, status
# updates, acknowledgements): the endpoint function FastAPI would call for each, and its body.
_WRITES: dict[str, tuple[Any, Any]] = {
    "comments": (writes.add_comment, bodies.CommentIn),
    "updates": (writes.add_update, bodies.UpdateIn),
    "acknowledge": (writes.acknowledge, None),
}


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
        self._rolled_back: tuple[type[BaseException], ...] = (DomainError, *database_errors())

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
        body = await read_body(receive)
        if body is None:  # the client went away
            return
        replay = replaying(body, receive)

        endpoint, model = _WRITES[action]
        authorization, content_type = header_values(scope, b"authorization", b"content-type")
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
        except self._rolled_back as exc:
            if may_be_stored(exc):  # served again, it could be stored twice: say what is known
                await _lost(scope, receive, send)
                return
            await self.app(scope, replay, send)
            return
        admit(self.state, scope, token, principal)
        self.state.fast_writes += 1
        # The endpoints return JSON-ready dicts; FastAPI's encoder only for anything that is not.
        content = render_data(result, default=jsonable_encoder)
        response = Response(content, status_code=201 if model is not None else 200, media_type="application/json")
        await response(scope, receive, send)


async def _lost(scope: Scope, receive: Receive, send: Send) -> None:
    body = {
        "error": "unavailable",
        "message": LOST_MID_CHANGE,
    }
    await Response(render_data(body), status_code=503, media_type="application/json", headers={"Retry-After": "5"})(scope, receive, send)

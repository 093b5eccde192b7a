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

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.rest import auth
from engine.rest.common import REVALIDATE, RestState, admit, etag_matches, header_values, incident_number
from engine.rest.public import cached_public

DETAIL_PREFIX = "/api/incidents/"
LIST_PATH = "/api/incidents"
PUBLIC_PREFIXES = ("/status", "/api/v2/", "/history.atom")
# The list's validator changes at least this often, for the engine's bookkeeping writes (which
# write no timeline event); engine.rest.incidents.reads uses the same.
LIST_MAX_AGE = 5.0


def list_validator(cursor: int) -> str:
    return f"{cursor}.{int(time.monotonic() // LIST_MAX_AGE)}"


def detail_etag(number: int, version: tuple[int, int], redacted: bool = False) -> str:
    # A viewer's copy (engine.rest.redaction) is another body: it has its own ETag and cache entry.
    return f'"{number}.{version[0]}.{version[1]}{"-redacted" if redacted else ""}"'


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
                    response = await cached_public(self.state, path, header_values(scope, b"if-none-match")[0])
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
        authorization, if_none_match = header_values(scope, b"authorization", b"if-none-match")
        token = auth.bearer(authorization)
        if token is None:
            return None
        principal = await auth.authenticate(token)
        if principal is None or not principal.can("viewer"):
            return None  # FastAPI answers 401/403/429 and counts the failure
        redacted = not principal.sees_contacts  # a responder's body is never served to a viewer, nor its ETag honoured
        if key is None:
            number = incident_number(path[len(DETAIL_PREFIX) :])
            version = await self.state.detail_versions.get(number)
            if version is None:
                return None
            etag = detail_etag(number, version, redacted)
            entry = None if etag_matches(if_none_match, etag) else self.state.details.get((number, redacted), etag)
        else:
            validator = list_validator(await self.state.feed_cursor.get(None))
            entry = self.state.lists.get((key, redacted), validator)
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

"""The public status page, its Statuspage-shaped JSON and its Atom feed (no token needed).

A built page is cached until the change feed moves (or 30 s pass, for maintenance windows that
start and end on their own), so a crowd of visitors during an outage costs one cheap query each,
and a visitor who has the page already gets 304.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from engine.rest.cache import PublicCache, strong_etag
from engine.rest.common import RestState, Text, etag_matches, not_modified, render_data, rest_state
from engine.rest.statuspage import JSON_DOCUMENTS, Settings, build_page, statuspage_json
from engine.rest.statuspage_render import Links, render_atom, render_incident, render_index, render_message

log = logging.getLogger("pulseguard.api")
router = APIRouter(tags=["status page"])
SERVED = Links()
PUBLIC_HEADERS = {"Cache-Control": "public, max-age=10"}
# Maintenance windows start and end on their own: rebuild at least this often.
MAX_AGE = 30.0
# A crowd of visitors asks the feed at most this often; a write through this process makes the
# next visitor ask at once (so whoever posted an update sees it). Other processes' changes show
# within this time, well inside the page's public max-age.
CHECK_EVERY = 0.5


async def current_page(state: RestState) -> PublicCache:
    """The page for the feed's current cursor (rebuilt when the feed moves or MAX_AGE passes,
    for maintenance windows that start and end on their own)."""
    cache = state.public
    if cache.recently_checked(CHECK_EVERY, MAX_AGE):
        return cache
    written = cache.written
    cursor = await state.feed_cursor.get(None)
    cache.checked_at = time.monotonic()
    if cache.fresh(cursor, MAX_AGE):
        return cache
    if cache.page is not None and not written:
        # Stale while revalidate: the crowd keeps the page it has while one build runs.
        if cache.background is None or cache.background.done():
            cache.background = asyncio.create_task(_rebuild(state, cursor), name="pulseguard-status-page-build")
        return cache
    async with cache.lock:
        if not cache.fresh(cursor, MAX_AGE):
            await _build(state, cursor)
    return cache


async def _build(state: RestState, cursor: int) -> None:
    cache = state.public
    started = time.monotonic()
    cache.written = False  # the build reads after every write made so far
    cache.keep(await build_page(Settings.from_config(state.config, state.base_url)), cursor, started)


async def _rebuild(state: RestState, cursor: int) -> None:
    try:
        async with state.public.lock:
            if not state.public.fresh(cursor, MAX_AGE):
                await _build(state, cursor)
    except Exception:  # visitors keep the last page; the next check tries again
        log.exception("building the status page failed; serving the last one built")


async def public_response(
    request: Request, name: str, render: Callable[[dict[str, Any]], bytes | None], media_type: str, headers: dict[str, str] | None = None
) -> Response | None:
    """`render`'s bytes for the current page, or 304 when If-None-Match names them; None when
    `render` finds nothing (the caller answers 404)."""
    cache = await current_page(rest_state(request))
    if name not in cache.renders:
        body = render(cache.page or {})
        cache.renders[name] = None if body is None else (strong_etag(body), body)
    entry = cache.renders[name]
    if entry is None:
        return None
    etag, body = entry
    sent = {**PUBLIC_HEADERS, **(headers or {}), "ETag": etag}
    return not_modified(request, sent) or Response(body, media_type=media_type, headers=sent)


HTML = "text/html; charset=utf-8"
ATOM = "application/atom+xml; charset=utf-8"
CORS = {"Access-Control-Allow-Origin": "*"}
_INCIDENT_KEY = re.compile(r"[A-Za-z0-9-]{1,40}")


def served_as(path: str) -> tuple[str, str, dict[str, str]] | None:
    """The cached render that answers a public path: (its name, media type, extra headers)."""
    if path == "/status":
        return "index", HTML, {}
    if path in ("/status/feed.atom", "/history.atom"):
        return "atom", ATOM, {}
    if path.startswith("/status/incidents/"):
        key = path[len("/status/incidents/") :]
        return (f"incident:{key.upper()}", HTML, {}) if _INCIDENT_KEY.fullmatch(key) else None
    if path.startswith("/api/v2/") and path.endswith(".json") and path[8:-5] in JSON_DOCUMENTS:
        return f"json:{path[8:-5]}", "application/json", CORS
    return None


async def cached_public(state: RestState, path: str, if_none_match: str | None) -> Response | None:
    """A public page answered from what is already rendered (engine.rest.fastpath), or None
    when the route must answer it (not rendered yet, unknown, not found)."""
    served = served_as(path)
    if served is None:
        return None
    name, media_type, headers = served
    entry = (await current_page(state)).renders.get(name)
    if entry is None:
        return None
    etag, body = entry
    sent = {**PUBLIC_HEADERS, **headers, "ETag": etag}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=sent)
    return Response(body, media_type=media_type, headers=sent)


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/status", status_code=307)


@router.get("/status", response_class=HTMLResponse, summary="The public status page")
async def status_page(request: Request) -> Response:
    response = await public_response(request, "index", lambda page: render_index(page, SERVED).encode(), HTML)
    assert response is not None  # the index always renders
    return response


@router.get("/status/incidents/{key}", response_class=HTMLResponse, summary="One public incident's page")
async def incident_page(request: Request, key: Annotated[Text, Path(max_length=40)]) -> Response:
    wanted = key.strip().upper()

    def render(page: dict[str, Any]) -> bytes | None:
        html = render_incident(page, wanted, SERVED)
        return None if html is None else html.encode()

    response = await public_response(request, f"incident:{wanted}", render, HTML)
    if response is None:
        return HTMLResponse(render_message("Not found", "There is no public incident by that name.", SERVED), status_code=404)
    return response


@router.get(
    "/status/feed.atom",
    summary="Atom feed of public incidents",
    response_class=Response,
    responses={200: {"content": {"application/atom+xml": {}}}},
)
@router.get("/history.atom", include_in_schema=False)
async def atom(request: Request) -> Response:
    response = await public_response(request, "atom", lambda page: render_atom(page, SERVED).encode(), ATOM)
    assert response is not None
    return response


def _json_route(name: str) -> None:
    async def endpoint(request: Request) -> Response:
        response = await public_response(
            request,
            f"json:{name}",
            lambda page: render_data(statuspage_json(page, name)),
            "application/json",
            CORS,
        )
        assert response is not None
        return response

    endpoint.__name__ = "statuspage_" + name.replace("/", "_").replace("-", "_")
    router.add_api_route(
        f"/api/v2/{name}.json", endpoint, methods=["GET"], summary=f"Statuspage v2: {name}.json", response_class=JSONResponse
    )


for _name in JSON_DOCUMENTS:
    _json_route(_name)

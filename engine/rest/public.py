"""The public status page, its Statuspage-shaped JSON and its Atom feed (no token needed).

A built page is cached until the change feed moves (or 30 s pass, for maintenance windows that
start and end on their own), so a crowd of visitors during an outage costs one cheap query each.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from engine.incidents import feed
from engine.rest.common import Text, rest_state
from engine.rest.statuspage import JSON_DOCUMENTS, Settings, build_page, statuspage_json
from engine.rest.statuspage_render import Links, render_atom, render_incident, render_index, render_message

router = APIRouter(tags=["status page"])
MAX_AGE = 30.0
SERVED = Links()
PUBLIC_HEADERS = {"Cache-Control": "public, max-age=10"}


async def current_page(request: Request) -> dict[str, Any]:
    state = rest_state(request)
    cursor = await feed.latest_cursor()
    cached = state.page_cache
    now = time.monotonic()
    if cached is not None and cached[0] == cursor and now - cached[1] < MAX_AGE:
        return cached[2]
    page = await build_page(Settings.from_config(state.config, state.base_url))
    state.page_cache = (cursor, now, page)
    return page


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/status", status_code=307)


@router.get("/status", response_class=HTMLResponse, summary="The public status page")
async def status_page(request: Request) -> HTMLResponse:
    return HTMLResponse(render_index(await current_page(request), SERVED), headers=PUBLIC_HEADERS)


@router.get("/status/incidents/{key}", response_class=HTMLResponse, summary="One public incident's page")
async def incident_page(request: Request, key: Annotated[Text, Path(max_length=40)]) -> HTMLResponse:
    page = await current_page(request)
    html = render_incident(page, key.strip().upper(), SERVED)
    if html is None:
        return HTMLResponse(render_message("Not found", "There is no public incident by that name.", SERVED), status_code=404)
    return HTMLResponse(html, headers=PUBLIC_HEADERS)


@router.get(
    "/status/feed.atom",
    summary="Atom feed of public incidents",
    response_class=Response,
    responses={200: {"content": {"application/atom+xml": {}}}},
)
@router.get("/history.atom", include_in_schema=False)
async def atom(request: Request) -> Response:
    return Response(
        render_atom(await current_page(request), SERVED), media_type="application/atom+xml; charset=utf-8", headers=PUBLIC_HEADERS
    )


def _json_route(name: str) -> None:
    async def endpoint(request: Request) -> JSONResponse:
        body = statuspage_json(await current_page(request), name)
        return JSONResponse(body, headers={**PUBLIC_HEADERS, "Access-Control-Allow-Origin": "*"})

    endpoint.__name__ = "statuspage_" + name.replace("/", "_").replace("-", "_")
    router.add_api_route(
        f"/api/v2/{name}.json", endpoint, methods=["GET"], summary=f"Statuspage v2: {name}.json", response_class=JSONResponse
    )


for _name in JSON_DOCUMENTS:
    _json_route(_name)

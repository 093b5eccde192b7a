"""Timeline and change feed: read after a cursor, or follow as server-sent events.

One `FeedWatcher` per app reads the newest event id when PostgreSQL signals a commit (or polls,
on SQLite); every open stream waits on it and reads
only its own slice when something changed, so a hundred idle consoles cost one cheap query per
poll, not a hundred. A stream sends each batch as one SSE message (`event: events`, the last
event id as `id`), so a reconnecting client resumes with `Last-Event-ID` and misses nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import StreamingResponse

from engine.core.halt import finish
from engine.incidents import feed
from engine.incidents.feed import event_to_dict
from engine.incidents.queries import get_incident
from engine.rest import auth, redaction
from engine.rest.common import RestState, Text, Viewer, incident_number, rest_state
from engine.storage.changes import change_signal
from engine.storage.models import Event

router = APIRouter(prefix="/api", tags=["timeline"])

Cursor = Annotated[int, Query(ge=0, le=2**62, description="return events with a larger id")]
Limit = Annotated[int, Query(ge=1, le=1000)]
HEARTBEAT = 15.0


class FeedWatcher:
    """Reads the newest event id when a commit is signalled (or polls) and wakes every waiting
    stream when it grows."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.latest = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._waiters = 0

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="pulseguard-api-feed")

    async def _run(self) -> None:
        signal = change_signal()
        while True:
            seen = signal.generation
            try:
                latest = await feed.latest_cursor()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database blinked: try again at the next poll
                latest = self.latest
            if latest != self.latest:
                self.latest = latest
                self._changed.set()
                self._changed = asyncio.Event()
            await signal.wait(seen, self.interval)

    async def wait(self, cursor: int, timeout: float) -> None:
        """Return once events past `cursor` may exist, or after `timeout` seconds."""
        if self.latest > cursor:
            return
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            pass

    async def stop(self) -> None:
        if self._task is not None:
            await finish([self._task], 0)
            self._task = None


def watcher(state: RestState) -> FeedWatcher:
    w = getattr(state, "_feed_watcher", None)
    if w is None:
        w = FeedWatcher()
        state._feed_watcher = w  # type: ignore[attr-defined]
    w.ensure_running()
    return w


async def _incident_events(incident_id: int, cursor: int, limit: int) -> list[dict[str, Any]]:
    rows = (
        await Event.filter(incident_id=incident_id, id__gt=cursor)
        .order_by("id")
        .limit(limit)
        .values("id", "incident_id", "incident__number", "kind", "actor", "at", "summary", "data")
    )
    return [event_to_dict(r) for r in rows]


def shown(batch: list[dict[str, Any]], who: auth.Principal) -> list[dict[str, Any]]:
    """Events as `who` reads them: where notifications went is for responders (engine.rest.redaction)."""
    return batch if who.sees_contacts else redaction.events(batch)


@router.get("/events", summary="The change feed: events after a cursor, oldest first")
async def events(who: Viewer, cursor: Cursor = 0, limit: Limit = 500) -> dict[str, Any]:
    batch = await feed.events_since(cursor, limit)
    return {"events": shown(batch, who), "cursor": batch[-1]["id"] if batch else cursor}


@router.get("/events/cursor", summary="The newest event id (start following from here)")
async def events_cursor(_: Viewer) -> dict[str, int]:
    return {"cursor": await feed.latest_cursor()}


@router.get("/incidents/{id}/timeline", summary="An incident's timeline after a cursor, oldest first")
async def timeline(id: Annotated[Text, Path(max_length=40)], who: Viewer, cursor: Cursor = 0, limit: Limit = 500) -> dict[str, Any]:
    incident = await get_incident(incident_number(id))
    batch = await _incident_events(incident.id, cursor, limit)
    return {"incident": incident.key, "events": shown(batch, who), "cursor": batch[-1]["id"] if batch else cursor}


def _start_cursor(cursor: int | None, last_event_id: str | None) -> int:
    if last_event_id and last_event_id.strip().isdigit():
        return min(int(last_event_id.strip()), 2**62)
    return cursor or 0


async def _stream(request: Request, state: RestState, who: auth.Principal, cursor: int, incident_id: int | None) -> AsyncIterator[str]:
    w = watcher(state)
    token = auth.bearer(request.headers.get("authorization")) or ""
    yield "retry: 2000\n: connected\n\n"
    loop = asyncio.get_running_loop()
    last_sent = loop.time()
    while not state.draining.is_set():
        # The token was checked when the stream opened; a stream outlives that check, so a
        # revoked token's stream ends here (within auth.CACHE_SECONDS, at once in this process)
        # and its reconnection gets the 401.
        if await auth.authenticate(token) is None:
            yield 'event: unauthorized\ndata: {"error":"unauthorized","message":"unknown or revoked token"}\n\n'
            return
        seen = w.latest  # read before the query: every event up to it is committed
        if incident_id is None:
            batch = await feed.events_since(cursor, 500)
        else:
            batch = await _incident_events(incident_id, cursor, 500)
        if batch:
            cursor = batch[-1]["id"]
            yield f"id: {cursor}\nevent: events\ndata: {json.dumps(shown(batch, who), default=str, separators=(',', ':'))}\n\n"
            last_sent = loop.time()
            if len(batch) == 500:
                continue
        if incident_id is not None and seen > cursor:
            # Newer events exist but belong to other incidents: skip past them.
            cursor = seen
        if loop.time() - last_sent >= HEARTBEAT:
            # Also how a vanished client is noticed: the write fails and the stream ends.
            yield ": keepalive\n\n"
            last_sent = loop.time()
        # Wake at least every second so a draining server ends its streams promptly.
        await w.wait(cursor, 1.0)
    yield "event: closing\ndata: {}\n\n"


def _sse(gen: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(gen, media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get(
    "/events/stream",
    summary="Follow the change feed as server-sent events (resume with Last-Event-ID)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events_stream(
    request: Request,
    who: Viewer,
    cursor: Annotated[int | None, Query(ge=0, le=2**62, description="start after this event id (default: now)")] = None,
    last_event_id: Annotated[str | None, Header(max_length=30)] = None,
) -> StreamingResponse:
    state = rest_state(request)
    if cursor is None and not last_event_id:
        cursor = await feed.latest_cursor()
    return _sse(_stream(request, state, who, _start_cursor(cursor, last_event_id), None))


@router.get(
    "/incidents/{id}/timeline/stream",
    summary="Follow one incident's timeline as server-sent events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def timeline_stream(
    request: Request,
    id: Annotated[Text, Path(max_length=40)],
    who: Viewer,
    cursor: Annotated[int, Query(ge=0, le=2**62)] = 0,
    last_event_id: Annotated[str | None, Header(max_length=30)] = None,
) -> StreamingResponse:
    incident = await get_incident(incident_number(id))
    return _sse(_stream(request, rest_state(request), who, _start_cursor(cursor, last_event_id), incident.id))

"""Request-size limit of the API: a body over the limit is refused with 413 before it is read.

A declared `Content-Length` over the limit is answered at once, without reading a byte of the
body; a body without one (chunked) is counted as it arrives and refused the moment it passes
the limit, so no oversize body is ever held in memory or parsed.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_BODY_LIMIT = 1_048_576


def _too_large(limit: int, setting: str) -> tuple[Message, Message]:
    body = json.dumps({"error": "too_large", "message": f"the request body is larger than the limit of {limit} bytes ({setting})"}).encode()
    start: Message = {
        "type": "http.response.start",
        "status": 413,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyLimit:
    """ASGI middleware refusing request bodies larger than `limit` bytes with 413. `paths` give
    some paths their own limit and the setting that sets it (path -> (limit, setting)); their
    routes must read the body only after authenticating the sender."""

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_BODY_LIMIT, paths: dict[str, tuple[int, str]] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.paths = paths or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.paths.get(scope["path"]) or (self.limit, "engine.api_body_limit")
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0  # the server itself refuses a malformed length
                if declared > limit:
                    for message in _too_large(limit, setting):
                        await send(message)
                    return
        received = 0
        refused = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        for out in _too_large(limit, setting):
                            await send(out)
                    # The app sees a client that went away and stops reading.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent; whatever the app answers now is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, for a middleware that looks at it before the app does; None when
    the client went away first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive for the app behind such a middleware: the body read already, whole, then what
    the client sends next (its disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay

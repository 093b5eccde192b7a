"""A tiny HTTP/1.1 server for loopback use: the demo's flaky service, tests and benchmarks.

The handler sees each request and returns a `Reply` (status, body, headers, and optionally a
delay, a hang that never answers, or a dropped connection). It runs on asyncio protocols so one
process can serve thousands of probes per second.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Reply", "Request", "LoopbackServer", "TcpListener"]

REASONS = {
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    hang: bool = False  # never answer (the connection stays open until the client gives up)
    drop: bool = False  # close the connection without answering
    chunked: bool = False

    def encode(self) -> bytes:
        body = self.body.encode("utf-8") if isinstance(self.body, str) else self.body
        reason = REASONS.get(self.status, "Status")
        head = [f"HTTP/1.1 {self.status} {reason}"]
        headers = {"Content-Type": "text/plain; charset=utf-8", **self.headers}
        for name, value in headers.items():
            head.append(f"{name}: {value}")
        if self.chunked:
            head.append("Transfer-Encoding: chunked")
            payload = (
                b"".join(f"{len(body[i : i + 7]):x}\r\n".encode() + body[i : i + 7] + b"\r\n" for i in range(0, len(body), 7))
                + b"0\r\n\r\n"
            )
        else:
            head.append(f"Content-Length: {len(body)}")
            payload = body
        head.append("Connection: close")
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload


Handler = Callable[[Request], "Reply | Awaitable[Reply]"]


class _HttpProtocol(asyncio.Protocol):
    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.busy:
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end == -1:
            if len(self.buffer) > 65536 and self.transport:
                self.transport.close()
            return
        head = bytes(self.buffer[:end]).decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        request = Request(parts[0], parts[1] if len(parts) > 1 else "/", headers, body)
        self.server.requests += 1
        self.busy = True
        result = self.server.handler(request)
        if inspect.isawaitable(result):
            asyncio.ensure_future(self._finish_async(result))
        else:
            self._respond(result)

    async def _finish_async(self, pending: Awaitable[Reply]) -> None:
        try:
            reply = await pending
        except Exception:
            reply = Reply(500, "handler failed")
        self._respond(reply)

    def _respond(self, reply: Reply) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if reply.drop:
            transport.abort()
            return
        if reply.hang:
            return
        if reply.delay > 0:
            asyncio.get_running_loop().call_later(reply.delay, self._send, reply)
        else:
            self._send(reply)

    def _send(self, reply: Reply) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(reply.encode())
        transport.close()


class LoopbackServer:
    """`async with LoopbackServer(handler) as server:` … `server.url + "/path"`."""

    def __init__(self, handler: Handler | None = None, host: str = "127.0.0.1", port: int = 0, backlog: int = 4096) -> None:
        self.handler: Handler = handler or (lambda request: Reply())
        self.host = host
        self.port = port
        self.backlog = backlog
        self.requests = 0
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[_HttpProtocol] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> LoopbackServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _HttpProtocol(self), self.host, self.port, backlog=self.backlog)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in list(self._connections):
                if conn.transport is not None:
                    conn.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> LoopbackServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class TcpListener:
    """A TCP port that accepts connections and closes them (for tcp probes)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.accepted = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> TcpListener:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            writer.close()

        self._server = await asyncio.start_server(on_connect, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> TcpListener:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

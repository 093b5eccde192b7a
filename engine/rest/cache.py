"""Rendered responses kept per process, keyed by a validator the database gives cheaply.

A busy incident is polled by dozens of consoles, bots and dashboards at once; rebuilding its
detail (hundreds of timeline rows) for each costs far more than one indexed query that says
whether it changed. A cached body is served only while its validator is current, and the
validator is read for every request, so a write by any process (this one or another engine
on the same database) is seen by the next read: never stale, and read-your-writes holds.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RenderedCache:
    """Least recently used bodies under a byte budget: key -> (validator, ETag, body)."""

    def __init__(self, max_bytes: int = 32 << 20) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[object, tuple[str, str, bytes]] = OrderedDict()
        self._bytes = 0

    def get(self, key: object, validator: str) -> tuple[str, bytes] | None:
        """(ETag, body) kept for `key` if it was kept under this validator."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != validator:
            return None
        self._entries.move_to_end(key)
        return entry[1], entry[2]

    def put(self, key: object, validator: str, body: bytes, etag: str | None = None) -> tuple[str, bytes]:
        """Keep `body`; its ETag is `etag` or a hash of the bytes. Returns (ETag, body)."""
        etag = etag or strong_etag(body)
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old[2])
        if len(body) <= self.max_bytes // 4:  # one huge body must not evict everything else
            self._entries[key] = (validator, etag, body)
            self._bytes += len(body)
        while self._bytes > self.max_bytes:
            _, (_, _, dropped) = self._entries.popitem(last=False)
            self._bytes -= len(dropped)
        return etag, body

    def __len__(self) -> int:
        return len(self._entries)


def strong_etag(body: bytes) -> str:
    return f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'


class PublicCache:
    """The status page last built and what was rendered from it.

    One build at a time: a crowd arriving together waits for the build in progress instead of
    each building the page. Rendered bodies are kept per page with a strong ETag (a hash of
    the bytes), so a visitor's browser or a poller that sends it back gets 304. When the page
    is out of date because of another process's change or its age, visitors keep getting the
    page they have while the new one is built in the background (it takes about a second with
    a year of history); after a write through this process the next visitor waits for the new
    page, so whoever posted an update sees it."""

    def __init__(self) -> None:
        self.cursor = -1
        self.built_at = 0.0
        self.checked_at = 0.0
        self.page: dict[str, Any] | None = None
        self.lock = asyncio.Lock()
        self.renders: dict[str, tuple[str, bytes] | None] = {}
        self.written = False
        self.background: asyncio.Task[None] | None = None

    def fresh(self, cursor: int, max_age: float) -> bool:
        return self.page is not None and self.cursor == cursor and time.monotonic() - self.built_at < max_age

    def recently_checked(self, within: float, max_age: float) -> bool:
        """Whether the feed was asked within `within` seconds (and the page is still young)."""
        now = time.monotonic()
        return self.page is not None and now - self.checked_at < within and now - self.built_at < max_age

    def forget_check(self) -> None:
        """A write went through this process: the next visitor asks the feed again and waits
        for a page that shows it."""
        self.checked_at = 0.0
        self.written = True

    def keep(self, page: dict[str, Any], cursor: int, started: float) -> None:
        self.page, self.cursor, self.built_at, self.renders = page, cursor, started, {}


class SingleFlight(Generic[K, V]):
    """One database read serves every request that needs it at the same moment.

    Under a crowd, each request asking "did incident 42 change?" costs a round trip to the
    database. Here a caller waits for the next read of its key that *starts after it arrived*
    (never one already under way, which could predate a write the caller has just made: so
    read-your-writes holds), and at most one read per key is under way at a time: while one
    runs, the callers arriving meanwhile gather and the next read serves them all."""

    def __init__(self, fetch: Callable[[K], Awaitable[V]]) -> None:
        self._fetch = fetch
        self._next: dict[K, asyncio.Future[V]] = {}
        self._reading: dict[K, asyncio.Future[V]] = {}
        self._running: set[K] = set()

    async def get(self, key: K) -> V:
        fut = self._next.get(key)
        if fut is None:
            fut = self._next[key] = asyncio.get_running_loop().create_future()
            if key not in self._running:
                self._start(key)
        # shield: one caller giving up (a client hanging up) must not cancel the read for the others
        return await asyncio.shield(fut)

    def _start(self, key: K) -> None:
        self._running.add(key)
        task = asyncio.get_running_loop().create_task(self._run(key), name=f"pulseguard-single-flight:{key}")
        task.add_done_callback(functools.partial(self._finished, key))

    async def _run(self, key: K) -> None:
        fut = self._reading[key] = self._next.pop(key)  # callers arriving from now on wait for the next read
        try:
            result = await self._fetch(key)
        except Exception as exc:
            fut.set_exception(exc)
            fut.exception()  # every waiting caller raises it; none left means nobody to tell
        else:
            fut.set_result(result)

    def _finished(self, key: K, task: asyncio.Task[None]) -> None:
        # A read cancelled (even before it began, when its body never ran) must not leave its
        # callers waiting for ever, nor the key marked as being read.
        fut = self._reading.pop(key, None) or self._next.pop(key, None)
        if fut is not None and not fut.done():
            fut.cancel()
        self._running.discard(key)
        if key in self._next:
            self._start(key)


async def one_build(builds: dict[object, asyncio.Future[V]], key: object, build: Callable[[], Awaitable[V]]) -> V:
    """The result of `build`, run once for every caller asking for `key` while it runs. Keyed by
    a validator read after the caller arrived, so a build it joins began after its own writes."""
    flight = builds.get(key)
    if flight is None:
        flight = builds[key] = asyncio.ensure_future(build())
        flight.add_done_callback(lambda f: (builds.pop(key, None), f.cancelled() or f.exception()))
    # shield: one client hanging up must not cancel the build the others wait for
    return await asyncio.shield(flight)

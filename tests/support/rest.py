"""Shared pieces of the REST tests: a real uvicorn server on a loopback port, serving the app
in the test's own event loop over the `db` fixture's database, with one token per role."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from engine.api.local import LocalEngine
from engine.api.remote import RemoteEngine
from engine.config.loading import parse_config_text
from engine.rest import auth
from engine.rest.server import ApiService

ROLES = ("viewer", "responder", "admin")

# A configuration with one public service and a status page (the status-page tests' site).
STATUS_SITE = """
[engine]
timezone = "UTC"

[[services]]
name = "web-app"

[status_page_integration]
title = "Example Status"
"""


@dataclass
class Api:
    url: str
    service: ApiService
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> Any:
        return self.service.app.state.rest

    def client(self, role: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        headers.update(kwargs.pop("headers", {}))
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30, **kwargs)


@asynccontextmanager
async def running_api(config: Any = None, *, relay: bool = False) -> AsyncIterator[Api]:
    """The API served by uvicorn on 127.0.0.1 (any free port), with a token per role."""
    auth.forget_cache()
    tokens = {}
    for role in ROLES:
        _, tokens[role] = await auth.create_token(f"{role}-token", role, "tests")
    service = ApiService("127.0.0.1:0", config, db_label="test", relay=relay, drain_seconds=3)
    await service.start()
    try:
        yield Api(service.url, service, tokens)
    finally:
        await service.stop()


@pytest.fixture
async def api(db: Any) -> AsyncIterator[Api]:
    async with running_api() as running:
        yield running


def config(text: str = "") -> Any:
    return parse_config_text(text or '[engine]\ntimezone = "UTC"\n')


async def eventually(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Poll `check` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):  # a coroutine, or a Tortoise query (`.exists()`), which is no coroutine
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


@pytest.fixture(params=["local", "remote"])
async def engine(request: pytest.FixtureRequest, db: Any) -> AsyncIterator[Any]:
    if request.param == "local":
        yield LocalEngine("responder-token")
        return
    async with running_api() as api:
        remote = await RemoteEngine.connect(api.url, api.tokens["responder"])
        try:
            yield remote
        finally:
            await remote.aclose()

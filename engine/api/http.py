"""The wire under `RemoteEngine`: JSON bodies, error responses turned back into the domain errors
a LocalEngine raises, and the server-sent-event line parser of the change feed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

import httpx

from engine.api.errors import ReadOnlyError
from engine.core.domain import DomainError, IllegalTransition, InvalidInput, NotFound


class RemoteError(DomainError):
    """The engine could not be reached, or answered something unexpected."""

    code = "remote"


class AuthenticationFailed(RemoteError):
    code = "unauthorized"


def jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def json_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RemoteError(f"{path} did not answer with a JSON object")
    return value


def json_objects(value: Any, path: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise RemoteError(f"{path} did not answer with a list of JSON objects")
    return value


def raise_for(response: httpx.Response) -> None:
    """Turn an error response into the domain error a LocalEngine would raise."""
    status = response.status_code
    if status < 400:
        return
    try:
        body = response.json()
        message = str(body.get("message") or body.get("detail") or f"HTTP {status}")
        field = body.get("field")
    except (ValueError, AttributeError):
        message, field = (response.text or f"HTTP {status}")[:300], None
    if status == 404:
        raise NotFound(message)
    if status == 409:
        raise IllegalTransition(message)
    if status == 422:
        prefix = f"{field}: "
        raise InvalidInput(field or "request", message[len(prefix) :] if field and message.startswith(prefix) else message)
    if status == 403:
        raise ReadOnlyError(message)
    if status in (401, 429):
        # 429 is the engine slowing down a client that keeps presenting a wrong token (a valid
        # one is always let in): the token is the problem, not the engine.
        raise AuthenticationFailed(f"the engine refused the token: {message}")
    raise RemoteError(f"the engine answered HTTP {status}: {message}")


async def parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str, str | None]]:
    """(event, data, id) for each server-sent event in a stream of lines."""
    event, last_id = "message", None
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data:
                yield event, "\n".join(data), last_id
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            last_id = value

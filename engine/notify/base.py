"""What a delivery attempt returns, and the HTTP plumbing every web channel shares."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from engine.core.neterrors import connection_failure

# HTTP statuses that mean "try again later"; any other 4xx is a refusal that retrying won't fix.
RETRYABLE_4XX = {408, 425, 429}
DEFAULT_TIMEOUT = 10.0


@dataclass
class Outcome:
    """The result of one delivery attempt.

    `permanent` means the receiver refused the message for good (don't retry); `retry_after`
    is a delay the receiver asked for (seconds); `result` carries what later messages of the
    same stream need (a Jira issue key, a PagerDuty dedup key).
    """

    ok: bool
    reason: str = ""
    permanent: bool = False
    retry_after: float | None = None
    status: int | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def success(cls, reason: str = "", **result: Any) -> Outcome:
        return cls(True, reason, result=result)

    @classmethod
    def refused(cls, reason: str, status: int | None = None) -> Outcome:
        return cls(False, reason, permanent=True, status=status)

    @classmethod
    def failed(cls, reason: str, *, retry_after: float | None = None, status: int | None = None) -> Outcome:
        return cls(False, reason, retry_after=retry_after, status=status)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (a number or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def classify(response: httpx.Response) -> Outcome:
    """2xx delivered; 408/425/429 and 5xx retried; any other status refused for good."""
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(True, f"HTTP {status}", status=status)
    body = _snippet(response.text or "")
    reason = f"HTTP {status}" + (f": {body}" if body else "")
    if status in RETRYABLE_4XX or status >= 500:
        return Outcome.failed(reason, retry_after=parse_retry_after(response.headers.get("retry-after")), status=status)
    return Outcome.refused(reason, status)


async def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    auth: tuple[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[Outcome, httpx.Response | None]:
    """POST a body as given and classify; network errors and timeouts are retryable failures."""
    return await request(client, "POST", url, content=content, headers=headers, auth=auth, timeout=timeout)


async def request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    json_body: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    params: Any = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[Outcome, httpx.Response | None]:
    """Send and classify; network errors and timeouts are retryable failures."""
    try:
        # client.request(), not .post(): httpx types post's auth without None (no auth), which request() takes
        response = await client.request(
            method, url, content=content, json=json_body, headers=headers, auth=auth, params=params, timeout=timeout
        )
    except httpx.TimeoutException:
        return Outcome.failed(f"timed out after {timeout:g} s"), None
    except httpx.InvalidURL as exc:
        return Outcome.refused(f"invalid URL {url!r}: {exc}"), None
    except httpx.HTTPError as exc:
        return Outcome.failed(_describe(exc)), None
    return classify(response), response


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    if isinstance(exc, httpx.ConnectError):
        try:
            host, port = exc.request.url.host, exc.request.url.port
        except RuntimeError:  # no request attached
            host, port = None, None
        plain = connection_failure(exc, host, port)
        return "connection failed: " + plain if plain else "connection failed" + (f": {_snippet(text, 120)}" if text else "")
    return f"{type(exc).__name__}" + (f": {_snippet(text, 120)}" if text else "")

"""Logging of the long-running processes: levels that keep libraries quiet and a filter that keeps
secrets out of every line.

PulseGuard's own loggers (`pulseguard.*`, `engine.*`) log at the chosen level; libraries (httpx,
httpcore, uvicorn, asyncpg, tortoise, …) only from WARNING, since httpx alone logs every request
URL at INFO, and a Slack webhook URL *is* the secret. Whatever still reaches a handler passes
`Redactor`, which replaces every configured secret (each value read from an environment variable
the configuration names) and the credentials and query strings of URLs.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from engine.core.textclean import log_text

OWN_LOGGERS = ("pulseguard", "engine")
LIBRARY_LOGGERS = (
    "httpx",
    "httpcore",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "asyncpg",
    "tortoise",
    "aiosqlite",
    "aiosmtplib",
    "mail.log",
    "multipart",
    "fastapi",
    "starlette",
    "urllib3",
    "pyod",
)
LIBRARY_LEVEL = logging.WARNING
MASK = "[redacted]"
# Shorter values would mask ordinary words; a secret this short protects nothing anyway.
MIN_SECRET_LENGTH = 4
# Environment variables of PulseGuard itself that hold a secret (the remote console's token).
_SECRET_ENV_RE = re.compile(r"^PULSEGUARD_\w*(TOKEN|SECRET|PASSWORD|KEY)$")

_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@\"'<>]+@")
_URL_QUERY = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s\"'<>?#]*\?)[^\s\"'<>#]+")


def config_secrets(config: Any) -> list[str]:
    """Every secret value the configuration points at (its `*_env` keys and `headers_env` values),
    plus PulseGuard's own secret environment variables."""
    names: set[str] = set()
    if config is not None and hasattr(config, "env_references"):
        names.update(var for _, var in config.env_references())
    names.update(name for name in os.environ if _SECRET_ENV_RE.match(name))
    return [value for name in names if (value := os.environ.get(name))]


class Redactor(logging.Filter):
    """A handler filter rewriting each record so that no secret and no URL credential or query
    string reaches the output (message, structured fields, exception text)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        found = set(self._secrets)
        for value in secrets:
            value = (value or "").strip()
            if len(value) < MIN_SECRET_LENGTH:
                continue
            found.update({value, quote(value, safe=""), quote_plus(value)})  # as written into a URL too
        self._secrets = sorted(found, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _URL_CREDENTIALS.sub(lambda m: m.group(1) + MASK + "@", text)
        return _URL_QUERY.sub(lambda m: m.group(1) + MASK, text)

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return log_text(self.redact(value))
        if isinstance(value, dict):
            return {k: self._value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._value(v) for v in value]
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: show its parts rather than lose the line
            message = f"{record.msg} {record.args}"
        if getattr(record, "pulseguard_left_out", False):  # decided by another handler's filter
            return False
        if record.exc_info and _summaries.summary is not None:
            exc = record.exc_info[1]
            summary = _summaries.summary(exc) if exc is not None else None
            if summary is not None:  # a known trouble: one line, not a traceback from every loop
                repeated = _summaries.repeats(record.name, message)
                if repeated is None:
                    record.pulseguard_left_out = True
                    return False
                record.exc_info, record.exc_text = None, None
                message += f" ({summary})" + (f" [{repeated} more like it in the last {REPEAT_SECONDS:.0f} s]" if repeated else "")
        # One line each: a path or title a request carries may not forge one, nor drive a terminal.
        record.msg, record.args = log_text(self.redact(message)), None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = self._value(fields)
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None  # formatters fall back to the redacted exc_text
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


# A line about a known trouble (see `summarize_exceptions`) is written at most once in this many
# seconds per logger and message; the next one says how many were left out.
REPEAT_SECONDS = 30.0


class _Summaries:
    """Exceptions a higher layer knows how to say in one line (a lost database connection: every
    loop of the engine would log its traceback each round while PostgreSQL restarts)."""

    def __init__(self) -> None:
        self.summary: Callable[[BaseException], str | None] | None = None
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def repeats(self, logger: str, message: str) -> int | None:
        """None to leave the line out; else how many like it were left out before it."""
        now = time.monotonic()
        key = (logger, message)
        last = self._last.get(key)
        if last is not None and now - last[0] < REPEAT_SECONDS:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if len(self._last) > 1000:  # messages vary (ids in them): keep the table small
            self._last.clear()
        self._last[key] = (now, 0)
        return last[1] if last is not None else 0


_summaries = _Summaries()


def summarize_exceptions(summary: Callable[[BaseException], str | None] | None) -> None:
    """Log the exceptions `summary` names (it returns one line, or None for any other) as that
    line, at most once per REPEAT_SECONDS per logger and message, instead of a traceback."""
    _summaries.summary = summary
    _summaries._last.clear()


_redactor = Redactor()


def redactor() -> Redactor:
    """The process's one redaction filter (every configured handler shares it)."""
    return _redactor


def protect(handler: logging.Handler) -> logging.Handler:
    if _redactor not in handler.filters:
        handler.addFilter(_redactor)
    return handler


def configure(level: int = logging.INFO, config: Any = None, fmt: str = "%(asctime)s %(levelname)s %(name)s: %(message)s") -> None:
    """Set up stderr logging for a long-running command: our loggers at `level`, libraries at
    WARNING, every handler of the root logger redacting the configuration's secrets."""
    _redactor.add(config_secrets(config))
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(fmt))
        root.addHandler(handler)
    root.setLevel(max(level, LIBRARY_LEVEL))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(LIBRARY_LEVEL)
    for existing in root.handlers:
        protect(existing)

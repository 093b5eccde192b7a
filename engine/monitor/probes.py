"""Probes: one check of one target, returned as an `Observation`.

- `http`: status, expected status list, expected body text or regex, redirects, TLS expiry.
- `tcp`: connect time.
- `prometheus`: scrapes the text exposition format; every sample becomes a series.
- `host`: CPU, memory, swap, disk and load of this machine (psutil).

A probe never raises: failures come back as `ok=False` with a short `error`. The caller
(the scheduler) bounds each probe with the target's timeout.

Trigger variables come from an observation: `response_time` is the latency in milliseconds
when a response arrived and infinity when none did (refused, timeout, DNS, TLS), so
`response_time > 30000` holds for a target that does not answer at all.
"""

from __future__ import annotations

import asyncio
import fnmatch
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.config.conditions import series_key
from engine.core.linear_regex import RegexError, compile_regex
from engine.monitor.httpclient import ProbeError, _describe_os_error, fetch

__all__ = ["Observation", "SeriesValue", "run_probe", "parse_prometheus", "resolve_headers", "timeout_observation"]

MAX_SERIES_PER_SCRAPE = 5000
MAX_ERROR = 300


@dataclass(slots=True)
class SeriesValue:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    @property
    def key(self) -> str:
        return series_key(self.name, dict(self.labels))


@dataclass(slots=True)
class Observation:
    target: str
    at: float  # wall-clock epoch seconds at the start of the probe
    ok: bool
    latency_ms: float | None
    responded: bool = True
    status_code: int | None = None
    error: str | None = None
    cert_days_left: float | None = None
    series: list[SeriesValue] = field(default_factory=list)
    lag: float = 0.0  # seconds between the due time and the actual start

    def variables(self) -> dict[str, float | None]:
        """Probe variables for conditions (error_rate is added by the trigger evaluator)."""
        if self.latency_ms is None:
            response_time = None
        else:
            response_time = self.latency_ms if self.responded else math.inf
        return {
            "response_time": response_time,
            "status_code": float(self.status_code) if self.status_code is not None else None,
            "ok": 1.0 if self.ok else 0.0,
            "cert_days_left": self.cert_days_left,
        }


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def resolve_headers(target: Any) -> tuple[dict[str, str], list[str]]:
    """Static headers plus those whose values come from environment variables; also the
    warnings for variables that are not set (such a header is left out)."""
    headers = dict(getattr(target, "headers", None) or {})
    warnings = []
    for name, var in (getattr(target, "headers_env", None) or {}).items():
        value = os.environ.get(var)
        if value and any(ch in value for ch in "\r\n\0"):
            # Sent as is, a line break would smuggle extra headers into every probe.
            warnings.append(f"target {target.name}: header {name}: environment variable {var} holds a line break; header left out")
        elif value:
            headers[name] = value
        else:
            warnings.append(f"target {target.name}: header {name}: environment variable {var} is not set")
    return headers, warnings


def timeout_observation(target: Any, started: float, timeout: float, lag: float = 0.0) -> Observation:
    return Observation(
        target.name,
        started,
        False,
        round(timeout * 1000.0, 3),
        responded=False,
        error=f"timeout after {timeout:g}s",
        lag=lag,
    )


async def run_probe(target: Any, *, headers: Mapping[str, str] | None = None, body_limit: int = 1_048_576) -> Observation:
    """Probe `target` (a config target: kind http, tcp, prometheus or host) once."""
    kind = target.kind
    if kind == "http":
        return await probe_http(target, headers=headers, body_limit=body_limit)
    if kind == "tcp":
        return await probe_tcp(target)
    if kind == "prometheus":
        return await probe_prometheus(target, headers=headers, body_limit=body_limit)
    if kind == "host":
        return await probe_host(target)
    return Observation(target.name, time.time(), False, None, responded=False, error=f"unknown target kind {kind!r}")


def _body_matches(pattern: str, text: str) -> bool:
    """RE2, linear in the body: a pattern like `(a+)+$` cannot stall the event loop on a large
    response. The configuration check refuses what RE2 cannot run; here it just fails the check."""
    try:
        return compile_regex(pattern).search(text)
    except RegexError:
        return False


def _accepts(target: Any, status: int) -> bool:
    expected = getattr(target, "expect_status", None)
    return status in expected if expected else 200 <= status < 400


async def probe_http(target: Any, *, headers: Mapping[str, str] | None = None, body_limit: int = 1_048_576) -> Observation:
    at = time.time()
    start = time.perf_counter()
    body = target.body.encode("utf-8") if getattr(target, "body", None) else None
    try:
        response = await fetch(
            str(target.url),
            method=getattr(target, "method", "GET") or "GET",
            headers=dict(headers if headers is not None else getattr(target, "headers", None) or {}),
            body=body,
            max_body=body_limit,
            follow_redirects=getattr(target, "follow_redirects", True),
            verify_tls=getattr(target, "verify_tls", True),
        )
    except ProbeError as exc:
        return Observation(target.name, at, False, _ms(start), responded=False, error=_short(exc.reason))
    except (UnicodeError, ValueError) as exc:
        return Observation(target.name, at, False, _ms(start), responded=False, error=_short(f"bad request: {exc}"))
    latency = _ms(start)
    cert_days = None
    if response.cert_not_after is not None:
        cert_days = round((response.cert_not_after - time.time()) / 86400.0, 2)
    status = response.status_code
    error = None
    ok = _accepts(target, status)
    if not ok:
        expected = getattr(target, "expect_status", None)
        wanted = ", ".join(str(s) for s in expected) if expected else "2xx or 3xx"
        error = f"HTTP {status} (expected {wanted})"
    else:
        expect_body = getattr(target, "expect_body", None)
        expect_regex = getattr(target, "expect_body_regex", None)
        if expect_body or expect_regex:
            text = response.text()
            cut = f" in the first {len(response.body)} bytes" if response.truncated else ""
            if expect_body and expect_body not in text:
                ok, error = False, f"body mismatch: {expect_body!r} not found{cut}"
            elif expect_regex and not _body_matches(expect_regex, text):
                ok, error = False, f"body mismatch: no match for /{expect_regex}/{cut}"
    return Observation(
        target.name,
        at,
        ok,
        latency,
        responded=True,
        status_code=status,
        error=_short(error) if error else None,
        cert_days_left=cert_days,
    )


async def probe_tcp(target: Any) -> Observation:
    at = time.time()
    start = time.perf_counter()
    try:
        _, writer = await asyncio.open_connection(target.host, target.port)
    except OSError as exc:
        return Observation(target.name, at, False, _ms(start), responded=False, error=_short(_describe_os_error(exc)))
    latency = _ms(start)
    writer.close()
    return Observation(target.name, at, True, latency, responded=True)


async def probe_prometheus(target: Any, *, headers: Mapping[str, str] | None = None, body_limit: int = 1_048_576) -> Observation:
    at = time.time()
    start = time.perf_counter()
    request_headers = dict(headers if headers is not None else getattr(target, "headers", None) or {})
    request_headers.setdefault("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
    try:
        response = await fetch(str(target.url), headers=request_headers, max_body=max(body_limit, 8 * 1_048_576))
    except ProbeError as exc:
        return Observation(target.name, at, False, _ms(start), responded=False, error=_short(exc.reason))
    latency = _ms(start)
    if response.status_code != 200:
        return Observation(
            target.name,
            at,
            False,
            latency,
            status_code=response.status_code,
            error=f"HTTP {response.status_code} (expected 200)",
        )
    if response.truncated:
        return Observation(
            target.name,
            at,
            False,
            latency,
            status_code=200,
            error=f"metrics page larger than {len(response.body) // 1_048_576} MiB",
        )
    try:
        samples = parse_prometheus(response.text(), include=getattr(target, "include", None) or ())
    except ValueError as exc:
        return Observation(target.name, at, False, latency, status_code=200, error=_short(f"bad metrics page: {exc}"))
    error = None
    if len(samples) > MAX_SERIES_PER_SCRAPE:
        error = f"{len(samples)} series scraped; only the first {MAX_SERIES_PER_SCRAPE} are kept (narrow `include`)"
        samples = samples[:MAX_SERIES_PER_SCRAPE]
    return Observation(target.name, at, True, latency, status_code=200, error=error, series=samples)


_LABEL_RE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = {"n": "\n", "\\": "\\", '"': '"'}


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return re.sub(r"\\(.)", lambda m: _UNESCAPE.get(m.group(1), "\\" + m.group(1)), text)


def parse_prometheus(text: str, include: tuple[str, ...] | list[str] = ()) -> list[SeriesValue]:
    """Samples of a Prometheus text-format page. NaN and infinite values are skipped (they
    cannot be compared or stored meaningfully); `include` keeps only names matching a glob."""
    out: list[SeriesValue] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        brace = line.find("{")
        space = line.find(" ")
        if brace != -1 and (space == -1 or brace < space):
            name = line[:brace]
            end = _closing_brace(line, brace)
            if end == -1:
                raise ValueError(f"line {number}: unterminated label set")
            labels = _parse_labels(line[brace + 1 : end], number)
            rest = line[end + 1 :].split()
        else:
            fields_ = line.split()
            name, rest, labels = fields_[0], fields_[1:], ()
        if not name or not re.match(r"^[A-Za-z_:][A-Za-z0-9_:]*$", name):
            raise ValueError(f"line {number}: invalid metric name {name[:40]!r}")
        if not rest:
            raise ValueError(f"line {number}: {name} has no value")
        try:
            value = float(rest[0])
        except ValueError:
            raise ValueError(f"line {number}: {name} has a non-numeric value {rest[0][:20]!r}") from None
        if math.isnan(value) or math.isinf(value):
            continue
        if include and not any(fnmatch.fnmatchcase(name, pattern) for pattern in include):
            continue
        out.append(SeriesValue(name, labels, value))
    return out


def _closing_brace(line: str, start: int) -> int:
    quoted = False
    i = start + 1
    while i < len(line):
        ch = line[i]
        if quoted:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "}":
            return i
        i += 1
    return -1


def _parse_labels(text: str, number: int) -> tuple[tuple[str, str], ...]:
    labels: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _LABEL_RE.match(text, pos)
        if not m:
            raise ValueError(f"line {number}: malformed labels {text[:60]!r}")
        labels[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
    return tuple(sorted(labels.items()))


_host_primed = False


def _host_sample(disks: list[str]) -> list[SeriesValue]:
    import psutil  # imported on first use: only host targets need it

    global _host_primed
    if not _host_primed:
        psutil.cpu_percent(interval=None)  # the first reading is meaningless; later ones are since the last
        _host_primed = True
        time.sleep(0.1)
    out = [SeriesValue("cpu_percent", (), float(psutil.cpu_percent(interval=None)))]
    memory = psutil.virtual_memory()
    out.append(SeriesValue("memory_percent", (), float(memory.percent)))
    out.append(SeriesValue("memory_available_bytes", (), float(memory.available)))
    out.append(SeriesValue("swap_percent", (), float(psutil.swap_memory().percent)))
    for mount in disks:
        try:
            usage = psutil.disk_usage(mount)
        except OSError:
            continue
        out.append(SeriesValue("disk_percent", (("mount", mount),), float(usage.percent)))
    try:
        load1, load5, load15 = os.getloadavg()
        out += [SeriesValue("load1", (), load1), SeriesValue("load5", (), load5), SeriesValue("load15", (), load15)]
    except OSError:
        pass
    return out


async def probe_host(target: Any) -> Observation:
    at = time.time()
    start = time.perf_counter()
    disks = list(getattr(target, "disks", None) or ["/"])
    try:
        # In a thread: disk_usage on a stale network mount can block.
        series = await asyncio.to_thread(_host_sample, disks)
    except Exception as exc:  # psutil raises its own errors on odd platforms
        return Observation(target.name, at, False, _ms(start), responded=False, error=_short(f"host metrics: {exc}"))
    missing = [d for d in disks if not any(s.name == "disk_percent" and s.labels == (("mount", d),) for s in series)]
    error = f"disk not readable: {', '.join(missing)}" if missing else None
    return Observation(target.name, at, not missing, _ms(start), error=error, series=series)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)

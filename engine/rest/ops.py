"""Operations: `/healthz` for load balancers and `/metrics` for Prometheus.

Figures come from the database where they can (probes recorded in the last minute, open
incidents, the outbox), so they are right whichever engine process did the work; the
monitoring engine adds its in-memory figures (scheduling lag) as a metrics source.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from tortoise import Tortoise

from engine.incidents import queries
from engine.rest.common import Viewer, rest_state
from engine.storage.escalation_models import Notification
from engine.storage.monitor_models import ProbeResult

router = APIRouter(tags=["operations"])
log = logging.getLogger("pulseguard.api")


class _ProbeDone(Exception):
    """Rolls the PostgreSQL write probe back."""


async def write_probe() -> None:
    """A small real write: on SQLite a committed rewrite of the header's user_version (a full
    disk only shows when a write reaches the file), on PostgreSQL an UPDATE rolled back."""
    from tortoise.transactions import in_transaction

    conn: Any = Tortoise.get_connection("default")
    if getattr(conn, "filename", None):
        async with in_transaction() as tx:
            _, rows = await tx.execute_query("PRAGMA user_version")
            version = int(rows[0][0]) if rows else 0
            await tx.execute_script(f"PRAGMA user_version = {version}")
        return
    try:
        async with in_transaction() as tx:
            await tx.execute_query("UPDATE engine_lease SET renewed_at = renewed_at")
            raise _ProbeDone
    except _ProbeDone:
        pass


@router.get("/healthz", summary="Liveness, and whether the database can be read and written (no token needed)")
async def healthz(request: Request) -> JSONResponse:
    from engine.storage.diskfull import disk_full_message, sqlite_out_of_space

    state = rest_state(request)
    try:
        conn = Tortoise.get_connection("default")
        await asyncio.wait_for(conn.execute_query("SELECT 1"), 5.0)
        await asyncio.wait_for(write_probe(), 5.0)
        full = sqlite_out_of_space()
        if full is not None:
            return JSONResponse({"status": "unavailable", "database": full}, status_code=503)
    except TimeoutError:
        return JSONResponse({"status": "unavailable", "database": "no answer within 5 s (locked or unreachable)"}, status_code=503)
    except Exception as exc:  # report, never raise: this is what a load balancer polls
        reason = disk_full_message(exc) or f"{type(exc).__name__}: {exc}"[:300]
        return JSONResponse({"status": "unavailable", "database": reason}, status_code=503)
    # The engine's current role (leader or standby) where it has one, as /api/engine says it:
    # a load balancer routing writes to the leader reads it here.
    role = state.engine_role() if state.engine_role is not None else state.role
    body: dict[str, Any] = {"status": "draining" if state.draining.is_set() else "ok", "database": "ok", "role": role}
    return JSONResponse(body, status_code=503 if state.draining.is_set() else 200)


def _line(name: str, value: float, labels: dict[str, str] | None = None) -> str:
    if labels:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


async def metrics_text(request: Request) -> str:
    state = rest_state(request)
    now = datetime.now(UTC)
    out: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")

    probes = await ProbeResult.filter(at__gte=now - timedelta(seconds=60)).count()
    family("pulseguard_probes_per_second", "gauge", "Probes recorded per second over the last minute.")
    out.append(_line("pulseguard_probes_per_second", round(probes / 60.0, 3)))

    family("pulseguard_open_incidents", "gauge", "Open incidents by severity.")
    for severity, count in (await queries.incident_counts()).items():
        out.append(_line("pulseguard_open_incidents", count, {"severity": severity}))

    pending = await Notification.filter(state__in=["pending", "held"]).count()
    family("pulseguard_outbox_depth", "gauge", "Notifications waiting to be sent (pending or held for a digest).")
    out.append(_line("pulseguard_outbox_depth", pending))
    retrying = await Notification.filter(state="pending", attempts__gt=0).count()
    dead = await Notification.filter(state="dead").count()
    family("pulseguard_notifications_failing", "gauge", "Notifications by failure state: retrying after a failure, or given up (dead).")
    out.append(_line("pulseguard_notifications_failing", retrying, {"state": "retrying"}))
    out.append(_line("pulseguard_notifications_failing", dead, {"state": "dead"}))
    # From the outbox, which keeps every attempt (the timeline notes a failure once per reason).
    table = Notification._meta.db_table
    counted = await Tortoise.get_connection("default").execute_query_dict(
        f"""SELECT COALESCE(SUM(CASE WHEN "state" = 'delivered' THEN "attempts" - 1 ELSE "attempts" END), 0) AS n"""
        f' FROM "{table}" WHERE "attempts" > 0'
    )
    failures = int(counted[0]["n"] or 0)
    family("pulseguard_notification_failures_total", "counter", "Failed notification delivery attempts.")
    out.append(_line("pulseguard_notification_failures_total", failures))

    family("pulseguard_http_requests_total", "counter", "HTTP requests served by this process, by status code.")
    for (method, code), count in sorted(state.requests.items()):
        out.append(_line("pulseguard_http_requests_total", count, {"method": method, "code": str(code)}))
    family("pulseguard_auth_failures_total", "counter", "Requests refused for an unknown or revoked token.")
    out.append(_line("pulseguard_auth_failures_total", state.auth_failures))
    family("pulseguard_api_cached_reads_total", "counter", "Incident details and list pages answered from the cache before routing.")
    out.append(_line("pulseguard_api_cached_reads_total", state.fast_reads))
    family("pulseguard_api_fast_writes_total", "counter", "Comments, status updates and acknowledgements served before routing.")
    out.append(_line("pulseguard_api_fast_writes_total", state.fast_writes))

    for source in state.metrics_sources:
        try:
            lines = source()
            if inspect.isawaitable(lines):
                lines = await lines
            out.extend(lines)
        except Exception:  # one broken source must not hide the others
            log.exception("metrics source %r failed", source)
    return "\n".join(out) + "\n"


@router.get("/metrics", summary="Prometheus metrics (text format 0.0.4)", response_class=PlainTextResponse)
async def metrics(request: Request, _: Viewer) -> PlainTextResponse:
    return PlainTextResponse(await metrics_text(request), media_type="text/plain; version=0.0.4; charset=utf-8")

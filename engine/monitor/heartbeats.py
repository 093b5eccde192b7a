"""Heartbeat (dead-man's switch) targets: jobs ping, the engine notices when they stop.

A ping is a row in `heartbeat_ping`, written by whichever process received it (the API's
`/api/heartbeats/TOKEN`, or `pulseguard heartbeat NAME`). The engine "probes" a heartbeat target
every `check_interval` seconds by reading its newest ping: a target silent for longer than
`interval + grace` fails its probe, and the built-in `missed_heartbeat` trigger rule (one per
heartbeat target, see `heartbeat_rules`) opens an incident at the first failed check and resolves
it at the first passing one, so the next ping resolves it. Until a target's first ping, the
silence is counted from stored facts, not from this process's start (a restart must neither
resolve an open missed-heartbeat incident nor give a job that never pings a fresh allowance):
from when the target was first watched (its `ok` series was registered), or earlier when an
open missed-heartbeat incident says the silence began before that.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from engine.core.durations import format_duration
from engine.monitor.probes import Observation
from engine.storage.monitor_models import HeartbeatPing

RULE = "missed_heartbeat"


def heartbeat_targets(targets: Iterable[Any]) -> list[Any]:
    return [t for t in targets if getattr(t, "kind", None) == "heartbeat" and getattr(t, "enabled", True)]


def target_for_token(targets: Iterable[Any], token: str) -> Any | None:
    """The heartbeat target whose `token_env` holds `token` (compared in constant time)."""
    found = None
    for target in heartbeat_targets(targets):
        secret = os.environ.get(target.token_env, "")
        if secret and hmac.compare_digest(secret.encode(), token.encode()):
            found = target
    return found


async def record_ping(name: str, source: str | None, at: datetime | None = None) -> datetime:
    """Store one ping of heartbeat target `name`; returns its time."""
    when = at or datetime.now(UTC)
    await HeartbeatPing.create(target=name, at=when, source=(source or "")[:64] or None)
    return when


async def last_ping(name: str) -> datetime | None:
    row = await HeartbeatPing.filter(target=name).order_by("-at").first().values_list("at", flat=True)
    return row if isinstance(row, datetime) else None


async def watched_since(name: str, allowed: float, now: float) -> float:
    """When the silence of a never-pinged target began, from what is stored."""
    from engine.core.domain import OPEN_STATUSES
    from engine.storage.models import Incident
    from engine.storage.monitor_models import MetricSeries

    since = now
    first = await MetricSeries.filter(target=name, key="ok").order_by("created_at").first().values_list("created_at", flat=True)
    if isinstance(first, datetime):
        since = min(since, first.timestamp())
    opened = (
        await Incident.filter(target=name, trigger=RULE, status__in=[s.value for s in OPEN_STATUSES])
        .order_by("created_at")
        .first()
        .values_list("created_at", flat=True)
    )
    if isinstance(opened, datetime):
        # it opened once the silence exceeded the allowance: the silence began at least that long before
        since = min(since, opened.timestamp() - allowed - 1.0)
    return since


async def probe_heartbeat(target: Any) -> Observation:
    """The target's check: passes while its newest ping is at most `interval + grace` old."""
    now = time.time()
    pinged = await last_ping(target.name)
    allowed = float(target.interval) + float(target.grace)
    if pinged is not None:
        silent = now - pinged.timestamp()
        if silent <= allowed:
            return Observation(target.name, now, True, None, responded=True)
        error = f"no ping for {format_duration(round(silent))} (expected every {format_duration(target.interval)}, grace {format_duration(target.grace)})"
        return Observation(target.name, now, False, None, responded=False, error=error[:300])
    silent = now - await watched_since(target.name, allowed, now)
    if silent <= allowed:
        return Observation(target.name, now, True, None, responded=True)
    error = f"never pinged in the {format_duration(round(silent))} since it was first watched (expected every {format_duration(target.interval)})"
    return Observation(target.name, now, False, None, responded=False, error=error[:300])


def heartbeat_rules(targets: Iterable[Any]) -> list[Any]:
    """The built-in trigger of each heartbeat target: a failed check opens an incident of the
    target's severity at once; the first passing check resolves it."""
    from engine.config.conditions import parse_condition
    from engine.monitor.triggers.rules import Rule

    rules = []
    for target in heartbeat_targets(targets):
        severity = getattr(target.severity, "value", target.severity)
        rules.append(
            Rule(
                name=RULE,
                condition=parse_condition("ok == 0"),
                duration=0.0,
                severity=str(severity),
                title=f"{target.name}: missed heartbeat (no ping within {format_duration(target.interval)} + {format_duration(target.grace)} grace)",
                description=(
                    f"The job behind heartbeat target {target.name} pings /api/heartbeats/TOKEN at least every "
                    f"{format_duration(target.interval)}; it has not. The next ping resolves this incident."
                ),
                targets=[target.name],
                recovery=0.0,
                auto_resolve=0.0,
                root_cause=f"The job behind heartbeat target {target.name} did not ping in time",
                solution="It pinged again: resolved automatically",
            )
        )
    return rules

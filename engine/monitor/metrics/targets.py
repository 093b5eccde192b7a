"""Targets' status: what `pulseguard targets` and the console show, kept in `monitor_target`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.monitor.metrics.series import utc
from engine.monitor.metrics.sql import STATE_COLUMNS
from engine.monitor.probes import Observation
from engine.storage.monitor_models import MonitorTarget

# What a restart rewrites: every state column but `active`, which operators clear to pause a target.
TARGET_STATE_FIELDS = ["kind", "address", "service", "interval", "timeout", *STATE_COLUMNS]


@dataclass
class TargetStatus:
    name: str
    kind: str
    address: str
    service: str | None
    interval: float
    timeout: float
    state: str = "unknown"
    last: Observation | None = None
    last_ok_at: float | None = None
    last_change_at: float | None = None
    cert_days_left: float | None = None
    paused: bool = False
    dirty: bool = True
    urgent: bool = True  # went up or down since its row was last written

    def update(self, obs: Observation) -> bool:
        """Apply an observation; True when the target changed between up and down."""
        new_state = "up" if obs.ok else "down"
        changed = new_state != self.state
        if changed:
            self.last_change_at = obs.at
            self.urgent = True
        self.state = new_state
        self.last = obs
        if obs.ok:
            self.last_ok_at = obs.at
        if obs.cert_days_left is not None:
            self.cert_days_left = obs.cert_days_left
        self.dirty = True
        return changed

    def state_values(self) -> tuple[Any, ...]:
        """Values of STATE_COLUMNS, then the name (for the UPDATE's WHERE)."""
        obs = self.last
        return (
            "paused" if self.paused else self.state,
            utc(obs.at) if obs else None,
            obs.ok if obs else None,
            obs.latency_ms if obs else None,
            obs.status_code if obs else None,
            (obs.error or None) if obs else None,
            utc(self.last_ok_at) if self.last_ok_at else None,
            utc(self.last_change_at) if self.last_change_at else None,
            self.cert_days_left,
            datetime.now(UTC),
            self.name,
        )

    def row(self) -> MonitorTarget:
        state = dict(zip(STATE_COLUMNS, self.state_values()[:-1], strict=True))
        return MonitorTarget(
            name=self.name,
            kind=self.kind,
            address=self.address[:500],
            service=self.service,
            interval=self.interval,
            timeout=self.timeout,
            **state,
        )


def target_address(target: Any) -> str:
    kind = target.kind
    if kind in ("http", "prometheus"):
        return str(target.url)
    if kind == "tcp":
        return f"{target.host}:{target.port}"
    if kind == "heartbeat":
        from engine.core.durations import format_duration

        return f"pinged every {format_duration(target.interval)} (+{format_duration(target.grace)} grace)"
    return "this host"


async def sync_targets(targets: Iterable[Any], *, keep_state: bool = False) -> dict[str, TargetStatus]:
    """Write the configured targets to `monitor_target` (keeping their last state and their
    `active` flag, which operators clear to pause a target) and mark the ones no longer
    configured `removed`. Returns the in-memory status of each target."""
    configured = [t for t in targets if getattr(t, "enabled", True)]
    existing = {r.name: r for r in await MonitorTarget.all()}
    statuses: dict[str, TargetStatus] = {}
    for t in configured:
        status = TargetStatus(t.name, t.kind, target_address(t), t.service, float(t.interval), float(t.timeout))
        old = existing.get(t.name)
        if old is not None and old.last_at is not None:
            # Keep the last known result visible; the state is unknown until the next probe.
            status.last = Observation(
                t.name,
                old.last_at.timestamp(),
                bool(old.last_ok),
                old.last_latency_ms,
                status_code=old.last_status_code,
                error=old.last_error,
            )
            status.state = "unknown"
            status.last_ok_at = old.last_ok_at.timestamp() if old.last_ok_at else None
            status.last_change_at = old.last_change_at.timestamp() if old.last_change_at else None
            status.cert_days_left = old.cert_days_left
        statuses[t.name] = status
    rows = [s.row() for s in statuses.values()]
    if rows:
        # keep_state (a cluster): other engines probe most targets; their state is theirs to write.
        fields = TARGET_STATE_FIELDS[:5] if keep_state else TARGET_STATE_FIELDS
        await MonitorTarget.bulk_create(rows, batch_size=500, on_conflict=["name"], update_fields=fields)
    gone = [name for name in existing if name not in statuses]
    if gone:
        await MonitorTarget.filter(name__in=gone).update(state="removed")
    for name, row in existing.items():
        if name in statuses and not row.active:
            statuses[name].paused = True
    return statuses


async def list_targets() -> list[dict[str, Any]]:
    """Every configured target with its state (up, down, unknown, paused) and last result."""
    rows = await MonitorTarget.exclude(state="removed").order_by("name").values()
    out = []
    for r in rows:
        out.append({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()})
    return out

"""A seeded, clock-frozen console for the console tests and snapshots.

Everything is created through the service layer (with fixed times), except the monitoring
engine's target rows and probe results, which are seeded as that engine would write them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.api.local import LocalEngine
from engine.incidents import services
from engine.storage.db import Database, close_database, open_database
from pulseguard_tui.app import PulseGuardApp
from pulseguard_tui.engine_host import monitor_queries
from pulseguard_tui.settings import ConsoleSettings

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def at(minutes_ago: float) -> datetime:
    return NOW - timedelta(minutes=minutes_ago)


INCIDENTS = [
    # title, severity, services, tags, assignee, minutes ago
    ("Checkout API returns 500s", "critical", ["checkout"], ["api"], "alice", 12),
    ("Payment provider timeouts", "high", ["payments"], ["external"], None, 35),
    ("Search latency above 2 s", "high", ["search"], ["db"], "bob", 90),
    ("Disk 85% on db-2", "medium", ["database"], ["db", "disk"], None, 180),
    ("Stale cache on product pages", "low", ["storefront"], [], "carol", 400),
    ("Login page slow for EU users", "medium", ["auth", "storefront"], ["cdn"], None, 50),
    ("Nightly export failed", "low", ["reports"], ["batch"], None, 1500),
]


async def seed(targets: bool = True, probes_until: datetime | None = None) -> None:
    """The fixed data set (database already open)."""
    for title, sev, svcs, tags, who, ago in INCIDENTS:
        await services.create_incident(
            title=title, severity=sev, actor="monitor", services=svcs, tags=tags, assignee=who, description=f"{title}.", at=at(ago)
        )
    await services.acknowledge("INC-1", "alice", at=at(10))
    await services.comment("INC-1", "Rolling back release 4.2", "alice", internal_only=True, at=at(9))
    await services.comment("INC-1", "Error rate dropping after rollback", "bob", at=at(6))
    await services.post_update("INC-1", "We are seeing checkout errors and are rolling back.", "alice", status="identified", at=at(8))
    await services.add_evidence(
        "INC-1", "link", "alice", url="https://grafana.example/d/checkout", description="error-rate dashboard", at=at(7)
    )
    await services.change_status("INC-3", "investigating", "bob", at=at(80))
    await services.create_incident(
        title="Certificate expiry warning", severity="low", actor="monitor", services=["storefront"], at=at(3000)
    )
    await services.resolve(
        "INC-8",
        "carol",
        root_cause="Renewal job disabled",
        solution="Re-enabled and renewed",
        category="configuration",
        verification_steps=["cert valid 90 days"],
        at=at(2900),
    )
    await services.create_maintenance(
        title="DB upgrade", starts_at=at(30), ends_at=at(-90), actor="carol", services=["database"], description="Postgres 16", at=NOW
    )
    if targets:
        await seed_targets(probes_until or NOW)


async def seed_targets(until: datetime = NOW) -> None:
    """Three targets; their probe results end at `until`. The metric queries read up to the
    real time, so tests that look at metrics pass the real time here (and as the clock)."""
    from engine.storage.monitor_models import MonitorTarget, ProbeResult

    rows = [
        (
            "checkout-api",
            "http",
            "http://127.0.0.1:8080/api/health",
            "checkout",
            "down",
            False,
            2400.0,
            500,
            "HTTP 500 (expected 2xx or 3xx)",
        ),
        ("storefront", "http", "http://127.0.0.1:8080/", "storefront", "up", True, 42.0, 200, None),
        ("db-port", "tcp", "db.internal:5432", "database", "up", True, 3.0, None, None),
    ]
    for name, kind, address, service, state, ok, latency, code, error in rows:
        await MonitorTarget.create(
            name=name,
            kind=kind,
            address=address,
            service=service,
            interval=15,
            timeout=5,
            state=state,
            last_at=at(0.5),
            last_ok=ok,
            last_latency_ms=latency,
            last_status_code=code,
            last_error=error,
            updated_at=at(0.5),
        )
        for i in range(40):
            minute = 39 - i
            value = latency * (0.5 + (i % 7) / 10) if name != "checkout-api" else (40 + i * i * 1.5)
            await ProbeResult.create(
                target=name, at=until - timedelta(minutes=minute), ok=ok or i < 30, latency_ms=value, status_code=code or 200
            )


def make_api(db: Database, actor: str = "alice", readonly: bool = False, db_label: str | None = None) -> LocalEngine:
    api = LocalEngine(actor, readonly=readonly, db_label=db_label or db.label, role="console")
    api.targets_provider = monitor_queries()
    return api


def make_app(
    db: Database,
    *,
    theme: str = "dark",
    readonly: bool = False,
    own_database: bool = False,
    follow_feed: bool = True,
    bell: bool = True,
    clock: Any = None,
    db_label: str | None = None,
    **settings: Any,
) -> PulseGuardApp:
    s = ConsoleSettings(
        theme=theme,
        readonly=readonly,
        bell=bell,
        remember_theme=False,
        users=["alice", "bob", "carol"],
        services=["checkout", "payments", "search"],
        **settings,
    )
    return PulseGuardApp(
        make_api(db, readonly=readonly, db_label=db_label),
        s,
        clock=clock or (lambda: NOW),
        database=db if own_database else None,
        follow_feed=follow_feed,
    )


def seed_file(db: Database) -> None:
    """Create and seed the database in its own event loop (for snapshot tests, whose app runs
    in another loop and opens the database itself)."""

    async def go() -> None:
        await open_database(db)
        try:
            await seed()
        finally:
            await close_database()

    asyncio.run(go())

"""Incidents with known timings for the analytics report and its console tab: February and March 2026."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.incidents import services
from engine.learning import postmortem

UTC = UTC


def t(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


# March 2026. Offsets are minutes after creation; `detect` is minutes *before* creation.
MARCH = [
    # name, created, severity, source, detect, ack, public_update, internal_update, resolve, category, fp, customer, team
    ("i1", t(3, 2, 10), "critical", "threshold", 2, 5, None, None, 60, "deployment", False, 4, 5),
    ("i2", t(3, 9, 12), "critical", "manual", 0, 10, 30, None, 120, "database", False, 2, None),
    ("i3", t(3, 3, 8), "high", "anomaly", 10, 2, 10, None, 30, "deployment", False, None, 3),
    ("i4", t(3, 16, 9), "high", "alert", 1, 4, None, None, None, None, False, None, None),
    ("i5", t(3, 20, 14), "medium", "threshold", 4, 6, None, 20, 90, "network", False, None, None),
    ("i6", t(3, 28), "low", "threshold", 5, 1, None, None, 15, "unknown", True, None, 1),
    ("i7", t(3, 30, 23), "low", "manual", 0, None, None, None, 240, "database", False, None, None),
    ("i8", t(3, 1), "medium", "manual", 0, 3, None, None, 20, "configuration", False, None, None),
]


FEBRUARY = [
    ("p1", t(2, 10, 10), "high", "manual", 0, None, None, None, 180, "capacity", False, None, None),
    ("p2", t(2, 20, 10), "critical", "manual", 0, None, None, None, 60, "network", False, None, None),
    ("p3", t(2, 21, 10), "medium", "manual", 0, None, None, None, 5, "unknown", True, None, None),
    ("p4", t(2, 28, 23, 59, 59), "low", "manual", 0, None, None, None, 10, "database", False, None, None),
]


async def make(spec: tuple) -> None:
    name, created, sev, source, detect, ack, public, internal, resolve, category, fp, customer, team = spec
    inc = await services.create_incident(
        title=f"incident {name}",
        severity=sev,
        actor="fixture",
        source=source,
        detected_at=created - timedelta(minutes=detect),
        at=created,
    )
    if ack is not None:
        await services.acknowledge(inc.key, "oncall", at=created + timedelta(minutes=ack))
    if public is not None:
        await services.post_update(inc.key, "we are looking into it", "oncall", public=True, at=created + timedelta(minutes=public))
    if internal is not None:
        await services.post_update(inc.key, "internal note", "oncall", public=False, at=created + timedelta(minutes=internal))
    if resolve is not None:
        await services.resolve(
            inc.key, "oncall", root_cause="because", solution="fixed", category=category, at=created + timedelta(minutes=resolve)
        )
    if fp:
        await services.mark_false_positive(inc.key, "oncall", at=created + timedelta(minutes=(resolve or 0) + 1))
    if customer is not None or team is not None:
        await postmortem.rate_satisfaction(inc.key, "oncall", customer=customer, team=team)

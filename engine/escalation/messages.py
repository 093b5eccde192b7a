"""What escalation writes to the outbox: the incident as a notification tells it, the payload
of each message, and the writer that wakes this process's engine loops when a row is due."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from engine.core.clock import utcnow
from engine.incidents.services import SYSTEM_ACTOR
from engine.notify import outbox
from engine.storage.models import Event, Incident

ACTOR = SYSTEM_ACTOR


class Wakers:
    """The engine loops running in this process (the deliverer, the timer loop), woken when a row
    is written to the outbox here so it goes out at once rather than at the next poll. The loops
    subscribe when they start and unsubscribe when they stop."""

    def __init__(self) -> None:
        self._fns: list[Callable[[], None]] = []

    def subscribe(self, fn: Callable[[], None]) -> None:
        if fn not in self._fns:
            self._fns.append(fn)

    def unsubscribe(self, fn: Callable[[], None]) -> None:
        if fn in self._fns:
            self._fns.remove(fn)

    def __call__(self) -> None:
        for fn in list(self._fns):
            fn()


local_loops = Wakers()


def iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def snapshot(incident: Incident) -> dict[str, Any]:
    """What a notification says about the incident (the internal view)."""
    return {
        "key": incident.key,
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "services": list(incident.services or []),
        "created_at": iso(incident.created_at),
        "acknowledged_at": iso(incident.acknowledged_at),
        "acknowledged_by": incident.acknowledged_by,
        "resolved_at": iso(incident.resolved_at),
        "resolved_by": incident.resolved_by,
        "assignee": incident.assignee,
        "description": incident.description or "",
    }


def message_payload(incident: Incident, kind: str, event: Event | None, **extra: Any) -> dict[str, Any]:
    """A message about `incident`: what changed (`kind`), who did it and when, and `extra`."""
    p = {
        "kind": kind,
        "incident": snapshot(incident),
        "actor": event.actor if event else ACTOR,
        "at": iso(event.at if event else utcnow()),
    }
    p.update({k: v for k, v in extra.items() if v is not None})
    return p


async def write_notifications(*args: Any, **kwargs: Any) -> int:
    """The outbox writer (engine.notify.outbox), waking this process's engine loops when a row
    is due at once."""
    kwargs["now"] = kwargs.get("now") or utcnow()
    return await outbox.write_notifications(*args, wake=local_loops, **kwargs)

"""The outbox: notification rows written in the transaction of the change that caused them.

A deliverer (engine.notify.deliverer) sends each row with retries; rows bound for a digest
channel are held until their digest timer fires.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from engine.core.clock import utcnow
from engine.storage.escalation_models import Notification, NotificationState, Timer
from engine.storage.models import Incident
from engine.storage.rows import insert_ignoring

DIGEST_CHANNELS = ("slack", "email")


def stream_key(incident_id: int | None, destination: str) -> str:
    """The delivery stream a row belongs to: rows of one stream go out in order."""
    return f"{incident_id if incident_id is not None else '-'}|{destination}"


async def write_notifications(
    conn: BaseDBAsyncClient,
    incident: Incident | None,
    destinations: Sequence[str],
    payload: dict[str, Any],
    key_prefix: str,
    *,
    audience: str = "internal",
    digest_minutes: float | None = None,
    now: datetime | None = None,
    wake: Callable[[], None] | None = None,
) -> int:
    """Outbox rows, one per destination; a row whose dedup key exists is not written twice.
    `wake` is called when a row is deliverable at once (held digest rows wait for their timer)."""
    now = now or utcnow()
    rows: list[dict[str, Any]] = []
    held: list[str] = []
    # One object for every row: it is encoded once (storage.rows.insert_ignoring).
    shared = {**payload, "audience": audience}
    for dest in dict.fromkeys(destinations):
        kind = dest.partition(":")[0]
        hold = digest_minutes is not None and kind in DIGEST_CHANNELS and audience == "internal"
        rows.append(
            {
                "dedup_key": f"{key_prefix}:{dest}"[:255],
                "stream": stream_key(incident.id if incident else None, dest),
                "incident_id": incident.id if incident else None,
                "destination": dest,
                "kind": str(payload.get("kind")),
                "audience": audience,
                "payload": shared,
                "state": NotificationState.HELD if hold else NotificationState.PENDING,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
        if hold:
            held.append(dest)
    # A row whose dedup key is stored already is not written twice.
    await insert_ignoring(conn, Notification, rows)
    await ensure_digest_timers(conn, held, float(digest_minutes or 30.0), now)
    if len(held) < len(rows) and wake is not None:
        wake()
    return len(rows)


async def ensure_digest_timers(conn: BaseDBAsyncClient, destinations: Sequence[str], minutes: float, now: datetime) -> None:
    """One digest per destination per interval, due at the end of the interval `now` falls in;
    the timers of all `destinations` in one statement (an acknowledgement holds rows for several)."""
    seconds = max(1.0, minutes * 60)
    bucket = math.floor(now.timestamp() / seconds)
    due = datetime.fromtimestamp((bucket + 1) * seconds, UTC)
    timers = [
        {
            "key": f"digest:{dest}:{int(seconds)}:{bucket}"[:255],
            "kind": "digest",
            "due_at": due,
            "data": {"destination": dest},
            "created_at": now,
        }
        for dest in dict.fromkeys(destinations)
    ]
    await insert_ignoring(conn, Timer, timers)

"""The outbox deliverer: sends pending notifications, retries, and records every outcome.

- Only the oldest pending row of a stream (one incident, one destination) is sent, so a
  "resolved" never overtakes its "triggered".
- A retryable failure (network, timeout, HTTP 408/425/429/5xx) is retried with exponential
  backoff and jitter (honouring Retry-After); a permanent refusal (other 4xx, SMTP 5xx) is not
  retried and the row is marked dead with the reason; so is a row older than `max_age`.
- Each row carries a dedup key that the channels pass on (X-PulseGuard-Delivery, PagerDuty's
  dedup_key, the e-mail Message-ID), so a receiver that honours it shows a retry once.
- Claims are leases (`claimed_until`), so several engines on one PostgreSQL share the work and a
  crashed one's rows are picked up again; no transaction is held while a message is in flight.
- Failures are written to the incident's timeline; sending runs in its own tasks with timeouts,
  so a slow or dead receiver never blocks the engine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from tortoise.expressions import Q
from tortoise.functions import Min
from tortoise.transactions import in_transaction

from engine.escalation.models import Notification, NotificationState
from engine.models import Incident
from engine.notify.base import Outcome
from engine.notify.channels import Dispatcher, describe

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class RetryPolicy:
    base: float = 2.0  # seconds before the first retry
    cap: float = 600.0  # longest wait between attempts
    max_age: float = 86400.0  # give up on a message this old (seconds)
    jitter: float = 0.5  # the wait is drawn from [(1 - jitter) * d, d]

    def delay(self, attempts: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait after the `attempts`-th failed attempt."""
        d = min(self.cap, self.base * (2 ** max(0, attempts - 1)))
        r = (rng or random).random()
        d = d * (1 - self.jitter) + d * self.jitter * r
        if retry_after is not None:
            d = max(d, min(retry_after, self.cap))
        return d


def _seconds(d: float) -> str:
    if d < 10:
        return f"{d:.1f} s"
    if d < 120:
        return f"{d:.0f} s"
    return f"{d / 60:.0f} min"


class Deliverer:
    """Claims due outbox rows and sends them; `run()` loops until `stop()`."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        retry: RetryPolicy | None = None,
        concurrency: int = 16,
        batch: int = 100,
        poll_interval: float = 0.5,
        lease: float = 120.0,
        name: str | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency
        self.batch = batch
        self.poll_interval = poll_interval
        self.lease = lease
        self.name = (name or f"{socket.gethostname()}:{os.getpid()}")[:64]
        self._wake = asyncio.Event()
        self._stopping = False
        self._sem = asyncio.Semaphore(concurrency)
        self.delivered = 0
        self.failed = 0
        self.dead = 0

    def wake(self) -> None:
        """Look for work now rather than at the next poll (safe from any task of this loop)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                worked = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database was briefly unavailable, say: try again shortly
                log.exception("notification delivery round failed")
                worked = 0
            if worked:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            except asyncio.TimeoutError:
                pass

    async def run_once(self, now: datetime | None = None) -> int:
        """Claim the heads of due streams and deliver them concurrently; returns how many were sent."""
        rows = await self._claim(now or utcnow())
        if not rows:
            return 0
        await asyncio.gather(*(self._deliver(row) for row in rows))
        return len(rows)

    async def _claim(self, now: datetime) -> list[Notification]:
        due = (
            await Notification.filter(state=NotificationState.PENDING, next_attempt_at__lte=now)
            .filter(Q(claimed_until=None) | Q(claimed_until__lt=now))
            .order_by("id")
            .limit(self.batch * 4)
            .values("id", "stream")
        )
        if not due:
            return []
        streams = list({r["stream"] for r in due})
        heads: dict[str, int] = {}
        for chunk in range(0, len(streams), 500):
            part = streams[chunk : chunk + 500]
            for r in (
                await Notification.filter(state=NotificationState.PENDING, stream__in=part)
                .annotate(head=Min("id"))
                .group_by("stream")
                .values("stream", "head")
            ):
                heads[r["stream"]] = r["head"]
        ids = [r["id"] for r in due if heads.get(r["stream"]) == r["id"]][: self.batch]
        if not ids:
            return []
        until = now + timedelta(seconds=self.lease)
        async with in_transaction() as conn:
            rows = (
                await Notification.filter(id__in=ids, state=NotificationState.PENDING)
                .filter(Q(claimed_until=None) | Q(claimed_until__lt=now))
                .select_for_update(skip_locked=True)
                .using_db(conn)
            )
            if rows:
                await Notification.filter(id__in=[r.id for r in rows]).using_db(conn).update(claimed_by=self.name, claimed_until=until)
        return sorted(rows, key=lambda r: r.id)

    async def _context(self, row: Notification) -> dict[str, Any]:
        """Results of earlier deliveries in the same stream (a Jira issue key for its resolve)."""
        merged: dict[str, Any] = {}
        for result in await Notification.filter(stream=row.stream, state=NotificationState.DELIVERED, id__lt=row.id).order_by("id").values_list("result", flat=True):
            merged.update(result or {})
        return merged

    async def _deliver(self, row: Notification) -> None:
        async with self._sem:
            attempt = row.attempts + 1
            try:
                context = await self._context(row) if row.destination == "jira" else {}
                outcome = await asyncio.wait_for(
                    self.dispatcher.send(row.destination, row.payload, dedup_key=row.dedup_key, context=context, attempt=attempt),
                    timeout=max(30.0, self.dispatcher.settings.timeout * 3),
                )
            except asyncio.CancelledError:
                raise
            except asyncio.TimeoutError:
                outcome = Outcome.failed("gave no answer in time")
            except Exception as exc:  # a bug in a channel must not lose the message
                log.exception("sending notification %s failed", row.id)
                outcome = Outcome.failed(f"{type(exc).__name__}: {exc}")
            await self._record(row, attempt, outcome)

    async def _record(self, row: Notification, attempt: int, outcome: Outcome) -> None:
        now = utcnow()
        where = describe(row.destination)
        event: tuple[str, str, dict[str, Any]] | None = None
        if outcome.ok:
            values: dict[str, Any] = {"state": NotificationState.DELIVERED, "delivered_at": now, "result": outcome.result or {}, "last_error": None}
            self.delivered += 1
            event = ("notified", f"notified {where}: {row.kind}" + (f" ({outcome.reason})" if outcome.reason and not outcome.reason.startswith("HTTP 2") else ""), {})
        else:
            age = (now - row.created_at).total_seconds()
            if outcome.permanent or age >= self.retry.max_age:
                why = outcome.reason if outcome.permanent else f"{outcome.reason}; gave up after {attempt} attempts over {_seconds(age)}"
                values = {"state": NotificationState.DEAD, "last_error": why}
                self.dead += 1
                event = ("notify_dead", f"notification to {where} abandoned: {why}", {})
            else:
                wait = self.retry.delay(attempt, outcome.retry_after)
                wait = min(wait, max(0.0, self.retry.max_age - age) + 0.01)
                values = {"state": NotificationState.PENDING, "next_attempt_at": now + timedelta(seconds=wait), "last_error": outcome.reason}
                self.failed += 1
                event = ("notify_failed", f"notification to {where} failed: {outcome.reason}, retrying in {_seconds(wait)}", {"retry_in": round(wait, 3)})
        values.update({"attempts": attempt, "claimed_by": None, "claimed_until": None})
        async with in_transaction() as conn:
            await Notification.filter(id=row.id, claimed_by=self.name).using_db(conn).update(**values)
            if row.incident_id is not None and event is not None:
                incident = await Incident.filter(id=row.incident_id).using_db(conn).first()
                if incident is not None:
                    from engine.escalation.planner import _event

                    kind, summary, data = event
                    data = {**data, "notification_id": row.id, "destination": row.destination, "attempt": attempt, "kind": row.kind}
                    await _event(conn, incident, kind, summary, data, now)
        if outcome.ok:
            self._wake.set()  # the stream's next message may be waiting for this one

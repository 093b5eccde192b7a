"""The outbox deliverer: sends pending notifications, retries, and records every outcome.

- Only the oldest pending row of a stream (one incident, one destination) is sent, so a
  "resolved" never overtakes its "triggered".
- A retryable failure (network, timeout, HTTP 408/425/429/5xx) is retried with exponential
  backoff and jitter (honouring Retry-After); a permanent refusal (other 4xx, SMTP 5xx) is not
  retried and the row is marked dead with the reason; so is a row older than `max_age`.
- Each row carries a dedup key that the channels pass on (X-PulseGuard-Delivery, PagerDuty's
  dedup_key, the e-mail Message-ID), so a receiver that honours it shows a retry once.
- Claims are short leases (`claimed_until`, 15 s) that the live deliverer renews every few seconds
  while it holds a row, so several engines on one PostgreSQL share the work, a long send is never
  taken over, and a crashed engine's rows go out again (same dedup key) within seconds; no
  transaction is held while a message is in flight.
- At most `per_destination` messages to one destination are in flight, and due rows are claimed
  critical incidents first, then by due time: a hanging receiver holds a few slots of its own and
  never delays a page to another destination.
- Failures are written to the incident's timeline; sending runs in its own tasks with timeouts,
  so a slow or dead receiver never blocks the engine.
- Under the engine lease (`fence`), a row is claimed only while this process leads: the lease
  row is checked in the claim's transaction, and once more (by this process's clock) just before
  the message goes out, so an engine frozen past its lease and resumed sends nothing the new
  leader sends. Outcomes of messages that did go out are still recorded (fenced by the row's
  own claim), so nothing is sent again for want of a record.
- Recording locks the incidents' rows (as the timeline entries' foreign key does) before the
  timeline's feed lock, the order the service layer and the timer claimer use: on PostgreSQL
  the other order deadlocks with an escalation step firing for the same incident, and a
  recorder chosen as the victim left a sent message pending, to go out again.
- A row for a channel this process has no configuration for (queued by a process with another
  configuration) is never claimed, so never dead: it stays pending, and once it has waited
  `waiting_grace` unclaimed its `last_error` and the incident's timeline say why.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from tortoise.expressions import Q, Subquery
from tortoise.functions import Min
from tortoise.transactions import in_transaction

from engine.core.clock import utcnow
from engine.incidents import services
from engine.notify.base import Outcome
from engine.notify.channels import ChannelSettings, Dispatcher, describe
from engine.storage.escalation_models import Notification, NotificationState
from engine.storage.models import Incident

log = logging.getLogger(__name__)


@dataclass
class RetryPolicy:
    base: float = 2.0  # seconds before the first retry
    cap: float = 600.0  # longest wait between attempts
    max_age: float = 86400.0  # give up on a message this old (seconds)
    jitter: float = 0.5  # the wait is drawn from [(1 - jitter) * d, d]

    def delay(self, attempts: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait after the `attempts`-th failed attempt."""
        d: float = min(self.cap, self.base * (2 ** max(0, attempts - 1)))
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
        lease: float = 15.0,
        renew: float | None = None,
        per_destination: int = 4,
        name: str | None = None,
        waiting_grace: float = 5.0,
        waiting_every: float = 5.0,
        fence: Any = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.fence = fence  # engine.runtime.lease.LeaseFence, or None: claim without a lease
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency
        self.batch = batch
        self.poll_interval = poll_interval
        self.lease = lease
        self.renew = renew if renew is not None else lease / 3
        self.per_destination = max(1, per_destination)
        self._held: dict[int, str] = {}  # claimed rows not yet recorded: id -> destination
        self.name = (name or f"{socket.gethostname()}:{os.getpid()}")[:64]
        self._wake = asyncio.Event()
        self._stopping = False
        self._grace = 10.0
        self._sem = asyncio.Semaphore(concurrency)
        self.delivered = 0
        self.failed = 0
        self.dead = 0
        self.waiting_grace = waiting_grace  # a due row unclaimed this long: no engine can send it
        self.waiting_every = waiting_every
        self._waiting_checked = 0.0
        self._warned: set[str] = set()
        self._unservable = unservable_filter(dispatcher.settings)

    def wake(self) -> None:
        """Look for work now rather than at the next poll (safe from any task of this loop)."""
        self._wake.set()

    def stop(self, grace: float = 10.0) -> None:
        """End `run()`: messages in flight get `grace` seconds to be answered; the rest stay
        pending, their claims given back so the next engine sends them at once."""
        self._grace = grace
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Claim, send and record as a pipeline: a slow receiver holds one slot, never the loop.

        Up to `concurrency` messages are in flight; outcomes are written by one recorder task
        in batches (one transaction for all outcomes that are ready), which keeps the database
        lock short when many messages go out at once.
        """
        self._outcomes: asyncio.Queue[tuple[Notification, int, Outcome]] = asyncio.Queue()
        recorder = asyncio.create_task(self._recorder(), name="pulseguard-deliverer-recorder")
        heartbeat = asyncio.create_task(self._heartbeat(), name="pulseguard-deliverer-heartbeat")
        in_flight: dict[asyncio.Task[None], int] = {}  # sending task -> notification id
        try:
            while not self._stopping:
                free = self.concurrency - len(in_flight)
                rows: list[Notification] = []
                if free > 0:
                    try:
                        rows = await self._claim(utcnow(), limit=min(free, self.batch), busy=self._busy())
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # the database was briefly unavailable, say: try again shortly
                        log.exception("claiming notifications failed")
                if time.monotonic() - self._waiting_checked >= self.waiting_every and self._leading():
                    self._waiting_checked = time.monotonic()
                    try:
                        await self.mark_waiting(utcnow())
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("noting notifications this engine cannot send failed")
                for row in rows:
                    task = asyncio.create_task(self._send(row), name=f"pulseguard-notify-{row.id}")
                    in_flight[task] = row.id
                    task.add_done_callback(lambda t: in_flight.pop(t, None))
                if rows and len(in_flight) < self.concurrency:
                    continue
                self._wake.clear()
                waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._wake.wait())}
                try:
                    await asyncio.wait(waiters, timeout=self.poll_interval)
                finally:
                    for w in waiters:
                        w.cancel()
        finally:
            unanswered: list[int] = []
            if in_flight:
                sending = dict(in_flight)
                _, late = await asyncio.wait(sending, timeout=self._grace)
                for t in late:
                    t.cancel()
                    unanswered.append(sending[t])
                await asyncio.gather(*late, return_exceptions=True)
            await self._outcomes.join()
            recorder.cancel()
            heartbeat.cancel()
            await asyncio.gather(recorder, heartbeat, return_exceptions=True)
            for row_id in unanswered:
                self._held.pop(row_id, None)
            if unanswered:
                await self._release(unanswered)

    def _leading(self) -> bool:
        return self.fence is None or self.fence.held

    async def _release(self, ids: list[int]) -> None:
        """Give back the claims of messages whose send was cut short by stopping: still
        pending, they go out from the next engine without waiting for the claim to expire
        (a receiver that got one anyway sees the same delivery id again)."""
        try:
            await Notification.filter(id__in=ids, claimed_by=self.name, state=NotificationState.PENDING).update(
                claimed_by=None, claimed_until=None
            )
        except Exception:  # the claims then expire by themselves
            log.exception("giving back %d notification claims failed", len(ids))

    async def run_once(self, now: datetime | None = None) -> int:
        """One synchronous round (claim, send, record); returns how many were sent."""
        rows = await self._claim(now or utcnow(), limit=self.batch)
        await self.mark_waiting(now or utcnow())
        if not rows:
            return 0
        results = await asyncio.gather(*(self._attempt(row) for row in rows))
        try:
            await self._record_many([(row, row.attempts + 1, out) for row, out in zip(rows, results)])
        finally:
            for row in rows:
                self._held.pop(row.id, None)
        return len(rows)

    async def mark_waiting(self, now: datetime) -> int:
        """Note why due rows for channels this process lacks stay pending: in `last_error` (for
        `pulseguard notifications`) and once per stream on the incident's timeline (the console).
        Only rows nobody claimed for `waiting_grace`: an engine that has the channel would have."""
        rows = (
            await Notification.filter(state=NotificationState.PENDING, next_attempt_at__lte=now - timedelta(seconds=self.waiting_grace))
            .filter(Q(claimed_until=None) | Q(claimed_until__lt=now))
            .filter(self._unservable)
            .order_by("id")
            .limit(500)
            .values("id", "incident_id", "destination", "stream", "last_error")
        )
        reasons = {r["destination"]: self._waiting_reason(r["destination"]) for r in rows}
        noted = {r["stream"] for r in rows if r["last_error"] == reasons[r["destination"]]}
        changed = [r for r in rows if r["last_error"] != reasons[r["destination"]]]
        if not changed:
            return 0
        for destination in {r["destination"] for r in changed} - self._warned:
            self._warned.add(destination)
            log.warning("notifications to %s stay pending (%s)", destination, reasons[destination])
        async with in_transaction() as conn:
            await _lock_incidents(conn, [r["incident_id"] for r in changed if r["incident_id"]])
            incidents = {
                i.id: i for i in await Incident.filter(id__in=[r["incident_id"] for r in changed if r["incident_id"]]).using_db(conn)
            }
            for destination in {r["destination"] for r in changed}:
                ids = [r["id"] for r in changed if r["destination"] == destination]
                await (
                    Notification.filter(id__in=ids, state=NotificationState.PENDING).using_db(conn).update(last_error=reasons[destination])
                )
            for r in changed:
                incident = incidents.get(r["incident_id"])
                if incident is None or r["stream"] in noted:
                    continue
                noted.add(r["stream"])
                why = reasons[r["destination"]]
                await services.append_system_event(
                    conn,
                    incident,
                    "notify_waiting",
                    f"notification to {describe(r['destination'])} {why}; it stays pending until an engine with that channel runs",
                    {"notification_id": r["id"], "destination": r["destination"]},
                    now,
                )
        return len(changed)

    def _waiting_reason(self, destination: str) -> str:
        why = self.dispatcher.settings.unavailable(destination) or f"unknown destination {destination!r}"
        return f"waiting: {why} in engine {self.name}"

    def _busy(self) -> dict[str, int]:
        """Messages this deliverer holds per destination (in flight or awaiting their record)."""
        busy: dict[str, int] = {}
        for destination in self._held.values():
            busy[destination] = busy.get(destination, 0) + 1
        return busy

    async def _heartbeat(self) -> None:
        """Renew the claims this deliverer holds, so only a dead holder's rows are taken over."""
        while True:
            await asyncio.sleep(self.renew)
            ids = list(self._held)
            if not ids:
                continue
            try:
                until = utcnow() + timedelta(seconds=self.lease)
                for chunk in range(0, len(ids), 500):
                    await Notification.filter(
                        id__in=ids[chunk : chunk + 500], claimed_by=self.name, state=NotificationState.PENDING
                    ).update(claimed_until=until)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database was briefly unavailable: the next beat tries again
                log.exception("renewing notification claims failed")

    async def _claim(self, now: datetime, limit: int, busy: dict[str, int] | None = None) -> list[Notification]:
        """Claim up to `limit` stream heads: critical incidents first, then by due time, with at
        most `per_destination` held per destination when `busy` (what is held now) is given."""
        if not self._leading():
            return []
        capped = busy is not None
        busy = dict(busy or {})
        full = [d for d, n in busy.items() if n >= self.per_destination]

        def due_rows() -> Any:
            q = (
                Notification.filter(state=NotificationState.PENDING, next_attempt_at__lte=now)
                .exclude(self._unservable)
                .filter(Q(claimed_until=None) | Q(claimed_until__lt=now))
            )
            return q.exclude(destination__in=full) if full else q

        width = max(limit, 1) * 4
        fields = ("id", "stream", "destination", "incident_id", "next_attempt_at")
        critical = (
            await due_rows()
            .filter(incident_id__in=Subquery(Incident.filter(severity="critical").values("id")))
            .order_by("next_attempt_at", "id")
            .limit(width)
            .values(*fields)
        )
        rest = await due_rows().order_by("next_attempt_at", "id").limit(width).values(*fields)
        due = list({r["id"]: r for r in [*critical, *rest]}.values())
        if not due:
            return []
        severity = dict(
            await Incident.filter(id__in=list({r["incident_id"] for r in due if r["incident_id"] is not None})).values_list(
                "id", "severity"
            )
        )
        rank = {s: i for i, s in enumerate(("critical", "high", "medium", "low"))}
        due.sort(key=lambda r: (rank.get(severity.get(r["incident_id"], "high"), 1), r["next_attempt_at"], r["id"]))
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
        ids: list[int] = []
        for r in due:
            if heads.get(r["stream"]) != r["id"]:
                continue
            if capped and busy.get(r["destination"], 0) >= self.per_destination:
                continue
            busy[r["destination"]] = busy.get(r["destination"], 0) + 1
            ids.append(r["id"])
            if len(ids) >= limit:
                break
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
            if rows and self.fence is not None and not await self.fence.check(conn):
                log.warning("not claiming %d notification(s): this process no longer holds the engine lease", len(rows))
                rows = []
            if rows:
                await Notification.filter(id__in=[r.id for r in rows]).using_db(conn).update(claimed_by=self.name, claimed_until=until)
        for row in rows:
            self._held[row.id] = row.destination
        order = {i: n for n, i in enumerate(ids)}
        return sorted(rows, key=lambda r: order[r.id])

    async def _context(self, row: Notification) -> dict[str, Any]:
        """Results of earlier deliveries in the same stream (a Jira issue key for its resolve)."""
        merged: dict[str, Any] = {}
        for result in (
            await Notification.filter(stream=row.stream, state=NotificationState.DELIVERED, id__lt=row.id)
            .order_by("id")
            .values_list("result", flat=True)
        ):
            merged.update(result or {})
        return merged

    async def _attempt(self, row: Notification) -> Outcome:
        attempt = row.attempts + 1
        try:
            context = await self._context(row) if row.destination == "jira" else {}
            return await asyncio.wait_for(
                self.dispatcher.send(row.destination, row.payload, dedup_key=row.dedup_key, context=context, attempt=attempt),
                timeout=max(30.0, self.dispatcher.settings.timeout * 3),
            )
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            return Outcome.failed("gave no answer in time")
        except Exception as exc:  # a bug in a channel must not lose the message
            log.exception("sending notification %s failed", row.id)
            return Outcome.failed(f"{type(exc).__name__}: {exc}")

    async def _send(self, row: Notification) -> None:
        if not self._leading():
            # Claimed while leading, but the lease is gone now (the process was frozen, say):
            # the new leader sends it, once the claim is given back.
            self._held.pop(row.id, None)
            await self._release([row.id])
            return
        outcome = await self._attempt(row)
        await self._outcomes.put((row, row.attempts + 1, outcome))

    async def _recorder(self) -> None:
        while True:
            item = await self._outcomes.get()
            batch = [item]
            while not self._outcomes.empty() and len(batch) < 200:
                batch.append(self._outcomes.get_nowait())
            try:
                for attempt in range(3):
                    counts = (self.delivered, self.failed, self.dead)
                    try:
                        await self._record_many(batch)
                        break
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        self.delivered, self.failed, self.dead = counts  # counted again by the next try
                        # These messages went out: a lost record would send them again. The
                        # claims are still renewed meanwhile.
                        if attempt == 2:
                            raise
                        log.warning("recording %d notification outcomes failed; trying again", len(batch), exc_info=True)
                        await asyncio.sleep(0.2 * (attempt + 1))
            except asyncio.CancelledError:
                raise
            except Exception:
                # Unrecorded rows keep their claim until the lease runs out, then go out again.
                log.exception("recording %d notification outcomes failed", len(batch))
            finally:
                for row, _, _ in batch:
                    self._held.pop(row.id, None)  # recorded, or left to its lease: no more renewals
                    self._outcomes.task_done()

    def _verdict(
        self, row: Notification, attempt: int, outcome: Outcome, now: datetime
    ) -> tuple[dict[str, Any], tuple[str, str, dict[str, Any]]]:
        where = describe(row.destination)
        if outcome.ok:
            values: dict[str, Any] = {
                "state": NotificationState.DELIVERED,
                "delivered_at": now,
                "result": outcome.result or {},
                "last_error": None,
            }
            self.delivered += 1
            note = f" ({outcome.reason})" if outcome.reason and not outcome.reason.startswith("HTTP 2") else ""
            event: tuple[str, str, dict[str, Any]] = ("notified", f"notified {where}: {row.kind}{note}", {})
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
                values = {
                    "state": NotificationState.PENDING,
                    "next_attempt_at": now + timedelta(seconds=wait),
                    "last_error": outcome.reason,
                }
                self.failed += 1
                event = (
                    "notify_failed",
                    f"notification to {where} failed: {outcome.reason}, retrying in {_seconds(wait)}",
                    {"retry_in": round(wait, 3)},
                )
        values.update({"attempts": attempt, "claimed_by": None, "claimed_until": None})
        return values, event

    def _link_jira(self) -> bool:
        jira = self.dispatcher.settings.jira
        return jira is not None and jira.link

    async def _record_many(self, batch: list[tuple[Notification, int, Outcome]]) -> None:
        """Write outcomes and their timeline entries in one transaction."""
        now = utcnow()
        verdicts = [(row, attempt, outcome, *self._verdict(row, attempt, outcome, now)) for row, attempt, outcome in batch]
        incident_ids = {row.incident_id for row, *_ in verdicts if row.incident_id is not None}
        async with in_transaction() as conn:
            await _lock_incidents(conn, incident_ids)
            incidents = {i.id: i for i in await Incident.filter(id__in=list(incident_ids)).using_db(conn)} if incident_ids else {}
            updated: set[int] = set()
            for row, _attempt, _outcome, values, _event in verdicts:
                if await Notification.filter(id=row.id, claimed_by=self.name).using_db(conn).update(**values):
                    updated.add(row.id)
            # Incident rows before timeline entries: the service layer locks in that order too
            # (the incident, then the feed's lock), so the two can never deadlock on PostgreSQL.
            if self._link_jira():
                for row, _attempt, outcome, _values, _event in verdicts:
                    incident = incidents.get(row.incident_id) if row.incident_id is not None else None
                    if row.id in updated and incident is not None and outcome.ok and outcome.result.get("jira_issue"):
                        refs = dict(incident.external_refs or {})
                        if refs.get("jira") != outcome.result["jira_issue"]:
                            refs["jira"] = outcome.result["jira_issue"]
                            incident.external_refs = refs
                            await Incident.filter(id=incident.id).using_db(conn).update(external_refs=refs)
            for row, attempt, _outcome, _values, event in verdicts:
                incident = incidents.get(row.incident_id) if row.incident_id is not None else None
                if row.id in updated and incident is not None:
                    kind, summary, data = event
                    data = {**data, "notification_id": row.id, "destination": row.destination, "attempt": attempt, "kind": row.kind}
                    await services.append_system_event(conn, incident, kind, summary, data, now)
        if any(outcome.ok for _, _, outcome, *_ in verdicts):
            self._wake.set()  # the streams' next messages may be waiting for these


async def _lock_incidents(conn: Any, incident_ids: Any) -> None:
    """On PostgreSQL, take now, in id order, the lock on these incidents' rows that a timeline
    entry's foreign key takes when it is inserted, so it is taken before the feed lock, never
    after it (see the module's docstring)."""
    ids = sorted({int(i) for i in incident_ids if i is not None})
    if ids and conn.capabilities.dialect == "postgres":
        await conn.execute_query('SELECT "id" FROM "incident" WHERE "id" = ANY($1) ORDER BY "id" FOR KEY SHARE', [ids])


def unservable_filter(settings: ChannelSettings) -> Q:
    """Outbox rows for channels a process with these settings cannot send to (at the least, a
    webhook it has no entry for)."""
    parts = [
        Q(destination=kind) | Q(destination__startswith=f"{kind}:")
        for kind in ("slack", "email", "pagerduty", "jira")
        if settings.unavailable(kind)
    ]
    webhooks = Q(destination__startswith="webhook:")
    if settings.webhooks:
        webhooks &= ~Q(destination__in=[f"webhook:{name}" for name in settings.webhooks])
    parts.append(webhooks)
    return Q(*parts, join_type="OR")


async def pending_unservable(settings: ChannelSettings) -> dict[str, int]:
    """Pending rows per destination that a process with these settings cannot send."""
    counts: dict[str, int] = {}
    # Tortoise types a flat values_list as tuples
    for destination in cast(
        "list[str]",
        await Notification.filter(state=NotificationState.PENDING)
        .filter(unservable_filter(settings))
        .values_list("destination", flat=True),
    ):
        counts[destination] = counts.get(destination, 0) + 1
    return counts

"""The Deliverer: claims due outbox rows, sends them in their own tasks, and records the outcomes.

How it claims, retries and records is in the package's docstring (engine.notify.deliverer).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q

from engine.core.clock import utcnow
from engine.notify.base import Outcome
from engine.notify.channels import Dispatcher, describe
from engine.notify.deliverer.claims import claim_heads, release_claims, renew_claims, unservable_filter
from engine.notify.deliverer.policy import RetryPolicy, seconds
from engine.notify.deliverer.recording import note_waiting, record_outcomes
from engine.storage.escalation_models import Notification, NotificationState

log = logging.getLogger("engine.notify.deliverer")  # one logger for the package, as before the split


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
        # Destinations whose last delivery failed: when their failure was last logged, and how
        # many failures came since (logged once a minute at most, see _log_outcomes).
        self._failing: dict[str, list[float]] = {}
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
            try:
                if in_flight:
                    sending = dict(in_flight)
                    _, late = await asyncio.wait(sending, timeout=self._grace)
                    for t in late:
                        t.cancel()
                        unanswered.append(sending[t])
                    await asyncio.gather(*late, return_exceptions=True)
                await self._outcomes.join()  # the caller may cut this short: a recorder stuck on a lock
            finally:
                # Whatever cut it short: no claim is renewed from here on, and the unanswered are
                # given back, so another engine sends them (at worst once more, same delivery id).
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
            await release_claims(ids, self.name)
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
        await note_waiting(changed, reasons, noted, now)
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
            if not ids or not self._leading():  # a deliverer that lost the engine lease lets its claims lapse
                continue
            try:
                await renew_claims(ids, self.name, utcnow() + timedelta(seconds=self.lease))
            except asyncio.CancelledError:
                raise
            except Exception:  # the database was briefly unavailable: the next beat tries again
                log.exception("renewing notification claims failed")

    async def _claim(self, now: datetime, limit: int, busy: dict[str, int] | None = None) -> list[Notification]:
        """Claim stream heads (engine.notify.deliverer.claims) while this process leads, and hold them."""
        if not self._leading():
            return []
        rows = await claim_heads(
            now,
            limit,
            name=self.name,
            lease=self.lease,
            per_destination=self.per_destination,
            unservable=self._unservable,
            fence=self.fence,
            busy=busy,
            held=self._held.keys(),
        )
        for row in rows:
            self._held[row.id] = row.destination
        return rows

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

    def _log_outcomes(self, outcomes: list[tuple[Notification, Outcome, dict[str, Any]]]) -> None:
        """Failing deliveries in the engine's log, where the team running it looks: a
        destination's failures once a minute at most (with how many since), its recovery once,
        and every message given up on. The outbox keeps each attempt (see `_verdict`)."""
        now = time.monotonic()
        for row, outcome, values in outcomes:
            dest = row.destination
            if outcome.ok:
                if self._failing.pop(dest, None) is not None:
                    log.info("notifications to %s are delivered again", dest)
                continue
            if values["state"] == NotificationState.DEAD:
                log.error("notification %s to %s given up: %s", row.id, dest, values["last_error"])
                continue
            last = self._failing.setdefault(dest, [float("-inf"), 0.0])
            if now - last[0] < 60.0:
                last[1] += 1
                continue
            since = f" ({int(last[1])} more failures since the last report)" if last[1] else ""
            log.warning("notifications to %s are failing: %s; retrying with backoff%s", dest, outcome.reason, since)
            last[0], last[1] = now, 0.0

    def _verdict(
        self, row: Notification, attempt: int, outcome: Outcome, now: datetime
    ) -> tuple[dict[str, Any], tuple[str, str, dict[str, Any]] | None]:
        """The row's new values, and its timeline entry: None for a retry failing as the one
        before it did (the outbox keeps every attempt; on the timeline, a channel down for an
        hour would bury what people did under "failed, retrying" lines)."""
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
            if attempt > 1:
                note += f" at attempt {attempt}"
            event: tuple[str, str, dict[str, Any]] | None = ("notified", f"notified {where}: {row.kind}{note}", {})
        else:
            age = (now - row.created_at).total_seconds()
            if outcome.permanent or age >= self.retry.max_age:
                why = outcome.reason if outcome.permanent else f"{outcome.reason}; gave up after {attempt} attempts over {seconds(age)}"
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
                again = attempt > 1 and outcome.reason == row.last_error
                event = (
                    None
                    if again
                    else (
                        "notify_failed",
                        f"notification to {where} failed: {outcome.reason}, retrying in {seconds(wait)}",
                        {"retry_in": round(wait, 3)},
                    )
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
        await record_outcomes(verdicts, holder=self.name, link_jira=self._link_jira(), now=now)
        self._log_outcomes([(row, outcome, values) for row, _, outcome, values, _ in verdicts])
        if any(outcome.ok for _, _, outcome, *_ in verdicts):
            self._wake.set()  # the streams' next messages may be waiting for these

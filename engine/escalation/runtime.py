"""The engine loops of escalation and notification: the timer claimer and the deliverer.

`EscalationLoops(config, context=…)` is started by whatever process holds the engine lease
(the headless engine, or the first console): `await loops.start()` … `await loops.stop()`.
The loops do not subscribe the change hook: whoever starts the process does
(engine.escalation.wiring), with the same Context. Every timer and outbox row lives in the
database, so stopping (or killing) the loops loses nothing: the next start resumes every step
at its time, or at once when its time has passed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import F

from engine.core.halt import pause
from engine.escalation import timers
from engine.escalation.changes import catch_up_feed, has_events_after
from engine.escalation.context import OPEN, Context
from engine.escalation.messages import local_loops
from engine.incidents import services
from engine.notify.channels import ChannelSettings, Dispatcher, settings_from_config
from engine.notify.deliverer import Deliverer, RetryPolicy
from engine.oncall.notices import plan_shift_notices

log = logging.getLogger(__name__)


class EscalationLoops:
    """Timer claimer + outbox deliverer + housekeeping, as asyncio tasks."""

    name = "escalation"

    def __init__(
        self,
        config: Any,
        *,
        context: Context | None = None,
        settings: ChannelSettings | None = None,
        retry: RetryPolicy | None = None,
        timer_poll: float = 1.0,
        delivery_poll: float = 0.5,
        concurrency: int = 16,
        lease: float = 15.0,
        per_destination: int | None = None,
        jira_poll: float = 300.0,
        catch_up_every: float = 5.0,
        fence: Any = None,
    ) -> None:
        self.config = config
        # Shared with this process's change hook (schedules, PagerDuty's on-call); None: one of its own.
        self.context = context if context is not None else Context.build(config)
        # The engine lease's fence (engine.runtime.lease.LeaseFence): timers and outbox rows are
        # claimed only while this process leads. None: the caller runs the loops by itself.
        self.fence = fence
        self.settings = settings or settings_from_config(config)
        max_age = float(getattr(getattr(config, "notifications", None), "max_age", 86400.0))
        self.retry = retry or RetryPolicy(max_age=max_age)
        self.timer_poll = timer_poll
        self.delivery_poll = delivery_poll
        self.concurrency = concurrency
        self.lease = lease
        self.per_destination = per_destination or int(getattr(getattr(config, "notifications", None), "max_in_flight_per_destination", 4))
        self.jira_poll = jira_poll
        self.catch_up_every = catch_up_every
        self._feed_cursor = 0
        self.dispatcher: Dispatcher | None = None
        self.deliverer: Deliverer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._timer_wake = asyncio.Event()
        self._halt = asyncio.Event()
        self._stopping = False
        self.fired = 0
        self._wakers: tuple[Callable[[], None], ...] = ()

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.dispatcher = Dispatcher(self.settings)
        self.deliverer = Deliverer(
            self.dispatcher,
            retry=self.retry,
            concurrency=self.concurrency,
            poll_interval=self.delivery_poll,
            lease=self.lease,
            per_destination=self.per_destination,
            fence=self.fence,
        )
        self._wakers = (self.deliverer.wake, self._timer_wake.set)
        for fn in self._wakers:
            local_loops.subscribe(fn)
        self._stopping = False
        self._halt = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self.deliverer.run(), name="pulseguard-deliverer"),
            asyncio.create_task(self._timer_loop(), name="pulseguard-timers"),
            asyncio.create_task(self._every(60, self._housekeeping), name="pulseguard-escalation-housekeeping"),
            asyncio.create_task(self._every(self.catch_up_every, self._catch_up), name="pulseguard-escalation-catch-up"),
        ]
        if self.settings.jira is not None and self.settings.jira.sync_status:
            self._tasks.append(asyncio.create_task(self._every(self.jira_poll, self.sync_jira_statuses), name="pulseguard-jira-status"))
        if self._pagerduty_schedules():
            self._tasks.append(asyncio.create_task(self._every(300, self.refresh_pagerduty_oncall), name="pulseguard-pagerduty-oncall"))

    async def stop(self, timeout: float = 5.0, *, in_flight: float = 0.25) -> None:
        """Stop the loops: each ends its round at once; a message in flight gets `in_flight`
        seconds to be answered, then stays pending (its claim given back) for the next engine.
        Loops still running after `timeout` seconds are cancelled."""
        self._stopping = True
        self._halt.set()
        if self.deliverer is not None:
            self.deliverer.stop(in_flight)
        self._timer_wake.set()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for t in pending:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for fn in self._wakers:
            local_loops.unsubscribe(fn)
        self._wakers = ()
        if self.dispatcher is not None:
            await self.dispatcher.aclose()

    async def __aenter__(self) -> EscalationLoops:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # --- loops -------------------------------------------------------------------------------

    async def _timer_loop(self) -> None:
        while not self._stopping:
            fired = 0
            started = timers.utcnow()  # the timers' clock (a test may move it)
            try:
                nxt = None
                if self._leading():
                    fired = await timers.fire_due_timers(self.context, started, fence=self.fence)
                    self.fired += fired
                    nxt = await timers.next_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("escalation timers: round failed")
                nxt = None
            wait = self.timer_poll
            if nxt is not None:
                wait = min(wait, max(0.0, (nxt - datetime.now(UTC)).total_seconds()))
            if nxt is not None and nxt <= started and not fired:
                wait = self.timer_poll  # due, but not ours to fire now (fenced, or another engine's): poll, don't spin
            if wait <= 0:
                continue
            self._timer_wake.clear()
            try:
                await asyncio.wait_for(self._timer_wake.wait(), wait)
            except TimeoutError:
                pass

    def _leading(self) -> bool:
        """False once the lease is lost: the loops idle until the engine stops them."""
        return self.fence is None or self.fence.held

    async def _every(self, seconds: float, fn: Callable[[], Awaitable[Any]]) -> None:
        while not self._stopping:
            try:
                if self._leading():
                    await fn()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("escalation housekeeping %s failed", getattr(fn, "__name__", fn))
            if await pause(self._halt, seconds):
                return

    async def _catch_up(self) -> None:
        """Changes made by processes without the change hook (a CLI without the configuration)."""
        while True:
            self._feed_cursor, _ = await catch_up_feed(self.context, self._feed_cursor)
            if not await has_events_after(self._feed_cursor):
                return

    async def _housekeeping(self) -> None:
        await plan_shift_notices(self.context.schedules)
        await timers.sweep_held()

    # --- PagerDuty as a schedule source --------------------------------------------------------

    def _pagerduty_schedules(self) -> dict[str, str]:
        pd = getattr(self.config.integrations, "pagerduty", None)
        if pd is None or not pd.on_call_schedule:
            return {}
        return {s.name: s.pagerduty_schedule for s in self.config.schedules if s.pagerduty_schedule}

    async def refresh_pagerduty_oncall(self) -> None:
        """Ask PagerDuty who is on call for schedules that name it as their source."""
        from engine.notify.pagerduty import fetch_oncall

        ctx = self.context
        if self.dispatcher is None or not self.settings.pagerduty_api_token:
            return
        by_email = {u.email.lower(): u.id for u in self.config.users if u.email}
        by_pd = {u.pagerduty_user_id: u.id for u in self.config.users if getattr(u, "pagerduty_user_id", None)}
        for name, pd_id in self._pagerduty_schedules().items():
            outcome, people = await fetch_oncall(
                self.dispatcher.client, self.settings.pagerduty_api_token, pd_id, datetime.now(UTC), api_url=self.settings.pagerduty_api_url
            )
            if not outcome.ok:
                log.warning("PagerDuty on-call for %s: %s", name, outcome.reason)
                continue
            ids = [by_email.get(p["email"].lower()) or by_pd.get(p.get("id", "")) for p in people]
            ctx.pagerduty_oncall[name] = [i for i in ids if i]

    # --- Jira: follow the linked issue's status ------------------------------------------------

    async def sync_jira_statuses(self) -> int:
        """Record on the timeline when a linked Jira issue changes status; returns how many did."""
        from tortoise.transactions import in_transaction

        from engine.notify.jira import fetch_status
        from engine.storage.models import Incident

        jira = self.settings.jira
        if jira is None or self.dispatcher is None:
            return 0
        rows = await Incident.filter(status__in=sorted(OPEN)).values("id", "external_refs")
        changed = 0
        for row in rows:
            refs = row["external_refs"] or {}
            key = refs.get("jira")
            if not key:
                continue
            outcome, status = await fetch_status(self.dispatcher.client, jira, key)
            if not outcome.ok or status is None or status == refs.get("jira_status"):
                continue
            async with in_transaction() as conn:
                incident = await Incident.filter(id=row["id"]).select_for_update().using_db(conn).first()
                if incident is None:
                    continue
                new_refs = {**(incident.external_refs or {}), "jira_status": status}
                await Incident.filter(id=incident.id).using_db(conn).update(external_refs=new_refs, version=F("version") + 1)
                await services.append_system_event(
                    conn, incident, "jira_status", f"Jira {key} is now {status}", {"issue": key, "status": status}, datetime.now(UTC)
                )
            changed += 1
        return changed

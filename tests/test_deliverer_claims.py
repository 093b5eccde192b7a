"""Two engines' deliverers on one database: a claim races another engine's send and record.

A deliverer reads the due rows and the streams' heads, then claims its choice in a transaction
that checks each row again. These tests hold one deliverer ("engine-a") just before that
transaction, let the other ("engine-b") claim, send (to a real loopback receiver) and record
meanwhile, then let the first one go on: what it claims then must still be due and still its
stream's head.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from support.escalation import make_config, wire

from engine.core.clock import utcnow
from engine.incidents import services
from engine.notify.channels import Dispatcher, settings_from_config
from engine.notify.deliverer import Deliverer, RetryPolicy, claims
from engine.storage.escalation_models import Notification

HOOK = "webhook:ops"


class ClaimGate:
    """Holds the deliverer running in the task named `task` just before its claim's transaction
    (its due rows and stream heads are read by then) until `open()`; the other deliverers go on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, task: str) -> None:
        self.reached = asyncio.Event()
        self._go = asyncio.Event()
        real = claims.in_transaction

        @asynccontextmanager
        async def gated(*args: Any, **kw: Any) -> AsyncIterator[Any]:
            current = asyncio.current_task()
            if current is not None and current.get_name() == task and not self._go.is_set():
                self.reached.set()
                await self._go.wait()
            async with real(*args, **kw) as conn:
                yield conn

        monkeypatch.setattr(claims, "in_transaction", gated)

    async def wait(self) -> None:
        await asyncio.wait_for(self.reached.wait(), timeout=10)

    def open(self) -> None:
        self._go.set()


def deliverers(cfg: Any, **b: Any) -> tuple[Deliverer, Deliverer]:
    return (
        Deliverer(Dispatcher(settings_from_config(cfg)), name="engine-a"),
        Deliverer(Dispatcher(settings_from_config(cfg)), name="engine-b", **b),
    )


async def close(*ds: Deliverer) -> None:
    for d in ds:
        await d.dispatcher.aclose()


async def test_a_row_another_engine_failed_during_the_claim_waits_for_its_backoff(esc_db, receivers, monkeypatch):
    """Engine A reads the webhook row as due; before A's claim, engine B claims it, the webhook
    answers 503 and B records the failure with a minute's backoff. A's claim must then see the
    row is no longer due: it had claimed it (pending and unclaimed) and sent it again at once."""
    cfg = make_config(receivers, after=30)
    wire(cfg)
    inc = await services.create_incident(title="Database down", severity="critical", actor="probe")
    receivers.hook.fail(503, times=5)
    a, b = deliverers(cfg, retry=RetryPolicy(base=60.0, jitter=0.0))
    gate = ClaimGate(monkeypatch, "engine-a")
    try:
        claiming = asyncio.create_task(a.run_once(), name="engine-a")
        await gate.wait()
        assert await b.run_once() >= 1
        assert [r.status for r in receivers.hook.requests] == [503]
        gate.open()
        await claiming
    finally:
        await close(a, b)
    row = await Notification.get(incident_id=inc.id, destination=HOOK)
    assert [r.status for r in receivers.hook.arrived] == [503], "the webhook row was sent again during its backoff"
    assert row.attempts == 1 and row.state == "pending"
    assert row.next_attempt_at > utcnow() + timedelta(seconds=50)


async def test_a_later_row_of_a_stream_waits_for_its_head_on_another_engine(esc_db, receivers, monkeypatch):
    """The webhook stream holds 'triggered' then 'acknowledged'. While engine B sends the head,
    and while the head waits for its retry, engine A sends neither; A's stale choice (the head it
    read before B delivered it) claims nothing; the later row goes out after the head, once."""
    cfg = make_config(receivers, after=30)
    wire(cfg)
    inc = await services.create_incident(title="Database down", severity="critical", actor="probe")
    await services.acknowledge(inc.key, "alice")
    rows = await Notification.filter(incident_id=inc.id, destination=HOOK).order_by("id")
    assert [r.kind for r in rows] == ["triggered", "acknowledged"]
    first, second = (r.dedup_key for r in rows)
    a, b = deliverers(cfg, retry=RetryPolicy(base=60.0, jitter=0.0))

    def sent() -> list[tuple[str, int]]:
        return [(r.headers["x-pulseguard-delivery"], r.status) for r in receivers.hook.requests]

    try:
        # B's send of the head is in flight (slow, then refused): A sends nothing of this stream.
        receivers.hook.delay = 0.5
        receivers.hook.fail(503, times=1)
        sending = asyncio.create_task(b.run_once(), name="engine-b")
        while not receivers.hook.arrived:
            await asyncio.sleep(0.02)
        await a.run_once()
        await sending
        receivers.hook.delay = 0.0
        assert sent() == [(first, 503)]
        # The head waits for its retry: A still sends neither row.
        await a.run_once()
        assert sent() == [(first, 503)]
        # Its retry is due: A reads it as the head, and is held before claiming it; B sends the
        # head, then (the head now delivered) the later row. A's claim then takes nothing.
        await Notification.filter(dedup_key=first).update(next_attempt_at=utcnow())
        gate = ClaimGate(monkeypatch, "engine-a")
        claiming = asyncio.create_task(a.run_once(), name="engine-a")
        await gate.wait()
        await b.run_once()
        await b.run_once()
        gate.open()
        await claiming
    finally:
        await close(a, b)
    assert sent() == [(first, 503), (first, 200), (second, 200)]
    assert await Notification.filter(incident_id=inc.id, destination=HOOK, state="delivered").count() == 2

"""Delivery properties beyond the happy path: a slow receiver blocks nobody else, shift
notices, PagerDuty acknowledgements flowing back, and the engine plugin."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.escalation import config_text, eventually, fast_loops, make_config, timeline, wire

from engine.config.loading import parse_config_text
from engine.escalation.wiring import Wiring
from engine.incidents import services
from engine.incidents.hooks import change_hooks
from engine.notify import pagerduty
from engine.oncall.notices import plan_shift_notices
from engine.storage.escalation_models import Notification, Timer
from engine.storage.models import Incident


async def test_a_slow_receiver_holds_up_nobody_else(esc_db, receivers):
    cfg = make_config(receivers, after=30)
    receivers.hook.delay = 3.0  # the webhook answers after 3 s
    async with fast_loops(cfg):
        t0 = time.monotonic()
        first = await services.create_incident(title="one", severity="critical", actor="probe")
        await eventually(lambda: receivers.slack.accepted, timeout=5)
        second = await services.create_incident(title="two", severity="critical", actor="probe")
        await eventually(lambda: len(receivers.slack.accepted) >= 2, timeout=5)
        fast = time.monotonic() - t0
        assert not receivers.hook.accepted  # still waiting on the slow webhook
        await eventually(lambda: len(receivers.hook.accepted) >= 2, timeout=15)
    assert fast < 2.0, f"Slack waited {fast:.1f} s behind the slow webhook"
    del first, second


def night_schedule(receivers: Any) -> tuple[datetime, datetime, Any, Any]:
    """A daily "night" schedule whose next shift starts in 20 minutes, noticed 30 minutes ahead,
    wired: (now, the shift's start, the configuration, its Context)."""
    now = datetime.now(UTC)
    start = (now + timedelta(minutes=20)).replace(second=0, microsecond=0)
    extra = f"""
[[schedules]]
name = "night"
rotation = "daily"
handoff = "{start.strftime("%H:%M")}"
users = ["alice", "carol"]
notify_before_shift_minutes = 30
"""
    cfg = parse_config_text(config_text(receivers, after=30) + extra)
    return now, start, cfg, wire(cfg).context


async def test_shift_notices_go_out_before_the_shift_and_follow_overrides(esc_db, receivers):
    now, start, cfg, ctx = night_schedule(receivers)
    assert await plan_shift_notices({"night": ctx.schedules["night"]}, now) == 1
    assert await plan_shift_notices({"night": ctx.schedules["night"]}, now) == 1  # planned twice, stored once
    [timer] = await Timer.filter(kind="shift_notice")
    incoming = timer.data["user"]
    assert timer.data["start"] == start.isoformat() and timer.due_at <= now + timedelta(seconds=1)
    async with fast_loops(cfg):
        await eventually(lambda: receivers.mails_to(f"{incoming}@example.com"), timeout=5)
    mail = receivers.mails_to(f"{incoming}@example.com")[0]
    assert "on-call shift on night starts" in mail.message["Subject"]
    assert len(receivers.smtp.mails) == 1
    # Times for a person: named zone, never raw ISO 8601.
    text = mail.message["Subject"] + "\n" + mail.message.get_content()
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", text), text
    assert start.strftime("%H:%M") + " UTC" in text  # the schedule's zone (UTC here), named


async def test_a_shift_notice_says_when_the_shift_really_ends(esc_db, receivers):
    # The planner looks an hour ahead; a day-long shift starting in it was told it ended at the
    # edge of that look-ahead ("on call 23:57 → 00:27").
    now, start, cfg, ctx = night_schedule(receivers)
    assert await plan_shift_notices({"night": ctx.schedules["night"]}, now) == 1
    [timer] = await Timer.filter(kind="shift_notice")
    incoming = timer.data["user"]
    end = start + timedelta(days=1)
    assert timer.data["end"] == end.isoformat()
    async with fast_loops(cfg):
        await eventually(lambda: receivers.mails_to(f"{incoming}@example.com"), timeout=5)
    text = receivers.mails_to(f"{incoming}@example.com")[0].message.get_content()
    assert f"→ {end.strftime('%Y-%m-%d %H:%M')} UTC" in text, text


async def test_planning_notices_of_a_short_rotation_stays_cheap(esc_db, receivers):
    # Each planned notice looks for its shift's end: from a short window up, not across weeks of
    # shifts (the engine's loop, which also sends the pages, waited seconds for it).
    now = datetime.now(UTC)
    extra = """
[[schedules]]
name = "short"
rotation = "custom"
rotation_length = "2m"
users = ["alice", "bob", "carol"]
notify_before_shift_minutes = 60
"""
    cfg = parse_config_text(config_text(receivers, after=30) + extra)
    ctx = wire(cfg).context
    t0 = time.monotonic()
    planned = await plan_shift_notices({"short": ctx.schedules["short"]}, now)
    took = time.monotonic() - t0
    assert planned >= 40  # a shift every 2 minutes, told an hour ahead
    assert took < 3.0, f"planning took {took:.1f} s"
    for timer in await Timer.filter(kind="shift_notice"):
        start, end = datetime.fromisoformat(timer.data["start"]), datetime.fromisoformat(timer.data["end"])
        assert end - start == timedelta(minutes=2), timer.data


async def test_pagerduty_acknowledgement_flows_back_and_stops_escalation(esc_db, receivers):
    cfg = make_config(receivers, after=0.05)
    async with fast_loops(cfg):
        inc = await services.create_incident(title="Disk full", severity="critical", actor="probe")
        await eventually(lambda: receivers.pagerduty.accepted, timeout=5)
        trigger = receivers.pagerduty.accepted[0].json
        body = json.dumps(
            {
                "event": {
                    "event_type": "incident.acknowledged",
                    "agent": {"summary": "Bob"},
                    "data": {"id": "PQ1", "title": trigger["payload"]["summary"]},
                }
            }
        ).encode()
        action = pagerduty.parse_webhook(body, {}, None)
        assert action is not None
        assert (await pagerduty.apply_webhook(action)) == f"{inc.key} acknowledged from PagerDuty"
        assert (await pagerduty.apply_webhook(action)).startswith("ignored")  # a repeated webhook changes nothing
        await asyncio.sleep(3.5)
    row = await Incident.get(id=inc.id)
    assert row.acknowledged_by == "pagerduty:Bob"
    assert not receivers.mails_to("carol@example.com")
    assert any(k == "escalation_stopped" for k, _ in await timeline(inc.key))


async def test_escalation_runs_as_an_engine_plugin_under_the_lease(esc_db, receivers):
    from engine.runtime.engine import Engine

    cfg = make_config(receivers, after=30)
    engine = Engine(cfg, monitor=False, standby=False, lease_ttl=5, lease_renew=1)
    await engine.start()
    try:
        assert engine.is_leader and {"escalation", "escalation-hooks"} <= set(engine.services)
        wiring = engine.service("escalation-hooks").wiring
        assert wiring.subscribed and wiring.context.config is cfg
        assert engine.service("escalation").loops.context is wiring.context  # one Context per engine
        inc = await services.create_incident(title="via the engine", severity="critical", actor="probe")
        await eventually(lambda: receivers.slack.accepted, timeout=5)
    finally:
        await engine.stop()
    assert await Notification.filter(incident_id=inc.id, state="delivered").count() >= 3
    assert not wiring.subscribed and len(change_hooks) == 0  # a stopped engine leaves no hook behind


async def test_incidents_opened_without_the_hook_are_caught_up(esc_db, receivers):
    # No hook subscribed: as if opened by a process that never loaded the configuration.
    inc = await services.create_incident(title="opened elsewhere", severity="critical", actor="cli")
    assert (await Incident.get(id=inc.id)).escalation == {}
    cfg = make_config(receivers, after=30)
    async with fast_loops(cfg, catch_up_every=0.2):
        await eventually(lambda: receivers.mails_to("alice@example.com"), timeout=10)
    assert (await Incident.get(id=inc.id)).escalation["level"] == 1


async def test_changes_made_without_the_hook_are_caught_up_from_the_feed(esc_db, receivers):
    cfg = make_config(receivers, after=0.05)
    async with fast_loops(cfg, catch_up_every=0.2) as loops:
        inc = await services.create_incident(title="half-hooked", severity="critical", actor="probe")
        await eventually(lambda: receivers.pagerduty.accepted, timeout=5)
        hooked = Wiring(loops.context)
        for hook in change_hooks:
            change_hooks.unsubscribe(hook)  # now a process without the configuration acknowledges and resolves
        await services.acknowledge(inc.key, "alice")
        await services.resolve(inc.key, "alice", root_cause="cosmic ray", solution="reboot")
        assert (await Incident.get(id=inc.id)).escalation["seen"] < (await services.record_event(inc.key, "note", "x", "probe")).id
        hooked.start()
        await eventually(
            lambda: [r.json["event_action"] for r in receivers.pagerduty.accepted] == ["trigger", "acknowledge", "resolve"], timeout=10
        )
        await asyncio.sleep(3.5)  # past level 2's time: it was cancelled, not fired
    assert not receivers.mails_to("carol@example.com")
    assert await Timer.filter(incident_id=inc.id, state="pending").count() == 0
    kinds = [k for k, _ in await timeline(inc.key)]
    assert kinds.count("escalation_stopped") == 1


async def test_rows_for_a_channel_this_engine_lacks_stay_pending_and_say_why(esc_db, receivers):
    from engine.config.loading import default_config
    from engine.notify.channels import Dispatcher, settings_from_config
    from engine.notify.deliverer import Deliverer

    cfg = make_config(receivers, after=30)
    with Wiring.for_config(cfg):  # queued by a process with Slack, PagerDuty, a webhook, e-mail …
        inc = await services.create_incident(title="queued elsewhere", severity="critical", actor="cli")
    queued = await Notification.filter(incident_id=inc.id).values_list("destination", flat=True)
    assert {"slack:#incidents", "webhook:ops", "pagerduty"} <= set(queued)

    dispatcher = Dispatcher(settings_from_config(default_config()))  # … sent by one with none
    deliverer = Deliverer(dispatcher, waiting_grace=0)
    try:
        await deliverer.run_once()
        await deliverer.run_once()  # a second round notes nothing twice
    finally:
        await dispatcher.aclose()
    rows = await Notification.filter(incident_id=inc.id)
    assert [(r.destination, r.state, r.attempts) for r in rows if r.state != "pending" or r.attempts] == []
    slack = next(r for r in rows if r.destination == "slack:#incidents")
    assert slack.last_error.startswith("waiting: no Slack webhook URL configured in engine ")
    assert next(r for r in rows if r.destination == "webhook:ops").last_error.startswith("waiting: no webhook 'ops' configured")
    waiting = [s for k, s in await timeline(inc.key) if k == "notify_waiting"]
    assert len(waiting) == len({r.stream for r in rows})
    assert any(s.startswith("notification to #incidents waiting: no Slack webhook URL") for s in waiting), waiting
    assert not receivers.slack.requests

    async with fast_loops(cfg):  # an engine with the channels sends every one of them
        await eventually(
            lambda: Notification.filter(incident_id=inc.id, destination="slack:#incidents", state="delivered").exists(), timeout=10
        )
    assert receivers.slack.accepted and receivers.hook.accepted


LOW_TO_HOOK = """
[escalation_policy.low]
escalate_after_minutes = 30
[[escalation_policy.low.levels]]
notify = ["webhook:ops"]
"""


async def test_a_hanging_webhook_never_delays_a_critical_page(esc_db, receivers):
    cfg = make_config(receivers, after=30, extra=LOW_TO_HOOK)
    receivers.hook.delay = 60.0  # accepts and never answers within the send timeout (10 s)
    async with fast_loops(cfg) as loops:
        for i in range(24):
            await services.create_incident(title=f"hung {i}", severity="low", actor="probe")
        await eventually(lambda: len(receivers.hook.arrived) >= 4, timeout=5)
        page = await services.create_incident(title="Database down", severity="critical", actor="probe")
        await eventually(lambda: [r for r in receivers.slack.arrived if page.key in r.body.decode()], timeout=20)
        # The page went out while every hanging send was still in flight: none of them has
        # failed (timed out) yet, and the webhook holds no more than its share of slots.
        hook_rows = await Notification.filter(destination="webhook:ops").values("attempts", "incident_id")
        assert [r for r in hook_rows if r["attempts"]] == []
        assert len(receivers.hook.arrived) <= loops.per_destination
        assert not receivers.hook.accepted
        receivers.hook.delay = 0.0


async def test_due_rows_are_claimed_critical_first(esc_db, receivers):
    from engine.notify.channels import Dispatcher, settings_from_config
    from engine.notify.deliverer import Deliverer

    cfg = make_config(receivers, after=30, extra=LOW_TO_HOOK)
    wire(cfg)
    low = [await services.create_incident(title=f"minor {i}", severity="low", actor="probe") for i in range(3)]
    page = await services.create_incident(title="Database down", severity="critical", actor="probe")
    dispatcher = Dispatcher(settings_from_config(cfg))
    deliverer = Deliverer(dispatcher, batch=2)
    try:
        assert await deliverer.run_once() == 2
    finally:
        await dispatcher.aclose()
    sent = await Notification.filter(attempts__gt=0).values_list("incident_id", flat=True)
    assert sent == [page.id, page.id], (sent, [i.id for i in low])


async def test_a_long_send_keeps_its_claim_while_its_holder_lives(esc_db, receivers):
    from engine.notify.channels import Dispatcher, settings_from_config
    from engine.notify.deliverer import Deliverer

    cfg = make_config(receivers, after=30)
    receivers.slack.delay = 3.0  # three leases long
    other = Deliverer(Dispatcher(settings_from_config(cfg)), lease=1.0, poll_interval=0.05, name="other-engine")
    async with fast_loops(cfg, lease=1.0):
        runner = asyncio.create_task(other.run())
        try:
            inc = await services.create_incident(title="slow Slack", severity="critical", actor="probe")
            await eventually(
                lambda: Notification.filter(incident_id=inc.id, destination="slack:#incidents", state="delivered").exists(), timeout=15
            )
        finally:
            other.stop()
            await runner
            await other.dispatcher.aclose()
    # Renewed every third of a lease, the claim never lapsed: the other engine never sent it.
    assert len(receivers.slack.arrived) == 1
    row = await Notification.get(incident_id=inc.id, destination="slack:#incidents")
    assert row.attempts == 1


async def test_held_rows_whose_digest_timers_are_gone_get_one_timer_per_channel(db):
    from engine.escalation.timers import sweep_held

    now = datetime.now(UTC)
    old = now - timedelta(minutes=10)
    # The last channel's row is recent: it keeps waiting for its own timer.
    held = [("slack:#ops", old), ("email:ops@example.com", old), ("slack:#ops", old), ("email:new@example.com", now)]
    for i, (dest, at) in enumerate(held):
        await Notification.create(
            dedup_key=f"held:{i}",
            stream=f"1|{dest}",
            destination=dest,
            kind="status_update",
            state="held",
            next_attempt_at=at,
            created_at=at,
        )
    assert await sweep_held(now) == 2
    timers = await Timer.filter(kind="digest", state="pending").values_list("data", "due_at")
    assert sorted(data["destination"] for data, _ in timers) == ["email:ops@example.com", "slack:#ops"]
    assert all(now < due <= now + timedelta(minutes=1) for _, due in timers)
    assert await sweep_held(now) == 0  # covered now
    assert await Timer.filter(kind="digest").count() == 2


async def test_a_send_in_flight_is_not_claimed_again_by_its_own_deliverer_when_the_clock_jumps(esc_db, receivers, monkeypatch):
    """A row whose send outlasts its claim, as seen by the clock (a wall-clock step, a resumed VM,
    a stalled loop before the next renewal), is still this deliverer's: it is not claimed and
    sent a second time beside the first. It had been: the same page twice."""
    from engine.core.clock import utcnow as real_now
    from engine.notify.deliverer import worker

    ahead = [timedelta(0)]
    monkeypatch.setattr(worker, "utcnow", lambda: real_now() + ahead[0])
    cfg = make_config(receivers, after=30)
    receivers.hook.delay = 2.0
    async with fast_loops(cfg):
        inc = await services.create_incident(title="slow webhook", severity="critical", actor="probe")
        await eventually(lambda: receivers.hook.arrived, timeout=5)  # the send is in flight
        ahead[0] = timedelta(hours=1)  # every claim now looks long expired
        await eventually(lambda: Notification.filter(incident_id=inc.id, destination="webhook:ops", state="delivered").exists(), timeout=10)
        await asyncio.sleep(0.5)  # a second claim round would have sent it again by now
    assert len(receivers.hook.arrived) == 1, [r.path for r in receivers.hook.arrived]
    row = await Notification.get(incident_id=inc.id, destination="webhook:ops")
    assert row.attempts == 1


async def test_a_stop_cut_short_by_a_stuck_recorder_leaves_no_deliverer_task_behind(esc_db, receivers):
    """Stopping waits for the outcomes to be recorded, within the stop's timeout. When the
    recorder is stuck (here: another session holds the incident's row lock, which recording the
    delivery on its timeline needs) and the timeout cuts the wait short, the heartbeat and the
    recorder still stop. The heartbeat had gone on renewing the claims for good, so no other
    engine ever sent those rows."""
    from support.db import PgRowLock

    if esc_db.kind != "postgres":
        pytest.skip("held from a psql session: PostgreSQL's row lock")
    cfg = make_config(receivers, after=30)
    receivers.hook.delay = 1.0
    loops = fast_loops(cfg)
    await loops.start()
    holder: PgRowLock | None = None
    try:
        inc = await services.create_incident(title="slow webhook", severity="critical", actor="probe")
        await eventually(lambda: receivers.hook.arrived, timeout=5)
        holder = await asyncio.to_thread(PgRowLock, esc_db.schema, inc.id)  # off the loop: the engine may hold the row a moment
        await eventually(lambda: receivers.hook.accepted, timeout=5)
        await asyncio.sleep(0.3)  # its outcome is waiting on the lock
        await loops.stop(timeout=1.0)
    finally:
        if holder is not None:
            holder.close()
    await asyncio.sleep(0.2)
    names = ("pulseguard-deliverer-heartbeat", "pulseguard-deliverer-recorder")
    assert [t.get_name() for t in asyncio.all_tasks() if t.get_name() in names] == []

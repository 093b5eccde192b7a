"""Escalation end to end: real database, real engine loops, real loopback receivers."""

from __future__ import annotations

import asyncio
import logging
import time

from support.escalation import eventually, fast_loops, make_config, timeline

from engine.incidents import services
from engine.storage.escalation_models import Notification, Timer
from engine.storage.models import Event, Incident


async def test_level_one_at_once_then_level_two_after_the_delay(esc_db, receivers):
    cfg = make_config(receivers, after=0.02)  # 1.2 s
    async with fast_loops(cfg):
        t0 = time.monotonic()
        inc = await services.create_incident(title="API down", severity="critical", actor="probe")
        await eventually(lambda: receivers.mails_to("alice@example.com"), timeout=5)
        level1 = time.monotonic() - t0
        await eventually(lambda: receivers.slack.accepted and receivers.hook.accepted and receivers.pagerduty.accepted, timeout=5)
        assert not receivers.mails_to("bob@example.com") and not receivers.mails_to("carol@example.com")
        await eventually(lambda: receivers.mails_to("bob@example.com") and receivers.mails_to("carol@example.com"), timeout=6)
        level2 = time.monotonic() - t0
    assert level1 < 1.0, f"level 1 took {level1:.2f} s"
    assert 1.1 <= level2 < 4.0, f"level 2 after {level2:.2f} s, expected about 1.2 s"
    carol = receivers.mails_to("carol@example.com")[0].message
    assert "escalated to level 2" in carol["Subject"]
    slack = receivers.slack.accepted[0].json
    assert slack["channel"] == "#incidents" and "INC-" in slack["text"]
    assert receivers.pagerduty.accepted[0].json["dedup_key"] == f"pulseguard-{inc.key}"
    kinds = [k for k, _ in await timeline(inc.key)]
    assert kinds[0] == "created" and kinds.count("escalation") >= 2 and "notified" in kinds
    summaries = [s for k, s in await timeline(inc.key) if k == "escalation"]
    assert summaries[0].startswith("level 1 notified: alice (schedule primary)")
    assert summaries[1].startswith("escalated to level 2: bob (schedule secondary), carol")
    row = await Incident.get(id=inc.id)
    assert row.escalation["policy"]["severity"] == "critical" and row.escalation["level"] >= 2


async def test_acknowledged_before_the_delay_level_two_never_hears(esc_db, receivers):
    cfg = make_config(receivers, after=0.05)  # 3 s
    async with fast_loops(cfg):
        inc = await services.create_incident(title="DB slow", severity="critical", actor="probe")
        await eventually(lambda: receivers.mails_to("alice@example.com"), timeout=5)
        await services.acknowledge(inc.key, "alice")
        await eventually(lambda: len(receivers.pagerduty.accepted) >= 2, timeout=5)
        await asyncio.sleep(4.0)  # well past the 3 s escalation
    assert not receivers.mails_to("bob@example.com") and not receivers.mails_to("carol@example.com")
    assert [r.json["event_action"] for r in receivers.pagerduty.accepted] == ["trigger", "acknowledge"]
    assert any("acknowledged by alice" in r.json["text"] for r in receivers.slack.accepted)
    timers = await Timer.filter(incident_id=inc.id).values_list("state", flat=True)
    assert "pending" not in timers and "cancelled" in timers
    events = await timeline(inc.key)
    stopped = [s for k, s in events if k == "escalation_stopped"]
    assert stopped and stopped[0].startswith("escalation stopped: acknowledged by alice after")
    row = await Incident.get(id=inc.id)
    assert row.escalation["next_at"] is None and row.escalation["time_to_ack_seconds"] >= 0


async def test_severity_change_re_plans_and_resolution_cancels(esc_db, receivers):
    cfg = make_config(receivers, after=0.03)
    async with fast_loops(cfg):
        inc = await services.create_incident(title="Errors up", severity="high", actor="probe")
        await eventually(lambda: any(r.json.get("channel") == "#high" for r in receivers.slack.accepted))
        await services.change_severity(inc.key, "critical", "alice", reason="customers affected")
        await eventually(lambda: receivers.mails_to("alice@example.com"), timeout=5)  # critical level 1
        row = await Incident.get(id=inc.id)
        assert row.escalation["generation"] == 2 and row.escalation["policy"]["severity"] == "critical"
        await services.resolve(inc.key, "alice", root_cause="bad deploy", solution="rolled back")
        await eventually(lambda: any(r.json["event_action"] == "resolve" for r in receivers.pagerduty.accepted), timeout=5)
        await asyncio.sleep(2.5)  # the critical level 2 would have fired by now
    assert not receivers.mails_to("bob@example.com")
    assert await Timer.filter(incident_id=inc.id, state="pending").count() == 0
    texts = [r.json["text"] for r in receivers.slack.accepted if r.json.get("channel") == "#incidents"]
    assert texts.index(next(t for t in texts if "RESOLVED" in t)) == len(texts) - 1


async def test_receiver_down_then_up_every_message_arrives_once(esc_db, receivers, caplog):
    cfg = make_config(receivers, after=30)
    # Down for its first 25 requests (about five tries of each incident's first message), not
    # for a time: on a loaded machine the first tries came late and fewer of them failed.
    receivers.slack.fail(503, times=25)
    caplog.set_level(logging.INFO, logger="engine.notify.deliverer")
    async with fast_loops(cfg):
        incs = [await services.create_incident(title=f"svc {i} down", severity="critical", actor="probe") for i in range(5)]
        for inc in incs[:2]:
            await services.resolve(inc.key, "alice", root_cause="blip", solution="none needed")
        await eventually(lambda: len(receivers.slack.accepted) >= 7, timeout=20)
        await asyncio.sleep(0.5)
    refused = [r for r in receivers.slack.requests if r.status == 503]
    assert refused, "the receiver never refused anything; the test proved nothing"
    accepted = receivers.slack.accepted
    keys = [r.headers["x-pulseguard-delivery"] for r in accepted]
    assert len(keys) == len(set(keys)) == 7, keys  # 5 triggered + 2 resolved, none twice
    # per incident and channel, order holds: a "resolved" never overtakes its "triggered"
    for inc in incs[:2]:
        mine = [r.json["text"] for r in accepted if inc.key + " " in r.json["text"] + " " or f"{inc.key}:" in r.json["text"]]
        assert "triggered" in mine[0] and "RESOLVED" in mine[-1]
    events = await timeline(incs[0].key)
    failed = [s for k, s in events if k == "notify_failed"]
    assert failed and "failed: HTTP 503" in failed[0] and "retrying in" in failed[0]
    # A retry failing as the one before did is kept in the outbox, not written on the timeline
    # again: one "failed" line per message, then the attempt it went out at.
    rows = await Notification.filter(incident_id=incs[0].id, destination="slack:#incidents")
    assert any(r.attempts > 2 for r in rows), [r.attempts for r in rows]  # retried more than once
    noted = await Event.filter(incident_id=incs[0].id, kind="notify_failed").values_list("data", flat=True)
    assert sorted(d["notification_id"] for d in noted) == sorted(r.id for r in rows if r.attempts > 1)
    delivered = [s for k, s in events if k == "notified" and "#incidents" in s]
    assert any(f"at attempt {r.attempts}" in s for r in rows if r.attempts > 1 for s in delivered), delivered
    assert await Notification.filter(destination="slack:#incidents", state="pending").count() == 0
    # The engine's log says so too, where the team running it looks: once a minute at most
    # (every refusal is on the timeline), then once when deliveries resume.
    logged = [r.getMessage() for r in caplog.records if "slack:#incidents" in r.getMessage()]
    failing = [m for m in logged if "are failing: HTTP 503" in m]
    assert len(failing) == 1 and len(refused) > 1, (logged, len(refused))
    assert logged[-1] == "notifications to slack:#incidents are delivered again", logged


async def test_permanent_refusal_is_not_retried_and_says_why(esc_db, receivers, caplog):
    cfg = make_config(receivers, after=30)
    receivers.hook.fail(404, times=100)
    caplog.set_level(logging.INFO, logger="engine.notify.deliverer")
    async with fast_loops(cfg):
        inc = await services.create_incident(title="Cache down", severity="critical", actor="probe")
        await eventually(lambda: Notification.filter(destination="webhook:ops", state="dead").exists(), timeout=5)
        await asyncio.sleep(1.0)
    assert len(receivers.hook.requests) == 1
    row = await Notification.get(destination="webhook:ops")
    assert row.state == "dead" and row.last_error.startswith("HTTP 404") and row.attempts == 1
    dead = [s for k, s in await timeline(inc.key) if k == "notify_dead"]
    assert dead == [f"notification to webhook ops abandoned: {row.last_error}"]
    given_up = [r for r in caplog.records if r.levelno == logging.ERROR and "webhook:ops" in r.getMessage()]
    assert [r.getMessage() for r in given_up] == [f"notification {row.id} to webhook:ops given up: {row.last_error}"]


async def test_too_old_messages_are_marked_dead(esc_db, receivers):
    cfg = make_config(receivers, after=30)
    receivers.hook.fail_for(60, 503)
    # Old enough to give up after 3 s: room for a retry (0.2 s apart) on a loaded machine too,
    # where 1 s could pass before the first attempt.
    async with fast_loops(cfg, max_age=3.0):
        inc = await services.create_incident(title="Queue stuck", severity="critical", actor="probe")
        await eventually(lambda: Notification.filter(destination="webhook:ops", state="dead").exists(), timeout=15)
    row = await Notification.get(destination="webhook:ops")
    assert row.attempts >= 2 and "gave up after" in row.last_error and "HTTP 503" in row.last_error, (
        row.attempts,
        row.last_error,
        row.created_at,
        row.delivered_at,
    )
    # the rest of the incident's messages were not held up by the dead one
    assert receivers.slack.accepted and receivers.pagerduty.accepted
    assert any(k == "notify_dead" for k, _ in await timeline(inc.key))


async def test_medium_incidents_in_digest_mode_arrive_as_one_message(esc_db, receivers):
    cfg = make_config(receivers, after=30, digest=0.1)  # a 6 s digest
    async with fast_loops(cfg):
        # Digests are due at the end of the interval (aligned to the clock) the first message
        # falls in: start just after a boundary so all three share one interval.
        await asyncio.sleep(6.0 - time.time() % 6.0 + 0.05)
        incs = [await services.create_incident(title=f"minor {i}", severity="medium", actor="probe") for i in range(3)]
        await asyncio.sleep(0.5)
        assert not [r for r in receivers.slack.accepted if r.json.get("channel") == "#incidents"]
        msgs = await eventually(lambda: [r for r in receivers.slack.accepted if r.json.get("channel") == "#incidents"], timeout=12)
        await asyncio.sleep(0.5)
        msgs = [r for r in receivers.slack.accepted if r.json.get("channel") == "#incidents"]
        digest_mails = await eventually(lambda: receivers.mails_to("devops@example.com"), timeout=5)
    assert len(msgs) == 1, [m.json["text"] for m in msgs]
    text = str(msgs[0].json)
    assert all(inc.key in text for inc in incs) and "digest: 3 incident updates" in msgs[0].json["text"]
    assert len(digest_mails) == 1 and all(inc.key in digest_mails[0].text for inc in incs)
    assert await Notification.filter(state="digested").count() == 6
    assert any(k == "digested" for k, _ in await timeline(incs[0].key))


async def test_internal_comments_never_reach_external_recipients(esc_db, receivers):
    cfg = make_config(receivers, after=30)
    async with fast_loops(cfg):
        inc = await services.create_incident(
            title="Checkout errors", severity="high", actor="probe", description="secret db host db-7.internal"
        )
        await services.comment(inc.key, "INTERNAL-ONLY: blame the vendor", "alice", internal_only=True)
        await services.post_update(inc.key, "INTERNAL-UPDATE: rollback in progress", "alice", public=False, status="identified")
        await services.post_update(inc.key, "We have identified the cause and are fixing it.", "alice", public=True)
        await services.resolve(inc.key, "alice", root_cause="INTERNAL-RC: expired cert", solution="renewed")
        await eventually(lambda: len(receivers.mails_to("customers@example.com")) >= 2, timeout=8)
        # triggered, acknowledged (implicitly, by the status change), two updates, resolved
        await eventually(lambda: len(receivers.mails_to("devops@example.com")) >= 5, timeout=8)
        await asyncio.sleep(0.5)
    external = receivers.mails_to("customers@example.com")
    assert len(external) == 2
    bodies = " ".join(m.text for m in external)
    assert "identified the cause" in bodies and "resolved" in bodies.lower()
    for secret in ("INTERNAL-ONLY", "INTERNAL-UPDATE", "INTERNAL-RC", "db-7.internal", "HIGH"):
        assert secret not in bodies, secret
    internal = " ".join(m.text for m in receivers.mails_to("devops@example.com"))
    assert "INTERNAL-UPDATE" in internal and "INTERNAL-ONLY" not in internal  # comments are not broadcast at all
    # Responders read both kinds of update in one place: each says whether customers heard it.
    assert "Internal update: INTERNAL-UPDATE: rollback in progress" in internal
    assert "Public update: We have identified the cause" in internal


async def test_customers_told_it_was_resolved_hear_that_it_came_back(esc_db, receivers):
    """The status page shows a reopened incident as open again; customers mailed "resolved"
    were left believing it was over. They hear it came back, without the internal reason."""
    cfg = make_config(receivers, after=30)
    async with fast_loops(cfg):
        inc = await services.create_incident(title="Checkout errors", severity="high", actor="probe")
        await services.post_update(inc.key, "We are looking into checkout errors.", "alice", public=True)
        await services.resolve(inc.key, "alice", root_cause="bad deploy", solution="rolled back")
        await eventually(lambda: len(receivers.mails_to("customers@example.com")) >= 2, timeout=8)
        await services.reopen(inc.key, "bob", reason="INTERNAL-REASON: errors are back on shard 7")
        await eventually(lambda: len(receivers.mails_to("customers@example.com")) >= 3, timeout=8)
        # Never told of it: a reopened incident customers did not hear of stays quiet.
        quiet = await services.create_incident(title="Internal blip", severity="high", actor="probe")
        await services.resolve(quiet.key, "alice", root_cause="blip", solution="none")
        await services.reopen(quiet.key, "bob", reason="again")
        await asyncio.sleep(0.5)
    external = receivers.mails_to("customers@example.com")
    assert len(external) == 3, [m.text for m in external]
    assert "come back" in external[-1].text and external[-1].text.startswith("[Investigating]")
    assert "INTERNAL-REASON" not in external[-1].text
    assert await Notification.filter(audience="external", incident_id=quiet.id).count() == 0


async def test_customers_hear_nothing_of_incidents_the_status_page_hides(esc_db, receivers):
    private = '\n[[services]]\nname = "billing-db"\npublic = false\n\n[[services]]\nname = "checkout"\n'
    cfg = make_config(receivers, after=30, extra=private)
    async with fast_loops(cfg):
        hidden = await services.create_incident(title="Replica lag", severity="high", actor="probe", services=["billing-db"])
        await services.post_update(hidden.key, "PRIVATE-SERVICE: failing over billing", "alice", public=True)
        await services.resolve(hidden.key, "alice", root_cause="lag", solution="failover")
        noise = await services.create_incident(title="Flap", severity="high", actor="probe", services=["checkout"])
        await services.mark_false_positive(noise.key, "alice")
        await services.resolve(noise.key, "alice", root_cause="probe flap", solution="none")
        shown = await services.create_incident(title="Checkout errors", severity="high", actor="probe", services=["checkout", "billing-db"])
        await services.post_update(shown.key, "We are looking into checkout errors.", "alice", public=True)
        await eventually(lambda: len(receivers.mails_to("customers@example.com")) >= 1, timeout=8)
        await asyncio.sleep(0.5)
    external = receivers.mails_to("customers@example.com")
    assert len(external) == 1, [m.text for m in external]
    assert "looking into checkout errors" in external[0].text
    assert "billing-db" not in external[0].text  # a private service is not named to customers
    assert await Notification.filter(audience="external", incident_id__in=[hidden.id, noise.id]).count() == 0


async def test_jira_ticket_opened_and_closed_with_the_incident(esc_db, receivers):
    cfg = make_config(receivers, after=30, jira_create=True)
    async with fast_loops(cfg):
        inc = await services.create_incident(title="Payments down", severity="critical", actor="probe")
        await eventually(lambda: receivers.jira_state.issues, timeout=5)
        await services.resolve(inc.key, "alice", root_cause="card processor outage", solution="failover")
        await eventually(lambda: receivers.jira_state.issues.get("OPS-1", {}).get("status") == "Done", timeout=5)
    assert len(receivers.jira_state.issues) == 1
    assert any("OPS-1" in s for k, s in await timeline(inc.key) if k == "notified")


async def test_jira_key_is_linked_and_its_status_followed(esc_db, receivers):
    cfg = make_config(receivers, after=30, jira_create=True)
    loops = fast_loops(cfg)
    async with loops:
        inc = await services.create_incident(title="Search slow", severity="critical", actor="probe")
        await eventually(lambda: Incident.filter(id=inc.id).first().values_list("external_refs", flat=True), timeout=5)
        row = await Incident.get(id=inc.id)
        assert row.external_refs["jira"] == "OPS-1"
        receivers.jira_state.issues["OPS-1"]["status"] = "In Progress"  # someone moves it in Jira
        assert await loops.sync_jira_statuses() == 1
        assert await loops.sync_jira_statuses() == 0  # no change, no new entry
    events = [s for k, s in await timeline(inc.key) if k == "jira_status"]
    assert events == ["Jira OPS-1 is now In Progress"]

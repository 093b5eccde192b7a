"""The spec's own escalation block (no `levels`) pages real people: real database (SQLite and
PostgreSQL), real engine loops, a loopback SMTP server and Slack receiver. The policy's
minutes are the spec's (15, 60): the engine's clocks are moved forward instead of waiting."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from support.configs import SPEC_BLOCK
from support.escalation import ALICE_AND_BOB, SLACK_AND_MAIL, eventually, fast_loops, timeline

from engine.config.loading import parse_config_text
from engine.incidents import services
from engine.storage.escalation_models import Notification, Timer

TOML = (
    SPEC_BLOCK
    + ALICE_AND_BOB
    + """
[[schedules]]
name = "primary"
users = ["alice"]
[[schedules]]
name = "secondary"
users = ["bob"]
"""
    + SLACK_AND_MAIL
)


def subjects(rx: Any, address: str) -> list[str]:
    return [str(m.message["Subject"]) for m in rx.mails_to(address)]


def spec_config(rx: Any) -> Any:
    return parse_config_text(TOML.replace("{smtp}", str(rx.smtp.port)))


async def test_high_pages_the_on_call_person_escalates_reminds_and_stops_on_acknowledge(esc_db, receivers, clock):
    async with fast_loops(spec_config(receivers)):
        inc = await services.create_incident(title="Checkout errors", severity="high", actor="probe")
        await eventually(lambda: receivers.mails_to("alice@example.com"), timeout=5)
        await eventually(lambda: [r for r in receivers.slack.accepted if r.json.get("channel") == "#incidents"], timeout=5)
        assert subjects(receivers, "alice@example.com") == [f"[HIGH] {inc.key} triggered: Checkout errors"]
        await asyncio.sleep(0.5)
        assert not receivers.mails_to("bob@example.com")  # not before escalate_after_minutes

        clock.advance(14)
        await asyncio.sleep(0.5)
        assert not receivers.mails_to("bob@example.com")
        clock.advance(1.01)  # 15 minutes after the opening: the next schedule
        await eventually(lambda: receivers.mails_to("bob@example.com"), timeout=5)
        assert subjects(receivers, "bob@example.com") == [f"[HIGH] {inc.key} escalated to level 2: Checkout errors"]

        clock.advance(15)  # the last level repeats as a reminder
        await eventually(lambda: len(receivers.mails_to("bob@example.com")) >= 2, timeout=5)
        assert subjects(receivers, "bob@example.com")[1] == f"[HIGH] Reminder: {inc.key} is still unacknowledged: Checkout errors"

        await services.acknowledge(inc.key, "bob")
        await eventually(lambda: len(receivers.mails_to("bob@example.com")) >= 3, timeout=5)  # "acknowledged by bob"
        clock.advance(60)
        await asyncio.sleep(1.0)
    assert [s for s in subjects(receivers, "bob@example.com") if "Reminder" in s] == [subjects(receivers, "bob@example.com")[1]]
    # Triggered, then acknowledged by bob (the subjects say what came instead, should it differ).
    assert len(receivers.mails_to("alice@example.com")) == 2, subjects(receivers, "alice@example.com")
    assert await Timer.filter(incident_id=inc.id, kind="escalate", state="pending").count() == 0
    summaries = [s for k, s in await timeline(inc.key) if k in ("escalation", "escalation_stopped")]
    assert summaries[0].startswith("level 1 notified: alice (schedule primary), #incidents")
    assert summaries[1].startswith("escalated to level 2: bob (schedule secondary)")
    assert summaries[2].startswith("reminder 2 to level 2: bob (schedule secondary)")
    assert summaries[3].startswith("escalation stopped: acknowledged by bob")


async def test_medium_goes_into_the_digest_and_still_escalates_to_a_person(esc_db, receivers, clock):
    # A digest falls due at the end of the wall-clock half hour it was held in, counted from the
    # incident's own time (real time: this clock does not move it). A run at :29:59 would see it
    # sent before the interval has passed, so wait out the end of the half hour first.
    if (left := 1800 - time.time() % 1800) < 10:
        await asyncio.sleep(left + 0.2)
    async with fast_loops(spec_config(receivers)):
        inc = await services.create_incident(title="Search slow", severity="medium", actor="probe")
        await asyncio.sleep(0.8)
        assert not receivers.smtp.mails and not receivers.slack.accepted  # held for the digest
        held = await Notification.filter(incident_id=inc.id, state="held").values_list("destination", flat=True)
        assert sorted(held) == ["email:alice@example.com", "slack:#incidents"]

        clock.advance(30)  # the digest interval (30 min by default) has passed
        await eventually(lambda: receivers.mails_to("alice@example.com"), timeout=5)
        digest = receivers.mails_to("alice@example.com")[0]
        assert str(digest.message["Subject"]).startswith("PulseGuard digest") and inc.key in digest.text
        assert not receivers.mails_to("bob@example.com")

        clock.advance(30.01)  # 60 minutes, nobody acknowledged: a person is paged, not digested
        await eventually(lambda: receivers.mails_to("bob@example.com"), timeout=5)
        assert subjects(receivers, "bob@example.com") == [f"[MEDIUM] {inc.key} escalated to level 2: Search slow"]
        assert await Notification.filter(incident_id=inc.id, destination="email:bob@example.com", state="held").count() == 0
        await services.acknowledge(inc.key, "bob")
        clock.advance(120)
        await asyncio.sleep(1.0)
    assert not [s for s in subjects(receivers, "bob@example.com") if "Reminder" in s]
    assert await Timer.filter(incident_id=inc.id, kind="escalate", state="pending").count() == 0


async def test_the_service_schedule_is_paged_first(esc_db, receivers, clock):
    text = (
        TOML.replace("{smtp}", str(receivers.smtp.port))
        + """
[[services]]
name = "search"
schedule = "secondary"
"""
    )
    async with fast_loops(parse_config_text(text)):
        inc = await services.create_incident(title="Search down", severity="critical", actor="probe", services=["search"])
        await eventually(lambda: receivers.mails_to("bob@example.com"), timeout=5)
        await asyncio.sleep(0.5)
        assert not receivers.mails_to("alice@example.com")
        clock.advance(5.01)  # critical's 5 minutes: the secondary schedule's rotation has nobody else
        await asyncio.sleep(1.0)
    assert subjects(receivers, "bob@example.com")[0] == f"[CRITICAL] {inc.key} triggered: Search down"
    assert not receivers.mails_to("alice@example.com")  # primary is not after secondary in the file

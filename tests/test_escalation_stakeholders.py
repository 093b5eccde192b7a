"""The stakeholder channels hear "triggered" once, whether the first page goes at the opening,
later, or after a snooze; and an incident resolved without anyone acknowledging it pages again
when it reopens. Real database (SQLite and PostgreSQL), real engine loops, a loopback SMTP
server and Slack receiver; the engine's clocks are moved forward instead of waiting."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from support.escalation import ALICE_AND_BOB, SLACK_AND_MAIL, eventually, fast_loops, timeline

from engine.config.loading import parse_config_text
from engine.incidents import queries, services

TOML = (
    ALICE_AND_BOB
    + """
[escalation_policy.high]
immediate_notification = {immediate}
escalate_after_minutes = 10
[[escalation_policy.high.levels]]
notify = ["user:alice"]
[[escalation_policy.high.levels]]
notify = ["user:bob"]
"""
    + SLACK_AND_MAIL
)


def config(rx: Any, *, immediate: bool) -> Any:
    return parse_config_text(TOML.replace("{smtp}", str(rx.smtp.port)).replace("{immediate}", str(immediate).lower()))


def channel(rx: Any) -> list[str]:
    return [r.json.get("text", "") for r in rx.slack.accepted if r.json.get("channel") == "#incidents"]


def subjects(rx: Any, address: str) -> list[str]:
    return [str(m.message["Subject"]) for m in rx.mails_to(address)]


async def test_a_delayed_first_page_does_not_tell_the_channel_again(esc_db, receivers, clock):
    async with fast_loops(config(receivers, immediate=False)):
        inc = await services.create_incident(title="Checkout errors", severity="high", actor="probe")
        await eventually(lambda: channel(receivers), timeout=5)  # told at the opening
        assert not receivers.mails_to("alice@example.com")
        clock.advance(10.01)
        await eventually(lambda: receivers.mails_to("alice@example.com"), timeout=5)
        await asyncio.sleep(0.5)
    assert subjects(receivers, "alice@example.com") == [f"[HIGH] {inc.key} triggered: Checkout errors"]
    assert len([t for t in channel(receivers) if "triggered" in t]) == 1, channel(receivers)


async def test_the_end_of_a_snooze_pages_again_without_telling_the_channel_again(esc_db, receivers, clock):
    async with fast_loops(config(receivers, immediate=True)):
        inc = await services.create_incident(title="Checkout errors", severity="high", actor="probe")
        await eventually(lambda: receivers.mails_to("alice@example.com") and channel(receivers), timeout=5)
        clock.advance(2)
        await services.snooze(inc.key, timedelta(minutes=5), "alice")
        clock.advance(5.01)
        await eventually(lambda: len(receivers.mails_to("alice@example.com")) >= 2, timeout=5)
        await asyncio.sleep(0.5)
    assert len([t for t in channel(receivers) if "triggered" in t]) == 1, channel(receivers)


async def test_an_incident_reopened_that_nobody_acknowledged_pages_again_and_escalates(esc_db, receivers, clock):
    async with fast_loops(config(receivers, immediate=True)):
        inc = await services.create_incident(title="Checkout errors", severity="high", actor="probe")
        await eventually(lambda: receivers.mails_to("alice@example.com"), timeout=5)
        await services.resolve(inc.key, "probe", root_cause="recovered by itself", solution="none needed")
        await services.reopen(inc.key, "probe", reason="the errors are back")
        await eventually(lambda: len(receivers.mails_to("alice@example.com")) >= 3, timeout=5)
        clock.advance(10.01)  # nobody answers: the next level, as for a new incident
        await eventually(lambda: receivers.mails_to("bob@example.com"), timeout=5)
        await services.acknowledge(inc.key, "bob")
        state = (await queries.get_incident(inc.key)).escalation
    # Paged again once, as the first level (not also told of the reopening on the side); then
    # told of bob's acknowledgement, as everyone reached is.
    assert subjects(receivers, "alice@example.com")[:3] == [
        f"[HIGH] {inc.key} triggered: Checkout errors",
        f"[RESOLVED] {inc.key}: Checkout errors",
        f"[HIGH] {inc.key} reopened: Checkout errors",
    ]
    assert all("acknowledged by bob" in s for s in subjects(receivers, "alice@example.com")[3:])
    assert subjects(receivers, "bob@example.com")[0] == f"[HIGH] {inc.key} escalated to level 2: Checkout errors"
    assert state["stopped"] == "acknowledged by bob" and state["time_to_ack_seconds"] > 0


@pytest.mark.parametrize("local_time", ["12:00", "23:55"], ids=["midday", "before-midnight"])
async def test_the_timeline_says_when_the_next_step_is_due_in_the_configured_zone(esc_db, receivers, clock, monkeypatch, local_time):
    """Every other time a person reads is in `[engine] timezone`; the escalation's line was in UTC.
    A step due on the next day in that zone carries its date (a CI run at 23:50 IST found the
    bare-time expectation wrong), so the engine's clock is put at a chosen local time."""

    from engine.core import timefmt

    monkeypatch.setattr(timefmt, "_configured", None)
    timefmt.set_display_zone("Asia/Kolkata")  # IST, +05:30 all year: no daylight saving to cross
    ist = timefmt.display_zone()
    real = datetime.now(UTC).astimezone(ist)
    wanted = datetime.combine(real.date(), time.fromisoformat(local_time), ist)
    clock.offset = wanted - real
    async with fast_loops(config(receivers, immediate=True)):
        inc = await services.create_incident(title="Checkout errors", severity="high", actor="probe")
        await eventually(lambda: receivers.mails_to("alice@example.com"), timeout=5)
    line = next(summary for kind, summary in await timeline(inc.key) if kind == "escalation")
    due = (clock.now() + timedelta(minutes=10)).astimezone(ist)
    found = re.search(rf"next step at (\d{{4}}-\d\d-\d\d )?(\d\d:\d\d:\d\d) {timefmt.zone_label(due)} unless acknowledged", line)
    assert found and "UTC" not in line, line
    if local_time == "12:00":
        assert found.group(1) is None, line  # today: the time alone
    else:
        assert found.group(1) == f"{due.date().isoformat()} ", line  # tomorrow: with its date
    day = date.fromisoformat(found.group(1).strip()) if found.group(1) else due.date()
    shown = datetime.combine(day, time.fromisoformat(found.group(2)), ist)
    assert abs((shown - due).total_seconds()) < 60, (line, due)


CHANNEL_PAGED = (
    ALICE_AND_BOB
    + """
[escalation_policy.critical]
escalate_after_minutes = 10
[[escalation_policy.critical.levels]]
notify = ["user:alice", "slack:#incidents"]
[[escalation_policy.critical.levels]]
notify = ["user:bob"]

[escalation_policy.high]
escalate_after_minutes = 10
[[escalation_policy.high.levels]]
notify = ["user:alice"]
"""
    + SLACK_AND_MAIL
)


def channel_paged(rx: Any) -> Any:
    # Interactive: pages posted to Slack carry the Acknowledge and Resolve buttons.
    text = CHANNEL_PAGED.replace("{smtp}", str(rx.smtp.port))
    text = text.replace(
        'incident_channels = ["#incidents"]\n',
        'incident_channels = ["#incidents"]\ninteractive = true\nsigning_secret_env = "TEST_SLACK_SIGNING"\n',
    )
    return parse_config_text(text)


async def test_a_reopened_incident_pages_its_channel_once_and_offers_to_acknowledge(esc_db, receivers, clock, monkeypatch):
    monkeypatch.setenv("TEST_SLACK_SIGNING", "slack-signing-secret")
    # #incidents is both a stakeholder and on level 1: the reopening paged it and told it.
    async with fast_loops(channel_paged(receivers)):
        inc = await services.create_incident(title="Checkout errors", severity="critical", actor="probe")
        await eventually(lambda: receivers.mails_to("alice@example.com") and channel(receivers), timeout=5)
        await services.resolve(inc.key, "probe", root_cause="recovered by itself", solution="none needed")
        await services.reopen(inc.key, "probe", reason="the errors are back")
        await eventually(lambda: len(receivers.mails_to("alice@example.com")) >= 3, timeout=5)
        await asyncio.sleep(1.0)  # anything sent twice has arrived by now
    reopened = [t for t in channel(receivers) if "reopened" in t]
    assert len(reopened) == 1, channel(receivers)
    page = receivers.mails_to("alice@example.com")[2].message.get_content()
    assert "the errors are back" in page and f"Acknowledge: pulseguard incident ack {inc.key}" in page, page
    buttons = [
        b for r in receivers.slack.accepted if "reopened" in r.json.get("text", "") for b in r.json["blocks"] if b["type"] == "actions"
    ]
    assert buttons, "the channel's page has no Acknowledge button"


async def test_a_severity_change_pages_the_first_level_once(esc_db, receivers, clock, monkeypatch):
    monkeypatch.setenv("TEST_SLACK_SIGNING", "slack-signing-secret")
    async with fast_loops(channel_paged(receivers)):
        inc = await services.create_incident(title="Checkout errors", severity="high", actor="probe")
        await eventually(lambda: receivers.mails_to("alice@example.com"), timeout=5)
        await services.change_severity(inc.key, "critical", "probe")
        await eventually(lambda: len(receivers.mails_to("alice@example.com")) >= 2, timeout=5)
        await eventually(lambda: any("critical" in t for t in channel(receivers)), timeout=5)
        await asyncio.sleep(1.0)
    mails = subjects(receivers, "alice@example.com")
    assert mails == [f"[HIGH] {inc.key} triggered: Checkout errors", f"[CRITICAL] {inc.key} severity changed to critical: Checkout errors"]
    page = receivers.mails_to("alice@example.com")[1].message.get_content()
    assert "Severity high → critical" in page and f"Acknowledge: pulseguard incident ack {inc.key}" in page, page
    assert len([t for t in channel(receivers) if "severity changed" in t]) == 1, channel(receivers)

"""The specification's PagerDuty switches, end to end: real engine loops, a real database and a
loopback receiver standing in for PagerDuty's Events API v2."""

from __future__ import annotations

import pytest
from support.escalation import config_text, eventually, fast_loops, timeline

from engine.config.loading import parse_config_text
from engine.incidents import services
from engine.storage.escalation_models import Timer
from engine.storage.models import Incident


def with_pagerduty(rx, **switches: bool) -> object:
    lines = "".join(f"\n{k} = {'true' if v else 'false'}" for k, v in switches.items())
    text = config_text(rx, after=0.02).replace('routing_key_env = "TEST_PD_KEY"', 'routing_key_env = "TEST_PD_KEY"' + lines)
    return parse_config_text(text)


async def test_incident_sync_acknowledge_and_resolve_reach_pagerduty_with_the_dedup_key(esc_db, receivers):
    cfg = with_pagerduty(receivers, incident_sync=True)
    async with fast_loops(cfg):
        inc = await services.create_incident(title="Checkout down", severity="critical", actor="probe")
        await eventually(lambda: receivers.pagerduty.accepted, timeout=5)
        await services.acknowledge(inc.key, "alice")
        await eventually(lambda: len(receivers.pagerduty.accepted) >= 2, timeout=5)
        await services.resolve(inc.key, "alice", root_cause="bad deploy", solution="rolled back")
        await eventually(lambda: len(receivers.pagerduty.accepted) >= 3, timeout=5)
    events = [r.json for r in receivers.pagerduty.accepted]
    assert [e["event_action"] for e in events] == ["trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in events} == {f"pulseguard-{inc.key}"}
    assert {e["routing_key"] for e in events} == {"routing-key-1"}
    assert all(r.path == "/v2/enqueue" for r in receivers.pagerduty.accepted)  # events_url, not PagerDuty's own


@pytest.mark.parametrize("handoff", [True, False])
async def test_escalation_policies_hand_pagerduty_routed_incidents_to_pagerduty(esc_db, receivers, handoff):
    cfg = with_pagerduty(receivers, escalation_policies=handoff)
    async with fast_loops(cfg):
        inc = await services.create_incident(title="API down", severity="critical", actor="probe")
        await eventually(lambda: receivers.pagerduty.accepted and receivers.mails_to("alice@example.com"), timeout=5)
        if not handoff:
            # PulseGuard runs its own levels: level 2 is paged after escalate_after_minutes.
            await eventually(lambda: receivers.mails_to("carol@example.com"), timeout=6)
    summaries = [s for k, s in await timeline(inc.key) if k == "escalation"]
    pending = await Timer.filter(incident_id=inc.id, kind="escalate", state="pending").count()
    row = await Incident.get(id=inc.id)
    if handoff:
        assert summaries[0].startswith("level 1 notified: alice (schedule primary)")
        assert summaries[0].endswith("PagerDuty escalates from here by its own policy")
        assert len(summaries) == 1 and pending == 0 and row.escalation["next_at"] is None
        assert row.escalation["policy"]["handoff"] == "pagerduty"
        assert not receivers.mails_to("carol@example.com")
    else:
        assert row.escalation["policy"]["handoff"] is None
        assert any(s.startswith("escalated to level 2") for s in summaries)


async def test_escalation_policies_keep_pulseguard_escalating_without_a_routing_key(esc_db, receivers, monkeypatch):
    """Nothing can reach PagerDuty without its routing key: PulseGuard must not hand off then."""
    monkeypatch.delenv("TEST_PD_KEY")
    cfg = with_pagerduty(receivers, escalation_policies=True)
    async with fast_loops(cfg):
        inc = await services.create_incident(title="API down", severity="critical", actor="probe")
        await eventually(lambda: receivers.mails_to("carol@example.com"), timeout=6)
    row = await Incident.get(id=inc.id)
    assert row.escalation["policy"]["handoff"] is None


def test_config_check_shows_the_handoff_in_the_chain(tmp_path):
    from support.configs import SHARED_EXAMPLE, run_cli

    if not SHARED_EXAMPLE.is_file():
        pytest.skip("the shared example is not next to this checkout")
    # The shared example: critical level 1 notifies "pagerduty" and escalation_policies = true.
    handed = run_cli("config", "check", str(SHARED_EXAMPLE), cwd=tmp_path, env={"PULSEGUARD_PAGERDUTY_ROUTING_KEY": "k"})
    own = run_cli("config", "check", str(SHARED_EXAMPLE), cwd=tmp_path)
    assert handed.returncode == 0 and own.returncode == 0
    critical = next(line for line in handed.stdout.splitlines() if line.strip().startswith("critical:"))
    assert critical.endswith("PagerDuty; then PagerDuty's own escalation policy"), critical
    critical_own = next(line for line in own.stdout.splitlines() if line.strip().startswith("critical:"))
    assert "+5 min" in critical_own and "PagerDuty's own" not in critical_own


def test_config_check_warns_when_no_policy_hands_anything_to_pagerduty(tmp_path):
    """The spec's blocks derive their levels from the schedules, which never name "pagerduty":
    escalation_policies = true then did nothing, and config check said nothing of it."""
    from support.configs import run_cli

    base = (
        '[integrations.pagerduty]\nrouting_key_env = "PD_KEY"\nescalation_policies = true\n'
        '[[users]]\nid = "alice"\nname = "Alice"\nemail = "alice@example.com"\n'
        '[escalation_policy.critical]\nlevels = [{ notify = ["user:alice"%s] }]\n'
    )
    unused = tmp_path / "unused.toml"
    unused.write_text(base % "")
    used = tmp_path / "used.toml"
    used.write_text(base % ', "pagerduty"')
    warned = run_cli("config", "check", str(unused), cwd=tmp_path, env={"PD_KEY": "k"})
    quiet = run_cli("config", "check", str(used), cwd=tmp_path, env={"PD_KEY": "k"})
    assert warned.returncode == 0 and quiet.returncode == 0, warned.stderr + quiet.stderr
    line = f"warning: {unused}: integrations.pagerduty.escalation_policies: has no effect: no escalation policy's first level"
    assert line in warned.stderr
    assert "escalation_policies: has no effect" not in quiet.stderr

"""Escalation policy arithmetic and retry backoff: pure functions, no database."""

from __future__ import annotations

import random

from engine.config.loading import parse_config_text
from engine.escalation.policy import Level, Policy, policy_for
from engine.notify.deliverer import RetryPolicy


def steps(policy: Policy, n: int) -> list[tuple[int, int, float]]:
    level, round_, delay = policy.first_step()
    out = [(level, round_, delay)]
    while len(out) < n:
        nxt = policy.next_step(level, round_)
        if nxt is None:
            break
        level, round_, delay = nxt
        out.append(nxt)
    return out


def test_levels_repeat_then_escalate_and_the_last_one_reminds():
    p = Policy("critical", escalate_after_minutes=5, levels=(Level(("user:a",), repeat=2), Level(("user:b",), escalate_after_minutes=10)))
    assert steps(p, 6) == [(1, 1, 0.0), (1, 2, 5.0), (2, 1, 5.0), (2, 2, 10.0), (2, 3, 10.0), (2, 4, 10.0)]
    assert [p.step_kind(lv, r) for lv, r, _ in steps(p, 4)] == ["triggered", "reminder", "escalated", "reminder"]


def test_without_immediate_notification_level_one_waits():
    p = Policy("high", immediate_notification=False, escalate_after_minutes=0.02, levels=(Level(("slack:#x",)),))
    assert p.first_step() == (1, 1, 0.02)


def test_policy_survives_a_json_round_trip():
    p = Policy("medium", digest_mode=True, digest_interval_minutes=7.5, levels=(Level(("schedule:s", "jira"), 3, 2.5),))
    assert Policy.from_json(p.to_json()) == p


def test_policies_from_the_configuration():
    cfg = parse_config_text("""
[[schedules]]
name = "primary"
users = ["a"]
[[users]]
id = "a"
[escalation_policy.critical]
escalate_after_minutes = 0.5
on_call_rotation = true
[escalation_policy.high]
on_call_rotation = true
[integrations.slack]
incident_channels = ["#inc"]
""")
    crit = policy_for(cfg, "critical")
    assert crit is not None and crit.escalate_after_minutes == 0.5
    # no levels written: the on-call person and the incident channels
    assert crit.levels == (Level(("schedule:primary", "slack:#inc")),)
    # low has no table: it follows the nearest policy (high), never silently nobody
    low = policy_for(cfg, "low")
    assert low is not None and low.follows == "high" and low.levels == (Level(("schedule:primary", "slack:#inc")),)
    assert policy_for(parse_config_text(""), "low") is None


SPEC = """
[escalation_policy.critical]
immediate_notification = true
escalate_after_minutes = 5
on_call_rotation = true
[escalation_policy.high]
immediate_notification = true
escalate_after_minutes = 15
[escalation_policy.medium]
digest_mode = true
escalate_after_minutes = 60

[[users]]
id = "alice"
[[users]]
id = "bob"
[[users]]
id = "carol"
[integrations.slack]
incident_channels = ["#incidents"]
"""


def test_the_spec_policy_without_levels_pages_a_person_and_escalates_to_the_next_schedule():
    cfg = parse_config_text(
        SPEC
        + """
[[schedules]]
name = "primary"
users = ["alice", "carol"]
[[schedules]]
name = "secondary"
users = ["bob"]
"""
    )
    chain = (Level(("schedule:primary", "slack:#incidents")), Level(("schedule:secondary",)))
    for severity, after in (("critical", 5), ("high", 15), ("medium", 60)):
        p = policy_for(cfg, severity)
        assert p is not None and p.levels == chain and p.derived and p.escalate_after_minutes == after
        assert steps(p, 4) == [(1, 1, 0.0), (2, 1, after), (2, 2, after), (2, 3, after)]
    assert policy_for(cfg, "medium").digest_mode  # type: ignore[union-attr]
    low = policy_for(cfg, "low")
    assert low is not None and low.follows == "medium" and low.digest_mode and low.levels == chain


def test_the_incident_service_schedule_is_paged_first_and_other_services_schedules_are_skipped():
    cfg = parse_config_text(
        SPEC
        + """
[[services]]
name = "web"
schedule = "web-oncall"
[[services]]
name = "db"
schedule = "db-oncall"

[[schedules]]
name = "web-oncall"
users = ["alice"]
[[schedules]]
name = "db-oncall"
users = ["carol"]
[[schedules]]
name = "managers"
users = ["bob"]
"""
    )
    assert policy_for(cfg, "high", ["db"]).levels == (  # type: ignore[union-attr]
        Level(("schedule:db-oncall", "slack:#incidents")),
        Level(("schedule:managers",)),
    )
    # web's escalation never walks into the db team's schedule
    assert policy_for(cfg, "high", ["web"]).levels == (  # type: ignore[union-attr]
        Level(("schedule:web-oncall", "slack:#incidents")),
        Level(("schedule:managers",)),
    )
    # no service (or one without a schedule): the first schedule
    assert policy_for(cfg, "high").levels[0].notify[0] == "schedule:web-oncall"  # type: ignore[union-attr]


def test_one_schedule_escalates_to_the_rotations_next_person_and_false_pages_nobody():
    cfg = parse_config_text(
        SPEC
        + """
[[schedules]]
name = "only"
users = ["alice", "bob"]
[escalation_policy.low]
on_call_rotation = false
"""
    )
    assert policy_for(cfg, "high").levels == (Level(("schedule:only", "slack:#incidents")), Level(("next:only",)))  # type: ignore[union-attr]
    assert policy_for(cfg, "low").levels == (Level(("slack:#incidents",)),)  # type: ignore[union-attr]
    solo = parse_config_text(SPEC + '[[schedules]]\nname = "solo"\nusers = ["alice"]\n')
    assert policy_for(solo, "high").levels == (Level(("schedule:solo", "slack:#incidents")),)  # type: ignore[union-attr]


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    r = RetryPolicy(base=2, cap=60, jitter=0.5)
    rng = random.Random(7)
    delays = [r.delay(n, rng=rng) for n in range(1, 9)]
    for n, d in enumerate(delays, start=1):
        full = min(60, 2 * 2 ** (n - 1))
        assert full / 2 <= d <= full
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not lock-step
    assert r.delay(3, retry_after=45) == 45  # the receiver's Retry-After wins when longer
    assert r.delay(3, retry_after=3600) == 60  # but never beyond the cap


def test_next_is_a_recipient_and_names_a_real_schedule():
    from engine.config.fields import ConfigError

    base = '[[users]]\nid = "a"\n[[schedules]]\nname = "s"\nusers = ["a"]\n[[escalation_policy.high.levels]]\n'
    cfg = parse_config_text(base + 'notify = ["schedule:s", "next:s"]\n')
    assert policy_for(cfg, "high").levels == (Level(("schedule:s", "next:s")),)  # type: ignore[union-attr]
    try:
        parse_config_text(base + 'notify = ["next:t"]\n')
    except ConfigError as exc:
        assert exc.problems == ['pulseguard.toml: escalation_policy.high.levels[0].notify[0]: no schedule named "t" (schedules: s)']
    else:
        raise AssertionError("next:t was accepted")

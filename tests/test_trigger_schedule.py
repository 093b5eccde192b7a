"""A trigger's duration is measured on the probe schedule, not on when each probe got to run."""

from __future__ import annotations

from engine.config.conditions import parse_condition
from engine.monitor.probes import Observation
from engine.monitor.triggers.evaluator import Evaluator
from engine.monitor.triggers.rules import Action, Rule

INTERVAL = 0.5


def _fired_after(lags: list[float]) -> int | None:
    """Feed failing samples due an interval apart, each started `lag` late; the sample (1-based)
    on which "held for 3 intervals" fired, or None."""
    fired: list[Action] = []
    rule = Rule(name="down", condition=parse_condition("status_code >= 500"), duration=3 * INTERVAL, severity="critical")
    evaluator = Evaluator([rule], lambda action: fired.append(action) if action.kind in ("open", "fired") else None)
    evaluator.register_target("api", INTERVAL, None)
    start = 1_800_000_000.0
    for n, lag in enumerate(lags, 1):
        due = start + (n - 1) * INTERVAL
        evaluator.observe(Observation("api", due + lag, False, 3.0, status_code=500, lag=lag))
        if fired:
            return n
    return None


def test_a_late_first_probe_does_not_delay_the_trigger_by_an_interval() -> None:
    # The first probe waited 120 ms for the loop (engine start-up, a busy 2-core host); the
    # run 0..3 intervals is still three intervals long by the schedule.
    assert _fired_after([0.12, 0.0, 0.0, 0.0, 0.0]) == 4


def test_a_late_last_probe_does_not_fire_early() -> None:
    # The third sample started late, close to the fourth's due time: still only two intervals.
    assert _fired_after([0.0, 0.0, 0.45, 0.0, 0.0]) == 4


def test_on_time_probes_fire_on_the_sample_that_completes_the_duration() -> None:
    assert _fired_after([0.0] * 6) == 4


def test_recovery_is_measured_on_the_schedule_too() -> None:
    """Fired, then healthy again: "healthy for 3 intervals" says monitoring on the 4th healthy
    sample though the first healthy one started late."""
    actions: list[Action] = []
    rule = Rule(name="down", condition=parse_condition("status_code >= 500"), duration=0.0, severity="critical", recovery=3 * INTERVAL)
    evaluator = Evaluator([rule], actions.append)
    evaluator.register_target("api", INTERVAL, None)
    start = 1_800_000_000.0
    evaluator.observe(Observation("api", start, False, 3.0, status_code=500))
    assert [a.kind for a in actions] == ["open"]
    for n, lag in enumerate([0.12, 0.0, 0.0, 0.0], 1):
        due = start + n * INTERVAL
        evaluator.observe(Observation("api", due + lag, True, 3.0, status_code=200, lag=lag))
        if any(a.kind == "monitoring" for a in actions):
            break
    assert n == 4 and actions[-1].kind == "monitoring"

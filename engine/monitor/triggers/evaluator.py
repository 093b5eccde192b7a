"""The evaluator: synchronous and in memory, it decides per observation what happens to each
trigger and target and emits actions (see the package's docstring for the rules)."""

from __future__ import annotations

import math
from collections import ChainMap, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from engine.config.targets import missing_data_gap
from engine.core.durations import spoken_duration
from engine.monitor.probes import Observation
from engine.monitor.triggers.rules import FLAP_CYCLES, FLAP_WINDOW, PUSHED, Action, Rule, TriggerState


class _TargetHistory:
    __slots__ = ("results", "series", "interval", "service", "tags")

    def __init__(self, interval: float, service: str | None, tags: Sequence[str] = ()) -> None:
        self.results: deque[tuple[float, bool]] = deque()
        self.series: dict[str, float | None] = {}
        self.interval = interval
        self.service = service
        self.tags = list(tags)


class Evaluator:
    """Decides, per observation, what happens; `emit(action)` receives the decisions."""

    def __init__(
        self,
        rules: Iterable[Rule],
        emit: Callable[[Action], None],
        *,
        covered: Callable[[str, str | None, float], bool] = lambda target, service, at: False,
    ) -> None:
        self.rules = [r for r in rules]
        self.emit = emit
        self.covered = covered
        self.states: dict[tuple[str, str], TriggerState] = {}
        self._history: dict[str, _TargetHistory] = {}
        self._window = max([r.duration for r in self.rules] + [60.0])
        self.pushed: dict[str, float | None] = {}

    # -- inputs ----------------------------------------------------------------------------

    def register_target(self, name: str, interval: float, service: str | None, tags: Sequence[str] = ()) -> None:
        self._history[name] = _TargetHistory(interval, service, tags)

    def tags_of(self, target: str) -> list[str]:
        """The target's configured tags: its incidents carry them."""
        hist = self._history.get(target)
        return list(hist.tags) if hist is not None else []

    def observe(self, obs: Observation) -> None:
        hist = self._history.get(obs.target)
        if hist is None:
            return
        hist.results.append((obs.at, obs.ok))
        horizon = obs.at - self._window - hist.interval
        while hist.results and hist.results[0][0] < horizon:
            hist.results.popleft()
        for value in obs.series:
            hist.series[value.key] = value.value
        if obs.series:
            # A name that occurs once in the scrape can be written without its labels.
            counts: dict[str, int] = {}
            for value in obs.series:
                counts[value.name] = counts.get(value.name, 0) + 1
            for value in obs.series:
                if counts[value.name] == 1 and value.labels:
                    hist.series[value.name] = value.value
        if not self.rules:
            return
        probe_values = obs.variables()
        for rule in self.rules:
            if not rule.selects(obs.target, hist.service):
                continue
            if not rule.probe_vars and not (rule.condition.variables & hist.series.keys()):
                continue  # reads only series this target does not produce
            values: Mapping[str, float | None] = ChainMap(probe_values, hist.series, self.pushed)
            if rule.needs_error_rate:
                values = ChainMap({"error_rate": self._error_rate(hist, obs.at, rule.duration)}, probe_values, hist.series, self.pushed)
            self._step(rule, obs.target, hist.service, hist.interval, obs.at, values, obs, obs.lag)

    def observe_pushed(self, key: str, value: float, at: float) -> None:
        """A pushed sample: triggers reading only pushed series evaluate on the pseudo-target."""
        self.pushed[key] = value
        for rule in self.rules:
            if rule.probe_vars or key not in rule.condition.variables:
                continue
            if not rule.selects(PUSHED, None):
                continue
            self._step(rule, PUSHED, None, 60.0, at, dict(self.pushed), None)

    def _error_rate(self, hist: _TargetHistory, at: float, window: float) -> float | None:
        start = at - window
        total = failed = 0
        for t, ok in reversed(hist.results):
            if t < start:
                break
            total += 1
            failed += not ok
        return 100.0 * failed / total if total else None

    # -- the state machine -------------------------------------------------------------------

    def state(self, rule: Rule, target: str, service: str | None) -> TriggerState:
        st = self.states.get((rule.name, target))
        if st is None:
            st = self.states[(rule.name, target)] = TriggerState(rule, target, service)
        return st

    def _step(
        self,
        rule: Rule,
        target: str,
        service: str | None,
        interval: float,
        at: float,
        values: Mapping[str, float | None],
        obs: Observation | None,
        lag: float = 0.0,
    ) -> None:
        """`at` stamps what is shown (when the probe ran); runs are measured on the schedule,
        `at - lag`: a probe that waited for the loop or a concurrency slot starts late, and a
        late first sample made "held for 3 intervals" wait for a 5th (a late third fired early)."""
        truth = rule.condition.truth(values)
        st = self.state(rule, target, service)
        slack = _slack(interval)
        gap = st.last_seen is not None and at - st.last_seen > missing_data_gap(interval)
        st.last_seen = at
        if truth is None:
            return
        if truth:
            if st.breach_start is None or gap:
                st.breach_start, st.breach_lag = at, lag
                st.samples.clear()
            st.last_breach_at, st.last_breach_lag = at, lag
            st.last_values = _clean(values, rule)
            sample = {"at": _iso(at), **st.last_values}
            if obs is not None:
                sample.update(ok=obs.ok, latency_ms=obs.latency_ms, status_code=obs.status_code, error=obs.error)
                if obs.error:
                    st.last_error = obs.error
            st.samples.append(sample)
            st.healthy_since = None
            if st.fired:
                if st.phase == "healthy":
                    st.phase = "breaching"
                    self._cycle(st, at)
                    if not st.flapping:
                        self.emit(Action("event", st, at, f"{rule.name} breached again on {target}", self._evidence(st)))
                return
            if (at - lag) - (st.breach_start - st.breach_lag) + slack >= rule.duration:
                self._fire(st, at)
            return
        # definitely not breaching
        st.breach_start = None
        st.suppressed = False
        if not st.fired:
            return
        if not rule.auto_create:
            self.emit(Action("recovered", st, at, f"{rule.name} recovered on {target}", {"values": _clean(values, rule)}))
            st.clear_binding()
            return
        if st.phase == "breaching":
            st.phase = "healthy"
            st.healthy_since, st.healthy_lag = at, lag
            st.monitoring_sent = False
            if not st.flapping:
                self.emit(Action("recovered", st, at, f"{rule.name} recovered on {target}", {"values": _clean(values, rule)}))
            return
        if st.healthy_since is None:
            st.healthy_since, st.healthy_lag = at, lag
        healthy_for = (at - lag) - (st.healthy_since - st.healthy_lag)
        needed = rule.recovery * (3 if st.flapping else 1)
        if st.flapping and healthy_for >= FLAP_WINDOW:
            st.flapping = False
            st.cycles.clear()
            self.emit(Action("event", st, at, f"{target} has been stable for {spoken_duration(FLAP_WINDOW)}", {"kind": "stable"}))
        if not st.monitoring_sent and healthy_for + slack >= needed:
            st.monitoring_sent = True
            self.emit(Action("monitoring", st, at, f"healthy for {spoken_duration(healthy_for)}", {"healthy_seconds": healthy_for}))
        if rule.auto_resolve is not None and healthy_for + slack >= max(rule.auto_resolve, needed):
            self.emit(Action("resolve", st, at, f"healthy for {spoken_duration(healthy_for)}", {"incident": st.incident}))
            st.clear_binding()

    def _cycle(self, st: TriggerState, at: float) -> None:
        st.cycles.append(at)
        while st.cycles and st.cycles[0] < at - FLAP_WINDOW:
            st.cycles.popleft()
        if not st.flapping and len(st.cycles) >= FLAP_CYCLES:
            st.flapping = True
            self.emit(
                Action(
                    "event",
                    st,
                    at,
                    f"{st.target} is flapping ({len(st.cycles)} breaches in {spoken_duration(FLAP_WINDOW)}); "
                    "further breaches and recoveries are not recorded one by one",
                    {"kind": "flapping", "cycles": len(st.cycles)},
                )
            )

    def _fire(self, st: TriggerState, at: float) -> None:
        if self.covered(st.target, st.service, at) or (st.silenced_until is not None and at < st.silenced_until):
            st.suppressed = True
            return
        st.silenced_until = None
        st.suppressed = False
        st.fired = True
        st.phase = "breaching"
        st.healthy_since = None
        self.emit(Action("open" if st.rule.auto_create else "fired", st, at, data=self._evidence(st)))

    def _evidence(self, st: TriggerState) -> dict[str, Any]:
        return {
            "trigger": st.rule.name,
            "condition": str(st.rule.condition),
            "target": st.target,
            "detected_at": _iso(st.breach_start) if st.breach_start else None,
            "samples": list(st.samples),
            "last_error": st.last_error,
            "values": st.last_values,
        }

    # -- outside events ----------------------------------------------------------------------

    def reevaluate(self, targets: Iterable[str] | None = None, at: float | None = None) -> int:
        """After a maintenance window ends: fire what has been breaching long enough."""
        wanted = set(targets) if targets is not None else None
        fired = 0
        for st in list(self.states.values()):
            if wanted is not None and st.target not in wanted:
                continue
            if st.fired or st.breach_start is None or st.last_breach_at is None:
                continue
            hist = self._history.get(st.target)
            slack = _slack(hist.interval if hist is not None else 60.0)
            if (st.last_breach_at - st.last_breach_lag) - (st.breach_start - st.breach_lag) + slack >= st.rule.duration:
                self._fire(st, at if at is not None else st.last_breach_at)
                fired += st.fired
        return fired

    def silences_changed(self, at: float) -> int:
        """A silence ended or was expired early: forget what silenced firings learned, and fire
        what has been breaching long enough (a matching silence still active records it again)."""
        for st in self.states.values():
            st.silenced_until = None
        return self.reevaluate(None, at=at)

    def restore(
        self, trigger: str, target: str, incident: str, breaching: bool, *, healthy_since: float | None = None, monitoring: bool = False
    ) -> None:
        """Bind an incident another engine opened (after a takeover, or this one before a
        restart). `healthy_since`: when it recovered, if it had (the healthy time counts from
        then, not from the first probe after the restart); `monitoring`: it was moved to
        monitoring already (not again)."""
        service = self._history[target].service if target in self._history else None
        # Built-in rules share a name across targets (one missed_heartbeat rule per heartbeat
        # target): the rule bound must be the one that selects this target.
        rule = next((r for r in self.rules if r.name == trigger and r.selects(target, service)), None)
        if rule is None:
            return
        st = self.state(rule, target, service)
        st.fired = True
        st.incident = incident
        st.phase = "breaching" if breaching else "healthy"
        if not breaching and healthy_since is not None:
            st.healthy_since, st.healthy_lag = healthy_since, 0.0
        st.monitoring_sent = monitoring and not breaching

    def forget(self, targets: set[str]) -> None:
        """Drop what was learned about `targets` (their bucket went to another engine, which
        now owns their incidents): if they come back, restore() binds them afresh."""
        for key in [k for k in self.states if k[1] in targets]:
            del self.states[key]

    def unbind(self, st: TriggerState, *, suppressed: bool = False) -> None:
        st.clear_binding()
        st.suppressed = suppressed


def _slack(interval: float) -> float:
    """How much shorter than a duration a run of samples may measure and still count as lasting
    it. Samples are measured at their due times, an interval apart, but the wall clock and the
    loop's clock differ by a few microseconds either side: without slack, "held for 3
    intervals" fired on the 4th sample or the 5th by chance (recovery likewise)."""
    return min(interval * 0.1, 1.0)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isinf(number):
        return None  # no response at all: shown as null in evidence, not as Infinity
    return number


def _clean(values: Mapping[str, float | None], rule: Rule) -> dict[str, float | None]:
    return {k: _finite(values.get(k)) for k in sorted(rule.condition.variables)}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()

"""Threshold triggers: conditions held for a duration open one incident per trigger and target.

The evaluator is synchronous and in memory: it sees every observation as it arrives and
decides; anything that touches incidents becomes an action on a queue that one worker task
applies through engine.incidents.services, so a probe never waits on the database.

Per trigger and target:

- A breach run starts at the first sample where the condition definitely holds; samples where
  it cannot be decided (missing data) neither extend nor break it; a definite "no" ends it.
  A gap of more than three intervals (no engine, no data) also ends it.
- When the run has lasted `duration_minutes` the trigger fires: one incident (source
  threshold, dedup key `threshold:<trigger>:<target>`, detected_at = the run's first sample,
  evidence = the breaching samples and the last error). An open incident with the same dedup
  key (another engine opened it) gets a timeline event instead; one resolved within the last
  `REOPEN_WINDOW` is reopened rather than duplicated.
- While the incident is open, a new breach after a recovery adds a timeline event; so does the
  recovery. After `recovery_minutes` healthy the incident moves to monitoring, and after
  `auto_resolve_minutes` (when set) it is resolved.
- Flapping (three or more breach/recovery cycles within `FLAP_WINDOW`) is announced once; the
  per-cycle events stop and the healthy period needed before monitoring is tripled.
- While a maintenance window covers the target nothing is opened (recoveries and events on
  incidents already open still go through); when the window ends, `reevaluate` opens what is
  still failing at once.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import math
from collections import ChainMap, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.config.conditions import PROBE_VARIABLES, Condition
from engine.core.timefmt import format_time
from engine.monitor.probes import Observation

log = logging.getLogger("pulseguard.monitor.triggers")

UTC = UTC
ACTOR = "engine"
FLAP_WINDOW = 30 * 60.0
FLAP_CYCLES = 3
REOPEN_WINDOW = 30 * 60.0
MAX_EVIDENCE = 50
PUSHED = "pushed-metrics"  # pseudo-target for triggers that read only pushed series


def dedup_key(trigger: str, target: str) -> str:
    return f"threshold:{trigger}:{target}"


@dataclass
class Rule:
    name: str
    condition: Condition
    duration: float  # seconds
    severity: str
    auto_create: bool = True
    title: str | None = None
    description: str | None = None
    targets: list[str] | None = None
    services: list[str] | None = None
    recovery: float = 300.0
    auto_resolve: float | None = None
    probe_vars: bool = field(init=False)
    needs_error_rate: bool = field(init=False)

    def __post_init__(self) -> None:
        names = {v.split("{", 1)[0] for v in self.condition.variables}
        self.probe_vars = bool(names & set(PROBE_VARIABLES))
        self.needs_error_rate = "error_rate" in self.condition.variables

    @classmethod
    def from_config(cls, name: str, trigger: Any) -> Rule:
        severity = getattr(trigger.severity, "value", trigger.severity)
        auto_resolve = getattr(trigger, "auto_resolve_minutes", None)
        return cls(
            name=name,
            condition=trigger.condition,
            duration=float(trigger.duration_minutes) * 60.0,
            severity=str(severity),
            auto_create=bool(getattr(trigger, "auto_create_incident", True)),
            title=getattr(trigger, "title", None),
            description=getattr(trigger, "description", None),
            targets=getattr(trigger, "targets", None),
            services=getattr(trigger, "services", None),
            recovery=float(getattr(trigger, "recovery_minutes", 5.0)) * 60.0,
            auto_resolve=float(auto_resolve) * 60.0 if auto_resolve is not None else None,
        )

    def selects(self, target: str, service: str | None) -> bool:
        if self.targets is not None and not any(fnmatch.fnmatchcase(target, p) for p in self.targets):
            return False
        if self.services is not None and service not in self.services:
            return False
        return True


def rules_from_config(config: Any) -> list[Rule]:
    """The rules of the configuration's enabled triggers."""
    return [Rule.from_config(name, trig) for name, trig in config.triggers.items() if getattr(trig, "enabled", True)]


@dataclass
class TriggerState:
    rule: Rule
    target: str
    service: str | None
    breach_start: float | None = None
    last_seen: float | None = None
    last_breach_at: float | None = None
    samples: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_EVIDENCE))
    last_error: str | None = None
    last_values: dict[str, float | None] = field(default_factory=dict)
    fired: bool = False
    incident: str | None = None
    phase: str | None = None  # "breaching" or "healthy" once fired
    healthy_since: float | None = None
    monitoring_sent: bool = False
    cycles: deque[float] = field(default_factory=lambda: deque(maxlen=20))
    flapping: bool = False
    suppressed: bool = False

    @property
    def key(self) -> str:
        return dedup_key(self.rule.name, self.target)

    def clear_binding(self) -> None:
        self.fired = False
        self.incident = None
        self.phase = None
        self.healthy_since = None
        self.monitoring_sent = False
        self.flapping = False
        self.cycles.clear()


# Actions the worker applies (kinds: open, event, monitoring, resolve, fired, recovered_silent)
@dataclass
class Action:
    kind: str
    state: TriggerState
    at: float
    summary: str = ""
    data: dict[str, Any] = field(default_factory=dict)


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
            self._step(rule, obs.target, hist.service, hist.interval, obs.at, values, obs)

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
    ) -> None:
        truth = rule.condition.truth(values)
        st = self.state(rule, target, service)
        gap = st.last_seen is not None and at - st.last_seen > max(3 * interval, 60.0)
        st.last_seen = at
        if truth is None:
            return
        if truth:
            if st.breach_start is None or gap:
                st.breach_start = at
                st.samples.clear()
            st.last_breach_at = at
            st.last_values = {k: _finite(values.get(k)) for k in sorted(rule.condition.variables)}
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
            if at - st.breach_start >= rule.duration:
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
            st.healthy_since = at
            st.monitoring_sent = False
            if not st.flapping:
                self.emit(Action("recovered", st, at, f"{rule.name} recovered on {target}", {"values": _clean(values, rule)}))
            return
        if st.healthy_since is None:
            st.healthy_since = at
        healthy_for = at - st.healthy_since
        needed = rule.recovery * (3 if st.flapping else 1)
        if st.flapping and healthy_for >= FLAP_WINDOW:
            st.flapping = False
            st.cycles.clear()
            self.emit(Action("event", st, at, f"{target} has been stable for {FLAP_WINDOW / 60:g} minutes", {"kind": "stable"}))
        if not st.monitoring_sent and healthy_for >= needed:
            st.monitoring_sent = True
            self.emit(Action("monitoring", st, at, f"healthy for {healthy_for / 60:.1f} minutes"))
        if rule.auto_resolve is not None and healthy_for >= max(rule.auto_resolve, needed):
            self.emit(Action("resolve", st, at, f"healthy for {healthy_for / 60:.1f} minutes", {"incident": st.incident}))
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
                    f"{st.target} is flapping ({len(st.cycles)} breaches in {FLAP_WINDOW / 60:g} minutes); "
                    "further breaches and recoveries are not recorded one by one",
                    {"kind": "flapping", "cycles": len(st.cycles)},
                )
            )

    def _fire(self, st: TriggerState, at: float) -> None:
        if self.covered(st.target, st.service, at):
            st.suppressed = True
            return
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
            if st.last_breach_at - st.breach_start >= st.rule.duration:
                self._fire(st, at if at is not None else st.last_breach_at)
                fired += st.fired
        return fired

    def restore(self, trigger: str, target: str, incident: str, breaching: bool) -> None:
        """Bind an incident another engine opened (after a takeover)."""
        rule = next((r for r in self.rules if r.name == trigger), None)
        if rule is None:
            return
        service = self._history[target].service if target in self._history else None
        st = self.state(rule, target, service)
        st.fired = True
        st.incident = incident
        st.phase = "breaching" if breaching else "healthy"

    def unbind(self, st: TriggerState, *, suppressed: bool = False) -> None:
        st.clear_binding()
        st.suppressed = suppressed


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


# ---------------------------------------------------------------------------------------------
# The incident worker


class IncidentWorker:
    """Applies the evaluator's actions through engine.incidents.services, one at a time."""

    def __init__(
        self,
        evaluator: Evaluator,
        *,
        services_of: Callable[[str], list[str]] = lambda target: [],
        covered_now: Callable[[str, str | None], Any] | None = None,
        may_write: Callable[[], bool] = lambda: True,
    ) -> None:
        self.evaluator = evaluator
        self.queue: asyncio.Queue[Action] = asyncio.Queue()
        self.services_of = services_of
        self.covered_now = covered_now
        self.may_write = may_write
        self.opened: list[str] = []
        self.errors = 0

    def submit(self, action: Action) -> None:
        self.queue.put_nowait(action)

    async def run(self, halt: asyncio.Event | None = None) -> None:
        halt = halt or asyncio.Event()
        halted = asyncio.ensure_future(halt.wait())
        got: asyncio.Future[Action] | None = None
        try:
            while not halt.is_set():
                # Waiting on the queue is safe to interrupt; applying an action is not.
                got = asyncio.ensure_future(self.queue.get())
                await asyncio.wait({got, halted}, return_when=asyncio.FIRST_COMPLETED)
                if not got.done():
                    break
                action, got = got.result(), None
                await self._apply_one(action)
        finally:
            halted.cancel()
            if got is not None:
                got.cancel()

    async def _apply_one(self, action: Action) -> None:
        try:
            await self.apply(action)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.errors += 1
            log.exception("applying %s for %s failed", action.kind, action.state.key)
            if action.kind == "open":
                self.evaluator.unbind(action.state)  # the next breaching sample tries again
        finally:
            self.queue.task_done()

    async def drain(self, timeout: float = 5.0) -> None:
        try:
            await asyncio.wait_for(self.queue.join(), timeout)
        except TimeoutError:
            log.warning("%d incident actions left unapplied at shutdown", self.queue.qsize())

    async def apply(self, action: Action) -> None:
        from engine.incidents import services

        if not self.may_write():
            if action.kind == "open":
                self.evaluator.unbind(action.state)
            return
        st = action.state
        if action.kind == "open":
            await self._open(action)
        elif action.kind == "fired":
            await services.record_system_event("trigger_fired", f"{st.rule.name} fired on {st.target}", ACTOR, data=_jsonable(action.data))
        elif action.kind == "resolve":
            await self._resolve(st, action)
        elif st.incident is None:
            if action.kind == "recovered" and not st.rule.auto_create:
                await services.record_system_event("trigger_recovered", action.summary, ACTOR, data=_jsonable(action.data))
            return
        elif action.kind in ("event", "recovered"):
            kind = action.data.get("kind") if action.kind == "event" else "recovered"
            kind = kind if kind in ("flapping", "stable") else ("breach" if action.kind == "event" else "recovered")
            await services.record_event(st.incident, kind, action.summary, ACTOR, data=_jsonable(action.data), at=_utc(action.at))
        elif action.kind == "monitoring":
            await self._to_monitoring(st, action)

    async def _open(self, action: Action) -> None:
        from engine.core.domain import IllegalTransition, Source
        from engine.incidents import services
        from engine.storage.models import Incident

        st = action.state
        rule = st.rule
        if self.covered_now is not None and await self.covered_now(st.target, st.service):
            self.evaluator.unbind(st, suppressed=True)
            return
        evidence = action.data
        existing = await services.find_open_incident(st.key)
        if existing is not None:
            st.incident = existing.key
            await services.record_event(
                existing.key,
                "breach",
                f"{rule.name} breached on {st.target} (incident already open)",
                ACTOR,
                data=_jsonable(evidence),
                at=_utc(action.at),
            )
            return
        recent = (
            await Incident.filter(dedup_key=st.key, status="resolved", resolved_at__gte=_utc(action.at) - timedelta(seconds=REOPEN_WINDOW))
            .order_by("-number")
            .first()
        )
        if recent is not None:
            try:
                await services.reopen(
                    recent.key,
                    ACTOR,
                    reason=f"{rule.name} breached again on {st.target} within {REOPEN_WINDOW / 60:g} minutes of resolution",
                )
            except IllegalTransition:
                pass
            else:
                st.incident = recent.key
                await services.record_event(
                    recent.key, "breach", f"{rule.name} breached again on {st.target}", ACTOR, data=_jsonable(evidence)
                )
                return
        detected = _utc(st.breach_start if st.breach_start is not None else action.at)
        now = datetime.now(UTC)
        if detected > now:
            detected = now
        # The target's last error explains a status or availability trigger; a latency or
        # metric trigger is explained by the values that breached.
        error_vars = {"status_code", "ok", "error_rate"}
        uses_errors = any(v.split("{", 1)[0] in error_vars for v in rule.condition.variables)
        reason = (st.last_error if uses_errors and st.last_error else None) or _reason(evidence) or st.last_error
        title = rule.title or f"{st.target}: {rule.name}" + (f" — {reason}" if reason else "")
        services_ = [s for s in ([st.service] if st.service else self.services_of(st.target)) if s]
        lines = [
            f"Trigger {rule.name} fired on target {st.target}: `{rule.condition}` held for "
            f"{rule.duration / 60:g} minute(s) from {format_time(detected, date=True, seconds=True)}.",
        ]
        if st.last_error:
            lines.append(f"Last error: {st.last_error}")
        if rule.description:
            lines.append(rule.description)
        incident = await services.create_incident(
            title=title[:300],
            severity=rule.severity,
            actor=ACTOR,
            description="\n\n".join(lines),
            services=services_,
            tags=["threshold", *self.evaluator.tags_of(st.target)],
            source=Source.THRESHOLD.value,
            dedup_key=st.key,
            detected_at=detected,
            target=st.target,
            trigger=rule.name,
            analysis=_jsonable({"threshold": evidence}),
        )
        st.incident = incident.key
        self.opened.append(incident.key)
        samples = evidence.get("samples") or []
        try:
            await services.add_evidence(
                incident.key,
                "samples",
                ACTOR,
                content=json.dumps(_jsonable(evidence), indent=1, default=str),
                range_from=_parse_iso(samples[0]["at"]) if samples else None,
                range_to=_parse_iso(samples[-1]["at"]) if samples else None,
                description=f"{len(samples)} breaching sample(s) of {st.target}"
                + (f"; last error: {st.last_error}" if st.last_error else ""),
            )
        except Exception:
            log.exception("attaching evidence to %s failed", incident.key)

    async def _to_monitoring(self, st: TriggerState, action: Action) -> None:
        from engine.core.domain import parse_incident_key
        from engine.incidents import services
        from engine.storage.models import Incident

        incident = await Incident.get_or_none(number=parse_incident_key(st.incident or "0"))
        if incident is None or incident.status == "resolved":
            self.evaluator.unbind(st)
            return
        if incident.status == "monitoring":
            return
        await services.change_status(
            incident.key,
            "monitoring",
            ACTOR,
            message=f"{st.rule.name} on {st.target} has been healthy for {st.rule.recovery / 60:g} minute(s)",
            acknowledges=False,
        )

    async def _resolve(self, st: TriggerState, action: Action) -> None:
        from engine.core.domain import parse_incident_key
        from engine.incidents import services
        from engine.storage.models import Incident

        key = action.data.get("incident") or st.incident
        if key is None:
            return
        incident = await Incident.get_or_none(number=parse_incident_key(key))
        if incident is None or incident.status == "resolved":
            return
        await services.resolve(
            incident.key,
            ACTOR,
            root_cause=f"Transient: {st.rule.name} on {st.target} recovered without intervention",
            solution=f"Resolved automatically after {action.summary}",
            category="unknown",
        )


def _reason(evidence: Mapping[str, Any]) -> str:
    values = evidence.get("values") or {}
    shown = []
    for k, v in values.items():
        if k == "response_time":
            shown.append("no response" if v is None else f"response_time {v:.0f} ms")
        elif k == "error_rate" and isinstance(v, (int, float)):
            shown.append(f"error_rate {v:.0f}%")
        elif isinstance(v, (int, float)):
            shown.append(f"{k} {v:g}")
    return ", ".join(shown[:3])


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, deque)):
        return [_jsonable(v) for v in value]
    return value


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)

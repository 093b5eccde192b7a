"""The incident worker: applies the evaluator's actions through engine.incidents.services, one at
a time, so a probe never waits on the database."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.core.durations import spoken_duration
from engine.core.timefmt import format_time
from engine.monitor.triggers.evaluator import Evaluator
from engine.monitor.triggers.rules import ACTOR, REOPEN_WINDOW, Action, TriggerState

log = logging.getLogger("pulseguard.monitor.triggers")


class IncidentWorker:
    """Applies the evaluator's actions through engine.incidents.services, one at a time."""

    def __init__(
        self,
        evaluator: Evaluator,
        *,
        services_of: Callable[[str], list[str]] = lambda target: [],
        covered_now: Callable[[str, str | None], Any] | None = None,
        may_write: Callable[[], bool] = lambda: True,
        window: float | None = None,
        fingerprint: list[str] | None = None,
    ) -> None:
        self.evaluator = evaluator
        self.window = window  # [grouping] window: a breach later than this after the last opens anew
        self.fingerprint = fingerprint
        # Trigger states (by key) bound to an incident their own was merged into: they add to its
        # timeline but leave its status to its responders.
        self.adopted: set[str] = set()
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
        if st.incident is not None and action.kind in ("event", "recovered"):
            await self._follow_merge(st)
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

    def group_key(self, st: TriggerState) -> str:
        """The fingerprint (dedup key) a breach of `st` groups by: the trigger on the target unless
        [grouping] fingerprint names other parts. It starts with "threshold:" either way, which
        is how an engine finds the trigger incidents left open (see _restore_open_incidents)."""
        if not self.fingerprint or set(self.fingerprint) == {"trigger", "target"}:
            return st.key
        service = st.service or next(iter(self.services_of(st.target)), None)
        parts = {"trigger": st.rule.name, "target": st.target, "service": service, "labels": sorted(self.evaluator.tags_of(st.target))}
        raw = json.dumps({name: parts[name] for name in self.fingerprint if name in parts}, sort_keys=True)
        return "threshold:" + hashlib.sha256(raw.encode()).hexdigest()[:40]

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
        group = self.group_key(st)
        existing = await services.find_group(group, window=self.window)
        self.adopted.discard(st.key)
        if existing is not None:
            st.incident = existing.key
            if existing.dedup_key != group:  # its own incident was merged into this one
                self.adopted.add(st.key)
            summary = f"{rule.name} breached on {st.target} (incident already open)"
            await services.count_firing(existing.key, at=_utc(action.at), event=("breach", summary, ACTOR, _jsonable(evidence)))
            return
        recent = (
            await Incident.filter(
                dedup_key=group,
                status="resolved",
                merged_into__isnull=True,
                resolved_at__gte=_utc(action.at) - timedelta(seconds=REOPEN_WINDOW),
            )
            .order_by("-number")
            .first()
        )
        if recent is not None:
            # Reopening pages like opening: a silence that matches keeps it closed.
            from engine.core.matchers import labels_of
            from engine.incidents.services.silences import silence_firing

            labels = labels_of(
                services=list(recent.services or []),
                target=st.target,
                trigger=rule.name,
                severity=recent.severity,
                source=recent.source,
                tags=list(recent.tags or []),
            )
            silence = await silence_firing(labels, f"{recent.key} would reopen: {rule.name} on {st.target}")
            if silence is not None:
                st.silenced_until = silence.ends_at.timestamp()
                self.evaluator.unbind(st, suppressed=True)
                return
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
                summary = f"{rule.name} breached again on {st.target}"
                await services.count_firing(recent.key, event=("breach", summary, ACTOR, _jsonable(evidence)))
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
            f"Trigger {rule.name} fired on target {st.target}: `{rule.condition}` "
            + (f"held for {spoken_duration(rule.duration)} from " if rule.duration > 0 else "at ")
            + f"{format_time(detected, date=True, seconds=True)}.",
        ]
        if st.last_error:
            lines.append(f"Last error: {st.last_error}")
        if rule.description:
            lines.append(rule.description)
        try:
            incident = await services.create_incident(
                title=title[:300],
                severity=rule.severity,
                actor=ACTOR,
                description="\n\n".join(lines),
                services=services_,
                tags=["threshold", *self.evaluator.tags_of(st.target)],
                source=Source.THRESHOLD.value,
                dedup_key=group,
                detected_at=detected,
                target=st.target,
                trigger=rule.name,
                analysis=_jsonable({"threshold": evidence}),
            )
        except services.Silenced as silenced:
            # Recorded on the feed and counted on the silence; the trigger stays quiet until
            # the silence ends (the monitor re-evaluates it then, so a firing still breaching opens).
            st.silenced_until = silenced.silence.ends_at.timestamp()
            self.evaluator.unbind(st, suppressed=True)
            return
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

    async def _follow_merge(self, st: TriggerState) -> bool:
        """Rebind `st` to the survivor when its incident was merged away, so the trigger's later
        entries land there. True when the bound incident is not this trigger's own (a merge
        survivor): its responders settle it, a recovery here only goes on its timeline."""
        from engine.incidents import services

        if st.incident is None:
            return st.key in self.adopted
        survivor = await services.survivor_of(st.incident)
        if survivor is not None and survivor.key != st.incident:
            st.incident = survivor.key
            self.adopted.add(st.key)
        return st.key in self.adopted

    async def _to_monitoring(self, st: TriggerState, action: Action) -> None:
        from engine.core.domain import parse_incident_key
        from engine.incidents import services
        from engine.storage.models import Incident

        if await self._follow_merge(st):
            return
        incident = await Incident.get_or_none(number=parse_incident_key(st.incident or "0"))
        if incident is None or incident.status == "resolved":
            self.evaluator.unbind(st)
            return
        if incident.status == "monitoring":
            return
        healthy = float(action.data.get("healthy_seconds") or 0.0)
        await services.change_status(
            incident.key,
            "monitoring",
            ACTOR,
            # As long as it has been: across a restart, longer than recovery_minutes.
            message=f"{st.rule.name} on {st.target} has been healthy for {spoken_duration(max(healthy, st.rule.recovery))}",
            acknowledges=False,
        )

    async def _resolve(self, st: TriggerState, action: Action) -> None:
        from engine.incidents import services

        key = action.data.get("incident") or st.incident
        if key is None:
            return
        incident = await services.survivor_of(key)
        adopted = st.key in self.adopted or (incident is not None and incident.key != key)
        self.adopted.discard(st.key)  # the evaluator has let go of the binding
        if incident is None or incident.status == "resolved" or adopted:
            return  # merged into another incident: that one's responders resolve it
        await services.resolve(
            incident.key,
            ACTOR,
            root_cause=st.rule.root_cause or f"Transient: {st.rule.name} on {st.target} recovered without intervention",
            solution=st.rule.solution or f"Resolved automatically after {action.summary}",
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

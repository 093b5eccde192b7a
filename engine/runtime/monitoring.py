"""The monitoring service: probes, metric history, triggers, maintenance and heartbeats.

It is the engine's first leader-only service (Engine adds it unless monitor=False). Nothing
heavy is imported here: the probe path uses asyncio streams, and psutil is imported only when a
host target is probed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol, cast

from engine.runtime.lease import Heartbeat, Lease

log = logging.getLogger("pulseguard.monitor.runtime")


class Engine(Protocol):
    """What the monitoring service uses of engine.runtime.engine.Engine (which imports this
    module, so it is described here rather than imported)."""

    config: Any
    holder: str
    lease: Lease
    cluster: Any  # engine.runtime.cluster.Cluster in a PostgreSQL cluster, else None

    def may_write(self) -> bool: ...


def retention_seconds(config: Any) -> tuple[float, float]:
    """How long raw samples and per-minute rollups are kept. Rollups outlive
    `pattern_recognition.historical_analysis_days`, which looks back over them."""
    settings = config.engine
    historical_days = 30
    try:
        historical_days = config.ai_detection.pattern_recognition.historical_analysis_days
    except AttributeError:
        pass
    return float(settings.raw_retention), max(float(settings.rollup_retention), historical_days * 86400.0)


class MonitorService:
    """Probes, metric history, triggers, maintenance and heartbeats (leader only)."""

    name = "monitor"

    def __init__(self, *, heartbeat_every: float = 10.0, retention_every: float = 600.0, push_poll: float = 5.0) -> None:
        self.heartbeat_every = heartbeat_every
        self.retention_every = retention_every
        self.push_poll = push_poll
        self.running = False
        self._listeners: list[Callable[[Any], None]] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._halt = asyncio.Event()
        self.scheduler: Any = None
        self.writer: Any = None
        self.evaluator: Any = None
        self.worker: Any = None
        self.tracker: Any = None
        self.heartbeat: Heartbeat | None = None
        self.statuses: dict[str, Any] = {}
        self.started_at: float | None = None
        self.cluster: Any = None
        self._owned_buckets: frozenset[int] = frozenset()

    def add_listener(self, fn: Callable[[Any], None]) -> None:
        """`fn(observation)` is called on the loop for every probe result (keep it quick)."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[Any], None]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    async def start(self, engine: Engine) -> None:
        try:
            await self._start(engine)
        except BaseException:
            # Half started (the database went away, say): undo what did start.
            self.running = True
            await self.stop()
            raise

    async def _start(self, engine: Engine) -> None:
        from engine.monitor import maintenance as maint
        from engine.monitor.metrics import MetricsWriter, sync_targets
        from engine.monitor.scheduler import Scheduler
        from engine.monitor.triggers import Evaluator, IncidentWorker, rules_from_config

        self.scheduler = self.writer = self.evaluator = self.worker = self.tracker = self.heartbeat = None
        self._tasks = []
        config = engine.config
        settings = config.engine
        self.engine = engine
        targets = [t for t in config.targets if getattr(t, "enabled", True)]
        self.services_by_target = {t.name: t.service for t in targets}
        clustered = getattr(engine, "cluster", None) is not None
        self.statuses = await sync_targets(targets, keep_state=clustered)
        if clustered:
            for status in self.statuses.values():
                status.dirty = False  # written once this engine probes it (its bucket is ours)
        self.writer = MetricsWriter(self.statuses)
        # Register every probe target's own series now rather than at the first minute boundary.
        await self.writer.registry.ensure((t.name, name, (), "probe") for t in targets for name in ("response_time", "ok"))
        from engine.monitor.heartbeats import heartbeat_rules

        rules = rules_from_config(config) + heartbeat_rules(targets)
        self.tracker = maint.MaintenanceTracker(self._window_ended)
        self.evaluator = Evaluator(rules, self._emit, covered=self.tracker.covers)
        for t in targets:
            every = float(getattr(t, "check_interval", t.interval))
            self.evaluator.register_target(t.name, every, t.service, getattr(t, "tags", ()))
        self.cluster = getattr(engine, "cluster", None)
        self.worker = IncidentWorker(
            self.evaluator,
            covered_now=maint.covered_now,
            may_write=engine.may_write,
            window=engine.config.grouping.window,
            fingerprint=engine.config.grouping.fingerprint,
        )
        await self._restore_open_incidents(None if self.cluster is None else {n for n in self.statuses if self.cluster.owns(n)})
        if self.cluster is not None:
            self._owned_buckets = frozenset(self.cluster.owned)
            self.cluster.on_change = self._buckets_changed
        await self.tracker.refresh()
        self.heartbeat = Heartbeat(engine.holder, every=self.heartbeat_every)
        await self.heartbeat.begin()
        self.scheduler = Scheduler(
            targets,
            self._on_observation,
            concurrency=int(settings.max_concurrent_probes),
            body_limit=int(settings.probe_body_limit),
            owned=self.cluster.owns if self.cluster is not None else None,
        )
        for warning in self.scheduler.warnings:
            log.warning("%s", warning)
        self._halt = asyncio.Event()
        halt = self._halt
        spawn = self._spawn
        spawn(self.writer.run(halt), "writer")
        spawn(self.worker.run(halt), "incidents")
        spawn(self.tracker.run(halt), "maintenance")
        spawn(self.heartbeat.run(halt), "heartbeat")
        spawn(self._housekeeping(settings), "retention")
        if getattr(settings, "heartbeat_url", None):
            spawn(self._ping(str(settings.heartbeat_url), float(settings.heartbeat_interval)), "heartbeat-url")
        spawn(self._watch_pushed(), "pushed-metrics")
        spawn(self._watch_paused(), "paused-targets")
        spawn(self._watch_silences(), "silences")
        for name, status in self.statuses.items():
            if status.paused:
                self.scheduler.pause(name)
        self.scheduler.start()
        self.running = True
        self.started_at = time.time()
        log.info("monitoring %d target(s) with %d trigger(s)", len(targets), len(rules))

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=f"pulseguard:monitor:{name}"))  # type: ignore[arg-type]

    async def stop(self) -> None:
        if not self.running:
            return
        from engine.core.halt import finish

        self.running = False
        if self.cluster is not None:
            self.cluster.on_change = None
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.tracker is not None:
            self.tracker.close()
        if self.worker is not None:
            await self.worker.drain(5.0)
        # Loops finish the round they are in (never cancelled inside a transaction).
        self._halt.set()
        self.writer._wake.set()
        stuck = await finish(self._tasks, 10.0)
        for task in stuck:
            log.warning("engine loop %s did not stop in time and was cancelled", task.get_name())
        self._tasks.clear()
        if self.writer is not None:
            try:
                await self.writer.flush(final=True)
            except Exception:
                log.exception("storing the last batch of samples failed")
        if self.heartbeat is not None:
            try:
                await self.heartbeat.end()
            except Exception as exc:
                from engine.storage.diskfull import disk_full_message

                if (full := disk_full_message(exc)) is not None:
                    log.warning("closing the heartbeat failed: %s", full)
                else:
                    log.exception("closing the heartbeat failed")

    # -- wiring ----------------------------------------------------------------------------

    def _on_observation(self, obs: Any) -> None:
        status = self.statuses.get(obs.target)
        if status is not None:
            status.update(obs)
        self.writer.add(obs)
        self.evaluator.observe(obs)
        for fn in self._listeners:
            try:
                fn(obs)
            except Exception:
                log.exception("observation listener failed")

    def _buckets_changed(self, owned: frozenset[int]) -> None:
        """Targets whose bucket moved: forget the ones handed away, and bind the open incidents
        of the ones taken over, so their recovery resolves what another engine opened."""
        from engine.runtime.cluster import bucket_of

        gained, lost = owned - self._owned_buckets, self._owned_buckets - owned
        self._owned_buckets = owned
        names = set(self.statuses)
        if lost and self.evaluator is not None:
            self.evaluator.forget({n for n in names if bucket_of(n) in lost})
        taken = {n for n in names if bucket_of(n) in gained}
        if taken and self.running:
            self.evaluator.forget(taken)  # whatever this engine knew of them is out of date
            self._spawn(self._restore_open_incidents(taken), "restore-taken-over")

    def _emit(self, action: Any) -> None:
        self.worker.submit(action)

    def _window_ended(self, window: Any) -> None:
        covered = [
            name
            for name, service in self.services_by_target.items()
            if name in window.targets or (service is not None and service in window.services)
        ]
        if covered:
            self.evaluator.reevaluate(covered, at=time.time())

    async def _restore_open_incidents(self, only: set[str] | None = None) -> None:
        """Bind threshold incidents left open by an engine that died (or, in a cluster, by the
        engine that owned these targets' bucket before), so none is duplicated and their
        recovery still resolves them. `only`: just these targets."""
        from engine.core.domain import OPEN_STATUSES
        from engine.storage.models import Event, Incident

        rows = await Incident.filter(
            source="threshold", status__in=[s.value for s in OPEN_STATUSES], dedup_key__startswith="threshold:"
        ).values("id", "number", "dedup_key", "trigger", "target", "status")
        for row in rows:
            trigger, target = row["trigger"], row["target"]
            if not trigger or not target or (only is not None and target not in only):
                continue
            last = (
                await Event.filter(incident_id=row["id"], kind__in=["created", "breach", "recovered", "reopened"]).order_by("-id").first()
            )
            breaching = last is None or last.kind != "recovered"
            self.evaluator.restore(
                trigger,
                target,
                f"INC-{row['number']}",
                breaching,
                healthy_since=None if breaching or last is None or last.at is None else last.at.timestamp(),
                monitoring=row["status"] == "monitoring",
            )

    async def _housekeeping(self, settings: Any) -> None:
        from engine.core.halt import pause
        from engine.monitor.metrics import apply_retention

        raw_keep, rollup_keep = retention_seconds(self.engine.config)
        if await pause(self._halt, 30.0):
            return
        while True:
            try:
                # In a cluster the engine holding bucket 0 applies it for everyone.
                if self.cluster is None or 0 in self.cluster.owned:
                    deleted = await apply_retention(raw_keep, rollup_keep, halt=self._halt)
                else:
                    deleted = {}
                if any(deleted.values()):
                    log.info("retention removed %s", deleted)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("applying retention failed")
            if await pause(self._halt, self.retention_every):
                return

    async def _ping(self, url: str, every: float) -> None:
        from engine.core.halt import pause
        from engine.monitor.httpclient import ProbeError, fetch

        while not self._halt.is_set():
            try:
                async with asyncio.timeout(min(10.0, every)):
                    response = await fetch(url, max_body=4096)
                if response.status_code >= 400:
                    log.warning("heartbeat URL answered HTTP %s", response.status_code)
            except (ProbeError, TimeoutError) as exc:
                log.warning("heartbeat URL ping failed: %s", getattr(exc, "reason", None) or "timeout")
            if await pause(self._halt, every):
                return

    async def _watch_pushed(self) -> None:
        """Pushed samples (CLI, API) reach triggers here, and get their minute rolled up."""
        from engine.monitor.metrics import minute_of, recompute_rollups
        from engine.storage.monitor_models import MetricSample, MetricSeries

        # Tortoise types a flat values_list as tuples
        last = cast("int | None", await MetricSample.all().order_by("-id").first().values_list("id", flat=True))
        cursor = int(last or 0)
        from engine.core.halt import pause

        keys: dict[int, str] = {}
        while not await pause(self._halt, self.push_poll):
            try:
                for series_id, key in await MetricSeries.filter(source="push").values_list("id", "key"):
                    keys[series_id] = key
                # In a cluster, the engine holding bucket 0 evaluates every pushed series (a rule
                # may combine several); the others keep their cursor, so whoever takes bucket 0
                # over starts where it last read, missing nothing.
                if not keys or (self.cluster is not None and 0 not in self.cluster.owned):
                    continue
                rows = (
                    await MetricSample.filter(id__gt=cursor, series_id__in=list(keys))
                    .order_by("id")
                    .limit(5000)
                    .values_list("id", "series_id", "at", "value")
                )
                touched: set[tuple[int, int]] = set()
                for sample_id, series_id, at, value in rows:
                    cursor = max(cursor, sample_id)
                    touched.add((series_id, minute_of(at.timestamp())))
                    self.evaluator.observe_pushed(keys[series_id], float(value), at.timestamp())
                if touched:
                    await recompute_rollups(touched)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading pushed metrics failed")

    async def _watch_silences(self, every: float = 1.0) -> None:
        """When a silence ends (its time, or expired early), triggers it kept quiet that still
        breach fire now: a silence's expiry restores the page."""
        from datetime import UTC, datetime

        from engine.core.halt import pause
        from engine.storage.models import Silence

        since = datetime.now(UTC)
        seen: dict[int, datetime] = {}
        while not await pause(self._halt, every):
            try:
                now = datetime.now(UTC)
                ended = await Silence.filter(ends_at__gt=since - timedelta(seconds=30), ends_at__lte=now).values_list("id", "ends_at")
                fresh = [(i, e) for i, e in ended if seen.get(i) != e]
                for i, e in fresh:
                    seen[i] = e
                if fresh and self.evaluator is not None:
                    self.evaluator.silences_changed(time.time())
                since = now
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading silences failed")

    async def _watch_paused(self) -> None:
        """Operators pause a target by clearing its `active` flag (API, CLI); follow that."""
        from engine.core.halt import pause
        from engine.storage.monitor_models import MonitorTarget

        while not await pause(self._halt, 3.0):
            try:
                paused = set(cast("list[str]", await MonitorTarget.filter(active=False).values_list("name", flat=True)))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading paused targets failed")
                continue
            for name, status in self.statuses.items():
                if (name in paused) != status.paused:
                    status.paused = name in paused
                    status.dirty = True
                    if status.paused:
                        self.scheduler.pause(name)
                    else:
                        self.scheduler.resume(name)
                    log.info("target %s %s", name, "paused" if status.paused else "resumed")

    def prometheus_lines(self) -> list[str]:
        """In-memory figures for a /metrics endpoint (Prometheus text lines)."""
        s = self.scheduler.stats() if self.scheduler else None
        if s is None:
            return []
        lines = [
            "# HELP pulseguard_scheduler_lag_seconds Delay between a probe's due time and its start.",
            "# TYPE pulseguard_scheduler_lag_seconds gauge",
        ]
        for q, v in (("0.5", s.lag_p50), ("0.99", s.lag_p99)):
            if v is not None:
                lines.append(f'pulseguard_scheduler_lag_seconds{{quantile="{q}"}} {v:.6f}')
        lines += [
            "# HELP pulseguard_probes_total Probes run by this engine since it took the lease.",
            "# TYPE pulseguard_probes_total counter",
            f"pulseguard_probes_total {s.probes}",
            "# HELP pulseguard_probe_timeouts_total Probes that hit their timeout.",
            "# TYPE pulseguard_probe_timeouts_total counter",
            f"pulseguard_probe_timeouts_total {s.timeouts}",
            "# HELP pulseguard_probe_rounds_skipped_total Rounds skipped because the previous probe was still running.",
            "# TYPE pulseguard_probe_rounds_skipped_total counter",
            f"pulseguard_probe_rounds_skipped_total {s.skipped}",
        ]
        return lines

    def stats(self) -> dict[str, Any]:
        s = self.scheduler.stats() if self.scheduler else None
        return {
            "targets": len(self.statuses),
            "probes": s.probes if s else 0,
            "timeouts": s.timeouts if s else 0,
            "skipped": s.skipped if s else 0,
            "lag_p50_ms": round(s.lag_p50 * 1000, 2) if s and s.lag_p50 is not None else None,
            "lag_p99_ms": round(s.lag_p99 * 1000, 2) if s and s.lag_p99 is not None else None,
            "stored_results": self.writer.written_results if self.writer else 0,
            "stored_samples": self.writer.written_samples if self.writer else 0,
            "pending": self.writer.pending() if self.writer else 0,
            "incidents_opened": len(self.worker.opened) if self.worker else 0,
            "down": sorted(n for n, st in self.statuses.items() if st.state == "down"),
            "maintenance": [w.title for w in self.tracker.active()] if self.tracker else [],
        }

"""The engine runtime: starts and stops every engine loop, under the engine lease.

Plugging in (escalation, notifications, detection, the REST API, …) — no edit of this file:

    A service is any object with
        name: str
        async def start(self, engine: Engine) -> None   # start your tasks, return promptly
        async def stop(self) -> None                     # stop them within a few seconds

    1. Code that builds the engine adds services directly:
           engine = Engine(config)
           engine.add_service(MyService(), leader_only=True)
           engine.add_loop("digest", digest_loop)      # async def digest_loop(engine, halt): ...
    2. An area can register itself once, at import time of its own module:
           from engine.runtime.engine import register_plugin
           register_plugin(lambda engine: MyService(), name="escalation", leader_only=True)
    3. Or be discovered: any module `engine/<area>/engine_plugin.py` that defines
           def plugins(engine) -> Iterable[service]      # may also yield (service, leader_only)
       is imported by Engine.start() (disable with Engine(discover=False)).

    A loop given to add_loop may take a second argument, an asyncio.Event set when it must
    stop: it should then finish its round and return. Loops are cancelled only if they do not
    return within 10 s, and never mid-transaction on purpose: cancelling a task inside a
    Tortoise SQLite transaction (while BEGIN waits for another process) leaks the connection
    lock and hangs every later query, so a service's stop() should signal, not cancel.

    `leader_only=True` (the default) services run only while this process holds the engine
    lease, and are stopped when it is lost; `leader_only=False` ones (an API server) run for
    the engine's whole life. Services start in the order added and stop in reverse.

    What a service can use: `engine.config` (engine.config.model.Config), `engine.database`,
    `engine.is_leader`, `engine.lease` (`.held` is a cheap fencing check before writing),
    `engine.monitor` (the MonitorService: `.statuses`, `.add_listener(fn)` to see every
    probe Observation, `.scheduler.stats()`), and `engine.holder` (this process's id).

The monitoring service itself (probes, metric history, triggers, maintenance, heartbeats) is
the first leader-only service. Nothing heavy is imported here: the probe path uses asyncio
streams, and psutil is imported only when a host target is probed.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
import pkgutil
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast, runtime_checkable

from engine.core.errors import StartupError
from engine.runtime.lease import Heartbeat, Lease, LeaseFence, make_holder_id

log = logging.getLogger("pulseguard.monitor.runtime")

UTC = UTC


@runtime_checkable
class Service(Protocol):
    name: str

    async def start(self, engine: Engine) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class _Entry:
    service: Any
    leader_only: bool
    started: bool = False


PluginFactory = Callable[["Engine"], Any]
_PLUGINS: list[tuple[str, PluginFactory, bool]] = []


def register_plugin(factory: PluginFactory, *, name: str, leader_only: bool = True) -> None:
    """Add a service factory every Engine created afterwards instantiates (idempotent by name)."""
    for i, (existing, _, _) in enumerate(_PLUGINS):
        if existing == name:
            _PLUGINS[i] = (name, factory, leader_only)
            return
    _PLUGINS.append((name, factory, leader_only))


def discover_plugin_modules() -> list[str]:
    """Names of `engine.<area>.engine_plugin` modules present in the tree."""
    import engine as engine_pkg

    found = []
    for info in pkgutil.iter_modules(engine_pkg.__path__):
        if not info.ispkg:
            continue
        name = f"engine.{info.name}.engine_plugin"
        try:
            if importlib.util.find_spec(name) is not None:
                found.append(name)
        except (ImportError, ValueError):
            continue
    return sorted(found)


class LoopService:
    """A service made of one `async def fn(engine[, halt])` loop (see Engine.add_loop)."""

    def __init__(self, name: str, fn: Callable[..., Awaitable[None]]) -> None:
        import inspect

        self.name = name
        self.fn = fn
        self.cooperative = len(inspect.signature(fn).parameters) >= 2
        self.halt = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self, engine: Engine) -> None:
        self.halt = asyncio.Event()
        self.task = asyncio.create_task(self._guard(engine), name=f"pulseguard:{self.name}")

    async def _guard(self, engine: Engine) -> None:
        try:
            await (self.fn(engine, self.halt) if self.cooperative else self.fn(engine))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("engine loop %s crashed", self.name)

    async def stop(self) -> None:
        from engine.core.halt import finish

        if self.task is not None:
            self.halt.set()
            await finish([self.task], 10.0 if self.cooperative else 0.0)
            self.task = None


def start_summary(
    config: Any, database: Any, *, api_url: str | None = None, new_database: bool = False, waiting: dict[str, int] | None = None
) -> list[str]:
    """What an engine with this configuration runs, as the short block `pulseguard engine` prints
    on start: configuration, database, targets, channels, policies, API; and how many pending
    notifications go to channels it lacks (`waiting`: destination -> rows)."""
    from engine.core.domain import SEVERITY_ORDER
    from engine.notify.channels import settings_from_config

    head = "pulseguard engine:"
    database_text = f"database {database.label}" + (" (new)" if new_database else "") if database is not None else "no database"
    if getattr(config, "path", None) is None:
        lines = [f"{head} no configuration file: probing nothing, notifying nobody; see pulseguard init", f"{head} {database_text}"]
    else:
        channels = settings_from_config(config).available()
        policies = [s.value for s in SEVERITY_ORDER if config.escalation_policy.for_severity(s)]
        targets = [t for t in config.targets if getattr(t, "enabled", True)]
        parts = [
            f"{len(targets)} target{'' if len(targets) == 1 else 's'}",
            f"{len(config.triggers)} trigger{'' if len(config.triggers) == 1 else 's'}",
            f"{len(channels)} channel{'' if len(channels) == 1 else 's'} ({', '.join(channels)})"
            if channels
            else "no channels (notifying nobody)",
            f"policies {'/'.join(policies)}" if policies else "no escalation policies",
        ]
        lines = [f"{head} configuration {config.path}; {database_text}", f"{head} {', '.join(parts)}"]
    if api_url:
        lines[-1] += f"; REST on {api_url.split('://', 1)[-1]}"
    if waiting:
        total = sum(waiting.values())
        lines.append(
            f"{head} {total} pending notification{'' if total == 1 else 's'} for channels this engine "
            f"lacks ({', '.join(sorted(waiting))}): left pending for an engine that has them"
        )
    return lines


class Engine:
    """Runs the engine's services; leader-only ones only while holding the engine lease.

    `standby=True` keeps polling for the lease while another process holds it (a headless
    engine's hot standby); `standby=False` tries once and otherwise stays a pure console.
    """

    def __init__(
        self,
        config: Any = None,
        *,
        database: Any = None,
        monitor: bool = True,
        standby: bool = True,
        discover: bool = True,
        role: str = "engine",
        lease_name: str = "engine",
        lease_ttl: float = 10.0,
        lease_renew: float = 3.0,
        lease_poll: float = 2.0,
        heartbeat_every: float = 10.0,
        on_role_change: Callable[[str], None] | None = None,
    ) -> None:
        if config is None:
            from engine.config.loading import default_config

            config = default_config()
        self.config = config
        self.database = database
        self.holder = make_holder_id(role)
        self.lease = Lease(
            lease_name,
            self.holder,
            ttl=lease_ttl,
            renew=lease_renew,
            poll=lease_poll,
            info={"role": role, "host": socket.gethostname(), "pid": os.getpid()},
        )
        self.standby = standby
        self.discover = discover
        self.heartbeat_every = heartbeat_every
        self.on_role_change = on_role_change
        self._entries: list[_Entry] = []
        self._stop = asyncio.Event()
        self._leader = asyncio.Event()
        self._lease_task: asyncio.Task[None] | None = None
        self._started = False
        self._leader_lock = asyncio.Lock()
        self.monitor: MonitorService | None = None
        self.leader_since: float | None = None
        if monitor:
            self.monitor = MonitorService(heartbeat_every=heartbeat_every)
            self.add_service(self.monitor, leader_only=True)

    def lease_fence(self) -> LeaseFence:
        """A fence on the lease as it is now: services that claim work once (timers, outbox rows)
        check it, so a lost lease stops every claim at once."""
        return LeaseFence(self.lease)

    # -- composition ---------------------------------------------------------------------

    def add_service(self, service: Any, *, leader_only: bool = True) -> None:
        if self._started:
            raise RuntimeError("add services before the engine starts")
        for attr in ("name", "start", "stop"):
            if not hasattr(service, attr):
                raise TypeError(f"{service!r} is not an engine service (it has no {attr!r})")
        self._entries.append(_Entry(service, leader_only))

    def add_loop(self, name: str, fn: Callable[[Engine], Awaitable[None]], *, leader_only: bool = True) -> None:
        self.add_service(LoopService(name, fn), leader_only=leader_only)

    def service(self, name: str) -> Any:
        return next((e.service for e in self._entries if e.service.name == name), None)

    @property
    def services(self) -> list[str]:
        return [e.service.name for e in self._entries]

    def _load_plugins(self) -> None:
        names = {e.service.name for e in self._entries}
        if self.discover:
            for module_name in discover_plugin_modules():
                try:
                    module = importlib.import_module(module_name)
                    produced = list(module.plugins(self) or ())
                except Exception as exc:
                    log.exception("loading engine plugin %s failed", module_name)
                    raise StartupError(f"engine plugin {module_name} failed to load: {type(exc).__name__}: {exc}") from exc
                for item in produced:
                    service, leader_only = item if isinstance(item, tuple) else (item, True)
                    if service.name not in names:
                        self.add_service(service, leader_only=leader_only)
                        names.add(service.name)
        for name, factory, leader_only in list(_PLUGINS):
            if name in names:
                continue
            try:
                service = factory(self)
            except Exception as exc:
                log.exception("creating engine plugin %s failed", name)
                raise StartupError(f"engine plugin {name} failed to load: {type(exc).__name__}: {exc}") from exc
            if service is not None:
                self.add_service(service, leader_only=leader_only)
                names.add(name)

    # -- life cycle ----------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self._leader.is_set() and self.lease.held

    @property
    def role(self) -> str:
        return "engine" if self._leader.is_set() else ("standby" if self.standby and self._started else "console")

    async def start(self) -> None:
        """Start always-on services and the lease loop; returns at once (see wait_leader)."""
        if self._started:
            return
        self._load_plugins()
        self._started = True
        self._stop.clear()
        for entry in self._entries:
            if not entry.leader_only:
                await self._start_entry(entry)
        if self.standby:
            self._lease_task = asyncio.create_task(
                self.lease.hold(self._became_leader, self._lost_leadership, self._stop), name="pulseguard:lease"
            )
        else:
            try:
                if await self.lease.try_acquire():
                    await self._became_leader()
                    self._lease_task = asyncio.create_task(
                        self.lease.hold(self._became_leader, self._lost_leadership, self._stop), name="pulseguard:lease"
                    )
            except Exception as exc:
                log.warning("could not take the engine lease: %s", exc)
            self._notify_role()

    async def wait_leader(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._leader.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def stop(self) -> None:
        if not self._started:
            return
        self._stop.set()
        if self._lease_task is not None:
            await asyncio.gather(self._lease_task, return_exceptions=True)
            self._lease_task = None
        if self._leader.is_set():  # standby=False path with no lease task running
            await self._lost_leadership()
            try:
                await self.lease.release()
            except Exception:
                pass
        for entry in reversed(self._entries):
            if not entry.leader_only:
                await self._stop_entry(entry)
        self._started = False

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _became_leader(self) -> None:
        async with self._leader_lock:
            if self._leader.is_set():
                return
            self.leader_since = time.time()
            for entry in self._entries:
                if entry.leader_only:
                    await self._start_entry(entry)
            self._leader.set()  # after the services started: wait_leader() means "running"
        self._notify_role()

    async def _lost_leadership(self) -> None:
        async with self._leader_lock:
            if not self._leader.is_set():
                return
            self._leader.clear()  # first: from now on nobody may act as the leader
            self.leader_since = None
            for entry in reversed(self._entries):
                if entry.leader_only:
                    await self._stop_entry(entry)
        self._notify_role()

    async def _start_entry(self, entry: _Entry) -> None:
        try:
            await entry.service.start(self)
            entry.started = True
        except Exception:
            log.exception("engine service %s failed to start", entry.service.name)

    async def _stop_entry(self, entry: _Entry, timeout: float = 15.0) -> None:
        if not entry.started:
            return
        entry.started = False
        # Not wait_for: a stop that overruns is left to finish rather than cancelled, since a
        # cancelled database transaction on SQLite would wedge the connection for everyone.
        task = asyncio.ensure_future(entry.service.stop())
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            log.warning("engine service %s did not stop within %ss", entry.service.name, timeout)
            return
        if task.exception() is not None:
            log.error("engine service %s failed to stop cleanly: %r", entry.service.name, task.exception())

    def _notify_role(self) -> None:
        if self.on_role_change is not None:
            try:
                self.on_role_change(self.role)
            except Exception:
                log.exception("role-change callback failed")

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "holder": self.holder, "services": self.services}
        if self.monitor is not None and self.monitor.running:
            out["monitor"] = self.monitor.stats()
        return out


# ---------------------------------------------------------------------------------------------
# The monitoring service


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
        self.statuses = await sync_targets(targets)
        self.writer = MetricsWriter(self.statuses)
        # Register every probe target's own series now rather than at the first minute boundary.
        await self.writer.registry.ensure((t.name, name, (), "probe") for t in targets for name in ("response_time", "ok"))
        rules = rules_from_config(config)
        self.tracker = maint.MaintenanceTracker(self._window_ended)
        self.evaluator = Evaluator(rules, self._emit, covered=self.tracker.covers)
        for t in targets:
            self.evaluator.register_target(t.name, float(t.interval), t.service, getattr(t, "tags", ()))
        self.worker = IncidentWorker(
            self.evaluator,
            covered_now=maint.covered_now,
            may_write=lambda: engine.lease.held,
        )
        await self._restore_open_incidents()
        await self.tracker.refresh()
        self.heartbeat = Heartbeat(engine.holder, every=self.heartbeat_every)
        await self.heartbeat.begin()
        self.scheduler = Scheduler(
            targets,
            self._on_observation,
            concurrency=int(settings.max_concurrent_probes),
            body_limit=int(settings.probe_body_limit),
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

    async def _restore_open_incidents(self) -> None:
        """Bind threshold incidents left open by an engine that died, so none is duplicated."""
        from engine.core.domain import OPEN_STATUSES
        from engine.storage.models import Event, Incident

        rows = await Incident.filter(
            source="threshold", status__in=[s.value for s in OPEN_STATUSES], dedup_key__startswith="threshold:"
        ).values("id", "number", "dedup_key", "trigger", "target")
        for row in rows:
            trigger, target = row["trigger"], row["target"]
            if not trigger or not target:
                continue
            last = (
                await Event.filter(incident_id=row["id"], kind__in=["created", "breach", "recovered", "reopened"]).order_by("-id").first()
            )
            breaching = last is None or last.kind != "recovered"
            self.evaluator.restore(trigger, target, f"INC-{row['number']}", breaching)

    async def _housekeeping(self, settings: Any) -> None:
        from engine.core.halt import pause
        from engine.monitor.metrics import apply_retention

        raw_keep, rollup_keep = retention_seconds(self.engine.config)
        if await pause(self._halt, 30.0):
            return
        while True:
            try:
                deleted = await apply_retention(raw_keep, rollup_keep, halt=self._halt)
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
                if not keys:
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


class MonitorQueries:
    """Read side for the console and the API (set as LocalEngine.targets_provider)."""

    async def list_targets(self) -> list[dict[str, Any]]:
        from engine.monitor.metrics import list_targets

        return await list_targets()

    async def series_samples(self, series: str, since: datetime | None = None, target: str | None = None) -> list[dict[str, Any]]:
        """Points of `series`; `name{target="x"}` or `x/name` selects target x's own series."""
        from engine.config.conditions import series_key
        from engine.monitor.metrics import parse_series, query_series, split_target

        prefix, series = split_target(series)
        target = target or prefix
        name, labels = parse_series(series)
        label_map = dict(labels)
        if target is None and "target" in label_map:
            from engine.storage.monitor_models import MetricSeries

            if not await MetricSeries.exists(key=series_key(name, label_map)):
                target = label_map.pop("target")
                series = series_key(name, label_map)
        return await query_series(series, since=since, target=target)

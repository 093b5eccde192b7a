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

    A service may also have `def halt(self) -> None`: called synchronously as the engine begins
    to stop (Engine.halt), before any service's stop(), to drop at once work that would only
    delay it; it must not wait for anything.

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
the first leader-only service (engine.runtime.monitoring). Nothing heavy is imported here.

This module is the process: services, the lease and start/stop. It also re-exports what lives
beside it (LoopService, MonitorService, retention_seconds, MonitorQueries, start_summary) so
`from engine.runtime.engine import …` keeps working.
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
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Protocol, runtime_checkable

from engine.core.errors import StartupError
from engine.runtime.cluster import Cluster
from engine.runtime.lease import Lease, LeaseDeclined, LeaseFence, make_holder_id
from engine.runtime.loops import LoopService
from engine.runtime.monitoring import MonitorService, retention_seconds
from engine.runtime.queries import MonitorQueries
from engine.runtime.summary import start_summary

__all__ = [
    "Engine",
    "LoopService",
    "MonitorQueries",
    "MonitorService",
    "PluginFactory",
    "Service",
    "discover_plugin_modules",
    "register_plugin",
    "retention_seconds",
    "start_summary",
]

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

# In a cluster, the module lease of the service being started in the current task.
_MODULE_LEASE: ContextVar[Lease | None] = ContextVar("pulseguard_module_lease", default=None)
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
        cluster: bool = False,
        cluster_tick: float = 2.0,
        loops: bool = True,
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
        # PostgreSQL cluster mode: no engine lease; target buckets and per-module leases instead.
        self.cluster: Cluster | None = None
        self._module_leases: dict[str, Lease] = {}
        self._module_tasks: list[asyncio.Task[None]] = []
        self._cluster_task: asyncio.Task[None] | None = None
        self._cluster_stop = asyncio.Event()
        # False: only the services every process runs (the change hooks), never the engine's
        # loops: a console beside a cluster of engines.
        self.loops = loops
        if cluster:
            self.cluster = Cluster(self.holder, info=dict(self.lease.info), ttl=lease_ttl, tick=cluster_tick)
            self.cluster.paused = monitor  # no buckets before the monitor runs (see _join_monitor)
            self.cluster.describe = self._describe
        if monitor:
            self.monitor = MonitorService(heartbeat_every=heartbeat_every)
            self.add_service(self.monitor, leader_only=True)

    def lease_fence(self) -> LeaseFence:
        """A fence on the lease as it is now: services that claim work once (timers, outbox rows)
        check it, so a lost lease stops every claim at once. In a cluster, a service asking while
        it starts gets the fence of its own module's lease."""
        return LeaseFence(_MODULE_LEASE.get() or self.lease)

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
        if self.cluster is not None:
            return self._leader.is_set() and self.cluster.live
        return self._leader.is_set() and self.lease.held

    def may_write(self) -> bool:
        """The cheap check before the engine's own writes (opening a threshold incident)."""
        return self.cluster.live if self.cluster is not None else self.lease.held

    def modules(self) -> dict[str, bool]:
        """In a cluster: each module and whether this engine runs it now."""
        return {name: lease.held for name, lease in self._module_leases.items()}

    @property
    def role(self) -> str:
        if not self.loops:
            return "cluster" if self.cluster is not None else "console"  # a console beside a cluster's engines
        return "engine" if self._leader.is_set() else ("standby" if self.standby and self._started else "console")

    async def start(self) -> None:
        """Start always-on services and the lease loop; returns at once (see wait_leader)."""
        if self._started:
            return
        if self.cluster is not None and getattr(self.database, "kind", "postgres") != "postgres":
            raise StartupError(
                f"[engine] cluster = true needs PostgreSQL, and {getattr(self.database, 'label', 'this database')} is SQLite: "
                "engines cannot share a SQLite file (remove the setting to run one engine here)"
            )
        self._load_plugins()
        self._started = True
        self._stop.clear()
        for entry in self._entries:
            if not entry.leader_only:
                await self._start_entry(entry)
        if not self.loops:
            self._notify_role()
            return
        if self.cluster is not None:
            self._start_cluster()
            return
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

    def halt(self) -> None:
        """Begin stopping, at once and synchronously (stop() does it first too): the loops are
        told to end their rounds, and each running service with a `halt()` method drops work
        that would only delay the stop (a detection worker's fit) while the caller tears down
        the rest (the console its screens). stop() then stops the services in order, as ever.
        Once per stop: a second call does nothing."""
        if not self._started or self._stop.is_set():
            return
        self._stop.set()
        for entry in self._entries:
            halt = getattr(entry.service, "halt", None) if entry.started else None
            if halt is not None:
                try:
                    halt()
                except Exception:
                    log.exception("engine service %s failed to halt", entry.service.name)

    async def stop(self) -> None:
        if not self._started:
            return
        self.halt()
        if self.cluster is not None:
            await self._stop_cluster()
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

    # -- cluster mode ----------------------------------------------------------------------

    def _describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"modules": sorted(name for name, held in self.modules().items() if held)}
        if self.monitor is not None and self.monitor.running:
            stats = self.monitor.stats()
            out.update(probes=stats["probes"], lag_p99_ms=stats["lag_p99_ms"], pending=stats["pending"])
        return out

    def _start_cluster(self) -> None:
        """Join: the cluster loop claims buckets; the monitor starts once it has; every other
        leader-only service runs under its own module lease, taken by whichever engine is first."""
        assert self.cluster is not None
        self._cluster_stop = asyncio.Event()
        self._cluster_task = asyncio.create_task(self.cluster.run(self._cluster_stop), name="pulseguard:cluster")
        self._module_tasks = [asyncio.create_task(self._join_monitor(), name="pulseguard:cluster-monitor")]
        for entry in self._entries:
            if not entry.leader_only or entry.service is self.monitor or getattr(entry.service, "sharded", False):
                continue  # the monitor and sharded services run on every member (_join_monitor)
            lease = Lease(
                f"module:{entry.service.name}",
                self.holder,
                ttl=self.lease.ttl,
                renew=self.lease.renew_every,
                poll=self.lease.poll,
                info=dict(self.lease.info),
                version=self.cluster.version,
            )
            self._module_leases[entry.service.name] = lease
            task = asyncio.create_task(
                lease.hold(self._module_starter(entry, lease), self._module_stopper(entry), self._stop),
                name=f"pulseguard:module:{entry.service.name}",
            )
            self._module_tasks.append(task)

    async def _join_monitor(self) -> None:
        """Start the monitor, then let the cluster claim buckets (an engine whose monitor cannot
        start holds none, so others probe its share), then count as running."""
        from engine.core.halt import pause

        assert self.cluster is not None
        entry = next((e for e in self._entries if e.service is self.monitor), None)
        while entry is not None and not entry.started:
            await self._start_entry(entry)
            if entry.started:
                break
            log.warning("cluster: the monitor did not start; this engine claims no buckets (trying again in 10 s)")
            if await pause(self._stop, 10.0):
                return
        self.cluster.paused = False
        for other in self._entries:
            if other.leader_only and getattr(other.service, "sharded", False):
                await self._start_entry(other)  # each engine for its own buckets
        stop = asyncio.create_task(self._stop.wait())
        joined = asyncio.create_task(self.cluster.joined.wait())
        try:
            await asyncio.wait({stop, joined}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            joined.cancel()
        if self._stop.is_set():
            return
        self.leader_since = time.time()
        self._leader.set()
        self._notify_role()

    def _module_starter(self, entry: _Entry, lease: Lease) -> Callable[[], Awaitable[None]]:
        async def start() -> None:
            # Set in this module's own task (its hold loop): what the service's lease_fence()
            # fences on, whatever other modules start meanwhile.
            token = _MODULE_LEASE.set(lease)
            try:
                await self._start_entry(entry)
            finally:
                _MODULE_LEASE.reset(token)
            if not entry.started:  # its start failed (logged): another engine may run it meanwhile
                raise LeaseDeclined(f"module {entry.service.name} did not start here")
            log.info("cluster: %s runs module %s", self.holder, entry.service.name)

        return start

    def _module_stopper(self, entry: _Entry) -> Callable[[], Awaitable[None]]:
        async def stop() -> None:
            await self._stop_entry(entry)

        return stop

    async def _stop_cluster(self) -> None:
        """Leave: modules stop and hand their leases back, then probing stops, then the buckets
        go back (in that order, so nothing is run by two engines during a clean handover)."""
        assert self.cluster is not None
        try:
            await self.cluster.retire()
        except Exception as exc:
            log.warning("cluster: could not say this engine is stopping (its row expires by itself): %s", exc)
        await asyncio.gather(*self._module_tasks, return_exceptions=True)
        self._module_tasks = []
        self._leader.clear()
        self.leader_since = None
        for entry in reversed(self._entries):
            if entry.service is self.monitor or (entry.leader_only and getattr(entry.service, "sharded", False)):
                await self._stop_entry(entry)
        self._cluster_stop.set()
        if self._cluster_task is not None:
            await asyncio.gather(self._cluster_task, return_exceptions=True)
            self._cluster_task = None
        self._module_leases = {}

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
        if self.cluster is not None:
            out["cluster"] = {"buckets": sorted(self.cluster.owned), "modules": self.modules()}
        if self.monitor is not None and self.monitor.running:
            out["monitor"] = self.monitor.stats()
        return out

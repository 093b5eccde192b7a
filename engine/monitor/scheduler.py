"""The probe scheduler: every target on its own interval, spread over it, under a concurrency
limit and a per-probe timeout.

Each target's first run is offset within its interval by a stable hash of its name, so
targets sharing an interval never all fire together, and the offsets survive a restart.
Due times advance by whole intervals from the first one (no drift); a target whose previous
probe is still running skips that round rather than piling up. Every probe runs as its own
task under `asyncio.timeout`, so a hung target only ever occupies one slot of the limit.

Scheduling lag (actual start minus due time) is kept in a ring buffer for `stats()`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.monitor.heartbeats import probe_heartbeat
from engine.monitor.probes import Observation, resolve_headers, run_probe, timeout_observation

log = logging.getLogger("pulseguard.monitor.scheduler")

ProbeFn = Callable[..., Awaitable[Observation]]
Sink = Callable[[Observation], None]


def spread_offset(name: str, interval: float) -> float:
    """Stable offset in [0, interval) for a target name."""
    return (zlib.crc32(name.encode("utf-8")) / 2**32) * interval


@dataclass(eq=False)
class _Slot:
    target: Any
    interval: float
    timeout: float
    headers: dict[str, str]
    next_due: float = 0.0
    running: bool = False
    handle: asyncio.TimerHandle | None = None
    skipped: int = 0
    paused: bool = False
    last: Observation | None = None


@dataclass
class SchedulerStats:
    targets: int
    probes: int
    skipped: int
    running: int
    lag_p50: float | None
    lag_p99: float | None
    lag_max: float | None
    timeouts: int = 0
    by_target: dict[str, int] = field(default_factory=dict)


class Scheduler:
    """Runs probes and hands each `Observation` to `sink` (synchronously, on the loop)."""

    def __init__(
        self,
        targets: Iterable[Any],
        sink: Sink,
        *,
        concurrency: int = 200,
        body_limit: int = 1_048_576,
        probe: ProbeFn = run_probe,
        lag_window: int = 20000,
        owned: Callable[[str], bool] | None = None,
    ) -> None:
        self._sink = sink
        # In a cluster: whether this engine probes a target now (its bucket is ours).
        self._owned = owned
        self._probe = probe
        self._body_limit = body_limit
        self._sem = asyncio.Semaphore(concurrency)
        self.concurrency = concurrency
        self._slots: dict[str, _Slot] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._lags: deque[float] = deque(maxlen=lag_window)
        self._running = False
        self.probes = 0
        self.timeouts = 0
        self.warnings: list[str] = []
        for target in targets:
            if not getattr(target, "enabled", True):
                continue
            headers, warnings = resolve_headers(target)
            self.warnings += warnings
            # A heartbeat target's interval is how often its job pings; it is checked more often.
            every = float(getattr(target, "check_interval", target.interval))
            self._slots[target.name] = _Slot(target, every, float(target.timeout), headers)

    @property
    def targets(self) -> list[Any]:
        return [s.target for s in self._slots.values()]

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._running = True
        for slot in self._slots.values():
            slot.next_due = now + spread_offset(slot.target.name, slot.interval)
            self._arm(slot)

    async def stop(self) -> None:
        """Stop scheduling and cancel probes in flight (their results are dropped)."""
        self._running = False
        for slot in self._slots.values():
            if slot.handle is not None:
                slot.handle.cancel()
                slot.handle = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def pause(self, name: str) -> None:
        if name in self._slots:
            self._slots[name].paused = True

    def resume(self, name: str) -> None:
        if name in self._slots:
            self._slots[name].paused = False

    def probe_now(self, name: str) -> bool:
        """Run a target's probe at once (outside its rhythm); False if unknown or running."""
        slot = self._slots.get(name)
        if slot is None or slot.running or not self._running:
            return False
        self._launch(slot, asyncio.get_running_loop().time())
        return True

    def _arm(self, slot: _Slot) -> None:
        loop = asyncio.get_running_loop()
        slot.handle = loop.call_at(slot.next_due, self._fire, slot)

    def _fire(self, slot: _Slot) -> None:
        if not self._running:
            return
        loop = asyncio.get_running_loop()
        due = slot.next_due
        now = loop.time()
        slot.next_due = due + slot.interval
        if slot.next_due <= now:  # fell behind by more than an interval: skip the missed rounds
            missed = int((now - due) // slot.interval)
            slot.next_due = due + (missed + 1) * slot.interval
            slot.skipped += missed
        self._arm(slot)
        if slot.paused or (self._owned is not None and not self._owned(slot.target.name)):
            return
        if slot.running:
            slot.skipped += 1
            return
        self._launch(slot, due)

    def _launch(self, slot: _Slot, due: float) -> None:
        slot.running = True
        task = asyncio.get_running_loop().create_task(self._run(slot, due))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, slot: _Slot, due: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with self._sem:
                if self._owned is not None and not self._owned(slot.target.name):
                    return  # its bucket went to another engine while this waited for a slot
                lag = max(0.0, loop.time() - due)
                self._lags.append(lag)
                started = time.time()
                try:
                    async with asyncio.timeout(slot.timeout):
                        if slot.target.kind == "heartbeat":
                            obs = await probe_heartbeat(slot.target)
                        elif slot.target.kind in ("http", "prometheus"):
                            obs = await self._probe(slot.target, headers=slot.headers, body_limit=self._body_limit)
                        else:
                            obs = await self._probe(slot.target)
                except TimeoutError:
                    self.timeouts += 1
                    obs = timeout_observation(slot.target, started, slot.timeout)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a probe bug must not stop the schedule
                    log.exception("probe of %s failed", slot.target.name)
                    obs = Observation(
                        slot.target.name, started, False, None, responded=False, error=f"probe failed: {type(exc).__name__}: {exc}"[:300]
                    )
                obs.lag = lag
            self.probes += 1
            slot.last = obs
            if self._owned is not None and not self._owned(slot.target.name):
                return  # handed over mid-probe: the new owner's results count, not this one
            try:
                self._sink(obs)
            except Exception:
                log.exception("handling the result of %s failed", slot.target.name)
        finally:
            slot.running = False

    def last(self, name: str) -> Observation | None:
        slot = self._slots.get(name)
        return slot.last if slot else None

    def stats(self, reset: bool = False) -> SchedulerStats:
        lags = sorted(self._lags)
        if reset:
            self._lags.clear()

        def pct(p: float) -> float | None:
            if not lags:
                return None
            return lags[min(len(lags) - 1, int(p * len(lags)))]

        return SchedulerStats(
            targets=len(self._slots),
            probes=self.probes,
            skipped=sum(s.skipped for s in self._slots.values()),
            running=len(self._tasks),
            lag_p50=pct(0.50),
            lag_p99=pct(0.99),
            lag_max=lags[-1] if lags else None,
            timeouts=self.timeouts,
        )

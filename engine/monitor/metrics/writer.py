"""The batching writer: probe results and samples buffered and stored a batch at a time, with
per-minute rollups accumulated in memory and the targets' latest state."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict

from tortoise.transactions import in_transaction

from engine.config.conditions import series_key
from engine.monitor.metrics.series import SeriesRegistry, minute_of, rollup_of, utc
from engine.monitor.metrics.sql import (
    RESULT_COLUMNS,
    STATE_COLUMNS,
    as_rows,
    insert_samples_sql,
    insert_sql,
    update_sql,
    upsert_rollups,
)
from engine.monitor.metrics.targets import TargetStatus
from engine.monitor.probes import Observation, SeriesValue

log = logging.getLogger("pulseguard.monitor.metrics")


class MetricsWriter:
    """Buffers probe results and samples; `flush()` stores a batch in one transaction.

    `run()` flushes every `flush_interval` seconds (sooner when `max_batch` rows wait), writes
    completed per-minute rollups, and every `state_interval` seconds the targets' latest state.
    """

    def __init__(
        self,
        statuses: dict[str, TargetStatus] | None = None,
        *,
        flush_interval: float = 1.0,
        state_interval: float = 5.0,
        max_batch: int = 5000,
        rollup_grace: float = 5.0,
    ) -> None:
        self.statuses = statuses if statuses is not None else {}
        self.registry = SeriesRegistry()
        self.flush_interval = flush_interval
        self.state_interval = state_interval
        self.max_batch = max_batch
        self.rollup_grace = rollup_grace
        self.rollup_chunk = 1000
        self._results: list[Observation] = []
        self._samples: list[tuple[str, str, SeriesValue, float]] = []  # target, source, value, at
        self._acc: dict[tuple[str, str, tuple[tuple[str, str], ...], str, int], list[float]] = defaultdict(list)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._last_state = 0.0
        self._state_cursor = 0
        self.written_results = 0
        self.written_samples = 0
        self.written_rollups = 0
        self.batches = 0
        self.flush_seconds = 0.0
        self.failures = 0

    def pending(self) -> int:
        return len(self._results) + len(self._samples)

    def add(self, obs: Observation) -> None:
        """Buffer one probe result (and the series it carries)."""
        target = obs.target
        minute = minute_of(obs.at)
        self._results.append(obs)
        self._acc[(target, "ok", (), "probe", minute)].append(1.0 if obs.ok else 0.0)
        if obs.responded and obs.latency_ms is not None:
            self._acc[(target, "response_time", (), "probe", minute)].append(obs.latency_ms)
        if obs.series:
            kind = self.statuses[target].kind if target in self.statuses else "prometheus"
            for value in obs.series:
                self._samples.append((target, kind, value, obs.at))
                self._acc[(target, value.name, value.labels, kind, minute)].append(value.value)
        if self.pending() >= self.max_batch:
            self._wake.set()

    async def run(self, halt: asyncio.Event | None = None) -> None:
        """Flush until `halt` is set (the caller then runs a final `flush(final=True)`)."""
        halt = halt or asyncio.Event()
        while not halt.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            if halt.is_set():
                return
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                log.exception("storing a batch of samples failed; it is kept for the next try")
                from engine.core.halt import pause

                await pause(halt, 1.0)

    async def flush(self, *, final: bool = False) -> None:
        async with self._lock:
            started = time.perf_counter()
            results, self._results = self._results, []
            samples, self._samples = self._samples, []
            try:
                await self._store(results, samples)
            except BaseException:
                # Put the batch back (bounded) so a brief database hiccup loses nothing.
                self._results = (results + self._results)[-200_000:]
                self._samples = (samples + self._samples)[-500_000:]
                raise
            await self._store_rollups(final=final)
            await self._store_state(final=final)
            self.flush_seconds += time.perf_counter() - started

    # The hot paths write with plain parametrised executemany (see .sql).

    async def _store(self, results: list[Observation], samples: list[tuple[str, str, SeriesValue, float]]) -> None:
        if not results and not samples:
            return
        if samples:
            await self.registry.ensure((t, v.name, v.labels, src) for t, src, v, _ in samples)
        result_rows = [(o.target, utc(o.at), o.ok, o.latency_ms, o.status_code, o.error, o.cert_days_left) for o in results]
        sample_rows = []
        get = self.registry.get
        for target, _, value, at in samples:
            series_id = get(target, value.key)
            if series_id is not None:
                sample_rows.append((series_id, utc(at), value.value))
        async with in_transaction() as conn:
            if result_rows:
                await conn.execute_many(insert_sql(conn, "probe_result", RESULT_COLUMNS), as_rows(result_rows))
            if sample_rows:
                await conn.execute_many(insert_samples_sql(conn), as_rows(sample_rows))
        self.batches += 1
        self.written_results += len(result_rows)
        self.written_samples += len(sample_rows)

    async def _store_rollups(self, *, final: bool = False) -> None:
        """Write completed minutes, at most `rollup_chunk` series per flush (so a minute
        boundary with thousands of series does not stall the loop once a minute)."""
        cutoff = minute_of(time.time() - self.rollup_grace)
        done = [k for k in self._acc if final or k[4] < cutoff]
        if not done:
            return
        if not final:
            done = done[: self.rollup_chunk]
        await self.registry.ensure((k[0], k[1], k[2], k[3]) for k in done)
        rows = []
        for key in done:
            values = self._acc.pop(key)
            series_id = self.registry.get(key[0], series_key(key[1], dict(key[2])))
            if series_id is None or not values:
                continue
            rows.append((series_id, utc(key[4]), *rollup_of(values)))
        if rows:
            await upsert_rollups(rows)
            self.written_rollups += len(rows)

    async def _store_state(self, *, final: bool = False) -> None:
        """Targets' latest state: those that went up or down at once; the others' latest result
        every `state_interval`, spread over the flushes of that interval (no big stall)."""
        now = time.time()
        if final:
            batch = [s for s in self.statuses.values() if s.dirty]
        else:
            batch = [s for s in self.statuses.values() if s.urgent]
            if now - self._last_state >= self.flush_interval:
                self._last_state = now
                share = max(1, math.ceil(len(self.statuses) * self.flush_interval / self.state_interval))
                names = list(self.statuses)
                for i in range(len(names)):
                    status = self.statuses[names[(self._state_cursor + i) % len(names)]]
                    if len(batch) >= share + 50:
                        break
                    if status.dirty and not status.urgent:
                        batch.append(status)
                self._state_cursor = (self._state_cursor + share) % max(1, len(names))
        if not batch:
            return
        rows = [s.state_values() for s in batch]
        async with in_transaction() as conn:
            await conn.execute_many(update_sql(conn, "monitor_target", STATE_COLUMNS, "name"), as_rows(rows))
        for s in batch:
            s.dirty = s.urgent = False

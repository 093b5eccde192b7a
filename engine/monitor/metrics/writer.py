"""Metric history: series, batched sample writes, per-minute rollups, retention and queries.

Writes are batched: the engine buffers probe results and samples and stores each batch with
`bulk_create` in one transaction (never one transaction per sample, never while a probe is on
the wire). Per-minute rollups (count, min, max, mean, p95) are accumulated in memory as
samples are buffered and written once a minute is complete; a pushed sample (CLI or API)
recomputes its own minute's rollup from the stored samples.

Probe targets own two derived series: `response_time` (milliseconds, responses only) and `ok`
(1 or 0, so the rollup mean is the availability). Their raw points are the probe results.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from tortoise.transactions import in_transaction

from engine.config.conditions import ConditionError, Series, Truthy, parse_condition, series_key
from engine.core.domain import InvalidInput
from engine.monitor.probes import Observation, SeriesValue
from engine.storage.monitor_models import (
    EngineHeartbeat,
    MetricRollup,
    MetricSample,
    MetricSeries,
    MonitorTarget,
    ProbeResult,
)

log = logging.getLogger("pulseguard.monitor.metrics")

UTC = UTC
PROBE_SERIES = ("response_time", "ok")
TARGET_STATE_FIELDS = [
    "kind",
    "address",
    "service",
    "interval",
    "timeout",
    "state",
    "last_at",
    "last_ok",
    "last_latency_ms",
    "last_status_code",
    "last_error",
    "last_ok_at",
    "last_change_at",
    "cert_days_left",
    "updated_at",
]


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def minute_of(ts: float) -> int:
    return int(ts // 60) * 60


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def rollup_of(values: Sequence[float]) -> tuple[int, float, float, float, float]:
    ordered = sorted(values)
    return len(ordered), ordered[0], ordered[-1], sum(ordered) / len(ordered), percentile(ordered, 0.95)


def parse_series(text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """`name` or `name{label="value",…}` (the condition language's spelling) → name, labels."""
    raw = (text or "").strip()
    if not raw:
        raise InvalidInput("series", "must not be empty")
    try:
        condition = parse_condition(raw)
    except ConditionError as exc:
        raise InvalidInput("series", f"{raw!r} is not a series name ({exc})") from None
    root = condition.root
    if not isinstance(root, Truthy) or not isinstance(root.operand, Series):
        raise InvalidInput("series", f'{raw!r} is not a series name (expected name or name{{label="value"}})')
    return root.operand.name, root.operand.labels


def split_target(text: str) -> tuple[str | None, str]:
    """`target/series` (how correlation and anomaly detection name a target's series, e.g.
    `checkout-api/response_time`) → ("checkout-api", "response_time"); anything else → (None, text).
    Target names cannot contain `/`, so the first one before any label block separates them."""
    raw = (text or "").strip()
    head = raw.split("{", 1)[0]
    if "/" not in head:
        return None, raw
    target, series = raw.split("/", 1)
    if not target.strip() or not series.strip():
        raise InvalidInput("series", f'{raw!r} is not a series name (expected name, name{{label="value"}} or target/name)')
    return target.strip(), series.strip()


# ---------------------------------------------------------------------------------------------
# Series registry


class SeriesRegistry:
    """(target, key) → series id, creating rows on first sight (idempotent across processes)."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], int] = {}

    def get(self, target: str, key: str) -> int | None:
        return self._ids.get((target, key))

    async def ensure(self, items: Iterable[tuple[str, str, tuple[tuple[str, str], ...], str]]) -> None:
        """Make sure series exist for (target, name, labels, source) items."""
        missing: dict[tuple[str, str], tuple[str, tuple[tuple[str, str], ...], str]] = {}
        for target, name, labels, source in items:
            key = series_key(name, dict(labels))
            if (target, key) not in self._ids:
                missing[(target, key)] = (name, labels, source)
        if not missing:
            return
        now = datetime.now(UTC)
        rows = [
            MetricSeries(target=t, key=k, name=name, labels=dict(labels), source=source, created_at=now)
            for (t, k), (name, labels, source) in missing.items()
        ]
        await MetricSeries.bulk_create(rows, batch_size=500, ignore_conflicts=True)
        by_target: dict[str, list[str]] = defaultdict(list)
        for t, k in missing:
            by_target[t].append(k)
        for t, keys in by_target.items():
            for i in range(0, len(keys), 500):
                found = await MetricSeries.filter(target=t, key__in=keys[i : i + 500]).values_list("id", "key")
                for series_id, key in found:
                    self._ids[(t, key)] = series_id


# ---------------------------------------------------------------------------------------------
# Target status (what `pulseguard targets` and the console show)


@dataclass
class TargetStatus:
    name: str
    kind: str
    address: str
    service: str | None
    interval: float
    timeout: float
    state: str = "unknown"
    last: Observation | None = None
    last_ok_at: float | None = None
    last_change_at: float | None = None
    cert_days_left: float | None = None
    paused: bool = False
    dirty: bool = True
    urgent: bool = True  # went up or down since its row was last written

    def update(self, obs: Observation) -> bool:
        """Apply an observation; True when the target changed between up and down."""
        new_state = "up" if obs.ok else "down"
        changed = new_state != self.state
        if changed:
            self.last_change_at = obs.at
            self.urgent = True
        self.state = new_state
        self.last = obs
        if obs.ok:
            self.last_ok_at = obs.at
        if obs.cert_days_left is not None:
            self.cert_days_left = obs.cert_days_left
        self.dirty = True
        return changed

    def state_values(self) -> tuple[Any, ...]:
        """Values of STATE_COLUMNS, then the name (for the UPDATE's WHERE)."""
        obs = self.last
        return (
            "paused" if self.paused else self.state,
            not self.paused,
            utc(obs.at) if obs else None,
            obs.ok if obs else None,
            obs.latency_ms if obs else None,
            obs.status_code if obs else None,
            (obs.error or None) if obs else None,
            utc(self.last_ok_at) if self.last_ok_at else None,
            utc(self.last_change_at) if self.last_change_at else None,
            self.cert_days_left,
            datetime.now(UTC),
            self.name,
        )

    def row(self) -> MonitorTarget:
        obs = self.last
        return MonitorTarget(
            name=self.name,
            kind=self.kind,
            address=self.address[:500],
            service=self.service,
            interval=self.interval,
            timeout=self.timeout,
            active=not self.paused,
            state="paused" if self.paused else self.state,
            last_at=utc(obs.at) if obs else None,
            last_ok=obs.ok if obs else None,
            last_latency_ms=obs.latency_ms if obs else None,
            last_status_code=obs.status_code if obs else None,
            last_error=(obs.error or None) if obs else None,
            last_ok_at=utc(self.last_ok_at) if self.last_ok_at else None,
            last_change_at=utc(self.last_change_at) if self.last_change_at else None,
            cert_days_left=self.cert_days_left,
            updated_at=datetime.now(UTC),
        )


RESULT_COLUMNS = ("target", "at", "ok", "latency_ms", "status_code", "error", "cert_days_left")
SAMPLE_COLUMNS = ("series_id", "at", "value")
ROLLUP_COLUMNS = ("series_id", "minute", "count", "min", "max", "mean", "p95")
STATE_COLUMNS = (
    "state",
    "active",
    "last_at",
    "last_ok",
    "last_latency_ms",
    "last_status_code",
    "last_error",
    "last_ok_at",
    "last_change_at",
    "cert_days_left",
    "updated_at",
)


def sql_placeholders(conn: Any, n: int, start: int = 1) -> list[str]:
    if conn.capabilities.dialect == "postgres":
        return [f"${i}" for i in range(start, start + n)]
    return ["?"] * n


def _rows(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows for `execute_many`, which takes any sequences though Tortoise types it `list[list]`."""
    return cast("list[list[Any]]", rows)


def _insert_sql(conn: Any, table: str, columns: Sequence[str]) -> str:
    return f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({", ".join(sql_placeholders(conn, len(columns)))})'


def _update_sql(conn: Any, table: str, columns: Sequence[str], key: str) -> str:
    marks = sql_placeholders(conn, len(columns) + 1)
    sets = ", ".join(f'"{c}" = {m}' for c, m in zip(columns, marks))
    return f'UPDATE "{table}" SET {sets} WHERE "{key}" = {marks[-1]}'


async def upsert_rollups(rows: list[tuple[Any, ...]]) -> None:
    """Insert or replace per-minute rollups (series_id, minute, count, min, max, mean, p95).
    A minute split between two engines (a takeover) keeps the later write."""
    async with in_transaction() as conn:
        sql = (
            _insert_sql(conn, "metric_rollup", ROLLUP_COLUMNS)
            + ' ON CONFLICT ("series_id", "minute") DO UPDATE SET '
            + ", ".join(f'"{c}" = excluded."{c}"' for c in ROLLUP_COLUMNS[2:])
        )
        await conn.execute_many(sql, _rows(rows))


def target_address(target: Any) -> str:
    kind = target.kind
    if kind in ("http", "prometheus"):
        return str(target.url)
    if kind == "tcp":
        return f"{target.host}:{target.port}"
    return "this host"


async def sync_targets(targets: Iterable[Any]) -> dict[str, TargetStatus]:
    """Write the configured targets to `monitor_target` (keeping their last state and their
    `active` flag, which operators clear to pause a target) and mark the ones no longer
    configured `removed`. Returns the in-memory status of each target."""
    configured = [t for t in targets if getattr(t, "enabled", True)]
    existing = {r.name: r for r in await MonitorTarget.all()}
    statuses: dict[str, TargetStatus] = {}
    for t in configured:
        status = TargetStatus(t.name, t.kind, target_address(t), t.service, float(t.interval), float(t.timeout))
        old = existing.get(t.name)
        if old is not None and old.last_at is not None:
            # Keep the last known result visible; the state is unknown until the next probe.
            status.last = Observation(
                t.name,
                old.last_at.timestamp(),
                bool(old.last_ok),
                old.last_latency_ms,
                status_code=old.last_status_code,
                error=old.last_error,
            )
            status.state = "unknown"
            status.last_ok_at = old.last_ok_at.timestamp() if old.last_ok_at else None
            status.last_change_at = old.last_change_at.timestamp() if old.last_change_at else None
            status.cert_days_left = old.cert_days_left
        statuses[t.name] = status
    rows = [s.row() for s in statuses.values()]
    if rows:
        await MonitorTarget.bulk_create(rows, batch_size=500, on_conflict=["name"], update_fields=TARGET_STATE_FIELDS)
    gone = [name for name in existing if name not in statuses]
    if gone:
        await MonitorTarget.filter(name__in=gone).update(state="removed")
    for name, row in existing.items():
        if name in statuses and not row.active:
            statuses[name].paused = True
    return statuses


# ---------------------------------------------------------------------------------------------
# The batching writer


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

    # The hot paths write with plain parametrised executemany: building ORM objects for
    # thousands of rows a second costs more event-loop time than the database work itself.

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
                await conn.execute_many(_insert_sql(conn, "probe_result", RESULT_COLUMNS), _rows(result_rows))
            if sample_rows:
                # A series has one value per instant (pushes are idempotent by series and time).
                sql = _insert_sql(conn, "metric_sample", SAMPLE_COLUMNS) + ' ON CONFLICT ("series_id", "at") DO NOTHING'
                await conn.execute_many(sql, _rows(sample_rows))
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
            await conn.execute_many(_update_sql(conn, "monitor_target", STATE_COLUMNS, "name"), _rows(rows))
        for s in batch:
            s.dirty = s.urgent = False


# ---------------------------------------------------------------------------------------------
# Pushed samples


@dataclass(frozen=True)
class PushedSample:
    """A checked pushed sample: `key` is the series key, `at` is in UTC."""

    name: str
    labels: tuple[tuple[str, str], ...]
    key: str
    value: float
    at: datetime


def check_sample(
    series: str, value: Any, at: datetime | None, *, now: datetime | None = None, max_future: float = 300.0, where: str = ""
) -> PushedSample:
    """A pushed sample checked for storing; InvalidInput names the field (prefixed by `where`,
    such as `samples[3].`) for a bad series, value or time."""
    from engine.core.domain import check_time

    try:
        name, labels = parse_series(series)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}series", exc.message) from None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(f"{where}value", f"{value!r} is not a number") from None
    if math.isnan(number) or math.isinf(number):
        raise InvalidInput(f"{where}value", "must be a finite number")
    now = now or datetime.now(UTC)
    when = now if at is None else at
    if when.tzinfo is None:
        raise InvalidInput(f"{where}at", "must carry a time zone")
    when = check_time(when, f"{where}at").astimezone(UTC)
    if when > now + timedelta(seconds=max_future):
        raise InvalidInput(f"{where}at", f"{when.isoformat()} is in the future")
    key = series_key(name, dict(labels))
    if len(key) > 500:
        raise InvalidInput(f"{where}series", "is longer than 500 characters with its labels")
    return PushedSample(name, labels, key, number, when)


async def store_pushed(samples: Sequence[PushedSample]) -> dict[str, int]:
    """Store checked pushed samples at once: their samples and the rollups of the minutes they
    fall in, in one transaction. A sample whose series already has a value at that instant is
    not stored again, so a retried batch stores nothing twice."""
    if not samples:
        return {"stored": 0, "duplicates": 0, "series": 0}
    registry = SeriesRegistry()
    await registry.ensure({("", s.name, s.labels, "push") for s in samples})
    rows: dict[tuple[int, datetime], float] = {}
    for s in samples:
        series_id = registry.get("", s.key)
        assert series_id is not None
        rows.setdefault((series_id, s.at), s.value)  # the first of a batch's repeats counts
    minutes = {(series_id, minute_of(at.timestamp())) for series_id, at in rows}
    lo = datetime.fromtimestamp(min(m for _, m in minutes), UTC)
    hi = datetime.fromtimestamp(max(m for _, m in minutes) + 60, UTC)
    ids = sorted({series_id for series_id, _ in minutes})
    async with in_transaction() as conn:
        stored: dict[tuple[int, datetime], float] = {}
        for i in range(0, len(ids), 500):
            found = (
                await MetricSample.filter(series_id__in=ids[i : i + 500], at__gte=lo, at__lt=hi)
                .using_db(conn)
                .values_list("series_id", "at", "value")
            )
            for series_id, at, value in found:
                if (series_id, minute_of(at.timestamp())) in minutes:
                    stored[(series_id, at.astimezone(UTC))] = float(value)
        new = [(series_id, at, value) for (series_id, at), value in rows.items() if (series_id, at) not in stored]
        if new:
            sql = _insert_sql(conn, "metric_sample", SAMPLE_COLUMNS) + ' ON CONFLICT ("series_id", "at") DO NOTHING'
            await conn.execute_many(sql, _rows(new))
        by_minute: dict[tuple[int, int], list[float]] = defaultdict(list)
        for (series_id, at), value in [*stored.items(), *((k, v) for k, v in rows.items() if k not in stored)]:
            key = (series_id, minute_of(at.timestamp()))
            if key in minutes:
                by_minute[key].append(value)
        rollups = [(series_id, utc(minute), *rollup_of(values)) for (series_id, minute), values in sorted(by_minute.items())]
        sql = (
            _insert_sql(conn, "metric_rollup", ROLLUP_COLUMNS)
            + ' ON CONFLICT ("series_id", "minute") DO UPDATE SET '
            + ", ".join(f'"{c}" = excluded."{c}"' for c in ROLLUP_COLUMNS[2:])
        )
        await conn.execute_many(sql, _rows(rollups))
    return {"stored": len(new), "duplicates": len(samples) - len(new), "series": len(ids)}


async def push_sample(series: str, value: float, at: datetime | None = None, *, max_future: float = 300.0) -> dict[str, Any]:
    """Store one pushed sample (series `name` or `name{label="v"}`) and refresh its minute's
    rollup. Raises InvalidInput for a bad series, value or time."""
    sample = check_sample(series, value, at, max_future=max_future)
    result = await store_pushed([sample])
    return {"series": sample.key, "at": sample.at.isoformat(), "value": sample.value, "stored": bool(result["stored"])}


async def recompute_rollups(pairs: Iterable[tuple[int, int]]) -> int:
    """Rebuild the rollups of (series id, minute epoch) pairs from their stored samples (for
    pushed series, whose samples may arrive late or from other processes)."""
    rows = []
    for series_id, minute in sorted(set(pairs)):
        start = datetime.fromtimestamp(minute, UTC)
        values = cast(
            "list[float]",
            await MetricSample.filter(series_id=series_id, at__gte=start, at__lt=start + timedelta(minutes=1)).values_list(
                "value", flat=True
            ),
        )  # Tortoise types flat values_list as tuples
        if values:
            rows.append((series_id, start, *rollup_of([float(v) for v in values])))
    if rows:
        await upsert_rollups(rows)
    return len(rows)


# ---------------------------------------------------------------------------------------------
# Retention


async def apply_retention(
    raw_seconds: float, rollup_seconds: float, *, chunk: int = 5000, now: datetime | None = None, halt: asyncio.Event | None = None
) -> dict[str, int]:
    """Delete raw results and samples older than `raw_seconds` and rollups (and heartbeat
    rows) older than `rollup_seconds`, in chunks so no transaction stays open for long."""
    now = now or datetime.now(UTC)
    deleted: dict[str, int] = {}
    plan = [
        (ProbeResult, "at", now - timedelta(seconds=raw_seconds)),
        (MetricSample, "at", now - timedelta(seconds=raw_seconds)),
        (MetricRollup, "minute", now - timedelta(seconds=rollup_seconds)),
        (EngineHeartbeat, "beat_at", now - timedelta(seconds=rollup_seconds)),
    ]
    for model, column, cutoff in plan:
        total = 0
        while True:
            ids = await model.filter(**{f"{column}__lt": cutoff}).limit(chunk).values_list("id", flat=True)
            if not ids:
                break
            total += await model.filter(id__in=list(ids)).delete()
            if len(ids) < chunk or (halt is not None and halt.is_set()):
                break
            await asyncio.sleep(0)
        deleted[model._meta.db_table] = total
    return deleted


# ---------------------------------------------------------------------------------------------
# Queries


async def find_series(series: str, target: str | None = None) -> list[MetricSeries]:
    """Series whose key matches `series` exactly (any target unless `target` is given)."""
    name, labels = parse_series(series)
    query = MetricSeries.filter(key=series_key(name, dict(labels)))
    if target is not None:
        query = query.filter(target=target)
    return await query.order_by("target", "id")


async def query_series(
    series: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    target: str | None = None,
    resolution: str = "auto",
    limit: int = 10_000,
) -> list[dict[str, Any]]:
    """Points of a series, oldest first: raw points (`at`, `value`) when `resolution` is
    "raw", per-minute rollups (`at`, `count`, `min`, `max`, `mean`, `p95`, `value` = mean)
    when "minute"; "auto" picks raw for spans up to 6 hours."""
    now = datetime.now(UTC)
    until = until or now
    since = since or (until - timedelta(hours=1))
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidInput("since", "must carry a time zone")
    if resolution not in ("auto", "raw", "minute"):
        raise InvalidInput("resolution", f"unknown resolution {resolution!r} (expected auto, raw or minute)")
    if resolution == "auto":
        resolution = "raw" if until - since <= timedelta(hours=6) else "minute"
    found = await find_series(series, target)
    name, _ = parse_series(series)
    if not found and name in PROBE_SERIES and target is not None:
        found = []  # a probe target not yet rolled up still has raw probe results
    out: list[dict[str, Any]] = []
    targets_done: set[str] = set()
    for row in found:
        targets_done.add(row.target)
        label = {"series": row.key, "target": row.target or None}
        if resolution == "minute":
            rollups = (
                await MetricRollup.filter(series_id=row.id, minute__gte=since, minute__lt=until)
                .order_by("minute")
                .limit(limit)
                .values("minute", "count", "min", "max", "mean", "p95")
            )
            out += [
                {**label, "at": r["minute"].isoformat(), "value": r["mean"], **{k: r[k] for k in ("count", "min", "max", "mean", "p95")}}
                for r in rollups
            ]
        elif row.source == "probe":
            out += await _probe_points(row.target, row.name, since, until, limit, label)
        else:
            points = (
                await MetricSample.filter(series_id=row.id, at__gte=since, at__lt=until)
                .order_by("at")
                .limit(limit)
                .values_list("at", "value")
            )
            out += [{**label, "at": at.isoformat(), "value": value} for at, value in points]
    if resolution == "raw" and name in PROBE_SERIES and target is not None and target not in targets_done:
        out += await _probe_points(target, name, since, until, limit, {"series": name, "target": target})
    return out


async def _probe_points(
    target: str, name: str, since: datetime, until: datetime, limit: int, label: dict[str, Any]
) -> list[dict[str, Any]]:
    rows = (
        await ProbeResult.filter(target=target, at__gte=since, at__lt=until)
        .order_by("at")
        .limit(limit)
        .values_list("at", "ok", "latency_ms", "status_code", "error")
    )
    if name == "ok":
        return [{**label, "at": at.isoformat(), "value": 1.0 if ok else 0.0, "error": error} for at, ok, _, _, error in rows]
    # Response times of probes that got a response (a timeout's "latency" is the timeout).
    return [
        {**label, "at": at.isoformat(), "value": latency, "status_code": code, "ok": ok, "error": error}
        for at, ok, latency, code, error in rows
        if latency is not None and (ok or code is not None)
    ]


async def list_targets() -> list[dict[str, Any]]:
    """Every configured target with its state (up, down, unknown, paused) and last result."""
    rows = await MonitorTarget.exclude(state="removed").order_by("name").values()
    out = []
    for r in rows:
        out.append({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()})
    return out


async def heartbeat_gaps(since: datetime, until: datetime | None = None, *, slack: float = 30.0) -> list[tuple[datetime, datetime]]:
    """Stretches in [since, until] when no engine was running: "no data", neither up nor down.
    A run counts until its last heartbeat plus `slack` seconds."""
    until = until or datetime.now(UTC)
    runs = (
        await EngineHeartbeat.filter(beat_at__gte=since - timedelta(seconds=slack), started_at__lte=until)
        .order_by("started_at")
        .values_list("started_at", "beat_at", "stopped_at")
    )
    gaps: list[tuple[datetime, datetime]] = []
    cursor = since
    for started, beat, stopped in runs:
        end = stopped or (beat + timedelta(seconds=slack))
        if started > cursor:
            gaps.append((cursor, min(started, until)))
        cursor = max(cursor, end)
        if cursor >= until:
            break
    if cursor < until:
        gaps.append((cursor, until))
    return [(a, b) for a, b in gaps if b > a]


async def uptime(target: str, since: datetime, until: datetime | None = None) -> dict[str, Any]:
    """Availability from the per-minute `ok` rollups: minutes without data are "no data" and
    count neither as up nor as down."""
    until = until or datetime.now(UTC)
    series = await MetricSeries.get_or_none(target=target, key="ok")
    total_minutes = max(0, int((until - since).total_seconds() // 60))
    if series is None:
        return {"target": target, "uptime_percent": None, "minutes_with_data": 0, "minutes_without_data": total_minutes}
    rows = cast(
        "list[float]", await MetricRollup.filter(series_id=series.id, minute__gte=since, minute__lt=until).values_list("mean", flat=True)
    )
    known = len(rows)
    percent = round(100.0 * sum(rows) / known, 3) if known else None
    return {"target": target, "uptime_percent": percent, "minutes_with_data": known, "minutes_without_data": max(0, total_minutes - known)}

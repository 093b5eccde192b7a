"""Scale-out on PostgreSQL: several engines on one database share the work.

PostgreSQL is the coordinator; there is no consensus protocol of our own.

- Membership. Each engine keeps a row in `engine_member`, renewed every `tick` seconds. An engine
  that stops (SIGTERM) deletes it at once; one that dies (kill -9) drops out `ttl` seconds after
  its last renewal.
- Shards. A target belongs to one of `BUCKETS` buckets (CRC-32 of its name), and each bucket's row
  in `engine_shard` names the engine probing its targets. Every tick an engine renews its buckets,
  gives back those above its fair share (`ceil(BUCKETS / live engines)`), and claims free or
  expired ones up to it with `FOR UPDATE SKIP LOCKED`, so two engines never claim one bucket. An
  engine joining, leaving or dying is absorbed within two ticks (plus `ttl` for a death).
- Fencing. An engine stops probing a bucket before it gives it back, and stops probing all of
  them once its own clock says they expired without a renewal (a frozen or cut-off engine),
  which is never later than the moment another engine may take them (clock skew aside: keep the
  engines' clocks in sync with NTP, as for the lease).

Singleton work (escalation, incident enrichment) runs under per-module leases
(engine.runtime.lease.Lease named `module:NAME`), see engine.runtime.engine. Anomaly detection
runs on every engine for the targets it probes. Work without a target (retention, pushed series)
is done by the engine holding bucket 0.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise import connections

log = logging.getLogger("pulseguard.cluster")

BUCKETS = 64


def bucket_of(name: str, buckets: int = BUCKETS) -> int:
    """The bucket a target belongs to: the same in every process and release."""
    return zlib.crc32(name.encode("utf-8")) % buckets


def release_version() -> str:
    """This PulseGuard's version, stored on the rows it holds."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pulseguard")
    except PackageNotFoundError:
        return "0"


def version_key(text: str) -> tuple[int, ...]:
    """ "0.10.2" after "0.9.5", and a final release after its pre-releases ("1.0.0" after
    "1.0.0rc1"); local labels ("+g1a2b") do not count; anything unparsable sorts first."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)([^+]*)", text or "")
    if match is None:
        return ()
    release = tuple(int(part) for part in match.group(1).split("."))[:4]
    release += (0,) * (4 - len(release))
    pre = match.group(2).strip(".-_")
    if not pre:
        return (*release, 1, 0)
    digits = re.findall(r"\d+", pre)
    return (*release, 0, int(digits[0]) if digits else 0)


class Cluster:
    """This engine's membership and its share of the target buckets."""

    def __init__(
        self,
        holder: str,
        *,
        info: dict[str, Any] | None = None,
        ttl: float = 10.0,
        tick: float = 2.0,
        buckets: int = BUCKETS,
        version: str | None = None,
        on_change: Callable[[frozenset[int]], None] | None = None,
    ) -> None:
        if tick >= ttl:
            raise ValueError("the cluster tick must be shorter than its ttl")
        self.holder = holder
        self.info = dict(info or {})
        self.ttl = ttl
        self.tick = tick
        self.buckets = buckets
        self.version = version or release_version()
        self.on_change = on_change
        self.owned: frozenset[int] = frozenset()
        self.valid_until = 0.0  # monotonic: the buckets are ours until then without a renewal
        self.members: list[dict[str, Any]] = []
        self.problem: str | None = None
        self.joined = asyncio.Event()
        # True: a member that claims no buckets (and gives back any it has): its monitor is not running.
        self.paused = False
        self.retiring = False
        self._rows_made = False
        # Figures stored on the member row each tick (probes, lag, modules): `engine status`.
        self.describe: Callable[[], dict[str, Any]] = dict

    # -- what the scheduler asks ---------------------------------------------------------

    @property
    def live(self) -> bool:
        return time.monotonic() < self.valid_until

    def owns(self, name: str) -> bool:
        """True while this engine probes target `name` (its bucket is ours and unexpired)."""
        return time.monotonic() < self.valid_until and bucket_of(name, self.buckets) in self.owned

    def _set_owned(self, owned: frozenset[int]) -> None:
        if owned == self.owned:
            return
        gained, lost = owned - self.owned, self.owned - owned
        self.owned = owned
        if gained or lost:
            log.info("cluster: %s now probes %d of %d buckets (+%d, -%d)", self.holder, len(owned), self.buckets, len(gained), len(lost))
        if self.on_change is not None:
            try:
                self.on_change(owned)
            except Exception:
                log.exception("cluster change callback failed")

    # -- one round -----------------------------------------------------------------------

    async def step(self) -> None:
        """Beat, then renew, give back and claim buckets (one transaction each)."""
        if self.retiring:
            return  # stopping: no more beats or claims; leave() hands the buckets back
        started = time.monotonic()
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=self.ttl)
        conn = connections.get("default")
        if not self._rows_made:
            await conn.execute_query(
                "INSERT INTO engine_shard (bucket, generation) SELECT b, 0 FROM generate_series(0, $1::int - 1) AS b "
                "ON CONFLICT (bucket) DO NOTHING",
                [self.buckets],
            )
            self._rows_made = True
        await conn.execute_query(
            "INSERT INTO engine_member (holder, info, version, started_at, beat_at, expires_at) VALUES ($1, $2::jsonb, $3, $4, $4, $5) "
            "ON CONFLICT (holder) DO UPDATE SET info = EXCLUDED.info, version = EXCLUDED.version, "
            "beat_at = EXCLUDED.beat_at, expires_at = EXCLUDED.expires_at",
            [self.holder, _json({**self.info, **self._described(), "buckets": len(self.owned)}), self.version, now, expires],
        )
        # Rows of engines gone for a minute are only history.
        await conn.execute_query("DELETE FROM engine_member WHERE expires_at < $1", [now - timedelta(seconds=60)])
        members = await conn.execute_query_dict(
            "SELECT holder, info, version, started_at, beat_at, expires_at FROM engine_member WHERE expires_at > $1 ORDER BY started_at",
            [now],
        )
        self.members = members
        live = max(1, len(members))
        fair = 0 if self.paused else math.ceil(self.buckets / live)
        # Ours (even if expired by the clock: nobody has taken it while the row still names us).
        rows = await conn.execute_query_dict(
            "UPDATE engine_shard SET expires_at = $2 WHERE holder = $1 RETURNING bucket", [self.holder, expires]
        )
        mine = sorted(r["bucket"] for r in rows)
        if len(mine) > fair:
            give = mine[fair:]
            keep = frozenset(mine[:fair])
            self.valid_until = started + self.ttl
            self._set_owned(keep)  # stop probing them first, then hand them over
            await conn.execute_query(
                "UPDATE engine_shard SET holder = NULL, expires_at = NULL WHERE holder = $1 AND bucket = ANY($2::int[])",
                [self.holder, give],
            )
            mine = sorted(keep)
        elif len(mine) < fair:
            claimed = await conn.execute_query_dict(
                "UPDATE engine_shard SET holder = $1, expires_at = $2, claimed_at = $3, generation = generation + 1 "
                "WHERE bucket IN (SELECT bucket FROM engine_shard WHERE holder IS NULL OR expires_at IS NULL OR expires_at < $3 "
                "ORDER BY bucket LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING bucket",
                [self.holder, expires, now, fair - len(mine)],
            )
            mine = sorted([*mine, *(r["bucket"] for r in claimed)])
        self.valid_until = started + self.ttl
        self._set_owned(frozenset(mine))
        self.joined.set()

    def _described(self) -> dict[str, Any]:
        try:
            return self.describe()
        except Exception:
            log.exception("describing this engine failed")
            return {}

    async def retire(self) -> None:
        """Stopping: other engines stop counting this one at once (a newer release's modules are
        no longer deferred to it), while it still holds its buckets until `leave`."""
        self.retiring = True
        conn = connections.get("default")
        await conn.execute_query("UPDATE engine_member SET expires_at = $2 WHERE holder = $1", [self.holder, datetime.now(UTC)])

    async def leave(self) -> None:
        """Give every bucket back and drop out at once (a clean stop: others take over next tick)."""
        self.valid_until = 0.0
        self._set_owned(frozenset())
        conn = connections.get("default")
        await conn.execute_query("UPDATE engine_shard SET holder = NULL, expires_at = NULL WHERE holder = $1", [self.holder])
        await conn.execute_query("DELETE FROM engine_member WHERE holder = $1", [self.holder])

    async def run(self, stop: asyncio.Event) -> None:
        """Step every `tick` seconds until `stop`, then leave."""
        from engine.core.halt import pause

        while not stop.is_set():
            try:
                await self.step()
                if self.problem is not None:
                    log.info("cluster: the database answers again")
                    self.problem = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                from engine.storage.diskfull import disk_full_message

                problem = disk_full_message(exc) or f"database error: {exc}"
                if problem != self.problem:
                    log.warning("cluster: %s", problem)
                self.problem = problem
                if not self.live and self.owned:
                    log.warning("cluster: could not renew the buckets in time; stopped probing them")
                    self._set_owned(frozenset())
            # Wake up before the buckets expire by this process's clock even after a slow round.
            wait = min(self.tick, max(0.2, self.valid_until - time.monotonic() - self.tick)) if self.owned else self.tick
            if await pause(stop, wait):
                break
        try:
            await self.leave()
        except Exception as exc:
            log.warning("leaving the cluster failed (the buckets return when they expire): %s", exc)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), default=str)


async def live_engines() -> int:
    """How many engines of the cluster are running now (the console's status line)."""
    conn = connections.get("default")
    rows = await conn.execute_query_dict("SELECT count(*) AS n FROM engine_member WHERE expires_at > $1", [datetime.now(UTC)])
    return int(rows[0]["n"])


async def cluster_view(now: datetime | None = None) -> dict[str, Any]:
    """Engines, their buckets and heartbeats, module leases: what `pulseguard engine status` shows."""
    now = now or datetime.now(UTC)
    conn = connections.get("default")
    pg = conn.capabilities.dialect == "postgres"
    members: list[dict[str, Any]] = []
    shards: list[dict[str, Any]] = []
    if pg:
        members = await conn.execute_query_dict(
            "SELECT holder, info, version, started_at, beat_at, expires_at FROM engine_member ORDER BY started_at"
        )
        shards = await conn.execute_query_dict(
            "SELECT bucket, holder, expires_at, claimed_at, generation FROM engine_shard ORDER BY bucket"
        )
    leases = await conn.execute_query_dict(
        "SELECT name, holder, holder_info, acquired_at, renewed_at, expires_at, generation, version FROM engine_lease ORDER BY name"
    )
    import json

    for row in members:
        row["info"] = json.loads(row["info"]) if isinstance(row["info"], str) else (row["info"] or {})
    for row in leases:
        row["holder_info"] = json.loads(row["holder_info"]) if isinstance(row["holder_info"], str) else (row["holder_info"] or {})
    return {"now": now, "members": members, "shards": shards, "leases": leases}


async def cluster_summary() -> dict[str, Any] | None:
    """The cluster as JSON-ready data (`engine status --json`, GET /api/engine, the console's
    targets screen); None when no cluster has run on this database."""
    view = await cluster_view()
    now: datetime = view["now"]
    claimed = {s["bucket"]: s["holder"] for s in view["shards"] if s["holder"] and s["expires_at"] and s["expires_at"] > now}
    modules_held = any(row["name"].startswith("module:") and row["expires_at"] > now for row in view["leases"])
    if not (view["members"] or claimed or modules_held):
        # Nothing runs as a cluster now: a database that ran one and went back to a single
        # engine shows that engine's lease; one that never ran an engine shows nothing.
        single = any(row["name"] == "engine" for row in view["leases"])
        if single or not (view["shards"] or any(row["name"].startswith("module:") for row in view["leases"])):
            return None
    engines = []
    for m in view["members"]:
        alive = m["expires_at"] > now
        info = m["info"]
        engines.append(
            {
                "engine": m["holder"],
                "alive": alive,
                "version": m["version"],
                "started_at": m["started_at"].isoformat(),
                "beat_seconds_ago": round((now - m["beat_at"]).total_seconds(), 1),
                "buckets": sum(1 for h in claimed.values() if h == m["holder"]) if alive else 0,
                "modules": list(info.get("modules") or []) if alive else [],
                "probes": info.get("probes"),
                "lag_p99_ms": info.get("lag_p99_ms"),
            }
        )
    modules = [
        {
            "module": row["name"].removeprefix("module:"),
            "holder": row["holder"],
            "held": row["expires_at"] > now,
            "version": row["version"] or None,
            "expires_in_seconds": round((row["expires_at"] - now).total_seconds(), 1),
        }
        for row in view["leases"]
        if row["name"].startswith("module:")
    ]
    return {
        "engines": engines,
        "running": sum(1 for e in engines if e["alive"]),
        "buckets": {"total": len(view["shards"]), "claimed": len(claimed)},
        "modules": modules,
    }

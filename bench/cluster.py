"""A cluster of `pulseguard engine` processes on one PostgreSQL database (`[engine] cluster = true`),
bounded and on loopback only.

    .venv/bin/python bench/cluster.py [--targets 6000] [--interval 1] [--seconds 10] [--chaos 40] [--pg URL]

Three measurements, each on a fresh schema:

  scaling   --targets HTTP targets served by a loopback server process, probed every --interval
            seconds by 1, 2 and 3 engine processes: probes stored per second (counted in the
            database), per engine, scaling efficiency against one engine, probe lag p99 and
            the CPU of the engines, the target server and PostgreSQL (in cores)
  failover  kill -9 of the engine holding the escalation module: seconds until another engine
            runs it, and until every target bucket is claimed again
  chaos     incidents opened every second for --chaos seconds, each paging a loopback webhook
            at two escalation levels 3 s apart, while engines are killed (kill -9 or SIGTERM)
            and restarted at random every few seconds; then every incident is acknowledged and
            the outbox drained. Prints pages stored, pages received, lost pages (stored, never
            received), pages received twice under one idempotency key (a crash between send
            and record: deduplicated at the edge by that key) and pages sent under two
            different keys (a second, different page: must be 0)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from notify import RECEIVER  # noqa: E402  (bench/notify.py: the loopback webhook receiver)
from probes import serve  # noqa: E402  (bench/probes.py: loopback target servers in a child process)

PG = os.environ.get("PULSEGUARD_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")

# The receiver keeps, per Idempotency-Key, how often it arrived and the page it carried.
CHAOS_RECEIVER = RECEIVER.replace(
    """                key = (json.loads(body).get("incident") or {}).get("key")
                seen.setdefault(key, now)""",
    """                doc = json.loads(body)
                page = "|".join(str(x) for x in ((doc.get("incident") or {}).get("key"), doc.get("event"), doc.get("level"), doc.get("round"), doc.get("recipient")))
                entry = seen.setdefault(doc.get("delivery"), [0, page])
                entry[0] += 1""",
)


def url_for(schema: str) -> str:
    return f"{PG}{'&' if '?' in PG else '?'}schema={schema}"


async def pg(schema: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(PG.split("?", 1)[0])
    await conn.execute(f'SET search_path TO "{schema}"')
    return conn


async def drop(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG.split("?", 1)[0])
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.close()


def cli(schema: str, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pulseguard_tui", *args, "--as", "bench"]
    if config is not None:
        argv += ["--config", str(config)]
    return subprocess.run(argv, cwd=ROOT, env={**os.environ, "PULSEGUARD_DB": url_for(schema)}, capture_output=True, text=True, timeout=120)


def init(schema: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Create and migrate the schema. `init` also writes a configuration file: name one in the
    scratch folder, or it would land in the repository (the working directory)."""
    return cli(schema, "init", str(tmp / f"{schema}.toml"))


def start_engine(schema: str, config: Path, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115  (the child writes it; closed with the process)
    return subprocess.Popen(
        [sys.executable, "-m", "pulseguard_tui", "engine", "--config", str(config), "--as", "bench", "-q"],
        cwd=ROOT,
        env={**os.environ, "PULSEGUARD_DB": url_for(schema)},
        stdout=out,
        stderr=out,
    )


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


async def wait_balanced(schema: str, n: int, timeout: float = 60) -> float:
    """Seconds until `n` live engines hold all 64 buckets between them."""
    conn = await pg(schema)
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            try:
                rows = await conn.fetch(
                    "SELECT s.holder FROM engine_shard s JOIN engine_member m ON m.holder = s.holder "
                    "WHERE s.expires_at > now() AND m.expires_at > now()"
                )
                if len(rows) == 64 and len({r["holder"] for r in rows}) == n:
                    return time.monotonic() - started
            except Exception:  # the tables appear with the first engine's migrations
                pass
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise SystemExit(f"{n} engine(s) did not share the buckets within {timeout}s")


def targets_config(n: int, ports: list[int], interval: float) -> str:
    lines = ["[engine]\ncluster = true\nmax_concurrent_probes = 1000\n"]
    for i in range(n):
        lines.append(
            f'[[targets]]\nname = "t{i:05d}"\nkind = "http"\nurl = "http://127.0.0.1:{ports[i % len(ports)]}/t/{i}"\n'
            f'interval = "{interval:g}s"\ntimeout = "5s"\n'
        )
    return "\n".join(lines)


def cpu_of(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def postgres_pids() -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")]


async def scaling(args: argparse.Namespace, tmp: Path) -> list[dict[str, float]]:
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(4, child), daemon=True)
    server.start()
    ports = parent.recv()
    results = []
    try:
        for n in (1, 2, 3):
            schema = f"bench_cluster_{n}_{uuid.uuid4().hex[:6]}"
            config = tmp / f"scale{n}.toml"
            config.write_text(targets_config(args.targets, ports, args.interval))
            assert init(schema, tmp).returncode == 0
            procs = [start_engine(schema, config, tmp / f"scale{n}-{i}.log") for i in range(n)]
            try:
                await wait_balanced(schema, n)
                await asyncio.sleep(max(3.0, 2 * args.interval))  # every target has run, spread starts behind us
                pids = [p.pid for p in procs]
                pg_pids = postgres_pids()
                cpu0, srv0, pg0, wall0 = cpu_of(pids), cpu_of([server.pid or 0]), cpu_of(pg_pids), time.monotonic()
                t0 = time.time()
                await asyncio.sleep(args.seconds)
                t1 = time.time()
                wall = time.monotonic() - wall0
                cpu, srv, pgc = (cpu_of(pids) - cpu0) / wall, (cpu_of([server.pid or 0]) - srv0) / wall, (cpu_of(pg_pids) - pg0) / wall
                await asyncio.sleep(3.0)  # the last batches reach the database
                conn = await pg(schema)
                try:
                    stored = await conn.fetchval(
                        "SELECT count(*) FROM probe_result WHERE at >= to_timestamp($1) AND at < to_timestamp($2)", t0, t1
                    )
                    members = await conn.fetch("SELECT info FROM engine_member WHERE expires_at > now()")
                finally:
                    await conn.close()
                lags = [json.loads(m["info"]).get("lag_p99_ms") or 0.0 for m in members]
                results.append(
                    {
                        "engines": n,
                        "rate": stored / (t1 - t0),
                        "lag_p99": max(lags) if lags else 0.0,
                        "cpu": cpu,
                        "server_cpu": srv,
                        "pg_cpu": pgc,
                    }
                )
                print(f"  {n} engine(s): {stored / (t1 - t0):,.0f} probes/s stored", flush=True)
            finally:
                stop(procs)
                await drop(schema)
    finally:
        parent.send("stop")
        server.join(10)
    return results


async def failover(tmp: Path) -> dict[str, float]:
    schema = f"bench_failover_{uuid.uuid4().hex[:6]}"
    config = tmp / "failover.toml"
    config.write_text('[engine]\ncluster = true\n\n[[targets]]\nname = "a"\nkind = "http"\nurl = "http://127.0.0.1:9/a"\ninterval = "5s"\n')
    assert init(schema, tmp).returncode == 0
    procs = [start_engine(schema, config, tmp / f"failover-{i}.log") for i in range(3)]
    try:
        await wait_balanced(schema, 3)
        conn = await pg(schema)
        try:
            holder = None
            while holder is None:
                holder = await conn.fetchval("SELECT holder FROM engine_lease WHERE name = 'module:escalation' AND expires_at > now()")
                await asyncio.sleep(0.1)
            victim = next(p for p in procs if f":{p.pid}:" in holder)
            killed = time.monotonic()
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            module = buckets = None
            while module is None or buckets is None:
                if module is None:
                    row = await conn.fetchval(
                        "SELECT holder FROM engine_lease WHERE name = 'module:escalation' AND expires_at > now() AND holder <> $1", holder
                    )
                    if row:
                        module = time.monotonic() - killed
                if buckets is None:
                    held = await conn.fetchval(
                        "SELECT count(*) FROM engine_shard WHERE expires_at > now() AND holder IS NOT NULL AND holder <> $1", holder
                    )
                    if held == 64:
                        buckets = time.monotonic() - killed
                if time.monotonic() - killed > 60:
                    raise SystemExit("no takeover within 60 s")
                await asyncio.sleep(0.05)
        finally:
            await conn.close()
        return {"module": module, "buckets": buckets}
    finally:
        stop(procs)
        await drop(schema)


async def chaos(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    receiver = subprocess.Popen([sys.executable, "-c", CHAOS_RECEIVER], stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220
    port = int(receiver.stdout.readline())  # type: ignore[union-attr]
    schema = f"bench_chaos_{uuid.uuid4().hex[:6]}"
    config = tmp / "chaos.toml"
    config.write_text(
        f"""[engine]
cluster = true

[escalation_policy.high]
immediate_notification = true
escalate_after_minutes = 0.05
[[escalation_policy.high.levels]]
notify = ["webhook:pager"]
[[escalation_policy.high.levels]]
notify = ["webhook:pager"]

[[webhooks]]
name = "pager"
url = "http://127.0.0.1:{port}/hook"
"""
    )
    assert init(schema, tmp).returncode == 0
    rng = random.Random(args.seed)
    procs: dict[int, subprocess.Popen[bytes] | None] = {i: start_engine(schema, config, tmp / f"chaos-{i}.log") for i in range(3)}
    kills = terms = 0
    keys: list[str] = []
    try:
        await wait_balanced(schema, 3)
        started = time.monotonic()
        next_fault = started + rng.uniform(2, 5)
        down: dict[int, float] = {}
        while time.monotonic() - started < args.chaos:
            made = await asyncio.to_thread(
                cli, schema, "incident", "create", "--title", f"chaos {len(keys)}", "--severity", "high", "--json", config=config
            )
            if made.returncode == 0:
                keys.append(json.loads(made.stdout)["key"])
            now = time.monotonic()
            for i, back in list(down.items()):
                if now >= back:
                    procs[i] = start_engine(schema, config, tmp / f"chaos-{i}.log")
                    del down[i]
            if now >= next_fault:
                alive = [i for i, p in procs.items() if p is not None and p.poll() is None and i not in down]
                if len(alive) > 1:  # keep one engine up, as a cluster of three would in production
                    i = rng.choice(alive)
                    proc = procs[i]
                    assert proc is not None
                    if rng.random() < 0.6:
                        proc.send_signal(signal.SIGKILL)
                        kills += 1
                    else:
                        proc.send_signal(signal.SIGTERM)
                        terms += 1
                    await asyncio.to_thread(proc.wait)
                    procs[i] = None
                    down[i] = now + rng.uniform(1, 3)
                next_fault = now + rng.uniform(2, 5)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
        for i in list(down):
            procs[i] = start_engine(schema, config, tmp / f"chaos-{i}.log")
        for key in keys:
            await asyncio.to_thread(cli, schema, "incident", "ack", key, config=config)
        # Drain: every stored page delivered (or given up on), nothing left pending.
        conn = await pg(schema)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                pending = await conn.fetchval("SELECT count(*) FROM notification WHERE state IN ('pending', 'held')")
                if pending == 0:
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(2.0)
            rows = await conn.fetch("SELECT dedup_key, state FROM notification WHERE destination LIKE 'webhook:%'")
        finally:
            await conn.close()
    finally:
        stop([p for p in procs.values() if p is not None])
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:  # noqa: ASYNC210  (nothing else runs now)
        seen: dict[str, list[Any]] = json.loads(r.read())
    receiver.terminate()
    await drop(schema)
    stored = {r["dedup_key"] for r in rows}
    states = collections.Counter(r["state"] for r in rows)
    pages = collections.Counter(page for _, page in seen.values())
    return {
        "incidents": len(keys),
        "kills": kills,
        "terms": terms,
        "stored": len(stored),
        "states": dict(states),
        "received": len(seen),
        "lost": len(stored - set(seen)),
        "unknown": len(set(seen) - stored),
        "redelivered": sum(1 for count, _ in seen.values() if count > 1),
        "different_keys": sum(n - 1 for n in pages.values() if n > 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=6000)
    parser.add_argument("--interval", type=float, default=1.0, help="probe interval in seconds (6,000 at 1 s: 6,000 probes/s asked)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window per engine count")
    parser.add_argument("--chaos", type=float, default=40.0, help="seconds of random engine kills and restarts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", choices=["scaling", "failover", "chaos"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        print(f"PostgreSQL {PG.split('?', 1)[0]}; {os.cpu_count()} cores; each engine a `pulseguard engine` process", flush=True)
        if args.only in (None, "scaling"):
            rows = await scaling(args, tmp)
            base = rows[0]["rate"]
            print(
                f"\nscaling: {args.targets:,} loopback targets every {args.interval:g} s ({args.targets / args.interval:,.0f} probes/s asked), {args.seconds:g} s window"
            )
            print(
                f"{'engines':>8} {'probes/s':>10} {'per engine':>11} {'efficiency':>11} {'lag p99':>9} {'engines cpu':>12} "
                f"{'per core-s':>11} {'target cpu':>11} {'pg cpu':>7}"
            )
            for r in rows:
                eff = r["rate"] / (r["engines"] * base) if base else 0.0
                print(
                    f"{r['engines']:>8} {r['rate']:>10,.0f} {r['rate'] / r['engines']:>11,.0f} {eff:>10.0%} {r['lag_p99']:>7.0f}ms "
                    f"{r['cpu']:>12.2f} {r['rate'] / max(r['cpu'], 0.01):>11,.0f} {r['server_cpu']:>11.2f} {r['pg_cpu']:>7.2f}"
                )
            print(
                f"  ({os.cpu_count()} cores shared by the engines, the target server, PostgreSQL and this script: "
                "efficiency is bounded by the cores here; 'per core-s' is probes per second of engine CPU, "
                "what each engine brings on a machine of its own)"
            )
        if args.only in (None, "failover"):
            runs = [await failover(tmp) for _ in range(3)]
            print("\nfailover after kill -9 of the engine running the escalation module (3 runs, median)")
            for what, label in (("module", "escalation module taken over"), ("buckets", "all 64 buckets claimed again")):
                figures = [r[what] for r in runs]
                listed = ", ".join(f"{x:.1f}" for x in figures)
                print(f"  {label} in {statistics.median(figures):.1f} s (runs: {listed})")
        if args.only in (None, "chaos"):
            c = await chaos(args, tmp)
            print(f"\nchaos: {c['incidents']} incidents in {args.chaos:g} s, {c['kills']} kill -9 and {c['terms']} SIGTERM of 3 engines")
            print(
                f"  pages stored {c['stored']} ({', '.join(f'{k} {v}' for k, v in sorted(c['states'].items()))}), received {c['received']}"
            )
            print(f"  lost pages {c['lost']}, unknown pages {c['unknown']}, pages sent under two different keys {c['different_keys']}")
            print(f"  pages delivered again under the same idempotency key (at-least-once; the receiver dedups) {c['redelivered']}")


if __name__ == "__main__":
    asyncio.run(main())

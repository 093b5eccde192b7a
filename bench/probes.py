"""Probe throughput: N HTTP targets served from loopback, probed by the real engine (scheduler,
probes, batched writes to a real database), each run bounded in time.

    .venv/bin/python bench/probes.py                      # N = 100, 1000, 5000 at a 5 s interval, 20 s each
    .venv/bin/python bench/probes.py --sizes 5000 --seconds 30 --db postgres://postgres@127.0.0.1/test

Prints per N: probes per second achieved (and expected: N / interval), scheduling lag p50/p99
(actual start minus due time), CPU use of the engine process and of the loopback server
process (in cores), and whether every probe result reached the database.
The loopback servers run in a separate process so the engine's CPU figure is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.core import eventloop  # noqa: E402


def serve(ports: int, conn) -> None:  # type: ignore[no-untyped-def]
    """Child process: loopback HTTP servers answering 200 "ok" to every path."""
    from engine.monitor.loopback import LoopbackServer, Reply

    async def main() -> None:
        reply = Reply(200, "ok")
        servers = [await LoopbackServer(lambda request: reply).start() for _ in range(ports)]
        conn.send([s.port for s in servers])
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # wait for "stop"
        for s in servers:
            await s.stop()

    asyncio.run(main())


def config_text(n: int, ports: list[int], interval: float, concurrency: int) -> str:
    lines = [f"[engine]\nmax_concurrent_probes = {concurrency}\n"]
    for i in range(n):
        port = ports[i % len(ports)]
        lines.append(
            f'[[targets]]\nname = "t{i:05d}"\nkind = "http"\nurl = "http://127.0.0.1:{port}/t/{i}"\n'
            f'interval = "{interval:g}s"\ntimeout = "5s"\nexpect_body = "ok"\n'
        )
    lines.append('[triggers.down]\ncondition = "status_code >= 500 OR response_time > 3000"\nduration_minutes = 1\nseverity = "high"\n')
    return "\n".join(lines)


async def run_one(n: int, ports: list[int], server_pid: int, args: argparse.Namespace) -> dict[str, float]:
    import psutil

    from engine.config.loading import parse_config_text
    from engine.runtime.engine import Engine
    from engine.storage.db import close_database, open_database, resolve_database
    from engine.storage.monitor_models import ProbeResult

    folder = Path(tempfile.mkdtemp(prefix="pulseguard-bench-"))
    url = args.db if args.db else str(folder / "bench.db")
    if args.db and args.db.startswith("postgres"):
        sep = "&" if "?" in url else "?"
        url = f"{url}{sep}schema=bench_probes_{n}_{os.getpid()}"
    database = resolve_database(url)
    config = parse_config_text(config_text(n, ports, args.interval, args.concurrency))
    await open_database(database)
    server = psutil.Process(server_pid)
    try:
        engine = Engine(config, database=database, discover=False)
        await engine.start()
        await engine.wait_leader(30)
        monitor = engine.monitor
        scheduler = monitor.scheduler
        # Measure after one full interval: by then every target has run once (spread start).
        await asyncio.sleep(args.interval)
        stalls: list[float] = []

        async def watch_loop() -> None:
            # How late a 10 ms sleep wakes up: the event loop's own responsiveness.
            while True:
                t0 = time.perf_counter()
                await asyncio.sleep(0.01)
                stalls.append(time.perf_counter() - t0 - 0.01)

        watcher = asyncio.create_task(watch_loop())
        scheduler.stats(reset=True)
        probes0 = scheduler.probes
        cpu0 = time.process_time()
        srv0 = sum(server.cpu_times()[:2])
        wall0 = time.monotonic()
        await asyncio.sleep(args.seconds)
        wall = time.monotonic() - wall0
        stats = scheduler.stats()
        cpu = (time.process_time() - cpu0) / wall
        srv_cpu = (sum(server.cpu_times()[:2]) - srv0) / wall
        probes = stats.probes - probes0
        watcher.cancel()
        stalls.sort()
        await engine.stop()
        stats.probes = scheduler.probes  # results of probes in flight at the end are stored too
        stored = await ProbeResult.all().count()
        failed = await ProbeResult.filter(ok=False).count()
        result = {
            "n": n,
            "expected": n / args.interval,
            "achieved": probes / wall,
            "p50": (stats.lag_p50 or 0) * 1000,
            "p99": (stats.lag_p99 or 0) * 1000,
            "max": (stats.lag_max or 0) * 1000,
            "cpu": cpu,
            "server_cpu": srv_cpu,
            "probes_total": stats.probes,
            "stored": stored,
            "failed": failed,
            "skipped": stats.skipped,
            "timeouts": stats.timeouts,
            "stall_p99": stalls[int(0.99 * (len(stalls) - 1))] * 1000 if stalls else 0.0,
            "batches": monitor.writer.batches,
            "flush_ms": monitor.writer.flush_seconds * 1000 / max(1, monitor.writer.batches),
        }
    finally:
        await close_database()
        if database.kind == "postgres" and database.schema:
            import asyncpg

            conn = await asyncpg.connect(args.db.split("?", 1)[0])
            await conn.execute(f'DROP SCHEMA IF EXISTS "{database.schema}" CASCADE')
            await conn.close()
        shutil.rmtree(folder, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="comma-separated target counts")
    parser.add_argument("--interval", type=float, default=5.0, help="probe interval in seconds (default 5)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per size (default 20)")
    parser.add_argument("--concurrency", type=int, default=200, help="[engine] max_concurrent_probes")
    parser.add_argument("--ports", type=int, default=4, help="loopback server ports the targets are spread over")
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file per size)")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the engine process to FILE")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.get_context("spawn").Process(target=serve, args=(args.ports, child), daemon=True)
    proc.start()
    ports = parent.recv()
    print(
        f"{os.cpu_count()} CPUs; interval {args.interval:g} s; {args.seconds:g} s measured per size after a "
        f"{args.interval:g} s warm-up; database {'SQLite file' if not args.db else args.db.split('?')[0]}"
    )
    header = (
        f"{'targets':>8} {'expected/s':>10} {'probes/s':>9} {'lag p50':>9} {'lag p99':>9} {'lag max':>9} "
        f"{'engine CPU':>10} {'server CPU':>10} {'stored':>14} {'batch':>8} {'loop p99':>9}"
    )
    print(header)
    try:
        for n in sizes:
            if args.profile:
                import cProfile

                profiler = cProfile.Profile()
                r = profiler.runcall(eventloop.run, run_one(n, ports, proc.pid, args))
                profiler.dump_stats(args.profile)
            else:
                r = eventloop.run(run_one(n, ports, proc.pid, args))  # the engine's own loop
            complete = "all" if r["stored"] == r["probes_total"] else f"{r['stored']}/{r['probes_total']}"
            print(
                f"{r['n']:>8} {r['expected']:>10.0f} {r['achieved']:>9.0f} {r['p50']:>7.1f}ms {r['p99']:>7.1f}ms "
                f"{r['max']:>7.1f}ms {r['cpu'] * 100:>9.0f}% {r['server_cpu'] * 100:>9.0f}% {complete:>14} "
                f"{r['flush_ms']:>6.1f}ms {r['stall_p99']:>7.1f}ms",
                flush=True,
            )
            if r["failed"] or r["timeouts"] or r["skipped"]:
                print(f"{'':>8} failed {r['failed']}, timeouts {r['timeouts']}, skipped rounds {r['skipped']}")
    finally:
        parent.send("stop")
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    print(
        "lag: start minus due time; CPU: share of one core; stored: probe results in the database vs probes run;"
        " batch: mean time to store one batch; loop p99: how late a 10 ms timer fires (event-loop stalls)"
    )
    print(f"load average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())} (other processes compete for the CPUs)")


if __name__ == "__main__":
    main()

"""Notification delivery benchmark: incidents opened → webhook messages at a loopback receiver.

    .venv/bin/python bench/notify.py [--burst 1000] [--rate 20] [--seconds 10] [--db URL] [--runs 3]
    .venv/bin/python bench/notify.py --hanging [--db URL] [--runs 5]

Two measurements, each on a fresh database (a temporary SQLite file unless --db names a
PostgreSQL server), with the real engine loops (timer claimer + outbox deliverer) running and a
receiver in its own process (so it does not compete with the engine for the interpreter):

  burst   --burst incidents opened (the outbox filled in their transactions), then the engine
          loops started: prints notifications delivered per second (start → last arrival)
  paced   --rate incidents per second for --seconds; prints the delay from an incident's
          creation to its notification's arrival (p50, p99, max)

  hanging (--hanging instead of the two above) critical pages to a healthy webhook, one every
          0.2 s, with and without 20 earlier incidents whose webhook accepts and never
          answers: prints creation → arrival p50 and p99 of the pages for each

Every incident's notification is a row written in its creation's transaction, so the figures
include the outbox round trip: commit, claim, HTTP POST, record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# A minimal asyncio HTTP/1.1 server (keep-alive, Content-Length bodies): fast enough that the
# figures measure the engine, not the receiver.
RECEIVER = r"""
import asyncio, json, time
seen = {}

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            if path.startswith("/hang"):
                await asyncio.sleep(3600)  # accepts and never answers
            if method == "POST":
                now = time.time()
                key = (json.loads(body).get("incident") or {}).get("key")
                seen.setdefault(key, now)
                out = b"ok"
            else:
                out = json.dumps(seen).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + str(len(out)).encode() + b"\r\n\r\n" + out)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""

CONFIG = """
[engine]
timezone = "UTC"
[escalation_policy.high]
immediate_notification = true
escalate_after_minutes = 600
[[escalation_policy.high.levels]]
notify = ["webhook:bench"]
[[webhooks]]
name = "bench"
url = "http://127.0.0.1:{port}/hook"
secret_env = "BENCH_WEBHOOK_SECRET"
"""


HANGING = """
[escalation_policy.critical]
immediate_notification = true
escalate_after_minutes = 600
[[escalation_policy.critical.levels]]
notify = ["webhook:bench"]
[escalation_policy.low]
escalate_after_minutes = 600
[[escalation_policy.low.levels]]
notify = ["webhook:hang"]
[[webhooks]]
name = "hang"
url = "http://127.0.0.1:{port}/hang"
"""


def start_receiver() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())  # type: ignore[union-attr]
    return proc, port


def received(port: int) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        return json.loads(r.read())


async def raw_ceiling(n: int = 500, concurrency: int = 32) -> float:
    """Bare httpx POSTs to the same kind of receiver: what the channel itself allows here."""
    import httpx

    receiver, port = start_receiver()
    try:
        sem = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient() as client:

            async def post(i: int) -> None:
                async with sem:
                    await client.post(f"http://127.0.0.1:{port}/hook", content=json.dumps({"incident": {"key": f"R{i}"}}).encode())

            t0 = time.monotonic()
            await asyncio.gather(*(post(i) for i in range(n)))
            return n / (time.monotonic() - t0)
    finally:
        receiver.kill()
        receiver.wait(5)


async def one_run(db_url: str | None, mode: str, args: argparse.Namespace) -> dict[str, float]:
    from engine.config.loading import parse_config_text
    from engine.escalation.runtime import EscalationLoops
    from engine.escalation.wiring import Wiring
    from engine.incidents import services
    from engine.storage.db import close_database, open_database, resolve_database

    receiver, port = start_receiver()
    tmp = tempfile.TemporaryDirectory()
    schema = None
    if db_url:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        url = f"{db_url}{'&' if '?' in db_url else '?'}schema={schema}"
    else:
        url = str(Path(tmp.name) / "bench.db")
    os.environ["BENCH_WEBHOOK_SECRET"] = "bench-secret"
    config = parse_config_text(CONFIG.format(port=port) + (HANGING.format(port=port) if mode.startswith("pages") else ""))
    await open_database(resolve_database(url))
    created: dict[str, float] = {}
    loops = EscalationLoops(config, concurrency=args.concurrency, delivery_poll=0.2)
    wiring = Wiring(loops.context)  # this process's change hook, as an engine wires it
    wiring.start()
    stats: dict[str, float] = {}
    try:
        if mode == "burst":
            # Fill the outbox first (the change hook writes each row), then time the drain alone.
            t0 = time.monotonic()
            for i in range(args.burst):
                inc = await services.create_incident(title=f"bench {i}", severity="high", actor="bench")
                created[inc.key] = time.time()
            stats["create_per_second"] = args.burst / (time.monotonic() - t0)
            started = time.time()
            await loops.start()
            created = {k: started for k in created}
        elif mode.startswith("pages"):
            await loops.start()
            if mode == "pages-hanging":
                for i in range(20):
                    await services.create_incident(title=f"hung {i}", severity="low", actor="bench")
                await asyncio.sleep(1.0)  # their sends are in flight (and hang)
            for i in range(20):
                await asyncio.sleep(0.2)
                inc = await services.create_incident(title=f"page {i}", severity="critical", actor="bench")
                created[inc.key] = time.time()
        else:
            await loops.start()
            n = int(args.rate * args.seconds)
            t0 = time.monotonic()
            for i in range(n):
                wait = t0 + i / args.rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                inc = await services.create_incident(title=f"paced {i}", severity="high", actor="bench")
                created[inc.key] = time.time()
        deadline = time.monotonic() + 120
        seen: dict[str, float] = {}
        while time.monotonic() < deadline:
            # Polled from a thread, rarely: the engine under test keeps the interpreter to itself.
            seen = await asyncio.to_thread(received, port)
            if all(k in seen for k in created):
                break
            await asyncio.sleep(0.25)
    finally:
        await loops.stop(timeout=1.0)
        wiring.stop()
        await close_database()
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(5)
        tmp.cleanup()
        if schema:
            import asyncpg

            conn = await asyncpg.connect(db_url.split("?", 1)[0])
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()
    missing = [k for k in created if k not in seen]
    if missing:
        raise SystemExit(f"{len(missing)} notifications never arrived (e.g. {missing[:3]})")
    delays = sorted((seen[k] - created[k]) * 1000 for k in created)
    first, last = min(created.values()), max(seen[k] for k in created)
    return {
        **stats,
        "n": len(created),
        "per_second": len(created) / (last - first),
        "p50_ms": delays[len(delays) // 2],
        "p99_ms": delays[min(len(delays) - 1, int(len(delays) * 0.99))],
        "max_ms": delays[-1],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16, help="messages in flight at once (16, the engine default)")
    parser.add_argument("--db", help="postgres://… (default: a temporary SQLite file)")
    parser.add_argument("--hanging", action="store_true", help="critical-page latency with and without a hanging webhook")
    args = parser.parse_args()
    backend = "PostgreSQL" if args.db else "SQLite"
    if args.hanging:
        print(f"critical pages on {backend}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        out = {}
        for mode, label in (("pages", "no hanging destination"), ("pages-hanging", "20 incidents to a hanging webhook")):
            runs = [await one_run(args.db, mode, args) for _ in range(args.runs)]
            out[mode] = runs
            print(
                f"{label}: page creation → arrival p50 {statistics.median(r['p50_ms'] for r in runs):.0f} ms, "
                f"p99 {statistics.median(r['p99_ms'] for r in runs):.0f} ms (median of {args.runs}; worst max {max(r['max_ms'] for r in runs):.0f} ms)"
            )
        print(json.dumps({"backend": backend, **out}))
        return
    print(f"notification delivery on {backend}, webhook receiver on loopback, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    ceiling = await raw_ceiling(concurrency=args.concurrency)
    print(f"loopback ceiling: {ceiling:.0f} bare HTTP POSTs/s to the same receiver (no database, no outbox)")
    bursts = [await one_run(args.db, "burst", args) for _ in range(args.runs)]
    rate = statistics.median(r["per_second"] for r in bursts)
    creates = statistics.median(r["create_per_second"] for r in bursts)
    print(
        f"burst of {args.burst}: {rate:.0f} notifications delivered/s (median of {args.runs}; runs: "
        + ", ".join(f"{r['per_second']:.0f}" for r in bursts)
        + f"); incidents opened with their outbox rows: {creates:.0f}/s"
    )
    paced = [await one_run(args.db, "paced", args) for _ in range(args.runs)]
    p50 = statistics.median(r["p50_ms"] for r in paced)
    p99 = statistics.median(r["p99_ms"] for r in paced)
    print(
        f"paced at {args.rate:g}/s for {args.seconds:g} s: creation → delivery p50 {p50:.0f} ms, p99 {p99:.0f} ms "
        f"(median of {args.runs}; worst max {max(r['max_ms'] for r in paced):.0f} ms)"
    )
    print(json.dumps({"backend": backend, "ceiling_per_second": ceiling, "burst": bursts, "paced": paced}))


if __name__ == "__main__":
    asyncio.run(main())

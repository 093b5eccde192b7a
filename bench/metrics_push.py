"""Pushing a batch of metric samples through the HTTP API (POST /api/metrics), on SQLite and
PostgreSQL: a real uvicorn server on loopback, a fresh database per run. Times the first push
of the batch and its retry (which stores nothing). Prints the median of several runs.

    .venv/bin/python bench/metrics_push.py [--runs 5] [--n 10000] [--series 10] [--pg postgres://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from engine.rest import auth  # noqa: E402
from engine.rest.server import ApiService  # noqa: E402
from engine.storage.db import close_database, open_database, resolve_database  # noqa: E402


def batch(n: int, series: int) -> list[dict]:
    start = datetime.now(UTC) - timedelta(seconds=n + 60)
    return [
        {
            "series": "queue_depth",
            "labels": {"queue": f"q{i % series}"},
            "value": float(i % 97),
            "at": (start + timedelta(seconds=i)).isoformat(),
        }
        for i in range(n)
    ]


async def one_run(url: str, samples: list[dict]) -> tuple[float, float]:
    await open_database(resolve_database(url))
    try:
        auth.forget_cache()
        _, token = await auth.create_token("bench", "responder", "bench")
        service = ApiService("127.0.0.1:0", None, db_label="bench", drain_seconds=3)
        await service.start()
        try:
            async with httpx.AsyncClient(base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=300) as c:
                times = []
                for _ in range(2):  # the push, then its retry
                    t = time.perf_counter()
                    r = await c.post("/api/metrics", json={"samples": samples})
                    times.append(time.perf_counter() - t)
                    r.raise_for_status()
                assert r.json()["stored"] == 0, r.text
                return times[0], times[1]
        finally:
            await service.stop()
    finally:
        await close_database()


async def drop_schema(pg: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg.split("?", 1)[0])
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def measure(label: str, make_url, runs: int, samples: list[dict], cleanup=None) -> None:
    first, retry = [], []
    for _ in range(runs):
        url, token = make_url()
        try:
            a, b = await one_run(url, samples)
            first.append(a)
            retry.append(b)
        finally:
            if cleanup:
                await cleanup(token)
    for name, values in (("push", first), ("retry", retry)):
        print(f"{label:8} {name:6} {statistics.median(values):7.3f} s   (median of {runs}; min {min(values):.3f}, max {max(values):.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--n", type=int, default=10_000, help="samples per batch")
    parser.add_argument("--series", type=int, default=10, help="series the batch spreads over")
    parser.add_argument("--pg", default=os.environ.get("PULSEGUARD_TEST_PG", ""))
    args = parser.parse_args()
    samples = batch(args.n, args.series)
    tmp = tempfile.mkdtemp(prefix="pulseguard-bench-")
    print(f"{args.n} samples over {args.series} series per push, {args.runs} runs, {os.cpu_count()} cores")
    asyncio.run(measure("sqlite", lambda: (str(Path(tmp) / f"{uuid.uuid4().hex}.db"), None), args.runs, samples))
    if args.pg:

        def pg_url():
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            sep = "&" if "?" in args.pg else "?"
            return f"{args.pg}{sep}schema={schema}", schema

        asyncio.run(measure("postgres", pg_url, args.runs, samples, lambda s: drop_schema(args.pg, s)))
    else:
        print("postgres skipped (set PULSEGUARD_TEST_PG or --pg)")


if __name__ == "__main__":
    main()

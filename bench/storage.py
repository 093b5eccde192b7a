"""Incident changes per second through the service layer, on SQLite and PostgreSQL.

Each change is a real service call: one transaction writing the row(s) and a timeline event.
Prints the median of several runs per operation. PostgreSQL is measured when
PULSEGUARD_TEST_PG (or --pg) names a server.

    .venv/bin/python bench/storage.py [--runs 5] [--n 500] [--pg postgres://postgres@127.0.0.1/test]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.incidents import services  # noqa: E402
from engine.storage.db import close_database, open_database, resolve_database  # noqa: E402


async def one_run(url: str, n: int) -> dict[str, float]:
    db = resolve_database(url)
    await open_database(db)
    try:
        rates: dict[str, float] = {}
        t = time.perf_counter()
        keys = [(await services.create_incident(title=f"bench {i}", severity="high", actor="bench")).key for i in range(n)]
        rates["create"] = n / (time.perf_counter() - t)
        t = time.perf_counter()
        for i, key in enumerate(keys):
            await services.comment(key, f"comment {i}", "bench", internal_only=bool(i % 2))
        rates["comment"] = n / (time.perf_counter() - t)
        t = time.perf_counter()
        for key in keys:
            await services.resolve(key, "bench", root_cause="bench", solution="bench", category="capacity")
        rates["resolve"] = n / (time.perf_counter() - t)
        return rates
    finally:
        await close_database()


async def drop_schema(pg: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg.split("?", 1)[0])
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def measure(label: str, make_url, runs: int, n: int, cleanup=None) -> None:
    results: dict[str, list[float]] = {"create": [], "comment": [], "resolve": []}
    for _ in range(runs):
        url, token = make_url()
        try:
            for op, rate in (await one_run(url, n)).items():
                results[op].append(rate)
        finally:
            if cleanup:
                await cleanup(token)
    for op, values in results.items():
        print(
            f"{label:8} {op:8} {statistics.median(values):8.0f} changes/s   (median of {runs}; min {min(values):.0f}, max {max(values):.0f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--n", type=int, default=500, help="incidents per run (each is created, commented and resolved)")
    parser.add_argument("--pg", default=os.environ.get("PULSEGUARD_TEST_PG", ""))
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="pulseguard-bench-")
    print(f"{args.n} changes per operation, {args.runs} runs, {os.cpu_count()} cores")
    asyncio.run(measure("sqlite", lambda: (str(Path(tmp) / f"{uuid.uuid4().hex}.db"), None), args.runs, args.n))
    if args.pg:

        def pg_url():
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            sep = "&" if "?" in args.pg else "?"
            return f"{args.pg}{sep}schema={schema}", schema

        asyncio.run(measure("postgres", pg_url, args.runs, args.n, lambda s: drop_schema(args.pg, s)))
    else:
        print("postgres skipped (set PULSEGUARD_TEST_PG or --pg)")


if __name__ == "__main__":
    main()

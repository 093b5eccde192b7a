"""Time to compute a yearly analytics report over 100,000 incidents, on SQLite and PostgreSQL.

The fixture is bulk-inserted (not through the service layer): N incidents spread over 2025
with realistic detect/ack/resolve delays, false positives, root causes, ratings, and public
status updates on a third of them, plus N/5 incidents in 2024 for the trend comparison.
PostgreSQL is measured when PULSEGUARD_TEST_PG (or --pg) names a server. Goal: under 2 s on
SQLite on a small machine.

    .venv/bin/python bench/report.py [--n 100000] [--runs 5] [--pg postgres://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.core.durations import format_span  # noqa: E402
from engine.learning import analytics  # noqa: E402
from engine.storage.db import close_database, open_database, resolve_database  # noqa: E402
from engine.storage.models import Incident, StatusUpdate  # noqa: E402

SEVERITIES = ["critical", "high", "medium", "low"]
SOURCES = ["manual", "threshold", "anomaly", "pattern", "alert", "api"]
CATEGORIES = ["database", "deployment", "network", "configuration", "capacity", "dependency", "hardware", "security", "unknown"]


def incidents(n: int, year: int, first_number: int, rng: random.Random) -> list[Incident]:
    start = datetime(year, 1, 1, tzinfo=UTC)
    seconds = 365 * 86400
    rows = []
    for i in range(n):
        created = start + timedelta(seconds=rng.randrange(seconds))
        resolved = rng.random() < 0.93
        acked = resolved or rng.random() < 0.6
        rows.append(
            Incident(
                number=first_number + i,
                title=f"bench incident {first_number + i}",
                severity=rng.choice(SEVERITIES),
                status="resolved" if resolved else "investigating",
                source=rng.choice(SOURCES),
                created_at=created,
                created_by="bench",
                updated_at=created,
                detected_at=created - timedelta(seconds=rng.randrange(0, 600)),
                acknowledged_at=created + timedelta(seconds=rng.randrange(30, 1800)) if acked else None,
                acknowledged_by="bench" if acked else None,
                resolved_at=created + timedelta(seconds=rng.randrange(600, 6 * 3600)) if resolved else None,
                resolved_by="bench" if resolved else None,
                root_cause_category=rng.choice(CATEGORIES) if resolved else None,
                false_positive=rng.random() < 0.05,
                satisfaction={"customer": rng.randint(1, 5), "team": rng.randint(1, 5)} if rng.random() < 0.2 else {},
            )
        )
    return rows


async def fill(n: int) -> tuple[int, float]:
    rng = random.Random(42)
    t = time.perf_counter()
    current = incidents(n, 2025, 1, rng)
    previous = incidents(n // 5, 2024, n + 1, rng)
    await Incident.bulk_create(current + previous, batch_size=5000)
    ids = await Incident.filter(number__lte=n).order_by("number").values_list("id", "created_at")
    updates = [
        StatusUpdate(
            incident_id=iid,
            status="investigating",
            message="looking into it",
            public=rng.random() < 0.8,
            author="bench",
            created_at=created + timedelta(seconds=rng.randrange(60, 3600)),
        )
        for iid, created in ids
        if rng.random() < 0.33
    ]
    await StatusUpdate.bulk_create(updates, batch_size=5000)
    return len(current) + len(previous) + len(updates), time.perf_counter() - t


async def run(url: str, n: int, runs: int) -> None:
    db = resolve_database(url)
    await open_database(db)
    try:
        rows, fill_s = await fill(n)
        period = analytics.range_period(date(2025, 1, 1), date(2025, 12, 31))
        times = []
        report = None
        for _ in range(runs):
            t = time.perf_counter()
            report = await analytics.build_report(period)
            times.append(time.perf_counter() - t)
        assert report is not None and report["total_incidents"] == n, report and report["total_incidents"]
        print(f"  fixture: {rows:,} rows bulk-inserted in {fill_s:.1f} s")
        print(
            f"  yearly report over {report['total_incidents']:,} incidents: first {times[0] * 1000:.0f} ms, "
            f"median {statistics.median(times) * 1000:.0f} ms, best {min(times) * 1000:.0f} ms ({runs} runs)"
        )
        k = report["kpis"]
        print(
            f"  (MTTR {format_span(k['mttr_seconds'])}, prevention rate {k['prevention_rate']}%, "
            f"{len(report['weekly'])} weeks, {len(report['root_causes'])} root causes)"
        )
    finally:
        await close_database()


async def drop_schema(pg: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg.split("?", 1)[0])
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="incidents in the reported year")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pg", default=os.environ.get("PULSEGUARD_TEST_PG", ""))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("SQLite")
        asyncio.run(run(str(Path(tmp) / "report.db"), args.n, args.runs))
    if args.pg:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        sep = "&" if "?" in args.pg else "?"
        print("PostgreSQL")
        try:
            asyncio.run(run(f"{args.pg}{sep}schema={schema}", args.n, args.runs))
        finally:
            asyncio.run(drop_schema(args.pg, schema))
    else:
        print("PostgreSQL: skipped (set PULSEGUARD_TEST_PG or --pg)")


if __name__ == "__main__":
    main()

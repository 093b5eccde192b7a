"""The incident list reads its index (migration 0017) from where a page starts: pages walked by
cursor list every incident once, in the list's order, whatever the filters; and the database
serves each page's query from the index without sorting the table (SQLite and PostgreSQL)."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.transactions import in_transaction

from engine.core.domain import OPEN_STATUSES, SEVERITY_ORDER
from engine.incidents import queries
from engine.storage.models import Incident

SEVERITIES = [s.value for s in SEVERITY_ORDER]


async def seed(n: int = 120) -> None:
    """Incidents of every severity and status, some opened at the same moment (ties on
    created_at are broken by id), two services."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    rows = []
    for i in range(1, n + 1):
        at = start + timedelta(minutes=(i // 3) * 7 % 200)  # repeats: several rows a moment
        rows.append(
            Incident(
                number=i,
                title=f"incident {i}",
                severity=SEVERITIES[(i * 5) % 4],
                status=["triggered", "investigating", "resolved", "monitoring", "resolved"][i % 5],
                services=[f"svc-{i % 2}"],
                tags=[],
                created_at=at,
                updated_at=at,
                detected_at=at,
                created_by="test",
            )
        )
    await Incident.bulk_create(rows)


def expected(rows: list[Incident], **filters: Any) -> list[int]:
    open_ = {s.value for s in OPEN_STATUSES}
    kept = [
        r
        for r in rows
        if (filters.get("include_resolved") or r.status in open_)
        and (not filters.get("severity") or r.severity == filters["severity"])
        and (not filters.get("service") or filters["service"] in r.services)
    ]
    kept.sort(key=lambda r: (SEVERITIES.index(r.severity), -r.created_at.timestamp(), -r.id))
    return [r.number for r in kept]


async def walk(limit: int, **filters: Any) -> list[int]:
    seen: list[int] = []
    after = None
    while True:
        page = await queries.list_incidents(limit=limit, after=after, **filters)
        seen += [int(r["key"].split("-")[1]) for r in page]
        if len(page) < limit:
            return seen
        after = queries.position(page[-1])


async def test_pages_walked_by_cursor_list_every_incident_once_in_order(db: Any) -> None:
    await seed()
    rows = await Incident.all()
    for filters in (
        {},
        {"include_resolved": True},
        {"severity": "high"},
        {"severity": "low", "include_resolved": True},
        {"service": "svc-1"},
    ):
        want = expected(rows, **filters)
        assert want, filters
        for limit in (1, 7, 50, 500):
            assert await walk(limit, **filters) == want, (filters, limit)
        # Offsets page the same order.
        assert [int(r["key"].split("-")[1]) for r in await queries.list_incidents(limit=5, offset=3, **filters)] == want[3:8]


async def test_a_cursor_from_another_severity_starts_or_ends_a_severity_filtered_list(db: Any) -> None:
    await seed()
    rows = await Incident.all()
    high = expected(rows, severity="high")
    critical_row = next(r for r in await queries.list_incidents(limit=500) if r["severity"] == "critical")
    low_row = next(r for r in await queries.list_incidents(limit=500) if r["severity"] == "low")
    after_critical = await queries.list_incidents(limit=500, severity="high", after=queries.position(critical_row))
    assert [int(r["key"].split("-")[1]) for r in after_critical] == high
    assert await queries.list_incidents(limit=500, severity="high", after=queries.position(low_row)) == []


def test_the_index_is_the_expression_the_list_orders_by() -> None:
    migration = importlib.import_module("engine.storage.migrations.0017_list_order_index")
    assert migration.RANK == queries.RANK_SQL


async def plans(**kwargs: Any) -> list[str]:
    """The database's plan for each of the list's queries (inlined parameters), with table scans
    and sorts made as dear as the planner allows: what remains is what the index cannot serve."""
    conn = connections.get("default")
    postgres = conn.capabilities.dialect == "postgres"
    out = []
    async with in_transaction() as tx:
        if postgres:
            await tx.execute_script("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off")
        for query in queries.list_queries(**kwargs):
            sql = query.limit(50).sql(params_inline=True)
            if postgres:
                found = await tx.execute_query_dict("EXPLAIN " + sql)
                out.append("\n".join(row["QUERY PLAN"] for row in found))
            else:
                found = await tx.execute_query_dict("EXPLAIN QUERY PLAN " + sql)
                out.append("\n".join(row["detail"] for row in found))
    return out


async def test_each_page_is_read_off_the_index_without_sorting_the_table(db: Any) -> None:
    await seed(3000)  # enough rows that the planner's statistics favour the index as they would in use
    if db.kind == "sqlite":
        await connections.get("default").execute_script("ANALYZE")
    else:
        await connections.get("default").execute_script("ANALYZE incident")
    somewhere = queries.position((await queries.list_incidents(limit=500, include_resolved=True))[40])
    cases = [
        {},
        {"include_resolved": True},
        {"severity": "medium"},
        {"after": somewhere, "include_resolved": True},
        {"after": somewhere},
        {"after": somewhere, "severity": SEVERITIES[somewhere[0]]},
    ]
    for kwargs in cases:
        for plan in await plans(**kwargs):
            assert "incident_list_order" in plan, (kwargs, plan)
            assert "Sort" not in plan and "TEMP B-TREE" not in plan, (kwargs, plan)

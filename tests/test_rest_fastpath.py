"""Repeat reads of an incident's detail and of list pages are answered from the rendered cache
before FastAPI's routing (engine.rest.fastpath): the answer is the route's answer byte for byte,
the token is checked as strictly, and a query string the route refused is refused again. The
validators they ask for are read once for a crowd, never from a read that began before the
caller arrived. Real uvicorn on loopback, on SQLite and PostgreSQL; the single-flight unit tests
run on the event loop alone."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest
from support.rest import STATUS_SITE as SITE
from support.rest import config, eventually, running_api

from engine.incidents import services
from engine.rest import auth
from engine.rest.cache import SingleFlight
from engine.rest.fastpath import LIST_MAX_AGE


def _same(response) -> tuple:
    headers = {k: v for k, v in response.headers.items() if k != "date"}
    return response.status_code, headers, response.content


async def test_a_cached_read_answers_exactly_as_the_route_does(api, caplog):
    incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
    await services.comment(incident.key, "pool exhausted on db-2", "bob")
    caplog.set_level(logging.INFO, logger="pulseguard.api.access")
    async with api.client("viewer") as c:
        for path in (f"/api/incidents/{incident.key}", "/api/incidents?severity=high&limit=5", "/api/incidents"):
            for _attempt in range(3):
                # A list page's validator also changes every LIST_MAX_AGE seconds: a sequence
                # that crossed such a boundary is tried again.
                period = int(time.monotonic() // LIST_MAX_AGE)
                before = api.state.fast_reads
                routed = await c.get(path)
                first = api.state.fast_reads
                cached = await c.get(path)
                etag = routed.headers["etag"]
                routed_304 = await c.get(path.replace("INC-", "inc-") if "INC-" in path else path, headers={"If-None-Match": etag})
                if "INC-" in path or int(time.monotonic() // LIST_MAX_AGE) == period:
                    break
                # What this try cached may belong to the new period: start the next in a fresh one.
                await asyncio.sleep(LIST_MAX_AGE - time.monotonic() % LIST_MAX_AGE + 0.05)
            assert first == before  # the first read goes through the route and fills the cache
            assert api.state.fast_reads == before + 2
            assert _same(cached) == _same(routed)
            assert routed.status_code == 200
            assert routed_304.status_code == 304
    fast_lines = [r for r in caplog.records if r.name == "pulseguard.api.access"]
    assert fast_lines and all(r.fields["token"] == "viewer-token" for r in fast_lines)
    async with api.client("admin") as c:
        metrics = (await c.get("/metrics")).text
    assert f"pulseguard_api_cached_reads_total {api.state.fast_reads}" in metrics


async def test_a_cached_detail_is_refused_without_a_valid_token(api):
    incident = await services.create_incident(title="Queue backlog", severity="medium", actor="alice")
    path = f"/api/incidents/{incident.key}"
    async with api.client("viewer") as c:
        assert (await c.get(path)).status_code == 200
        assert (await c.get(path)).status_code == 200
    reads = api.state.fast_reads
    async with api.client() as anonymous:
        missing = await anonymous.get(path)
        assert (missing.status_code, missing.json()["error"]) == (401, "unauthorized")
        failures = api.state.auth_failures
        wrong = await anonymous.get(path, headers={"Authorization": "Bearer pg_not-a-token"})
        assert (wrong.status_code, wrong.json()["error"]) == (401, "unauthorized")
        assert api.state.auth_failures == failures + 1  # counted once, by the route
    await auth.revoke_token("viewer-token")
    async with api.client("viewer") as c:
        revoked = await c.get(path)
    assert revoked.status_code == 401
    assert api.state.fast_reads == reads


async def test_a_list_query_the_route_refused_is_refused_again(api):
    await services.create_incident(title="Disk 85% on db-2", severity="low", actor="alice")
    async with api.client("viewer") as c:
        for query in ("limit=0", "limit=5&offset=5&cursor=WzEsIjIwMjYtMDEtMDFUMDA6MDA6MDArMDA6MDAiLDFd", "severity=urgent"):
            for _ in range(2):
                r = await c.get(f"/api/incidents?{query}")
                assert r.status_code == 422, (query, r.text)
        reads = api.state.fast_reads
        unknown = await c.get("/api/incidents/INC-999999")
        assert unknown.status_code == 404
        not_a_key = await c.get("/api/incidents/counts")
        assert not_a_key.status_code == 200 and "critical" in not_a_key.json()
    assert api.state.fast_reads == reads


async def test_a_crowd_shares_one_read_and_no_caller_gets_a_read_older_than_itself():
    value, calls = 0, 0
    started = asyncio.Event()
    release = asyncio.Event()

    async def fetch(key: str) -> tuple[str, int]:
        nonlocal calls
        calls += 1
        seen = value  # what the database holds when the read starts
        started.set()
        await release.wait()
        return key, seen

    flight: SingleFlight[str, tuple[str, int]] = SingleFlight(fetch)
    crowd = [asyncio.create_task(flight.get("INC-1")) for _ in range(20)]
    await started.wait()
    value = 1  # a write that commits while the first read is under way
    late = [asyncio.create_task(flight.get("INC-1")) for _ in range(5)]
    other = asyncio.create_task(flight.get("INC-2"))
    await asyncio.sleep(0)
    release.set()
    assert {await t for t in crowd} == {("INC-1", 0)}
    assert {await t for t in late} == {("INC-1", 1)}  # not the read that began before they came
    assert await other == ("INC-2", 1)
    assert calls == 3


async def test_a_failed_read_fails_its_callers_only_and_a_cancelled_caller_leaves_the_others_their_answer():
    attempts = 0
    gate = asyncio.Event()

    async def fetch(key: None) -> int:
        nonlocal attempts
        attempts += 1
        await gate.wait()
        if attempts == 1:
            raise ConnectionError("database went away")
        return attempts

    flight: SingleFlight[None, int] = SingleFlight(fetch)
    failing = [asyncio.create_task(flight.get(None)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    for task in failing:
        with pytest.raises(ConnectionError, match="went away"):
            await task

    gate.clear()
    waiting = [asyncio.create_task(flight.get(None)) for _ in range(3)]
    await asyncio.sleep(0)
    waiting[0].cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await waiting[0]
    assert [await t for t in waiting[1:]] == [2, 2]


async def test_status_pages_answer_from_the_cache_exactly_as_their_routes_do(db):
    async with running_api(config(SITE)) as api, httpx.AsyncClient(base_url=api.url, timeout=30) as visitor:
        incident = await services.create_incident(title="Checkout slow", severity="high", actor="alice", services=["web-app"])
        await services.post_update(incident.key, "Payments are slow; we are looking into it", "alice")
        paths = ["/status", f"/status/incidents/{incident.key}", "/api/v2/summary.json", "/status/feed.atom", "/history.atom"]
        await eventually(lambda: _shows(visitor, "/status", "Payments are slow"), timeout=3)
        for path in paths:
            before = api.state.fast_reads
            routed = await visitor.get(path)
            cached = await visitor.get(path)
            assert routed.status_code == 200 and "Payments are slow" in routed.text, path
            assert _same(cached) == _same(routed), path
            assert api.state.fast_reads >= before + 1, path
            unchanged = await visitor.get(path, headers={"If-None-Match": routed.headers["etag"]})
            assert (unchanged.status_code, unchanged.content) == (304, b""), path
        missing = await visitor.get("/status/incidents/INC-424242")
        assert missing.status_code == 404 and "no public incident" in missing.text
        assert (await visitor.get("/status/incidents/" + "X" * 41)).status_code == 422


async def test_a_status_page_build_that_fails_leaves_visitors_the_last_page(db, monkeypatch, caplog):
    from engine.rest import public

    async with running_api(config(SITE)) as api, httpx.AsyncClient(base_url=api.url, timeout=30) as visitor:
        incident = await services.create_incident(title="Checkout slow", severity="high", actor="alice", services=["web-app"])
        await services.post_update(incident.key, "Payments are slow; we are looking into it", "alice")
        await eventually(lambda: _shows(visitor, "/status", "Payments are slow"), timeout=3)
        real_build = public.build_page

        async def broken(*args, **kwargs):
            raise RuntimeError("the database is being restarted")

        monkeypatch.setattr(public, "build_page", broken)
        # Another process's change: the page is rebuilt in the background, and that build fails.
        await services.post_update(incident.key, "A fix is rolling out", "alice")
        seen = []

        async def visit() -> bool:
            seen.append(await visitor.get("/status"))
            return "building the status page failed" in caplog.text

        await eventually(visit, timeout=3)
        r = await visitor.get("/status")
        assert all(v.status_code == 200 and "A fix is rolling out" not in v.text for v in [*seen, r])
        assert "Payments are slow" in r.text
        monkeypatch.setattr(public, "build_page", real_build)
        await eventually(lambda: _shows(visitor, "/status", "A fix is rolling out"), timeout=3)


async def _shows(client: httpx.AsyncClient, path: str, wanted: str) -> bool:
    return wanted in (await client.get(path)).text


async def test_a_read_cancelled_under_its_callers_ends_their_wait():
    async def fetch(key: str) -> int:
        await asyncio.Event().wait()  # a read that never finishes (the server shutting down)
        return 0

    flight: SingleFlight[str, int] = SingleFlight(fetch)
    callers = [asyncio.create_task(flight.get("INC-7")) for _ in range(3)]
    await asyncio.sleep(0)
    (read,) = [t for t in asyncio.all_tasks() if t.get_name() == "pulseguard-single-flight:INC-7"]
    read.cancel()
    done, pending = await asyncio.wait(callers, timeout=5)
    assert not pending
    assert all(t.cancelled() for t in done)


async def test_a_crowd_whose_copy_went_stale_waits_for_one_build_that_shows_the_write(api, monkeypatch):
    """After a write to a busy incident, the pollers' next reads all miss the cache at once: one
    detail build (and one list build) serves them, and every answer holds the write."""
    from engine.incidents import queries

    built = {"detail": 0, "list": 0}
    detail, count = queries.incident_detail, queries.count_incidents

    async def counted_detail(key):  # the real read, counted
        built["detail"] += 1
        return await detail(key)

    async def counted_count(**filters):
        built["list"] += 1
        return await count(**filters)

    monkeypatch.setattr(queries, "incident_detail", counted_detail)
    monkeypatch.setattr(queries, "count_incidents", counted_count)
    incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
    path = f"/api/incidents/{incident.key}"
    async with api.client("responder") as c:
        assert (await c.get(path)).status_code == 200
        assert (await c.post(f"{path}/comments", json={"content": "pool exhausted"})).status_code == 201
        built["detail"] = built["list"] = 0
        details, lists = await asyncio.gather(
            asyncio.gather(*(c.get(path) for _ in range(20))),
            asyncio.gather(*(c.get("/api/incidents?limit=50") for _ in range(20))),
        )
    assert {r.status_code for r in details} == {r.status_code for r in lists} == {200}
    assert all("pool exhausted" in [cm["content"] for cm in r.json()["comments"]] for r in details)
    assert all(r.json()["incidents"][0]["key"] == incident.key for r in lists)
    assert len({r.headers["etag"] for r in details}) == 1
    # One build each; a second only if the list's LIST_MAX_AGE bucket turned during the crowd.
    assert built["detail"] == 1 and 1 <= built["list"] <= 2, built

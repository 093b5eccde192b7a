"""POST comment, status update and acknowledge are served before FastAPI's routing when the
request is ordinary (engine.rest.fastwrites.FastWrites): the answer is the route's answer, the
token is checked as strictly, and everything else (a refusal, a bad body, an unknown incident, a
rolled-back error) is answered by the route itself with nothing stored twice. A read right
after a write shows it. Real uvicorn on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from support.rest import eventually

from engine.incidents import services
from engine.storage.models import Comment, Event, StatusUpdate

VOLATILE = {"id", "created_at", "updated_at", "acknowledged_at", "version"}


def _stable(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in VOLATILE}


async def test_a_fast_write_answers_as_the_route_does(api):
    incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
    path = f"/api/incidents/{incident.key}"
    async with api.client("responder") as c:
        fast = api.state.fast_writes
        # A query string sends the same request through FastAPI's route (it ignores the parameter).
        routed = await c.post(f"{path}/comments?via=route", json={"content": "pool exhausted", "internal_only": True})
        assert api.state.fast_writes == fast
        quick = await c.post(f"{path}/comments", json={"content": "pool exhausted", "internal_only": True})
        assert api.state.fast_writes == fast + 1
        assert (routed.status_code, quick.status_code) == (201, 201)
        assert routed.headers["content-type"] == quick.headers["content-type"] == "application/json"
        assert _stable(quick.json()) == _stable(routed.json())
        assert set(quick.json()) == set(routed.json())
        assert quick.json()["id"] != routed.json()["id"]

        routed = await c.post(f"{path}/updates?via=route", json={"message": "rolled back the deploy", "status": "identified"})
        quick = await c.post(f"{path}/updates", json={"message": "rolled back the deploy", "status": "identified"})
        assert (routed.status_code, quick.status_code) == (201, 201)
        assert _stable(quick.json()) == _stable(routed.json())
        assert api.state.fast_writes == fast + 2

        other = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
        quick_incident = await services.create_incident(title="Queue backlog", severity="low", actor="alice")
        routed = await c.post(f"/api/incidents/{other.key}/acknowledge?via=route")
        quick = await c.post(f"/api/incidents/{quick_incident.key}/acknowledge")
        assert (routed.status_code, quick.status_code) == (200, 200)
        assert api.state.fast_writes == fast + 3
        assert set(quick.json()) == set(routed.json())
        for name in ("status", "acknowledged_by"):
            assert quick.json()[name] == routed.json()[name]
    assert [c.author for c in await Comment.filter(incident_id=incident.id)] == ["responder-token", "responder-token"]
    timeline = [e.kind for e in await Event.filter(incident_id=quick_incident.id).order_by("id")]
    assert timeline[-1] == "acknowledged"
    async with api.client("admin") as c:
        metrics = (await c.get("/metrics")).text
    assert f"pulseguard_api_fast_writes_total {api.state.fast_writes}" in metrics


async def test_refusals_are_the_routes_own_and_store_nothing(api):
    incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
    await services.acknowledge(incident.key, "alice")
    path = f"/api/incidents/{incident.key}"
    events = await Event.filter(incident_id=incident.id).count()
    fast = api.state.fast_writes
    async with api.client("responder") as c:
        r = await c.post(f"{path}/comments", json={"content": ""})
        assert r.status_code == 422 and r.json()["field"] == "content"
        r = await c.post(f"{path}/comments", json={"content": "x", "internal_only": "sometimes"})
        assert r.status_code == 422 and r.json()["field"] == "internal_only"
        r = await c.post(f"{path}/comments", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422
        r = await c.post("/api/incidents/INC-999999/comments", json={"content": "nobody home"})
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        r = await c.post("/api/incidents/not-a-key/comments", json={"content": "?"})
        assert r.status_code in (404, 422)
        r = await c.post(f"{path}/acknowledge")
        assert r.status_code == 409 and "already acknowledged" in r.json()["message"]
        r = await c.post(f"{path}/updates", json={"message": "done", "status": "resolved"})
        assert r.status_code in (409, 422)
    async with api.client("viewer") as c:
        r = await c.post(f"{path}/comments", json={"content": "a viewer may not"})
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
    async with api.client(headers={"Authorization": "Bearer pg_wrong"}) as c:
        r = await c.post(f"{path}/comments", json={"content": "who am I"})
        assert r.status_code == 401
    async with api.client() as c:
        r = await c.post(f"{path}/comments", json={"content": "anonymous"})
        assert r.status_code == 401
    assert api.state.fast_writes == fast
    assert await Comment.filter(incident_id=incident.id).count() == 0
    assert await StatusUpdate.filter(incident_id=incident.id).count() == 0
    assert await Event.filter(incident_id=incident.id).count() == events


async def test_a_read_right_after_a_fast_write_shows_it(api):
    incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
    path = f"/api/incidents/{incident.key}"
    async with api.client("responder") as c:
        first = await c.get(path)
        again = await c.get(path, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304  # cached and current
        for i in range(5):
            wrote = await c.post(f"{path}/comments", json={"content": f"note {i}"})
            assert wrote.status_code == 201
            seen = await c.get(path, headers={"If-None-Match": first.headers["etag"]})
            assert seen.status_code == 200
            assert f"note {i}" in [cm["content"] for cm in seen.json()["comments"]]
            first = seen


async def test_concurrent_fast_writes_are_each_stored_once(api):
    incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
    path = f"/api/incidents/{incident.key}"
    async with api.client("responder") as c:
        answers = await asyncio.gather(*(c.post(f"{path}/comments", json={"content": f"crowd {i}"}) for i in range(40)))
    assert [a.status_code for a in answers] == [201] * 40
    stored = sorted(cm.content for cm in await Comment.filter(incident_id=incident.id))
    assert stored == sorted(f"crowd {i}" for i in range(40))
    kinds = [e.kind for e in await Event.filter(incident_id=incident.id)]
    assert kinds.count("commented") == 40
    ids = [a.json()["id"] for a in answers]
    assert len(set(ids)) == 40
    await eventually(lambda: api.state.fast_writes >= 40)


async def test_a_write_whose_connection_was_lost_after_it_was_stored_is_not_stored_again(api, db):
    """The fast path answers a database error by serving the request again through the route,
    which is right when the statement was rolled back. When the connection is lost after the
    server stored the change (simulated here by aborting the client's socket once the server has
    committed: no real part can cut a loopback connection at that moment), serving it again
    stored the comment twice. It now answers 503 saying the change may have been stored."""
    import time

    from support.db import PgRowLock
    from tortoise import connections

    if db.kind != "postgres":
        pytest.skip("a connection lost after the commit: PostgreSQL's")
    conn = connections.get("default")
    inc = await services.create_incident(title="busy", severity="high", actor="alice")
    holder = PgRowLock(db.schema, inc.id)
    try:
        async with api.client("responder") as c:
            answer = asyncio.create_task(c.post(f"/api/incidents/{inc.key}/comments", json={"content": "only once"}))
            for _ in range(500):  # the comment's statement waits on the row lock
                found = await conn.execute_query_dict(holder.blocked_sql)
                if found[0]["n"] >= 1:
                    break
                await asyncio.sleep(0.01)

            def commit_then_drop() -> None:
                holder.release()
                time.sleep(0.5)  # the server stores the comment meanwhile; its reply waits unread
                for held in conn._pool._holders:
                    if held._con is not None and held._in_use is not None:
                        held._con._transport.abort()

            asyncio.get_running_loop().call_soon(commit_then_drop)
            r = await asyncio.wait_for(answer, 10)
    finally:
        holder.close()
    assert r.status_code == 503 and "may have been" in r.json()["message"], r.text
    assert [c.content for c in await Comment.filter(incident_id=inc.id)] == ["only once"]

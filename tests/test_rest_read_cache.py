"""The incident detail is served from a per-process cache under an ETag the database validates
on every request: pollers get 304 until the incident changes, and no write (by this client, by
another process, or by the engine's own bookkeeping) is ever answered with an older detail.
Real uvicorn on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
from support.db import run_cli
from support.rest import STATUS_SITE as SITE
from support.rest import config, eventually, running_api
from tortoise.transactions import in_transaction

from engine.escalation.steps import save_escalation
from engine.incidents import services
from engine.incidents.services import append_system_event
from engine.storage.models import Incident


async def test_a_poller_gets_304_until_the_incident_changes_and_then_sees_its_own_write(api):
    incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
    path = f"/api/incidents/{incident.key}"
    async with api.client("responder") as c:
        first = await c.get(path)
        etag = first.headers["etag"]
        assert first.status_code == 200 and first.headers["cache-control"] == "private, no-cache"

        again = await c.get(path, headers={"If-None-Match": etag})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)

        posted = await c.post(f"{path}/comments", json={"content": "pool exhausted on db-2"})
        assert posted.status_code == 201
        after = await c.get(path, headers={"If-None-Match": etag})
        assert after.status_code == 200
        assert after.headers["etag"] != etag
        assert [x["content"] for x in after.json()["comments"]] == ["pool exhausted on db-2"]

        acked = await c.post(f"{path}/acknowledge")
        assert acked.status_code == 200
        detail = (await c.get(path, headers={"If-None-Match": after.headers["etag"]})).json()
        assert (detail["status"], detail["acknowledged_by"]) == ("investigating", "responder-token")
        assert [e["kind"] for e in detail["timeline"]][-2:] == ["commented", "acknowledged"]


async def test_writes_behind_the_api_are_served_at_once(api, db):
    incident = await services.create_incident(title="Queue backlog", severity="medium", actor="alice")
    path = f"/api/incidents/{incident.key}"
    async with api.client("viewer") as c:
        tags = [(await c.get(path)).headers["etag"]]

        # The service layer in this process, outside the API.
        await services.post_update(incident.key, "we are on it", "bob")
        r = await c.get(path)
        assert [u["message"] for u in r.json()["updates"]] == ["we are on it"]
        tags.append(r.headers["etag"])

        # The engine's bookkeeping: escalation state and a system timeline entry, no lock.
        async with in_transaction() as conn:
            row = await Incident.get(id=incident.id).using_db(conn)
            await save_escalation(conn, row, {**(row.escalation or {}), "level": 2})
        r = await c.get(path)
        assert r.json()["escalation"]["level"] == 2
        tags.append(r.headers["etag"])
        async with in_transaction() as conn:
            await append_system_event(conn, row, "notified", "paged carol by slack", {"channel": "slack"}, row.created_at)
        r = await c.get(path)
        assert r.json()["timeline"][-1]["summary"] == "paged carol by slack"
        tags.append(r.headers["etag"])

        # Another process on the same database: the CLI.
        run_cli(db, "incident", "comment", incident.key, "seen from the CLI", check=True)
        r = await c.get(path, headers={"If-None-Match": tags[-1]})
        assert r.status_code == 200
        assert [x["content"] for x in r.json()["comments"]] == ["seen from the CLI"]
        tags.append(r.headers["etag"])
    assert len(set(tags)) == len(tags)


async def test_an_unknown_or_deleted_incident_is_404_even_when_cached(api):
    incident = await services.create_incident(title="Disk full", severity="low", actor="alice")
    path = f"/api/incidents/{incident.key}"
    async with api.client("viewer") as c:
        assert (await c.get(path)).status_code == 200
        await Incident.filter(id=incident.id).delete()
        gone = await c.get(path)
        assert (gone.status_code, gone.json()) == (404, {"error": "not_found", "message": f"no incident {incident.key}"})
        assert (await c.get("/api/incidents/INC-999999")).status_code == 404


async def test_status_page_visitors_get_304_until_a_public_change(db):
    async with running_api(config(SITE)) as api, httpx.AsyncClient(base_url=api.url, timeout=30) as visitor:
        incident = await services.create_incident(title="Checkout slow", severity="high", actor="alice", services=["web-app"])
        await services.post_update(incident.key, "Payments are slow; we are looking into it", "alice")
        pages = ["/status", f"/status/incidents/{incident.key}", "/api/v2/summary.json", "/status/feed.atom"]
        # Written by another process (here: the service layer, not this API): shown within the
        # feed check interval, well inside the page's public max-age.
        await eventually(lambda: _text(visitor, "/status", "Payments are slow"), timeout=3)
        tags = {}
        for path in pages:
            r = await visitor.get(path)
            assert r.status_code == 200 and "Payments are slow" in r.text, path
            tags[path] = r.headers["etag"]
            again = await visitor.get(path, headers={"If-None-Match": tags[path]})
            assert (again.status_code, again.content) == (304, b""), path

        # Written through this API: the writer's next look shows it at once.
        async with api.client("responder") as responder:
            posted = await responder.post(f"/api/incidents/{incident.key}/updates", json={"message": "A fix is rolling out"})
            assert posted.status_code == 201
        for path in pages:
            r = await visitor.get(path, headers={"If-None-Match": tags[path]})
            assert r.status_code == 200 and "A fix is rolling out" in r.text, path
            assert r.headers["etag"] != tags[path]
        assert (await visitor.get("/status/incidents/INC-424242")).status_code == 404


async def _text(client: httpx.AsyncClient, path: str, wanted: str) -> bool:
    return wanted in (await client.get(path)).text


async def test_the_list_pages_by_cursor_without_gaps_or_repeats_while_incidents_open(api):
    opened = [await services.create_incident(title=f"disk {i}", severity=("high", "low")[i % 2], actor="alice") for i in range(23)]
    seen: list[str] = []
    async with api.client("viewer") as c:
        r = await c.get("/api/incidents", params={"limit": 10})
        body = r.json()
        assert (body["total"], len(body["incidents"])) == (23, 10)
        seen += [i["key"] for i in body["incidents"]]
        # A new worst incident opens while the reader pages: it sorts before the cursor and
        # shifts every offset, yet the cursor walk neither repeats nor skips a row.
        await services.create_incident(title="new and critical", severity="critical", actor="alice")
        while body["next_cursor"]:
            body = (await c.get("/api/incidents", params={"limit": 10, "cursor": body["next_cursor"]})).json()
            seen += [i["key"] for i in body["incidents"]]
    expected = [i.key for i in sorted(opened, key=lambda i: (i.severity != "high", -i.number))]
    assert seen == expected


async def test_a_list_poller_gets_304_until_a_change_and_bad_cursors_are_refused(api):
    incident = await services.create_incident(title="Queue backlog", severity="medium", actor="alice")
    async with api.client("responder") as c:
        first = await c.get("/api/incidents", params={"limit": 5})
        etag = first.headers["etag"]
        assert (await c.get("/api/incidents", params={"limit": 5}, headers={"If-None-Match": etag})).status_code == 304
        assert (await c.post(f"/api/incidents/{incident.key}/acknowledge")).status_code == 200
        after = await c.get("/api/incidents", params={"limit": 5}, headers={"If-None-Match": etag})
        assert after.status_code == 200
        assert after.json()["incidents"][0]["acknowledged_by"] == "responder-token"

        for bad in ("nonsense", "W1tdXQ", "WzAsIjIwMjYtMDEtMDEiLDFd"):  # not base64 JSON; wrong shape; a time without a zone
            r = await c.get("/api/incidents", params={"cursor": bad})
            assert (r.status_code, r.json()["field"]) == (422, "cursor"), bad
        await services.create_incident(title="Second", severity="low", actor="alice")
        cursor = (await c.get("/api/incidents", params={"limit": 1})).json()["next_cursor"]
        for mangled in (cursor + "!!", cursor + "%", "*" + cursor):  # base64 would skip the stray characters
            r = await c.get("/api/incidents", params={"cursor": mangled})
            assert (r.status_code, r.json()["field"]) == (422, "cursor"), mangled
        both = await c.get("/api/incidents", params={"cursor": cursor, "offset": 5})
        assert (both.status_code, both.json()["field"]) == (422, "offset")
        last = (await c.get("/api/incidents", params={"limit": 1, "cursor": cursor})).json()
        assert ([i["title"] for i in last["incidents"]], last["next_cursor"]) == (["Second"], None)
        # The paging console's focus names its own parameter when it is not a key.
        r = await c.get("/api/incidents/page", params={"focus": "garbage"})
        assert (r.status_code, r.json()["field"]) == (422, "focus"), r.text
        assert r.json()["message"].startswith("focus: 'garbage' is not an incident key")
        page = (await c.get("/api/incidents/page", params={"focus": "INC-999999"})).json()
        assert page["position"] is None

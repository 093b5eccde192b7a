"""The REST API against a real uvicorn server on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

import httpx
from support.db import run_cli
from support.rest import STATUS_SITE, config, running_api

from engine.incidents import services
from engine.rest.auth import FailureThrottle
from engine.storage.models import AuditEntry, Comment, Event, MaintenanceWindow, Service, StatusUpdate
from engine.storage.monitor_models import MonitorTarget


async def test_the_six_endpoints_end_to_end_with_a_responder_token(api):
    async with api.client("responder") as c:
        r = await c.post(
            "/api/incidents",
            json={
                "title": "Checkout errors",
                "severity": "high",
                "services": ["web-app"],
                "tags": ["payments"],
                "description": "5xx on /pay",
            },
        )
        assert r.status_code == 201, r.text
        created = r.json()
        key = created["key"]
        assert re.fullmatch(r"INC-\d+", key) and created["source"] == "api" and created["created_by"] == "responder-token"
        await c.post("/api/incidents", json={"title": "Slow search", "severity": "low", "services": ["search"]})

        r = await c.get("/api/incidents", params={"severity": "high"})
        assert r.status_code == 200
        assert [i["key"] for i in r.json()["incidents"]] == [key]
        assert (await c.get("/api/incidents", params={"service": "search"})).json()["total"] == 1
        assert (await c.get("/api/incidents", params={"tag": "payments"})).json()["incidents"][0]["key"] == key
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert (await c.get("/api/incidents", params={"since": future})).json()["total"] == 0
        page = (await c.get("/api/incidents", params={"limit": 1})).json()
        assert page["total"] == 2 and len(page["incidents"]) == 1 and page["next_offset"] == 1
        assert (await c.get("/api/incidents", params={"limit": 1, "offset": 1})).json()["next_offset"] is None

        r = await c.put(
            f"/api/incidents/{key}",
            json={
                "status": "identified",
                "message": "bad deploy",
                "severity": "critical",
                "assignee": "alice",
                "tags": ["payments", "deploy"],
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["status"], body["severity"], body["assignee"], body["tags"]) == (
            "identified",
            "critical",
            "alice",
            ["payments", "deploy"],
        )
        assert body["acknowledged_by"] == "responder-token"

        r = await c.post(f"/api/incidents/{key}/comments", json={"content": "rolled back to v41", "internal_only": True})
        assert r.status_code == 201 and r.json()["internal_only"] is True
        r = await c.post(f"/api/incidents/{key}/updates", json={"message": "A fix is rolling out", "status": "monitoring"})
        assert r.status_code == 201 and r.json()["public"] is True

        number = key.split("-")[1]
        for spelling in (key, key.lower(), number):
            detail = (await c.get(f"/api/incidents/{spelling}")).json()
            assert detail["key"] == key
        assert detail["status"] == "monitoring"
        assert [x["content"] for x in detail["comments"]] == ["rolled back to v41"]
        assert [u["message"] for u in detail["updates"]] == ["bad deploy", "A fix is rolling out"]
        kinds = [e["kind"] for e in detail["timeline"]]
        assert kinds[0] == "created" and {
            "status_changed",
            "severity_changed",
            "assigned",
            "tags_changed",
            "commented",
            "status_update",
        } <= set(kinds)
        assert all(e["actor"] == "responder-token" for e in detail["timeline"])


async def test_every_write_goes_through_the_service_layer(api):
    """A change made through the API is a timeline event like any other (the change feed)."""
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json={"title": "t", "severity": "medium"})).json()["key"]
        await c.post(f"/api/incidents/{key}/acknowledge")
        await c.post(f"/api/incidents/{key}/evidence", json={"kind": "link", "url": "https://grafana.example.com/d/1"})
        await c.post(
            f"/api/incidents/{key}/resolve",
            json={
                "root_cause": "disk full",
                "solution": "rotated logs",
                "category": "capacity",
                "verification_steps": ["df shows 40% free"],
            },
        )
        r = await c.post(f"/api/incidents/{key}/verification/1", json={"done": True})
        assert r.json()["verification_steps"] == [{"step": "df shows 40% free", "done": True}]
        r = await c.post(f"/api/incidents/{key}/reopen", json={"reason": "full again"})
        assert r.json()["status"] == "investigating"
        events = (await c.get("/api/events", params={"cursor": 0})).json()
    kinds = [e["kind"] for e in events["events"]]
    assert kinds == ["created", "acknowledged", "evidence_added", "resolved", "verification_step", "reopened"]
    assert events["cursor"] == events["events"][-1]["id"]
    assert await Event.filter(actor="responder-token").count() == 6


async def test_errors_name_the_problem_and_change_nothing(api):
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json={"title": "t", "severity": "low"})).json()["key"]
        before = await Event.all().count()

        r = await c.get("/api/incidents/INC-99999")
        assert r.status_code == 404 and r.json() == {"error": "not_found", "message": "no incident INC-99999"}
        assert (await c.get("/api/incidents/INC-99999999999999999999")).status_code == 404
        r = await c.get("/api/incidents/ABC-1")
        assert r.status_code == 422 and r.json()["field"] == "id"

        r = await c.post(f"/api/incidents/{key}/acknowledge")
        assert r.status_code == 200
        r = await c.post(f"/api/incidents/{key}/acknowledge")
        assert r.status_code == 409 and "already acknowledged" in r.json()["message"]
        r = await c.put(f"/api/incidents/{key}", json={"status": "resolved"})
        assert r.status_code == 422 and r.json()["field"] == "status"

        r = await c.post("/api/incidents", json={"title": "x", "severity": "urgent"})
        assert r.status_code == 422 and r.json()["field"] == "severity"
        r = await c.post("/api/incidents", json={"title": "   ", "severity": "low"})
        assert r.status_code == 422 and r.json()["message"] == "title: must not be empty"  # said as the CLI says it
        r = await c.post(f"/api/incidents/{key}/comments", json={"content": ""})
        assert r.status_code == 422 and r.json()["message"] == "content: must not be empty"  # not "should match pattern '\\S'"
        r = await c.post("/api/incidents", json={"title": "x", "severity": "low", "dedup_key": ""})
        assert r.status_code == 422 and r.json()["message"] == "dedup_key: must not be empty", r.text  # it was stored as ""
        r = await c.post("/api/incidents", json={"title": "x", "severity": "low", "colour": "red"})
        assert r.status_code == 422 and r.json()["field"] == "colour"
        assert r.json()["message"].startswith("colour: is not a field of this request (its fields: title, severity, ")
        r = await c.post(f"/api/incidents/{key}/updates", json={"message": "x", "stated_at": "2026-03-01T10:00Z"})
        assert (
            r.json()["message"]
            == "stated_at: is not a field of this request (its fields: message, public, status, timestamp, public_updates)"
        )
        r = await c.post("/api/incidents", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["field"] == "body"
        r = await c.post("/api/incidents", json={"title": "nul \x00 byte", "severity": "low"})
        assert r.status_code == 422 and r.json()["field"] == "title"
        r = await c.post(f"/api/incidents/{key}/evidence", json={"kind": "link", "url": "not a url"})
        assert r.status_code == 422 and r.json()["field"] == "url"
        r = await c.post(f"/api/incidents/{key}/resolve", json={"root_cause": "x", "solution": "y", "category": "gremlins"})
        assert r.status_code == 422 and r.json()["field"] == "category"
        r = await c.put(f"/api/incidents/{key}", json={"message": "alone"})
        assert r.status_code == 422
        r = await c.put(f"/api/incidents/{key}", json={"severity": "critical", "tags": ["bad tag!"]})
        assert r.status_code == 422 and r.json()["field"].startswith("tags")
        assert (await c.get(f"/api/incidents/{key}")).json()["severity"] == "low"  # the valid half was not applied either
    # Only the acknowledgement got through.
    assert await Event.all().count() == before + 1


async def test_a_put_refused_on_one_field_changes_none_of_them(api):
    """The status a resolved incident cannot take is found after the title was written: the
    whole PUT is one transaction, so the 409 leaves the title, severity and tags as they were."""
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json={"title": "Disk full", "severity": "high", "services": ["web-app"]})).json()["key"]
        r = await c.post(f"/api/incidents/{key}/resolve", json={"root_cause": "logs", "solution": "rotated"})
        assert r.status_code == 200, r.text
        before = (await c.get(f"/api/incidents/{key}")).json()
        body = {"title": "Disk full on db-1", "severity": "critical", "tags": ["disk"], "status": "monitoring"}
        r = await c.put(f"/api/incidents/{key}", json=body)
        assert r.status_code == 409 and "resolved" in r.json()["message"], r.text
        after = (await c.get(f"/api/incidents/{key}")).json()
        assert (after["title"], after["severity"], after["tags"]) == (before["title"], before["severity"], before["tags"])
        assert [e["kind"] for e in after["timeline"]] == [e["kind"] for e in before["timeline"]]


async def test_a_promoted_comment_is_published_once(api):
    # A second press (a retried request, the console's P twice) would post the same public
    # update again and mail it to customers and subscribers a second time.
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json={"title": "Disk full", "severity": "high", "services": ["web-app"]})).json()["key"]
        note = (await c.post(f"/api/incidents/{key}/comments", json={"content": "Cleaning up old logs", "internal_only": True})).json()
        first = await c.post(f"/api/comments/{note['id']}/promote")
        assert first.status_code == 201 and first.json()["public"] is True
        again = await c.post(f"/api/comments/{note['id']}/promote")
        assert again.status_code == 409, again.text
        assert f"comment {note['id']} is already public (update #{first.json()['id']})" in again.json()["message"]
    assert await StatusUpdate.filter(message="Cleaning up old logs").count() == 1


async def test_viewer_reads_but_cannot_write(api):
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json={"title": "t", "severity": "low"})).json()["key"]
    async with api.client("viewer") as v:
        assert (await v.get("/api/incidents")).status_code == 200
        assert (await v.get(f"/api/incidents/{key}")).status_code == 200
        me = (await v.get("/api/me")).json()
        assert {k: me[k] for k in ("name", "role", "readonly", "may_write")} == {
            "name": "viewer-token",
            "role": "viewer",
            "readonly": True,
            "may_write": False,
        }
        writes = [
            ("POST", "/api/incidents", {"title": "x", "severity": "low"}),
            ("PUT", f"/api/incidents/{key}", {"severity": "high"}),
            ("POST", f"/api/incidents/{key}/comments", {"content": "hi"}),
            ("POST", f"/api/incidents/{key}/updates", {"message": "hi"}),
            ("POST", f"/api/incidents/{key}/acknowledge", None),
            ("POST", f"/api/incidents/{key}/resolve", {"root_cause": "x", "solution": "y"}),
            ("POST", "/api/metrics", {"samples": [{"series": "q", "value": 1}]}),
            ("POST", "/api/services", {"name": "x"}),
            ("POST", "/api/tokens", {"name": "x", "role": "admin"}),
        ]
        for method, path, body in writes:
            r = await v.request(method, path, json=body)
            assert r.status_code == 403, (method, path, r.text)
            assert "needs the" in r.json()["message"]
    assert await Comment.all().count() == 0 and await StatusUpdate.all().count() == 0


async def test_a_service_of_the_configuration_file_is_neither_added_changed_nor_removed_through_the_api(db):
    """POST made a shadow row of a configured service, and DELETE then answered 204 and logged
    "service web-app removed" while web-app stayed configured and listed."""
    async with running_api(config(STATUS_SITE)) as api, api.client("admin") as a:
        for name in ("web-app", " web-app "):
            r = await a.post("/api/services", json={"name": name, "description": "shadow"})
            assert r.status_code == 409 and r.json()["message"] == "web-app is defined in the configuration file", r.text
        r = await a.delete("/api/services/web-app")
        assert r.status_code == 409 and r.json()["message"] == "web-app is defined in the configuration file", r.text
        # PUT said 404 "no service", of a service GET lists: it is there, and changed in the file.
        r = await a.put("/api/services/web-app", json={"description": "changed"})
        assert r.status_code == 409 and r.json()["message"] == "web-app is defined in the configuration file", r.text
        assert not await Service.exists()
        assert not await Event.filter(kind__startswith="service_").exists() and not await AuditEntry.exists()
        listed = [(s["name"], s["configured"]) for s in (await a.get("/api/services")).json()]
        assert listed == [("web-app", True)]
        # A row an earlier version let in stays until the file no longer names the service.
        await Service.create(name="web-app", description="shadow")
        assert (await a.delete("/api/services/web-app")).status_code == 409
        assert await Service.filter(name="web-app").exists()
        # Services of the API's own are added and removed as before.
        assert (await a.post("/api/services", json={"name": "billing"})).status_code == 201
        assert (await a.delete("/api/services/billing")).status_code == 204
        assert [s["name"] for s in (await a.get("/api/services")).json()] == ["web-app"]


async def test_admin_only_management(api):
    async with api.client("responder") as c:
        for method, path, body in [
            ("POST", "/api/services", {"name": "billing"}),
            ("GET", "/api/tokens", None),
            (
                "POST",
                "/api/maintenance",
                {"title": "m", "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T01:00:00Z", "services": ["billing"]},
            ),
        ]:
            assert (await c.request(method, path, json=body)).status_code == 403
    async with api.client("admin") as a:
        r = await a.post("/api/services", json={"name": "billing", "description": "Invoices"})
        assert r.status_code == 201
        assert (await a.post("/api/services", json={"name": "billing"})).status_code == 409
        assert [s["name"] for s in (await a.get("/api/services")).json()] == ["billing"]
        assert (await a.get("/api/services")).json()[0]["status"] == "operational"
        r = await a.post(
            "/api/maintenance",
            json={"title": "DB upgrade", "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T01:00:00Z", "services": ["billing"]},
        )
        assert r.status_code == 201, r.text
        window = r.json()["id"]
        r = await a.post(
            "/api/maintenance",
            json={"title": "x", "starts_at": "2030-01-01T02:00:00Z", "ends_at": "2030-01-01T01:00:00Z", "services": ["billing"]},
        )
        assert r.status_code == 422 and r.json()["field"] == "ends_at"
        # Over before now: refused naming the end, even before its start (which read "must be after
        # the start", as silences did); started earlier and still running is fine.
        for over in ("2020-01-01T00:00:00Z", "2020-01-01T02:00:00Z"):
            r = await a.post(
                "/api/maintenance",
                json={"title": "x", "starts_at": over, "ends_at": "2020-01-01T01:00:00Z", "services": ["billing"]},
            )
            assert r.status_code == 422 and r.json()["field"] == "ends_at", r.text
            assert r.json()["message"].startswith("ends_at: 2020-01-01 ") and "has already passed" in r.json()["message"], r.text
        assert [m["title"] for m in (await a.get("/api/maintenance")).json()] == ["DB upgrade"]
        # A misspelt target would cover nothing (and the planned work would page): refused, like a
        # misspelt service; a target the engine knows (its monitor_target row) is taken.
        window_of = {"title": "t", "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T01:00:00Z"}
        r = await a.post("/api/maintenance", json={**window_of, "targets": ["chekout-api"]})
        assert r.status_code == 422 and r.json()["field"] == "targets", r.text
        assert r.json()["message"] == "targets: unknown target 'chekout-api' (known targets: none yet)"
        await MonitorTarget.create(name="checkout-api", kind="http", interval=30, timeout=5, updated_at=datetime.now(UTC))
        r = await a.post("/api/maintenance", json={**window_of, "targets": ["chekout-api"]})
        assert r.json()["message"] == "targets: unknown target 'chekout-api' (known targets: checkout-api)", r.text
        r = await a.post("/api/maintenance", json={**window_of, "targets": ["checkout-api"]})
        assert r.status_code == 201 and r.json()["targets"] == ["checkout-api"], r.text
        await MaintenanceWindow.filter(id=r.json()["id"]).delete()
        now = datetime.now(UTC)
        running = {"starts_at": (now - timedelta(hours=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat()}
        r = await a.post("/api/maintenance", json={"title": "running", "services": ["billing"], **running})
        assert r.status_code == 201, r.text
        assert (await a.post(f"/api/maintenance/{r.json()['id']}/end")).status_code == 200
        assert (await a.post(f"/api/maintenance/{window}/end")).status_code == 200
        assert (await a.post(f"/api/maintenance/{window}/end")).status_code == 409
        r = await a.post("/api/tokens", json={"name": "ci", "role": "viewer"})
        assert r.status_code == 201 and r.json()["token"].startswith("pg_")
        new_token = r.json()["token"]
        listed = (await a.get("/api/tokens")).json()
        assert "ci" in [t["name"] for t in listed] and all("token" not in t and "token_hash" not in t for t in listed)
        async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {new_token}"}) as ci:
            assert (await ci.get("/api/me")).json()["role"] == "viewer"
            assert (await a.delete("/api/tokens/ci")).status_code == 204
            assert (await ci.get("/api/me")).status_code == 401
        assert (await a.delete("/api/services/billing")).status_code == 204
        assert (await a.delete("/api/services/billing")).status_code == 404


PUBLIC = {
    "/status",
    "/status/incidents/{key}",
    "/status/feed.atom",
    "/healthz",
    "/status/subscribe",
    "/status/confirm",
    "/status/unsubscribe",
    "/api/webhooks/slack",
    "/api/webhooks/pagerduty",
    "/api/heartbeats/{token}",  # the token in the path is the credential (tests/test_heartbeats.py)
    "/api/webhooks/slack/actions",  # signed by Slack (tests/test_page_actions.py)
    "/act/{token}",  # a page's signed link is the credential (tests/test_page_actions.py)
    "/api/callbacks/{token}",
}


async def test_no_token_gets_401_everywhere_but_the_public_pages(api):
    async with api.client() as anon:
        schema = (await anon.get("/openapi.json")).json()
        checked = 0
        for path, methods in schema["paths"].items():
            if path in PUBLIC or path.startswith("/api/v2/"):
                continue
            concrete = path.replace("{id}", "INC-1").replace("{name}", "x").replace("{step}", "1")
            concrete = re.sub(r"\{\w+\}", "1", concrete)
            for method in methods:
                r = await anon.request(method.upper(), concrete)
                assert r.status_code == 401, (method, path, r.status_code, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
                checked += 1
        assert checked > 40
        r = await anon.get("/api/incidents", headers={"Authorization": "Basic dXNlcjpwdw=="})
        assert r.status_code == 401
        for path in (
            "/status",
            "/api/v2/summary.json",
            "/api/v2/status.json",
            "/api/v2/components.json",
            "/api/v2/incidents.json",
            "/api/v2/incidents/unresolved.json",
            "/api/v2/scheduled-maintenances.json",
            "/status/feed.atom",
            "/healthz",
        ):
            assert (await anon.get(path)).status_code == 200, path


async def test_repeated_failed_authentication_is_slowed_down(api):
    api.state.throttle = FailureThrottle(free=3, window=60, cap=30)
    async with api.client() as anon:
        bad = {"Authorization": "Bearer pg_wrong-token"}
        for _ in range(3):
            assert (await anon.get("/api/incidents", headers=bad)).status_code == 401
        r = await anon.get("/api/incidents", headers=bad)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        # A good token is never slowed down: others behind the same address keep working.
        r = await anon.get("/api/incidents", headers={"Authorization": f"Bearer {api.tokens['viewer']}"})
        assert r.status_code == 200
        # No token at all is not a guess: a browser hitting the page never locks itself out.
        assert (await anon.get("/status")).status_code == 200
        assert (await anon.get("/api/incidents", headers=bad)).status_code == 429
        # Wait out the slow-down by the throttle's own clock (a fixed sleep raced a loaded machine).
        throttle = api.state.throttle
        for _ in range(200):
            if all(throttle.retry_after(k) <= 0 for k in list(throttle._clients)):
                break
            await asyncio.sleep(0.05)
        # Once the wait is over the next wrong token is looked at again (and slows down further).
        r = await anon.get("/api/incidents", headers=bad)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 2
    assert api.state.auth_failures == 6


async def test_timeline_cursor_and_event_stream(api):
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json={"title": "stream me", "severity": "high"})).json()["key"]
        other = (await c.post("/api/incidents", json={"title": "other", "severity": "low"})).json()["key"]
        first = (await c.get(f"/api/incidents/{key}/timeline")).json()
        assert [e["kind"] for e in first["events"]] == ["created"]
        assert (await c.get(f"/api/incidents/{key}/timeline", params={"cursor": first["cursor"]})).json()["events"] == []

        cursor = (await c.get("/api/events/cursor")).json()["cursor"]
        seen: list[dict] = []
        ids: list[str] = []

        async def follow(path: str, params: dict, sink: list) -> None:
            async with c.stream("GET", path, params=params) as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                async for line in r.aiter_lines():
                    if line.startswith("id: "):
                        ids.append(line[4:])
                    if line.startswith("data: ") and line != "data: {}":
                        sink.extend(json.loads(line[6:]))
                        if any(e["kind"] == "commented" for e in sink):
                            return

        mine: list[dict] = []
        task = asyncio.create_task(follow("/api/events/stream", {"cursor": cursor}, seen))
        task2 = asyncio.create_task(follow(f"/api/incidents/{key}/timeline/stream", {"cursor": first["cursor"]}, mine))
        await asyncio.sleep(0.3)
        await c.post(f"/api/incidents/{other}/acknowledge")
        await c.post(f"/api/incidents/{key}/comments", json={"content": "hello stream"})
        await asyncio.wait_for(asyncio.gather(task, task2), 10)
    assert [e["kind"] for e in seen] == ["acknowledged", "commented"]
    assert [e["kind"] for e in mine] == ["commented"] and mine[0]["incident"] == key
    assert ids and int(ids[-1]) == seen[-1]["id"]


async def test_stream_resumes_from_last_event_id(api):
    await services.create_incident(title="a", severity="low", actor="x")
    await services.create_incident(title="b", severity="low", actor="x")
    first = (await Event.all().order_by("id").first()).id
    async with api.client("viewer") as c:
        async with c.stream("GET", "/api/events/stream", headers={"Last-Event-ID": str(first)}) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    batch = json.loads(line[6:])
                    break
    assert [e["summary"].split(": ")[-1] for e in batch] == ["b"]


async def test_pushed_metrics_and_prometheus_metrics(api):
    async with api.client("responder") as c:
        # A series holds one value per instant: two samples of one batch need their own times.
        earlier = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
        r = await c.post(
            "/api/metrics",
            json={
                "samples": [
                    {"series": "queue_depth", "value": 4, "labels": {"queue": "mail"}, "at": earlier},
                    {"series": "queue_depth", "value": 7, "labels": {"queue": "mail"}},
                ]
            },
        )
        assert r.status_code == 201, r.text
        r = await c.post("/api/metrics", json={"samples": [{"series": "x", "value": 1, "at": "2999-01-01T00:00:00Z"}]})
        assert r.status_code == 422 and r.json()["field"] == "samples[0].at"
        points = (await c.get("/api/metrics/samples", params={"series": 'queue_depth{queue="mail"}'})).json()["points"]
        assert [p["value"] for p in points] == [4.0, 7.0]
        await c.post("/api/incidents", json={"title": "t", "severity": "critical"})
        text = (await c.get("/metrics")).text
    assert 'pulseguard_open_incidents{severity="critical"} 1' in text
    assert "pulseguard_outbox_depth 0" in text and "pulseguard_probes_per_second" in text
    assert "pulseguard_notification_failures_total 0" in text
    # Counted from the outbox (the timeline notes a repeated failure once): delivered at the
    # 3rd attempt is 2 failures, given up after 4 is 4, sent at once is none.
    from engine.storage.escalation_models import Notification

    now = datetime.now(UTC)
    for key, state, attempts in (("a", "delivered", 3), ("b", "dead", 4), ("c", "delivered", 1), ("d", "pending", 0)):
        await Notification.create(
            dedup_key=key,
            stream=f"-|{key}",
            destination="slack:#x",
            kind="triggered",
            state=state,
            attempts=attempts,
            next_attempt_at=now,
            created_at=now,
        )
    async with api.client("viewer") as c:
        assert "pulseguard_notification_failures_total 6" in (await c.get("/metrics")).text
    assert re.search(r'pulseguard_http_requests_total\{code="201",method="POST"\} [1-9]', text)
    async with api.client() as anon:
        assert (await anon.get("/healthz")).json()["status"] == "ok"


async def test_token_cli_create_list_revoke(db, tmp_path):
    proc = run_cli(db, "token", "create", "ci-bot", "--role", "responder", check=True)
    token = proc.stdout.strip().splitlines()[-1]
    assert token.startswith("pg_") and "shown only this once" in proc.stdout
    listed = run_cli(db, "token", "list", "--json", check=True)
    rows = json.loads(listed.stdout)
    ci = next(r for r in rows if r["name"] == "ci-bot")
    assert ci["role"] == "responder" and token not in listed.stdout and token.startswith(ci["prefix"])
    bad = run_cli(db, "token", "create", "ci-bot", "--role", "responder")
    assert bad.returncode == 2 and "already exists" in bad.stderr
    bad = run_cli(db, "token", "create", "x", "--role", "root")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    async with running_api() as running:
        async with httpx.AsyncClient(base_url=running.url, headers={"Authorization": f"Bearer {token}"}) as c:
            r = await c.post("/api/incidents", json={"title": "from CI", "severity": "low"})
            assert r.status_code == 201 and r.json()["created_by"] == "ci-bot"
            assert run_cli(db, "token", "revoke", "ci-bot", check=True).returncode == 0
            from engine.rest import auth

            auth.forget_cache()  # the server would notice within CACHE_SECONDS; don't wait for it here
            assert (await c.get("/api/incidents")).status_code == 401
    assert run_cli(db, "token", "revoke", "ci-bot").returncode == 2
    # A token named "1" was created, and `token revoke 1` then revoked token #1 (ci-bot's) instead.
    bad = run_cli(db, "token", "create", "1", "--role", "admin")
    assert (bad.returncode, bad.stdout) == (2, "") and bad.stderr.startswith("error: name: '1' is only digits"), bad.stderr
    assert "'1'" not in run_cli(db, "token", "list", "--all", check=True).stdout
    # Were "unexpected failure: OverflowError" / "ValueError", exit 1.
    for name in ("99999999999999999999", "²"):
        bad = run_cli(db, "token", "revoke", name)
        assert bad.returncode == 2 and bad.stderr == f"error: no active token {name!r}\n", bad.stderr


async def test_server_drains_and_stops_with_open_streams(db):
    async with running_api() as running:
        async with running.client("viewer") as c:
            async with c.stream("GET", "/api/events/stream") as r:
                assert r.status_code == 200
                started = asyncio.get_running_loop().time()
                stopping = asyncio.create_task(running.service.stop())
                lines = [line async for line in r.aiter_lines()]
                await stopping
                took = asyncio.get_running_loop().time() - started
        assert "event: closing" in lines
        assert took < 3

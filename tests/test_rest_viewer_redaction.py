"""Where notifications went is for responders: a viewer token reads the timeline, the change
feed, the incident list and detail, and the post-mortem with each destination reduced to its
channel ("e-mail (hidden)" in text, "email" in data), as /api/users and /api/oncall give it
names without addresses. The rendered caches keep a viewer's copy apart from a responder's,
and the remote console attached as a viewer reads the redacted form. A real escalation (loopback
SMTP refusing one person) fills the timeline; real uvicorn on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from support.escalation import config_text, eventually, fast_loops
from support.rest import running_api

from engine.api.remote import RemoteEngine
from engine.config.loading import parse_config_text
from engine.incidents import services
from engine.storage.models import Event

# Level 1 also mails a customer list; alice's mailbox refuses (a failure whose reason quotes her address).
CUSTOMERS = "status-subscribers@example.com"


async def _escalated(receivers: Any) -> tuple[Any, str]:
    receivers.smtp.refuse = {"alice@example.com"}
    text = config_text(receivers, after=30).replace(
        'notify = ["schedule:primary", "slack:#incidents", "webhook:ops", "pagerduty"]',
        f'notify = ["schedule:primary", "slack:#incidents", "webhook:ops", "pagerduty", "email:{CUSTOMERS}"]',
    )
    cfg = parse_config_text(text)
    async with fast_loops(cfg):
        incident = await services.create_incident(title="API down", severity="critical", actor="probe")
        await eventually(lambda: Event.filter(kind="notify_dead").exists(), timeout=10)
        await eventually(lambda: receivers.mails_to(CUSTOMERS), timeout=10)
        await eventually(lambda: Event.filter(kind="notified", summary__contains=CUSTOMERS).exists(), timeout=10)
    return cfg, incident.key


def _by_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind]


async def _first_stream_batch(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    async with client.stream("GET", path, params={"cursor": 0}) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: ") and line != "data: {}":
                batch: list[dict[str, Any]] = json.loads(line[6:])
                return batch
    raise AssertionError(f"{path} sent no events")


async def test_a_viewer_reads_where_notifications_went_without_addresses(esc_db, receivers):
    cfg, key = await _escalated(receivers)
    async with running_api(cfg) as api:
        path = f"/api/incidents/{key}"
        async with api.client("responder") as responder, api.client("viewer") as viewer:
            # The responder's read fills the cache first: the viewer must not be served it.
            full = await responder.get(path)
            assert full.status_code == 200
            dead = _by_kind(full.json()["timeline"], "notify_dead")[0]
            assert dead["summary"].startswith("notification to alice@example.com abandoned: ")
            assert dead["data"]["destination"] == "email:alice@example.com"
            assert CUSTOMERS in json.dumps(full.json()["escalation"]["policy"])

            routed = await viewer.get(path)
            cached = await viewer.get(path)  # answered before routing (engine.rest.fastpath)
            assert routed.content == cached.content and routed.headers["etag"] == cached.headers["etag"]
            assert routed.headers["etag"] != full.headers["etag"]
            # The responder's ETag is not the viewer's copy: a 200 with the redacted body, not a 304.
            swapped = await viewer.get(path, headers={"If-None-Match": full.headers["etag"]})
            assert swapped.status_code == 200 and swapped.content == routed.content
            assert (await viewer.get(path, headers={"If-None-Match": routed.headers["etag"]})).status_code == 304

            detail = routed.json()
            timeline = detail["timeline"]
            dead = _by_kind(timeline, "notify_dead")[0]
            assert dead["summary"] == (
                "notification to e-mail (hidden) abandoned: SMTP refused every recipient: e-mail (hidden): 550 5.1.1 mailbox unavailable"
            )
            assert dead["data"]["destination"] == "email"
            step = _by_kind(timeline, "escalation")[0]
            assert step["summary"].startswith(
                "level 1 notified: alice (schedule primary), Slack (hidden), webhook (hidden), PagerDuty, e-mail (hidden); next step at "
            )
            assert step["data"]["recipients"] == [
                "alice (schedule primary)",
                "Slack (hidden)",
                "webhook (hidden)",
                "PagerDuty",
                "e-mail (hidden)",
            ]
            assert step["data"]["destinations"] == ["email", "slack", "webhook", "pagerduty", "email", "email"]
            notified = sorted(e["summary"] for e in _by_kind(timeline, "notified"))
            assert "notified e-mail (hidden): triggered (accepted by 127.0.0.1)" in notified
            assert "notified Slack (hidden): triggered" in notified
            assert [lv["notify"] for lv in detail["escalation"]["policy"]["levels"]] == [
                ["schedule:primary", "slack", "webhook", "pagerduty", "email"],
                ["schedule:secondary", "user:carol"],
            ]
            # Everything else reads as the responder reads it.
            assert detail["title"] == "API down" and _by_kind(timeline, "created") == _by_kind(full.json()["timeline"], "created")

            reads = {
                "detail": routed.text,
                "timeline": (await viewer.get(f"{path}/timeline")).text,
                "events": (await viewer.get("/api/events")).text,
                "list": (await viewer.get("/api/incidents")).text,
                "list again": (await viewer.get("/api/incidents")).text,
                "events stream": json.dumps(await _first_stream_batch(viewer, "/api/events/stream")),
                "timeline stream": json.dumps(await _first_stream_batch(viewer, f"{path}/timeline/stream")),
                "post-mortem": (await viewer.get(f"{path}/postmortem")).text,
                "post-mortem markdown": (await viewer.get(f"{path}/postmortem/markdown")).text,
            }
            for what, body in reads.items():
                assert "example.com" not in body and "#incidents" not in body, (what, body)
            assert "e-mail (hidden)" in reads["events"] and "e-mail (hidden)" in reads["post-mortem markdown"]

            # Responders keep reading every address, after the viewer's reads filled the caches too.
            for what in ("/api/events", f"{path}/timeline", "/api/incidents", path, f"{path}/postmortem"):
                body = (await responder.get(what)).text
                assert CUSTOMERS in body, what
            assert "alice@example.com" in json.dumps(await _first_stream_batch(responder, "/api/events/stream"))

        # The remote console attached as a viewer (pulseguard --connect) reads the redacted form.
        remote = await RemoteEngine.connect(api.url, api.tokens["viewer"])
        stream = remote.subscribe(0)
        try:
            assert remote.readonly
            shown = await remote.incident_detail(key)
            assert _by_kind(shown["timeline"], "notify_dead")[0]["data"]["destination"] == "email"
            page = await remote.list_incidents()
            assert [i["key"] for i in page] == [key] and "example.com" not in json.dumps(page)
            batch = await asyncio.wait_for(stream.__anext__(), 5)
            assert batch and "example.com" not in json.dumps(batch)
            assert "e-mail (hidden)" in (await remote.postmortem_markdown(key))
        finally:
            await stream.aclose()
            await remote.aclose()

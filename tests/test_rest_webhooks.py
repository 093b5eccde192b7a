"""Inbound webhooks against a real server: Alertmanager, generic alerts, Slack slash commands,
PagerDuty v3 (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import httpx
from support.rest import config, running_api

from engine.rest.server import ApiService
from engine.storage.models import Event, Incident

HOOKS = """
[engine]
timezone = "UTC"

[[users]]
id = "alice"
slack = "@alice"

[integrations.alertmanager]
token_env = "TEST_AM_TOKEN"
default_severity = "medium"

[integrations.slack]
signing_secret_env = "TEST_SLACK_SECRET"
command_integration = true

[integrations.pagerduty]
routing_key_env = "TEST_PD_KEY"
webhook_secret_env = "TEST_PD_SECRET"
incident_sync = true
"""


def am(status: str, group: str, alerts: list[tuple[str, str]], severity: str = "critical") -> dict:
    """An Alertmanager v4 payload: `alerts` are (instance, status)."""
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{group}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "pulseguard",
        "groupLabels": {"alertname": group},
        "commonLabels": {"alertname": group, "severity": severity, "service": "api-server"},
        "commonAnnotations": {"summary": f"{group} on the API"},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": s,
                "labels": {"alertname": group, "instance": inst, "severity": severity},
                "annotations": {"description": "p99 above 2s"},
                "startsAt": "2026-01-01T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z" if s == "firing" else "2026-01-01T10:30:00Z",
                "generatorURL": f"http://prometheus:9090/graph?g0={inst}",
                "fingerprint": hashlib.sha1(inst.encode()).hexdigest()[:16],
            }
            for inst, s in alerts
        ],
    }


async def test_one_alert_group_sent_to_two_engines_at_once_opens_one_incident(db, monkeypatch):
    """Highly available Alertmanager sends each notification to every engine behind the load
    balancer. Two engines (each with its own API state) on one database, the same firing sent
    to both at the same moment: one incident, the other engine's copies count on it."""
    monkeypatch.setenv("TEST_AM_TOKEN", "am-secret")
    other = ApiService("127.0.0.1:0", config(HOOKS), db_label="test", relay=False, drain_seconds=3)  # no tokens of its own
    async with running_api(config(HOOKS)) as one:
        await other.start()
        auth = {"Authorization": "Bearer am-secret"}
        try:
            async with one.client(headers=auth) as a, httpx.AsyncClient(base_url=other.url, headers=auth, timeout=30) as b:
                for round_ in range(3):
                    body = am("firing", f"Race{round_}", [("a:9100", "firing")])
                    answers = await asyncio.gather(*(c.post("/api/webhooks/alertmanager", json=body) for c in (a, b) * 3))
                    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
                    assert [r.json()["action"] for r in answers].count("created") == 1, [r.json() for r in answers]
                    assert len({r.json()["incident"] for r in answers}) == 1
        finally:
            await other.stop()
    incidents = await Incident.all()
    assert len(incidents) == 3 and sorted(i.firing_count for i in incidents) == [6, 6, 6]


async def test_alertmanager_group_opens_one_incident_and_resolution_settles_it(db, monkeypatch):
    monkeypatch.setenv("TEST_AM_TOKEN", "am-secret")
    async with running_api(config(HOOKS)) as api:
        async with api.client(headers={"Authorization": "Bearer am-secret"}) as hook:
            r = await hook.post(
                "/api/webhooks/alertmanager", json=am("firing", "HighLatency", [("a:9100", "firing"), ("b:9100", "firing")])
            )
            assert r.status_code == 200, r.text
            assert r.json()["action"] == "created"
            key = r.json()["incident"]
            again = await hook.post(
                "/api/webhooks/alertmanager", json=am("firing", "HighLatency", [("a:9100", "firing"), ("b:9100", "firing")])
            )
            assert again.json() == {"action": "unchanged", "incident": key, "count": 2}
            other = await hook.post("/api/webhooks/alertmanager", json=am("firing", "DiskFull", [("db:9100", "firing")], "warning"))
            assert other.json()["action"] == "created" and other.json()["incident"] != key

            partly = await hook.post(
                "/api/webhooks/alertmanager", json=am("firing", "HighLatency", [("a:9100", "resolved"), ("b:9100", "firing")])
            )
            assert partly.json()["action"] == "updated"
            done = await hook.post(
                "/api/webhooks/alertmanager", json=am("resolved", "HighLatency", [("a:9100", "resolved"), ("b:9100", "resolved")])
            )
            assert done.json() == {"action": "monitoring", "incident": key, "count": 3}
            back = await hook.post("/api/webhooks/alertmanager", json=am("firing", "HighLatency", [("a:9100", "firing")]))
            assert back.json() == {"action": "investigating", "incident": key, "count": 4}

        incidents = await Incident.all().order_by("number")
        assert len(incidents) == 2
        first = incidents[0]
        assert (first.source, first.severity, first.services, first.status) == ("alert", "critical", ["api-server"], "investigating")
        assert first.title == "HighLatency on the API" and "alertmanager" in first.tags
        # Alertmanager's word on its alerts moved it, nobody acknowledged it: no MTTA, paging goes on.
        assert (first.acknowledged_at, first.acknowledged_by) == (None, None)
        assert incidents[1].severity == "medium"  # "warning"
        kinds = [e.kind for e in await Event.filter(incident_id=first.id).order_by("id")]
        assert kinds.count("alert_firing") == 3 and kinds.count("alert_resolved") == 2
        assert "status_changed" in kinds

        async with api.client() as anon:
            r = await anon.post("/api/webhooks/alertmanager", json=am("firing", "X", [("a", "firing")]))
            assert r.status_code == 401
        async with api.client("viewer") as viewer:
            assert (await viewer.post("/api/webhooks/alertmanager", json=am("firing", "X", [("a", "firing")]))).status_code == 403
        async with api.client("responder") as responder:
            bad = dict(am("firing", "X", [("a", "firing")]), version="3")
            r = await responder.post("/api/webhooks/alertmanager", json=bad)
            assert r.status_code == 422 and r.json()["field"] == "version"
            r = await responder.post("/api/webhooks/alertmanager", json={"version": "4", "status": "firing", "alerts": []})
            assert r.status_code == 422
        assert await Incident.all().count() == 2


async def test_generic_alert(db):
    async with running_api(config(HOOKS)) as api:
        async with api.client("responder") as c:
            r = await c.post(
                "/api/webhooks/alert",
                json={
                    "title": "Queue backlog",
                    "severity": "warning",
                    "dedup_key": "queue-1",
                    "services": ["worker"],
                    "url": "https://grafana/x",
                },
            )
            assert r.json()["action"] == "created"
            key = r.json()["incident"]
            r = await c.post("/api/webhooks/alert", json={"title": "Queue backlog (still)", "dedup_key": "queue-1"})
            assert r.json() == {"action": "unchanged", "incident": key, "count": 2}
            r = await c.post("/api/webhooks/alert", json={"title": "Queue backlog", "dedup_key": "queue-1", "status": "resolved"})
            assert r.json() == {"action": "monitoring", "incident": key, "count": 2}
            r = await c.post("/api/webhooks/alert", json={"title": "x", "severity": "apocalyptic"})
            assert r.status_code == 422 and r.json()["field"] == "severity"
            detail = (await c.get(f"/api/incidents/{key}")).json()
    assert (detail["severity"], detail["source"], detail["status"], detail["services"]) == ("medium", "alert", "monitoring", ["worker"])


async def test_an_alert_naming_an_undeclared_service_still_opens_its_incident_without_it(db):
    """A label typo must not lose the page, nor show customers a raw internal name: the incident
    opens with the declared services, and its timeline says which name was left off."""
    async with running_api(config(HOOKS + '\n[[services]]\nname = "worker"\n')) as api:
        async with api.client("responder") as c:
            r = await c.post("/api/webhooks/alert", json={"title": "Queue backlog", "services": ["worker", "db-7-internal"]})
            assert r.status_code == 200 and r.json()["action"] == "created", r.text
            detail = (await c.get(f"/api/incidents/{r.json()['incident']}")).json()
    assert detail["services"] == ["worker"]
    notes = [e["summary"] for e in detail["timeline"] if e["kind"] == "note"]
    assert notes == ["the alert names service 'db-7-internal', not declared in [[services]]: left off the incident"]


def slack_request(
    secret: str, text: str, *, ts: int | None = None, user: str = "alice", sign_with: str | None = None
) -> tuple[bytes, dict]:
    body = urlencode({"command": "/pulseguard", "text": text, "user_id": "U1", "user_name": user, "team_id": "T1"}).encode()
    stamp = str(ts if ts is not None else int(time.time()))
    digest = hmac.new((sign_with or secret).encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return body, {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


async def test_slack_commands_are_verified_and_run(db, monkeypatch):
    monkeypatch.setenv("TEST_SLACK_SECRET", "slack-signing-secret")
    secret = "slack-signing-secret"
    async with running_api(config(HOOKS)) as api:
        async with api.client("responder") as c:
            key = (await c.post("/api/incidents", json={"title": "Payments down", "severity": "critical"})).json()["key"]
        async with api.client() as slack:

            async def run(text: str, **kw) -> dict:
                body, headers = slack_request(secret, text, **kw)
                r = await slack.post("/api/webhooks/slack", content=body, headers=headers)
                assert r.status_code == 200, r.text
                return r.json()

            listed = await run("list")
            assert f"*{key}* [critical] triggered: Payments down" in listed["text"] and listed["response_type"] == "ephemeral"
            acked = await run(f"ack {key}")
            assert acked == {"response_type": "in_channel", "text": f"{key} acknowledged by alice (investigating)"}
            status = await run(f"status {key} identified card processor timeouts")
            assert status["text"] == f"{key} is now identified: card processor timeouts"
            assert (await run(f"comment {key} paging the vendor"))["text"] == f"comment added to {key}"
            assert "Could not do that" in (await run(f"ack {key}"))["text"]
            assert "Usage" in (await run("dance"))["text"]
            assert (await run(f"comment {key} from a stranger", user="mallory"))["text"].startswith("comment added")
            # Stopping or moving paging takes a [[users]] entry, as the buttons do: a stranger's
            # ack or status is refused to them alone and changes nothing.
            async with api.client("responder") as c:
                other = (await c.post("/api/incidents", json={"title": "Search slow", "severity": "high"})).json()["key"]
            stranger = (
                "Your Slack account (U1) is not a PulseGuard user, so nothing was changed. "
                'Add slack = "U1" to your [[users]] entry, then run the command again.'
            )
            assert await run(f"ack {other}", user="mallory") == {"response_type": "ephemeral", "text": stranger}
            assert await run(f"status {other} identified it was me", user="mallory") == {"response_type": "ephemeral", "text": stranger}
            assert (await run("list", user="mallory"))["text"].count("*INC-") == 2

            # Bad signature, stale timestamp (validly signed for that time), missing headers.
            body, headers = slack_request(secret, "list", sign_with="wrong-secret")
            r = await slack.post("/api/webhooks/slack", content=body, headers=headers)
            assert r.status_code == 401 and "signature does not match" in r.json()["message"]
            body, headers = slack_request(secret, f"ack {key}", ts=int(time.time()) - 6 * 60)
            r = await slack.post("/api/webhooks/slack", content=body, headers=headers)
            assert r.status_code == 401 and "5 minutes" in r.json()["message"]
            r = await slack.post("/api/webhooks/slack", content=b"text=list", headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 401
        async with api.client("responder") as c:
            detail = (await c.get(f"/api/incidents/{key}")).json()
            untouched = (await c.get(f"/api/incidents/{other}")).json()
    assert (untouched["status"], untouched["acknowledged_by"], untouched["updates"]) == ("triggered", None, [])
    assert detail["acknowledged_by"] == "alice" and detail["status"] == "identified"
    assert [(x["author"], x["content"]) for x in detail["comments"]] == [
        ("alice", "paging the vendor"),
        ("slack:mallory", "from a stranger"),
    ]


async def test_slack_commands_off_unless_configured(db):
    async with running_api(config()) as api:
        async with api.client() as slack:
            body, headers = slack_request("s", "list")
            r = await slack.post("/api/webhooks/slack", content=body, headers=headers)
            assert r.status_code == 404 and "not enabled" in r.json()["message"]


async def test_pagerduty_v3_webhook_carries_acknowledgement_back(db, monkeypatch):
    monkeypatch.setenv("TEST_PD_SECRET", "pd-secret")
    async with running_api(config(HOOKS)) as api:
        async with api.client("responder") as c:
            key = (await c.post("/api/incidents", json={"title": "DB down", "severity": "critical"})).json()["key"]
        event = {
            "event": {
                "id": "E1",
                "event_type": "incident.acknowledged",
                "resource_type": "incident",
                "occurred_at": "2026-01-01T10:00:00Z",
                "agent": {"summary": "Bob"},
                "data": {"id": "P1", "type": "incident", "incident_key": f"pulseguard-{key}", "title": f"{key}: DB down"},
            }
        }
        body = json.dumps(event).encode()
        signature = "v1=" + hmac.new(b"pd-secret", body, hashlib.sha256).hexdigest()
        async with api.client() as pd:
            r = await pd.post(
                "/api/webhooks/pagerduty",
                content=body,
                headers={"X-PagerDuty-Signature": "v1=bad," + signature, "Content-Type": "application/json"},
            )
            assert r.status_code == 200 and r.json()["result"] == f"{key} acknowledged from PagerDuty"
            r = await pd.post("/api/webhooks/pagerduty", content=body, headers={"X-PagerDuty-Signature": "v1=bad"})
            assert r.status_code == 401
            r = await pd.post(
                "/api/webhooks/pagerduty",
                content=b"[]",
                headers={"X-PagerDuty-Signature": "v1=" + hmac.new(b"pd-secret", b"[]", hashlib.sha256).hexdigest()},
            )
            assert r.status_code == 422
    incident = await Incident.get(number=int(key.split("-")[1]))
    assert incident.acknowledged_by == "pagerduty:Bob"


async def test_an_alert_storm_of_thousands_in_one_group_opens_its_incident_with_every_alert(db, monkeypatch):
    """Alertmanager sends a group's alerts in one body and does not retry a 413: a storm across
    a fleet (here 4,000 alerts, over 1 MB) must open its incident, every alert on its timeline,
    and settle it the same way. The body is read only once the sender is authenticated."""
    monkeypatch.setenv("TEST_AM_TOKEN", "am-secret")
    hosts = [f"node-{i}.eu:9100" for i in range(4000)]
    storm = am("firing", "NodeDown", [(h, "firing") for h in hosts])
    raw = json.dumps(storm).encode()
    assert len(raw) > 1_048_576  # over engine.api_body_limit's default
    async with running_api(config(HOOKS)) as api:
        async with api.client() as anon:
            r = await anon.post("/api/webhooks/alertmanager", content=raw, headers={"content-type": "application/json"})
            assert r.status_code == 401, r.text
        assert await Incident.all().count() == 0
        async with api.client(headers={"Authorization": "Bearer am-secret"}) as hook:
            hook.timeout = 120
            r = await hook.post("/api/webhooks/alertmanager", content=raw, headers={"content-type": "application/json"})
            assert r.status_code == 200 and r.json()["action"] == "created", r.text
            key = r.json()["incident"]
            half = am("firing", "NodeDown", [(h, "resolved" if i % 2 else "firing") for i, h in enumerate(hosts)])
            r = await hook.post("/api/webhooks/alertmanager", json=half)
            assert r.json() == {"action": "updated", "incident": key, "count": 2}
            done = am("resolved", "NodeDown", [(h, "resolved") for h in hosts])
            r = await hook.post("/api/webhooks/alertmanager", json=done)
            assert r.json()["action"] == "monitoring"
    incident = await Incident.get(number=int(key.split("-")[1]))
    events = await Event.filter(incident_id=incident.id).order_by("id").values_list("kind", "data")
    firing = [data["fingerprint"] for kind, data in events if kind == "alert_firing"]
    resolved = [data["fingerprint"] for kind, data in events if kind == "alert_resolved"]
    assert len(firing) == 4000 and len(set(firing)) == 4000
    assert len(resolved) == 4000 and len(set(resolved)) == 4000
    # In the order the alerts came: odd hosts resolved first, then the even ones.
    fingerprints = [hashlib.sha1(h.encode()).hexdigest()[:16] for h in hosts]
    assert firing == fingerprints and resolved == fingerprints[1::2] + fingerprints[0::2]

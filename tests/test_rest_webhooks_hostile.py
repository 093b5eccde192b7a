"""Inbound webhooks as a hostile or sloppy sender uses them, against a real server (SQLite and
PostgreSQL): wrong types where objects belong, odd bytes in signatures, times outside what the
product stores. Each refusal names what is wrong, answers without a 500 and changes nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

from support.rest import config, running_api

from engine.storage.models import Event, Incident

PD = """
[engine]
timezone = "UTC"

[integrations.pagerduty]
routing_key_env = "TEST_PD_KEY"
webhook_secret_env = "TEST_PD_SECRET"
incident_sync = true
"""


def signed(doc: object) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(doc).encode()
    signature = "v1=" + hmac.new(b"pd-secret", body, hashlib.sha256).hexdigest()
    return body, {"X-PagerDuty-Signature": signature, "Content-Type": "application/json"}


async def test_pagerduty_event_parts_of_the_wrong_type_are_a_422_naming_them(db, monkeypatch):
    monkeypatch.setenv("TEST_PD_SECRET", "pd-secret")
    async with running_api(config(PD)) as api:
        async with api.client("responder") as c:
            key = (await c.post("/api/incidents", json={"title": "DB down", "severity": "critical"})).json()["key"]
        data = {"incident_key": f"pulseguard-{key}"}
        cases = [
            ({"event_type": "incident.acknowledged", "data": "P1"}, "event.data"),
            ({"event_type": "incident.acknowledged", "data": [data]}, "event.data"),
            ({"event_type": "incident.acknowledged", "data": data, "agent": "Bob"}, "event.agent"),
            ({"event_type": "incident.resolved", "data": data, "agent": ["Bob"]}, "event.agent"),
        ]
        async with api.client() as pd:
            for event, named in cases:
                body, headers = signed({"event": event})
                r = await pd.post("/api/webhooks/pagerduty", content=body, headers=headers)
                assert r.status_code == 422, (event, r.status_code, r.text)
                assert named in r.json()["message"], r.json()
            # A key whose "digits" are not decimal digits is not one of ours: ignored, not a 422
            # quoting Python's int().
            for other in ("pulseguard-INC-²", "pulseguard-INC-99999999999999999999"):
                body, headers = signed({"event": {"event_type": "incident.acknowledged", "data": {"incident_key": other}}})
                r = await pd.post("/api/webhooks/pagerduty", content=body, headers=headers)
                assert r.status_code == 200 and r.json()["result"].startswith("ignored"), r.text
    incident = await Incident.get(number=int(key.split("-")[1]))
    assert incident.status == "triggered" and incident.acknowledged_by is None


async def test_a_pagerduty_signature_with_non_ascii_bytes_is_a_401(db, monkeypatch):
    monkeypatch.setenv("TEST_PD_SECRET", "pd-secret")
    async with running_api(config(PD)) as api:
        async with api.client("responder") as c:
            key = (await c.post("/api/incidents", json={"title": "DB down", "severity": "critical"})).json()["key"]
        body, _ = signed({"event": {"event_type": "incident.acknowledged", "data": {"incident_key": f"pulseguard-{key}"}}})
        async with api.client() as pd:
            for signature in ("v1=\xff", "v1=é" + "0" * 62, "v1=abc,v1=\xe9"):
                r = await pd.post(
                    "/api/webhooks/pagerduty",
                    content=body,
                    headers=[("X-PagerDuty-Signature", signature.encode("latin-1")), ("Content-Type", "application/json")],
                )
                assert r.status_code == 401, (signature, r.status_code, r.text)
                assert "signature" in r.json()["message"]
    incident = await Incident.get(number=int(key.split("-")[1]))
    assert incident.status == "triggered" and incident.acknowledged_by is None


def am(starts_at: object) -> dict:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="Old"}',
        "status": "firing",
        "groupLabels": {"alertname": "Old"},
        "commonLabels": {"alertname": "Old"},
        "alerts": [
            {"status": "firing", "labels": {"alertname": "Old", "instance": "a"}},
            {"status": "firing", "labels": {"alertname": "Old", "instance": "b"}, "startsAt": starts_at},
        ],
    }


async def test_an_alertmanager_start_time_that_is_no_time_or_out_of_range_is_a_422(db):
    async with running_api(config()) as api, api.client("responder") as c:
        for starts_at in ("0002-01-01T00:00:00+14:00", "1899-12-31T23:00:00Z", "yesterday", "2026-13-01T00:00:00Z"):
            r = await c.post("/api/webhooks/alertmanager", json=am(starts_at))
            assert r.status_code == 422, (starts_at, r.text)
            assert r.json()["field"] == "alerts[1].startsAt", r.json()
            assert starts_at[:10] in r.json()["message"]
        assert await Incident.all().count() == 0 and await Event.all().count() == 0
        # Alertmanager's zero time (an unset time) and a real start still pass.
        for starts_at in ("0001-01-01T00:00:00Z", "2026-01-01T10:00:00.123456789Z"):
            r = await c.post("/api/webhooks/alertmanager", json=am(starts_at))
            assert r.status_code == 200, r.text
    incident = await Incident.get()
    assert incident.detected_at.year == 2026


async def test_an_alert_body_that_is_not_utf8_or_nested_too_deeply_is_a_422_saying_so(db):
    firing = '{"version": "4", "groupKey": "g\xe9", "status": "firing", "alerts": [{"status": "firing"}]}'
    deep = '{"title": "x", "tags": ' + "[" * 100_000 + "]" * 100_000 + "}"
    cases = [
        ("/api/webhooks/alertmanager", firing.encode("latin-1"), "UTF-8"),
        ("/api/webhooks/alert", b'{"title": "disk \xff full"}', "UTF-8"),
        ("/api/webhooks/alertmanager", deep.encode(), "deep"),
        ("/api/webhooks/alert", deep.encode(), "deep"),
    ]
    async with running_api(config()) as api, api.client("responder") as c:
        for path, body, said in cases:
            r = await c.post(path, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 422, (path, r.text)
            assert r.json()["field"] == "body" and said in r.json()["message"], r.json()
    assert await Incident.all().count() == 0 and await Event.all().count() == 0


SLACK = """
[engine]
timezone = "UTC"

[[users]]
id = "alice"
slack = "U1"

[integrations.slack]
signing_secret_env = "TEST_SLACK_SECRET"
command_integration = true
interactive = true
"""


def slack_signed(body: bytes, stamp: str | None = None) -> dict[str, str]:
    stamp = stamp or str(int(time.time()))
    digest = hmac.new(b"slack-secret", b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}", "Content-Type": "application/x-www-form-urlencoded"}


async def test_slack_requests_with_absurd_timestamps_or_payload_shapes_are_refused_without_a_500(db, monkeypatch):
    monkeypatch.setenv("TEST_SLACK_SECRET", "slack-secret")
    async with running_api(config(SLACK)) as api:
        async with api.client("responder") as c:
            key = (await c.post("/api/incidents", json={"title": "Payments down", "severity": "critical"})).json()["key"]
        async with api.client() as slack:
            # A timestamp longer than int() reads (4300 digits): a bad timestamp, before any signature.
            body = urlencode({"text": f"ack {key}", "user_id": "U1"}).encode()
            for path in ("/api/webhooks/slack", "/api/webhooks/slack/actions"):
                r = await slack.post(path, content=body, headers=slack_signed(body, "9" * 5000))
                assert r.status_code == 401 and "X-Slack-Request-Timestamp" in r.json()["message"], (path, r.text)
            # Interaction JSON nested deeper than the parser goes, and `actions` that is no list.
            deep = b"payload=" + b"[" * 30_000
            r = await slack.post("/api/webhooks/slack/actions", content=deep, headers=slack_signed(deep))
            assert r.status_code == 400 and "payload" in r.json()["message"], r.text
            for actions in (5, True, 1.5, [{"action_id": ["pulseguard.acknowledge"], "value": key}]):
                doc = {"type": "block_actions", "user": {"id": "U1"}, "actions": actions}
                body = urlencode({"payload": json.dumps(doc)}).encode()
                r = await slack.post("/api/webhooks/slack/actions", content=body, headers=slack_signed(body))
                assert r.status_code == 200 and r.json() == {}, (actions, r.text)
    incident = await Incident.get(number=int(key.split("-")[1]))
    assert incident.status == "triggered" and incident.acknowledged_by is None


def group(status: str, alerts: list[tuple[str, str]], alertname: str = "Latency") -> dict:
    return {
        "version": "4",
        "groupKey": "{}:{job=api}",
        "status": status,
        "groupLabels": {"job": "api"},
        "commonLabels": {"alertname": alertname, "job": "api"},
        "alerts": [{"status": s, "labels": {"alertname": alertname, "instance": inst}} for inst, s in alerts],
    }


async def test_an_alertmanager_group_resolved_while_an_alert_fires_is_refused_naming_the_alert(db):
    async with running_api(config()) as api, api.client("responder") as c:
        r = await c.post("/api/webhooks/alertmanager", json=group("resolved", [("a", "resolved"), ("b", "firing")]))
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "status" and "alerts[1]" in r.json()["message"], r.json()
        assert await Incident.all().count() == 0
        r = await c.post("/api/webhooks/alertmanager", json=group("firing", [("a", "firing"), ("b", "firing")]))
        assert r.status_code == 200 and r.json()["action"] == "created", r.text
        # The contradiction does not move the incident to monitoring while b still fires.
        r = await c.post("/api/webhooks/alertmanager", json=group("resolved", [("a", "resolved"), ("b", "firing")]))
        assert r.status_code == 422, r.text
    incident = await Incident.get()
    assert incident.status == "triggered" and incident.firing_count == 1
    assert [e.kind for e in await Event.filter(incident_id=incident.id, kind__startswith="alert_")] == ["alert_firing"] * 2


async def test_a_blank_alertname_falls_back_instead_of_a_422_about_a_title_never_sent(db):
    async with running_api(config()) as api, api.client("responder") as c:
        body = dict(group("firing", [("a", "firing")], alertname="   "), groupLabels={"alertname": "   "})
        r = await c.post("/api/webhooks/alertmanager", json=body)
        assert r.status_code == 200, r.text
    incident = await Incident.get()
    assert incident.title.strip() and incident.title.strip() == incident.title


async def test_a_generic_alert_key_with_spaces_around_it_joins_the_same_incident(db):
    async with running_api(config()) as api, api.client("responder") as c:
        keys = []
        for sent in (
            {"title": "Disk full", "dedup_key": "disk-db1"},
            {"title": "Disk full", "dedup_key": " disk-db1 "},
            {"title": "Queue stuck "},
            {"title": "Queue stuck"},
        ):
            r = await c.post("/api/webhooks/alert", json=sent)
            assert r.status_code == 200, r.text
            keys.append(r.json()["incident"])
    assert keys[0] == keys[1] and keys[2] == keys[3] and keys[0] != keys[2]
    assert await Incident.all().count() == 2


async def test_an_alert_label_of_a_hundred_kilobytes_gives_a_timeline_line_not_a_dump(db):
    trace = "Traceback (most recent call last): " + "x" * 100_000
    async with running_api(config()) as api, api.client("responder") as c:
        body = group("firing", [("db1", "firing")])
        body["alerts"][0]["labels"]["stack"] = trace
        r = await c.post("/api/webhooks/alertmanager", json=body)
        assert r.status_code == 200, r.text
    events = await Event.filter(kind="alert_firing")
    assert len(events) == 1
    summary = events[0].summary
    assert len(summary) < 1000, len(summary)
    assert "instance=db1" in summary and "stack=Traceback (most recent call last)" in summary and "…" in summary

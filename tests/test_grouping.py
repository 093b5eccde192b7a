"""Grouping: firings of one fingerprint join one open incident (firing_count, last_seen_at),
within [grouping] window; [grouping] fingerprint composes the fingerprint. Over the real webhook
endpoint on a loopback server and the real trigger worker (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from support.rest import config, running_api

from engine.config.fields import ConfigError
from engine.config.loading import parse_config_text
from engine.core.clock import utcnow
from engine.monitor.triggers.evaluator import Evaluator
from engine.monitor.triggers.rules import Action, rules_from_config
from engine.monitor.triggers.worker import IncidentWorker
from engine.storage.models import Event, Incident

BASE = """
[engine]
timezone = "UTC"

[[services]]
name = "api-server"

[[services]]
name = "web-app"
"""


async def test_100_firings_of_one_fingerprint_make_one_incident_with_count_100(db) -> None:  # type: ignore[no-untyped-def]
    async with running_api(config(BASE)) as api, api.client("responder") as c:
        keys = set()
        for i in range(100):
            r = await c.post("/api/webhooks/alert", json={"title": f"Queue backlog ({i})", "dedup_key": "queue-1", "severity": "high"})
            assert r.status_code == 200, r.text
            keys.add(r.json()["incident"])
        assert len(keys) == 1 and r.json()["count"] == 100
        key = keys.pop()
        detail = (await c.get(f"/api/incidents/{key}")).json()
        listed = (await c.get("/api/incidents")).json()
    assert detail["firing_count"] == 100 and detail["last_seen_at"] is not None
    assert await Incident.all().count() == 1
    assert [r["firing_count"] for r in (listed["incidents"] if isinstance(listed, dict) else listed)] == [100]
    # The first firing is on the timeline; the 99 repeats changed nothing but the count.
    assert await Event.filter(incident__number=int(key[4:]), kind="alert_firing").count() == 1


async def test_a_firing_after_the_window_opens_a_new_incident(db) -> None:  # type: ignore[no-untyped-def]
    async with running_api(config(BASE + '\n[grouping]\nwindow = "10m"\n')) as api, api.client("responder") as c:
        first = (await c.post("/api/webhooks/alert", json={"title": "Disk full", "dedup_key": "disk"})).json()
        again = (await c.post("/api/webhooks/alert", json={"title": "Disk full", "dedup_key": "disk"})).json()
        assert again["incident"] == first["incident"] and again["count"] == 2
        # Quiet for longer than the window: the stored last firing is moved back in time.
        await Incident.filter(number=int(first["incident"][4:])).update(last_seen_at=utcnow() - timedelta(minutes=11))
        later = (await c.post("/api/webhooks/alert", json={"title": "Disk full", "dedup_key": "disk"})).json()
        assert later["action"] == "created" and later["incident"] != first["incident"] and later["count"] == 1
        joined = (await c.post("/api/webhooks/alert", json={"title": "Disk full", "dedup_key": "disk"})).json()
        assert joined["incident"] == later["incident"] and joined["count"] == 2
    old = await Incident.get(number=int(first["incident"][4:]))
    assert old.firing_count == 2


async def test_fingerprint_by_service_groups_alerts_of_different_titles(db) -> None:  # type: ignore[no-untyped-def]
    text = BASE + '\n[grouping]\nfingerprint = ["service"]\n'
    async with running_api(config(text)) as api, api.client("responder") as c:
        a = (await c.post("/api/webhooks/alert", json={"title": "p99 slow", "services": ["api-server"]})).json()
        b = (await c.post("/api/webhooks/alert", json={"title": "5xx burst", "services": ["api-server"]})).json()
        other = (await c.post("/api/webhooks/alert", json={"title": "p99 slow", "services": ["web-app"]})).json()
    assert a["incident"] == b["incident"] and b["count"] == 2
    assert other["incident"] != a["incident"] and other["action"] == "created"


async def test_generic_alerts_grouped_by_service_stay_apart_inside_their_incident(db) -> None:  # type: ignore[no-untyped-def]
    text = BASE + '\n[grouping]\nfingerprint = ["service"]\n'
    async with running_api(config(text)) as api, api.client("responder") as c:
        slow = (await c.post("/api/webhooks/alert", json={"title": "p99 slow", "services": ["api-server"]})).json()
        burst = (await c.post("/api/webhooks/alert", json={"title": "5xx burst", "services": ["api-server"]})).json()
        key = slow["incident"]
        # A new alert of the group is a change: on the timeline, under a fingerprint of its own.
        assert burst["incident"] == key and burst["action"] == "updated"
        detail = (await c.get(f"/api/incidents/{key}")).json()
        fingerprints = {e["summary"]: e["data"]["fingerprint"] for e in detail["timeline"] if e["kind"] == "alert_firing"}
        assert set(fingerprints) == {"alert firing: p99 slow", "alert firing: 5xx burst"}
        assert len(set(fingerprints.values())) == 2
        # One alert resolving leaves the incident open while the other still fires.
        r = await c.post("/api/webhooks/alert", json={"title": "p99 slow", "services": ["api-server"], "status": "resolved"})
        assert r.json()["action"] == "updated", r.text
        assert (await c.get(f"/api/incidents/{key}")).json()["status"] == "triggered"
        # The other alert can be split out by its fingerprint, and its resolution goes there.
        r = await c.post(f"/api/incidents/{key}/split", json={"fingerprint": fingerprints["alert firing: 5xx burst"]})
        assert r.status_code == 201, r.text
        own = r.json()["key"]
        r = await c.post("/api/webhooks/alert", json={"title": "5xx burst", "services": ["api-server"], "status": "resolved"})
        assert r.json()["incident"] == own, r.text


def test_a_bad_grouping_section_is_refused_by_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(BASE + '\n[grouping]\nfingerprint = ["colour"]\n')
    assert any("grouping.fingerprint" in p and "colour" in p for p in info.value.problems), info.value.problems
    with pytest.raises(ConfigError) as info:
        parse_config_text(BASE + '\n[grouping]\nwindow = "soon"\n')
    assert any("grouping.window" in p for p in info.value.problems), info.value.problems


TRIGGERS = """
[engine]
timezone = "UTC"

[[services]]
name = "api-server"

[[targets]]
name = "api-a"
kind = "http"
url = "http://127.0.0.1:9/a"
service = "api-server"

[[targets]]
name = "api-b"
kind = "http"
url = "http://127.0.0.1:9/b"
service = "api-server"

[triggers.api_down]
condition = "status_code >= 500"
duration_minutes = 1
severity = "high"
"""


def _worker(text: str) -> tuple[IncidentWorker, Evaluator]:
    cfg = parse_config_text(text)
    evaluator = Evaluator(rules_from_config(cfg), emit=lambda action: None)
    for t in cfg.targets:
        evaluator.register_target(t.name, 30.0, t.service)
    worker = IncidentWorker(
        evaluator,
        services_of=lambda target: [cfg.target(target).service] if cfg.target(target) else [],  # type: ignore[union-attr,list-item]
        window=cfg.grouping.window,
        fingerprint=cfg.grouping.fingerprint,
    )
    return worker, evaluator


def _firing(evaluator: Evaluator, target: str) -> Action:
    state = evaluator.state(evaluator.rules[0], target, "api-server")
    state.breach_start = time.time() - 60
    return Action("open", state, time.time(), "breached", {"values": {"status_code": 503}, "samples": []})


async def test_100_trigger_firings_make_one_incident_on_the_real_worker(db) -> None:  # type: ignore[no-untyped-def]
    worker, evaluator = _worker(TRIGGERS)
    for _ in range(100):
        await worker.apply(_firing(evaluator, "api-a"))
    rows = await Incident.all()
    assert len(rows) == 1 and rows[0].firing_count == 100 and rows[0].dedup_key == "threshold:api_down:api-a"
    assert await Event.filter(incident_id=rows[0].id, kind="breach").count() == 99
    # Another target is another fingerprint by default (trigger + target, as before).
    await worker.apply(_firing(evaluator, "api-b"))
    assert await Incident.all().count() == 2


async def test_trigger_fingerprint_by_service_joins_targets_of_one_service(db) -> None:  # type: ignore[no-untyped-def]
    worker, evaluator = _worker(TRIGGERS + '\n[grouping]\nfingerprint = ["trigger", "service"]\n')
    await worker.apply(_firing(evaluator, "api-a"))
    await worker.apply(_firing(evaluator, "api-b"))
    rows = await Incident.all()
    assert len(rows) == 1 and rows[0].firing_count == 2 and rows[0].dedup_key.startswith("threshold:")

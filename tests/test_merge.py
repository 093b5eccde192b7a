"""Merging and splitting incidents: over the real API server, the real CLI process and the
service layer (SQLite and PostgreSQL). Nothing is lost: every row of both incidents is on the
survivor after a merge, counted before and after."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import timedelta

import pytest
from support.db import run_cli, table_rows
from support.rest import config, running_api
from test_grouping import TRIGGERS, _firing, _worker

from engine.api.protocol import EngineAPI
from engine.core.clock import utcnow
from engine.core.domain import IllegalTransition, InvalidInput, NotFound
from engine.incidents import queries, services
from engine.learning.postmortem import add_entry, publish, rate_satisfaction, update_postmortem
from engine.monitor.triggers.rules import Action
from engine.rest.statuspage import Settings
from engine.rest.subscribers import SubscriberRelay
from engine.storage.escalation_models import Notification, Timer, TimerState
from engine.storage.models import AuditEntry, Comment, Event, Evidence, FollowUp, Incident, PageLinkUse, StatusUpdate
from engine.storage.postmortem_models import Postmortem
from engine.storage.rest_models import Subscriber

CHILDREN = (Event, Comment, StatusUpdate, Evidence, FollowUp, Notification)


async def _busy_incident(title: str) -> Incident:
    """An incident with a row of every kind: timeline, comment, updates, evidence, follow-up,
    a notification and a pending escalation timer."""
    inc = await services.create_incident(title=title, severity="high", actor="alice", services=["api-server"])
    await services.acknowledge(inc.key, "alice")
    await services.comment(inc.key, f"looking at {title}", "alice")
    await services.comment(inc.key, "internal note", "bob", internal_only=True)
    await services.post_update(inc.key, f"We are investigating {title}.", "alice", public=True)
    await services.add_evidence(inc.key, "link", "alice", url="https://grafana.example.com/d/1")
    await services.add_followup(inc.key, "process_changes", "write it down", "alice")
    now = utcnow()
    await Notification.create(
        dedup_key=f"test:{inc.key}", stream=f"{inc.key}:ops", incident_id=inc.id, destination="slack:#ops", kind="page",
        payload={"incident": inc.key}, next_attempt_at=now, created_at=now, state="delivered",
    )  # fmt: skip
    await Timer.create(key=f"test-esc:{inc.id}", kind="escalate", incident_id=inc.id, due_at=now + timedelta(minutes=5), created_at=now)
    return inc


async def _rows(incident: Incident) -> dict[str, list[int]]:
    return {m.__name__: sorted(await m.filter(incident_id=incident.id).values_list("id", flat=True)) for m in CHILDREN}


async def test_a_merged_incident_keeps_every_event_of_both(db) -> None:  # type: ignore[no-untyped-def]
    survivor = await _busy_incident("checkout 500s")
    merged = await _busy_incident("payment timeouts")
    before_survivor, before_merged = await _rows(survivor), await _rows(merged)
    assert all(before_merged.values()) and all(before_survivor.values())
    async with running_api(config('[engine]\ntimezone = "UTC"\n[[services]]\nname = "api-server"\n')) as api:
        async with api.client("responder") as c:
            r = await c.post(f"/api/incidents/{merged.key}/merge", json={"into": survivor.key, "reason": "same outage"})
            assert r.status_code == 200, r.text
            assert r.json()["key"] == survivor.key and r.json()["related"] == [merged.key]
            gone = (await c.get(f"/api/incidents/{merged.key}")).json()
            kept = (await c.get(f"/api/incidents/{survivor.key}")).json()
    after = await _rows(survivor)
    for name in before_survivor:
        assert set(before_survivor[name]) | set(before_merged[name]) <= set(after[name]), name
    # Every row of both plus the survivor's merge entry; the merged one keeps only its closing entry.
    assert len(after["Event"]) == len(before_survivor["Event"]) + len(before_merged["Event"]) + 1
    left = await _rows(merged)
    assert [k for k, v in left.items() if v] == ["Event"] and len(left["Event"]) == 1
    assert gone["status"] == "resolved" and gone["merged_into"] == survivor.number and "Merged into" in gone["root_cause"]
    assert kept["timeline"][-1]["kind"] == "merged" and merged.key in kept["timeline"][-1]["summary"]
    assert len(kept["comments"]) == 4 and len(kept["updates"]) == 2 and len(kept["evidence"]) == 2 and len(kept["followups"]) == 2
    # The merged one's escalation stops; the survivor's goes on.
    assert (await Timer.get(key=f"test-esc:{merged.id}")).state == TimerState.CANCELLED
    assert (await Timer.get(key=f"test-esc:{survivor.id}")).state == TimerState.PENDING
    # One audit entry per incident, from the API, by the token's name.
    audits = (
        await AuditEntry.filter(action__in=["incident.merged", "incident.resolved"]).order_by("id").values("action", "subject", "source")
    )
    assert audits == [
        {"action": "incident.resolved", "subject": merged.key, "source": "api"},
        {"action": "incident.merged", "subject": survivor.key, "source": "api"},
    ]


async def test_merging_refuses_itself_closed_and_merged_incidents_and_changes_nothing(db) -> None:  # type: ignore[no-untyped-def]
    a = await services.create_incident(title="a", severity="low", actor="alice")
    b = await services.create_incident(title="b", severity="low", actor="alice")
    c = await services.create_incident(title="c", severity="low", actor="alice")
    closed = await services.create_incident(title="closed", severity="low", actor="alice")
    await services.resolve(closed.key, "alice", root_cause="x", solution="y")
    async with running_api() as api, api.client("responder") as http:
        cases = [
            (a.key, {"into": a.key}, 409, "cannot be merged into itself"),
            (a.key, {"into": closed.key}, 409, "reopen it before merging into it"),
            (closed.key, {"into": a.key}, 409, "reopen it before merging it"),
            (a.key, {"into": "INC-999"}, 404, "no incident INC-999"),
            (a.key, {"into": "yesterday"}, 422, "into: 'yesterday' is not an incident key"),
            (a.key, {}, 422, "into"),
        ]
        versions = {i.number: i.version for i in await Incident.all()}
        for key, body, status, message in cases:
            r = await http.post(f"/api/incidents/{key}/merge", json=body)
            assert r.status_code == status and message in r.text, (body, r.status_code, r.text)
        assert {i.number: i.version for i in await Incident.all()} == versions
        assert (await http.post(f"/api/incidents/{b.key}/merge", json={"into": a.key})).status_code == 200
        # b is merged: it cannot be merged again, nor be merged into (no cycles).
        again = await http.post(f"/api/incidents/{b.key}/merge", json={"into": c.key})
        assert again.status_code == 409 and f"already merged into {a.key}" in again.text
        into_merged = await http.post(f"/api/incidents/{c.key}/merge", json={"into": b.key})
        assert into_merged.status_code == 409 and "merge into that one instead" in into_merged.text
        cycle = await http.post(f"/api/incidents/{a.key}/merge", json={"into": b.key})
        assert cycle.status_code == 409 and f"{b.key} was merged into {a.key}; merging back would make a cycle" in cycle.text


async def test_later_firings_of_a_merged_incident_land_on_the_survivor(db) -> None:  # type: ignore[no-untyped-def]
    async with running_api() as api, api.client("responder") as c:
        first = (await c.post("/api/webhooks/alert", json={"title": "Queue backlog", "dedup_key": "queue"})).json()
        other = (await c.post("/api/webhooks/alert", json={"title": "Worker crash", "dedup_key": "worker"})).json()
        r = await c.post(f"/api/incidents/{first['incident']}/merge", json={"into": other["incident"]})
        assert r.status_code == 200 and r.json()["firing_count"] == 2
        later = (await c.post("/api/webhooks/alert", json={"title": "Queue backlog", "dedup_key": "queue"})).json()
    assert later["incident"] == other["incident"] and later["count"] == 3
    assert await Incident.all().count() == 2


def _am(alerts: list[tuple[str, str]]) -> dict:  # type: ignore[type-arg]
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "status": "firing",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency", "severity": "high"},
        "commonAnnotations": {"summary": "HighLatency on the API"},
        "alerts": [
            {"status": s, "labels": {"alertname": "HighLatency", "instance": i}, "fingerprint": hashlib.sha1(i.encode()).hexdigest()[:16]}
            for i, s in alerts
        ],
    }


async def test_split_takes_one_alert_out_and_its_later_firings_follow(db) -> None:  # type: ignore[no-untyped-def]
    fp_b = hashlib.sha1(b"b:9100").hexdigest()[:16]
    async with running_api() as api, api.client("responder") as c:
        r = await c.post("/api/webhooks/alertmanager", json=_am([("a:9100", "firing"), ("b:9100", "firing")]))
        key = r.json()["incident"]
        for _ in range(2):  # repeats: counted on the group, not logged
            r = await c.post("/api/webhooks/alertmanager", json=_am([("a:9100", "firing"), ("b:9100", "firing")]))
        assert r.json()["count"] == 3
        bad = await c.post(f"/api/incidents/{key}/split", json={"fingerprint": "nope"})
        assert bad.status_code == 422 and "has no alert 'nope'" in bad.text
        r = await c.post(f"/api/incidents/{key}/split", json={"fingerprint": fp_b})
        assert r.status_code == 201, r.text
        child = r.json()
        assert child["key"] != key and child["related"] == [key] and "b:9100" in child["title"] or "HighLatency" in child["title"]
        only = await c.post(f"/api/incidents/{child['key']}/split", json={"fingerprint": fp_b})
        assert only.status_code == 409 and "only alert" in only.text
        # b resolving now settles the split-out incident, not the group's.
        r = await c.post("/api/webhooks/alertmanager", json=_am([("a:9100", "firing"), ("b:9100", "resolved")]))
        parent = (await c.get(f"/api/incidents/{key}")).json()
        split_out = (await c.get(f"/api/incidents/{child['key']}")).json()
    fps = lambda d: {e["data"].get("fingerprint") for e in d["timeline"] if e["kind"].startswith("alert_")}  # noqa: E731
    assert fps(parent) == {hashlib.sha1(b"a:9100").hexdigest()[:16]} and fps(split_out) == {fp_b}
    # The moved entry keeps its place in time (before the new incident's own opening).
    assert [e["kind"] for e in split_out["timeline"]] == ["alert_firing", "created", "alert_resolved", "status_changed"]
    assert split_out["status"] == "monitoring" and parent["status"] == "triggered"
    # The split alert takes its one logged firing along; the group's later firing counts on the group.
    assert split_out["firing_count"] == 1 and parent["firing_count"] == 3
    assert parent["timeline"][-1]["kind"] == "split"


def test_merge_split_and_show_through_the_cli(database) -> None:  # type: ignore[no-untyped-def]
    for title in ("API down", "API slow", "DB down"):
        run_cli(database, "incident", "create", "--title", title, "--severity", "high", check=True)
    out = run_cli(database, "incident", "merge", "INC-2", "--into", "INC-1", "--reason", "same outage", check=True).stdout
    assert out.strip() == "INC-2 merged into INC-1 (2 firings; triggered)"
    shown = run_cli(database, "incident", "show", "INC-2", check=True).stdout
    assert "merged into  INC-1" in shown or "merged into" in shown and "INC-1" in shown
    survivor = json.loads(run_cli(database, "incident", "show", "INC-1", "--json", check=True).stdout)
    assert survivor["firing_count"] == 2 and survivor["timeline"][-1]["kind"] == "merged"
    refused = run_cli(database, "incident", "merge", "INC-3", "--into", "INC-2")
    assert refused.returncode != 0 and "INC-2 was merged into INC-1; merge into that one instead" in refused.stderr
    assert "Traceback" not in refused.stderr
    split = run_cli(database, "incident", "split", "INC-1", "abc")
    assert split.returncode != 0 and "fingerprint: INC-1 has no alert 'abc'" in split.stderr


PUBLIC_SITE = """
[engine]
timezone = "UTC"

[[services]]
name = "web-app"
display_name = "Web application"

[[services]]
name = "internal-db"
public = false

[status_page_integration]
title = "Example Status"
public_url = "https://status.example.com"

[integrations.email]
smtp_host = "127.0.0.1"
smtp_port = 2525
from = "status@example.com"
starttls = false
"""


async def test_merging_shows_the_public_only_what_is_public(db) -> None:  # type: ignore[no-untyped-def]
    """The survivor carries both incidents' public updates; the merged one leaves the page
    without a "resolved" (the outage goes on) and subscribers get no mail for it; nothing
    internal of the merge (titles, reason, comments) reaches the page."""
    cfg = config(PUBLIC_SITE)
    relay = SubscriberRelay(lambda: Settings.from_config(cfg))
    await Subscriber.create(email="ann@example.com", token="t" * 32, confirmed_at=utcnow() - timedelta(hours=1), created_at=utcnow())
    async with running_api(cfg) as api:
        async with api.client("responder") as c:
            keep = (await c.post("/api/incidents", json={"title": "SECRET-TITLE-A", "severity": "high", "services": ["web-app"]})).json()
            gone = (await c.post("/api/incidents", json={"title": "SECRET-TITLE-B", "severity": "high", "services": ["web-app"]})).json()
            await c.post(f"/api/incidents/{keep['key']}/updates", json={"message": "Logins fail for some users."})
            await c.post(f"/api/incidents/{gone['key']}/updates", json={"message": "Checkout is slow."})
            await c.post(f"/api/incidents/{gone['key']}/comments", json={"content": "SECRET-COMMENT", "internal_only": True})
            await relay.run_once()
            mails = await Notification.filter(incident_id=None).count()
            assert mails == 2  # one per public update: the subscriber is really listening
            r = await c.post(f"/api/incidents/{gone['key']}/merge", json={"into": keep["key"], "reason": "SECRET-REASON"})
            assert r.status_code == 200, r.text
        assert await relay.run_once() > 0
        assert await Notification.filter(incident_id=None).count() == mails  # no "resolved" mail for the merged one
        async with api.client() as anon:
            html = (await anon.get("/status")).text
            summary = (await anon.get("/api/v2/incidents.json")).json()
            survivor = (await anon.get(f"/status/incidents/{keep['key']}")).text
            assert (await anon.get(f"/status/incidents/{gone['key']}")).status_code == 404
    assert [i["id"] for i in summary["incidents"]] == [keep["key"]]
    assert sorted(u["body"] for u in summary["incidents"][0]["incident_updates"]) == ["Checkout is slow.", "Logins fail for some users."]
    for text in (html, survivor, json.dumps(summary)):
        for secret in ("SECRET-TITLE-A", "SECRET-TITLE-B", "SECRET-REASON", "SECRET-COMMENT", "Merged into", gone["key"]):
            assert secret not in text


async def test_a_merged_trigger_incident_follows_the_survivor_and_leaves_it_to_its_responders(db) -> None:  # type: ignore[no-untyped-def]
    """The trigger worker (the real one) keeps writing a merged trigger incident's entries on the
    survivor, but its recovery does not move the survivor to monitoring nor resolve it."""
    worker, evaluator = _worker(TRIGGERS)
    await worker.apply(_firing(evaluator, "api-a"))
    own = await Incident.get(dedup_key="threshold:api_down:api-a")
    survivor = await services.create_incident(title="Checkout down", severity="critical", actor="alice")
    await services.merge(own.key, survivor.key, "alice")
    st = evaluator.state(evaluator.rules[0], "api-a", "api-server")
    await worker.apply(Action("recovered", st, time.time(), "api_down recovered on api-a", {}))
    await worker.apply(Action("monitoring", st, time.time(), "healthy for 5.0 minutes"))
    await worker.apply(Action("resolve", st, time.time(), "healthy for 10.0 minutes", {"incident": own.key}))
    kept = await Incident.get(number=survivor.number)
    assert kept.status == "triggered" and kept.resolved_at is None
    assert await Event.filter(incident_id=kept.id, kind="recovered").count() == 1
    assert await Event.filter(incident_id=own.id).values_list("kind", flat=True) == ["resolved"]  # only its closing
    # Breaching again joins the survivor: no new incident, one more firing.
    await worker.apply(_firing(evaluator, "api-a"))
    assert await Incident.all().count() == 2
    assert (await Incident.get(number=survivor.number)).firing_count == 3
    await worker.apply(Action("resolve", st, time.time(), "healthy for 10.0 minutes", {"incident": survivor.key}))
    assert (await Incident.get(number=survivor.number)).status == "triggered"


async def test_merge_and_split_answer_alike_through_both_console_engines(engine: EngineAPI) -> None:
    """The console merges and splits through EngineAPI: in this process and over the API, the
    same rows come back and the same refusals, by kind and field."""
    a = (await engine.create_incident(title="API down", severity="high"))["key"]
    b = (await engine.create_incident(title="API slow", severity="medium"))["key"]
    survivor = await engine.merge(b, a, "same outage")
    assert survivor["key"] == a and survivor["firing_count"] == 2 and survivor["related"] == [b]
    merged = await engine.incident_detail(b)
    assert merged["status"] == "resolved" and merged["merged_into"] == int(a[4:])
    assert [r["key"] for r in await engine.list_incidents()] == [a]  # the merged one is closed
    with pytest.raises(IllegalTransition) as refused:
        await engine.merge(a, a)
    assert "cannot be merged into itself" in str(refused.value)
    with pytest.raises(IllegalTransition) as refused:
        await engine.merge(a, b)
    assert "merging back would make a cycle" in str(refused.value)
    with pytest.raises(NotFound):
        await engine.merge(a, "INC-4242")
    with pytest.raises(InvalidInput) as bad:
        await engine.merge(a, "tomorrow")
    assert bad.value.field == "into"
    with pytest.raises(InvalidInput) as bad:
        await engine.split(a, "no-such-alert")
    assert bad.value.field == "fingerprint" and "has no alert 'no-such-alert'" in str(bad.value)


# --- a merged incident takes no more changes --------------------------------------------------

MERGED = "INC-2 was merged into INC-1; change INC-1 instead"
STORED = (Incident, Event, Comment, StatusUpdate, Evidence, FollowUp, Notification, Timer, AuditEntry, Postmortem, PageLinkUse)


async def _stored() -> dict[str, list[dict]]:  # type: ignore[type-arg]
    return {m.__name__: await m.all().order_by(m._meta.pk_attr).values() for m in STORED}


async def test_every_change_to_a_merged_incident_is_refused_and_changes_nothing(db) -> None:  # type: ignore[no-untyped-def]
    """Everything of a merged incident lives on its survivor: a change left on the merged one
    (a comment, a reopening) would sit apart from it and off the status page. Each service that
    changes an incident refuses, naming the survivor; reading it still works."""
    survivor = await services.create_incident(title="checkout 500s", severity="high", actor="alice")
    gone = await services.create_incident(title="payment timeouts", severity="high", actor="alice", tags=["pay"])
    # Commented on before the merge: on PostgreSQL its id is kept and the next comment is not read
    # first, so only the write's guard can see the merge.
    await services.comment(gone.key, "looking", "alice")
    await services.merge(gone.key, survivor.key, "alice", reason="dup")
    key = gone.key
    changes = {
        "comment": lambda: services.comment(key, "on merged", "bob"),
        "update": lambda: services.post_update(key, "still down", "bob"),
        "status": lambda: services.change_status(key, "identified", "bob"),
        "edit": lambda: services.edit_incident(key, "bob", title="edit merged"),
        "reopen": lambda: services.reopen(key, "bob", reason="not a duplicate"),
        "acknowledge": lambda: services.acknowledge(key, "bob"),
        "severity": lambda: services.change_severity(key, "low", "bob"),
        "assign": lambda: services.assign(key, "bob", "bob"),
        "tags": lambda: services.set_tags(key, "bob", add=["db"]),
        "evidence": lambda: services.add_evidence(key, "link", "bob", url="https://grafana.example.com/d/2"),
        "follow-up": lambda: services.add_followup(key, "process_changes", "write it down", "bob"),
        "follow-ups": lambda: services.add_followups(key, [("process_changes", "write it down")], "bob"),
        "false positive": lambda: services.mark_false_positive(key, "bob"),
        "amend resolution": lambda: services.resolve(key, "bob", root_cause="disk", solution="cleaned", amend=True),
        "resolve": lambda: services.resolve(key, "bob", root_cause="disk", solution="cleaned"),
        "verification step": lambda: services.set_verification_step(key, 0, "bob"),
        "analysis": lambda: services.set_analysis(key, "correlation", None, "bob"),
        "snooze": lambda: services.snooze(key, timedelta(minutes=30), "bob"),
        "unsnooze": lambda: services.unsnooze(key, "bob"),
        "timeline entry": lambda: services.record_event(key, "note", "a note", "bob"),
        "firing": lambda: services.count_firing(key),
        "split": lambda: services.split(key, "abc", "bob"),
        "page link": lambda: services.act_once(key, "acknowledge", "bob", nonce="n-1", via="e-mail link"),
        "post-mortem": lambda: update_postmortem(key, "bob", summary="what happened"),
        "post-mortem entry": lambda: add_entry(key, "bob", at_time=utcnow(), text="deploy"),
        "publish": lambda: publish(key, "bob"),
        "satisfaction": lambda: rate_satisfaction(key, "bob", customer=4),
    }
    before = await _stored()
    for name, make in changes.items():
        with pytest.raises(IllegalTransition) as refused:
            await make()
        assert str(refused.value) == MERGED, name
    assert await _stored() == before
    # Reading stays allowed, and the survivor takes the change.
    shown = await queries.get_incident(key)
    assert shown.status == "resolved" and shown.merged_into == survivor.number
    await services.comment(survivor.key, "on the survivor", "bob")
    assert await Comment.filter(incident_id=survivor.id, content="on the survivor").count() == 1


async def test_the_api_refuses_changing_a_merged_incident_with_409(db) -> None:  # type: ignore[no-untyped-def]
    async with running_api() as api, api.client("responder") as c:
        for title in ("API down", "API slow"):
            assert (await c.post("/api/incidents", json={"title": title, "severity": "high"})).status_code == 201
        assert (await c.post("/api/incidents/INC-2/merge", json={"into": "INC-1", "reason": "dup"})).status_code == 200
        before = await _stored()
        for method, path, body in (
            ("POST", "/api/incidents/INC-2/comments", {"content": "on merged"}),
            ("PUT", "/api/incidents/INC-2", {"title": "edit merged"}),
            ("POST", "/api/incidents/INC-2/reopen", {}),
            ("POST", "/api/incidents/INC-2/acknowledge", None),
            ("POST", "/api/incidents/INC-2/updates", {"message": "still down"}),
        ):
            r = await c.request(method, path, json=body)
            assert r.status_code == 409 and MERGED in r.text, (path, r.status_code, r.text)
        assert await _stored() == before
        shown = await c.get("/api/incidents/INC-2")
        assert shown.status_code == 200 and shown.json()["status"] == "resolved" and shown.json()["title"] == "API slow"


def test_the_cli_refuses_changing_a_merged_incident_with_exit_2(migrated_database) -> None:  # type: ignore[no-untyped-def]
    database = migrated_database
    for title in ("API down", "API slow"):
        run_cli(database, "incident", "create", "--title", title, "--severity", "high", check=True)
    run_cli(database, "incident", "merge", "INC-2", "--into", "INC-1", check=True)
    before = table_rows(database)
    for args in (("comment", "INC-2", "on merged"), ("reopen", "INC-2"), ("edit", "INC-2", "--title", "edit merged")):
        proc = run_cli(database, "incident", *args)
        assert proc.returncode == 2 and proc.stderr == f"error: {MERGED}\n", (args, proc.returncode, proc.stderr)
    assert table_rows(database) == before
    assert "API slow" in run_cli(database, "incident", "show", "INC-2", check=True).stdout

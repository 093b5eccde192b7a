"""Alertmanager v4 groups as a platform team sends them, through the real server (SQLite and
PostgreSQL): a group's severity is its worst firing alert's, a later more severe alert raises
the incident, silences match the alerts' own labels (label.alertname, label.instance, …), and
highly available Alertmanager's copies of one group store each alert's state once."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx
from support.rest import config, running_api

from engine.rest.server import ApiService
from engine.storage.models import AuditEntry, Event, Incident, Silence

HOOKS = """
[engine]
timezone = "UTC"

[integrations.alertmanager]
token_env = "TEST_AM_TOKEN"
default_severity = "medium"
"""
AUTH = {"Authorization": "Bearer am-secret"}
PATH = "/api/webhooks/alertmanager"


def alert(instance: str, severity: str | None, status: str = "firing", name: str = "CheckoutSlow", **labels: str) -> dict[str, Any]:
    own = {"alertname": name, "instance": instance, "job": "checkout", **labels}
    if severity is not None:
        own["severity"] = severity
    return {
        "status": status,
        "labels": own,
        "annotations": {"summary": f"{name} on {instance}"},
        "startsAt": "2026-01-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-01-01T10:30:00Z",
        "generatorURL": f"http://prometheus:9090/graph?g0={instance}",
        "fingerprint": hashlib.sha1(f"{name}/{instance}".encode()).hexdigest()[:16],
    }


def group(name: str, alerts: list[dict[str, Any]], status: str = "firing", common: dict[str, str] | None = None) -> dict[str, Any]:
    """A v4 body; the common labels carry no severity unless `common` says so."""
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "pulseguard",
        "groupLabels": {"alertname": name},
        "commonLabels": {"alertname": name, "job": "checkout", **(common or {})},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }


async def incident_of(key: str) -> Incident:
    return await Incident.get(number=int(key.split("-")[1]))


async def test_a_group_takes_its_worst_firing_alerts_severity_whatever_the_order(db: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("TEST_AM_TOKEN", "am-secret")
    async with running_api(config(HOOKS)) as api, api.client(headers=AUTH) as hook:
        for name, alerts in (
            ("LowFirst", [alert("web-1", "low", name="LowFirst"), alert("web-2", "critical", name="LowFirst")]),
            ("CriticalFirst", [alert("web-1", "critical", name="CriticalFirst"), alert("web-2", "low", name="CriticalFirst")]),
            # Alertmanager's words keep their mapping: page is critical, warning medium, info low.
            (
                "Words",
                [alert("web-1", "info", name="Words"), alert("web-2", "page", name="Words"), alert("web-3", "warning", name="Words")],
            ),
            ("Warnings", [alert("web-1", "info", name="Warnings"), alert("web-2", "warning", name="Warnings")]),
            # A resolved alert is no reason to page: the worst *firing* alert counts.
            ("Settled", [alert("web-1", "critical", "resolved", name="Settled"), alert("web-2", "low", name="Settled")]),
            # No severity on any alert: the configured default.
            ("Unlabelled", [alert("web-1", None, name="Unlabelled")]),
        ):
            r = await hook.post(PATH, json=group(name, alerts))
            assert r.status_code == 200 and r.json()["action"] == "created", r.text
        # The common label, when there is one, is every alert's.
        r = await hook.post(PATH, json=group("Common", [alert("web-1", "high", name="Common")], common={"severity": "high"}))
        assert r.json()["action"] == "created", r.text
    severities = {i.tags[1]: i.severity for i in await Incident.all()}
    assert severities == {
        "LowFirst": "critical",
        "CriticalFirst": "critical",
        "Words": "critical",
        "Warnings": "medium",
        "Settled": "low",
        "Unlabelled": "medium",
        "Common": "high",
    }


async def test_a_later_more_severe_alert_raises_the_incident_and_nothing_lowers_it(db: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("TEST_AM_TOKEN", "am-secret")
    low, critical, high = alert("web-1", "low"), alert("web-2", "critical"), alert("web-3", "high")
    async with running_api(config(HOOKS)) as api, api.client(headers=AUTH) as hook:
        r = await hook.post(PATH, json=group("CheckoutSlow", [low]))
        assert r.json()["action"] == "created", r.text
        key = r.json()["incident"]
        assert (await incident_of(key)).severity == "low"
        r = await hook.post(PATH, json=group("CheckoutSlow", [low, critical]))
        assert r.json() == {"action": "updated", "incident": key, "count": 2}
        incident = await incident_of(key)
        assert incident.severity == "critical"
        raised = await Event.filter(incident_id=incident.id, kind="severity_changed").order_by("id")
        assert len(raised) == 1 and raised[0].actor == "alertmanager"
        assert raised[0].summary == "severity low → critical: raised to critical by alert CheckoutSlow (instance=web-2)"
        assert raised[0].data["from"] == "low" and raised[0].data["to"] == "critical"
        # After the firing that raised it, on the timeline.
        kinds = [e.kind for e in await Event.filter(incident_id=incident.id).order_by("id")]
        assert kinds.index("severity_changed") > max(i for i, k in enumerate(kinds) if k == "alert_firing")

        # A new, less severe alert never lowers it, nor does the low one resolving.
        r = await hook.post(PATH, json=group("CheckoutSlow", [alert("web-1", "low", "resolved"), critical, high]))
        assert r.json()["action"] == "updated"
        assert (await incident_of(key)).severity == "critical"

        # A person's word stands: lowered by hand, a repeat of the critical alert leaves it so;
        # only a new critical alert raises it again.
        async with api.client("responder") as responder:
            r = await responder.post(f"/api/incidents/{key}/severity", json={"severity": "medium"})
            assert r.status_code == 200, r.text
            assert (await incident_of(key)).severity == "medium"
        r = await hook.post(PATH, json=group("CheckoutSlow", [critical, high]))
        assert r.json()["action"] == "unchanged"
        assert (await incident_of(key)).severity == "medium"
        r = await hook.post(PATH, json=group("CheckoutSlow", [critical, high, alert("web-4", "critical")]))
        assert r.json()["action"] == "updated"
        assert (await incident_of(key)).severity == "critical"
    summaries = [e.summary for e in await Event.filter(incident_id=incident.id, kind="severity_changed").order_by("id")]
    assert len(summaries) == 3 and summaries[-1].endswith("raised to critical by alert CheckoutSlow (instance=web-4)")


async def test_silences_match_each_alerts_own_labels(db: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("TEST_AM_TOKEN", "am-secret")
    async with running_api(config(HOOKS)) as api, api.client("responder") as responder, api.client(headers=AUTH) as hook:
        made = await responder.post(
            "/api/silences",
            json={"matchers": [{"field": "label.alertname", "op": "=", "value": "Silenced1"}], "comment": "am test", "duration": "1h"},
        )
        assert made.status_code == 201, made.text
        silence_id = made.json()["id"]
        body = group("Silenced1", [alert("web-1", "low", name="Silenced1"), alert("web-2", "critical", name="Silenced1")])
        r = await hook.post(PATH, json=body)
        assert r.json()["action"] == "silenced" and r.json()["silence"] == silence_id, r.text
        assert await Incident.all().count() == 0
        assert (await responder.get(f"/api/silences/{silence_id}")).json()["silenced"] == 1
        shown = (await Event.filter(kind="silenced_firing").order_by("-id").first()).data  # type: ignore[union-attr]
        labels = shown["labels"]
        assert labels["label.alertname"] == ["Silenced1"] and labels["label.instance"] == ["web-1"]
        assert labels["label.job"] == ["checkout"] and labels["label.severity"] == ["low"]
        assert labels["trigger"] == ["Silenced1"] and labels["target"] == ["web-1"] and labels["source"] == ["alert"]
        assert labels["label.alertmanager"] == ["true"]  # the tags silences matched before
        assert shown["alerts"] == 2

        # One alert of a group silenced by its instance: the group opens with the other alone,
        # at the other's severity; the silenced one neither joins nor raises it later.
        by_instance = await responder.post(
            "/api/silences", json={"matchers": ["label.instance=~db-1|db-9", "label.job=checkout"], "comment": "db work", "duration": "1h"}
        )
        assert by_instance.status_code == 201, by_instance.text
        db1, db2 = alert("db-1", "critical", name="DbSlow"), alert("db-2", "high", name="DbSlow")
        r = await hook.post(PATH, json=group("DbSlow", [db1, db2]))
        assert r.json()["action"] == "created", r.text
        incident = await incident_of(r.json()["incident"])
        assert incident.severity == "high"
        firings = await Event.filter(incident_id=incident.id, kind="alert_firing").values_list("data", flat=True)
        assert [d["fingerprint"] for d in firings] == [db2["fingerprint"]]  # type: ignore[index]
        r = await hook.post(PATH, json=group("DbSlow", [db1, db2, alert("db-9", "critical", name="DbSlow")]))
        assert r.json()["action"] == "unchanged"
        assert (await incident_of(incident.key)).severity == "high"
        assert await Event.filter(incident_id=incident.id, kind="alert_firing").count() == 1
        # Only silenced alerts firing: nothing joins the open incident, nothing is counted on it.
        r = await hook.post(PATH, json=group("DbSlow", [db1]))
        assert r.json() == {
            "action": "silenced",
            "silence": by_instance.json()["id"],
            "until": r.json()["until"],
            "incident": incident.key,
            "count": 2,
        }
        assert (await responder.get(f"/api/silences/{by_instance.json()['id']}")).json()["silenced"] == 3

        # Unmatched labels open as ever; the older fields still match.
        r = await hook.post(PATH, json=group("Other", [alert("web-1", "low", name="Other")]))
        assert r.json()["action"] == "created"
        old = await responder.post("/api/silences", json={"matchers": ["label.Old=true"], "comment": "old style", "duration": "1h"})
        assert old.status_code == 201
        r = await hook.post(PATH, json=group("Old", [alert("web-1", "low", name="Old")]))
        assert r.json()["action"] == "silenced" and r.json()["silence"] == old.json()["id"]
        bad = await responder.post("/api/silences", json={"matchers": ["label.a b=x"], "comment": "x", "duration": "1h"})
        assert bad.status_code == 422 and bad.json()["field"] == "matchers[0]", bad.text
    assert await Silence.all().count() == 3


async def _deliveries(a: httpx.AsyncClient, b: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The same body to both engines, and twice to each, at once."""
    answers = await asyncio.gather(*(c.post(PATH, json=body) for c in (a, b, a, b)))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    return [r.json() for r in answers]


async def test_highly_available_alertmanagers_copies_store_each_alert_state_once(db: Any, monkeypatch: Any) -> None:
    """Two engines on one database (each with its own API state and locks), each delivery sent
    to both, twice, at the same moment: each alert's firing and resolution is on the timeline
    (and in the audit log) once; only the firing count counts every delivery."""
    monkeypatch.setenv("TEST_AM_TOKEN", "am-secret")
    web1, web2, web3 = alert("web-1", "high"), alert("web-2", "high"), alert("web-3", "high")
    other = ApiService("127.0.0.1:0", config(HOOKS), db_label="test", relay=False, drain_seconds=3)
    async with running_api(config(HOOKS)) as one:
        await other.start()
        try:
            async with one.client(headers=AUTH) as a, httpx.AsyncClient(base_url=other.url, headers=AUTH, timeout=30) as b:
                first = await _deliveries(a, b, group("CheckoutSlow", [web1, web2]))
                assert [x["action"] for x in first].count("created") == 1, first
                key = first[0]["incident"]
                joined = await _deliveries(a, b, group("CheckoutSlow", [web1, web2, web3]))
                assert [x["action"] for x in joined].count("updated") == 1, joined
                resolving = group("CheckoutSlow", [alert("web-1", "high", "resolved"), web2, web3])
                assert [x["action"] for x in await _deliveries(a, b, resolving)].count("updated") == 1
                done = [alert(i, "high", "resolved") for i in ("web-1", "web-2", "web-3")]
                settled = await _deliveries(a, b, group("CheckoutSlow", done, status="resolved"))
                assert "monitoring" in [x["action"] for x in settled], settled
        finally:
            await other.stop()
    incident = await incident_of(key)
    assert incident.status == "monitoring"
    assert incident.firing_count == 12  # three firing rounds of four deliveries: counted, not logged
    events = await Event.filter(incident_id=incident.id).order_by("id").values_list("kind", "summary")
    firing = [s for k, s in events if k == "alert_firing"]
    resolved = [s for k, s in events if k == "alert_resolved"]
    assert sorted(firing) == [f"alert firing: CheckoutSlow on web-{i} [instance=web-{i}, job=checkout]" for i in (1, 2, 3)]
    assert sorted(resolved) == [f"alert resolved: CheckoutSlow on web-{i} [instance=web-{i}, job=checkout]" for i in (1, 2, 3)]
    assert [k for k, _ in events].count("status_changed") == 1
    audited = await AuditEntry.filter(subject=key, action__in=["incident.alert_firing", "incident.alert_resolved"]).count()
    assert audited == 6

"""A root cause recorded on an incident resolved meanwhile: the engine resolves a recovered
incident as "Transient: … recovered without intervention" while a responder writes the real
cause; `resolve(..., amend=True)` (REST `"amend": true`) replaces the root cause, category,
solution and steps, keeps when and by whom it was resolved, notifies nobody again, and says so on
the timeline. Without it the refusal stays a 409. On SQLite and PostgreSQL; the REST part on a
real uvicorn on loopback."""

from __future__ import annotations

import pytest

from engine.core.domain import IllegalTransition
from engine.incidents import services
from engine.storage.escalation_models import Notification
from engine.storage.models import Event, Incident


async def test_amending_replaces_the_root_cause_and_keeps_the_resolution(db):
    incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
    await services.resolve(incident.key, "engine", root_cause="Transient: recovered without intervention", solution="none")
    resolved = await Incident.get(id=incident.id)
    with pytest.raises(IllegalTransition, match="already resolved"):
        await services.resolve(incident.key, "alice", root_cause="pool too small", solution="bigger pool")
    notified = await Notification.all().count()
    await services.resolve(
        incident.key,
        "alice",
        root_cause="pool too small",
        solution="bigger pool",
        category="capacity",
        verification_steps=["p99"],
        amend=True,
    )
    after = await Incident.get(id=incident.id)
    assert (after.root_cause, after.root_cause_category, after.solution) == ("pool too small", "capacity", "bigger pool")
    assert after.verification_steps == [{"step": "p99", "done": False}]
    assert (after.resolved_at, after.resolved_by, after.status) == (resolved.resolved_at, "engine", "resolved")
    last = await Event.filter(incident_id=incident.id).order_by("-id").first()
    assert last is not None and last.kind == "resolution_amended" and last.actor == "alice"
    assert last.data["was"]["root_cause"] == "Transient: recovered without intervention"
    assert await Notification.all().count() == notified
    # On an open incident it is a plain resolution.
    other = await services.create_incident(title="Queue backlog", severity="low", actor="alice")
    await services.resolve(other.key, "alice", root_cause="stuck consumer", solution="restart", amend=True)
    assert (await Incident.get(id=other.id)).resolved_by == "alice"


async def test_amend_over_the_api(api):
    incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
    await services.resolve(incident.key, "engine", root_cause="Transient: recovered", solution="none")
    body = {"root_cause": "pool too small", "solution": "bigger pool"}
    async with api.client("responder") as c:
        refused = await c.post(f"/api/incidents/{incident.key}/resolve", json=body)
        assert refused.status_code == 409 and "already resolved" in refused.json()["message"]
        r = await c.post(f"/api/incidents/{incident.key}/resolve", json={**body, "amend": True})
        assert r.status_code == 200, r.text
        assert (r.json()["root_cause"], r.json()["resolved_by"]) == ("pool too small", "engine")
        bad = await c.post(f"/api/incidents/{incident.key}/resolve", json={**body, "amend": "yes"})
        assert bad.status_code == 422 and bad.json()["field"] == "amend"

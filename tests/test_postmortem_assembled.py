"""Entries a post-mortem assembles from the incident rather than from a person — the "first
alert" of an incident a threshold trigger opened, besides those from the incident's events —
keep that origin once the post-mortem is saved: they are hidden, never removed, and saving
again neither duplicates them nor changes the downtime read off them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.db import run_cli
from support.rest import running_api

from engine.core.domain import IllegalTransition
from engine.incidents import services
from engine.learning import postmortem
from engine.storage.postmortem_models import PostmortemEntry

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def domain_down() -> str:
    """Opened by the domain_down threshold trigger 12 s after its first failing sample; resolved 3 min later."""
    inc = await services.create_incident(
        title="example.com is down",
        severity="high",
        actor="monitor",
        source="threshold",
        target="example.com",
        trigger="domain_down",
        detected_at=at(-0.2),
        at=at(0),
    )
    await services.acknowledge(inc.key, "bob", at=at(1))
    await services.change_status(inc.key, "identified", "bob", message="registrar lapsed", at=at(2))
    await services.change_status(inc.key, "monitoring", "bob", message="renewed", at=at(2.5))
    await services.resolve(inc.key, "bob", root_cause="domain lapsed", solution="renewed", category="dependency", at=at(3))
    return inc.key


def by_kind(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["kind"]: e for e in doc["timeline"]}


ASSEMBLED = ("first_alert", "declared", "acknowledged", "identified", "monitoring", "resolved")


async def test_saving_keeps_the_assembled_entries_assembled_and_unremovable(db):
    key = await domain_down()
    preview = await postmortem.postmortem_document(key)
    assert [e["kind"] for e in preview["timeline"]] == list(ASSEMBLED)
    assert preview["impact"]["downtime_minutes"] == 3.2
    origins = {e["kind"]: e["origin"] for e in preview["timeline"]}

    await postmortem.update_postmortem(key, "bob", summary="The domain lapsed")
    await postmortem.update_postmortem(key, "bob", summary="The domain lapsed; renewed")  # saved twice
    doc = await postmortem.postmortem_document(key)
    # Nothing duplicated, every entry stored, each keeps the origin the preview gave it.
    assert [e["kind"] for e in doc["timeline"]] == list(ASSEMBLED)
    assert all(e["id"] for e in doc["timeline"])
    assert {e["kind"]: e["origin"] for e in doc["timeline"]} == origins
    first = by_kind(doc)["first_alert"]
    assert first["origin"] == "incident" and first["event_id"] is None and first["text"] == "problem first detected (domain_down)"
    assert not any(e["origin"] == "person" for e in doc["timeline"])
    assert await PostmortemEntry.filter(kind="first_alert").count() == 1

    # None of them can be removed (only hidden), and the refusal leaves the downtime as it was.
    for kind in ASSEMBLED:
        with pytest.raises(IllegalTransition, match="hide it instead"):
            await postmortem.remove_entry(key, by_kind(doc)[kind]["id"], "bob")
    doc = await postmortem.postmortem_document(key)
    assert [e["kind"] for e in doc["timeline"]] == list(ASSEMBLED)
    assert doc["impact"]["downtime_minutes"] == 3.2 and doc["impact"]["downtime_source"] == "timeline"

    # Hiding still works, and a hidden first alert stays an assembled entry.
    await postmortem.edit_entry(key, first["id"], "bob", hidden=True)
    await postmortem.edit_entry(key, first["id"], "bob", text="registrar check failed", kind="note")  # even edited
    doc = await postmortem.postmortem_document(key)
    assert by_kind(doc)["note"]["origin"] == "incident" and doc["impact"]["downtime_minutes"] == 3.0
    with pytest.raises(IllegalTransition, match="hide it instead"):
        await postmortem.remove_entry(key, first["id"], "bob")
    await postmortem.edit_entry(key, first["id"], "bob", hidden=False, kind="first_alert")
    assert (await postmortem.postmortem_document(key))["impact"]["downtime_minutes"] == 3.2


async def test_entries_a_person_adds_are_still_removable(db):
    key = await domain_down()
    await postmortem.update_postmortem(key, "bob", summary="The domain lapsed")
    # Even one of a kind the post-mortem assembles too (a first alert seen elsewhere, earlier).
    row = await postmortem.add_entry(key, "bob", at_time=at(-1), text="uptime robot mail", kind="first_alert")
    given = await postmortem.edit_postmortem(key, "bob", timeline=[postmortem.GivenEntry("2026-03-02T09:59:30Z", "support ticket")])
    doc = await postmortem.postmortem_document(key)
    added = [e for e in doc["timeline"] if e["origin"] == "person"]
    assert [e["text"] for e in added] == ["uptime robot mail", "support ticket"]
    assert doc["impact"]["downtime_minutes"] == 4.0
    await postmortem.remove_entry(key, row.id, "bob")
    await postmortem.remove_entry(key, given.added[0].id, "bob")
    doc = await postmortem.postmortem_document(key)
    assert [e["kind"] for e in doc["timeline"]] == list(ASSEMBLED)
    assert doc["impact"]["downtime_minutes"] == 3.2


async def test_an_incident_declared_by_hand_has_no_assembled_entry_without_an_event(db):
    """No first alert (detected when declared): the first entry a person adds is theirs to remove."""
    inc = await services.create_incident(title="slow checkout", severity="low", actor="alice", at=at(0))
    await services.resolve(inc.key, "alice", root_cause="cache", solution="flushed", category="capacity", at=at(5))
    row = await postmortem.add_entry(inc.key, "alice", at_time=at(-2), text="first complaint", kind="first_alert")
    doc = await postmortem.postmortem_document(inc.key)
    assert [(e["kind"], e["origin"]) for e in doc["timeline"]] == [
        ("first_alert", "person"),
        ("declared", "event"),
        ("resolved", "event"),
    ]
    await postmortem.remove_entry(inc.key, row.id, "alice")
    assert [e["kind"] for e in (await postmortem.postmortem_document(inc.key))["timeline"]] == ["declared", "resolved"]


async def test_over_the_rest_api_and_the_cli(db):
    """The audit's path: save the summary over the API, read the entry, try to delete it."""
    key = await domain_down()
    async with running_api() as api, api.client("responder") as c:
        r = await c.patch(f"/api/incidents/{key}/postmortem", json={"summary": "The domain lapsed"})
        assert r.status_code == 200, r.text
        doc = (await c.get(f"/api/incidents/{key}/postmortem")).json()
        first = next(e for e in doc["timeline"] if e["kind"] == "first_alert")
        assert (first["event_id"], first["origin"]) == (None, "incident")
        r = await c.delete(f"/api/incidents/{key}/postmortem/entries/{first['id']}")
        assert r.status_code == 409 and "hide it instead" in r.text, r.text
        doc = (await c.get(f"/api/incidents/{key}/postmortem")).json()
        assert doc["impact"]["downtime_minutes"] == 3.2
    proc = run_cli(db, "postmortem", key, "--remove-entry", str(first["id"]))
    assert proc.returncode != 0 and "hide it instead" in proc.stderr, proc.stderr
    proc = run_cli(db, "postmortem", key, "--format", "md")
    assert proc.returncode == 0, proc.stderr
    assert "3.2 minutes, computed from the timeline" in proc.stdout and "problem first detected (domain\\_down)" in proc.stdout
